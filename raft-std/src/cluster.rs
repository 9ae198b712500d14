//! An in-process cluster for tests and examples: N [`RaftNode`]s on a [`ChannelNetwork`], with
//! crashes, restarts and partitions.
//!
//! Storage comes from a [`StorageFactory`]: [`MemStorageFactory`] keeps each node's
//! [`MemDisk`] across crashes; [`FileStorageFactory`] opens a [`FileStorage`] in a directory per
//! node, on real files or on a fault-injecting [`FaultyFs`] per node.
//!
//! ```
//! use std::io;
//! use raft_std::cluster::Cluster;
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
//! # Ok::<(), raft_std::cluster::ClusterError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Bound::{Excluded, Unbounded};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use raft_core::{LogId, Membership, NodeId, Payload, Refusal, Role};

use crate::runtime::{
    MembershipChangeError, NodeError, ProposeError, RaftNode, ReadError, RuntimeConfig,
};
use crate::state_machine::StateMachine;
use crate::storage::faulty::{CrashMode, FaultyFs};
use crate::storage::file::{FileStorage, Identity, Options};
use crate::storage::fs::{FileSystem, StdFs};
use crate::storage::mem::{MemDisk, MemStorage};
use crate::storage::{Recovered, Storage, StorageError};
use crate::transport::ChannelNetwork;

/// Opens each node's storage, at start and at every restart.
pub trait StorageFactory: Send + 'static {
    /// The storage a node runs on.
    type Storage: Storage;

    /// Opens node `id`'s storage (creating it, for a cluster of `membership`, on first use) and
    /// reads back what it holds.
    ///
    /// # Errors
    ///
    /// Whatever opening the storage fails with.
    fn open(
        &mut self,
        id: NodeId,
        membership: &Membership,
    ) -> Result<(Self::Storage, Recovered), StorageError>;

    /// Node `id` is crashing: from now on nothing more it writes may become durable. Called
    /// before its thread is stopped. The default does nothing (a process-local file storage has
    /// no way to lose what the page cache holds).
    fn crash(&mut self, id: NodeId) {
        let _ = id;
    }
}

/// Each node's [`MemDisk`], kept across crashes and restarts.
#[derive(Debug, Default)]
pub struct MemStorageFactory {
    disks: HashMap<NodeId, MemDisk>,
}

impl MemStorageFactory {
    /// No disks yet: each is created when its node first starts.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Node `id`'s disk, once it has started.
    #[must_use]
    pub fn disk(&self, id: NodeId) -> Option<&MemDisk> {
        self.disks.get(&id)
    }
}

impl StorageFactory for MemStorageFactory {
    type Storage = MemStorage;

    fn open(
        &mut self,
        id: NodeId,
        membership: &Membership,
    ) -> Result<(MemStorage, Recovered), StorageError> {
        let disk = self
            .disks
            .entry(id)
            .or_insert_with(|| MemDisk::new(membership.clone()));
        MemStorage::open(disk)
    }

    fn crash(&mut self, id: NodeId) {
        if let Some(disk) = self.disks.get(&id) {
            disk.crash();
        }
    }
}

/// A file system a [`FileStorageFactory`] can crash: what a node loses when it crashes.
pub trait CrashableFs: FileSystem + Clone {
    /// The machine under this file system crashes; `mode` and `seed` say what survives of the
    /// data that was not durable (see [`CrashMode`]).
    fn crash(&self, mode: CrashMode, seed: u64);
}

impl CrashableFs for StdFs {
    /// Does nothing: a process cannot make the kernel drop its page cache, so a crash keeps
    /// everything written (as [`CrashMode::KeepAll`]), whatever `mode` asks.
    fn crash(&self, _mode: CrashMode, _seed: u64) {}
}

impl CrashableFs for FaultyFs {
    fn crash(&self, mode: CrashMode, seed: u64) {
        Self::crash(self, mode, seed);
    }
}

type MakeFs<F> = Box<dyn FnMut(NodeId) -> F + Send>;

/// Opens a [`FileStorage`] per node, in `<root>/node-<id>`, on a file system of its own per
/// node (so that crashing one node loses that node's unsynced data only).
///
/// - [`FileStorageFactory::std`]: real files under a directory (e.g. a temporary one). A crash
///   keeps what was written: only the process dies.
/// - [`FileStorageFactory::faulty`]: a [`FaultyFs`] per node. A crash loses (or tears, see
///   [`FileStorageFactory::set_crash_mode`]) what the node had not synced, on that node only;
///   [`FileStorageFactory::fs`] gives each node's file system, to inject faults with a
///   [`FaultPlan`](crate::storage::faulty::FaultPlan).
///
/// Every node's directory is tagged with the same cluster id, so a node cannot be opened on
/// another's data.
pub struct FileStorageFactory<F: CrashableFs> {
    root: PathBuf,
    cluster_id: u64,
    options: Options,
    make_fs: MakeFs<F>,
    file_systems: BTreeMap<NodeId, F>,
    crash_mode: CrashMode,
    rng: u64,
}

impl<F: CrashableFs> fmt::Debug for FileStorageFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorageFactory")
            .field("root", &self.root)
            .field("cluster_id", &self.cluster_id)
            .field("options", &self.options)
            .field("nodes", &self.file_systems.keys().collect::<Vec<_>>())
            .field("crash_mode", &self.crash_mode)
            .finish_non_exhaustive()
    }
}

impl FileStorageFactory<StdFs> {
    /// Real files: node `id` keeps its data in `<root>/node-<id>` (created as needed).
    #[must_use]
    pub fn std(root: impl Into<PathBuf>) -> Self {
        Self::new(root, |_| StdFs)
    }
}

impl FileStorageFactory<FaultyFs> {
    /// A fresh in-memory [`FaultyFs`] per node, its short writes drawing from `seed` and the
    /// node id; crashes lose what the node had not synced ([`CrashMode::LoseUnsynced`]) unless
    /// [`Self::set_crash_mode`] says otherwise, and draw what survives a tear from `seed`.
    #[must_use]
    pub fn faulty(seed: u64) -> Self {
        let mut factory = Self::new("/raft", move |id| {
            FaultyFs::new(seed ^ id.get().wrapping_mul(0x9E37_79B9_7F4A_7C15))
        });
        factory.rng = seed;
        factory
    }
}

impl<F: CrashableFs> FileStorageFactory<F> {
    /// Node `id` keeps its data in `<root>/node-<id>` of the file system `make_fs(id)` returns
    /// (called once per node, at its first start).
    #[must_use]
    pub fn new(
        root: impl Into<PathBuf>,
        make_fs: impl FnMut(NodeId) -> F + Send + 'static,
    ) -> Self {
        Self {
            root: root.into(),
            cluster_id: 1,
            options: Options::default(),
            make_fs: Box::new(make_fs),
            file_systems: BTreeMap::new(),
            crash_mode: CrashMode::LoseUnsynced,
            rng: 0,
        }
    }

    /// Uses these storage [`Options`] (segment size, write buffer) for every node.
    #[must_use]
    pub const fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Tags every node's directory with this cluster id (default 1).
    #[must_use]
    pub const fn with_cluster_id(mut self, cluster_id: u64) -> Self {
        self.cluster_id = cluster_id;
        self
    }

    /// What later crashes do to unsynced data (ignored by file systems that cannot lose it,
    /// such as [`StdFs`]).
    pub const fn set_crash_mode(&mut self, mode: CrashMode) {
        self.crash_mode = mode;
    }

    /// Node `id`'s data directory.
    #[must_use]
    pub fn dir(&self, id: NodeId) -> PathBuf {
        self.root.join(format!("node-{id}"))
    }

    /// Node `id`'s file system, once it has started.
    #[must_use]
    pub fn fs(&self, id: NodeId) -> Option<&F> {
        self.file_systems.get(&id)
    }
}

impl<F: CrashableFs> StorageFactory for FileStorageFactory<F> {
    type Storage = FileStorage<F>;

    fn open(
        &mut self,
        id: NodeId,
        membership: &Membership,
    ) -> Result<(FileStorage<F>, Recovered), StorageError> {
        let make_fs = &mut self.make_fs;
        let fs = self
            .file_systems
            .entry(id)
            .or_insert_with(|| make_fs(id))
            .clone();
        let identity = Identity {
            cluster_id: self.cluster_id,
            node_id: id,
        };
        FileStorage::open_with(fs, self.dir(id), identity, membership.clone(), self.options)
    }

    fn crash(&mut self, id: NodeId) {
        if let Some(fs) = self.file_systems.get(&id) {
            self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            fs.crash(self.crash_mode, self.rng ^ id.get());
        }
    }
}

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
    /// A proposal failed in a way a retry cannot fix (or whose outcome is unknown).
    Propose(ProposeError),
    /// A read failed in a way a retry cannot fix.
    Read(ReadError),
    /// A membership change failed in a way a retry cannot fix (or its outcome is unknown).
    MembershipChange(MembershipChangeError),
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
            Self::Propose(e) => write!(f, "proposal failed: {e}"),
            Self::Read(e) => write!(f, "read failed: {e}"),
            Self::MembershipChange(e) => write!(f, "membership change failed: {e}"),
        }
    }
}

impl std::error::Error for ClusterError {}

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
    /// The node that last answered as leader: where requests go first.
    hint: Mutex<Option<NodeId>>,
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
        let mut cluster = Self {
            ids,
            membership,
            network: ChannelNetwork::new(),
            storage: Mutex::new(storage),
            make_state_machine: Mutex::new(Box::new(make_state_machine)),
            runtime: options.runtime,
            timeout: options.timeout,
            nodes: BTreeMap::new(),
            hint: Mutex::new(None),
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

    /// The node to try first, and the one after `after` in turn. Nodes whose thread stopped
    /// (on a storage error, say) are skipped.
    fn target(&self, after: Option<NodeId>) -> Option<NodeId> {
        let alive = |id: &NodeId| self.nodes.get(id).is_some_and(RaftNode::is_running);
        let Some(a) = after else {
            let hint = *self.hint.lock().unwrap_or_else(PoisonError::into_inner);
            return hint
                .filter(alive)
                .or_else(|| self.nodes.keys().copied().find(alive));
        };
        // The nodes after `a`, then from the first one round to `a`: each looked at once.
        self.nodes
            .range((Excluded(a), Unbounded))
            .chain(self.nodes.range(..=a))
            .map(|(&id, _)| id)
            .find(alive)
    }

    fn set_hint(&self, id: Option<NodeId>) {
        *self.hint.lock().unwrap_or_else(PoisonError::into_inner) = id;
    }

    /// Proposes `command` at the leader (found by asking around, redirected on
    /// [`ProposeError::NotLeader`]) and returns the state machine's response. A proposal
    /// dropped by a change of leader is retried: it was not applied.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] after the cluster's timeout; [`ClusterError::Propose`] for an
    /// outcome a retry cannot fix or that is unknown (a timeout at the node, a node that
    /// stopped: the next call goes to another node).
    pub fn propose(&self, command: impl Into<Payload>) -> Result<M::Response, ClusterError> {
        // Converted once; each retry shares the bytes.
        let command = command.into();
        self.at_leader("a proposal to commit", |node, remaining| {
            match node.propose_timeout(command.clone(), remaining) {
                Ok(response) => Attempt::Done(response),
                Err(ProposeError::NotLeader { leader }) => Attempt::Redirect(leader),
                Err(ProposeError::Dropped | ProposeError::Refused(Refusal::TransferInProgress)) => {
                    Attempt::Again
                }
                Err(ProposeError::Timeout) => Attempt::TimedOut,
                Err(e) => {
                    // A stopped node's outcome is unknown, but the next request goes elsewhere.
                    let next_elsewhere = matches!(e, ProposeError::NodeStopped(_));
                    Attempt::Failed(ClusterError::Propose(e), next_elsewhere)
                }
            }
        })
    }

    /// Starts a membership change towards `target` at the leader (found as for
    /// [`Cluster::propose`]); returns the id of the configuration entry appended (see
    /// [`RaftNode::change_membership`]). A change refused because an earlier one is not finished
    /// ([`Refusal::ChangePending`]) or during a leadership transfer is retried, so consecutive
    /// calls run one after the other.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] after the cluster's timeout; [`ClusterError::MembershipChange`]
    /// for a refusal a retry cannot fix (an invalid target) or an unknown outcome.
    pub fn change_membership(&self, target: &Membership) -> Result<LogId, ClusterError> {
        self.at_leader("a membership change to start", |node, remaining| match node
            .change_membership_timeout(target.clone(), remaining)
        {
            Ok(id) => Attempt::Done(id),
            Err(MembershipChangeError::NotLeader { leader }) => Attempt::Redirect(leader),
            Err(MembershipChangeError::Refused(
                Refusal::ChangePending | Refusal::TransferInProgress,
            )) => Attempt::Again,
            Err(MembershipChangeError::Timeout) => Attempt::TimedOut,
            Err(e) => {
                let next_elsewhere = matches!(e, MembershipChangeError::NodeStopped(_));
                Attempt::Failed(ClusterError::MembershipChange(e), next_elsewhere)
            }
        })
    }

    /// Runs `attempt` at the node believed to lead, following redirects and retrying until it
    /// is done, fails, or the cluster's timeout passes.
    fn at_leader<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut(&RaftNode<M>, Duration) -> Attempt<T>,
    ) -> Result<T, ClusterError> {
        let deadline = Instant::now() + self.timeout;
        let timed_out = || ClusterError::Timeout {
            what: what.to_owned(),
        };
        let mut target = self.target(None);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(timed_out());
            }
            let Some(node) = target.and_then(|t| self.nodes.get(&t)) else {
                thread::sleep(self.runtime.tick);
                target = self.target(None);
                continue;
            };
            match attempt(node, deadline - now) {
                Attempt::Done(value) => {
                    self.set_hint(Some(node.id()));
                    return Ok(value);
                }
                Attempt::Redirect(leader) => target = self.redirect(node.id(), leader),
                Attempt::Again => thread::sleep(self.runtime.tick),
                Attempt::Elsewhere => {
                    self.set_hint(None);
                    thread::sleep(self.runtime.tick);
                    target = self.target(Some(node.id()));
                }
                Attempt::TimedOut => return Err(timed_out()),
                Attempt::Failed(e, next_elsewhere) => {
                    if next_elsewhere {
                        self.set_hint(None);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Where to go after `from` said it does not lead and named `leader`.
    fn redirect(&self, from: NodeId, leader: Option<NodeId>) -> Option<NodeId> {
        match leader {
            Some(l) if l != from && self.nodes.get(&l).is_some_and(RaftNode::is_running) => Some(l),
            _ => {
                // No leader known (an election is on): wait a tick, then ask the next node.
                thread::sleep(self.runtime.tick);
                self.target(Some(from))
            }
        }
    }

    /// A linearizable read at the leader (found as for [`Cluster::propose`]), retried when a
    /// change of leader aborts it.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] after the cluster's timeout; [`ClusterError::Read`] for a
    /// failure a retry cannot fix.
    pub fn read(&self, query: M::Query) -> Result<M::QueryResponse, ClusterError>
    where
        M::Query: Clone,
    {
        self.at_leader("a read", |node, remaining| {
            match node.read_timeout(query.clone(), remaining) {
                Ok(response) => Attempt::Done(response),
                Err(ReadError::NotLeader { leader }) => Attempt::Redirect(leader),
                Err(ReadError::Aborted | ReadError::Refused(Refusal::TooManyReads)) => {
                    Attempt::Again
                }
                // A read changes nothing: ask the next running node.
                Err(ReadError::NodeStopped(_)) => Attempt::Elsewhere,
                Err(ReadError::Timeout) => Attempt::TimedOut,
                Err(e) => Attempt::Failed(ClusterError::Read(e), false),
            }
        })
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
            if let Err(e) = node.shutdown() {
                if first.is_ok() {
                    first = Err(ClusterError::Node(id, e));
                }
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

/// What one try of a request at a node came to (see `Cluster::at_leader`).
enum Attempt<T> {
    /// The answer.
    Done(T),
    /// Not the leader; this one is, if known.
    Redirect(Option<NodeId>),
    /// Try the same node again after a tick.
    Again,
    /// Try another node after a tick.
    Elsewhere,
    /// The node's own timeout passed.
    TimedOut,
    /// A failure a retry cannot fix; with `true`, the next request goes to another node.
    Failed(ClusterError, bool),
}
