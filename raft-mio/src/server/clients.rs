//! The client listener: RESP2 connections served from one `mio` event loop, with no thread per
//! client. Replies go out in request order, however the requests finish; a client that sends
//! faster than it reads is no longer read from until it catches up.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};
use raft_std::client::Session;

use super::commands::{self, Command, Ctx};
use super::info::{self, ClientCounters, InfoSources};
use super::ops::{DoneQueue, Finished, FinishedBody, OpKind, Ops, StatusFor};
use crate::resp::{self, Limits, Parsed, Reply};

pub(crate) const LISTENER: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);
pub(crate) const SIGNALS: Token = Token(2);
const FIRST_CONN: usize = 3;
/// Requests in flight on one connection before it is no longer read from.
const MAX_PENDING: usize = 256;
/// Bytes of replies waiting to be written to one connection before it is no longer read from.
const MAX_OUTPUT: usize = 16 << 20;
/// Bytes of replies waiting for one connection past which it is closed: a client that does not
/// read what it asked for (the requests in flight when it stopped are bounded by
/// [`MAX_PENDING`], each reply by the largest value).
const HARD_OUTPUT: usize = 256 << 20;
const READ_CHUNK: usize = 64 << 10;

struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    id: u64,
    name: Option<String>,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    want_write: bool,
    /// Replies in request order; `None` until the request finishes. The first is slot
    /// `first_slot`.
    replies: VecDeque<Option<Vec<u8>>>,
    first_slot: u64,
    /// Bytes of the finished replies still in `replies`.
    ready_bytes: usize,
    session: Session,
    /// Close once the replies queued are written (QUIT, a protocol error, shutdown).
    closing: bool,
    /// The peer closed its end: no more requests, but the replies still go out.
    read_closed: bool,
    /// It asked for RESP3 (`HELLO 3`).
    resp3: bool,
    /// Reading or parsing stopped at a limit, with requests possibly left in the buffer or the
    /// socket: go on once there is room (no new readable event comes for bytes already there).
    paused: bool,
    /// What is left in the buffer is the start of a request: parsing again before it holds
    /// `need` bytes cannot get further; after the peer closed its end, it never completes.
    tail_incomplete: bool,
    need: usize,
}

impl Conn {
    fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Bytes of replies not yet written.
    fn output(&self) -> usize {
        self.queued() + self.ready_bytes
    }

    /// Whether there is room for more requests in flight.
    fn room(&self) -> bool {
        self.replies.len() < MAX_PENDING && self.output() < MAX_OUTPUT
    }

    /// Whether to read more from the socket now.
    fn open_for_requests(&self) -> bool {
        !self.closing && !self.read_closed && self.room()
    }

    /// Whether the buffer may still hold a whole request not yet parsed.
    fn requests_buffered(&self) -> bool {
        self.rpos < self.rbuf.len() && !self.tail_incomplete
    }

    /// Whether everything the client will ever get has been written: close it.
    fn done(&self) -> bool {
        (self.closing || (self.read_closed && !self.requests_buffered()))
            && self.replies.is_empty()
            && self.queued() == 0
    }

    fn push_reply(&mut self, reply: Option<Vec<u8>>) -> u64 {
        self.ready_bytes += reply.as_ref().map_or(0, Vec::len);
        self.replies.push_back(reply);
        self.first_slot + self.replies.len() as u64 - 1
    }

    /// Moves the finished replies at the front into the write buffer.
    fn drain_replies(&mut self) {
        while let Some(Some(_)) = self.replies.front() {
            if let Some(Some(reply)) = self.replies.pop_front() {
                self.ready_bytes = self.ready_bytes.saturating_sub(reply.len());
                self.wbuf.extend_from_slice(&reply);
                self.first_slot += 1;
            }
        }
    }
}

/// The client event loop's state.
pub(crate) struct ClientLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: UnixStream,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    next_conn_id: u64,
    ops: Ops,
    done: Arc<DoneQueue>,
    ctx: Ctx,
    limits: Limits,
    info: InfoSources,
    counters: ClientCounters,
    /// Accepting failed for lack of file descriptors: try again at the next round.
    accept_later: bool,
}

/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl ClientLoop {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        poll: Poll,
        listener: TcpListener,
        signals: UnixStream,
        ops: Ops,
        done: Arc<DoneQueue>,
        ctx: Ctx,
        info: InfoSources,
    ) -> Self {
        Self {
            poll,
            listener: Some(listener),
            signals,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            next_conn_id: 1,
            ops,
            done,
            ctx,
            limits: Limits::default(),
            info,
            counters: ClientCounters::default(),
            accept_later: false,
        }
    }

    /// Serves clients until a signal (SIGTERM, SIGINT) arrives; then stops accepting, finishes
    /// what is in flight (for up to 5 s), writes the replies and returns.
    ///
    /// # Errors
    ///
    /// Polling fails.
    pub(crate) fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut read_buf = vec![0_u8; READ_CHUNK];
        let mut finished = Vec::new();
        let mut stopping: Option<Instant> = None;
        loop {
            let timeout = self.sleep_for(stopping.is_some());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    SIGNALS => {
                        if stopping.is_none() {
                            stopping = Some(Instant::now());
                            self.begin_shutdown();
                        }
                    }
                    token => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            // A short read drains the socket (TCP), so one read is enough
                            // unless the client has closed: then read on to see the end.
                            let drain = event.is_read_closed() || event.is_error();
                            self.on_readable(token, &mut read_buf, drain, &mut finished);
                        }
                        if event.is_writable() {
                            self.write(token);
                        }
                    }
                }
            }
            if stopping.is_none() && self.info.node.has_stopped() {
                // A storage error stopped the node: this process serves no more. Requests in
                // flight still go where the router says (another node may lead); then it exits
                // with the error, for a supervisor to see.
                log::error!("the node has stopped: no new clients; exiting");
                stopping = Some(Instant::now());
                self.begin_shutdown();
            }
            if self.accept_later {
                self.accept_later = false;
                self.accept();
            }
            self.ops.on_done(self.done.take(), &mut finished);
            self.ops.on_timers(Instant::now(), &mut finished);
            self.ops.on_leader(&mut finished);
            self.deliver(&mut finished);
            self.write_all();
            self.resume_reading(&mut read_buf, &mut finished);
            self.deliver(&mut finished);
            self.write_all();
            if let Some(since) = stopping {
                let idle = self.ops.len() == 0 && self.conns.values().all(|c| c.queued() == 0);
                if idle || since.elapsed() > SHUTDOWN_GRACE {
                    return Ok(());
                }
            }
        }
    }

    fn sleep_for(&self, stopping: bool) -> Duration {
        // Often enough to notice a change of leader (fast failover of forwarded requests).
        let mut sleep = Duration::from_millis(if stopping { 5 } else { 10 });
        if let Some(t) = self.ops.next_timer() {
            sleep = sleep.min(t.saturating_duration_since(Instant::now()));
        }
        sleep
    }

    fn begin_shutdown(&mut self) {
        // Drain the signal pipe.
        let mut buf = [0_u8; 64];
        while matches!(self.signals.read(&mut buf), Ok(n) if n > 0) {}
        log::info!(
            "shutting down: no new clients; finishing {} requests in flight",
            self.ops.len()
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for conn in self.conns.values_mut() {
            conn.closing = true;
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    self.counters.connections_received += 1;
                    let _ = stream.set_nodelay(true);
                    if self.conns.len() >= self.ctx.max_clients {
                        self.counters.rejected += 1;
                        let _ = stream.write(b"-ERR max number of clients reached\r\n");
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let id = self.next_conn_id;
                    self.next_conn_id += 1;
                    self.conns.insert(
                        token,
                        Conn {
                            stream,
                            addr,
                            id,
                            name: None,
                            rbuf: Vec::new(),
                            rpos: 0,
                            wbuf: Vec::new(),
                            wpos: 0,
                            want_write: false,
                            replies: VecDeque::new(),
                            first_slot: 0,
                            ready_bytes: 0,
                            session: Session::random(),
                            closing: false,
                            read_closed: false,
                            resp3: false,
                            paused: false,
                            tail_incomplete: false,
                            need: 0,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of file descriptors: the pending connections stay in the backlog.
                    log::warn!("accepting a client failed: {e}");
                    self.accept_later = true;
                    return;
                }
            }
        }
    }

    fn on_readable(
        &mut self,
        token: Token,
        read_buf: &mut [u8],
        drain: bool,
        finished: &mut Vec<Finished>,
    ) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.open_for_requests() {
            loop {
                match conn.stream.read(read_buf) {
                    Ok(0) => {
                        conn.read_closed = true;
                        break;
                    }
                    Ok(n) => {
                        conn.rbuf
                            .extend_from_slice(read_buf.get(..n).unwrap_or_default());
                        // Parse before reading much more: a client that pipelines without end
                        // is held to the limits above.
                        if conn.rbuf.len() - conn.rpos > self.limits.max_bulk + READ_CHUNK {
                            conn.paused = true;
                            break;
                        }
                        if n < read_buf.len() && !drain {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        return self.close(token);
                    }
                }
            }
        } else if !conn.closing && !conn.read_closed {
            conn.paused = true;
        }
        self.parse(token, finished);
        self.after_io(token);
    }

    /// Parses and starts the requests buffered on `token`, while there is room for them.
    fn parse(&mut self, token: Token, finished: &mut Vec<Finished>) {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            if conn.closing {
                break;
            }
            if !conn.room() {
                conn.paused = true;
                break;
            }
            let pending = conn.rbuf.get(conn.rpos..).unwrap_or_default();
            if pending.is_empty() || pending.len() < conn.need {
                conn.tail_incomplete = !pending.is_empty();
                break;
            }
            match resp::parse_request(pending, &self.limits) {
                Ok(Parsed::Incomplete { need }) => {
                    conn.need = need;
                    conn.tail_incomplete = true;
                    break;
                }
                Ok(Parsed::Request(args, used)) => {
                    conn.rpos += used;
                    conn.need = 0;
                    conn.tail_incomplete = false;
                    if !args.is_empty() {
                        self.counters.commands += 1;
                        self.start(token, args, finished);
                    }
                }
                Err(e) => {
                    let mut out = Vec::new();
                    Reply::new(&mut out).error(&format!("ERR Protocol error: {e}"));
                    conn.push_reply(Some(out));
                    conn.closing = true;
                    log::debug!("client {} ({}): protocol error: {e}", conn.id, conn.addr);
                    break;
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(&token) {
            if conn.rpos == conn.rbuf.len() {
                conn.rbuf.clear();
                conn.rpos = 0;
            } else if conn.rpos > READ_CHUNK {
                conn.rbuf.drain(..conn.rpos);
                conn.rpos = 0;
            }
        }
    }

    /// Starts one request from `token`.
    fn start(&mut self, token: Token, args: Vec<Vec<u8>>, finished: &mut Vec<Finished>) {
        let command = commands::parse(args, &self.ctx);
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let kind = match command {
            Command::Now(reply) => {
                conn.push_reply(Some(reply));
                return;
            }
            Command::Close(reply) => {
                conn.push_reply(Some(reply));
                conn.closing = true;
                return;
            }
            Command::SetName(name) => {
                conn.name = Some(name);
                let mut out = Vec::new();
                Reply::new(&mut out).ok();
                conn.push_reply(Some(out));
                return;
            }
            Command::GetName => {
                let mut out = Vec::new();
                Reply::with_protocol(&mut out, conn.resp3)
                    .bulk(conn.name.as_deref().map(str::as_bytes));
                conn.push_reply(Some(out));
                return;
            }
            Command::ClientId => {
                let mut out = Vec::new();
                Reply::new(&mut out).integer(i64::try_from(conn.id).unwrap_or(i64::MAX));
                conn.push_reply(Some(out));
                return;
            }
            Command::Hello { resp3, name } => {
                if let Some(resp3) = resp3 {
                    conn.resp3 = resp3;
                }
                if name.is_some() {
                    conn.name = name;
                }
                let (id, resp3, role) = (conn.id, conn.resp3, self.info.node.observed().role);
                let reply = info::hello(self.info.id, id, role, resp3);
                if let Some(conn) = self.conns.get_mut(&token) {
                    conn.push_reply(Some(reply));
                }
                return;
            }
            Command::ConfigGet(settings) => {
                let mut out = Vec::new();
                let mut r = Reply::with_protocol(&mut out, conn.resp3);
                r.map(settings.len());
                for (k, v) in &settings {
                    r.bulk(Some(k.as_bytes()));
                    r.bulk(Some(v.as_bytes()));
                }
                conn.push_reply(Some(out));
                return;
            }
            Command::Write { command, stamp } => {
                let own = stamp.is_none();
                let stamp = stamp.unwrap_or_else(|| conn.session.begin());
                let kind = OpKind::write(command, stamp, own);
                if kind.encoded_len() > self.ctx.max_entry_bytes {
                    // The log would refuse it; refused here, it is not forwarded either.
                    if own {
                        conn.session.finish(stamp.seq);
                    }
                    let mut out = Vec::new();
                    Reply::new(&mut out)
                        .error("ERR the command is larger than the maximum entry size");
                    conn.push_reply(Some(out));
                    return;
                }
                kind
            }
            Command::Read(query) => OpKind::Read(query),
            Command::ReadLocal(query) => OpKind::ReadLocal(query),
            Command::Info(sections) => OpKind::Status(StatusFor::Info(sections)),
            Command::Members => OpKind::Status(StatusFor::Members),
            Command::Transfer(to) => OpKind::Transfer(to),
            Command::Change(change) => OpKind::Change(change),
            Command::AddLearner { id, addr } => OpKind::AddLearner { id, addr },
        };
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let slot = conn.push_reply(None);
        self.ops.submit(token, slot, kind, finished);
    }

    /// Puts finished replies in their slots.
    fn deliver(&mut self, finished: &mut Vec<Finished>) {
        let mut again = Vec::new();
        for f in finished.drain(..) {
            let Some(conn) = self.conns.get_mut(&f.conn) else {
                continue;
            };
            if let Some(seq) = f.seq {
                conn.session.finish(seq);
            }
            let reply = match f.body {
                FinishedBody::Reply(reply) => reply,
                FinishedBody::Answer(answer) => super::ops::render(&answer, conn.resp3),
                FinishedBody::Resubmit(bytes) => {
                    let Ok(request) = raft_std::kv::decode_request(&bytes) else {
                        continue;
                    };
                    log::info!(
                        "client {} ({}): session expired; continuing with a new one",
                        conn.id,
                        conn.addr
                    );
                    conn.session = Session::random();
                    let stamp = conn.session.begin();
                    let kind = OpKind::write(request.command, stamp, true);
                    self.ops.resubmit_at(f.conn, f.slot, kind, &mut again);
                    continue;
                }
                FinishedBody::Status(status, what) => match what {
                    StatusFor::Info(sections) => info::info(
                        &self.info,
                        &status,
                        &sections,
                        &self.counters,
                        self.conns.len(),
                    ),
                    StatusFor::Members => info::members(&self.info, &status),
                },
            };
            let Some(conn) = self.conns.get_mut(&f.conn) else {
                continue;
            };
            let Some(index) = f.slot.checked_sub(conn.first_slot) else {
                continue;
            };
            if let Some(slot) = usize::try_from(index)
                .ok()
                .and_then(|i| conn.replies.get_mut(i))
            {
                conn.ready_bytes += reply.len();
                *slot = Some(reply);
            }
            if conn.output() > HARD_OUTPUT {
                log::warn!(
                    "client {} ({}) closed: over {} MiB of replies waiting (it does not read them)",
                    conn.id,
                    conn.addr,
                    HARD_OUTPUT >> 20
                );
                let token = f.conn;
                self.close(token);
            }
        }
        // Resubmitted writes that finished at once (say, the node has stopped).
        if !again.is_empty() {
            finished.append(&mut again);
            self.deliver(finished);
        }
    }

    /// Reads and parses what connections held back while they were full, now that they may
    /// have room.
    fn resume_reading(&mut self, read_buf: &mut [u8], finished: &mut Vec<Finished>) {
        let paused: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.paused && !c.closing && c.room())
            .map(|(&t, _)| t)
            .collect();
        for token in paused {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            conn.paused = false;
            if conn.read_closed {
                // Nothing more comes from the socket, but whole requests may wait in the buffer.
                self.parse(token, finished);
                self.after_io(token);
            } else {
                self.on_readable(token, read_buf, true, finished);
            }
        }
    }

    /// After reading: queue what is ready, write, close if done.
    fn after_io(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.drain_replies();
        }
        self.write(token);
    }

    fn write_all(&mut self) {
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.drain_replies();
                if conn.queued() == 0 && !conn.done() {
                    continue;
                }
            }
            self.write(token);
        }
    }

    fn write(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        while conn.wpos < conn.wbuf.len() {
            let Some(rest) = conn.wbuf.get(conn.wpos..) else {
                break;
            };
            match conn.stream.write(rest) {
                Ok(0) => return self.close(token),
                Ok(n) => conn.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(token),
            }
        }
        if conn.wpos == conn.wbuf.len() {
            conn.wbuf.clear();
            conn.wpos = 0;
            if conn.done() {
                return self.close(token);
            }
        } else if conn.wpos > (1 << 20) {
            conn.wbuf.drain(..conn.wpos);
            conn.wpos = 0;
        }
        let want = conn.queued() > 0;
        if want != conn.want_write {
            conn.want_write = want;
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, interest)
                .is_err()
            {
                self.close(token);
            }
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }
}
