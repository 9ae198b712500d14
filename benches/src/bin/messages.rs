//! Messages per committed entry, our core and tikv's raft-rs side by side, in the scenarios of
//! `benches::messages`.
//!
//! `cargo run --release -p benches --features raft-rs --bin messages [-- options]`
//!
//! Three nodes, node 1 elected first (the election is not counted), no tick while a scenario is
//! measured (so no heartbeat, election or CheckQuorum timer fires on either side). Each seed
//! runs every scenario on a fresh cluster of each side:
//!
//! 1. **burst, shuffled**: 12 proposals, each flushed on its own (one append per follower), the
//!    12 appends to each follower delivered in a seeded random order (the same on every side),
//!    then everything else in the order it is sent;
//! 2. **slow leader disk**: 12 proposals in one go, the leader's entries becoming durable one at
//!    a time (the cluster going quiet in between), followers' writes durable at once; with all
//!    three nodes running, and again with node 3 stopped (so that the leader's own disk is on
//!    the commit path).
//!
//! For each scenario and side it prints the median, mean and max over the seeds of messages sent
//! per committed entry (every kind, until the cluster is quiet) and of appends with entries per
//! entry, the mean per entry of each other kind, how many followers had not heard the final
//! commit index when the cluster went quiet, and what one more tick then sends.
//!
//! Sides: `ours`, `raft-rs` (the config of `benches::raftrs`, as in `compare`), and two raft-rs
//! variants for context: `raft-rs skip` (`skip_bcast_commit`: commit advances are not broadcast
//! at all) and `raft-rs nobat` (`batch_append` off: in scenario 2 each proposal then leaves as
//! an append of its own, so that row does not have the others' structure).
//!
//! Below each table: how often, seed for seed, ours sent more or fewer messages than raft-rs, and
//! in how many runs the leader ended up recording a follower's match index past its own last
//! index (see `Stepped::matched_past_log`).
//!
//! Options: `--seeds N` (default 1000), `--entries N` (default 12), `--payload BYTES` (default
//! 16).

use std::process::ExitCode;

use benches::messages::{
    Count, InFlight, MAX_TICKS, Stepped, Summary, burst_shuffled, slow_leader_disk,
};
use benches::ours::OurCluster;
use benches::raftrs::RaftRsCluster;

const NODES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    RaftRs,
    RaftRsSkip,
    RaftRsNoBatch,
}

impl Side {
    /// Every side; the first two are the comparison proper, the others raft-rs variants.
    const ALL: [Self; 4] = [
        Self::Ours,
        Self::RaftRs,
        Self::RaftRsSkip,
        Self::RaftRsNoBatch,
    ];

    const fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::RaftRs => "raft-rs",
            Self::RaftRsSkip => "raft-rs skip",
            Self::RaftRsNoBatch => "raft-rs nobat",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Burst,
    SlowDisk,
    SlowDiskOneDown,
}

impl Scenario {
    const ALL: [Self; 3] = [Self::Burst, Self::SlowDisk, Self::SlowDiskOneDown];

    fn title(self, entries: u64) -> String {
        match self {
            Self::Burst => format!(
                "1. burst of {entries}, each proposal flushed alone, the appends to each follower shuffled"
            ),
            Self::SlowDisk => format!(
                "2a. {entries} proposals in one go, the leader's entries durable one at a time"
            ),
            Self::SlowDiskOneDown => {
                "2b. as 2a with node 3 stopped (what is sent to it is counted, then dropped)"
                    .to_owned()
            }
        }
    }
}

struct Options {
    seeds: u64,
    entries: u64,
    payload: usize,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        seeds: 1000,
        entries: 12,
        payload: 16,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seeds" => o.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--entries" => o.entries = value()?.parse().map_err(|e| format!("--entries: {e}"))?,
            "--payload" => o.payload = value()?.parse().map_err(|e| format!("--payload: {e}"))?,
            // `cargo bench`/`cargo test` pass these to every target; accept them quietly.
            "--bench" | "--test" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.seeds == 0 || o.entries == 0 {
        return Err("--seeds and --entries must be at least 1".to_owned());
    }
    Ok(o)
}

/// One scenario on one cluster. Returns the count, and for the burst the first round's delivery
/// order.
fn play<C: Stepped>(
    c: &mut C,
    scenario: Scenario,
    o: &Options,
    seed: u64,
) -> (Count, Vec<InFlight>) {
    let payload = vec![0x5A_u8; o.payload];
    match scenario {
        Scenario::Burst => burst_shuffled(c, o.entries, &payload, seed),
        Scenario::SlowDisk => (slow_leader_disk(c, o.entries, &payload), Vec::new()),
        Scenario::SlowDiskOneDown => {
            c.stop(2);
            (slow_leader_disk(c, o.entries, &payload), Vec::new())
        }
    }
}

fn run(side: Side, scenario: Scenario, o: &Options, seed: u64) -> (Count, Vec<InFlight>) {
    match side {
        Side::Ours => {
            let mut c = OurCluster::elected(NODES, seed);
            let r = play(&mut c, scenario, o, seed);
            assert_eq!(c.errors(), 0, "our core rejected a step");
            r
        }
        Side::RaftRs | Side::RaftRsSkip | Side::RaftRsNoBatch => {
            let mut c = RaftRsCluster::elected_with(NODES, |cfg| {
                cfg.skip_bcast_commit = side == Side::RaftRsSkip;
                cfg.batch_append = side != Side::RaftRsNoBatch;
            });
            let r = play(&mut c, scenario, o, seed);
            assert_eq!(c.errors(), 0, "raft-rs rejected a step");
            r
        }
    }
}

/// The row of one side in one scenario.
fn row(side: Side, counts: &[Count]) -> String {
    let per = |f: &dyn Fn(&Count) -> u64| -> Vec<f64> {
        counts
            .iter()
            .map(|c| f(c) as f64 / c.entries as f64)
            .collect()
    };
    let per_run = |f: &dyn Fn(&Count) -> u64| -> f64 {
        counts.iter().map(|c| f(c) as f64).sum::<f64>() / counts.len() as f64
    };
    let total = Summary::of(&per(&|c| c.quiet.total()));
    let full = Summary::of(&per(&|c| c.quiet.appends - c.quiet.empty_appends));
    let mean = |f: &dyn Fn(&Count) -> u64| Summary::of(&per(f)).mean;
    let ticks: Option<Vec<f64>> = counts
        .iter()
        .map(|c| c.catch_up_ticks.map(|t| t as f64))
        .collect();
    let ticks = ticks.map_or_else(
        || format!("some > {MAX_TICKS}"),
        |t| {
            let s = Summary::of(&t);
            format!("{:>4.2} {:>3.0}", s.mean, s.max)
        },
    );
    format!(
        "{:<13}| {:>4.2} {:>4.2} {:>4.2} | {:>4.2} {:>4.2} {:>4.2} | {:>4.2} {:>4.2} {:>4.2} {:>4.2} | {:>6.2} | {:>4.2} {:>4.2} {:>4.2} {:>6.2} | {ticks}",
        side.name(),
        total.median,
        total.mean,
        total.max,
        full.median,
        full.mean,
        full.max,
        mean(&|c| c.quiet.empty_appends + c.quiet.commit_notices),
        mean(&|c| c.quiet.append_responses),
        mean(&|c| c.quiet.heartbeats),
        mean(&|c| c.quiet.other - c.quiet.heartbeats - c.quiet.commit_notices),
        per_run(&|c| c.behind),
        per_run(&|c| c.tick.total()),
        per_run(&|c| c.tick.empty_appends + c.tick.commit_notices),
        per_run(&|c| c.tick.heartbeats),
        per_run(&|c| c.behind_after_tick),
    )
}

const HEADER: [&str; 3] = [
    "             | messages/entry | appends with   | per entry, mean     | at     | first tick, per run   | ticks to",
    "             | all kinds      | entries/entry  |                     | quiet  |                       | catch up",
    "side         |  med mean  max |  med mean  max | empt resp   hb  oth | behind | msgs empt   hb behind | mean max",
];

/// How the sides are driven, and what differs between them.
const NOTES: &str = "\
notes: empt: commit-only messages (appends without entries, and ours's commit notices, which need no answer).
  both sides: 3 voters, heartbeat every 2 ticks, election timeout drawn from [10, 20) ticks, pre-vote and
  CheckQuorum on, 256 appends in flight and 1 MiB per append; raft-rs with batch_append. raft-rs skip is raft-rs
  with skip_bcast_commit (ours has no such switch); raft-rs nobat is raft-rs with batch_append off (in 2 its
  12 proposals leave as 12 appends per follower, not 1). Messages are counted as sent (to a stopped node too).
  1: after each proposal the leader handles its outputs at once (ours: sends drained, its write made durable;
  raft-rs: ready, persist, advance), so each proposal leaves as its own append; later rounds deliver in send order.
  2: ours makes 12 writes of one entry (the lane drained after each proposal) and acknowledges one per
  Input::Persisted; a raft-rs Ready can only be persisted whole (on_persist_ready), so its one Ready of 12 entries
  is advanced with advance_append_async and each entry made durable with Raft::on_persist_entries(index, term),
  the call on_persist_ready makes. Either way the leader's durable index goes up by one per completion.
  matched past its own last index: raft-rs 0.7's batch_append (Raft::try_batching) appends entries to a queued
  MsgAppend without checking that they follow its index when it carries no entries (a commit-only one); the
  follower then acknowledges index + entries, past the leader's log, and the leader counts it for commits.";

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("messages: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "messages per committed entry: {NODES} nodes, {} entries of {} B per run, {} seeds per scenario and side",
        o.entries, o.payload, o.seeds
    );
    println!(
        "no ticks while measured: counted from the first proposal until no message is in flight (med/mean/max over seeds).\n\
         behind: running followers (mean per run) whose commit index is below the leader's.\n\
         first tick: what one tick on every node then sends (no heartbeat is due yet); ticks to catch up: until none is behind."
    );
    for scenario in Scenario::ALL {
        let mut counts: Vec<Vec<Count>> = vec![Vec::new(); Side::ALL.len()];
        let mut same_order = 0u64;
        for seed in 0..o.seeds {
            let mut orders = Vec::new();
            for (i, &side) in Side::ALL.iter().enumerate() {
                let (count, order) = run(side, scenario, &o, seed);
                counts[i].push(count);
                orders.push(order);
            }
            same_order += u64::from(orders.windows(2).all(|w| w[0] == w[1]));
        }
        println!();
        println!("{}", scenario.title(o.entries));
        if scenario == Scenario::Burst {
            println!(
                "   first-round delivery order identical on every side for {same_order} of {} seeds",
                o.seeds
            );
        } else {
            println!("   (no randomness: every seed runs the same)");
        }
        for line in HEADER {
            println!("{line}");
        }
        for (i, &side) in Side::ALL.iter().enumerate() {
            println!("{}", row(side, &counts[i]));
        }
        let (ours, theirs) = (&counts[0], &counts[1]);
        let more = ours
            .iter()
            .zip(theirs)
            .filter(|(a, b)| a.quiet.total() > b.quiet.total())
            .count();
        let fewer = ours
            .iter()
            .zip(theirs)
            .filter(|(a, b)| a.quiet.total() < b.quiet.total())
            .count();
        println!(
            "   per seed, ours sent more messages than raft-rs in {more}, fewer in {fewer}, as many in {} of {} runs",
            o.seeds as usize - more - fewer,
            o.seeds
        );
        let bad: Vec<String> = Side::ALL
            .iter()
            .zip(&counts)
            .map(|(side, c)| {
                let n = c.iter().filter(|c| c.matched_past_log > 0).count();
                format!("{} {n}", side.name())
            })
            .collect();
        println!(
            "   runs ending with the leader recording a follower matched past its own last index: {}",
            bad.join(", ")
        );
    }
    println!();
    println!("{NOTES}");
    ExitCode::SUCCESS
}
