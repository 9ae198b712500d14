//! Requests in flight: each client command that needs the cluster is an [`Op`], sent to the
//! leader (this node's own, or another's through [forwarding](super::forward)), retried where
//! the [`Router`] says, and finished exactly once with the reply the client gets.
//!
//! Writes carry a session stamp, so every retry (after a leader change, a lost forward, a
//! timeout) is safe: the store applies each write once. Membership changes and transfers are
//! not retried once their outcome is unknown.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mio::{Token, Waker};
use raft_core::{Change, NodeId, Payload, Role, Status};
use raft_std::client::{
    Completion, Outcome, RequestError, Retry, Route, Router, Stamp, Uncertainty,
};
use raft_std::kv::{KvCommand, KvError, KvQuery, KvRequest, KvResponse};
use raft_std::runtime::RaftNode;

use super::forward::{self, Answer, ForwardBody, ForwardFrame, ReadAt};
use super::machine::ServerMachine;
use crate::resp::Reply;
use crate::transport::PeerNet;

/// Bits of a forwarded request's id that number the attempt.
const ATTEMPT_BITS: u32 = 20;

/// A finished request, for the client loop.
pub(crate) struct Finished {
    pub(crate) conn: Token,
    pub(crate) slot: u64,
    /// The session sequence number to finish, for a write stamped by the connection's session.
    pub(crate) seq: Option<u64>,
    pub(crate) body: FinishedBody,
}

pub(crate) enum FinishedBody {
    /// The RESP reply (an error: the same in RESP2 and RESP3).
    Reply(Vec<u8>),
    /// The answer, for the client loop to write in the connection's protocol.
    Answer(Answer),
    /// The write (encoded) was refused because the connection's session expired, and never
    /// applied: stamp it with a new session and submit it again, for the same slot.
    Resubmit(Payload),
    /// The node's status, for the client loop to render.
    Status(Box<Status>, StatusFor),
}

/// What a status request is for.
#[derive(Clone, Debug)]
pub(crate) enum StatusFor {
    Info(Vec<String>),
    Members,
}

/// What a request does.
pub(crate) enum OpKind {
    /// An encoded, stamped write; `own` when the connection's session stamped it.
    Write {
        bytes: Payload,
        stamp: Stamp,
        own: bool,
    },
    Read(KvQuery),
    Transfer(NodeId),
    Change(Change),
    /// Record `addr` for `id` (a write), then add `id` as a learner (at the leader).
    AddLearner {
        id: NodeId,
        addr: SocketAddr,
    },
    /// This node's own status (never routed).
    Status(StatusFor),
    /// A read of this node's own state machine (never routed).
    ReadLocal(KvQuery),
}

impl OpKind {
    /// A write of `command` with `stamp`.
    pub(crate) fn write(command: KvCommand, stamp: Stamp, own: bool) -> Self {
        Self::Write {
            bytes: KvRequest::stamped(stamp, command).encode().into(),
            stamp,
            own,
        }
    }

    /// The bytes a write puts in the log (0 for anything else).
    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            Self::Write { bytes, .. } => bytes.len(),
            _ => 0,
        }
    }

    /// Whether it changes the cluster's state (a write, a transfer, a membership change), as
    /// opposed to reading it.
    const fn changes_state(&self) -> bool {
        !matches!(self, Self::Read(_) | Self::ReadLocal(_) | Self::Status(_))
    }

    /// Whether sending it again can never apply it twice.
    const fn idempotent(&self) -> bool {
        match self {
            Self::Write { .. } | Self::Read(_) | Self::Status(_) | Self::ReadLocal(_) => true,
            Self::AddLearner { .. } | Self::Transfer(_) | Self::Change(_) => false,
        }
    }

    /// The body to send for the current step.
    fn body(&self) -> Option<ForwardBody> {
        Some(match self {
            Self::Write { bytes, .. } => ForwardBody::Write(bytes.as_bytes().to_vec()),
            Self::Read(q) => ForwardBody::Read(q.clone()),
            Self::Transfer(to) => ForwardBody::Transfer(*to),
            Self::Change(c) => ForwardBody::Change(*c),
            Self::AddLearner { id, addr } => ForwardBody::AddLearner {
                id: *id,
                addr: addr.to_string(),
            },
            Self::Status(_) | Self::ReadLocal(_) => return None,
        })
    }
}

struct Op {
    conn: Token,
    slot: u64,
    kind: OpKind,
    deadline: Instant,
    tries: u32,
    attempt: u64,
    /// Where the current attempt went; `None` while it waits to be sent again.
    at: Option<NodeId>,
    /// An earlier attempt may have been applied (its outcome is unknown): if the request fails
    /// in the end, its outcome is unknown too.
    uncertain: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum TimerKind {
    /// A forwarded attempt got no reply in time.
    AttemptTimeout,
    /// Send the op again, to this node.
    Resend(NodeId),
}

/// Outcomes reported from other threads (the node thread's completions, forwarded replies).
pub(crate) struct DoneQueue {
    items: Mutex<Vec<Done>>,
    waker: Waker,
    woken: AtomicBool,
}

pub(crate) enum Done {
    /// Op, attempt, the node that answered a forwarded attempt (`None` for this node), result.
    Answer(u64, u64, Option<NodeId>, Result<Answer, RequestError>),
    Status(u64, Result<Box<Status>, RequestError>),
}

impl DoneQueue {
    pub(crate) fn new(waker: Waker) -> Self {
        Self {
            items: Mutex::new(Vec::new()),
            waker,
            woken: AtomicBool::new(false),
        }
    }

    fn push(&self, done: Done) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(done);
        if !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// A reply to a forwarded request, from the peer transport.
    pub(crate) fn forwarded(&self, from: NodeId, id: u64, result: Result<Answer, RequestError>) {
        self.push(Done::Answer(
            id >> ATTEMPT_BITS,
            id & ((1 << ATTEMPT_BITS) - 1),
            Some(from),
            result,
        ));
    }

    /// Takes what is queued; the loop calls it after every wake-up.
    pub(crate) fn take(&self) -> Vec<Done> {
        self.woken.store(false, Ordering::Release);
        std::mem::take(&mut *self.items.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Every request in flight from this node's clients.
pub(crate) struct Ops {
    me: NodeId,
    node: RaftNode<ServerMachine>,
    net: Arc<PeerNet>,
    done: Arc<DoneQueue>,
    router: Router,
    ops: HashMap<u64, Op>,
    next: u64,
    timers: BinaryHeap<Reverse<(Instant, u64, u64, TimerKind)>>,
    request_timeout: Duration,
    attempt_timeout: Duration,
    /// The last leader this node knew of (kept while it knows of none, during an election).
    last_leader: Option<NodeId>,
    /// Reads at a follower that knows its leader are served here, at a read index the leader
    /// confirms (`raft_core::Config::follower_reads`), rather than forwarded.
    follower_reads: bool,
    /// Requests other than reads in flight, per connection: a read behind one of its own
    /// connection's writes is not served here but follows the write to the leader, so that a
    /// pipelined `SET` then `GET` reads what it wrote.
    changes_in_flight: HashMap<Token, usize>,
}

impl Ops {
    pub(crate) fn new(
        node: RaftNode<ServerMachine>,
        net: Arc<PeerNet>,
        done: Arc<DoneQueue>,
        nodes: impl IntoIterator<Item = NodeId>,
        request_timeout: Duration,
        attempt_timeout: Duration,
        pause: Duration,
    ) -> Self {
        Self {
            me: node.id(),
            node,
            net,
            done,
            router: Router::new(nodes).with_pause(pause),
            ops: HashMap::new(),
            // A random start, so that answers meant for this process's previous life (forwarded
            // before a restart) do not match the ids of this one.
            next: (raft_std::client::ClientId::random().0 >> (64 - 40)).max(1),
            timers: BinaryHeap::new(),
            request_timeout,
            attempt_timeout,
            last_leader: None,
            follower_reads: false,
            changes_in_flight: HashMap::new(),
        }
    }

    /// With `on`, a follower that knows its leader serves reads itself (see `follower_reads`).
    pub(crate) const fn with_follower_reads(mut self, on: bool) -> Self {
        self.follower_reads = on;
        self
    }

    /// Requests in flight.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// When the next timer is due.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(t)| t.0)
    }

    /// Starts a request for the reply in `slot` of `conn`.
    pub(crate) fn submit(&mut self, conn: Token, slot: u64, kind: OpKind, out: &mut Vec<Finished>) {
        // Deliberately broken, for the chaos runner's teeth: a follower answers reads itself.
        #[cfg(feature = "bug-follower-local-read")]
        let kind = match kind {
            OpKind::Read(q) if self.node.observed().role != Role::Leader => OpKind::ReadLocal(q),
            kind => kind,
        };
        let id = self.next;
        self.next += 1;
        if kind.changes_state() {
            *self.changes_in_flight.entry(conn).or_default() += 1;
        }
        let status = match &kind {
            OpKind::Status(what) => Some(what.clone()),
            _ => None,
        };
        self.ops.insert(
            id,
            Op {
                conn,
                slot,
                kind,
                deadline: Instant::now() + self.request_timeout,
                tries: 0,
                attempt: 0,
                at: None,
                uncertain: false,
            },
        );
        if status.is_some() {
            let done = Arc::clone(&self.done);
            self.node.status_with(Completion::new(move |r| {
                done.push(Done::Status(id, r.map(Box::new)));
            }));
            return;
        }
        if let Some(OpKind::ReadLocal(query)) = self.ops.get_mut(&id).map(|op| {
            op.attempt = 1;
            op.at = Some(self.me);
            &op.kind
        }) {
            let done = Arc::clone(&self.done);
            self.node.read_local_with(
                query.clone(),
                Completion::new(move |r| done.push(Done::Answer(id, 1, None, r.map(Answer::Kv)))),
            );
            return;
        }
        let target = if self.serves_reads_here(id) {
            self.me
        } else {
            self.target()
        };
        self.send(id, target, out);
    }

    /// Whether op `id` is a read this node serves itself: with follower reads on, a follower
    /// that knows its leader asks it for a read index and answers from its own state machine
    /// once it has applied that far (a leader serves its reads itself anyway).
    fn serves_reads_here(&self, id: u64) -> bool {
        let Some(op) = self.ops.get(&id) else {
            return false;
        };
        if !matches!(op.kind, OpKind::Read(_)) || !self.follower_reads_for(op.conn) {
            return false;
        }
        let observed = self.node.observed();
        observed.role == Role::Follower && observed.leader.is_some()
    }

    /// Whether a read of `conn` may be a follower read: follower reads are on, and none of the
    /// connection's writes is in flight (a read behind one must follow it to the leader).
    fn follower_reads_for(&self, conn: Token) -> bool {
        self.follower_reads && !self.changes_in_flight.contains_key(&conn)
    }

    /// Where a new attempt goes: the leader this node knows of, else the router's pick.
    fn target(&mut self) -> NodeId {
        let leader = self.node.observed().leader;
        if leader.is_some() {
            self.router.set_leader(leader);
        }
        leader.or_else(|| self.router.target()).unwrap_or(self.me)
    }

    /// Sends op `id` to `to`: runs it on this node, or forwards it.
    fn send(&mut self, id: u64, to: NodeId, out: &mut Vec<Finished>) {
        let now = Instant::now();
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        if now >= op.deadline {
            return self.fail(id, &RequestError::Timeout, out);
        }
        op.attempt += 1;
        op.tries += 1;
        op.at = Some(to);
        let attempt = op.attempt;
        let op_conn = op.conn;
        // An attempt that may be sent again gets a share of the time; one that may not (a
        // membership change, a transfer) gets all of it.
        let remaining = op.deadline.saturating_duration_since(now);
        let timeout = if op.kind.idempotent() {
            remaining.min(self.attempt_timeout)
        } else {
            remaining
        };
        let Some(body) = op.kind.body() else {
            return;
        };
        if to == self.me && self.node.has_stopped() {
            // This node stopped (a storage error): only another node can serve it.
            let error = RequestError::Stopped(raft_std::error::NodeStopped { cause: None });
            return match self.router.unreachable(self.me) {
                Route::After(_, next) | Route::Now(next) if next == self.me => {
                    self.fail(id, &error, out);
                }
                route => self.follow(id, route, &error, out),
            };
        }
        if to == self.me {
            // Deliberately broken, for the chaos runner's teeth: the leader answers a SET at once.
            #[cfg(feature = "bug-early-ack")]
            if let ForwardBody::Write(b) = &body {
                if raft_std::kv::decode_request(b)
                    .is_ok_and(|r| matches!(r.command, KvCommand::Set { .. }))
                {
                    let ok = Ok(Answer::Kv(KvResponse::Ok));
                    self.done.push(Done::Answer(id, attempt, None, ok));
                }
            }
            let done = Arc::clone(&self.done);
            // A read behind its connection's writes must be served by the leader (this node,
            // if it still leads), never as a follower read here.
            let reads = if self.follower_reads_for(op_conn) {
                ReadAt::Here
            } else {
                ReadAt::Leader
            };
            forward::run(
                &self.node,
                body,
                reads,
                timeout,
                Completion::new(move |r| done.push(Done::Answer(id, attempt, None, r))),
            );
            return;
        }
        let frame = ForwardFrame::Request {
            id: (id << ATTEMPT_BITS) | (attempt & ((1 << ATTEMPT_BITS) - 1)),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            body,
        };
        match self.net.send_app(to, forward::encode(&frame)) {
            Ok(()) => {
                // A little past the leader's own deadline: its answer normally comes first.
                let at = now + timeout + Duration::from_millis(50);
                self.timers
                    .push(Reverse((at, id, attempt, TimerKind::AttemptTimeout)));
            }
            Err(_) => {
                let route = self.router.unreachable(to);
                self.follow(id, route, &RequestError::Timeout, out);
            }
        }
    }

    /// Goes where `route` says with op `id`, whose last attempt failed with `error`.
    fn follow(&mut self, id: u64, route: Route, error: &RequestError, out: &mut Vec<Finished>) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        op.at = None;
        match route {
            Route::Now(next) => self.send(id, next, out),
            Route::After(pause, next) => {
                let at = (Instant::now() + pause).min(op.deadline);
                self.timers
                    .push(Reverse((at, id, op.attempt, TimerKind::Resend(next))));
            }
            Route::GiveUp => self.fail(id, error, out),
        }
    }

    /// Handles outcomes from other threads.
    pub(crate) fn on_done(&mut self, items: Vec<Done>, out: &mut Vec<Finished>) {
        for item in items {
            match item {
                Done::Answer(id, attempt, from, result) => {
                    self.on_answer(id, attempt, from, result, out);
                }
                Done::Status(id, result) => {
                    let Some(op) = self.take(id) else {
                        continue;
                    };
                    let OpKind::Status(what) = op.kind else {
                        continue;
                    };
                    let body = match result {
                        Ok(status) => FinishedBody::Status(status, what),
                        Err(e) => FinishedBody::Reply(error_reply(&e)),
                    };
                    out.push(Finished {
                        conn: op.conn,
                        slot: op.slot,
                        seq: None,
                        body,
                    });
                }
            }
        }
    }

    fn on_answer(
        &mut self,
        id: u64,
        attempt: u64,
        from: Option<NodeId>,
        result: Result<Answer, RequestError>,
        out: &mut Vec<Finished>,
    ) {
        let mask = (1 << ATTEMPT_BITS) - 1;
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        // A late answer to an attempt already given up on, or one from a node this attempt did
        // not go to (an answer to this process's previous life, with a clashing id).
        if op.attempt & mask != attempt & mask
            || op.at.is_none()
            || from.is_some_and(|f| Some(f) != op.at)
            || (from.is_none() && op.at != Some(self.me))
        {
            return;
        }
        let at = op.at.unwrap_or(self.me);
        match result {
            Ok(answer) => {
                // A read a follower served proves nothing about who leads.
                if !(at == self.me && matches!(op.kind, OpKind::Read(_))) {
                    self.router.succeeded(at);
                }
                if let Some(error) = store_uncertainty(&answer) {
                    // The store could not tell whether this write was applied before.
                    if !op.uncertain
                        && matches!(op.kind, OpKind::Write { own: true, .. })
                        && error == KvError::SessionExpired
                    {
                        // The connection's session was evicted (idle while many other clients
                        // wrote), and no attempt of this write got anywhere: it was never
                        // applied. The connection starts a new session and sends it again.
                        return self.resubmit(id, out);
                    }
                    return self.fail(id, &RequestError::Uncertain(Uncertainty::TimedOut), out);
                }
                self.finish(id, FinishedBody::Answer(answer), out);
            }
            Err(e) if matches!(op.kind, OpKind::ReadLocal(_)) => self.fail(id, &e, out),
            Err(e) => {
                op.uncertain |= e.outcome() == Outcome::Unknown;
                let idempotent = op.kind.idempotent();
                let tries = op.tries;
                let route = self.router.failed(at, &e, idempotent, tries);
                self.follow(id, route, &e, out);
            }
        }
    }

    /// Fires the timers that are due.
    pub(crate) fn on_timers(&mut self, now: Instant, out: &mut Vec<Finished>) {
        while let Some(Reverse((at, id, attempt, kind))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(op) = self.ops.get_mut(&id) else {
                continue;
            };
            if op.attempt != attempt {
                continue;
            }
            match kind {
                TimerKind::AttemptTimeout if op.at.is_some() => {
                    let error = if matches!(op.kind, OpKind::Read(_)) {
                        RequestError::Timeout
                    } else {
                        op.uncertain = true;
                        RequestError::Uncertain(Uncertainty::TimedOut)
                    };
                    let at = op.at.unwrap_or(self.me);
                    let route = self
                        .router
                        .failed(at, &error, op.kind.idempotent(), op.tries);
                    self.follow(id, route, &error, out);
                }
                TimerKind::Resend(to) if op.at.is_none() => self.send(id, to, out),
                _ => {}
            }
        }
    }

    /// Looks at the leader this node knows of: requests forwarded to an old leader are sent to
    /// the new one at once (when that is safe), instead of waiting for their timeout.
    pub(crate) fn on_leader(&mut self, out: &mut Vec<Finished>) {
        let observed = self.node.observed();
        let Some(new) = observed.leader.filter(|_| observed.role != Role::Candidate) else {
            return;
        };
        let Some(old) = self.last_leader.replace(new).filter(|&old| old != new) else {
            return;
        };
        self.router.set_leader(Some(new));
        let mut moved: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| op.at == Some(old) && old != self.me && op.kind.idempotent())
            .map(|(&id, _)| id)
            .collect();
        // In the order they were submitted (ids grow), so that a connection's read reaches the
        // new leader after the writes it was queued behind.
        moved.sort_unstable();
        for id in moved {
            if let Some(op) = self.ops.get_mut(&id) {
                op.uncertain |= !matches!(op.kind, OpKind::Read(_));
            }
            self.send(id, new, out);
        }
    }

    fn resubmit(&mut self, id: u64, out: &mut Vec<Finished>) {
        let Some(op) = self.take(id) else {
            return;
        };
        let OpKind::Write { bytes, stamp, .. } = op.kind else {
            return;
        };
        out.push(Finished {
            conn: op.conn,
            slot: op.slot,
            seq: Some(stamp.seq),
            body: FinishedBody::Resubmit(bytes),
        });
    }

    /// Starts `kind` again for `slot` of `conn` (a resubmitted write).
    pub(crate) fn resubmit_at(
        &mut self,
        conn: Token,
        slot: u64,
        kind: OpKind,
        out: &mut Vec<Finished>,
    ) {
        self.submit(conn, slot, kind, out);
    }

    /// Removes op `id`, for good or to be submitted again.
    fn take(&mut self, id: u64) -> Option<Op> {
        let op = self.ops.remove(&id)?;
        if op.kind.changes_state()
            && let Some(n) = self.changes_in_flight.get_mut(&op.conn)
        {
            *n -= 1;
            if *n == 0 {
                self.changes_in_flight.remove(&op.conn);
            }
        }
        Some(op)
    }

    fn fail(&mut self, id: u64, error: &RequestError, out: &mut Vec<Finished>) {
        let uncertain = self.ops.get(&id).is_some_and(|op| op.uncertain);
        if uncertain && error.outcome() != Outcome::Unknown {
            let error = RequestError::Uncertain(Uncertainty::TimedOut);
            return self.finish(id, FinishedBody::Reply(error_reply(&error)), out);
        }
        self.finish(id, FinishedBody::Reply(error_reply(error)), out);
    }

    fn finish(&mut self, id: u64, body: FinishedBody, out: &mut Vec<Finished>) {
        let Some(op) = self.take(id) else {
            return;
        };
        let seq = match op.kind {
            OpKind::Write {
                stamp, own: true, ..
            } => Some(stamp.seq),
            _ => None,
        };
        out.push(Finished {
            conn: op.conn,
            slot: op.slot,
            seq,
            body,
        });
    }
}

/// The store's answer to a write whose earlier attempt may have been applied: the session
/// errors (`SessionExpired`, `StaleSequence`), which say the store cannot tell.
fn store_uncertainty(answer: &Answer) -> Option<KvError> {
    match answer {
        Answer::Kv(KvResponse::Error(e @ (KvError::SessionExpired | KvError::StaleSequence))) => {
            Some(*e)
        }
        _ => None,
    }
}

/// The reply for a successful answer, in RESP3 if `resp3`.
pub(crate) fn render(answer: &Answer, resp3: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reply::with_protocol(&mut out, resp3);
    match answer {
        Answer::Done => r.ok(),
        Answer::Refused(why) => r.error(&format!("ERR {why}")),
        Answer::Kv(response) => render_kv(&mut r, response),
    }
    out
}

/// Writes a store response as RESP.
pub(crate) fn render_kv(r: &mut Reply<'_>, response: &KvResponse) {
    match response {
        KvResponse::Ok => r.ok(),
        KvResponse::Value(v) => r.bulk(v.as_deref()),
        KvResponse::Values(vs) => {
            r.array(vs.len());
            for v in vs {
                r.bulk(v.as_deref());
            }
        }
        KvResponse::Integer(n) => r.integer(*n),
        KvResponse::Error(e) => r.error(e.message()),
    }
}

/// The reply for a request that failed: `-TRYAGAIN` (not applied: safe to send again),
/// `-UNCERTAIN` (it may have been applied), or `-ERR` (refused for good).
pub(crate) fn error_reply(error: &RequestError) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reply::new(&mut out);
    let text = match error {
        RequestError::Stopped(_) => "the node serving it stopped".to_owned(),
        e => e.to_string(),
    };
    match (error.outcome(), error.retry()) {
        (Outcome::Unknown, _) => r.error(&format!("UNCERTAIN {text}")),
        (Outcome::Refused, Retry::Never) => r.error(&format!("ERR {text}")),
        _ => r.error(&format!("TRYAGAIN {text}")),
    }
    out
}
