//! The peer event loop: one thread, one `mio::Poll`, every peer connection of a node.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use raft_core::{Message, NodeId, SplitMix64};
use raft_std::transport::InboxSender;

use super::connection::{Bad, Close, Conn, Peer, Phase, Side};
use super::{NetCounters, PeerInfo, PeerNetConfig, Shared};
use crate::frame::{self, FrameDecoder, Hello, PeerFrame};

mod handshake;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 << 10;
/// The longest the loop sleeps, so that handshake deadlines and dials are looked at.
const MAX_SLEEP: Duration = Duration::from_millis(100);

pub(super) struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    inbox: InboxSender,
    config: PeerNetConfig,
    advertise: String,
    decoder: FrameDecoder,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    peers: BTreeMap<NodeId, Peer>,
    counters: NetCounters,
    /// Something `info` shows changed since it was last published.
    dirty: bool,
    /// The generator of backoff jitter.
    jitter: SplitMix64,
}

/// Gives up a connection whose sent data stays unacknowledged for `timeout`
/// (`TCP_USER_TIMEOUT`); see [`super::PeerNetConfig::unacked_timeout`]. Where the system has no such
/// option, TCP's own (much longer) limits apply.
fn set_unacked_timeout(stream: &TcpStream, timeout: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
        log::debug!("TCP_USER_TIMEOUT not set: {e}");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
    let _ = (stream, timeout);
}

impl EventLoop {
    /// Binds the listener and builds the loop (not yet running).
    pub(super) fn bind(
        config: PeerNetConfig,
        inbox: InboxSender,
    ) -> io::Result<(Self, Waker, SocketAddr)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let mut listener = super::listen(config.listen)?;
        let local = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let now = Instant::now();
        let peers = config
            .peers
            .iter()
            .filter(|(id, _)| **id != config.id)
            .map(|(&id, &addr)| (id, Peer::new(id, addr, now)))
            .collect();
        let advertise = config.advertise.unwrap_or(local).to_string();
        let event_loop = Self {
            poll,
            listener,
            inbox,
            decoder: FrameDecoder::new(config.max_frame),
            advertise,
            conns: HashMap::new(),
            next_token: 2,
            peers,
            counters: NetCounters::default(),
            dirty: true,
            jitter: SplitMix64::new(config.id.get()),
            config,
        };
        Ok((event_loop, waker, local))
    }

    pub(super) fn run(mut self, shared: &Shared) {
        let mut events = Events::with_capacity(1024);
        let mut read_buf = vec![0_u8; READ_CHUNK];
        loop {
            let timeout = self.sleep_for();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("peer event loop: poll failed: {e}");
                return;
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => {
                        if event.is_writable() {
                            self.on_writable(token);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            // A short read drains the socket (TCP), so one read is enough
                            // unless the peer has closed: then read on to see the end.
                            let drain = event.is_read_closed() || event.is_error();
                            self.on_readable(token, &mut read_buf, drain, shared);
                        }
                    }
                }
            }
            shared.woken.store(false, Ordering::Release);
            self.take_outbox(shared);
            self.dial_due();
            self.expire_handshakes();
            self.write_all();
            self.publish(shared);
        }
    }

    /// How long to sleep: until the next dial is due, at most [`MAX_SLEEP`].
    fn sleep_for(&self) -> Duration {
        let now = Instant::now();
        self.peers
            .values()
            .filter(|p| p.conn.is_none())
            .map(|p| p.retry_at.saturating_duration_since(now))
            .min()
            .map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP))
    }

    fn token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    set_unacked_timeout(&stream, self.config.unacked_timeout);
                    let token = self.token();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        log::warn!("cannot register peer connection from {remote}: {e}");
                        continue;
                    }
                    let deadline = Instant::now() + self.config.handshake_timeout;
                    self.conns.insert(
                        token,
                        Conn::new(stream, remote, Side::Inbound { peer: None }, Some(deadline)),
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of file descriptors, say: try again on the next event.
                    log::warn!("accepting a peer connection failed: {e}");
                    return;
                }
            }
        }
    }

    /// Dials every peer without a connection whose backoff has passed.
    fn dial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.conn.is_none() && p.retry_at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let Some(addr) = self.peers.get(&id).map(|p| p.addr) else {
                continue;
            };
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    // Raft's messages are small and latency-bound: no Nagle delay (with the
                    // peer's delayed ACK it holds a message back for 40 ms).
                    let _ = stream.set_nodelay(true);
                    set_unacked_timeout(&stream, self.config.unacked_timeout);
                    let token = self.token();
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                        self.dial_failed(id, &e.to_string());
                        continue;
                    }
                    let deadline = now + self.config.connect_timeout;
                    let mut conn =
                        Conn::new(stream, addr, Side::Outbound { peer: id }, Some(deadline));
                    conn.phase = Phase::Connecting;
                    conn.want_write = true;
                    self.conns.insert(token, conn);
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.conn = Some(token);
                    }
                }
                Err(e) => self.dial_failed(id, &e.to_string()),
            }
        }
    }

    /// Schedules the next dial of `id` after a failure, and logs the first of a run.
    fn dial_failed(&mut self, id: NodeId, why: &str) {
        let draw = self.jitter.below(1000);
        let (min, max) = (self.config.backoff_min, self.config.backoff_max);
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let was_ready = p.ready;
        p.conn = None;
        p.ready = false;
        let exp = min.saturating_mul(1 << p.failures.min(16)).min(max);
        p.failures = p.failures.saturating_add(1);
        // 80% to 120% of the pause, so that nodes restarted together do not dial in step.
        let jitter = 0.8 + draw as f64 / 2500.0;
        p.retry_at = Instant::now() + exp.mul_f64(jitter);
        if was_ready {
            p.info.disconnects += 1;
            self.dirty = true;
        }
        if !p.down_logged {
            p.down_logged = true;
            log::warn!(
                "node {}: peer {id} ({}) unreachable: {why}; retrying with backoff",
                self.config.id,
                p.addr
            );
        } else {
            log::debug!(
                "node {}: peer {id} still unreachable: {why}",
                self.config.id
            );
        }
    }

    fn on_writable(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.phase == Phase::Connecting {
            // The connect finished: in error, or with a peer address.
            match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => return self.close(token, &Close::lost(e.to_string())),
                Ok(None) => {}
            }
            match conn.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.close(token, &Close::lost(e.to_string())),
            }
            let Side::Outbound { peer } = conn.side else {
                return;
            };
            conn.phase = Phase::Handshake;
            let hello = PeerFrame::Hello(Hello {
                cluster: self.config.cluster.clone(),
                from: self.config.id,
                to: peer,
                addr: self.advertise.clone(),
            });
            frame::encode(&hello, &mut conn.wbuf);
        }
        self.write(token);
    }

    /// Writes what `token` has queued, until the socket would block.
    fn write(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.phase == Phase::Connecting {
            return;
        }
        while conn.wpos < conn.wbuf.len() {
            let Some(rest) = conn.wbuf.get(conn.wpos..) else {
                break;
            };
            match conn.stream.write(rest) {
                Ok(0) => return self.close(token, &Close::lost("connection closed")),
                Ok(n) => conn.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(token, &Close::lost(e.to_string())),
            }
        }
        if conn.wpos == conn.wbuf.len() {
            conn.wbuf.clear();
            conn.wpos = 0;
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
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, interest)
            {
                self.close(token, &Close::lost(e.to_string()));
            }
        }
    }

    fn write_all(&mut self) {
        let tokens: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.queued() > 0 && !c.want_write && c.phase != Phase::Connecting)
            .map(|(&t, _)| t)
            .collect();
        for token in tokens {
            self.write(token);
        }
    }

    fn on_readable(&mut self, token: Token, read_buf: &mut [u8], drain: bool, shared: &Shared) {
        let mut closed = None;
        {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            loop {
                match conn.stream.read(read_buf) {
                    Ok(0) => {
                        closed = Some(Close::lost("closed by the peer"));
                        break;
                    }
                    Ok(n) => {
                        conn.rbuf
                            .extend_from_slice(read_buf.get(..n).unwrap_or_default());
                        if n < read_buf.len() && !drain {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        closed = Some(Close::lost(e.to_string()));
                        break;
                    }
                }
            }
        }
        // Decode and handle what arrived, even from a connection that then closed.
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            let pending = conn.rbuf.get(conn.rpos..).unwrap_or_default();
            match self.decoder.decode(pending) {
                Ok(Some((frame, used))) => {
                    conn.rpos += used;
                    if let Err(close) = self.on_frame(token, frame, shared) {
                        return self.close(token, &close);
                    }
                }
                Ok(None) => break,
                Err(e) => return self.close(token, &Close::bad(e.to_string())),
            }
        }
        if let Some(conn) = self.conns.get_mut(&token) {
            if conn.rpos == conn.rbuf.len() {
                conn.rbuf.clear();
                conn.rpos = 0;
            } else if conn.rpos > 0 {
                conn.rbuf.drain(..conn.rpos);
                conn.rpos = 0;
            }
        }
        if let Some(close) = closed {
            self.close(token, &close);
        }
    }

    /// Handles one frame from `token`.
    fn on_frame(&mut self, token: Token, frame: PeerFrame, shared: &Shared) -> Result<(), Close> {
        let Some(conn) = self.conns.get(&token) else {
            return Ok(());
        };
        let (side, phase, remote) = (conn.side, conn.phase, conn.remote);
        match (side, phase, frame) {
            (Side::Inbound { .. }, Phase::Handshake, PeerFrame::Hello(hello)) => {
                self.on_hello(token, remote, &hello)
            }
            (Side::Outbound { peer }, Phase::Handshake, PeerFrame::Welcome { cluster, id }) => {
                if id != peer || cluster != self.config.cluster {
                    return Err(Close::refused(format!(
                        "{remote} answered as node {id} of cluster '{cluster}', expected node \
                         {peer} of '{}'",
                        self.config.cluster
                    )));
                }
                self.on_ready(token, peer);
                Ok(())
            }
            (Side::Outbound { peer }, _, PeerFrame::Refused { reason }) => Err(Close::refused(
                format!("peer {peer} ({remote}) refused this node: {reason}"),
            )),
            (Side::Inbound { peer: Some(peer) }, Phase::Ready, PeerFrame::Raft(msg)) => {
                self.on_message(peer, msg)
            }
            (Side::Inbound { peer: Some(peer) }, Phase::Ready, PeerFrame::App(bytes)) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.info.frames_in += 1;
                }
                let handler = shared
                    .app
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if let Some(handler) = handler {
                    handler(peer, bytes);
                }
                Ok(())
            }
            (_, _, frame) => Err(Close::bad(format!(
                "unexpected {} frame",
                frame_name(&frame)
            ))),
        }
    }

    /// A Raft message from the peer `from` names as itself.
    fn on_message(&mut self, from: NodeId, msg: Message) -> Result<(), Close> {
        if msg.from != from || msg.to != self.config.id {
            return Err(Close::bad(format!(
                "peer {from} sent a message from {} to {}",
                msg.from, msg.to
            )));
        }
        if let Some(p) = self.peers.get_mut(&from) {
            p.info.frames_in += 1;
        }
        // A node that is gone (shutting down) drops it, as a network would.
        let _ = self.inbox.deliver(msg);
        Ok(())
    }

    fn close(&mut self, token: Token, close: &Close) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        match close.bad {
            Some(Bad::Input) => self.counters.bad_input += 1,
            Some(Bad::Refused) => self.counters.refused += 1,
            None => {}
        }
        if close.bad.is_some() {
            self.dirty = true;
        }
        match conn.side {
            Side::Outbound { peer } => {
                if close.bad.is_some() {
                    log::log!(close.level, "node {}: {}", self.config.id, close.why);
                }
                if self.peers.get(&peer).is_some_and(|p| p.conn == Some(token)) {
                    self.dial_failed(peer, &close.why);
                }
            }
            Side::Inbound { peer } => {
                let who =
                    peer.map_or_else(|| "an unnamed peer".to_owned(), |p| format!("peer {p}"));
                log::log!(
                    close.level,
                    "node {}: closed the connection from {who} at {}: {}",
                    self.config.id,
                    conn.remote,
                    close.why
                );
            }
        }
    }

    /// Moves what the node thread and the server queued into the connections' buffers, and
    /// applies address book changes.
    fn take_outbox(&mut self, shared: &Shared) {
        let (raft, app, changes) = {
            let mut out = shared.outbox();
            (
                std::mem::take(&mut out.raft),
                std::mem::take(&mut out.app),
                std::mem::take(&mut out.peer_changes),
            )
        };
        for (id, addr) in changes {
            self.change_peer(id, addr);
        }
        for msg in raft {
            let to = msg.to;
            self.queue(to, &PeerFrame::Raft(msg));
        }
        for (to, bytes) in app {
            self.queue(to, &PeerFrame::App(bytes));
        }
        let ready = self
            .peers
            .iter()
            .filter(|(_, p)| p.ready)
            .map(|(&id, _)| id);
        let mut out = shared.outbox();
        if out.ready.len() != ready.clone().count()
            || ready.clone().any(|id| !out.ready.contains(&id))
        {
            out.ready = ready.collect();
        }
    }

    /// Encodes `frame` into the connection to `to`, if it is up and not too far behind.
    fn queue(&mut self, to: NodeId, frame: &PeerFrame) {
        let max_queued = self.config.max_queued;
        let Some(p) = self.peers.get_mut(&to) else {
            return;
        };
        let Some(conn) = p
            .conn
            .filter(|_| p.ready)
            .and_then(|t| self.conns.get_mut(&t))
        else {
            return;
        };
        if conn.queued() > max_queued {
            p.info.dropped += 1;
            return;
        }
        let start = conn.wbuf.len();
        frame::encode(frame, &mut conn.wbuf);
        // Never send what the peer would refuse (and close the connection for): drop it, as a
        // lossy network would.
        if conn.wbuf.len() - start > self.config.max_frame {
            conn.wbuf.truncate(start);
            p.info.dropped += 1;
            log::warn!(
                "node {}: a frame for peer {to} is over the {} byte maximum: dropped",
                self.config.id,
                self.config.max_frame
            );
            return;
        }
        p.info.frames_out += 1;
    }

    fn change_peer(&mut self, id: NodeId, addr: Option<SocketAddr>) {
        if id == self.config.id {
            return;
        }
        let old = self.peers.get(&id).map(|p| (p.addr, p.conn));
        match (old, addr) {
            (Some((was, _)), Some(addr)) if was == addr => {}
            (old, addr) => {
                if let Some((_, Some(token))) = old {
                    self.close(token, &Close::lost("the peer's address changed"));
                }
                match addr {
                    Some(addr) => {
                        log::info!("node {}: peer {id} is at {addr}", self.config.id);
                        self.peers.insert(id, Peer::new(id, addr, Instant::now()));
                    }
                    None => {
                        log::info!("node {}: forgot peer {id}", self.config.id);
                        self.peers.remove(&id);
                    }
                }
                self.dirty = true;
            }
        }
    }

    fn publish(&mut self, shared: &Shared) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let peers = self
            .peers
            .values()
            .map(|p| PeerInfo {
                connected: p.ready,
                ..p.info.clone()
            })
            .collect();
        *shared.info.lock().unwrap_or_else(PoisonError::into_inner) = (peers, self.counters);
    }
}

fn frame_name(frame: &PeerFrame) -> &'static str {
    match frame {
        PeerFrame::Hello(_) => "Hello",
        PeerFrame::Welcome { .. } => "Welcome",
        PeerFrame::Refused { .. } => "Refused",
        PeerFrame::Raft(_) => "Raft",
        PeerFrame::App(_) => "App",
    }
}
