//! A long run: 1,000,000 proposals on a 3-node simulated cluster whose application snapshots
//! whenever the node suggests it. Prints the largest number of entries any node held in memory
//! (bounded by the snapshot threshold, not by the run) and the time taken. Every safety check of
//! the simulator runs throughout. A progress line goes to stderr every two seconds.
//!
//! `cargo run --release -p raft-core --features sim --example long_run [proposals]`

use std::time::{Duration, Instant};

use raft_core::sim::Simulation;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proposals: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    const THRESHOLD: usize = 10_000; // Config::snapshot_log_entries' default
    const REPORT_EVERY: Duration = Duration::from_secs(2);
    let mut sim = Simulation::scripted(3, 42, |o| {
        o.snapshot_trailing_entries = 1024;
        o.max_msg_entries = 256;
        o.max_inflight_msgs = 64;
    })
    .map_err(|e| e.to_string())?;
    sim.run_until(300, "a leader", |s| s.leader_index().is_some())
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut next_report = start + REPORT_EVERY;
    let (mut proposed, mut max_log, mut snapshots) = (0u64, 0usize, 0u64);
    eprintln!("long run: {proposals} proposals on 3 simulated nodes, every check on");
    while proposed < proposals {
        let now = Instant::now();
        if now >= next_report {
            next_report = now + REPORT_EVERY;
            let secs = now.duration_since(start).as_secs_f64();
            let rate = proposed as f64 / secs;
            eprintln!(
                "  {proposed:>9} proposed ({:.0}%) in {secs:.0}s, {rate:.0}/s, about {:.0}s to go; \
                 {snapshots} snapshots, largest log {max_log} entries",
                100.0 * proposed as f64 / proposals as f64,
                (proposals - proposed) as f64 / rate.max(1.0)
            );
        }
        for _ in 0..500 {
            if sim
                .propose_at_leader()
                .map_err(|e| e.to_string())?
                .is_some()
            {
                proposed += 1;
            }
        }
        sim.run_ticks(1).map_err(|e| e.to_string())?;
        for i in 0..3 {
            let Some(n) = sim.node(i) else { continue };
            let len = n.status().log_len;
            max_log = max_log.max(len);
            // What an adapter does on Event::SnapshotSuggested.
            if len > THRESHOLD {
                sim.snapshot_node(i).map_err(|e| e.to_string())?;
                snapshots += 1;
            }
        }
    }
    sim.run_until(1000, "all applied", |s| {
        let c = s
            .leader_index()
            .and_then(|l| s.node(l))
            .map(|n| n.commit_index());
        (0..3).all(|i| s.node(i).map(|n| n.applied_index()) == c)
    })
    .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let summary = sim.summary();
    println!(
        "long run: {proposed} proposals, {} entries committed, {snapshots} snapshots, largest \
         in-memory log {max_log} entries (threshold {THRESHOLD} + 1024 trailing), {secs:.1}s \
         ({:.0} entries/s simulated with every check on)",
        summary.committed,
        summary.committed as f64 / secs
    );
    Ok(())
}
