//! One digest of the simulator's traces over many seeds: a refactor that must not change
//! behaviour must not change it.
//!
//! `cargo run --release -p raft-core --features sim --example trace_digest -- [SEEDS] [FIRST]`
//!
//! Prints, for 3, 5 and 7 nodes and for membership changes, a 64-bit FNV-1a digest of every
//! seed's full trace (every message, write, acknowledgement and apply of the run) and outcome,
//! and the seeds per second. Run it before and after the change, on the same seeds, and compare.

use std::time::Instant;

use raft_core::sim::{SimOptions, trace_options};

/// A scenario: its name, and the options of a seed.
type Scenario = (&'static str, fn(u64) -> SimOptions);

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let first: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let scenarios: [Scenario; 4] = [
        ("3 nodes", |s| SimOptions::random(s, 3)),
        ("5 nodes", |s| SimOptions::random(s, 5)),
        ("7 nodes", |s| SimOptions::random(s, 7)),
        ("membership", SimOptions::reconfiguring),
    ];
    let mut all = 0xcbf2_9ce4_8422_2325u64;
    for (name, options) in scenarios {
        let start = Instant::now();
        let (mut digest, mut lines, mut failed) = (0xcbf2_9ce4_8422_2325u64, 0usize, 0u64);
        for seed in first..first + seeds {
            let (trace, result) = trace_options(options(seed));
            digest = fnv(digest, trace.as_bytes());
            lines += trace.lines().count();
            match result {
                Ok(summary) => digest = fnv(digest, format!("{summary:?}").as_bytes()),
                Err(e) => {
                    failed += 1;
                    digest = fnv(digest, format!("{e}").as_bytes());
                }
            }
        }
        all = fnv(all, &digest.to_le_bytes());
        let secs = start.elapsed().as_secs_f64();
        println!(
            "trace_digest {name}: seeds {first}..{}: digest {digest:016x}, {lines} trace lines, \
             {failed} failed, {:.0} seeds/s (traced)",
            first + seeds,
            seeds as f64 / secs
        );
    }
    println!("trace_digest all: {all:016x}");
}
