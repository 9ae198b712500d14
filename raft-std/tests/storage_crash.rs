//! Crash consistency: a random workload on `FaultyFs`, crashed at random points (unsynced data
//! lost, torn or kept; sometimes in the middle of an operation, by a fault that stops it), then
//! reopened. Whatever was synced must be there, and what comes back must be the reference disk
//! after some prefix of the writes appended since the last sync.
//!
//! Reproduce one failing seed with `STORAGE_CRASH_SEED=<seed> cargo test -p raft-std --test
//! storage_crash`.

mod support;

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use raft_core::sim::{SimDisk, SimRng};
use raft_core::{DurableShape, Index, Write, sim::snapshot_blob};
use raft_std::storage::file::{FileStorage, FileStorageOptions};
use raft_std::storage::{Recovered, Storage};
use raft_std::test_util::faulty::{CrashMode, FaultPlan, FaultyFs};
use support::*;

/// What the generator knows of the log it is writing.
struct Gen {
    rng: SimRng,
    next_id: u64,
    term: u64,
    voted: bool,
    last: u64,
    committed: u64,
    snap: u64,
    /// A received snapshot in progress: its meta, bytes, bytes sent.
    incoming: Option<(raft_core::SnapshotMeta, Vec<u8>, usize)>,
    /// The write contract as of every write generated, to know the log's terms (and to keep
    /// it, as the core does: the term is recorded before entries of it are appended, and a
    /// snapshot that contradicts the log at its index drops the entries after it).
    shape: DurableShape,
}

impl Gen {
    fn from(rng: SimRng, r: &Recovered, next_id: u64) -> Self {
        let last = r
            .entries
            .last()
            .map_or(r.snapshot.last.index.0, |e| e.id.index.0);
        let shape = DurableShape::restored(
            r.hard_state,
            r.snapshot.last,
            r.entries.iter().map(|e| e.id),
        )
        .unwrap();
        Self {
            rng,
            next_id,
            term: r.hard_state.term.0,
            voted: r.hard_state.vote.is_some(),
            last,
            committed: r.snapshot.last.index.0,
            snap: r.snapshot.last.index.0,
            incoming: None,
            shape,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The next write.
    fn write(&mut self) -> Write {
        let id = self.id();
        let mut x = w(id);
        if self.term == 0 {
            // A fresh node records a term before it holds anything of it.
            self.term = 1;
            x = x.hs(1, None);
        }
        if self.incoming.is_none() && self.rng.chance(40_000) {
            let idx = self.rng.between(self.committed + 1, self.last + 20);
            let len = self.rng.below(3000) as usize;
            let blob = snapshot_blob(self.rng.next_u64(), len);
            self.incoming = Some((meta(self.term, idx), blob, 0));
        }
        if self.rng.chance(100_000) {
            self.term += 1;
            self.voted = self.rng.chance(500_000);
            x = x.hs(self.term, self.voted.then_some(2));
        } else if !self.voted && self.rng.chance(50_000) {
            self.voted = true;
            x = x.hs(self.term, Some(3));
        }
        if self.last > self.committed && self.rng.chance(100_000) {
            let from = self.rng.between(self.committed + 1, self.last);
            x = x.truncate(from);
            self.last = from - 1;
        }
        if let Some((m, blob, sent)) = self.incoming.as_mut() {
            let n = (self.rng.between(1, 1500) as usize).min(blob.len() - *sent);
            let done = *sent + n == blob.len();
            x = x.chunk(m, *sent as u64, &blob[*sent..*sent + n], done);
            *sent += n;
            if done {
                bump(|c| c.received_snapshots += 1);
                let idx = m.last.index.0;
                if idx < self.last && self.shape.term_at(Index(idx)) != Some(m.last.term) {
                    // The log after the snapshot belongs to another history: it goes too.
                    let from = x.0.truncate_from.map_or(idx + 1, |f| f.0.min(idx + 1));
                    x = x.truncate(from);
                    self.last = idx;
                }
                self.last = self.last.max(idx);
                self.committed = idx;
                self.snap = idx;
                self.incoming = None;
            }
        }
        if self.rng.chance(800_000) {
            let n = self.rng.between(1, 6);
            let len = [0, 16, 100, 700][self.rng.below(4) as usize];
            x = x.entries(self.term, self.last + 1, self.last + n, len);
            self.last += n;
        }
        if let Err(v) = self.shape.apply(&x.0) {
            panic!("the generator broke the write contract: {v}: {:?}", x.0);
        }
        x.0
    }
}

fn opts() -> FileStorageOptions {
    FileStorageOptions {
        segment_size: 3000,
        write_buffer: 700,
    }
}

fn open(fs: &FaultyFs, dir: &Path) -> (FileStorage<FaultyFs>, Recovered) {
    FileStorage::open_with(fs.clone(), dir, identity(), membership(), opts())
        .unwrap_or_else(|e| panic!("reopen failed: {e}"))
}

/// The states a crash may leave: the synced one plus each prefix of the pending writes (a write
/// possibly cut after its hard state and truncation, or after its snapshot).
fn candidates(acked: &SimDisk, pending: &[Write]) -> Vec<SimDisk> {
    let mut out = vec![acked.clone()];
    let mut d = acked.clone();
    for x in pending {
        let mut cut = x.clone();
        cut.entries.clear();
        let mut cut2 = cut.clone();
        cut2.snapshot = None;
        for partial in [cut2, cut] {
            let mut p = d.clone();
            apply(&mut p, &partial);
            out.push(p);
        }
        apply(&mut d, x);
        out.push(d.clone());
    }
    out
}

fn snapshot_bytes(s: &mut FileStorage<FaultyFs>) -> Option<Vec<u8>> {
    let mut r = s.open_snapshot().unwrap()?;
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    Some(v)
}

/// Runs `rounds` crash points from `seed`; returns how many crashes were checked.
fn run(seed: u64, rounds: u32) -> u32 {
    let fs = FaultyFs::new(seed);
    let dir = PathBuf::from("/data/n1");
    let mut rng = SimRng::new(seed);
    let (mut s, r) = open(&fs, &dir);
    let mut acked = SimDisk::default();
    assert_eq!(r, expected(&acked));
    let mut g = Gen::from(rng.fork(1), &r, 0);
    let mut pending: Vec<Write> = Vec::new();
    let mut crashes = 0;
    for round in 0..rounds {
        let ops = rng.between(1, 40);
        // Sometimes a fault stops an operation half-way before the crash.
        if rng.chance(300_000) {
            let plan = if rng.chance(500_000) {
                FaultPlan {
                    fail_sync_at: Some(rng.between(1, 10)),
                    ..FaultPlan::default()
                }
            } else {
                FaultPlan {
                    fail_write_at: Some(rng.between(1, 30)),
                    ..FaultPlan::default()
                }
            };
            fs.set_plan(plan);
            bump(|c| c.faults += 1);
        } else if rng.chance(200_000) {
            fs.set_plan(FaultPlan {
                short_writes: true,
                ..FaultPlan::default()
            });
        }
        let mut failed = false;
        for _ in 0..ops {
            if rng.chance(300_000) {
                if s.sync().is_err() {
                    failed = true;
                    break;
                }
                for x in pending.drain(..) {
                    apply(&mut acked, &x);
                }
                // A snapshot being received stays ahead of the commit index.
                let cap = g
                    .incoming
                    .as_ref()
                    .map_or(g.last, |(m, ..)| g.last.min(m.last.index.0 - 1));
                g.committed = g.committed.max(g.rng.between(g.committed, cap));
                if g.committed > g.snap && g.incoming.is_none() && rng.chance(150_000) {
                    // The node's own snapshot, at an applied (so durable) index.
                    let idx = rng.between(g.snap + 1, g.committed);
                    let term = acked
                        .entries
                        .iter()
                        .find(|e| e.id.index.0 == idx)
                        .map_or(1, |e| e.id.term.0);
                    let m = meta(term, idx);
                    let blob = snapshot_blob(rng.next_u64(), rng.below(5000) as usize);
                    let ok = s.begin_snapshot(&m).and_then(|mut wr| {
                        wr.write_all(&blob)
                            .map_err(|e| raft_std::storage::StorageError::Io {
                                op: "snapshot write",
                                path: dir.clone(),
                                source: e,
                            })?;
                        s.finish_snapshot(wr)
                    });
                    if ok.is_err() {
                        // Not acknowledged: the crash may or may not keep it.
                        failed = true;
                        let mut with = acked.clone();
                        with.take_snapshot(m, blob);
                        let (s2, r) =
                            crash_and_check(&fs, &dir, &mut rng, &[acked.clone(), with], &[]);
                        crashes += 1;
                        acked = s2;
                        pending.clear();
                        g = Gen::from(g.rng.fork(round as u64), &r, g.next_id);
                        s = open(&fs, &dir).0;
                        break;
                    }
                    g.shape.install_snapshot(m.last).unwrap();
                    acked.take_snapshot(m, blob);
                    g.snap = idx;
                    bump(|c| c.own_snapshots += 1);
                }
            } else {
                let x = g.write();
                if let Err(e) = s.append(&x) {
                    assert!(
                        !matches!(
                            e,
                            raft_std::storage::StorageError::Misuse { .. }
                                | raft_std::storage::StorageError::Violation(_)
                        ),
                        "the generator broke the write contract: {e}: {x:?}"
                    );
                    // The write may be partly on disk: it counts as pending.
                    pending.push(x);
                    failed = true;
                    break;
                }
                pending.push(x);
            }
        }
        if failed && !s.is_poisoned() {
            // The snapshot path above already crashed and reopened.
            continue;
        }
        if failed {
            assert!(s.sync().is_err(), "poisoned storage refuses later calls");
        }
        drop(s);
        let cands = candidates(&acked, &pending);
        let (disk, r) = crash_and_check(&fs, &dir, &mut rng, &cands, &pending);
        crashes += 1;
        acked = disk;
        pending.clear();
        g = Gen::from(g.rng.fork(u64::from(round) + 1000), &r, g.next_id);
        s = open(&fs, &dir).0;
    }
    crashes
}

/// Crashes, reopens, and checks the recovered state is one of `cands`; returns the match.
fn crash_and_check(
    fs: &FaultyFs,
    dir: &Path,
    rng: &mut SimRng,
    cands: &[SimDisk],
    pending: &[Write],
) -> (SimDisk, Recovered) {
    let mode = match rng.below(3) {
        0 => CrashMode::LoseUnsynced,
        1 => CrashMode::Tear,
        _ => CrashMode::KeepAll,
    };
    fs.crash(mode, rng.next_u64());
    fs.heal();
    let (mut s, r) = open(fs, dir);
    let snap = snapshot_bytes(&mut s);
    if s.truncated_tail().is_some() {
        bump(|c| c.tails_cut += 1);
    }
    let found = cands
        .iter()
        .position(|d| expected(d) == r && d.snapshot.as_ref().map(|(_, b)| b.clone()) == snap);
    let Some(i) = found else {
        panic!(
            "after a {mode:?} crash the recovered state matches no prefix of the {} pending \
             writes\nrecovered: hs {:?} snapshot {:?} entries {:?}\nsynced: hs {:?} snapshot {:?} \
             last {:?}",
            pending.len(),
            r.hard_state,
            r.snapshot.last,
            r.entries.iter().map(|e| e.id.index.0).collect::<Vec<_>>(),
            cands[0].hard_state,
            cands[0].snapshot.as_ref().map(|(m, _)| m.last),
            cands[0].entries.last().map(|e| e.id.index.0),
        )
    };
    if i > 0 {
        bump(|c| c.kept_unsynced += 1);
    }
    (cands[i].clone(), r)
}

/// What the workload exercised (summed over seeds).
#[derive(Default, Debug)]
struct Counts {
    tails_cut: u64,
    kept_unsynced: u64,
    own_snapshots: u64,
    received_snapshots: u64,
    faults: u64,
}

thread_local! {
    static COUNTS: std::cell::RefCell<Counts> = std::cell::RefCell::default();
}

fn bump(f: impl FnOnce(&mut Counts)) {
    COUNTS.with(|c| f(&mut c.borrow_mut()));
}

#[test]
fn every_synced_write_survives_random_crashes() {
    let started = std::time::Instant::now();
    let seeds: Vec<u64> = match std::env::var("STORAGE_CRASH_SEED") {
        Ok(s) => vec![s.parse().expect("a u64 seed")],
        // `STORAGE_CRASH_SEEDS=n` runs seeds 1..=n (a longer soak).
        Err(_) => {
            let n = std::env::var("STORAGE_CRASH_SEEDS").map_or(8, |n| n.parse().expect("a count"));
            (1..=n).collect()
        }
    };
    let mut total = 0;
    for seed in seeds {
        let r = std::panic::catch_unwind(|| run(seed, 100));
        match r {
            Ok(n) => total += n,
            Err(e) => {
                eprintln!("storage crash test failed with seed {seed} (STORAGE_CRASH_SEED={seed})");
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!(
        "{total} crash points checked in {:.2?}; {:?}",
        started.elapsed(),
        COUNTS.with(|c| std::mem::take(&mut *c.borrow_mut()))
    );
    assert!(
        total >= 200 || std::env::var("STORAGE_CRASH_SEED").is_ok(),
        "{total}"
    );
}
