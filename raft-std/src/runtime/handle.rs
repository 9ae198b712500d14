//! [`RaftNode`]: the handle to a node thread, and what it shares with the thread.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use raft_core::{
    Index, LogId, Membership, Node, NodeId, Outputs, Payload, Restored, Role, Stats, Status, Term,
};

use super::RuntimeConfig;
use super::driver::{Driver, load_snapshot, run_thread};
use super::storage_stage::StorageStage;
use crate::client::{Completion, RequestError, Uncertainty};
use crate::error::{NodeError, NodeStopped};
use crate::rng::node_rng;
use crate::state_machine::StateMachine;
use crate::storage::{Recovered, Storage};
use crate::transport::{Inbox, InboxSender, Transport};

/// What a client asks of the node thread.
pub(super) enum Request<M: StateMachine> {
    Propose {
        command: Payload,
        deadline: Instant,
        done: Completion<M::Response>,
    },
    Read {
        query: M::Query,
        deadline: Instant,
        /// Refused unless this node leads, even with follower reads on.
        leader_only: bool,
        done: Completion<M::QueryResponse>,
    },
    ReadLocal {
        query: M::Query,
        done: Completion<M::QueryResponse>,
    },
    Status(Completion<Status>),
    Stats(Completion<Stats>),
    Transfer {
        to: NodeId,
        done: Completion<()>,
    },
    ChangeMembership {
        // Boxed: a membership is large (inline arrays) and requests are small.
        target: Box<Membership>,
        done: Completion<LogId>,
    },
}

impl<M: StateMachine> Request<M> {
    /// Completes the request, never stepped, with `error`.
    pub(super) fn fail(self, error: RequestError) {
        match self {
            Self::Propose { done, .. } => done.complete(Err(error)),
            Self::Read { done, .. } | Self::ReadLocal { done, .. } => done.complete(Err(error)),
            Self::Status(done) => done.complete(Err(error)),
            Self::Stats(done) => done.complete(Err(error)),
            Self::Transfer { done, .. } => done.complete(Err(error)),
            Self::ChangeMembership { done, .. } => done.complete(Err(error)),
        }
    }
}

/// The node's role, term and leader, as the node thread last published them: cheap to read
/// from any thread, and possibly a little behind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Observed {
    /// The node's role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The highest index it has applied.
    pub applied: Index,
}

/// State shared by the handles and the thread.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    /// Whether requests may still be queued. Senders hold the lock while they queue; the
    /// thread closes it before it completes what is left, so no request is queued after that.
    pub(super) open: Mutex<bool>,
    pub(super) failure: Mutex<Option<Arc<NodeError>>>,
    pub(super) thread: Mutex<Option<JoinHandle<()>>>,
    /// Requests sent and not yet taken by the thread (briefly negative: the thread may take a
    /// request before its sender counts it).
    pub(super) queued: AtomicIsize,
    /// The thread is about to wait on its inbox, or waits: a new request must wake it. While
    /// it is busy it takes every queued request at the end of its round, so no wake-up (a
    /// syscall each) is sent.
    pub(super) asleep: AtomicBool,
    role: AtomicU8,
    term: AtomicU64,
    /// The leader's id, 0 for none.
    leader: AtomicU64,
    applied: AtomicU64,
}

impl Shared {
    pub(super) fn stopped(&self) -> NodeStopped {
        NodeStopped {
            cause: self
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    pub(super) fn publish(&self, observed: Observed) {
        let role = match observed.role {
            Role::Follower => 0,
            Role::Candidate => 1,
            Role::Leader => 2,
            Role::PreCandidate => 3,
        };
        self.role.store(role, Ordering::Relaxed);
        self.term.store(observed.term.0, Ordering::Relaxed);
        self.leader
            .store(observed.leader.map_or(0, NodeId::get), Ordering::Relaxed);
        self.applied.store(observed.applied.0, Ordering::Release);
    }

    fn observed(&self) -> Observed {
        let role = match self.role.load(Ordering::Relaxed) {
            1 => Role::Candidate,
            2 => Role::Leader,
            3 => Role::PreCandidate,
            _ => Role::Follower,
        };
        Observed {
            role,
            term: Term(self.term.load(Ordering::Relaxed)),
            leader: NodeId::new(self.leader.load(Ordering::Relaxed)),
            applied: Index(self.applied.load(Ordering::Acquire)),
        }
    }
}

/// A handle to a running node. Clone it freely: every clone talks to the same node thread.
///
/// Every request comes in two forms: `*_with`, which returns at once and completes a
/// [`Completion`] from the node thread, for event loops; and a blocking one that waits for the
/// answer, for everything else.
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
    rx: Receiver<Result<M::Response, RequestError>>,
    shared: Arc<Shared>,
}

impl<M: StateMachine> Proposal<M> {
    /// Waits up to `timeout` for the proposal to be applied on this node.
    ///
    /// # Errors
    ///
    /// See [`RequestError`]; [`Uncertainty::TimedOut`] if `timeout` passed first.
    pub fn wait(self, timeout: Duration) -> Result<M::Response, RequestError> {
        wait(&self.rx, timeout, &self.shared, Waiting::Write)?
    }

    /// The outcome, if it is known already.
    ///
    /// # Errors
    ///
    /// `Err(self)` while the proposal is still in flight.
    pub fn try_result(self) -> Result<Result<M::Response, RequestError>, Self> {
        match self.rx.try_recv() {
            Ok(result) => Ok(result),
            Err(TryRecvError::Empty) => Err(self),
            Err(TryRecvError::Disconnected) => Ok(Err(RequestError::Uncertain(
                Uncertainty::NodeStopped(self.shared.stopped()),
            ))),
        }
    }
}

/// What a blocking caller waits for: what it learns when the wait ends without an answer.
#[derive(Clone, Copy)]
enum Waiting {
    /// A write, which may still be applied.
    Write,
    /// A read or a call, which changes nothing.
    Read,
}

/// How long past a request's own deadline a blocking caller waits for the node to report it,
/// so that the node's answer (more precise than a timeout) normally arrives first.
const GRACE: Duration = Duration::from_millis(50);

/// Waits up to `timeout` (and the grace) for the node thread's answer on `rx`.
fn wait<T>(
    rx: &Receiver<T>,
    timeout: Duration,
    shared: &Shared,
    waiting: Waiting,
) -> Result<T, RequestError> {
    rx.recv_timeout(timeout.saturating_add(GRACE))
        .map_err(|e| match (e, waiting) {
            (RecvTimeoutError::Timeout, Waiting::Write) => {
                RequestError::Uncertain(Uncertainty::TimedOut)
            }
            (RecvTimeoutError::Timeout, Waiting::Read) => RequestError::Timeout,
            (RecvTimeoutError::Disconnected, Waiting::Write) => {
                RequestError::Uncertain(Uncertainty::NodeStopped(shared.stopped()))
            }
            (RecvTimeoutError::Disconnected, Waiting::Read) => {
                RequestError::Stopped(shared.stopped())
            }
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
        let node = Node::restore(config.raft.clone(), node_rng(id), restored)
            .map_err(NodeError::Restore)?;
        let (requests_tx, requests_rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        *shared.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        shared.publish(Observed {
            role: node.role(),
            term: node.term(),
            leader: node.leader(),
            applied,
        });
        let wake = inbox.sender();
        let storage = Arc::new(Mutex::new(storage));
        let stage = if config.storage_stage {
            Some(StorageStage::start(
                id,
                Arc::clone(&storage),
                inbox.sender(),
            )?)
        } else {
            None
        };
        let driver = Driver::new(
            node,
            Outputs::new(),
            storage,
            stage,
            state_machine,
            transport,
            inbox,
            requests_rx,
            Arc::clone(&shared),
            config.tick.max(Duration::from_micros(100)),
        );
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

    /// The default time a request may take ([`RuntimeConfig::request_timeout`]).
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// The node's role, term and leader as last published by the node thread (after each round
    /// of outputs). No call to the thread: cheap enough for every request of a server.
    #[must_use]
    pub fn observed(&self) -> Observed {
        self.shared.observed()
    }

    /// Queues `request` and wakes the thread, or completes it with [`RequestError::Stopped`].
    fn send(&self, request: Request<M>) {
        let open = self
            .shared
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !*open || self.shared.stop.load(Ordering::Acquire) {
            drop(open);
            request.fail(RequestError::Stopped(self.shared.stopped()));
            return;
        }
        match self.requests.send(request) {
            Ok(()) => {
                drop(open);
                // Counted once queued, and `asleep` read after: the thread sets `asleep` before
                // it reads the count, so either it sees this request (and takes it without
                // waiting) or this sees it asleep and wakes it (SeqCst).
                self.shared.queued.fetch_add(1, Ordering::SeqCst);
                if self.shared.asleep.load(Ordering::SeqCst) {
                    // A thread gone since is completing (or has completed) what it holds.
                    self.wake.wake();
                }
            }
            Err(mpsc::SendError(request)) => {
                drop(open);
                request.fail(RequestError::Stopped(self.shared.stopped()));
            }
        }
    }

    /// Sends the request `make` builds around a channel completion and waits up to `timeout`
    /// for the answer.
    fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Completion<T>) -> Request<M>,
        timeout: Duration,
        waiting: Waiting,
    ) -> Result<T, RequestError> {
        let (done, rx) = Completion::channel();
        self.send(make(done));
        wait(&rx, timeout, &self.shared, waiting)?
    }

    /// Proposes `command`; `done` is called once it is applied on this node (with what the
    /// state machine answered), refused, dropped by a change of leader, or `timeout` has
    /// passed. Returns at once.
    ///
    /// `command` is anything that converts into a [`Payload`]: a `Vec<u8>` or a [`Payload`] is
    /// moved in without copying the bytes, a `&[u8]` is copied once.
    pub fn propose_with(
        &self,
        command: impl Into<Payload>,
        timeout: Duration,
        done: Completion<M::Response>,
    ) {
        self.send(Request::Propose {
            command: command.into(),
            deadline: Instant::now() + timeout,
            done,
        });
    }

    /// Proposes `command` and returns at once; [`Proposal::wait`] for the outcome. The node
    /// gives up on it after the request timeout.
    pub fn propose_async(&self, command: impl Into<Payload>) -> Proposal<M> {
        let (done, rx) = Completion::channel();
        self.propose_with(command, self.timeout, done);
        Proposal {
            rx,
            shared: Arc::clone(&self.shared),
        }
    }

    /// Proposes `command` and waits (up to the request timeout) until it is applied on this
    /// node; returns what the state machine answered.
    ///
    /// # Errors
    ///
    /// See [`RequestError`]. [`RequestError::NotLeader`] names the leader to retry at.
    pub fn propose(&self, command: impl Into<Payload>) -> Result<M::Response, RequestError> {
        self.propose_timeout(command, self.timeout)
    }

    /// [`RaftNode::propose`] with its own timeout.
    ///
    /// # Errors
    ///
    /// See [`RequestError`].
    pub fn propose_timeout(
        &self,
        command: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<M::Response, RequestError> {
        let command = command.into();
        self.call(
            |done| Request::Propose {
                command,
                deadline: Instant::now() + timeout,
                done,
            },
            timeout,
            Waiting::Write,
        )
    }

    /// A linearizable read: confirms leadership (ReadIndex), waits until the state machine has
    /// applied the read point, then answers `query` from it; `done` gets the answer, or an error
    /// (this node does not lead, leadership changed, `timeout` passed). Returns at once.
    ///
    /// With follower reads on (`raft_core::Config::follower_reads`), a follower that knows its
    /// leader serves it too, at a read index the leader confirms.
    pub fn read_with(
        &self,
        query: M::Query,
        timeout: Duration,
        done: Completion<M::QueryResponse>,
    ) {
        self.send_read(query, timeout, false, done);
    }

    /// [`RaftNode::read_with`], served only while this node leads: a follower refuses it with
    /// [`RequestError::NotLeader`] even with follower reads on. For a read that must be ordered
    /// after writes sent to the leader (a server forwarding a client's `SET` then `GET`): the
    /// leader serves a read no earlier than its own last proposal.
    pub fn read_at_leader_with(
        &self,
        query: M::Query,
        timeout: Duration,
        done: Completion<M::QueryResponse>,
    ) {
        self.send_read(query, timeout, true, done);
    }

    fn send_read(
        &self,
        query: M::Query,
        timeout: Duration,
        leader_only: bool,
        done: Completion<M::QueryResponse>,
    ) {
        self.send(Request::Read {
            query,
            deadline: Instant::now() + timeout,
            leader_only,
            done,
        });
    }

    /// A linearizable read (see [`RaftNode::read_with`]), waiting up to the request timeout.
    ///
    /// # Errors
    ///
    /// See [`RequestError`]. Only the leader serves reads: [`RequestError::NotLeader`] names the
    /// one to retry at; [`RequestError::LeaderChanged`] means leadership changed meanwhile.
    pub fn read(&self, query: M::Query) -> Result<M::QueryResponse, RequestError> {
        self.read_timeout(query, self.timeout)
    }

    /// [`RaftNode::read`] with its own timeout.
    ///
    /// # Errors
    ///
    /// See [`RequestError`].
    pub fn read_timeout(
        &self,
        query: M::Query,
        timeout: Duration,
    ) -> Result<M::QueryResponse, RequestError> {
        self.call(
            |done| Request::Read {
                query,
                deadline: Instant::now() + timeout,
                leader_only: false,
                done,
            },
            timeout,
            Waiting::Read,
        )
    }

    /// Answers `query` from this node's state machine as it is, without confirming leadership:
    /// a *stale* read, which may miss writes committed elsewhere (on a follower, or on a leader
    /// that has been deposed without knowing). For monitoring and for checking what a node
    /// holds; use [`RaftNode::read_with`] for reads that must see every acknowledged write.
    pub fn read_local_with(&self, query: M::Query, done: Completion<M::QueryResponse>) {
        self.send(Request::ReadLocal { query, done });
    }

    /// [`RaftNode::read_local_with`], waiting up to the request timeout.
    ///
    /// # Errors
    ///
    /// [`RequestError::Stopped`], [`RequestError::Timeout`].
    pub fn read_local(&self, query: M::Query) -> Result<M::QueryResponse, RequestError> {
        self.call(
            |done| Request::ReadLocal { query, done },
            self.timeout,
            Waiting::Read,
        )
    }

    /// The node's current state (role, term, leader, indexes, per-peer progress), to `done`.
    pub fn status_with(&self, done: Completion<Status>) {
        self.send(Request::Status(done));
    }

    /// The node's current state: role, term, leader, indexes, per-peer progress.
    ///
    /// # Errors
    ///
    /// [`RequestError::Stopped`] if the node is not running; [`RequestError::Timeout`] if it
    /// did not answer within the request timeout.
    pub fn status(&self) -> Result<Status, RequestError> {
        self.call(Request::Status, self.timeout, Waiting::Read)
    }

    /// The core's counters: elections, rejected network input, refusals, aborted reads.
    ///
    /// # Errors
    ///
    /// As for [`RaftNode::status`].
    pub fn stats(&self) -> Result<Stats, RequestError> {
        self.call(Request::Stats, self.timeout, Waiting::Read)
    }

    /// Asks this node, the leader, to hand leadership to `to`; `done` is called once the
    /// transfer has started (or was refused). Watch [`RaftNode::observed`] for its outcome.
    pub fn transfer_leader_with(&self, to: NodeId, done: Completion<()>) {
        self.send(Request::Transfer { to, done });
    }

    /// [`RaftNode::transfer_leader_with`], waiting for the transfer to start.
    ///
    /// # Errors
    ///
    /// See [`RequestError`]: [`RequestError::NotLeader`], [`RequestError::Refused`] (the target
    /// is not a voter), [`RequestError::Uncertain`] if no answer came in time (the transfer
    /// may still start).
    pub fn transfer_leader(&self, to: NodeId) -> Result<(), RequestError> {
        self.call(
            |done| Request::Transfer { to, done },
            self.timeout,
            Waiting::Write,
        )
    }

    /// Asks this node, the leader, to change the cluster's membership to `target` (build it
    /// with [`Membership::with_changes`] from the current one, [`Status::membership`]); `done`
    /// gets the id of the configuration entry appended: the joint configuration when the voters
    /// change (the leader appends `target` itself once that commits), or `target` when only
    /// learners do.
    ///
    /// The change is finished when the leader has committed `target`; until then another change
    /// is refused with [`Refusal::ChangePending`](raft_core::Refusal::ChangePending). A node
    /// joining the cluster must be running first, started on storage whose membership names the
    /// current voters and itself as a learner (the in-process test cluster's
    /// `test_util::cluster::Cluster::add_node` does exactly that).
    pub fn change_membership_with(&self, target: Membership, done: Completion<LogId>) {
        self.send(Request::ChangeMembership {
            target: Box::new(target),
            done,
        });
    }

    /// [`RaftNode::change_membership_with`], waiting up to the request timeout for the change
    /// to start.
    ///
    /// # Errors
    ///
    /// See [`RequestError`].
    pub fn change_membership(&self, target: Membership) -> Result<LogId, RequestError> {
        self.change_membership_timeout(target, self.timeout)
    }

    /// [`RaftNode::change_membership`] with its own timeout.
    ///
    /// # Errors
    ///
    /// See [`RequestError`].
    pub fn change_membership_timeout(
        &self,
        target: Membership,
        timeout: Duration,
    ) -> Result<LogId, RequestError> {
        let target = Box::new(target);
        self.call(
            |done| Request::ChangeMembership { target, done },
            timeout,
            Waiting::Write,
        )
    }

    /// Whether the node has stopped (shut down, or stopped by an error): cheap, an atomic load.
    #[must_use]
    pub fn has_stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
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

    /// Stops the node thread and waits for it. Requests still waiting are completed (see the
    /// [module docs](super)). What storage has not synced by then is not acknowledged to anyone,
    /// as after a crash.
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
