//! The three stores agree on every write: the simulator's reference disk (`SimDisk`),
//! `MemStorage` and `FileStorage` (on real files in a temporary directory) are fed the same
//! writes and snapshots, valid and not, and each must accept or refuse each one with the same
//! `WriteViolation`, and hold the same state after it; reopened, the file storage gives that
//! state back. Hand-written cases first (among them the disagreements the write contract
//! resolved), then generated sequences.
//!
//! `STORAGE_AGREE_SEEDS=n` runs seeds 1..=n of the generated sequences (a longer soak);
//! `STORAGE_AGREE_SEED=s` runs one.

mod support;

use std::io::{Read, Write as _};
use std::path::Path;

use raft_core::sim::{SimDisk, SimRng, snapshot_blob};
use raft_core::{Index, LogId, SnapshotMeta, Term, Write, WriteViolation};
use raft_std::storage::file::{FileStorage, FileStorageOptions};
use raft_std::storage::fs::StdFs;
use raft_std::storage::{Recovered, Storage, StorageError};
use raft_std::test_util::mem::{MemDisk, MemStorage};
use support::*;

fn opts() -> FileStorageOptions {
    FileStorageOptions {
        segment_size: 4096,
        write_buffer: 1024,
    }
}

fn open_file(dir: &Path) -> (FileStorage, Recovered) {
    FileStorage::open_with(StdFs, dir, identity(), membership(), opts())
        .unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// What a store said to a write or a snapshot.
type Outcome = Result<(), WriteViolation>;

/// A store's answer, as an outcome: anything but acceptance or a contract violation fails the
/// test.
fn outcome(store: &str, r: Result<(), StorageError>) -> Outcome {
    match r {
        Ok(()) => Ok(()),
        Err(StorageError::Violation(v)) => Err(v),
        Err(e) => panic!("{store}: {e}"),
    }
}

/// The three stores, fed the same writes.
struct Trio {
    sim: SimDisk,
    mem_disk: MemDisk,
    mem: MemStorage,
    /// `None` only while it is reopened.
    file: Option<FileStorage>,
    dir: tempfile::TempDir,
    /// Writes and snapshots seen, and the refused ones by reason.
    seen: (u64, std::collections::BTreeMap<&'static str, u64>),
}

impl Trio {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mem_disk = MemDisk::new(membership());
        let (mem, r_mem) = MemStorage::open(&mem_disk).unwrap();
        let (file, r_file) = open_file(dir.path());
        let sim = SimDisk::default();
        assert_eq!(r_mem, expected(&sim));
        assert_eq!(r_file, expected(&sim));
        Self {
            sim,
            mem_disk,
            mem,
            file: Some(file),
            dir,
            seen: (0, std::collections::BTreeMap::new()),
        }
    }

    /// Feeds `w` to every store (and syncs it); returns what they agreed on.
    fn write(&mut self, w: &Write) -> Outcome {
        self.sim.submit(w.clone(), 0, 0);
        let sim = self.sim.complete(usize::MAX).map(drop).map_err(|e| e.1);
        let mem = outcome("memory", self.mem.append(w));
        let file = outcome("file", self.file().append(w));
        assert_eq!(mem, sim, "memory and sim disagree on {w:?}");
        assert_eq!(file, sim, "file and sim disagree on {w:?}");
        self.mem.sync().unwrap();
        self.file().sync().unwrap();
        self.tally(&sim);
        self.check_state(&format!("{w:?}"));
        sim
    }

    /// The node snapshots its state machine at `meta`: every store takes it (or refuses it).
    fn snapshot(&mut self, meta: &SnapshotMeta, blob: &[u8]) -> Outcome {
        self.sim.take_snapshot(meta.clone(), blob.to_vec());
        // Nothing is pending: this only reports a snapshot the disk refused.
        let sim = self.sim.complete(0).map(drop).map_err(|e| e.1);
        let mem = outcome("memory", own_snapshot(&mut self.mem, meta, blob));
        let file = outcome("file", own_snapshot(self.file(), meta, blob));
        assert_eq!(mem, sim, "memory and sim disagree on the snapshot {meta:?}");
        assert_eq!(file, sim, "file and sim disagree on the snapshot {meta:?}");
        self.tally(&sim);
        self.check_state(&format!("snapshot {meta:?}"));
        sim
    }

    fn file(&mut self) -> &mut FileStorage {
        self.file.as_mut().expect("the file storage is open")
    }

    fn tally(&mut self, o: &Outcome) {
        self.seen.0 += 1;
        if let Err(v) = o {
            *self.seen.1.entry(v.reason()).or_default() += 1;
        }
    }

    /// Every store holds the same: hard state, snapshot, log (the file storage's log is read
    /// back by [`Self::restart`]).
    fn check_state(&self, after: &str) {
        let want = expected(&self.sim);
        let (_, mem) = MemStorage::open(&self.mem_disk).unwrap();
        assert_eq!(mem, want, "memory after {after}");
        let file = self.file.as_ref().expect("the file storage is open");
        assert_eq!(file.hard_state(), want.hard_state, "file after {after}");
        assert_eq!(file.snapshot_meta(), &want.snapshot, "file after {after}");
        let last = want
            .entries
            .last()
            .map_or(want.snapshot.last.index, |e| e.id.index);
        assert_eq!(file.last_index(), last, "file after {after}");
    }

    /// Every store restarts (a snapshot being received is lost); the file storage is reopened
    /// from its directory, and all must give back the same state and snapshot bytes.
    fn restart(&mut self) {
        self.sim.crash(&mut SimRng::new(1)).unwrap();
        self.mem_disk.crash();
        let (mem, r_mem) = MemStorage::open(&self.mem_disk).unwrap();
        self.mem = mem;
        // The open storage goes first: one process per directory.
        drop(self.file.take());
        let (file, r_file) = open_file(self.dir.path());
        self.file = Some(file);
        let want = expected(&self.sim);
        assert_eq!(r_mem, want, "memory reopened");
        assert_eq!(r_file, want, "file reopened");
        let blob = self.sim.snapshot.as_ref().map(|(_, b)| b.clone());
        assert_eq!(
            snapshot_bytes(&mut self.mem),
            blob,
            "memory's snapshot bytes"
        );
        assert_eq!(snapshot_bytes(self.file()), blob, "file's snapshot bytes");
        self.check_state("restart");
    }
}

fn own_snapshot<S: Storage>(
    s: &mut S,
    meta: &SnapshotMeta,
    blob: &[u8],
) -> Result<(), StorageError> {
    let mut w = s.begin_snapshot(meta)?;
    w.write_all(blob).unwrap();
    s.finish_snapshot(w)
}

fn snapshot_bytes<S: Storage>(s: &mut S) -> Option<Vec<u8>> {
    let mut r = s.open_snapshot().unwrap()?;
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    Some(v)
}

/// Terms 1 (entries 1..=10) and 2 (11..=20), hard state term 2 with a vote.
fn started() -> Trio {
    let mut t = Trio::new();
    assert_eq!(
        t.write(&w(1).hs(1, Some(1)).entries(1, 1, 10, 30).0),
        Ok(())
    );
    assert_eq!(
        t.write(&w(2).hs(2, Some(2)).entries(2, 11, 20, 30).0),
        Ok(())
    );
    t
}

/// The disagreement the contract resolved: a completed received snapshot older than the one
/// held. The simulator's disk accepted it (and moved its log's start backwards), the memory
/// store called it corruption (and poisoned itself), the file store misuse. Now each refuses
/// it, changes nothing, and goes on accepting writes.
#[test]
fn an_older_completed_snapshot_is_refused_by_every_store() {
    let mut t = started();
    assert_eq!(t.snapshot(&meta(2, 15), b"at fifteen"), Ok(()));
    let older = meta(1, 8);
    assert_eq!(
        t.write(&w(3).chunk(&older, 0, b"stale", true).0),
        Err(WriteViolation::SnapshotOlder {
            snapshot: older.last,
            latest: Index(15),
        })
    );
    // The same as the node's own snapshot: refused too.
    assert_eq!(
        t.snapshot(&older, b"stale"),
        Err(WriteViolation::SnapshotOlder {
            snapshot: older.last,
            latest: Index(15),
        })
    );
    // Not newer (the same one): kept as it is, by every store.
    assert_eq!(t.snapshot(&meta(2, 15), b"again"), Ok(()));
    assert_eq!(t.write(&w(4).entries(2, 21, 22, 30).0), Ok(()));
    t.restart();
}

/// The simulator's disk and the memory store took a chunk of another snapshot as the
/// continuation of the one being received when its offset matched; the file store refused it.
#[test]
fn a_chunk_of_another_snapshot_is_refused_by_every_store() {
    let mut t = started();
    let a = meta(2, 30);
    let b = meta(2, 31);
    assert_eq!(t.write(&w(3).chunk(&a, 0, b"abc", false).0), Ok(()));
    assert_eq!(
        t.write(&w(4).chunk(&b, 3, b"def", true).0),
        Err(WriteViolation::ChunkOutOfOrder {
            snapshot: b.last,
            offset: 3,
            received: None,
        })
    );
    assert_eq!(
        t.write(&w(5).chunk(&a, 2, b"def", true).0),
        Err(WriteViolation::ChunkOutOfOrder {
            snapshot: a.last,
            offset: 2,
            received: Some(3),
        })
    );
    assert_eq!(t.write(&w(6).chunk(&a, 3, b"def", true).0), Ok(()));
    t.restart();
    assert_eq!(
        t.sim.snapshot.as_ref().map(|(_, b)| b.as_slice()),
        Some(&b"abcdef"[..])
    );
    // After a restart the partial snapshot is gone everywhere: a continuation is refused.
    let c = meta(2, 40);
    assert_eq!(t.write(&w(7).chunk(&c, 0, b"x", false).0), Ok(()));
    t.restart();
    assert_eq!(
        t.write(&w(8).chunk(&c, 1, b"y", true).0),
        Err(WriteViolation::ChunkOutOfOrder {
            snapshot: c.last,
            offset: 1,
            received: None,
        })
    );
}

#[test]
fn hard_states_truncations_and_entries_are_judged_alike() {
    let mut t = started();
    let refused = [
        (
            w(3).hs(1, None),
            WriteViolation::TermGoesBackwards {
                held: Term(2),
                written: Term(1),
            },
        ),
        (
            w(4).hs(2, Some(3)),
            WriteViolation::VoteChanged {
                term: Term(2),
                held: node(2),
                written: Some(node(3)),
            },
        ),
        (
            w(5).hs(2, None),
            WriteViolation::VoteChanged {
                term: Term(2),
                held: node(2),
                written: None,
            },
        ),
        (
            w(6).entries(2, 22, 22, 1),
            WriteViolation::EntriesNotContiguous {
                last: Index(20),
                found: Index(22),
            },
        ),
        (
            w(7).entries(1, 21, 21, 1),
            WriteViolation::TermsDecrease {
                entry: LogId::new(1, 21),
                prev: Term(2),
            },
        ),
        (
            w(8).entries(3, 21, 21, 1),
            WriteViolation::EntryAheadOfTerm {
                entry: LogId::new(3, 21),
                term: Term(2),
            },
        ),
        // The whole write is refused: its valid hard state is not kept either.
        (
            w(9).hs(3, None).entries(3, 21, 21, 1).entries(2, 22, 22, 1),
            WriteViolation::TermsDecrease {
                entry: LogId::new(2, 22),
                prev: Term(3),
            },
        ),
        (
            w(10).truncate(0),
            WriteViolation::TruncatesSnapshot {
                from: Index(0),
                snapshot: Index(0),
            },
        ),
    ];
    for (x, v) in refused {
        assert_eq!(t.write(&x.0), Err(v), "{x:?}");
    }
    // A new term with its own entries after a truncation; a truncation past the end is a no-op.
    assert_eq!(
        t.write(&w(11).hs(3, None).truncate(16).entries(3, 16, 18, 5).0),
        Ok(())
    );
    assert_eq!(t.write(&w(12).truncate(40).0), Ok(()));
    assert_eq!(t.write(&w(13).hs(3, Some(1)).0), Ok(()));
    t.restart();
    // A snapshot inside the log keeps the entries after it when it agrees with the log there.
    assert_eq!(t.snapshot(&meta(1, 10), b"ten"), Ok(()));
    assert_eq!(
        t.write(&w(14).truncate(10).0),
        Err(WriteViolation::TruncatesSnapshot {
            from: Index(10),
            snapshot: Index(10),
        })
    );
    let wrong = meta(1, 12);
    assert_eq!(
        t.write(&w(15).chunk(&wrong, 0, b"w", true).0),
        Err(WriteViolation::SnapshotConflicts {
            snapshot: wrong.last,
            log_term: Term(2),
        })
    );
    // ... and with the truncation the core sends with it, the entries after it go.
    assert_eq!(
        t.write(&w(16).truncate(13).chunk(&wrong, 0, b"w", true).0),
        Ok(())
    );
    assert_eq!(t.sim.entries.len(), 0);
    assert_eq!(
        t.snapshot(&meta(4, 20), b"ahead"),
        Err(WriteViolation::SnapshotAheadOfTerm {
            snapshot: LogId::new(4, 20),
            term: Term(3),
        })
    );
    assert_eq!(
        t.write(&w(17).chunk(&meta(0, 30), 0, b"z", true).0),
        Err(WriteViolation::SnapshotIdInconsistent {
            snapshot: LogId::new(0, 30),
        })
    );
    t.restart();
}

/// A generator of writes and snapshots, most of them valid, some bogus in every way the
/// contract knows, read off the reference disk.
struct Gen {
    rng: SimRng,
    next_id: u64,
    /// A received snapshot in progress: its meta and bytes sent (what the stores received of it
    /// may differ: a write carrying a chunk may have been refused).
    incoming: Option<(SnapshotMeta, Vec<u8>, usize)>,
}

impl Gen {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.rng.below(xs.len() as u64) as usize]
    }

    /// The term of the reference disk's entry at `index` (the snapshot's at its index).
    fn term_at(d: &SimDisk, index: u64) -> Option<u64> {
        if index == d.first() {
            return Some(d.snapshot.as_ref().map_or(0, |(m, _)| m.last.term.0));
        }
        let i = index.checked_sub(d.first() + 1)?;
        d.entries.get(i as usize).map(|e| e.id.term.0)
    }

    /// The next write, from the state of `d`.
    fn write(&mut self, d: &SimDisk) -> Write {
        let first = d.first();
        let last = first + d.entries.len() as u64;
        let term = d.hard_state.term.0;
        let mut x = w(self.id());
        let mut new_term = term;
        // The hard state.
        match self.rng.below(20) {
            0..=2 => {
                new_term = term + 1;
                let vote = self.pick(&[None, Some(1), Some(2)]);
                x = x.hs(new_term, vote);
            }
            3 => x = x.hs(term, d.hard_state.vote.map(|v| v.get())),
            4 => x = x.hs(term, Some(self.rng.between(1, 3))),
            5 => x = x.hs(term.saturating_sub(1), None),
            _ => {}
        }
        // The truncation.
        let mut end = last;
        match self.rng.below(12) {
            0 | 1 if last > first => {
                let from = self.rng.between(first + 1, last);
                x = x.truncate(from);
                end = from - 1;
            }
            2 => x = x.truncate(last + 1 + self.rng.below(3)),
            3 => x = x.truncate(self.rng.below(first + 1)),
            _ => {}
        }
        // A snapshot chunk.
        if self.incoming.is_none() && self.rng.chance(60_000) {
            let index = match self.rng.below(4) {
                0 => self.rng.below(first + 1),
                1 | 2 => self.rng.between(first, end + 2),
                _ => end + self.rng.between(1, 20),
            };
            let t = match Self::term_at(d, index) {
                Some(t) if self.rng.chance(800_000) => t,
                _ => self.rng.between(1, new_term.max(1) + 1),
            };
            let len = self.rng.between(1, 600) as usize;
            let blob = snapshot_blob(self.rng.next_u64(), len);
            self.incoming = Some((meta(t, index), blob, 0));
        }
        if let Some((m, blob, sent)) = self.incoming.take() {
            let (offset, n) = match self.rng.below(10) {
                0 => (sent.saturating_sub(1), 1),
                1 => (sent + 1, 1),
                _ => (sent, self.rng.between(1, 300) as usize),
            };
            let offset = offset.min(blob.len());
            let n = n.min(blob.len() - offset).max(1).min(blob.len() - offset);
            let done = offset + n == blob.len();
            let other = if self.rng.chance(50_000) {
                meta(m.last.term.0, m.last.index.0 + 1)
            } else {
                m.clone()
            };
            x = x.chunk(&other, offset as u64, &blob[offset..offset + n], done);
            if done && m.last.index.0 >= end {
                end = m.last.index.0;
            }
            if !done {
                self.incoming = Some((m, blob, offset + n));
            }
        }
        // Entries.
        if self.rng.chance(700_000) {
            let n = self.rng.between(1, 5);
            let from = match self.rng.below(15) {
                0 => end + 2,
                1 => end.max(1),
                _ => end + 1,
            };
            let last_term = Self::term_at(d, end.min(last)).unwrap_or(0);
            let t = match self.rng.below(15) {
                0 => last_term.saturating_sub(1),
                1 => new_term + 1,
                _ => new_term.max(last_term),
            };
            x = x.entries(t, from, from + n - 1, self.pick(&[0, 8, 100]));
        }
        x.0
    }

    /// A snapshot the node takes, from the state of `d`: at an index of the log, mostly with
    /// its term, sometimes older, equal, or wrong.
    fn snapshot(&mut self, d: &SimDisk) -> (SnapshotMeta, Vec<u8>) {
        let first = d.first();
        let last = first + d.entries.len() as u64;
        let index = match self.rng.below(8) {
            0 => self.rng.below(first + 1),
            1 => last + 1,
            _ => self.rng.between(first, last),
        };
        let term = match Self::term_at(d, index) {
            Some(t) if self.rng.chance(900_000) => t,
            _ => self.rng.between(1, d.hard_state.term.0 + 2),
        };
        let blob = snapshot_blob(self.rng.next_u64(), self.rng.between(1, 400) as usize);
        (meta(term, index), blob)
    }
}

/// One generated sequence of `ops` writes, snapshots and restarts.
fn run(seed: u64, ops: u32) -> (u64, std::collections::BTreeMap<&'static str, u64>) {
    let mut t = Trio::new();
    let mut g = Gen {
        rng: SimRng::new(seed),
        next_id: 0,
        incoming: None,
    };
    for _ in 0..ops {
        match g.rng.below(100) {
            0 => {
                t.restart();
                g.incoming = None;
            }
            1..=5 => {
                let (m, blob) = g.snapshot(&t.sim);
                let _ = t.snapshot(&m, &blob);
            }
            _ => {
                let x = g.write(&t.sim);
                let _ = t.write(&x);
            }
        }
    }
    t.restart();
    t.seen
}

#[test]
fn generated_sequences_agree() {
    let seeds: Vec<u64> = if let Ok(s) = std::env::var("STORAGE_AGREE_SEED") {
        vec![s.parse().expect("a seed")]
    } else {
        let n = std::env::var("STORAGE_AGREE_SEEDS").map_or(4, |n| n.parse().expect("a count"));
        (1..=n).collect()
    };
    let mut seen = 0;
    let mut reasons = std::collections::BTreeMap::new();
    for seed in seeds {
        let (s, r) = run(seed, 1000);
        seen += s;
        for (k, n) in r {
            *reasons.entry(k).or_insert(0) += n;
        }
    }
    let refused: u64 = reasons.values().sum();
    eprintln!("{seen} writes and snapshots, {refused} refused: {reasons:?}");
    // Both kinds in numbers, and refusals of many kinds: a generator that only made valid (or
    // only bogus, or one kind of bogus) writes would prove little.
    assert!(refused * 10 > seen, "{refused} of {seen} refused");
    assert!(refused * 2 < seen, "{refused} of {seen} refused");
    assert!(reasons.len() >= 9, "{reasons:?}");
}
