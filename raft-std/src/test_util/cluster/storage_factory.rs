//! Where a [`Cluster`](super::Cluster)'s nodes keep their data: [`StorageFactory`] opens each
//! node's storage at every start; [`MemStorageFactory`] keeps in-memory disks across crashes,
//! [`FileStorageFactory`] a directory per node on real files or a fault-injecting file system.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use raft_core::{Membership, NodeId, SplitMix64};

use crate::storage::file::{FileStorage, FileStorageOptions, Identity};
use crate::storage::fs::{FileSystem, StdFs};
use crate::storage::{Recovered, Storage, StorageError};
use crate::test_util::faulty::{CrashMode, FaultyFs};
use crate::test_util::mem::{MemDisk, MemStorage};

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

type MakeFs<F> = Box<dyn FnMut(NodeId) -> F + Send>;

/// What a node's crash does to its file system: `mode` and `seed` say what survives of the data
/// that was not durable (see [`CrashMode`]).
type CrashFs<F> = fn(&F, CrashMode, u64);

/// Opens a [`FileStorage`] per node, in `<root>/node-<id>`, on a file system of its own per
/// node (so that crashing one node loses that node's unsynced data only).
///
/// - [`FileStorageFactory::std`]: real files under a directory (e.g. a temporary one). A crash
///   keeps what was written: only the process dies.
/// - [`FileStorageFactory::new`]: any other [`FileSystem`] (one that counts fsyncs, say); a
///   crash keeps what was written, as on real files.
/// - [`FileStorageFactory::faulty`]: a [`FaultyFs`] per node, the one file system here that can
///   lose data. A crash loses (or tears, see [`FileStorageFactory::set_crash_mode`]) what the
///   node had not synced, on that node only; [`FileStorageFactory::fs`] gives each node's file
///   system, to inject faults with a [`FaultPlan`](crate::test_util::faulty::FaultPlan).
///
/// Every node's directory is tagged with the same cluster id, so a node cannot be opened on
/// another's data.
pub struct FileStorageFactory<F: FileSystem + Clone> {
    root: PathBuf,
    cluster_id: u64,
    options: FileStorageOptions,
    make_fs: MakeFs<F>,
    file_systems: BTreeMap<NodeId, F>,
    /// What a crash does to the crashed node's file system (set by [`Self::faulty`]). `None`:
    /// nothing, as on real files (a process cannot make the kernel drop its page cache).
    crash: Option<CrashFs<F>>,
    crash_mode: CrashMode,
    rng: SplitMix64,
}

impl<F: FileSystem + Clone> fmt::Debug for FileStorageFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorageFactory")
            .field("root", &self.root)
            .field("cluster_id", &self.cluster_id)
            .field("options", &self.options)
            .field("nodes", &self.file_systems.keys().collect::<Vec<_>>())
            .field("crashes_lose_data", &self.crash.is_some())
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
        factory.crash = Some(FaultyFs::crash);
        factory.rng = SplitMix64::new(seed);
        factory
    }

    /// What later crashes do to unsynced data.
    pub const fn set_crash_mode(&mut self, mode: CrashMode) {
        self.crash_mode = mode;
    }
}

impl<F: FileSystem + Clone> FileStorageFactory<F> {
    /// Node `id` keeps its data in `<root>/node-<id>` of the file system `make_fs(id)` returns
    /// (called once per node, at its first start). A crash keeps everything written, as on real
    /// files: only the process dies.
    #[must_use]
    pub fn new(
        root: impl Into<PathBuf>,
        make_fs: impl FnMut(NodeId) -> F + Send + 'static,
    ) -> Self {
        Self {
            root: root.into(),
            cluster_id: 1,
            options: FileStorageOptions::default(),
            make_fs: Box::new(make_fs),
            file_systems: BTreeMap::new(),
            crash: None,
            crash_mode: CrashMode::LoseUnsynced,
            rng: SplitMix64::new(0),
        }
    }

    /// Uses these storage [`FileStorageOptions`] (segment size, write buffer) for every node.
    #[must_use]
    pub const fn with_options(mut self, options: FileStorageOptions) -> Self {
        self.options = options;
        self
    }

    /// Tags every node's directory with this cluster id (default 1).
    #[must_use]
    pub const fn with_cluster_id(mut self, cluster_id: u64) -> Self {
        self.cluster_id = cluster_id;
        self
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

impl<F: FileSystem + Clone> StorageFactory for FileStorageFactory<F> {
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
        if let (Some(crash), Some(fs)) = (self.crash, self.file_systems.get(&id)) {
            crash(fs, self.crash_mode, self.rng.next_u64() ^ id.get());
        }
    }
}
