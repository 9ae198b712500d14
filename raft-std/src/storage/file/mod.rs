//! [`FileStorage`]: a segmented write-ahead log and a snapshot store in one directory.
//!
//! # Layout
//!
//! - `IDENTITY`: the cluster and node the directory belongs to, written once (temporary file,
//!   fsync, rename, directory fsync). Opening a directory that names another cluster or node fails
//!   with [`StorageError::WrongIdentity`].
//! - `<seq>-<first>.wal`: log segments, `seq` counting up from 1 (the order to replay them in) and
//!   `first` the index the segment's first entry would have. A segment is a sequence of records
//!   `[len u32 LE][crc u32 LE][payload][zero padding to 8 bytes]`, where `crc` is the CRC32C of the
//!   length's four bytes followed by the payload, and the payload is a postcard-encoded record:
//!   a segment header (always first: the hard state, the log's last index and the snapshot index
//!   when the segment was started, so deleting older segments loses nothing), a write (hard state,
//!   truncation, entries, as one record so a crash keeps all or none of it) or a
//!   "snapshot installed" marker.
//! - `snap-<index>-<term>.snap`: the latest snapshot: a header (magic, length and CRC32C of the
//!   postcard [`SnapshotMeta`]), the payload the state machine wrote, and a trailer (payload
//!   length, payload CRC32C, magic). Chunk offsets ([`Storage::read_snapshot_chunk`], received
//!   [`SnapshotPart`](raft_core::SnapshotPart)s) count payload bytes only.
//! - `*.tmp`: snapshots being written or received; deleted on open.
//!
//! # Durability
//!
//! [`Storage::append`] encodes records into a buffer that is written out when it grows past
//! [`FileStorageOptions::write_buffer`]; [`Storage::sync`] writes the rest and fdatasyncs the
//! current segment (and the directory, if a segment was created or a file removed since): one
//! fsync covers every write appended since the last one. Before a new segment is started the full one is synced, so
//! only the last segment can ever have a torn tail. Every failed fsync, and every I/O error while
//! appending, poisons the storage: every later call returns [`StorageError::Poisoned`].
//!
//! # Recovery
//!
//! A record that fails its checks in the last segment is a torn write that was never
//! acknowledged if no valid record follows it anywhere, or if an all-zero 512-byte sector lies
//! between it and the next valid record (a page lost while a later one reached the disk: page
//! writeback is not in order). The segment is cut there (see [`FileStorage::truncated_tail`]).
//! Any other bad record (one the write contract refuses included), a missing segment, a log that
//! does not continue across segments, or a damaged snapshot stops the open with
//! [`StorageError::Corrupt`] naming the file and byte offset: this storage never silently drops
//! data that may have been acknowledged.
//!
//! # Code
//!
//! This module holds [`FileStorage`] and its [`Storage`] implementation (appending, syncing);
//! `record` the record format (framing, CRC32C, torn-tail detection); `segment` the segments
//! (naming, rolling, compaction); `snapshot_file` the snapshot files (format, writing, reading,
//! installing); `recovery` opening a directory (replay through the write contract); `identity`
//! the `IDENTITY` file.

mod identity;
mod record;
mod recovery;
mod segment;
mod snapshot_file;

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use raft_core::{DurableShape, HardState, Index, LogId, SnapshotMeta, Write};

pub use identity::Identity;
use record::RecordOut;
use segment::Segment;
pub use snapshot_file::{FileSnapshotReader, FileSnapshotWriter};
use snapshot_file::{IO_CHUNK, SnapFile, SnapWriter, snapshot_name};

use super::fs::{FileSystem, StdFs, WriteFile};
use super::{Storage, StorageError};

/// Tuning for [`FileStorage`].
#[derive(Clone, Copy, Debug)]
pub struct FileStorageOptions {
    /// A new segment is started once the current one would grow past this many bytes.
    pub segment_size: u64,
    /// Appended records are written to the segment once this many bytes are buffered (and at
    /// every sync).
    pub write_buffer: usize,
}

impl Default for FileStorageOptions {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
            write_buffer: 1 << 20,
        }
    }
}

fn is_no_space(e: &io::Error) -> bool {
    e.raw_os_error() == Some(28) || e.kind() == io::ErrorKind::StorageFull
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> StorageError {
    if is_no_space(&source) {
        StorageError::NoSpace {
            path: path.to_path_buf(),
        }
    } else {
        StorageError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

fn corrupt(file: &Path, offset: u64, reason: &'static str) -> StorageError {
    StorageError::Corrupt {
        file: file.to_path_buf(),
        offset,
        reason,
    }
}

/// Writes all of `data`, carrying on after short writes.
fn write_all<W: WriteFile>(file: &mut W, mut data: &[u8], path: &Path) -> Result<(), StorageError> {
    while !data.is_empty() {
        match file.write(data) {
            Ok(0) => {
                return Err(io_err("write", path, io::ErrorKind::WriteZero.into()));
            }
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("write", path, e)),
        }
    }
    Ok(())
}

fn sync_file<W: WriteFile>(file: &mut W, path: &Path) -> Result<(), StorageError> {
    file.sync().map_err(|source| StorageError::SyncFailed {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes the entries of `dir` durable.
fn sync_dir_at<F: FileSystem>(fs: &F, dir: &Path) -> Result<(), StorageError> {
    fs.sync_dir(dir).map_err(|source| StorageError::SyncFailed {
        path: dir.to_path_buf(),
        source,
    })
}

/// Durable storage in one directory: a segmented write-ahead log plus the latest snapshot. See the
/// module documentation for the layout and the guarantees.
pub struct FileStorage<F: FileSystem = StdFs> {
    fs: F,
    dir: PathBuf,
    options: FileStorageOptions,
    poisoned: bool,
    segments: VecDeque<Segment>,
    file: F::WriteFile,
    /// Bytes in the current segment on disk (written, not necessarily synced).
    file_len: u64,
    /// Encoded records not yet written.
    buf: Vec<u8>,
    dir_dirty: bool,
    /// Bytes were written to the current segment since it was last synced.
    unsynced: bool,
    hard_state: HardState,
    /// The last entry's index, or the snapshot's if the log is empty.
    last_index: Index,
    /// The write contract, as of every write appended (synced or not).
    shape: DurableShape,
    snapshot: SnapshotMeta,
    snap_file: Option<SnapFile>,
    /// A snapshot being received from the leader.
    incoming: Option<SnapWriter<F::WriteFile>>,
    /// The latest snapshot's file open for [`Storage::read_snapshot_chunk`], and its position.
    chunk_reader: Option<(LogId, F::ReadFile, u64)>,
    truncated_tail: Option<(PathBuf, u64)>,
}

impl<F: FileSystem> std::fmt::Debug for FileStorage<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStorage")
            .field("dir", &self.dir)
            .field("poisoned", &self.poisoned)
            .field("segments", &self.segments.len())
            .field("hard_state", &self.hard_state)
            .field("last_index", &self.last_index)
            .field("snapshot", &self.snapshot.last)
            .finish_non_exhaustive()
    }
}

impl<F: FileSystem> FileStorage<F> {
    /// If opening cut a torn tail off the last segment: the file and the offset it was cut at
    /// (0 with a removed file for a segment whose header was torn).
    #[must_use]
    pub fn truncated_tail(&self) -> Option<(&Path, u64)> {
        self.truncated_tail.as_ref().map(|(p, o)| (p.as_path(), *o))
    }

    /// Whether an earlier fatal error poisoned the storage.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The durable-or-pending hard state.
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The index of the log's last entry (the snapshot's if the log is empty), counting writes
    /// appended but not yet synced.
    #[must_use]
    pub fn last_index(&self) -> Index {
        self.last_index
    }

    /// The number of log segment files.
    #[must_use]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn check(&self) -> Result<(), StorageError> {
        if self.poisoned {
            Err(StorageError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Runs `f`; any error but misuse (a violation of the write contract included) poisons the
    /// storage.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.check()?;
        let r = f(self);
        if let Err(e) = &r
            && !matches!(e, StorageError::Misuse { .. } | StorageError::Violation(_))
        {
            self.poisoned = true;
        }
        r
    }

    fn sync_dir(&mut self) -> Result<(), StorageError> {
        sync_dir_at(&self.fs, &self.dir)?;
        self.dir_dirty = false;
        Ok(())
    }

    fn sync_inner(&mut self) -> Result<(), StorageError> {
        self.flush_buf()?;
        self.sync_segment()?;
        if self.dir_dirty {
            self.sync_dir()?;
        }
        Ok(())
    }

    fn append_inner(&mut self, w: &Write) -> Result<(), StorageError> {
        let effect = self.shape.apply(w).map_err(StorageError::Violation)?;
        // The contract has taken the write: if it is not recorded in full now, the log and the
        // contract disagree, so any failure from here on is fatal (even a misuse, which alone
        // would not poison).
        let truncated = effect.truncate_from.map_or(self.last_index, Index::prev);
        let r = self.append_records(w, truncated, effect.last_index);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Records `w`, which the contract accepted: the log ends at `truncated` after its
    /// truncation, and at `last` after all of it.
    fn append_records(
        &mut self,
        w: &Write,
        truncated: Index,
        last: Index,
    ) -> Result<(), StorageError> {
        // The state is updated after each record is pushed: a segment started for the next
        // record holds the state before it.
        let Some(part) = &w.snapshot else {
            if w.hard_state.is_some() || w.truncate_from.is_some() || !w.entries.is_empty() {
                self.push_record(&RecordOut::Write {
                    hard_state: w.hard_state,
                    truncate_from: w.truncate_from,
                    entries: &w.entries,
                })?;
                self.hard_state = w.hard_state.unwrap_or(self.hard_state);
                self.last_index = last;
            }
            return Ok(());
        };
        if w.hard_state.is_some() || w.truncate_from.is_some() {
            self.push_record(&RecordOut::Write {
                hard_state: w.hard_state,
                truncate_from: w.truncate_from,
                entries: &[],
            })?;
            self.hard_state = w.hard_state.unwrap_or(self.hard_state);
            self.last_index = truncated;
        }
        self.receive_chunk(part)?;
        if !w.entries.is_empty() {
            self.push_record(&RecordOut::Write {
                hard_state: None,
                truncate_from: None,
                entries: &w.entries,
            })?;
        }
        self.last_index = last;
        Ok(())
    }
}

impl<F: FileSystem> Storage for FileStorage<F> {
    type SnapshotWriter = FileSnapshotWriter<F::WriteFile>;
    type SnapshotReader = FileSnapshotReader<F::ReadFile>;

    fn append(&mut self, write: &Write) -> Result<(), StorageError> {
        self.guarded(|s| s.append_inner(write))
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.guarded(Self::sync_inner)
    }

    fn begin_snapshot(
        &mut self,
        meta: &SnapshotMeta,
    ) -> Result<Self::SnapshotWriter, StorageError> {
        self.check()?;
        self.shape
            .check_snapshot(meta.last)
            .map_err(StorageError::Violation)?;
        let tmp = self.dir.join(format!("{}.tmp", snapshot_name(meta.last)));
        Ok(FileSnapshotWriter {
            inner: self.create_snapshot_file(tmp, meta)?,
            buf: Vec::with_capacity(IO_CHUNK),
            failed: false,
        })
    }

    fn finish_snapshot(&mut self, mut writer: Self::SnapshotWriter) -> Result<(), StorageError> {
        self.check()?;
        let tmp = writer.inner.tmp.clone();
        if writer.inner.meta.last.index <= self.snapshot.last.index {
            // A newer snapshot (received from the leader) was installed since this one began:
            // keep that one. Sealing this one would take the latest snapshot back and delete the
            // newer file the log already records. The temporary file is garbage (deleted on open
            // if this fails).
            drop(writer);
            let _ = self.fs.remove(&tmp);
            return Ok(());
        }
        if let Err(v) = self.shape.check_snapshot(writer.inner.meta.last) {
            // Contradicts the log (or the hard state): refused, and the previous snapshot stays.
            drop(writer);
            let _ = self.fs.remove(&tmp);
            return Err(StorageError::Violation(v));
        }
        let sealed = if writer.failed {
            Err(io_err(
                "write",
                &tmp,
                io::Error::other("an earlier snapshot write failed"),
            ))
        } else {
            writer.flush_buf().and_then(|()| self.seal(writer.inner))
        };
        match sealed {
            Ok((meta, sf)) => {
                // Renamed into place: from here on a failure leaves the directory between two
                // states, so it is fatal.
                self.guarded(|s| {
                    // Checked above, and nothing was appended since: a refusal now would leave
                    // the renamed file unrecorded, so it is fatal too.
                    if let Err(v) = s.shape.install_snapshot(meta.last) {
                        s.poisoned = true;
                        return Err(StorageError::Violation(v));
                    }
                    s.install(meta, sf)
                })
            }
            Err(e) => {
                // The previous snapshot stays the latest; the temporary file is garbage.
                if matches!(e, StorageError::SyncFailed { .. }) {
                    self.poisoned = true;
                }
                let _ = self.fs.remove(&tmp);
                Err(e)
            }
        }
    }

    fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    fn open_snapshot(&mut self) -> Result<Option<Self::SnapshotReader>, StorageError> {
        self.check()?;
        let Some(sf) = &self.snap_file else {
            return Ok(None);
        };
        let mut file = self
            .fs
            .open_read(&sf.path)
            .map_err(|e| io_err("open", &sf.path, e))?;
        file.seek(SeekFrom::Start(sf.payload_start))
            .map_err(|e| io_err("read", &sf.path, e))?;
        Ok(Some(FileSnapshotReader {
            file,
            left: sf.payload_len,
            crc: 0,
            expected: sf.payload_crc,
        }))
    }

    fn read_snapshot_chunk(
        &mut self,
        snapshot: LogId,
        offset: u64,
        max_len: u32,
        buf: &mut Vec<u8>,
    ) -> Result<bool, StorageError> {
        self.check()?;
        buf.clear();
        let Some(sf) = self
            .snap_file
            .as_ref()
            .filter(|_| self.snapshot.last == snapshot)
        else {
            return Err(StorageError::SnapshotGone { asked: snapshot });
        };
        let Some(left) = sf.payload_len.checked_sub(offset) else {
            return Err(StorageError::Misuse {
                reason: "snapshot chunk offset past the end",
            });
        };
        let n = left.min(u64::from(max_len));
        let (reader, pos) = match &mut self.chunk_reader {
            Some((id, r, pos)) if *id == snapshot => (r, pos),
            slot => {
                let r = self
                    .fs
                    .open_read(&sf.path)
                    .map_err(|e| io_err("open", &sf.path, e))?;
                let (_, r, pos) = slot.insert((snapshot, r, 0));
                (r, pos)
            }
        };
        buf.resize(usize::try_from(n).unwrap_or(0), 0);
        let at = sf.payload_start + offset;
        // Followers read on from where the last chunk ended: seek only when they do not.
        let read = if *pos == at {
            Ok(())
        } else {
            reader.seek(SeekFrom::Start(at)).map(drop)
        };
        // Unknown after a failed read: seek next time.
        *pos = u64::MAX;
        read.and_then(|()| reader.read_exact(buf))
            .map_err(|e| io_err("read", &sf.path, e))?;
        *pos = at + n;
        Ok(offset + n == sf.payload_len)
    }
}
