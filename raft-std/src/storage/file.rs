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
//! [`Options::write_buffer`]; [`Storage::sync`] writes the rest and fdatasyncs the current segment
//! (and the directory, if a segment was created or a file removed since): one fsync covers every
//! write appended since the last one. Before a new segment is started the full one is synced, so
//! only the last segment can ever have a torn tail. Every failed fsync, and every I/O error while
//! appending, poisons the storage: every later call returns [`StorageError::Poisoned`].
//!
//! # Recovery
//!
//! A record that fails its checks in the last segment is a torn write that was never
//! acknowledged if no valid record follows it anywhere, or if an all-zero 512-byte sector lies
//! between it and the next valid record (a page lost while a later one reached the disk: page
//! writeback is not in order). The segment is cut there (see [`FileStorage::truncated_tail`]).
//! Any other bad record, a missing segment, a log that does not
//! continue across segments, or a damaged snapshot stops the open with
//! [`StorageError::Corrupt`] naming the file and byte offset: this storage never silently drops
//! data that may have been acknowledged.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use raft_core::{
    DurableShape, Entry, HardState, Index, LogId, Membership, NodeId, SnapshotMeta, Write,
    WriteParts,
};
use serde::{Deserialize, Serialize};

use super::fs::{FileSystem, StdFs, WriteFile};
use super::{Recovered, Storage, StorageError};

/// Which cluster and node a data directory belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Identity {
    /// The cluster's id, the same on every node of it.
    pub cluster_id: u64,
    /// This node's id.
    pub node_id: NodeId,
}

impl Identity {
    fn describe(self) -> String {
        format!("cluster {}/node {}", self.cluster_id, self.node_id)
    }
}

/// Tuning for [`FileStorage`].
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// A new segment is started once the current one would grow past this many bytes.
    pub segment_size: u64,
    /// Appended records are written to the segment once this many bytes are buffered (and at
    /// every sync).
    pub write_buffer: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
            write_buffer: 1 << 20,
        }
    }
}

const IDENTITY: &str = "IDENTITY";
const IDENTITY_MAGIC: &[u8; 8] = b"RAFTID01";
const INCOMING: &str = "incoming.snap.tmp";
const SNAP_MAGIC: &[u8; 8] = b"RAFTSNP1";
const SNAP_END: &[u8; 4] = b"SEND";
const SNAP_TRAILER: u64 = 16;
/// A snapshot's metadata is a membership and a log id: far below this.
const MAX_SNAP_META: u32 = 1 << 20;
const RECORD_HEADER: usize = 8;
/// The postcard variant tags of [`RecordIn`] are all below this.
const RECORD_KINDS: u8 = 3;
const IO_CHUNK: usize = 64 << 10;
/// The framed size of the largest segment header record (52 bytes of payload at most).
const MAX_SEGMENT_HEADER: u64 = 64;

/// A record as written (borrowing what it encodes).
#[derive(Serialize)]
enum RecordOut<'a> {
    Segment {
        seq: u64,
        hard_state: HardState,
        last_index: Index,
        snapshot_index: Index,
    },
    Write {
        hard_state: Option<HardState>,
        truncate_from: Option<Index>,
        entries: &'a [Entry],
    },
    Snapshot {
        meta: &'a SnapshotMeta,
    },
}

/// A record as read back; the same shape as [`RecordOut`].
#[derive(Deserialize)]
enum RecordIn {
    Segment {
        seq: u64,
        hard_state: HardState,
        last_index: Index,
        snapshot_index: Index,
    },
    Write {
        hard_state: Option<HardState>,
        truncate_from: Option<Index>,
        entries: Vec<Entry>,
    },
    Snapshot {
        meta: Box<SnapshotMeta>,
    },
}

const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

fn record_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// Extends a borrowed buffer, so that a failed encoding leaves it in the caller's hands.
struct Extender<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Extender<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Appends `rec` to `buf`, framed and padded. On an error `buf` holds what it held before.
fn encode_record(buf: &mut Vec<u8>, rec: &RecordOut<'_>) -> Result<(), StorageError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER]);
    if postcard::to_extend(rec, Extender(buf)).is_err() {
        // Not reachable with today's types (every sequence has a known length), but the records
        // buffered before this one must not be lost with it.
        buf.truncate(start);
        return Err(StorageError::Misuse {
            reason: "a record that cannot be encoded",
        });
    }
    let payload_len = buf.len() - start - RECORD_HEADER;
    let Ok(len) = u32::try_from(payload_len) else {
        buf.truncate(start);
        return Err(StorageError::Misuse {
            reason: "a write larger than 4 GiB",
        });
    };
    let len = len.to_le_bytes();
    let crc = record_crc(len, buf.get(start + RECORD_HEADER..).unwrap_or_default());
    if let Some(h) = buf.get_mut(start..start + RECORD_HEADER) {
        h[..4].copy_from_slice(&len);
        h[4..].copy_from_slice(&crc.to_le_bytes());
    }
    buf.resize(align8(buf.len()), 0);
    Ok(())
}

/// Reads the record at `off`: its payload and where the next one starts, or why it is bad.
fn read_record(bytes: &[u8], off: usize) -> Result<(&[u8], usize), &'static str> {
    let header = bytes
        .get(off..off + RECORD_HEADER)
        .ok_or("record header cut short")?;
    let len: [u8; 4] = header[..4]
        .try_into()
        .map_err(|_| "record header cut short")?;
    let crc = u32::from_le_bytes(
        header[4..]
            .try_into()
            .map_err(|_| "record header cut short")?,
    );
    let n = u32::from_le_bytes(len) as usize;
    if n == 0 {
        return Err("zero-length record");
    }
    let payload = bytes
        .get(off + RECORD_HEADER..off + RECORD_HEADER + n)
        .ok_or("record runs past the end of the file")?;
    if record_crc(len, payload) != crc {
        return Err("record checksum mismatch");
    }
    let next = align8(off + RECORD_HEADER + n);
    if next > bytes.len() {
        return Err("record padding runs past the end of the file");
    }
    Ok((payload, next))
}

/// Whether any valid record starts at an aligned offset after `off`.
fn valid_record_after(bytes: &[u8], off: usize) -> bool {
    next_valid_record(bytes, off).is_some()
}

/// Where the first valid record after `off` starts (at an aligned offset), if any does.
fn next_valid_record(bytes: &[u8], off: usize) -> Option<usize> {
    let mut at = align8(off + 1);
    while at + RECORD_HEADER < bytes.len() {
        let plausible = bytes
            .get(at + RECORD_HEADER)
            .is_some_and(|&tag| tag < RECORD_KINDS);
        if plausible && read_record(bytes, at).is_ok() {
            return Some(at);
        }
        at += 8;
    }
    None
}

/// The sector size a torn write is detected at.
const SECTOR: usize = 512;

/// Whether the bad record at `off` in the last segment is a torn write: nothing valid follows
/// it, or the bytes from it to the next valid record hold an all-zero, sector-aligned sector (a
/// page that never reached the disk while a later one did: writeback is not in order).
///
/// Either way it was never synced, so neither was anything after it: an fsync makes every byte
/// written before it durable, and a durable sector reads back as written. (A synced record can
/// only look like this if the disk damaged it later and its own data held a zeroed sector: that
/// is media corruption, which checksums catch everywhere else.)
fn torn_at(bytes: &[u8], off: usize) -> bool {
    let Some(next) = next_valid_record(bytes, off) else {
        return true;
    };
    let first = off.div_ceil(SECTOR) * SECTOR;
    bytes
        .get(first..next)
        .unwrap_or_default()
        .chunks_exact(SECTOR)
        .any(|sector| sector.iter().all(|&b| b == 0))
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

fn segment_name(seq: u64, first: Index) -> String {
    format!("{seq:020}-{:020}.wal", first.0)
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, first) = stem.split_once('-')?;
    first.parse::<u64>().ok()?;
    seq.parse().ok()
}

fn snapshot_name(id: LogId) -> String {
    format!("snap-{:020}-{:020}.snap", id.index.0, id.term.0)
}

fn parse_snapshot_name(name: &str) -> Option<LogId> {
    let stem = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (index, term) = stem.split_once('-')?;
    Some(LogId::new(term.parse().ok()?, index.parse().ok()?))
}

fn snapshot_header(meta: &SnapshotMeta) -> Result<Vec<u8>, StorageError> {
    let encoded = postcard::to_allocvec(meta).map_err(|_| StorageError::Misuse {
        reason: "snapshot metadata that cannot be encoded",
    })?;
    let len = u32::try_from(encoded.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut header = Vec::with_capacity(16 + encoded.len());
    header.extend_from_slice(SNAP_MAGIC);
    header.extend_from_slice(&len);
    header.extend_from_slice(&record_crc(len, &encoded).to_le_bytes());
    header.extend_from_slice(&encoded);
    Ok(header)
}

fn snapshot_trailer(len: u64, crc: u32) -> [u8; 16] {
    let mut t = [0; 16];
    t[..8].copy_from_slice(&len.to_le_bytes());
    t[8..12].copy_from_slice(&crc.to_le_bytes());
    t[12..].copy_from_slice(SNAP_END);
    t
}

/// Where a durable snapshot's payload lies in its file.
#[derive(Clone, Debug)]
struct SnapFile {
    path: PathBuf,
    payload_start: u64,
    payload_len: u64,
    payload_crc: u32,
}

/// Reads and checks the snapshot file `path` end to end.
fn check_snapshot<R: Read + Seek>(
    mut file: R,
    path: &Path,
) -> Result<(SnapshotMeta, SnapFile), StorageError> {
    let read = |e| io_err("read", path, e);
    let mut fixed = [0u8; 16];
    let size = file.seek(SeekFrom::End(0)).map_err(read)?;
    file.seek(SeekFrom::Start(0)).map_err(read)?;
    if size < 16 + SNAP_TRAILER {
        return Err(corrupt(path, 0, "snapshot file too short"));
    }
    file.read_exact(&mut fixed).map_err(read)?;
    if &fixed[..8] != SNAP_MAGIC {
        return Err(corrupt(path, 0, "not a snapshot file"));
    }
    let len: [u8; 4] = fixed[8..12].try_into().unwrap_or_default();
    let crc = u32::from_le_bytes(fixed[12..16].try_into().unwrap_or_default());
    let meta_len = u32::from_le_bytes(len);
    if meta_len > MAX_SNAP_META || u64::from(meta_len) + 16 + SNAP_TRAILER > size {
        return Err(corrupt(path, 8, "impossible snapshot metadata length"));
    }
    let mut encoded = vec![0; meta_len as usize];
    file.read_exact(&mut encoded).map_err(read)?;
    if record_crc(len, &encoded) != crc {
        return Err(corrupt(path, 8, "snapshot metadata checksum mismatch"));
    }
    let meta: SnapshotMeta = postcard::from_bytes(&encoded)
        .map_err(|_| corrupt(path, 16, "undecodable snapshot metadata"))?;
    let payload_start = 16 + u64::from(meta_len);
    let payload_len = size - payload_start - SNAP_TRAILER;
    let mut crc = 0u32;
    let mut buf = vec![0; IO_CHUNK];
    let mut left = payload_len;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(IO_CHUNK).min(IO_CHUNK);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact(chunk).map_err(read)?;
        crc = crc32c::crc32c_append(crc, chunk);
        left -= n as u64;
    }
    let mut trailer = [0u8; 16];
    file.read_exact(&mut trailer).map_err(read)?;
    let trailer_at = payload_start + payload_len;
    if &trailer[12..] != SNAP_END
        || trailer[..8] != payload_len.to_le_bytes()
        || trailer[8..12] != crc.to_le_bytes()
    {
        return Err(corrupt(
            path,
            trailer_at,
            "snapshot payload checksum or length mismatch",
        ));
    }
    Ok((
        meta,
        SnapFile {
            path: path.to_path_buf(),
            payload_start,
            payload_len,
            payload_crc: crc,
        },
    ))
}

/// A log segment on disk.
#[derive(Clone, Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// The log's last index when the segment was started.
    start: Index,
}

/// A snapshot file being written to its temporary name: the header, then the payload. Both a
/// snapshot the node takes and one received from the leader are written through one.
struct SnapWriter<W> {
    file: W,
    tmp: PathBuf,
    meta: SnapshotMeta,
    payload_start: u64,
    len: u64,
    crc: u32,
}

impl<W: WriteFile> SnapWriter<W> {
    fn write_payload(&mut self, data: &[u8]) -> Result<(), StorageError> {
        write_all(&mut self.file, data, &self.tmp)?;
        self.len += data.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, data);
        Ok(())
    }
}

/// Streams a snapshot the node takes into a temporary file; hand it back to
/// [`Storage::finish_snapshot`] to make it the latest.
pub struct FileSnapshotWriter<W> {
    inner: SnapWriter<W>,
    buf: Vec<u8>,
    failed: bool,
}

impl<W: WriteFile> FileSnapshotWriter<W> {
    fn flush_buf(&mut self) -> Result<(), StorageError> {
        let r = self.inner.write_payload(&self.buf);
        self.buf.clear();
        self.failed |= r.is_err();
        r
    }
}

impl<W: WriteFile> io::Write for FileSnapshotWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("an earlier snapshot write failed"));
        }
        if self.buf.is_empty() && data.len() >= IO_CHUNK {
            // Large writes go straight through, not through the buffer.
            let r = self.inner.write_payload(data);
            self.failed = r.is_err();
            r.map_err(io::Error::other)?;
        } else {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= IO_CHUNK {
                self.flush_buf().map_err(io::Error::other)?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf().map_err(io::Error::other)
    }
}

/// Streams the latest snapshot's payload; fails with [`io::ErrorKind::InvalidData`] at the end if
/// the payload does not match its checksum.
pub struct FileSnapshotReader<R> {
    file: R,
    left: u64,
    crc: u32,
    expected: u32,
}

impl<R: Read> Read for FileSnapshotReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.file.read(buf.get_mut(..max).unwrap_or_default())?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "snapshot file shorter than its header says",
            ));
        }
        self.crc = crc32c::crc32c_append(self.crc, buf.get(..n).unwrap_or_default());
        self.left -= n as u64;
        if self.left == 0 && self.crc != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "snapshot payload checksum mismatch",
            ));
        }
        Ok(n)
    }
}

/// Durable storage in one directory: a segmented write-ahead log plus the latest snapshot. See the
/// module documentation for the layout and the guarantees.
pub struct FileStorage<F: FileSystem = StdFs> {
    fs: F,
    dir: PathBuf,
    options: Options,
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

/// What replaying the log found.
struct Replay {
    /// The write contract, replayed: every record goes through it.
    shape: DurableShape,
    /// The highest snapshot index a segment header names (a header written when a snapshot's
    /// marker was rewritten at open names it before the marker).
    header_snap: Index,
    entries: Vec<Entry>,
}

impl<F: FileSystem> FileStorage<F> {
    /// Opens (or creates) the data directory `dir` for the node `identity`, with default
    /// [`Options`], and reads back what it holds. A missing or empty directory starts fresh with
    /// `initial` as the membership.
    ///
    /// # Errors
    ///
    /// [`StorageError::WrongIdentity`] for another node's directory, [`StorageError::Corrupt`]
    /// for damaged data (naming the file and offset), I/O errors.
    pub fn open(
        fs: F,
        dir: impl Into<PathBuf>,
        identity: Identity,
        initial: Membership,
    ) -> Result<(Self, Recovered), StorageError> {
        Self::open_with(fs, dir, identity, initial, Options::default())
    }

    /// [`Self::open`] with explicit [`Options`].
    ///
    /// # Errors
    ///
    /// As [`Self::open`].
    pub fn open_with(
        fs: F,
        dir: impl Into<PathBuf>,
        identity: Identity,
        initial: Membership,
        options: Options,
    ) -> Result<(Self, Recovered), StorageError> {
        let dir = dir.into();
        let names = match fs.list_dir(&dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dir_durably(&fs, &dir)?;
                Vec::new()
            }
            Err(e) => return Err(io_err("list directory", &dir, e)),
        };
        let mut dir_dirty = false;
        let has = |n: &str| names.iter().any(|x| x == n);
        let mut seg_names: Vec<(u64, String)> = names
            .iter()
            .filter_map(|n| parse_segment_name(n).map(|s| (s, n.clone())))
            .collect();
        seg_names.sort();
        let mut snaps: Vec<(LogId, String)> = names
            .iter()
            .filter_map(|n| parse_snapshot_name(n).map(|id| (id, n.clone())))
            .collect();
        // The latest snapshot has the highest index (`LogId` orders by term first).
        snaps.sort_by_key(|(id, _)| (id.index, id.term));

        if has(IDENTITY) {
            check_identity(&fs, &dir, identity)?;
        } else if !seg_names.is_empty() || !snaps.is_empty() {
            // A crash while the directory was first created leaves at most the first segment
            // holding only its header: start again. Anything more is not ours to overwrite.
            let leftover = match seg_names.as_slice() {
                [(1, name)] if snaps.is_empty() => {
                    let p = dir.join(name);
                    let bytes = fs.read_all(&p).map_err(|e| io_err("read", &p, e))?;
                    let header_only = match read_record(&bytes, 0) {
                        Ok((payload, next)) => {
                            next == bytes.len()
                                && matches!(
                                    postcard::from_bytes(payload),
                                    Ok(RecordIn::Segment { .. })
                                )
                        }
                        Err(_) => !valid_record_after(&bytes, 0),
                    };
                    header_only.then_some(p)
                }
                _ => None,
            };
            let Some(p) = leftover else {
                return Err(corrupt(&dir, 0, "data files without an IDENTITY file"));
            };
            fs.remove(&p).map_err(|e| io_err("remove", &p, e))?;
            seg_names.clear();
        }
        for n in names.iter().filter(|n| n.ends_with(".tmp")) {
            let p = dir.join(n);
            fs.remove(&p).map_err(|e| io_err("remove", &p, e))?;
            dir_dirty = true;
        }

        // The latest snapshot, checked end to end; older ones are leftovers of a crash.
        let mut snap_file = None;
        let mut snapshot = SnapshotMeta {
            last: LogId::ZERO,
            membership: initial,
        };
        if let Some((id, name)) = snaps.pop() {
            let path = dir.join(&name);
            let file = fs.open_read(&path).map_err(|e| io_err("open", &path, e))?;
            let (meta, sf) = check_snapshot(file, &path)?;
            if meta.last != id {
                return Err(corrupt(
                    &path,
                    16,
                    "snapshot file name does not match its metadata",
                ));
            }
            snapshot = meta;
            snap_file = Some(sf);
        }
        // Deleted, like a torn tail is cut, only once every check below has passed: a directory
        // refused as corrupt is left as it was found.
        let stale_snaps: Vec<PathBuf> = snaps.into_iter().map(|(_, n)| dir.join(n)).collect();

        if seg_names.is_empty() {
            if has(IDENTITY) || snap_file.is_some() {
                return Err(corrupt(&dir, 0, "no log segments: the hard state is lost"));
            }
            return Self::create_fresh(fs, dir, identity, snapshot, options);
        }

        let mut segments: VecDeque<Segment> = VecDeque::new();
        let mut replay: Option<Replay> = None;
        let mut truncated_tail = None;
        let mut torn_segment = None;
        let mut current_len = 0;
        let count = seg_names.len();
        for (i, (seq, name)) in seg_names.into_iter().enumerate() {
            let path = dir.join(&name);
            let last_segment = i + 1 == count;
            if let Some(prev) = segments.back()
                && prev.seq + 1 != seq
            {
                return Err(corrupt(&path, 0, "the segment before this one is missing"));
            }
            let bytes = fs.read_all(&path).map_err(|e| io_err("read", &path, e))?;
            match replay_segment(&bytes, &path, seq, last_segment, &mut replay, &snapshot)? {
                SegmentOutcome::Replayed { start, cut } => {
                    current_len = bytes.len() as u64;
                    if let Some(at) = cut {
                        current_len = at;
                        truncated_tail = Some((path.clone(), at));
                    }
                    segments.push_back(Segment { seq, path, start });
                }
                SegmentOutcome::Torn => {
                    // A segment created just before a crash whose header never reached the disk.
                    truncated_tail = Some((path.clone(), 0));
                    torn_segment = Some(path);
                }
            }
        }
        let (Some(current), Some(replay)) = (segments.back(), replay) else {
            // Only a torn, empty first segment: the directory was never fully created.
            if has(IDENTITY) || snap_file.is_some() {
                return Err(corrupt(&dir, 0, "no log segments: the hard state is lost"));
            }
            for p in torn_segment.iter().chain(&stale_snaps) {
                fs.remove(p).map_err(|e| io_err("remove", p, e))?;
            }
            return Self::create_fresh(fs, dir, identity, snapshot, options);
        };
        let first_path = segments
            .front()
            .map_or_else(|| dir.clone(), |s| s.path.clone());
        let snap_index = snapshot.last.index;
        let replay_snap = replay.shape.snapshot_index();
        let replay_last = replay.shape.last_index();
        if replay_snap.max(replay.header_snap) > snap_index {
            return Err(corrupt(
                &dir,
                0,
                "the log records a snapshot newer than any snapshot file",
            ));
        }
        let last_index = replay_last.max(snap_index);
        if replay_last >= snap_index && replay.entries.len() as u64 != replay_last.0 - snap_index.0
        {
            return Err(corrupt(
                &first_path,
                0,
                "entries between the snapshot and the oldest segment are missing",
            ));
        }
        let hard_state = replay.shape.hard_state();
        // What was recovered, with every term known (replay may not know the terms of entries
        // before its first segment): the contract appends are checked against from here on.
        let shape = DurableShape::restored(
            hard_state,
            snapshot.last,
            replay.entries.iter().map(|e| e.id),
        )
        .map_err(|v| corrupt(&first_path, 0, v.reason()))?;
        // Every check passed: now cut the torn tail and delete the leftovers.
        let path = current.path.clone();
        let mut file = fs
            .open_append(&path)
            .map_err(|e| io_err("open", &path, e))?;
        if let Some((cut, at)) = &truncated_tail
            && *cut == path
        {
            file.set_len(*at)
                .map_err(|e| io_err("truncate", &path, e))?;
            sync_file(&mut file, &path)?;
        }
        for p in torn_segment.iter().chain(&stale_snaps) {
            fs.remove(p).map_err(|e| io_err("remove", p, e))?;
            dir_dirty = true;
        }
        let file_len = current_len;
        let mut storage = Self {
            fs,
            dir,
            options,
            poisoned: false,
            segments,
            file,
            file_len,
            buf: Vec::new(),
            dir_dirty,
            // What replay read may be in the page cache only (the previous process died before
            // its sync): the first sync makes it durable.
            unsynced: true,
            hard_state,
            // Raised to the snapshot's index below, once the log says so.
            last_index: replay_last,
            shape,
            snapshot,
            snap_file,
            incoming: None,
            chunk_reader: None,
            truncated_tail,
        };
        if replay_snap < snap_index {
            // The snapshot reached the disk but its marker in the log did not: write it again, so
            // that entries appended from here on (after the snapshot) replay as contiguous.
            let meta = storage.snapshot.clone();
            storage.push_record(&RecordOut::Snapshot { meta: &meta })?;
            storage.dir_dirty = true;
        }
        storage.last_index = last_index;
        storage.compact()?;
        // What replay read may be in the page cache only, written by a process that died before
        // its sync: make it durable before the node can act on it (grant a vote, acknowledge
        // entries), or a machine crash after the restart could take it back.
        storage.sync()?;
        let recovered = Recovered {
            hard_state: storage.hard_state,
            snapshot: storage.snapshot.clone(),
            entries: replay.entries,
        };
        Ok((storage, recovered))
    }

    fn create_fresh(
        fs: F,
        dir: PathBuf,
        identity: Identity,
        snapshot: SnapshotMeta,
        options: Options,
    ) -> Result<(Self, Recovered), StorageError> {
        // The first segment is durable before the identity file appears, so a directory with an
        // identity and no segment is damage, not a crash during creation.
        sync_dir_at(&fs, &super::fs::parent_dir(&dir))?;
        let seq = 1;
        let path = dir.join(segment_name(seq, Index(1)));
        let mut file = fs.create(&path).map_err(|e| io_err("create", &path, e))?;
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            &RecordOut::Segment {
                seq,
                hard_state: HardState::default(),
                last_index: Index::ZERO,
                snapshot_index: Index::ZERO,
            },
        )?;
        write_all(&mut file, &buf, &path)?;
        sync_file(&mut file, &path)?;
        sync_dir_at(&fs, &dir)?;
        write_identity(&fs, &dir, identity)?;
        let shape = DurableShape::restored(HardState::default(), snapshot.last, [])
            .map_err(|v| corrupt(&dir, 0, v.reason()))?;
        let storage = Self {
            fs,
            dir,
            options,
            poisoned: false,
            segments: VecDeque::from([Segment {
                seq,
                path,
                start: Index::ZERO,
            }]),
            file,
            file_len: buf.len() as u64,
            buf: Vec::new(),
            dir_dirty: false,
            unsynced: false,
            hard_state: HardState::default(),
            last_index: Index::ZERO,
            shape,
            snapshot,
            snap_file: None,
            incoming: None,
            chunk_reader: None,
            truncated_tail: None,
        };
        let recovered = Recovered {
            hard_state: HardState::default(),
            snapshot: storage.snapshot.clone(),
            entries: Vec::new(),
        };
        Ok((storage, recovered))
    }

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

    fn flush_buf(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.segments.back().map_or(&self.dir, |s| &s.path);
        self.unsynced = true;
        write_all(&mut self.file, &self.buf, path)?;
        self.file_len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// fdatasyncs the current segment, unless nothing was written to it since the last time.
    fn sync_segment(&mut self) -> Result<(), StorageError> {
        if self.unsynced {
            let path = self.segments.back().map_or(&self.dir, |s| &s.path);
            sync_file(&mut self.file, path)?;
            self.unsynced = false;
        }
        Ok(())
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

    /// Encodes `rec` after the buffered records, starting a new segment first if it would not
    /// fit. Callers update the in-memory state after this, so a new segment's header holds the
    /// state before `rec`.
    fn push_record(&mut self, rec: &RecordOut<'_>) -> Result<(), StorageError> {
        let before = self.buf.len();
        encode_record(&mut self.buf, rec)?;
        let size = (self.buf.len() - before) as u64;
        let used = self.file_len + before as u64;
        // A segment header takes at most MAX_SEGMENT_HEADER bytes: past that the segment holds
        // records, and rolling makes sense.
        if used + size > self.options.segment_size && used > MAX_SEGMENT_HEADER {
            let encoded = self.buf.split_off(before);
            self.roll()?;
            self.buf.extend_from_slice(&encoded);
        }
        if self.buf.len() >= self.options.write_buffer {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Syncs the full segment and starts the next one with a header holding the current state.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.flush_buf()?;
        self.sync_segment()?;
        let seq = self.segments.back().map_or(1, |s| s.seq + 1);
        let path = self.dir.join(segment_name(
            seq,
            self.last_index.next().unwrap_or(self.last_index),
        ));
        self.file = self
            .fs
            .create(&path)
            .map_err(|e| io_err("create", &path, e))?;
        self.file_len = 0;
        self.dir_dirty = true;
        self.segments.push_back(Segment {
            seq,
            path,
            start: self.last_index,
        });
        encode_record(
            &mut self.buf,
            &RecordOut::Segment {
                seq,
                hard_state: self.hard_state,
                last_index: self.last_index,
                snapshot_index: self.snapshot.last.index,
            },
        )
    }

    /// Deletes the segments whose every live entry is in the snapshot.
    fn compact(&mut self) -> Result<(), StorageError> {
        let snap = self.snapshot.last.index;
        if !(self.segments.len() >= 2 && self.segments.get(1).is_some_and(|s| s.start <= snap)) {
            return Ok(());
        }
        // The segments that stay must be durable (header and directory entry) before the ones
        // they replace go: a crash must never leave no segment, or one that starts mid-log.
        self.sync_inner()?;
        while self.segments.len() >= 2 && self.segments.get(1).is_some_and(|s| s.start <= snap) {
            if let Some(seg) = self.segments.pop_front() {
                self.fs
                    .remove(&seg.path)
                    .map_err(|e| io_err("remove", &seg.path, e))?;
                self.dir_dirty = true;
            }
        }
        Ok(())
    }

    /// Makes `sf` the latest snapshot (its file is durable), records it in the log and deletes
    /// what it replaces.
    fn adopt_snapshot(&mut self, meta: SnapshotMeta, sf: SnapFile) -> Result<(), StorageError> {
        self.push_record(&RecordOut::Snapshot { meta: &meta })?;
        self.last_index = self.last_index.max(meta.last.index);
        self.snapshot = meta;
        self.chunk_reader = None;
        if let Some(old) = self.snap_file.replace(sf)
            && Some(&old.path) != self.snap_file.as_ref().map(|s| &s.path)
        {
            self.fs
                .remove(&old.path)
                .map_err(|e| io_err("remove", &old.path, e))?;
            self.dir_dirty = true;
        }
        self.compact()
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

    fn receive_chunk(&mut self, part: &raft_core::SnapshotPart) -> Result<(), StorageError> {
        if part.offset == 0 {
            self.incoming = None;
            self.incoming = Some(self.create_snapshot_file(self.dir.join(INCOMING), &part.meta)?);
        }
        let Some(inc) = self.incoming.as_mut() else {
            return Err(StorageError::Misuse {
                reason: "snapshot chunk out of order",
            });
        };
        inc.write_payload(&part.data)?;
        if !part.done {
            return Ok(());
        }
        let Some(inc) = self.incoming.take() else {
            return Ok(());
        };
        // Everything appended before this snapshot must be durable before it is.
        self.sync_inner()?;
        let (meta, sf) = self.seal(inc)?;
        self.install(meta, sf)
    }

    /// Creates the temporary file `tmp` for a snapshot and writes its header.
    fn create_snapshot_file(
        &self,
        tmp: PathBuf,
        meta: &SnapshotMeta,
    ) -> Result<SnapWriter<F::WriteFile>, StorageError> {
        let header = snapshot_header(meta)?;
        let mut file = self
            .fs
            .create(&tmp)
            .map_err(|e| io_err("create", &tmp, e))?;
        write_all(&mut file, &header, &tmp)?;
        Ok(SnapWriter {
            file,
            tmp,
            meta: meta.clone(),
            payload_start: header.len() as u64,
            len: 0,
            crc: 0,
        })
    }

    /// Completes the snapshot file, syncs it and renames it into place (not yet durable in the
    /// directory, not yet adopted).
    fn seal(
        &self,
        mut w: SnapWriter<F::WriteFile>,
    ) -> Result<(SnapshotMeta, SnapFile), StorageError> {
        write_all(&mut w.file, &snapshot_trailer(w.len, w.crc), &w.tmp)?;
        sync_file(&mut w.file, &w.tmp)?;
        let final_path = self.dir.join(snapshot_name(w.meta.last));
        self.fs
            .rename(&w.tmp, &final_path)
            .map_err(|e| io_err("rename", &w.tmp, e))?;
        let sf = SnapFile {
            path: final_path,
            payload_start: w.payload_start,
            payload_len: w.len,
            payload_crc: w.crc,
        };
        Ok((w.meta, sf))
    }

    /// Makes a sealed snapshot durable in the directory and the latest one.
    fn install(&mut self, meta: SnapshotMeta, sf: SnapFile) -> Result<(), StorageError> {
        self.sync_dir()?;
        self.adopt_snapshot(meta, sf)
    }
}

/// What replaying one segment gave.
enum SegmentOutcome {
    Replayed {
        start: Index,
        /// Cut the file at this offset (a torn tail).
        cut: Option<u64>,
    },
    /// The last segment with no valid header and nothing valid after: never synced.
    Torn,
}

fn replay_segment(
    bytes: &[u8],
    path: &Path,
    seq: u64,
    last_segment: bool,
    replay: &mut Option<Replay>,
    snapshot: &SnapshotMeta,
) -> Result<SegmentOutcome, StorageError> {
    let snap = snapshot.last.index;
    // The header.
    let (payload, mut off) = match read_record(bytes, 0) {
        Ok(r) => r,
        Err(reason) => {
            if last_segment && torn_at(bytes, 0) {
                return Ok(SegmentOutcome::Torn);
            }
            return Err(corrupt(path, 0, reason));
        }
    };
    let Ok(RecordIn::Segment {
        seq: header_seq,
        hard_state,
        last_index,
        snapshot_index,
    }) = postcard::from_bytes::<RecordIn>(payload)
    else {
        return Err(corrupt(
            path,
            0,
            "segment does not start with a segment header",
        ));
    };
    if header_seq != seq {
        return Err(corrupt(
            path,
            0,
            "segment header names another sequence number",
        ));
    }
    let st: &mut Replay = match replay {
        Some(st) => {
            if st.shape.last_index() != last_index {
                return Err(corrupt(
                    path,
                    0,
                    "segment does not continue the previous one",
                ));
            }
            if hard_state.term < st.shape.hard_state().term {
                return Err(corrupt(path, 0, "segment header's term goes backwards"));
            }
            let header = WriteParts {
                hard_state: Some(hard_state),
                truncate_from: None,
                snapshot: None,
                entries: &[],
            };
            st.shape
                .apply(header)
                .map_err(|v| corrupt(path, 0, v.reason()))?;
            st.header_snap = st.header_snap.max(snapshot_index);
            st
        }
        // What came before the first segment is known only by its header's summary.
        None => replay.insert(Replay {
            shape: DurableShape::resumed(hard_state, snapshot_index, last_index),
            header_snap: snapshot_index,
            entries: Vec::new(),
        }),
    };
    let start = last_index;
    let mut cut = None;
    while off < bytes.len() {
        let record_at = off as u64;
        let payload = match read_record(bytes, off) {
            Ok((payload, next)) => {
                off = next;
                payload
            }
            Err(reason) => {
                if last_segment && torn_at(bytes, off) {
                    cut = Some(record_at);
                    break;
                }
                return Err(corrupt(path, record_at, reason));
            }
        };
        let record: RecordIn = postcard::from_bytes(payload)
            .map_err(|_| corrupt(path, record_at, "undecodable record"))?;
        match record {
            RecordIn::Segment { .. } => {
                return Err(corrupt(path, record_at, "segment header in mid-segment"));
            }
            RecordIn::Write {
                hard_state,
                truncate_from,
                entries,
            } => {
                // A record the write contract refuses was never appended: damage.
                let effect = st
                    .shape
                    .apply(WriteParts {
                        hard_state,
                        truncate_from,
                        snapshot: None,
                        entries: &entries,
                    })
                    .map_err(|v| corrupt(path, record_at, v.reason()))?;
                if let Some(from) = effect.truncate_from {
                    let keep = st.entries.partition_point(|e| e.id.index < from);
                    st.entries.truncate(keep);
                }
                st.entries
                    .extend(entries.into_iter().filter(|e| e.id.index > snap));
            }
            RecordIn::Snapshot { meta } => {
                st.shape
                    .install_snapshot(meta.last)
                    .map_err(|v| corrupt(path, record_at, v.reason()))?;
                let idx = meta.last.index;
                let drop = st.entries.partition_point(|e| e.id.index <= idx);
                st.entries.drain(..drop);
            }
        }
    }
    Ok(SegmentOutcome::Replayed { start, cut })
}

/// Creates `dir` and its missing parents, and syncs the parent of each level it created, so that
/// none of them can vanish in a crash with the files written under them.
fn create_dir_durably<F: FileSystem>(fs: &F, dir: &Path) -> Result<(), StorageError> {
    // The levels that do not exist yet, innermost first.
    let mut missing = Vec::new();
    for level in dir.ancestors() {
        if level.as_os_str().is_empty() {
            break;
        }
        match fs.list_dir(level) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(level),
            // There but not listable (no read permission, say): not ours to create.
            Err(_) => break,
        }
    }
    fs.create_dir_all(dir)
        .map_err(|e| io_err("create directory", dir, e))?;
    for level in missing.iter().rev() {
        sync_dir_at(fs, &super::fs::parent_dir(level))?;
    }
    Ok(())
}

fn identity_bytes(identity: Identity) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(IDENTITY_MAGIC);
    b.extend_from_slice(&identity.cluster_id.to_le_bytes());
    b.extend_from_slice(&identity.node_id.get().to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn write_identity<F: FileSystem>(
    fs: &F,
    dir: &Path,
    identity: Identity,
) -> Result<(), StorageError> {
    let tmp = dir.join("IDENTITY.tmp");
    let path = dir.join(IDENTITY);
    let mut f = fs.create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    write_all(&mut f, &identity_bytes(identity), &tmp)?;
    sync_file(&mut f, &tmp)?;
    fs.rename(&tmp, &path)
        .map_err(|e| io_err("rename", &tmp, e))?;
    sync_dir_at(fs, dir)
}

fn check_identity<F: FileSystem>(
    fs: &F,
    dir: &Path,
    identity: Identity,
) -> Result<(), StorageError> {
    let path = dir.join(IDENTITY);
    let bytes = fs.read_all(&path).map_err(|e| io_err("read", &path, e))?;
    if bytes.len() != 28 || bytes.get(..8) != Some(IDENTITY_MAGIC.as_slice()) {
        return Err(corrupt(&path, 0, "not an identity file"));
    }
    let word = |at: usize| -> u64 {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let crc = bytes
        .get(24..28)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    if crc32c::crc32c(bytes.get(..24).unwrap_or_default()) != crc {
        return Err(corrupt(&path, 24, "identity checksum mismatch"));
    }
    let (cluster, node) = (word(8), word(16));
    if cluster != identity.cluster_id || node != identity.node_id.get() {
        return Err(StorageError::WrongIdentity {
            dir: dir.to_path_buf(),
            expected: identity.describe(),
            found: format!("cluster {cluster}/node {node}"),
        });
    }
    Ok(())
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
