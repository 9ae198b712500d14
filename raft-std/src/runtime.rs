//! A node on its own thread: [`RaftNode`] drives a [`raft_core::Node`] over a [`Storage`], a
//! [`Transport`] and a [`StateMachine`], and serves proposals and linearizable reads.
//!
//! # The loop
//!
//! The node thread waits on its [`Inbox`] until the next input or the next timer (from
//! [`Node::ticks_until_timer`]; it never polls). Then it steps every input waiting (messages
//! from peers, client requests) and the ticks that have passed, and does one round of outputs:
//!
//! 1. sends every message (the core holds back anything that depends on unsynced state, so
//!    sending before the disk write is safe); a peer the transport cannot reach is reported
//!    with [`Input::Unreachable`];
//! 2. appends every write to storage, syncs once (group commit) and steps
//!    [`Input::Persisted`] with the last write's id;
//! 3. applies committed entries ([`EntryKind::Normal`] ones go to the state machine; no-ops and
//!    anything else the core adds are skipped), or loads a snapshot installed from the leader,
//!    and steps [`Input::Applied`]; answers the proposals and reads this made ready;
//! 4. answers the leader's snapshot chunk requests from storage;
//! 5. takes a snapshot when the core suggests one ([`Event::SnapshotSuggested`]).
//!
//! It repeats the round until the core has nothing more to say, then waits again.
//!
//! # Failures
//!
//! A storage error is fatal: the thread stops, every caller waiting gets
//! [`NodeStopped`] naming the cause, and every later call gets it too. Nonsense from the network
//! is rejected by the core and counted; the node carries on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use raft_core::{
    Apply, Config, EntryKind, Event, Index, Input, LogId, Membership, Node, NodeId, Outputs,
    Payload, ReadId, ReadResult, Refusal, RestoreError, Restored, SnapshotChunk, Stats, Status,
    StepError, Term,
};

use crate::state_machine::StateMachine;
use crate::storage::faulty::splitmix;
use crate::storage::{Recovered, Storage, StorageError};
use crate::transport::{Inbound, Inbox, InboxSender, Transport};

/// How a node runs: the core's [`Config`], the length of a tick and the default time callers
/// wait.
///
/// Snapshots are taken synchronously on the node thread: when the core suggests one, the
/// thread streams the whole state machine into storage before it steps anything else. While it
/// does, no ticks, messages or requests are handled, so a large state can hold up heartbeats
/// long enough for followers to elect another leader (and callers may see timeouts). Size the
/// election timeout (and [`Config::snapshot_log_entries`], how often snapshots come) with the
/// time a snapshot takes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// The core's configuration (timeouts in ticks). The defaults with a 10 ms tick: heartbeat
    /// every 20 ms, election timeout 100–200 ms.
    pub raft: Config,
    /// What one tick is worth. Default 10 ms.
    pub tick: Duration,
    /// How long [`RaftNode::propose`] and [`RaftNode::read`] wait. Default 5 s.
    pub request_timeout: Duration,
}

impl RuntimeConfig {
    /// The defaults for node `id`.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        Self {
            raft: Config::new(id),
            tick: Duration::from_millis(10),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a node stopped, or could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// Storage failed (fatal: the node does not retry).
    Storage(StorageError),
    /// The state machine could not be snapshotted or restored.
    StateMachine(io::Error),
    /// Storage has no snapshot where the node needs one.
    SnapshotMissing {
        /// The snapshot the node needed.
        expected: LogId,
    },
    /// The persisted state is inconsistent, or the configuration invalid.
    Restore(RestoreError),
    /// The runtime broke the core's contract (a bug in this crate).
    Core(StepError),
    /// The node thread could not be started.
    Spawn(io::Error),
    /// The node thread panicked (in the state machine, most likely).
    Panicked(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "storage failed: {e}"),
            Self::StateMachine(e) => write!(f, "state machine snapshot failed: {e}"),
            Self::SnapshotMissing { expected } => {
                write!(f, "storage has no snapshot at {expected}")
            }
            Self::Restore(e) => write!(f, "cannot restore the node: {e}"),
            Self::Core(e) => write!(f, "runtime bug: {e}"),
            Self::Spawn(e) => write!(f, "cannot start the node thread: {e}"),
            Self::Panicked(what) => write!(f, "the node thread panicked: {what}"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Storage(e) => Some(e),
            Self::StateMachine(e) | Self::Spawn(e) => Some(e),
            Self::Restore(e) => Some(e),
            Self::Core(e) => Some(e),
            Self::SnapshotMissing { .. } | Self::Panicked(_) => None,
        }
    }
}

impl From<StorageError> for NodeError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

/// The node is not running: shut down, or stopped by `cause`.
#[derive(Clone, Debug)]
pub struct NodeStopped {
    /// The error that stopped it; `None` after [`RaftNode::shutdown`].
    pub cause: Option<Arc<NodeError>>,
}

impl fmt::Display for NodeStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "node stopped: {cause}"),
            None => f.write_str("node was shut down"),
        }
    }
}

impl std::error::Error for NodeStopped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why the node thread did not answer a call.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CallError {
    /// No answer in time. The node may only be busy (a slow disk, a large snapshot) and may
    /// still act on the request.
    Timeout,
    /// The node is not running.
    NodeStopped(NodeStopped),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("the node did not answer in time"),
            Self::NodeStopped(s) => s.fmt(f),
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Timeout => None,
            Self::NodeStopped(s) => Some(s),
        }
    }
}

/// Why a proposal was not applied (or its outcome is not known).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ProposeError {
    /// This node is not the leader; `leader` is the one it knows of, to redirect to.
    NotLeader {
        /// The leader this node believes in.
        leader: Option<NodeId>,
    },
    /// Leadership changed and another entry took the proposal's place: it was not applied and
    /// is safe to retry.
    Dropped,
    /// The outcome is unknown: the node loaded a snapshot from the leader that covers the
    /// proposal's index, so it cannot tell whether the proposal made it. Retrying may apply it
    /// twice (a state machine that deduplicates retries makes that harmless).
    Unknown,
    /// No answer in time. The proposal may still be applied later.
    Timeout,
    /// The core refused it (too large, a leadership transfer under way).
    Refused(Refusal),
    /// The node is not running.
    NodeStopped(NodeStopped),
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader { leader: Some(l) } => write!(f, "not the leader; node {l} is"),
            Self::NotLeader { leader: None } => f.write_str("not the leader; no leader known"),
            Self::Dropped => f.write_str("proposal dropped by a change of leader"),
            Self::Unknown => f.write_str("proposal outcome unknown (covered by a snapshot)"),
            Self::Timeout => f.write_str("proposal timed out (it may still be applied)"),
            Self::Refused(r) => write!(f, "proposal refused: {r:?}"),
            Self::NodeStopped(s) => s.fmt(f),
        }
    }
}

impl std::error::Error for ProposeError {}

impl From<CallError> for ProposeError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Timeout => Self::Timeout,
            CallError::NodeStopped(s) => Self::NodeStopped(s),
        }
    }
}

/// Why a read was not served.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// This node is not the leader; `leader` is the one it knows of, to redirect to.
    NotLeader {
        /// The leader this node believes in.
        leader: Option<NodeId>,
    },
    /// Leadership was lost before the read was confirmed: retry at the new leader.
    Aborted,
    /// No answer in time.
    Timeout,
    /// The core refused it (too many reads waiting).
    Refused(Refusal),
    /// The node is not running.
    NodeStopped(NodeStopped),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader { leader: Some(l) } => write!(f, "not the leader; node {l} is"),
            Self::NotLeader { leader: None } => f.write_str("not the leader; no leader known"),
            Self::Aborted => f.write_str("read aborted by a change of leader; retry"),
            Self::Timeout => f.write_str("read timed out"),
            Self::Refused(r) => write!(f, "read refused: {r:?}"),
            Self::NodeStopped(s) => s.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<CallError> for ReadError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Timeout => Self::Timeout,
            CallError::NodeStopped(s) => Self::NodeStopped(s),
        }
    }
}

/// Why a leadership transfer was not started.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TransferError {
    /// The core refused it (not the leader, the target is not a voter).
    Refused(Refusal),
    /// No answer in time. The transfer may still start.
    Timeout,
    /// The node is not running.
    NodeStopped(NodeStopped),
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(r) => write!(f, "transfer refused: {r:?}"),
            Self::Timeout => f.write_str("transfer request timed out"),
            Self::NodeStopped(s) => s.fmt(f),
        }
    }
}

impl std::error::Error for TransferError {}

impl From<CallError> for TransferError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Timeout => Self::Timeout,
            CallError::NodeStopped(s) => Self::NodeStopped(s),
        }
    }
}

/// Why a membership change was not started.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum MembershipChangeError {
    /// This node is not the leader; `leader` is the one it knows of, to redirect to.
    NotLeader {
        /// The leader this node believes in.
        leader: Option<NodeId>,
    },
    /// The core refused it: [`Refusal::ChangePending`] (an earlier change is not finished:
    /// retry later), [`Refusal::TransferInProgress`], [`Refusal::InvalidMembership`],
    /// [`Refusal::Exhausted`].
    Refused(Refusal),
    /// No answer in time. The change may still have started.
    Timeout,
    /// The node is not running.
    NodeStopped(NodeStopped),
}

impl fmt::Display for MembershipChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader { leader: Some(l) } => write!(f, "not the leader; node {l} is"),
            Self::NotLeader { leader: None } => f.write_str("not the leader; no leader known"),
            Self::Refused(r) => write!(f, "membership change refused: {r:?}"),
            Self::Timeout => f.write_str("membership change timed out (it may have started)"),
            Self::NodeStopped(s) => s.fmt(f),
        }
    }
}

impl std::error::Error for MembershipChangeError {}

impl From<CallError> for MembershipChangeError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Timeout => Self::Timeout,
            CallError::NodeStopped(s) => Self::NodeStopped(s),
        }
    }
}

type ProposeReply<M> = Sender<Result<<M as StateMachine>::Response, ProposeError>>;
type ReadReply<M> = Sender<Result<<M as StateMachine>::QueryResponse, ReadError>>;

/// What a client asks of the node thread.
enum Request<M: StateMachine> {
    Propose {
        command: Payload,
        reply: ProposeReply<M>,
    },
    Read {
        query: M::Query,
        reply: ReadReply<M>,
    },
    Status {
        reply: Sender<Status>,
    },
    Stats {
        reply: Sender<Stats>,
    },
    Transfer {
        to: NodeId,
        reply: Sender<Result<(), TransferError>>,
    },
    ChangeMembership {
        // Boxed: a membership is large (inline arrays) and requests are small.
        target: Box<Membership>,
        reply: Sender<Result<LogId, MembershipChangeError>>,
    },
}

/// State shared by the handles and the thread.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    failure: Mutex<Option<Arc<NodeError>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn stopped(&self) -> NodeStopped {
        NodeStopped {
            cause: self
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// A handle to a running node. Clone it freely: every clone talks to the same node thread.
pub struct RaftNode<M: StateMachine> {
    id: NodeId,
    requests: Sender<Request<M>>,
    wake: InboxSender,
    shared: Arc<Shared>,
    timeout: Duration,
}

impl<M: StateMachine> Clone for RaftNode<M> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            requests: self.requests.clone(),
            wake: self.wake.clone(),
            shared: Arc::clone(&self.shared),
            timeout: self.timeout,
        }
    }
}

impl<M: StateMachine> fmt::Debug for RaftNode<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftNode").field("id", &self.id).finish()
    }
}

/// A proposal on its way: wait for its outcome with [`Proposal::wait`].
#[derive(Debug)]
pub struct Proposal<M: StateMachine> {
    rx: Receiver<Result<M::Response, ProposeError>>,
    shared: Arc<Shared>,
}

impl<M: StateMachine> Proposal<M> {
    /// Waits up to `timeout` for the proposal to be applied on this node.
    ///
    /// # Errors
    ///
    /// See [`ProposeError`]; [`ProposeError::Timeout`] if `timeout` passed first.
    pub fn wait(self, timeout: Duration) -> Result<M::Response, ProposeError> {
        recv(&self.rx, timeout, &self.shared)?
    }

    /// The outcome, if it is known already.
    ///
    /// # Errors
    ///
    /// `Err(self)` while the proposal is still in flight.
    pub fn try_result(self) -> Result<Result<M::Response, ProposeError>, Self> {
        match self.rx.try_recv() {
            Ok(result) => Ok(result),
            Err(TryRecvError::Empty) => Err(self),
            Err(TryRecvError::Disconnected) => {
                Ok(Err(ProposeError::NodeStopped(self.shared.stopped())))
            }
        }
    }
}

/// Waits up to `timeout` for the node thread's answer on `rx`.
fn recv<T>(rx: &Receiver<T>, timeout: Duration, shared: &Shared) -> Result<T, CallError> {
    rx.recv_timeout(timeout).map_err(|e| match e {
        RecvTimeoutError::Timeout => CallError::Timeout,
        RecvTimeoutError::Disconnected => CallError::NodeStopped(shared.stopped()),
    })
}

impl<M: StateMachine> RaftNode<M> {
    /// Starts a node on its own thread.
    ///
    /// `storage` and `recovered` come from opening the node's storage; the state machine is
    /// restored from the storage's latest snapshot (if any) and the log after it is applied
    /// again as it commits. `transport` sends to peers; `inbox` is where the transport delivers
    /// messages for this node.
    ///
    /// # Errors
    ///
    /// The snapshot cannot be read or loaded, the persisted state is inconsistent, the
    /// configuration is invalid, or the thread cannot be spawned.
    pub fn start<St: Storage, T: Transport>(
        config: RuntimeConfig,
        mut storage: St,
        recovered: Recovered,
        mut state_machine: M,
        transport: T,
        inbox: Inbox,
    ) -> Result<Self, NodeError> {
        let id = config.raft.id;
        let Recovered {
            hard_state,
            snapshot,
            entries,
        } = recovered;
        if snapshot.last.index > Index::ZERO {
            load_snapshot(&mut storage, &mut state_machine, snapshot.last)?;
        }
        let applied = snapshot.last.index;
        let restored = Restored {
            hard_state,
            snapshot,
            entries,
            applied,
        };
        let node = Node::restore(config.raft.clone(), SeedRng::new(id), restored)
            .map_err(NodeError::Restore)?;
        let (requests_tx, requests_rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let wake = inbox.sender();
        let driver = Driver {
            node,
            out: Outputs::new(),
            storage,
            sm: state_machine,
            transport,
            inbox,
            requests: requests_rx,
            shared: Arc::clone(&shared),
            tick: config.tick.max(Duration::from_micros(100)),
            last_tick: Instant::now(),
            proposals: BTreeMap::new(),
            reads_waiting: HashMap::new(),
            reads_ready: VecDeque::new(),
            next_read: 0,
            chunk: Vec::new(),
            unreachable: Vec::new(),
            reported: Vec::new(),
        };
        let thread_shared = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name(format!("raft-node-{id}"))
            .spawn(move || run_thread(driver, &thread_shared))
            .map_err(NodeError::Spawn)?;
        *shared.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(Self {
            id,
            requests: requests_tx,
            wake,
            shared,
            timeout: config.request_timeout,
        })
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    fn send(&self, request: Request<M>) -> Result<(), NodeStopped> {
        if self.shared.stop.load(Ordering::Acquire) || self.requests.send(request).is_err() {
            return Err(self.shared.stopped());
        }
        if self.wake.wake() {
            Ok(())
        } else {
            Err(self.shared.stopped())
        }
    }

    /// Sends the request `make` builds around a reply channel and waits up to `timeout` for
    /// the answer.
    fn call<T>(
        &self,
        make: impl FnOnce(Sender<T>) -> Request<M>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let (reply, rx) = mpsc::channel();
        self.send(make(reply)).map_err(CallError::NodeStopped)?;
        recv(&rx, timeout, &self.shared)
    }

    /// Proposes `command` and returns at once; [`Proposal::wait`] for the outcome.
    ///
    /// `command` is anything that converts into a [`Payload`]: a `Vec<u8>` or a
    /// [`Payload`] is moved in without copying the bytes, a `&[u8]` is copied once.
    ///
    /// # Errors
    ///
    /// [`NodeStopped`] if the node is not running.
    pub fn propose_async(&self, command: impl Into<Payload>) -> Result<Proposal<M>, NodeStopped> {
        let (reply, rx) = mpsc::channel();
        self.send(Request::Propose {
            command: command.into(),
            reply,
        })?;
        Ok(Proposal {
            rx,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Proposes `command` and waits (up to the configured request timeout) until it is applied
    /// on this node; returns what the state machine answered.
    ///
    /// # Errors
    ///
    /// See [`ProposeError`]. [`ProposeError::NotLeader`] names the leader to retry at.
    pub fn propose(&self, command: impl Into<Payload>) -> Result<M::Response, ProposeError> {
        self.propose_timeout(command, self.timeout)
    }

    /// [`RaftNode::propose`] with its own timeout.
    ///
    /// # Errors
    ///
    /// See [`ProposeError`].
    pub fn propose_timeout(
        &self,
        command: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<M::Response, ProposeError> {
        self.propose_async(command)
            .map_err(ProposeError::NodeStopped)?
            .wait(timeout)
    }

    /// A linearizable read: confirms leadership (ReadIndex), waits until the state machine has
    /// applied the read point, then answers `query` from it.
    ///
    /// # Errors
    ///
    /// See [`ReadError`]. Only the leader serves reads: [`ReadError::NotLeader`] names the one to
    /// retry at; [`ReadError::Aborted`] means leadership changed meanwhile.
    pub fn read(&self, query: M::Query) -> Result<M::QueryResponse, ReadError> {
        self.read_timeout(query, self.timeout)
    }

    /// [`RaftNode::read`] with its own timeout.
    ///
    /// # Errors
    ///
    /// See [`ReadError`].
    pub fn read_timeout(
        &self,
        query: M::Query,
        timeout: Duration,
    ) -> Result<M::QueryResponse, ReadError> {
        self.call(|reply| Request::Read { query, reply }, timeout)?
    }

    /// The node's current state: role, term, leader, indexes, per-peer progress.
    ///
    /// # Errors
    ///
    /// [`CallError::NodeStopped`] if the node is not running; [`CallError::Timeout`] if it did
    /// not answer within the configured request timeout.
    pub fn status(&self) -> Result<Status, CallError> {
        self.call(|reply| Request::Status { reply }, self.timeout)
    }

    /// The core's counters: elections, rejected network input, refusals, aborted reads.
    ///
    /// # Errors
    ///
    /// As for [`RaftNode::status`].
    pub fn stats(&self) -> Result<Stats, CallError> {
        self.call(|reply| Request::Stats { reply }, self.timeout)
    }

    /// Asks this node, the leader, to hand leadership to `to`. Returns once the transfer has
    /// started; watch [`RaftNode::status`] for its outcome.
    ///
    /// # Errors
    ///
    /// See [`TransferError`].
    pub fn transfer_leader(&self, to: NodeId) -> Result<(), TransferError> {
        self.call(|reply| Request::Transfer { to, reply }, self.timeout)?
    }

    /// Asks this node, the leader, to change the cluster's membership to `target` (build it
    /// with [`Membership::with_changes`] from the current one, [`Status::membership`]), and
    /// waits up to the configured request timeout for the change to start. Returns the id of
    /// the configuration entry appended: the joint configuration when the voters change (the
    /// leader appends `target` itself once that commits), or `target` when only learners do.
    ///
    /// The change is finished when the leader has committed `target`; until then another change
    /// is refused with [`Refusal::ChangePending`]. A node joining the cluster must be running
    /// first, started on storage whose membership names the current voters and itself as a
    /// learner (see [`Cluster::add_node`](crate::cluster::Cluster::add_node)).
    ///
    /// # Errors
    ///
    /// See [`MembershipChangeError`].
    pub fn change_membership(&self, target: Membership) -> Result<LogId, MembershipChangeError> {
        self.change_membership_timeout(target, self.timeout)
    }

    /// [`RaftNode::change_membership`] with its own timeout.
    ///
    /// # Errors
    ///
    /// See [`MembershipChangeError`].
    pub fn change_membership_timeout(
        &self,
        target: Membership,
        timeout: Duration,
    ) -> Result<LogId, MembershipChangeError> {
        let target = Box::new(target);
        self.call(|reply| Request::ChangeMembership { target, reply }, timeout)?
    }

    /// Whether the node thread is still running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.shared
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// Stops the node thread and waits for it. Callers still waiting get [`NodeStopped`]. What
    /// storage has not synced by then is not acknowledged to anyone, as after a crash.
    ///
    /// # Errors
    ///
    /// The error that had stopped the node before, if one did.
    pub fn shutdown(&self) -> Result<(), Arc<NodeError>> {
        self.shared.stop.store(true, Ordering::Release);
        self.wake.wake();
        let handle = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // The thread catches panics itself, so joining cannot fail in practice.
            let _ = handle.join();
        }
        match self.shared.stopped().cause {
            Some(cause) => Err(cause),
            None => Ok(()),
        }
    }
}

fn run_thread<M: StateMachine, St: Storage, T: Transport>(
    mut driver: Driver<M, St, T>,
    shared: &Shared,
) {
    let result = catch_unwind(AssertUnwindSafe(|| driver.run()));
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Some(NodeError::Panicked(what))
        }
    };
    if let Some(e) = failure {
        *shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(e));
    }
    shared.stop.store(true, Ordering::Release);
    // Dropping the driver drops every reply sender: waiting callers wake up and read the cause
    // recorded above.
    drop(driver);
}

/// At most this many inbox items are stepped before a round of outputs, so that a flood of
/// messages cannot delay the disk and the replies indefinitely.
const MAX_BATCH: usize = 4096;

/// The node thread's state.
struct Driver<M: StateMachine, St, T> {
    node: Node<SeedRng>,
    out: Outputs,
    storage: St,
    sm: M,
    transport: T,
    inbox: Inbox,
    requests: Receiver<Request<M>>,
    shared: Arc<Shared>,
    tick: Duration,
    /// When the last tick was stepped.
    last_tick: Instant,
    /// Proposals waiting to be applied, by log index, with the term of their entry.
    proposals: BTreeMap<Index, (Term, ProposeReply<M>)>,
    /// Reads waiting for the core to confirm leadership.
    reads_waiting: HashMap<u64, (M::Query, ReadReply<M>)>,
    /// Confirmed reads waiting for the state machine to apply their index, by index. The core
    /// releases a node's reads with non-decreasing indexes (each is the commit index when the
    /// read arrived, released in arrival order, and the commit index never decreases), so they
    /// are appended at the back and served from the front.
    reads_ready: VecDeque<(Index, M::Query, ReadReply<M>)>,
    next_read: u64,
    /// A reusable buffer for snapshot chunks.
    chunk: Vec<u8>,
    /// Peers the transport could not reach in this round.
    unreachable: Vec<NodeId>,
    /// Peers reported unreachable to the core in this round of outputs.
    reported: Vec<NodeId>,
}

/// The thread should stop (shutdown, or every handle dropped).
struct Stop;

impl<M: StateMachine, St: Storage, T: Transport> Driver<M, St, T> {
    fn run(&mut self) -> Result<(), NodeError> {
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let wait = self.until_timer();
            if let Some(item) = self.inbox.recv_timeout(wait) {
                self.inbound(item)?;
                for _ in 0..MAX_BATCH {
                    let Some(item) = self.inbox.try_recv() else {
                        break;
                    };
                    self.inbound(item)?;
                }
            }
            if self.shared.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.requests()?.is_err() {
                return Ok(());
            }
            self.ticks()?;
            self.outputs()?;
        }
    }

    /// How long to wait before the next timer fires.
    fn until_timer(&self) -> Duration {
        let ticks = self.node.ticks_until_timer().min(1000);
        let deadline = self.last_tick + self.tick * ticks;
        deadline.saturating_duration_since(Instant::now())
    }

    /// Steps the ticks that have passed.
    fn ticks(&mut self) -> Result<(), NodeError> {
        let elapsed = self.last_tick.elapsed();
        let n = elapsed.as_nanos() / self.tick.as_nanos().max(1);
        if n == 0 {
            return Ok(());
        }
        // After a long pause (a stopped process, a suspended machine) step enough ticks to fire
        // every timer, not millions.
        let limit = u128::from(self.node.config().election_ticks_max) * 2;
        if n > limit {
            self.last_tick = Instant::now();
        } else {
            // `n` is at most `limit`, a u32 doubled.
            self.last_tick += self.tick * u32::try_from(n).unwrap_or(u32::MAX);
        }
        for _ in 0..n.min(limit) {
            self.step(Input::Tick)?;
        }
        Ok(())
    }

    /// Steps an input; only a misuse (a bug here) is an error. Rejected network input is
    /// counted by the core; refusals are for the caller to report.
    fn step(&mut self, input: Input) -> Result<(), NodeError> {
        match self.node.step(input, &mut self.out) {
            Ok(()) | Err(StepError::Rejected(_) | StepError::Refused(_)) => Ok(()),
            Err(e) => Err(NodeError::Core(e)),
        }
    }

    fn inbound(&mut self, item: Inbound) -> Result<(), NodeError> {
        match item {
            Inbound::Message(msg) => self.step(Input::Message(msg)),
            Inbound::Wake => Ok(()),
        }
    }

    /// Steps every waiting client request. `Err(Stop)` when every handle is gone.
    fn requests(&mut self) -> Result<Result<(), Stop>, NodeError> {
        loop {
            let request = match self.requests.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => return Ok(Ok(())),
                Err(TryRecvError::Disconnected) => return Ok(Err(Stop)),
            };
            match request {
                Request::Propose { command, reply } => self.propose(command, reply)?,
                Request::Read { query, reply } => self.read(query, reply)?,
                Request::Status { reply } => {
                    let _ = reply.send(self.node.status());
                }
                Request::Stats { reply } => {
                    let _ = reply.send(*self.node.stats());
                }
                Request::Transfer { to, reply } => {
                    let result = match self.node.step(Input::TransferLeader(to), &mut self.out) {
                        Ok(()) => Ok(()),
                        Err(StepError::Refused(r)) => Err(TransferError::Refused(r)),
                        Err(e) => return Err(NodeError::Core(e)),
                    };
                    let _ = reply.send(result);
                }
                Request::ChangeMembership { target, reply } => {
                    let result = match self.node.change_membership(&target, &mut self.out) {
                        Ok(id) => Ok(id),
                        Err(StepError::Refused(Refusal::NotLeader { leader })) => {
                            Err(MembershipChangeError::NotLeader { leader })
                        }
                        Err(StepError::Refused(r)) => Err(MembershipChangeError::Refused(r)),
                        Err(e) => return Err(NodeError::Core(e)),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn propose(&mut self, command: Payload, reply: ProposeReply<M>) -> Result<(), NodeError> {
        match self.node.propose(command, &mut self.out) {
            Ok(id) => {
                if let Some((_, earlier)) = self.proposals.insert(id.index, (id.term, reply)) {
                    // A proposal from an earlier term at the same index: its entry is gone
                    // from this leader's log.
                    let _ = earlier.send(Err(ProposeError::Dropped));
                }
            }
            Err(StepError::Refused(Refusal::NotLeader { leader })) => {
                let _ = reply.send(Err(ProposeError::NotLeader { leader }));
            }
            Err(StepError::Refused(r)) => {
                let _ = reply.send(Err(ProposeError::Refused(r)));
            }
            Err(e) => return Err(NodeError::Core(e)),
        }
        Ok(())
    }

    fn read(&mut self, query: M::Query, reply: ReadReply<M>) -> Result<(), NodeError> {
        self.next_read += 1;
        let id = self.next_read;
        match self.node.step(Input::Read(ReadId(id)), &mut self.out) {
            Ok(()) => {
                self.reads_waiting.insert(id, (query, reply));
            }
            Err(StepError::Refused(Refusal::NotLeader { leader })) => {
                let _ = reply.send(Err(ReadError::NotLeader { leader }));
            }
            Err(StepError::Refused(r)) => {
                let _ = reply.send(Err(ReadError::Refused(r)));
            }
            Err(e) => return Err(NodeError::Core(e)),
        }
        Ok(())
    }

    /// Rounds of outputs until the core is quiet.
    fn outputs(&mut self) -> Result<(), NodeError> {
        self.reported.clear();
        while !self.out.is_empty() {
            self.sends()?;
            self.writes()?;
            self.apply()?;
            self.reads();
            self.chunks()?;
            self.events()?;
        }
        Ok(())
    }

    fn sends(&mut self) -> Result<(), NodeError> {
        if self.out.sends().is_empty() {
            return Ok(());
        }
        // Report each peer once per round of outputs: a probe to a peer that is down fails
        // again, and reporting that at once would never let the round end.
        for msg in self.out.drain_sends() {
            if let Err(e) = self.transport.send(msg) {
                if !self.unreachable.contains(&e.peer) && !self.reported.contains(&e.peer) {
                    self.unreachable.push(e.peer);
                }
            }
        }
        self.transport.flush();
        let mut report = std::mem::take(&mut self.unreachable);
        for peer in report.drain(..) {
            self.reported.push(peer);
            self.step(Input::Unreachable(peer))?;
        }
        // Keep the buffer's capacity for the next round.
        self.unreachable = report;
        Ok(())
    }

    /// Appends every write, syncs once, acknowledges the last.
    fn writes(&mut self) -> Result<(), NodeError> {
        let mut last = None;
        for w in self.out.drain_writes() {
            self.storage.append(&w)?;
            last = Some(w.id);
        }
        if let Some(id) = last {
            self.storage.sync()?;
            self.step(Input::Persisted(id))?;
        }
        Ok(())
    }

    fn apply(&mut self) -> Result<(), NodeError> {
        if self.out.apply().is_empty() {
            return Ok(());
        }
        let mut applied = None;
        for item in self.out.drain_apply() {
            match item {
                Apply::Entry(entry) => {
                    let response = if entry.kind == EntryKind::Normal {
                        Some(self.sm.apply(entry.id.index, &entry.data))
                    } else {
                        None
                    };
                    if let Some((term, reply)) = self.proposals.remove(&entry.id.index) {
                        let result = match response {
                            Some(r) if term == entry.id.term => Ok(r),
                            _ => Err(ProposeError::Dropped),
                        };
                        let _ = reply.send(result);
                    }
                    applied = Some(entry.id.index);
                }
                Apply::Snapshot(meta) => {
                    load_snapshot(&mut self.storage, &mut self.sm, meta.last)?;
                    // Proposals the snapshot covers: whether they made it is unknown here. (A
                    // snapshot at the last possible index covers them all.)
                    let later = match meta.last.index.next() {
                        Some(next) => self.proposals.split_off(&next),
                        None => BTreeMap::new(),
                    };
                    for (_, (_, reply)) in std::mem::replace(&mut self.proposals, later) {
                        let _ = reply.send(Err(ProposeError::Unknown));
                    }
                    applied = Some(meta.last.index);
                }
            }
        }
        if let Some(index) = applied {
            self.step(Input::Applied(index))?;
        }
        self.serve_ready_reads();
        Ok(())
    }

    fn reads(&mut self) {
        if self.out.reads().is_empty() {
            return;
        }
        for r in self.out.drain_reads() {
            match r {
                ReadResult::Ready { id, index } => {
                    if let Some((query, reply)) = self.reads_waiting.remove(&id.0) {
                        // At the back, as the core promises (see `reads_ready`); were it ever
                        // not so, the read still goes in its place in index order.
                        let at = self.reads_ready.partition_point(|r| r.0 <= index);
                        self.reads_ready.insert(at, (index, query, reply));
                    }
                }
                ReadResult::Aborted { id } => {
                    if let Some((_, reply)) = self.reads_waiting.remove(&id.0) {
                        let _ = reply.send(Err(ReadError::Aborted));
                    }
                }
            }
        }
        self.serve_ready_reads();
    }

    /// Answers the confirmed reads whose index the state machine has applied.
    fn serve_ready_reads(&mut self) {
        let applied = self.node.applied_index();
        while self.reads_ready.front().is_some_and(|r| r.0 <= applied) {
            if let Some((_, query, reply)) = self.reads_ready.pop_front() {
                let _ = reply.send(Ok(self.sm.query(&query)));
            }
        }
    }

    fn chunks(&mut self) -> Result<(), NodeError> {
        if self.out.chunk_requests().is_empty() {
            return Ok(());
        }
        let requests: Vec<_> = self.out.drain_chunk_requests().collect();
        for r in requests {
            match self
                .storage
                .read_snapshot_chunk(r.snapshot, r.offset, r.max_len, &mut self.chunk)
            {
                Ok(done) => {
                    let chunk = SnapshotChunk {
                        to: r.to,
                        snapshot: r.snapshot,
                        offset: r.offset,
                        data: Payload::new(&self.chunk),
                        done,
                    };
                    self.step(Input::SnapshotChunk(chunk))?;
                }
                // A newer snapshot replaced it; the core moves the transfer to the new one.
                Err(StorageError::SnapshotGone { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn events(&mut self) -> Result<(), NodeError> {
        if self.out.events().is_empty() {
            return Ok(());
        }
        // Dropping the drain early (once a suggestion is found) still removes every event.
        let suggested = self
            .out
            .drain_events()
            .any(|e| matches!(e, Event::SnapshotSuggested { .. }));
        if suggested {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Snapshots the state machine at its applied index, stores it, and tells the core.
    fn snapshot(&mut self) -> Result<(), NodeError> {
        let applied = self.node.applied_index();
        if applied <= self.node.snapshot().last.index {
            return Ok(());
        }
        let Some(meta) = self.node.snapshot_meta(applied) else {
            return Ok(());
        };
        let mut writer = self.storage.begin_snapshot(&meta)?;
        self.sm
            .snapshot(&mut writer)
            .map_err(NodeError::StateMachine)?;
        self.storage.finish_snapshot(writer)?;
        self.step(Input::SnapshotTaken(Box::new(meta)))
    }
}

/// Restores `sm` from the snapshot `storage` holds, which must be `expected`.
fn load_snapshot<M: StateMachine, St: Storage>(
    storage: &mut St,
    sm: &mut M,
    expected: LogId,
) -> Result<(), NodeError> {
    if storage.snapshot_meta().last != expected {
        return Err(NodeError::SnapshotMissing { expected });
    }
    let Some(mut reader) = storage.open_snapshot()? else {
        return Err(NodeError::SnapshotMissing { expected });
    };
    sm.restore(&mut reader).map_err(NodeError::StateMachine)
}

/// SplitMix64 seeded from the node id, the clock and the process's random hasher keys. It only
/// picks election timeouts; all it needs is that nodes (and restarts) differ.
struct SeedRng(u64);

impl SeedRng {
    fn new(id: NodeId) -> Self {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(id.get());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        h.write_u32(nanos);
        Self(h.finish() ^ id.get().wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

impl rand_core::TryRng for SeedRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.try_next_u64().map(|v| (v >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(splitmix(&mut self.0))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or_default());
        }
        Ok(())
    }
}
