//! Opening a data directory: the identity, the latest snapshot checked end to end, every segment
//! replayed through the write contract, a torn tail told from damage and cut, leftovers
//! deleted, and what was read made durable before it is returned.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use raft_core::{
    DurableShape, Entry, HardState, Index, LogId, Membership, SnapshotMeta, WriteParts,
};

use super::identity::{IDENTITY, Identity, check_identity, write_identity};
use super::record::{RecordIn, RecordOut, encode_record, read_record, torn_at, valid_record_after};
use super::segment::{Segment, parse_segment_name, segment_name};
use super::snapshot_file::{check_snapshot, parse_snapshot_name};
use super::{FileStorage, FileStorageOptions, corrupt, io_err, sync_dir_at, sync_file, write_all};
use crate::storage::fs::{FileSystem, WriteFile};
use crate::storage::{Recovered, Storage, StorageError};

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
    /// [`FileStorageOptions`], and reads back what it holds. A missing or empty directory starts
    /// fresh with `initial` as the membership.
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
        Self::open_with(fs, dir, identity, initial, FileStorageOptions::default())
    }

    /// [`Self::open`] with explicit [`FileStorageOptions`].
    ///
    /// # Errors
    ///
    /// As [`Self::open`].
    pub fn open_with(
        fs: F,
        dir: impl Into<PathBuf>,
        identity: Identity,
        initial: Membership,
        options: FileStorageOptions,
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
        options: FileStorageOptions,
    ) -> Result<(Self, Recovered), StorageError> {
        // The first segment is durable before the identity file appears, so a directory with an
        // identity and no segment is damage, not a crash during creation.
        sync_dir_at(&fs, &crate::storage::fs::parent_dir(&dir))?;
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
        sync_dir_at(fs, &crate::storage::fs::parent_dir(level))?;
    }
    Ok(())
}
