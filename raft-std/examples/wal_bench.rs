//! Log append throughput of `FileStorage` on real files: entries/s and MB/s for small and large
//! entries, with group commit (one fsync per 1, 8, 64, 256 writes) and without (one per write).
//!
//! `cargo run --release -p raft-std --example wal_bench [-- DIR [SECONDS]]`
//!
//! Each configuration runs for SECONDS (default 1.5) on a fresh data directory, created in DIR
//! (default: the system's temporary directory, e.g. `/tmp`; pass a directory on the disk you want
//! to measure) and deleted when the configuration is done. One core `Write` carries one entry, as a
//! leader under load that flushes every proposal would produce; the runtime calls `append` for
//! each and then one `sync` per group.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use raft_core::{Entry, EntryKind, LogId, Membership, NodeId, Payload, Write, WriteId};
use raft_std::storage::Storage;
use raft_std::storage::file::{FileStorage, Identity};
use raft_std::storage::fs::StdFs;

fn write_id(n: u64) -> WriteId {
    // Only the core mints write ids; its `arbitrary` feature lets tools make them.
    let bytes = n.to_le_bytes();
    WriteId::arbitrary(&mut Unstructured::new(&bytes)).expect("eight bytes make an id")
}

fn write(index: u64, payload: &Payload) -> Write {
    let mut w = Write {
        id: write_id(index),
        hard_state: None,
        truncate_from: None,
        snapshot: None,
        entries: Default::default(),
    };
    w.entries.push(Entry {
        id: LogId::new(1, index),
        kind: EntryKind::Normal,
        data: payload.clone(),
    });
    w
}

struct Figures {
    entries: u64,
    syncs: u64,
    elapsed: Duration,
}

/// Runs one configuration in a fresh temporary directory under `base`, deleted afterwards.
fn run(base: &Path, entry_size: usize, group: u64, budget: Duration) -> Figures {
    let tmp = tempfile::Builder::new()
        .prefix("raft-wal-bench-")
        .tempdir_in(base)
        .unwrap_or_else(|e| panic!("cannot create a directory in {}: {e}", base.display()));
    let dir = tmp.path();
    let node = NodeId::new(1).expect("non-zero");
    let identity = Identity {
        cluster_id: 1,
        node_id: node,
    };
    let membership = Membership::new(&[node]).expect("one voter");
    let (mut s, _) = FileStorage::open(StdFs, dir, identity, membership).expect("open");
    let payload = Payload::from(vec![0xAB; entry_size]);
    let mut index = 0;
    let mut syncs = 0;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..group {
            index += 1;
            s.append(&write(index, &payload)).expect("append");
        }
        s.sync().expect("sync");
        syncs += 1;
    }
    let elapsed = start.elapsed();
    drop(s);
    let path = dir.to_path_buf();
    tmp.close()
        .unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
    Figures {
        entries: index,
        syncs,
        elapsed,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base: PathBuf = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let secs: f64 = args.next().map_or(1.5, |s| s.parse().expect("seconds"));
    let budget = Duration::from_secs_f64(secs);
    println!(
        "data directories in {} (one per row, deleted after it; {secs} s per row)",
        base.display()
    );
    println!(
        "{:>8} {:>10} {:>12} {:>10} {:>10} {:>12}",
        "entry", "writes/fsync", "entries/s", "MB/s", "fsyncs/s", "us/fsync"
    );
    for entry_size in [16usize, 4096] {
        for group in [1u64, 8, 64, 256] {
            let f = run(&base, entry_size, group, budget);
            let secs = f.elapsed.as_secs_f64();
            let eps = f.entries as f64 / secs;
            let mbs = eps * entry_size as f64 / 1e6;
            println!(
                "{:>7}B {:>12} {:>12.0} {:>10.2} {:>10.0} {:>12.0}",
                entry_size,
                group,
                eps,
                mbs,
                f.syncs as f64 / secs,
                secs * 1e6 / f.syncs as f64
            );
        }
    }
}
