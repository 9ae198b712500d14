//! Test support: test doubles and an in-process cluster, for testing code built on `raft-std`
//! (and `raft-std` itself). Compiled only with the feature `test-util`.
//!
//! **Not semver-stable, and never for production.** Anything here may change or go in any
//! release. Nothing outside this module uses it: a node in production runs on
//! [`FileStorage`](crate::storage::file::FileStorage) over real files
//! ([`StdFs`](crate::storage::fs::StdFs)). Enable the feature for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! raft-std = { version = "0.1", features = ["test-util"] }
//! ```
//!
//! - [`faulty`]: [`FaultyFs`](faulty::FaultyFs), an in-memory [`FileSystem`] to put under a
//!   [`FileStorage`](crate::storage::file::FileStorage): it models what POSIX promises and no
//!   more (unsynced data lost or torn in a crash, a failed fsync that makes later fsyncs lie),
//!   and injects EIO, ENOSPC and short writes.
//! - [`mem`]: [`MemStorage`](mem::MemStorage), a [`Storage`](crate::storage::Storage) in memory,
//!   over a [`MemDisk`](mem::MemDisk) that survives a simulated crash.
//! - [`cluster`]: [`Cluster`](cluster::Cluster), N nodes in this process on a
//!   [`ChannelNetwork`](crate::transport::ChannelNetwork), with crashes, restarts, partitions and
//!   membership changes, on storage a [`StorageFactory`](cluster::StorageFactory) opens: in
//!   memory, on real files or on a `FaultyFs` per node.
//!
//! [`FileSystem`]: crate::storage::fs::FileSystem

pub mod cluster;
pub mod faulty;
pub mod mem;
