//! Side by side: the same workloads on our core and on tikv's raft-rs, in one process, alternating.
//!
//! `cargo run --release -p benches --features raft-rs --bin compare [-- options]`
//!
//! For each workload, each side runs a fixed number of entries on a freshly elected cluster (the
//! election is not timed), `--reps` times, the two sides alternating (and swapping which goes
//! first every repetition). Throughput is entries committed and applied on the leader per second
//! of wall time; allocations are every allocation call in the process during the run, per entry.
//! Medians are printed on stdout, one line per workload:
//!
//! `compare <workload>: ours <N> entries/s, raft-rs <M> entries/s, ratio <N/M>, allocs/entry ours <a> raft-rs <b>`
//!
//! Options:
//! - `--verbose`: also print each run's figures and each workload's message traffic (to stderr);
//! - `--entries N` (default 200000): entries per run;
//! - `--reps N` (default 7): runs per side and workload;
//! - `--workload TEXT`: only workloads whose name contains TEXT (e.g. `sync`, `5 nodes`);
//! - `--only ours|raft-rs`: run one side only (for profiling); prints that side's figures;
//! - `--breakdown`: one extra run of our core attributing allocations to call sites.
//!
//! Wall-clock figures on a shared machine move by ±20% from run to run; instruction counts do
//! not. To count instructions per entry for one side (the warm-up run of `entries / 10` is
//! included, so divide by `1.1 * entries`):
//!
//! `valgrind --tool=callgrind --toggle-collect='benches::workload::run*' target/release/compare --only ours --workload '3 nodes 16 B batch 64' --entries 20000 --reps 1`
//!
//! The binary needs the `raft-rs` feature (building raft-rs and protobuf is slow, so the rest of
//! the workspace does not wait for it).

use std::process::ExitCode;

use benches::ours::{OurCluster, Site};
use benches::raftrs::RaftRsCluster;
use benches::{CountingAlloc, RunStats, Workload, counting_alloc, run};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const WORKLOADS: [Workload; 5] = [
    Workload::batched(3, 16, 64),
    Workload::batched(3, 16, 1),
    Workload::batched(3, 256, 64),
    Workload::batched(5, 16, 64),
    Workload::sync(3, 16),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    RaftRs,
}

struct Options {
    entries: u64,
    reps: usize,
    filter: Option<String>,
    only: Option<Side>,
    breakdown: bool,
    verbose: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        entries: 200_000,
        reps: 7,
        filter: None,
        only: None,
        breakdown: false,
        verbose: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--entries" => o.entries = value()?.parse().map_err(|e| format!("--entries: {e}"))?,
            "--reps" => o.reps = value()?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--workload" => o.filter = Some(value()?),
            "--only" => {
                o.only = Some(match value()?.as_str() {
                    "ours" => Side::Ours,
                    "raft-rs" => Side::RaftRs,
                    other => return Err(format!("--only: unknown side {other}")),
                });
            }
            "--breakdown" => o.breakdown = true,
            "--verbose" | "-v" => o.verbose = true,
            // `cargo bench`/`cargo test` pass these to every target; accept them quietly.
            "--bench" | "--test" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.entries == 0 || o.reps == 0 {
        return Err("--entries and --reps must be at least 1".to_owned());
    }
    Ok(o)
}

fn run_side(side: Side, w: &Workload, entries: u64) -> RunStats {
    match side {
        Side::Ours => {
            let mut c = OurCluster::elected(w.nodes, 11);
            let stats = run(&mut c, w, entries);
            assert_eq!(c.errors(), 0, "our core rejected a step");
            stats
        }
        Side::RaftRs => {
            let mut c = RaftRsCluster::elected(w.nodes);
            let stats = run(&mut c, w, entries);
            assert_eq!(c.errors(), 0, "raft-rs rejected a step");
            stats
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Ours => "ours",
        Side::RaftRs => "raft-rs",
    }
}

fn traffic(w: &Workload, entries: u64) {
    let mut ours = OurCluster::elected(w.nodes, 11);
    let t0 = ours.traffic();
    run(&mut ours, w, entries);
    let t = ours.traffic();
    let mut theirs = RaftRsCluster::elected(w.nodes);
    let r0 = theirs.traffic();
    run(&mut theirs, w, entries);
    let r = theirs.traffic();
    let e = entries as f64;
    eprintln!(
        "  traffic {}: appends/entry ours {:.3} raft-rs {:.3}; entries/append ours {:.1} raft-rs {:.1}; responses/entry ours {:.3} raft-rs {:.3}; commit notices/entry ours {:.3}",
        w.label(),
        (t.appends - t0.appends) as f64 / e,
        (r.appends - r0.appends) as f64 / e,
        (t.appended_entries - t0.appended_entries) as f64 / (t.appends - t0.appends).max(1) as f64,
        (r.appended_entries - r0.appended_entries) as f64 / (r.appends - r0.appends).max(1) as f64,
        (t.append_responses - t0.append_responses) as f64 / e,
        (r.append_responses - r0.append_responses) as f64 / e,
        (t.commit_notices - t0.commit_notices) as f64 / e,
    );
}

fn breakdown(w: &Workload, entries: u64) {
    let mut c = OurCluster::elected(w.nodes, 11);
    c.enable_breakdown();
    let stats = run(&mut c, w, entries);
    let b = c.breakdown().copied().unwrap_or_default();
    eprintln!(
        "  breakdown {} (ours, {:.2} allocs/entry in all):",
        w.label(),
        stats.allocs_per_entry()
    );
    for site in Site::ALL {
        let n = b.calls(site);
        if n > 0 {
            eprintln!(
                "    {:<32} {:>6.3} per entry",
                site.name(),
                n as f64 / entries as f64
            );
        }
    }
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !counting_alloc::installed() {
        eprintln!("compare: the counting allocator is not installed");
        return ExitCode::FAILURE;
    }
    let sides: Vec<Side> = match o.only {
        Some(s) => vec![s],
        None => vec![Side::Ours, Side::RaftRs],
    };
    let workloads: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| {
            o.filter
                .as_ref()
                .is_none_or(|f| w.label().contains(f.as_str()))
        })
        .collect();
    eprintln!(
        "compare: {} entries per run, {} runs per side, sides alternating{}",
        o.entries,
        o.reps,
        if o.verbose {
            ""
        } else {
            " (--verbose prints every run)"
        }
    );

    for w in workloads {
        // Warm up both sides (caches, allocator, page faults) off the record.
        for &side in &sides {
            run_side(side, w, (o.entries / 10).max(1));
        }
        let mut results: Vec<Vec<RunStats>> = vec![Vec::new(); sides.len()];
        for rep in 0..o.reps {
            let order: Vec<usize> = if rep % 2 == 0 {
                (0..sides.len()).collect()
            } else {
                (0..sides.len()).rev().collect()
            };
            for i in order {
                let stats = run_side(sides[i], w, o.entries);
                if o.verbose {
                    eprintln!(
                        "  run {} {} #{rep}: {:.0} entries/s, {:.3} allocs/entry, {:.1} MB allocated, {} rounds",
                        w.label(),
                        side_name(sides[i]),
                        stats.entries_per_sec(),
                        stats.allocs_per_entry(),
                        stats.allocs.bytes as f64 / 1e6,
                        stats.rounds
                    );
                }
                results[i].push(stats);
            }
        }
        let rate: Vec<f64> = results
            .iter()
            .map(|r| median(r.iter().map(RunStats::entries_per_sec).collect()))
            .collect();
        let allocs: Vec<f64> = results
            .iter()
            .map(|r| median(r.iter().map(RunStats::allocs_per_entry).collect()))
            .collect();
        if sides.len() == 2 {
            println!(
                "compare {}: ours {:.0} entries/s, raft-rs {:.0} entries/s, ratio {:.2}, allocs/entry ours {:.2} raft-rs {:.2}",
                w.label(),
                rate[0],
                rate[1],
                rate[0] / rate[1],
                allocs[0],
                allocs[1]
            );
            if o.verbose {
                traffic(w, (o.entries / 10).max(1));
            }
        } else {
            println!(
                "compare {}: {} {:.0} entries/s, allocs/entry {:.2}",
                w.label(),
                side_name(sides[0]),
                rate[0],
                allocs[0]
            );
        }
        if o.breakdown {
            breakdown(w, (o.entries / 10).max(1));
        }
    }
    ExitCode::SUCCESS
}
