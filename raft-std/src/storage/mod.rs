//! Where a node's Raft state lives: the [`Storage`] trait the runtime persists through.
//!
//! The runtime hands every [`Write`] the core emits to [`Storage::append`] (buffered, not yet
//! durable), then calls [`Storage::sync`] once for all of them and acknowledges the last write's
//! id to the core: group commit. An error from `sync` is fatal: the node stops rather than retry
//! (after a failed fsync the kernel may have dropped the dirty pages, so a retry that succeeds
//! proves nothing).

use std::fmt;
use std::io;
use std::path::PathBuf;

use raft_core::{Entry, HardState, LogId, SnapshotMeta, Write, WriteViolation};

pub mod file;
pub mod fs;

/// What a node persisted, read back at start: the core's [`Restored`](raft_core::Restored)
/// without the applied index (the state machine restarts from the snapshot). An implementation
/// returns it only once it is durable: a process that died before its last sync may have left
/// writes in the page cache, and the node must not act on them unless they are on disk.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Recovered {
    /// The last durable term and vote.
    pub hard_state: HardState,
    /// The latest durable snapshot's metadata (`LogId::ZERO` and the initial membership if none).
    pub snapshot: SnapshotMeta,
    /// The durable entries after the snapshot, in order.
    pub entries: Vec<Entry>,
}

/// The durable state of one node.
pub trait Storage: Send + 'static {
    /// Streams a snapshot the node itself takes into storage. The runtime moves it to a thread
    /// of its own and writes it there without holding the storage (appends and syncs go on
    /// meanwhile), then hands it back to [`Self::finish_snapshot`].
    type SnapshotWriter: io::Write + Send + 'static;
    /// Streams the latest snapshot out of storage.
    type SnapshotReader: io::Read + Send;

    /// Writes `write` (hard state, then truncation, then a received snapshot chunk, then
    /// entries), without making it durable yet. A crash before the next [`Self::sync`] leaves a
    /// prefix of the writes appended since the last sync.
    ///
    /// # Errors
    ///
    /// A [`StorageError`]; after one the storage refuses everything.
    fn append(&mut self, write: &Write) -> Result<(), StorageError>;

    /// Makes every write appended so far durable, with as few fsyncs as possible.
    ///
    /// # Errors
    ///
    /// A [`StorageError`]. Fatal: the caller must stop the node, not retry.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Starts storing a snapshot of the state machine taken at `meta.last`.
    ///
    /// # Errors
    ///
    /// A [`StorageError`].
    fn begin_snapshot(&mut self, meta: &SnapshotMeta)
    -> Result<Self::SnapshotWriter, StorageError>;

    /// Makes the snapshot `writer` holds durable and the latest one, then deletes older
    /// snapshots and the log segments wholly below it. If a newer snapshot became the latest
    /// meanwhile (one received from the leader), this one is discarded and `Ok` returned.
    ///
    /// # Errors
    ///
    /// A [`StorageError`]; the previous snapshot stays the latest.
    fn finish_snapshot(&mut self, writer: Self::SnapshotWriter) -> Result<(), StorageError>;

    /// The latest durable snapshot's metadata.
    fn snapshot_meta(&self) -> &SnapshotMeta;

    /// Opens the latest durable snapshot for reading (`None` if none was ever taken).
    ///
    /// # Errors
    ///
    /// A [`StorageError`], including corruption found on the way.
    fn open_snapshot(&mut self) -> Result<Option<Self::SnapshotReader>, StorageError>;

    /// Reads up to `max_len` bytes of the snapshot taken at `snapshot`, from `offset`, into
    /// `buf` (cleared first), for a follower. Returns whether the snapshot ends there.
    ///
    /// # Errors
    ///
    /// [`StorageError::SnapshotGone`] if that snapshot is no longer the latest; others.
    fn read_snapshot_chunk(
        &mut self,
        snapshot: LogId,
        offset: u64,
        max_len: u32,
        buf: &mut Vec<u8>,
    ) -> Result<bool, StorageError>;
}

/// Why storage failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StorageError {
    /// A record that cannot be read back: a bad checksum, an impossible length, a gap. Found
    /// anywhere but the unacknowledged tail of the last segment, it means data was damaged: the
    /// node refuses to start rather than serve from a log it cannot trust.
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// The byte offset of the first bad record in it.
        offset: u64,
        /// What is wrong there.
        reason: &'static str,
    },
    /// An I/O call failed.
    Io {
        /// The call (`"open"`, `"write"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory it was on.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// An fsync failed. Fatal: the data written since the last good sync may be lost whatever a
    /// later fsync says.
    SyncFailed {
        /// The file or directory that failed to sync.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The disk is full. Nothing since the last sync is acknowledged.
    NoSpace {
        /// The file being written.
        path: PathBuf,
    },
    /// The data directory belongs to another cluster or another node.
    WrongIdentity {
        /// The directory.
        dir: PathBuf,
        /// What was asked for, as `cluster/node`.
        expected: String,
        /// What the directory holds, as `cluster/node`.
        found: String,
    },
    /// The snapshot asked for is no longer the latest one.
    SnapshotGone {
        /// The snapshot asked for.
        asked: LogId,
    },
    /// The write broke the contract of [`Write`] (checked by
    /// [`DurableShape`](raft_core::DurableShape)): a term going backwards, a vote changed within
    /// a term, entries not contiguous with the log, a snapshot chunk out of order, a snapshot
    /// older than the latest one, ... Nothing was written; the storage stays usable.
    Violation(WriteViolation),
    /// The caller broke the contract of [`Storage`] otherwise: a snapshot begun older than the
    /// latest one, a chunk read past the snapshot's end, a write too large to record. Nothing
    /// was written.
    Misuse {
        /// What was wrong.
        reason: &'static str,
    },
    /// An earlier error was fatal; the storage refuses everything.
    Poisoned,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "corrupt data in {} at byte offset {offset}: {reason}",
                file.display()
            ),
            Self::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Self::SyncFailed { path, source } => {
                write!(f, "fsync {} failed (fatal): {source}", path.display())
            }
            Self::NoSpace { path } => write!(f, "no space left writing {}", path.display()),
            Self::WrongIdentity {
                dir,
                expected,
                found,
            } => write!(
                f,
                "data directory {} belongs to {found}, not {expected}",
                dir.display()
            ),
            Self::SnapshotGone { asked } => write!(
                f,
                "snapshot at index {} term {} is no longer the latest",
                asked.index, asked.term
            ),
            Self::Violation(v) => write!(f, "storage misused: {v}"),
            Self::Misuse { reason } => write!(f, "storage misused: {reason}"),
            Self::Poisoned => f.write_str("storage stopped after an earlier fatal error"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } | Self::SyncFailed { source, .. } => Some(source),
            _ => None,
        }
    }
}
