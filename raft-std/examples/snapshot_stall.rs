//! How long a snapshot of a large KV store holds up the node thread: a 3-node cluster on real
//! files in a temporary directory loads `KEYS` keys of `VALUE_LEN` bytes (batched `MSET`s), then
//! crosses the snapshot threshold with small `SET`s while a probe thread per node asks its node
//! for its status every millisecond. A status request is answered by the node thread, so the
//! slowest answer is the longest stall of that thread (within a millisecond or so). Prints the
//! snapshot's size, how long it took (from the threshold crossing to the first probe that saw
//! the snapshot taken), the longest stall of the leader's thread and of the followers', and whether the
//! leader changed meanwhile.
//!
//! Run: `cargo run --release -p raft-std --example snapshot_stall [keys] [value bytes]`
//! (default 1,000,000 keys of 256 bytes).

use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use raft_core::{NodeId, Term};
use raft_std::kv::{ClientId, KvCommand, KvConfig, KvRequest, KvResponse, KvStore};
use raft_std::test_util::cluster::{Cluster, ClusterOptions, FileStorageFactory};

/// Keys per `MSET` while loading.
const BATCH: usize = 1000;
/// Client threads loading.
const LOADERS: usize = 4;

/// What a probe saw of one node.
#[derive(Default)]
struct Probe {
    /// The slowest status answer.
    max: Duration,
    /// Every (term, leader) it saw, without repeats in a row.
    leaders: Vec<(Term, Option<NodeId>)>,
    /// When it first saw the applied index past the threshold, when it last asked and saw no
    /// new snapshot, and when it first saw one.
    crossed: Option<Instant>,
    before_snapshot: Option<Instant>,
    snapshot_seen: Option<Instant>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let keys: usize = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let value_len: usize = args.next().map_or(Ok(256), |s| s.parse())?;
    let load_entries = keys.div_ceil(BATCH) as u64;
    // No snapshot while loading; the first comes a little after.
    let threshold = load_entries + 100;

    let tmp = tempfile::tempdir()?;
    let factory = FileStorageFactory::std(tmp.path());
    let mut options = ClusterOptions::new(3);
    options.runtime.raft.snapshot_log_entries = threshold;
    options.timeout = Duration::from_secs(60);
    let cluster = Cluster::with_storage(options, factory, |_| KvStore::new(KvConfig::default()))?;
    let first_leader = cluster.wait_for_leader(Duration::from_secs(10))?;

    let started = Instant::now();
    thread::scope(|s| -> Result<(), String> {
        let loaders: Vec<_> = (0..LOADERS)
            .map(|t| {
                let cluster = &cluster;
                s.spawn(move || -> Result<(), String> {
                    let batches = keys.div_ceil(BATCH);
                    for b in (t..batches).step_by(LOADERS) {
                        let pairs = (b * BATCH..((b + 1) * BATCH).min(keys))
                            .map(|k| (format!("key{k:08}").into_bytes(), vec![b'v'; value_len]))
                            .collect();
                        let request = KvRequest::new(ClientId(0), 0, KvCommand::MSet { pairs });
                        match cluster.propose(request.encode()) {
                            Ok(KvResponse::Ok) => {}
                            other => return Err(format!("load failed: {other:?}")),
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for l in loaders {
            l.join().map_err(|_| "loader panicked".to_owned())??;
        }
        Ok(())
    })?;
    let loaded = started.elapsed();
    let leader = cluster.leader().unwrap_or(first_leader);
    let status = cluster.node(leader).ok_or("no leader")?.status()?;
    println!(
        "loaded {keys} keys of {value_len} bytes in {loaded:.1?} ({} entries, leader {leader}, \
         applied {})",
        load_entries, status.applied
    );
    let old_snapshot = status.snapshot.index;

    // Probe every node while small writes cross the threshold.
    let stop = AtomicBool::new(false);
    let probes: Vec<(NodeId, Probe)> = thread::scope(|s| {
        let probes: Vec<_> = cluster
            .ids()
            .iter()
            .map(|&id| {
                let (cluster, stop) = (&cluster, &stop);
                s.spawn(move || {
                    let mut p = Probe::default();
                    let Some(node) = cluster.node(id) else {
                        return (id, p);
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let Ok(st) = node.status() else { break };
                        p.max = p.max.max(t0.elapsed());
                        if p.leaders.last() != Some(&(st.term, st.leader)) {
                            p.leaders.push((st.term, st.leader));
                        }
                        if st.applied.0 > old_snapshot.0 + threshold {
                            p.crossed.get_or_insert_with(Instant::now);
                        }
                        if st.snapshot.index > old_snapshot {
                            p.snapshot_seen.get_or_insert_with(Instant::now);
                        } else {
                            p.before_snapshot = Some(t0);
                        }
                        thread::sleep(Duration::from_millis(1));
                    }
                    (id, p)
                })
            })
            .collect();
        // Give the probes a moment, then write until the leader has a snapshot and a second
        // more (so a late election shows).
        thread::sleep(Duration::from_millis(200));
        let mut seq = 0;
        let mut done_at: Option<Instant> = None;
        while done_at.is_none_or(|d| d.elapsed() < Duration::from_secs(1)) {
            seq += 1;
            let command = KvCommand::set(format!("tick{seq}"), b"x".to_vec());
            let _ = cluster.propose(KvRequest::new(ClientId(1), 0, command).encode());
            thread::sleep(Duration::from_millis(2));
            if done_at.is_none()
                && cluster
                    .node(leader)
                    .and_then(|n| n.status().ok())
                    .is_some_and(|s| s.snapshot.index > old_snapshot)
            {
                done_at = Some(Instant::now());
            }
            if seq > 100_000 {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        probes.into_iter().filter_map(|p| p.join().ok()).collect()
    });

    let dir = cluster.with_storage_factory(|f| f.dir(leader));
    let snapshot_bytes: u64 = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0);
    let leader_probe = probes.iter().find(|(id, _)| *id == leader).map(|(_, p)| p);
    let follower_max = probes
        .iter()
        .filter(|(id, _)| *id != leader)
        .map(|(_, p)| p.max)
        .max()
        .unwrap_or_default();
    // From the threshold crossing (or, if the node thread stalled before a probe saw it, the
    // last probe that saw no snapshot) to the first probe that saw the snapshot taken.
    let took = leader_probe
        .and_then(|p| {
            let from = match (p.crossed, p.before_snapshot) {
                (Some(c), Some(b)) => c.min(b),
                (c, b) => c.or(b)?,
            };
            Some(p.snapshot_seen?.duration_since(from))
        })
        .map_or_else(|| "not seen".to_owned(), |d| format!("{d:.1?}"));
    // Elections: every distinct (term, leader) any node saw, past the first (a leader re-elected
    // in a new term counts: its followers stopped hearing from it).
    let mut seen: Vec<(Term, Option<NodeId>)> = probes
        .iter()
        .flat_map(|(_, p)| p.leaders.iter().copied())
        .filter(|(_, l)| l.is_some())
        .collect();
    seen.sort();
    seen.dedup();
    let leader_after = cluster.leader();
    println!("keys                        {keys}");
    println!("value bytes                 {value_len}");
    println!("snapshot bytes (leader)     {snapshot_bytes}");
    println!("snapshot taken in (leader)  {took}");
    println!(
        "longest node-thread stall   leader {:.1?}, followers {follower_max:.1?}",
        leader_probe.map(|p| p.max).unwrap_or_default()
    );
    println!(
        "elections (leader changes)  {} (terms and leaders seen: {seen:?}; leader before \
         {leader}, after {leader_after:?})",
        seen.len().saturating_sub(1)
    );
    cluster.shutdown()?;
    Ok(())
}
