//! The deterministic simulator over many seeds of mixed faults (see `raft_core::sim`).
//!
//! - `RAFT_SIM_SEEDS=<n>` runs `n` seeds per cluster size (default 1,000, so 3,000 in all).
//! - `RAFT_SIM_SEED=<seed>` runs only that seed, on every cluster size, and prints its trace.
//! - `RAFT_SIM_FIRST=<seed>` starts the seed range elsewhere (soak runs on several machines).

use std::time::Instant;

use raft_core::sim::{Summary, run_seed, trace_seed};

const DEFAULT_SEEDS_PER_SIZE: u64 = 1000;

/// Seeds that once failed, with their cluster size. Each is a bug that was fixed; they run first.
const REGRESSIONS: &[(u64, usize)] = &[];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs a seed; on failure replays it with a trace and panics with the seed and the trace's end.
fn check_seed(seed: u64, nodes: usize) -> Summary {
    match run_seed(seed, nodes) {
        Ok(summary) => summary,
        Err(failure) => {
            let (trace, _) = trace_seed(seed, nodes);
            let lines: Vec<&str> = trace.lines().collect();
            let tail = lines[lines.len().saturating_sub(150)..].join("\n");
            panic!(
                "{failure}\n--- last {} trace lines (replay: RAFT_SIM_SEED={seed} cargo test -p \
                 raft-core --test simulator -- --nocapture) ---\n{tail}",
                lines.len().min(150)
            );
        }
    }
}

fn run_many(nodes: usize) {
    if let Some(seed) = env_u64("RAFT_SIM_SEED") {
        let (trace, result) = trace_seed(seed, nodes);
        println!("{trace}");
        if let Err(e) = result {
            panic!("{e}");
        }
        return;
    }
    let count = env_u64("RAFT_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS_PER_SIZE);
    let first = env_u64("RAFT_SIM_FIRST").unwrap_or(0);
    let start = Instant::now();
    let (mut committed, mut terms, mut crashes, mut reads, mut heal) = (0, 0, 0, 0, 0);
    let (mut taken, mut installed) = (0, 0);
    for seed in first..first + count {
        let s = check_seed(seed, nodes);
        committed += s.committed;
        terms += s.leader_terms as u64;
        crashes += s.crashes;
        reads += s.reads.0;
        heal = heal.max(s.heal_ticks);
        taken += s.snapshots.0;
        installed += s.snapshots.1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "simulator {nodes} nodes: {count} seeds in {secs:.1}s ({:.0} seeds/s); {committed} entries \
         committed, {terms} leader terms, {crashes} crashes, {reads} reads confirmed, {taken} \
         snapshots taken, {installed} installed from a leader, slowest heal {heal} ticks",
        count as f64 / secs
    );
}

#[test]
fn simulator_3_nodes() {
    run_many(3);
}

#[test]
fn simulator_5_nodes() {
    run_many(5);
}

#[test]
fn simulator_7_nodes() {
    run_many(7);
}

#[test]
fn regression_seeds() {
    for &(seed, nodes) in REGRESSIONS {
        check_seed(seed, nodes);
    }
}

/// The simulator is deterministic: one seed, one run, byte for byte.
#[test]
fn same_seed_gives_identical_trace() {
    for (seed, nodes) in [(7, 3), (1234, 5), (99, 7)] {
        let (a, ra) = trace_seed(seed, nodes);
        let (b, rb) = trace_seed(seed, nodes);
        assert!(
            a.len() > 10_000,
            "trace too short to mean anything: {} bytes",
            a.len()
        );
        assert_eq!(a, b, "seed {seed}: traces differ");
        assert_eq!(ra.is_ok(), rb.is_ok());
        let (c, _) = trace_seed(seed + 1, nodes);
        assert_ne!(a, c, "different seeds should give different runs");
    }
}
