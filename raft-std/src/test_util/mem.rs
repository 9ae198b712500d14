//! In-memory storage for tests and examples, with a "disk" that survives a simulated crash.
//!
//! A [`MemDisk`] is the durable part: a shareable handle (clone it freely) that outlives the node
//! using it. [`MemStorage::open`] reads it back as a [`Recovered`] and returns the storage a node
//! runs on. [`Storage::append`] only buffers a write in the storage (process memory);
//! [`Storage::sync`] moves everything buffered onto the disk. [`MemDisk::crash`] simulates the
//! process dying: everything not synced is lost, and the storage that was open on the disk refuses
//! every further call, so a node thread that is still winding down cannot make anything durable
//! after the crash. A snapshot being received from a leader is staged in process memory (as a
//! file storage stages it in a temporary file) and is lost with the process too.
//!
//! What a write may do, and what it changes, is the write contract's
//! ([`DurableShape`], as for the simulator's reference disk and the file storage): a write it
//! refuses is refused by [`Storage::append`] with [`StorageError::Violation`], and nothing is
//! buffered. A completed received snapshot replaces the log up to its index and keeps the entries
//! after it, and a snapshot taken by the node drops the log it covers.

use std::io::{self, Cursor, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use raft_core::{
    DurableShape, Entry, HardState, LogId, Membership, SnapshotMeta, Write, WriteEffect,
};

use crate::storage::{Recovered, Storage, StorageError};

/// The durable state of one node, shared between the cluster that owns it and the storage open on
/// it.
#[derive(Clone, Debug)]
pub struct MemDisk {
    inner: Arc<Mutex<Durable>>,
}

#[derive(Debug)]
struct Durable {
    hard_state: HardState,
    /// The latest snapshot's metadata (`LogId::ZERO` and the initial membership if none).
    snapshot_meta: SnapshotMeta,
    /// The latest snapshot's bytes (`None` if none was ever stored).
    snapshot: Option<Arc<[u8]>>,
    /// The durable log after the snapshot: entry `i` has index `snapshot.last.index + i + 1`.
    entries: Vec<Entry>,
    /// Bumped by every crash: a storage opened in an earlier incarnation refuses everything.
    incarnation: u64,
    /// Fault injection: the next sync fails.
    fail_next_sync: bool,
    /// Syncs that made something durable.
    syncs: u64,
}

impl Durable {
    fn first(&self) -> u64 {
        self.snapshot_meta.last.index.0
    }

    /// Makes `w` durable as `effect` (what the write contract accepted it as) says; `staged`
    /// holds the bytes of a snapshot being received.
    fn apply(&mut self, w: &Write, effect: &WriteEffect, staged: &mut Vec<u8>) {
        if let Some(hs) = effect.hard_state {
            self.hard_state = hs;
        }
        if let Some(from) = effect.truncate_from {
            let keep = from.0.saturating_sub(1).saturating_sub(self.first());
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            self.entries.truncate(keep);
        }
        if let Some(part) = &w.snapshot {
            if part.offset == 0 {
                staged.clear();
            }
            staged.extend_from_slice(&part.data);
            if effect.installs.is_some() {
                let bytes = std::mem::take(staged);
                self.install_snapshot(part.meta.clone(), Arc::from(bytes));
            }
        }
        self.entries.extend(w.entries.iter().cloned());
    }

    /// A snapshot becomes the latest: the log up to it goes, the entries after it stay.
    fn install_snapshot(&mut self, meta: SnapshotMeta, bytes: Arc<[u8]>) {
        let drop = meta.last.index.0.saturating_sub(self.first());
        let drop = usize::try_from(drop)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        self.entries.drain(..drop);
        self.snapshot_meta = meta;
        self.snapshot = Some(bytes);
    }
}

fn mem_path() -> PathBuf {
    PathBuf::from("<memory>")
}

fn corrupt(reason: &'static str) -> StorageError {
    StorageError::Corrupt {
        file: mem_path(),
        offset: 0,
        reason,
    }
}

impl MemDisk {
    /// An empty disk for a node of a brand-new cluster with this membership.
    #[must_use]
    pub fn new(membership: Membership) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Durable {
                hard_state: HardState::default(),
                snapshot_meta: SnapshotMeta {
                    last: LogId::ZERO,
                    membership,
                },
                snapshot: None,
                entries: Vec::new(),
                incarnation: 0,
                fail_next_sync: false,
                syncs: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Durable> {
        // A panic while holding the lock leaves consistent data (every change is a single
        // assignment or a whole write applied before the lock is released), so a poisoned lock
        // is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The process using this disk dies: what was not synced is lost, and the storage open on it
    /// refuses every further call ([`StorageError::Poisoned`]).
    pub fn crash(&self) {
        self.lock().incarnation += 1;
    }

    /// Fault injection: the next [`Storage::sync`] on this disk fails (as an fsync error would).
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// The durable term and vote.
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        self.lock().hard_state
    }

    /// The latest durable snapshot's metadata.
    #[must_use]
    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.lock().snapshot_meta.clone()
    }

    /// The number of durable log entries after the snapshot.
    #[must_use]
    pub fn entry_count(&self) -> usize {
        self.lock().entries.len()
    }

    /// The last durable log entry's id (the snapshot's if the log after it is empty).
    #[must_use]
    pub fn last_log(&self) -> LogId {
        let d = self.lock();
        d.entries.last().map_or(d.snapshot_meta.last, |e| e.id)
    }

    /// How many syncs made writes durable so far (group commit makes this smaller than the
    /// number of writes).
    #[must_use]
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }
}

/// A [`Storage`] on a [`MemDisk`]: writes are buffered until [`Storage::sync`].
#[derive(Debug)]
pub struct MemStorage {
    disk: MemDisk,
    incarnation: u64,
    /// The write contract, as of every write appended (synced or not).
    shape: DurableShape,
    /// Appended, not yet synced, with what the contract accepted each as.
    pending: Vec<(Write, WriteEffect)>,
    /// A snapshot being received from the leader: process memory, lost in a crash.
    staged: Vec<u8>,
    /// A copy of the latest durable snapshot's metadata, for [`Storage::snapshot_meta`].
    snapshot_meta: SnapshotMeta,
    poisoned: bool,
}

impl MemStorage {
    /// Opens `disk`: reads back what is durable, and returns the storage to run the node on.
    ///
    /// # Errors
    ///
    /// [`StorageError::Corrupt`] if what the disk holds breaks the write contract (which
    /// nothing but a bug in this module could cause); the signature matches a file storage's.
    pub fn open(disk: &MemDisk) -> Result<(Self, Recovered), StorageError> {
        let d = disk.lock();
        let shape = DurableShape::restored(
            d.hard_state,
            d.snapshot_meta.last,
            d.entries.iter().map(|e| e.id),
        )
        .map_err(|v| corrupt(v.reason()))?;
        let recovered = Recovered {
            hard_state: d.hard_state,
            snapshot: d.snapshot_meta.clone(),
            entries: d.entries.clone(),
        };
        let storage = Self {
            disk: disk.clone(),
            incarnation: d.incarnation,
            shape,
            pending: Vec::new(),
            staged: Vec::new(),
            snapshot_meta: d.snapshot_meta.clone(),
            poisoned: false,
        };
        drop(d);
        Ok((storage, recovered))
    }

    /// The disk this storage writes to.
    #[must_use]
    pub fn disk(&self) -> &MemDisk {
        &self.disk
    }

    /// The disk, locked, if this storage is still usable (not poisoned, not crashed under).
    fn usable(&mut self) -> Result<MutexGuard<'_, Durable>, StorageError> {
        usable(&self.disk, self.incarnation, &mut self.poisoned)
    }
}

/// `disk`, locked, if a storage opened in `incarnation` and not `poisoned` may still use it.
fn usable<'a>(
    disk: &'a MemDisk,
    incarnation: u64,
    poisoned: &mut bool,
) -> Result<MutexGuard<'a, Durable>, StorageError> {
    if *poisoned {
        return Err(StorageError::Poisoned);
    }
    let d = disk.lock();
    if d.incarnation != incarnation {
        *poisoned = true;
        return Err(StorageError::Poisoned);
    }
    Ok(d)
}

/// A snapshot the node is writing: bytes collected in memory until
/// [`Storage::finish_snapshot`].
#[derive(Debug)]
pub struct MemSnapshotWriter {
    meta: SnapshotMeta,
    bytes: Vec<u8>,
}

impl io::Write for MemSnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads the latest snapshot's bytes (shared with the disk, not copied).
#[derive(Debug)]
pub struct MemSnapshotReader(Cursor<Arc<[u8]>>);

impl Read for MemSnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Storage for MemStorage {
    type SnapshotWriter = MemSnapshotWriter;
    type SnapshotReader = MemSnapshotReader;

    fn append(&mut self, write: &Write) -> Result<(), StorageError> {
        drop(self.usable()?);
        let effect = self.shape.apply(write).map_err(StorageError::Violation)?;
        self.pending.push((write.clone(), effect));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let pending = std::mem::take(&mut self.pending);
        let mut staged = std::mem::take(&mut self.staged);
        let result = (|| {
            let mut d = self.usable()?;
            if std::mem::take(&mut d.fail_next_sync) {
                return Err(StorageError::SyncFailed {
                    path: mem_path(),
                    source: io::Error::other("injected fsync failure"),
                });
            }
            if pending.is_empty() {
                return Ok(d.snapshot_meta.clone());
            }
            for (w, effect) in &pending {
                d.apply(w, effect, &mut staged);
            }
            d.syncs += 1;
            Ok(d.snapshot_meta.clone())
        })();
        self.staged = staged;
        match result {
            Ok(meta) => {
                self.snapshot_meta = meta;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    fn begin_snapshot(
        &mut self,
        meta: &SnapshotMeta,
    ) -> Result<Self::SnapshotWriter, StorageError> {
        drop(self.usable()?);
        self.shape
            .check_snapshot(meta.last)
            .map_err(StorageError::Violation)?;
        Ok(MemSnapshotWriter {
            meta: meta.clone(),
            bytes: Vec::new(),
        })
    }

    fn finish_snapshot(&mut self, writer: Self::SnapshotWriter) -> Result<(), StorageError> {
        let mut d = usable(&self.disk, self.incarnation, &mut self.poisoned)?;
        if writer.meta.last.index <= self.shape.snapshot_index() {
            // Not newer than the one in force (or about to be, once synced): keep that one.
            return Ok(());
        }
        self.shape
            .install_snapshot(writer.meta.last)
            .map_err(StorageError::Violation)?;
        // The contract puts the snapshot after every write appended so far: those become
        // durable first (a crash may keep any prefix of unsynced writes, all of them included),
        // so that the disk holds them in the order the contract checked them in.
        for (w, effect) in self.pending.drain(..) {
            d.apply(&w, &effect, &mut self.staged);
        }
        d.install_snapshot(writer.meta.clone(), Arc::from(writer.bytes));
        self.snapshot_meta = d.snapshot_meta.clone();
        Ok(())
    }

    fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot_meta
    }

    fn open_snapshot(&mut self) -> Result<Option<Self::SnapshotReader>, StorageError> {
        let d = self.usable()?;
        Ok(d.snapshot
            .clone()
            .map(|bytes| MemSnapshotReader(Cursor::new(bytes))))
    }

    fn read_snapshot_chunk(
        &mut self,
        snapshot: LogId,
        offset: u64,
        max_len: u32,
        buf: &mut Vec<u8>,
    ) -> Result<bool, StorageError> {
        buf.clear();
        let d = self.usable()?;
        let bytes = match &d.snapshot {
            Some(bytes) if d.snapshot_meta.last == snapshot => bytes,
            _ => return Err(StorageError::SnapshotGone { asked: snapshot }),
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = start
            .saturating_add(usize::try_from(max_len).unwrap_or(usize::MAX))
            .min(bytes.len());
        buf.extend_from_slice(bytes.get(start..end).unwrap_or_default());
        Ok(end == bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::sim::SimRng;
    use raft_core::{Config, Index, Input, Node, NodeId, Outputs, Payload, Restored};

    fn membership() -> Membership {
        Membership::new(&[NodeId::MIN]).unwrap()
    }

    /// A single-node cluster's leader, on `disk`, with its first writes (the vote, the no-op)
    /// appended and synced.
    fn leader_on(disk: &MemDisk) -> (Node<SimRng>, Outputs, MemStorage) {
        let (mut storage, r) = MemStorage::open(disk).unwrap();
        let restored = Restored {
            hard_state: r.hard_state,
            snapshot: r.snapshot,
            entries: r.entries,
            applied: Index::ZERO,
        };
        let mut node = Node::restore(Config::new(NodeId::MIN), SimRng::new(1), restored).unwrap();
        let mut out = Outputs::new();
        node.step(Input::Campaign, &mut out).unwrap();
        sync_all(&mut node, &mut out, &mut storage);
        (node, out, storage)
    }

    fn sync_all(node: &mut Node<SimRng>, out: &mut Outputs, storage: &mut MemStorage) {
        loop {
            let writes: Vec<Write> = out.drain_writes().collect();
            let Some(last) = writes.last().map(|w| w.id) else {
                break;
            };
            for w in &writes {
                storage.append(w).unwrap();
            }
            storage.sync().unwrap();
            node.step(Input::Persisted(last), out).unwrap();
        }
        out.clear();
    }

    #[test]
    fn a_fresh_disk_recovers_the_initial_state() {
        let disk = MemDisk::new(membership());
        let (_s, r) = MemStorage::open(&disk).unwrap();
        assert_eq!(r.snapshot.last, LogId::ZERO);
        assert!(r.entries.is_empty());
        assert_eq!(r.hard_state, HardState::default());
    }

    #[test]
    fn synced_writes_survive_a_crash_and_unsynced_ones_do_not() {
        let disk = MemDisk::new(membership());
        let (mut node, mut out, mut storage) = leader_on(&disk);
        let synced = disk.last_log();
        assert!(synced.index.0 >= 1, "the leader's no-op is durable");
        assert_eq!(disk.hard_state().vote, Some(NodeId::MIN));
        node.propose(Payload::new(b"lost"), &mut out).unwrap();
        for w in out.drain_writes() {
            storage.append(&w).unwrap();
        }
        disk.crash();
        assert!(matches!(storage.sync(), Err(StorageError::Poisoned)));
        let (_, r) = MemStorage::open(&disk).unwrap();
        assert_eq!(r.entries.last().map(|e| e.id), Some(synced));
        assert_eq!(r.hard_state.vote, Some(NodeId::MIN));
    }

    #[test]
    fn a_snapshot_drops_the_log_it_covers_and_is_read_back_in_chunks() {
        let disk = MemDisk::new(membership());
        let (mut node, mut out, mut storage) = leader_on(&disk);
        for i in 0..5u8 {
            node.propose(Payload::new(&[i]), &mut out).unwrap();
        }
        sync_all(&mut node, &mut out, &mut storage);
        let last = disk.last_log();
        node.step(Input::Applied(last.index), &mut out).unwrap();
        let meta = node.snapshot_meta(Index(3)).unwrap();
        let mut w = storage.begin_snapshot(&meta).unwrap();
        io::Write::write_all(&mut w, b"state at three").unwrap();
        storage.finish_snapshot(w).unwrap();
        assert_eq!(storage.snapshot_meta().last, meta.last);
        let (_, r) = MemStorage::open(&disk).unwrap();
        assert_eq!(r.snapshot.last, meta.last);
        assert_eq!(r.entries.first().map(|e| e.id.index), Some(Index(4)));
        assert_eq!(r.entries.last().map(|e| e.id), Some(last));
        let mut buf = Vec::new();
        assert!(
            !storage
                .read_snapshot_chunk(meta.last, 0, 6, &mut buf)
                .unwrap()
        );
        assert_eq!(buf, b"state ");
        assert!(
            storage
                .read_snapshot_chunk(meta.last, 6, 100, &mut buf)
                .unwrap()
        );
        assert_eq!(buf, b"at three");
        assert!(matches!(
            storage.read_snapshot_chunk(LogId::new(9, 9), 0, 6, &mut buf),
            Err(StorageError::SnapshotGone { .. })
        ));
        let mut all = Vec::new();
        storage
            .open_snapshot()
            .unwrap()
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, b"state at three");
    }

    #[test]
    fn a_completed_received_snapshot_older_than_the_latest_is_refused() {
        let disk = MemDisk::new(membership());
        let (mut node, mut out, mut storage) = leader_on(&disk);
        for i in 0..5u8 {
            node.propose(Payload::new(&[i]), &mut out).unwrap();
        }
        sync_all(&mut node, &mut out, &mut storage);
        let last = disk.last_log();
        node.step(Input::Applied(last.index), &mut out).unwrap();
        let meta = node.snapshot_meta(Index(4)).unwrap();
        let mut w = storage.begin_snapshot(&meta).unwrap();
        io::Write::write_all(&mut w, b"state at four").unwrap();
        storage.finish_snapshot(w).unwrap();
        let older = SnapshotMeta {
            last: LogId::new(meta.last.term.0, 2),
            membership: meta.membership.clone(),
        };
        // A write as the core makes it, carrying a stale completed snapshot instead.
        node.propose(Payload::new(b"x"), &mut out).unwrap();
        let mut write = out.drain_writes().next().unwrap();
        write.entries.clear();
        write.snapshot = Some(Box::new(raft_core::SnapshotPart {
            meta: older,
            offset: 0,
            data: Payload::new(b"stale"),
            done: true,
        }));
        // Refused as the writer's misuse (it was reported as corruption), nothing buffered, and
        // the storage stays usable.
        let err = storage.append(&write).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Violation(raft_core::WriteViolation::SnapshotOlder {
                    snapshot,
                    latest: Index(4),
                }) if snapshot == LogId::new(meta.last.term.0, 2)
            ),
            "{err}"
        );
        storage.sync().unwrap();
        assert_eq!(disk.snapshot_meta(), meta, "the newer snapshot stays");
    }

    #[test]
    fn an_own_snapshot_finished_after_a_newer_one_is_dropped() {
        let disk = MemDisk::new(membership());
        let (mut node, mut out, mut storage) = leader_on(&disk);
        for i in 0..5u8 {
            node.propose(Payload::new(&[i]), &mut out).unwrap();
        }
        sync_all(&mut node, &mut out, &mut storage);
        let last = disk.last_log();
        node.step(Input::Applied(last.index), &mut out).unwrap();
        let old = node.snapshot_meta(Index(2)).unwrap();
        let new = node.snapshot_meta(Index(4)).unwrap();
        let mut w_old = storage.begin_snapshot(&old).unwrap();
        io::Write::write_all(&mut w_old, b"two").unwrap();
        let mut w_new = storage.begin_snapshot(&new).unwrap();
        io::Write::write_all(&mut w_new, b"four").unwrap();
        storage.finish_snapshot(w_new).unwrap();
        storage.finish_snapshot(w_old).unwrap();
        assert_eq!(storage.snapshot_meta(), &new);
        assert_eq!(disk.snapshot_meta(), new);
        let mut all = Vec::new();
        storage
            .open_snapshot()
            .unwrap()
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, b"four");
    }

    #[test]
    fn an_injected_sync_failure_is_fatal() {
        let disk = MemDisk::new(membership());
        let (mut node, mut out, mut storage) = leader_on(&disk);
        node.propose(Payload::new(b"x"), &mut out).unwrap();
        for w in out.drain_writes() {
            storage.append(&w).unwrap();
        }
        disk.fail_next_sync();
        assert!(matches!(
            storage.sync(),
            Err(StorageError::SyncFailed { .. })
        ));
        assert!(matches!(storage.sync(), Err(StorageError::Poisoned)));
    }
}
