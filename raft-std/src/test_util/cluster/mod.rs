//! An in-process cluster for tests and examples: N [`RaftNode`]s on a [`ChannelNetwork`], with
//! crashes, restarts and partitions.
//!
//! Storage comes from a [`StorageFactory`]: [`MemStorageFactory`] keeps each node's
//! [`MemDisk`] across crashes; [`FileStorageFactory`] opens a
//! [`FileStorage`](crate::storage::file::FileStorage) in a directory per node, on real files or
//! on a fault-injecting [`FaultyFs`](crate::test_util::faulty::FaultyFs) per node.
//!
//! ```
//! use std::io;
//! use raft_std::test_util::cluster::Cluster;
//! use raft_std::state_machine::StateMachine;
//!
//! /// Sums the numbers proposed.
//! #[derive(Default)]
//! struct Sum(u64);
//!
//! impl StateMachine for Sum {
//!     type Response = u64;
//!     type Query = ();
//!     type QueryResponse = u64;
//!     fn apply(&mut self, _index: raft_core::Index, command: &[u8]) -> u64 {
//!         self.0 += command.iter().map(|&b| u64::from(b)).sum::<u64>();
//!         self.0
//!     }
//!     fn query(&self, _: &()) -> u64 {
//!         self.0
//!     }
//!     fn snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
//!         out.write_all(&self.0.to_le_bytes())
//!     }
//!     fn restore(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
//!         let mut b = [0; 8];
//!         input.read_exact(&mut b)?;
//!         self.0 = u64::from_le_bytes(b);
//!         Ok(())
//!     }
//! }
//!
//! let cluster = Cluster::start(3, |_| Sum::default())?;
//! assert_eq!(cluster.propose(vec![2])?, 2);
//! assert_eq!(cluster.propose(vec![3])?, 5);
//! assert_eq!(cluster.read(())?, 5);
//! cluster.shutdown()?;
//! # Ok::<(), raft_std::test_util::cluster::ClusterError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use raft_core::{LogId, Membership, NodeId, Payload, Role};

use crate::client::{RequestError, Route, Router};
use crate::runtime::{NodeError, RaftNode, RuntimeConfig};
use crate::state_machine::StateMachine;
use crate::storage::StorageError;
use crate::test_util::mem::MemDisk;
use crate::transport::ChannelNetwork;

mod storage_factory;

pub use storage_factory::{FileStorageFactory, MemStorageFactory, StorageFactory};

/// How a cluster runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// Number of nodes (ids 1 to `nodes`).
    pub nodes: usize,
    /// Every node's runtime configuration (the id is set per node).
    pub runtime: RuntimeConfig,
    /// How long the cluster's own operations (proposals and reads with retries, waiting for a
    /// leader) may take. Default 10 s.
    pub timeout: Duration,
}

impl ClusterOptions {
    /// `nodes` nodes with the default runtime configuration.
    #[must_use]
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            runtime: RuntimeConfig::new(NodeId::MIN),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a cluster operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError {
    /// The cluster size is not a valid membership.
    Membership(raft_core::MembershipError),
    /// A node's storage could not be opened.
    Storage(NodeId, StorageError),
    /// A node could not start, or stopped with this error.
    Node(NodeId, Arc<NodeError>),
    /// There is no such node, or it is not running.
    NoSuchNode(NodeId),
    /// The node is already part of the cluster (see [`Cluster::add_node`]).
    NodeExists(NodeId),
    /// Waiting for `what` took longer than the timeout.
    Timeout {
        /// What was waited for.
        what: String,
    },
    /// A request (proposal, read, membership change) failed in a way a retry cannot fix, or
    /// its outcome is unknown ([`RequestError::outcome`] says which).
    Request(RequestError),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Membership(e) => write!(f, "invalid cluster: {e}"),
            Self::Storage(id, e) => write!(f, "node {id}: cannot open storage: {e}"),
            Self::Node(id, e) => write!(f, "node {id}: {e}"),
            Self::NoSuchNode(id) => write!(f, "node {id} is not running"),
            Self::NodeExists(id) => write!(f, "node {id} is already in the cluster"),
            Self::Timeout { what } => write!(f, "timed out waiting for {what}"),
            Self::Request(e) => write!(f, "request failed: {e}"),
        }
    }
}

impl std::error::Error for ClusterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Storage(_, e) => Some(e),
            Self::Node(_, e) => Some(&**e),
            Self::Request(e) => Some(e),
            _ => None,
        }
    }
}

type MakeStateMachine<M> = Box<dyn FnMut(NodeId) -> M + Send>;

/// An in-process cluster. Dropping it shuts every node down.
pub struct Cluster<M: StateMachine, F: StorageFactory = MemStorageFactory> {
    ids: Vec<NodeId>,
    membership: Membership,
    network: ChannelNetwork,
    // Behind mutexes so that the cluster is `Sync` (shared by client threads); only `&mut self`
    // methods use them.
    storage: Mutex<F>,
    make_state_machine: Mutex<MakeStateMachine<M>>,
    runtime: RuntimeConfig,
    timeout: Duration,
    nodes: BTreeMap<NodeId, RaftNode<M>>,
    /// Where requests go first, and next after a failure.
    router: Mutex<Router>,
}

impl<M: StateMachine, F: StorageFactory> fmt::Debug for Cluster<M, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("ids", &self.ids)
            .field("running", &self.nodes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<M: StateMachine> Cluster<M> {
    /// Starts `nodes` nodes on in-memory storage with the default configuration; each gets the
    /// state machine `make_state_machine` builds for it (again at every restart).
    ///
    /// # Errors
    ///
    /// An invalid size, or a node that cannot start.
    pub fn start(
        nodes: usize,
        make_state_machine: impl FnMut(NodeId) -> M + Send + 'static,
    ) -> Result<Self, ClusterError> {
        Self::with_storage(
            ClusterOptions::new(nodes),
            MemStorageFactory::new(),
            make_state_machine,
        )
    }

    /// Node `id`'s in-memory disk.
    #[must_use]
    pub fn disk(&self, id: NodeId) -> Option<MemDisk> {
        self.storage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .disk(id)
            .cloned()
    }
}

impl<M: StateMachine, F: StorageFactory> Cluster<M, F> {
    /// Starts a cluster with these options on storage from `storage`.
    ///
    /// # Errors
    ///
    /// An invalid size, storage that cannot be opened, or a node that cannot start.
    pub fn with_storage(
        options: ClusterOptions,
        storage: F,
        make_state_machine: impl FnMut(NodeId) -> M + Send + 'static,
    ) -> Result<Self, ClusterError> {
        let ids: Vec<NodeId> = (1..=options.nodes as u64).filter_map(NodeId::new).collect();
        let membership = Membership::new(&ids).map_err(ClusterError::Membership)?;
        let ids_for_router = ids.clone();
        let options_tick = options.runtime.tick;
        let mut cluster = Self {
            ids,
            membership,
            network: ChannelNetwork::new(),
            storage: Mutex::new(storage),
            make_state_machine: Mutex::new(Box::new(make_state_machine)),
            runtime: options.runtime,
            timeout: options.timeout,
            nodes: BTreeMap::new(),
            router: Mutex::new(Router::new(ids_for_router).with_pause(options_tick)),
        };
        for id in cluster.ids.clone() {
            cluster.restart(id)?;
        }
        Ok(cluster)
    }

    /// Every node's id, running or not.
    #[must_use]
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The running node `id`.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<&RaftNode<M>> {
        self.nodes.get(&id)
    }

    /// The ids of the running nodes.
    #[must_use]
    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The network, to cut links finer than [`Cluster::partition`] does.
    #[must_use]
    pub fn network(&self) -> &ChannelNetwork {
        &self.network
    }

    /// Runs `f` on the storage factory.
    pub fn with_storage_factory<R>(&self, f: impl FnOnce(&mut F) -> R) -> R {
        f(&mut self.storage.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The running leader of the highest term, if any.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.status().ok())
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.id)
    }

    /// Waits until `done` holds, checking every tick.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] naming `what` if it does not hold within `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<(), ClusterError> {
        self.poll(timeout, what, |c| done(c).then_some(()))
    }

    /// Waits until `found` finds something, checking every tick; returns it.
    fn poll<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut found: impl FnMut(&Self) -> Option<T>,
    ) -> Result<T, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = found(self) {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: what.to_owned(),
                });
            }
            thread::sleep(self.runtime.tick);
        }
    }

    /// Waits until a running node leads; returns it.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] if none does within `timeout`.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ClusterError> {
        self.poll(timeout, "a leader", Self::leader)
    }

    fn router(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Proposes `command` at the leader (found by asking around, redirected on
    /// [`RequestError::NotLeader`]) and returns the state machine's response. A proposal that
    /// was not applied (dropped by a change of leader, refused during a transfer) is retried.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] after the cluster's timeout; [`ClusterError::Request`] for an
    /// outcome a retry cannot fix or that is unknown (the proposal timed out at the node, or the
    /// node stopped after appending it: the next call goes to another node).
    pub fn propose(&self, command: impl Into<Payload>) -> Result<M::Response, ClusterError> {
        // Converted once; each retry shares the bytes.
        let command = command.into();
        self.at_leader("a proposal to commit", false, |node, remaining| {
            node.propose_timeout(command.clone(), remaining)
        })
    }

    /// [`Cluster::propose`] for a command that carries a session
    /// ([`Stamp`](crate::client::Stamp)): sending it again cannot apply it twice, so it is
    /// retried also when its outcome is unknown, at whichever node leads, until it is answered
    /// or the cluster's timeout passes.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] after the cluster's timeout; [`ClusterError::Request`] for a
    /// refusal a retry cannot fix.
    pub fn propose_idempotent(
        &self,
        command: impl Into<Payload>,
    ) -> Result<M::Response, ClusterError> {
        let command = command.into();
        self.at_leader("a proposal to commit", true, |node, remaining| {
            node.propose_timeout(command.clone(), remaining.min(node.request_timeout()))
        })
    }

    /// Starts a membership change towards `target` at the leader (found as for
    /// [`Cluster::propose`]); returns the id of the configuration entry appended (see
    /// [`RaftNode::change_membership`]). A change refused because an earlier one is not finished
    /// ([`Refusal::ChangePending`](raft_core::Refusal::ChangePending)) or during a leadership
    /// transfer is retried, so consecutive calls run one after the other.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] after the cluster's timeout; [`ClusterError::Request`] for a
    /// refusal a retry cannot fix (an invalid target) or an unknown outcome.
    pub fn change_membership(&self, target: &Membership) -> Result<LogId, ClusterError> {
        self.at_leader("a membership change to start", false, |node, remaining| {
            node.change_membership_timeout(target.clone(), remaining)
        })
    }

    /// A linearizable read at the leader (found as for [`Cluster::propose`]), retried when a
    /// change of leader aborts it.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] after the cluster's timeout; [`ClusterError::Request`] for a
    /// failure a retry cannot fix.
    pub fn read(&self, query: M::Query) -> Result<M::QueryResponse, ClusterError>
    where
        M::Query: Clone,
    {
        self.at_leader("a read", true, |node, remaining| {
            node.read_timeout(query.clone(), remaining)
        })
    }

    /// Runs `attempt` where the [`Router`] says, following redirects and retrying until it
    /// succeeds, fails for good, or the cluster's timeout passes. `idempotent`: the request may
    /// be sent again even when its outcome is unknown.
    fn at_leader<T>(
        &self,
        what: &str,
        idempotent: bool,
        mut attempt: impl FnMut(&RaftNode<M>, Duration) -> Result<T, RequestError>,
    ) -> Result<T, ClusterError> {
        let deadline = Instant::now() + self.timeout;
        let timed_out = || ClusterError::Timeout {
            what: what.to_owned(),
        };
        let mut target = self.router().target();
        let mut tries = 0;
        loop {
            let now = Instant::now();
            let Some(id) = target.filter(|_| now < deadline) else {
                return Err(timed_out());
            };
            let running = self.nodes.get(&id).filter(|n| n.is_running());
            let route = match running {
                None => self.router().unreachable(id),
                Some(node) => {
                    tries += 1;
                    match attempt(node, deadline - now) {
                        Ok(value) => {
                            self.router().succeeded(id);
                            return Ok(value);
                        }
                        Err(e) => match self.router().failed(id, &e, idempotent, tries) {
                            Route::GiveUp => return Err(ClusterError::Request(e)),
                            route => route,
                        },
                    }
                }
            };
            target = match route {
                Route::Now(next) => Some(next),
                Route::After(pause, next) => {
                    thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                    Some(next)
                }
                Route::GiveUp => None,
            };
        }
    }

    /// Crashes node `id`: its thread stops at once and storage keeps only what it synced.
    /// Messages to it are lost until it restarts.
    pub fn crash(&mut self, id: NodeId) {
        self.storage
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .crash(id);
        self.network.unregister(id);
        if let Some(node) = self.nodes.remove(&id) {
            // The error, if any, is the crash itself (storage refusing a write after it).
            let _ = node.shutdown();
        }
    }

    /// Starts node `id` again from its storage (or for the first time).
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoSuchNode`] if `id` is not a member; storage that cannot be opened; a
    /// node that cannot start.
    pub fn restart(&mut self, id: NodeId) -> Result<(), ClusterError> {
        if !self.ids.contains(&id) {
            return Err(ClusterError::NoSuchNode(id));
        }
        if self.nodes.contains_key(&id) {
            return Ok(());
        }
        let membership = self.membership.clone();
        self.start_node(id, &membership)
    }

    /// Starts a new node `id` that can join the running cluster: its storage is created with
    /// the current voters (the leader's configuration) and itself as a learner, as a joining
    /// node must be. It is not a member until a [`Cluster::change_membership`] adds it (as a
    /// learner, then a voter); from then on [`Cluster::restart`] restarts it like any other.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NodeExists`] if `id` is already known; [`ClusterError::Timeout`] if no
    /// leader is found within the cluster's timeout; storage that cannot be opened; a node that
    /// cannot start.
    pub fn add_node(&mut self, id: NodeId) -> Result<(), ClusterError> {
        if self.ids.contains(&id) {
            return Err(ClusterError::NodeExists(id));
        }
        let current = self.poll(self.timeout, "the leader's membership", |c| {
            let leader = c.leader()?;
            c.nodes.get(&leader)?.status().ok().map(|s| s.membership)
        })?;
        let membership =
            Membership::with_learners(current.voters(), &[id]).map_err(ClusterError::Membership)?;
        self.start_node(id, &membership)?;
        self.ids.push(id);
        self.router().add(id);
        Ok(())
    }

    /// Opens node `id`'s storage (created for `membership` if new) and starts the node.
    fn start_node(&mut self, id: NodeId, membership: &Membership) -> Result<(), ClusterError> {
        let (storage, recovered) = self
            .storage
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .open(id, membership)
            .map_err(|e| ClusterError::Storage(id, e))?;
        let (transport, inbox) = self.network.register(id);
        let mut config = self.runtime.clone();
        config.raft.id = id;
        let state_machine = (self
            .make_state_machine
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner))(id);
        let node = RaftNode::start(config, storage, recovered, state_machine, transport, inbox)
            .map_err(|e| ClusterError::Node(id, Arc::new(e)))?;
        self.nodes.insert(id, node);
        Ok(())
    }

    /// Cuts every link between the nodes in `a` and those in `b`, both ways.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        self.network.partition(a, b);
    }

    /// Cuts node `id` off from every other node, both ways.
    pub fn isolate(&self, id: NodeId) {
        let others: Vec<NodeId> = self.ids.iter().copied().filter(|&o| o != id).collect();
        self.network.partition(&[id], &others);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.network.heal();
    }

    /// Shuts every node down.
    ///
    /// # Errors
    ///
    /// The first error that had stopped a node.
    pub fn shutdown(mut self) -> Result<(), ClusterError> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<(), ClusterError> {
        let mut first = Ok(());
        for (id, node) in std::mem::take(&mut self.nodes) {
            if let Err(e) = node.shutdown()
                && first.is_ok()
            {
                first = Err(ClusterError::Node(id, e));
            }
        }
        first
    }
}

impl<M: StateMachine, F: StorageFactory> Drop for Cluster<M, F> {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}
