//! The deterministic simulator over many seeds of mixed faults (see `raft_core::sim`).
//!
//! - `RAFT_SIM_SEEDS=<n>` runs `n` seeds per cluster size (default 1,000, so 3,000 in all).
//! - `RAFT_SIM_SEED=<seed>` runs only that seed, in every scenario (3, 5 and 7 nodes, membership
//!   changes), and prints each scenario's trace between a heading and a closing line. Name a test
//!   to replay one scenario only:
//!   `RAFT_SIM_SEED=<seed> cargo test -p raft-core --test simulator simulator_5_nodes -- --nocapture`.
//! - `RAFT_SIM_FIRST=<seed>` starts the seed range elsewhere (soak runs on several machines).

use std::time::Instant;

use raft_core::sim::{SimOptions, Summary, run_options, trace_options};

// With the planted bugs compiled in, the bug `RAFT_PLANTED_BUG` names (raft-core/PLANTED-BUGS.md).
#[cfg(raft_planted)]
#[path = "common/planted.rs"]
mod planted;

const DEFAULT_SEEDS_PER_SIZE: u64 = 1000;
const DEFAULT_RECONFIGURING_SEEDS: u64 = 1000;

/// Seeds that once failed, with their cluster size. Each is a bug that was fixed; they run first.
/// - 691 on 3 nodes: a candidate whose two voters granted before its own term was durable led at
///   once, crashed, restarted in the term before, campaigned for the same term again and won it
///   a second time (fixed: an election is won only once the candidate's term is durable).
/// - 294 on 3 nodes, follower reads: a follower numbered its read requests from 1 again after a
///   restart, and the leader's answer to a request made before the crash, still in flight,
///   matched a new read: served at an index older than a write committed in between (fixed:
///   request numbers start at a random point in each incarnation).
/// - 705269 on 3 nodes: both followers caught up by snapshot in 1-byte chunks on slow disks,
///   one chunk per round trip and chunk write; the transfers outlasted the 600 ticks after
///   healing and nothing committed (fixed: chunks are pipelined within the flow control).
/// - 754053 on 3 nodes: the same with the pipeline bounded by `max_inflight_msgs` (2 here) as
///   well as by bytes: two 1-byte chunks in flight still took longer than the 600 ticks (fixed:
///   the window is in bytes only, `max_inflight_bytes`).
/// - 883298 on 3 nodes: both followers caught up by snapshot in 1-byte chunks on slow disks,
///   the network reordering them; a follower dropped every chunk that overtook the one it
///   expected, so each chunk took a round trip or a stall check of its own, and the transfers
///   outlasted the 600 ticks after healing (fixed: a follower keeps chunks that arrive early,
///   within bounds, `Shared::early_chunks`).
const REGRESSIONS: &[(u64, usize)] =
    &[(691, 3), (294, 3), (705_269, 3), (754_053, 3), (883_298, 3)];

/// Seeds of the membership-change scenario that once failed:
/// - 54: a leader appended the final configuration (without itself) and crashed; the remaining
///   voter, still joint, needed the removed node's vote, and the removed node would not campaign
///   (fixed: a node that voted in the previous configuration campaigns until the new one is
///   committed, thesis §4.2.2).
/// - 657: a removed node kept raising its term without pre-vote; a voter ignored the stale vote
///   requests of the only other voter without telling it the newer term, so it never caught up
///   (fixed: stale vote requests are answered with the current term, Figure 2).
/// - 8206: duplicated snapshot acknowledgements each triggered a chunk, whose acknowledgements
///   were duplicated again: a message storm that never settled (fixed: only acknowledgements
///   that advance the transfer, or restart it, trigger a chunk).
/// - 5001107: a leader promoted an empty learner while another voter was empty too, so the
///   joint configuration's new majority needed one of them; only a snapshot could catch them up,
///   every transfer was started over by a newer snapshot, and nothing committed after healing
///   (fixed: a change is refused unless a majority of its new voters can be caught up from the
///   leader's log, thesis §4.2.1).
/// - 1620: a candidate offered its whole log in its vote requests, entry 3 not yet durable, lost
///   power, restarted in the term before with entry 3 gone, campaigned for the same term again
///   and counted the grants given to the log it had offered, leading without committed entry 3
///   (fixed: a candidate offers only its durable log).
/// - 209533: a follower needed by the joint configuration's new majority was catching up by
///   snapshot on a slow disk; it held back every response, heartbeat answers included, until its
///   chunk writes were durable, so each leader heard nothing from it within a CheckQuorum period
///   and stepped down, and every new leader started the transfer over (fixed: responses that
///   vouch for nothing durable go out at once, `Message::vouches_for_durable_state`).
/// - 202301: with neither pre-vote nor CheckQuorum, a removed server campaigned every election
///   timeout with a higher term and deposed each new leader of the two remaining voters before
///   its disk let it commit (fixed: a leader that hears from a quorum ignores vote requests, as
///   its followers do, thesis §4.2.3).
/// - 715621: the voter the joint configuration's new majority needed was catching up by a
///   snapshot in 1-byte chunks, stop-and-wait on a slow disk, and was still at byte 105 when the
///   600 ticks after healing ran out (fixed: chunks are pipelined within the flow control).
/// - 905159: the same catch-up, chunks reordered on the way: the follower dropped the ones that
///   overtook others, and the transfer, at one chunk per round trip, ran past the 600 ticks
///   (fixed: a follower keeps chunks that arrive early, within bounds).
const RECONFIGURING_REGRESSIONS: &[u64] = &[
    54, 657, 8206, 1620, 5_001_107, 209_533, 202_301, 715_621, 905_159,
];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The runs of one test: a fault mix for a seed.
#[derive(Clone, Copy)]
enum Scenario {
    /// A fixed membership of this many voters.
    Fixed(usize),
    /// Three voters, spare nodes, and random membership changes.
    Reconfiguring,
    /// The same, with the fault mix the regression seeds were recorded with: before the
    /// targeted faults (`SimOptions::without_targeted_faults`).
    ReconfiguringAsRecorded,
}

impl Scenario {
    /// The test that runs this scenario.
    fn test_name(self) -> String {
        match self {
            Self::Fixed(n) => format!("simulator_{n}_nodes"),
            Self::Reconfiguring => String::from("simulator_membership_changes"),
            Self::ReconfiguringAsRecorded => String::from("regression_seeds"),
        }
    }

    fn options(self, seed: u64) -> SimOptions {
        match self {
            Self::Fixed(nodes) => SimOptions::random(seed, nodes),
            Self::Reconfiguring => SimOptions::reconfiguring(seed),
            Self::ReconfiguringAsRecorded => {
                SimOptions::reconfiguring(seed).without_targeted_faults()
            }
        }
    }
}

fn trace_seed(seed: u64, nodes: usize) -> (String, Result<Summary, raft_core::sim::SimFailure>) {
    #[cfg(raft_planted)]
    planted::from_env();
    trace_options(Scenario::Fixed(nodes).options(seed))
}

/// Runs a seed; on failure replays it with a trace and panics with the seed and the trace's end.
fn check_seed(seed: u64, nodes: usize) -> Summary {
    check(seed, Scenario::Fixed(nodes))
}

fn check(seed: u64, scenario: Scenario) -> Summary {
    #[cfg(raft_planted)]
    planted::from_env();
    match run_options(scenario.options(seed)) {
        Ok(summary) => summary,
        Err(failure) => {
            let (trace, _) = trace_options(scenario.options(seed));
            let lines: Vec<&str> = trace.lines().collect();
            let tail = lines[lines.len().saturating_sub(150)..].join("\n");
            panic!(
                "{failure}\n--- last {} trace lines (replay: RAFT_SIM_SEED={seed} cargo test -p \
                 raft-core --test simulator {} -- --nocapture) ---\n{tail}",
                lines.len().min(150),
                scenario.test_name()
            );
        }
    }
}

fn run_many(nodes: usize) {
    run_scenario(Scenario::Fixed(nodes), DEFAULT_SEEDS_PER_SIZE);
}

fn run_scenario(scenario: Scenario, default_seeds: u64) {
    #[cfg(raft_planted)]
    planted::from_env();
    let name = match scenario {
        Scenario::Fixed(n) => format!("{n} nodes"),
        Scenario::Reconfiguring | Scenario::ReconfiguringAsRecorded => {
            String::from("membership changes")
        }
    };
    if let Some(seed) = env_u64("RAFT_SIM_SEED") {
        let (trace, result) = trace_options(scenario.options(seed));
        let outcome = match &result {
            Ok(_) => String::from("passed"),
            Err(e) => format!("FAILED: {e}"),
        };
        // One `println!`, so the scenarios' tests, which run in parallel, cannot interleave.
        println!(
            "\n==== simulator, {name}, seed {seed} ({}): trace of {} lines ====\n{}\n==== end \
             of simulator, {name}, seed {seed}: {outcome} ====\n",
            scenario.test_name(),
            trace.lines().count(),
            trace.trim_end()
        );
        if let Err(e) = result {
            panic!("{e}");
        }
        return;
    }
    let count = env_u64("RAFT_SIM_SEEDS").unwrap_or(default_seeds);
    let first = env_u64("RAFT_SIM_FIRST").unwrap_or(0);
    let start = Instant::now();
    let (mut committed, mut terms, mut crashes, mut reads, mut heal) = (0, 0, 0, 0, 0);
    let (mut taken, mut installed, mut changes) = (0, 0, 0);
    let (mut by_lease, mut lease_seeds, mut lease_pause_seeds) = (0, 0, 0);
    for seed in first..first + count {
        let s = check(seed, scenario);
        let o = scenario.options(seed);
        lease_seeds += u64::from(o.lease_reads);
        lease_pause_seeds += u64::from(o.lease_reads && o.pause_per_million > 0);
        by_lease += s.reads_by_lease;
        changes += s.membership_changes;
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
        "simulator, {name}: {count} seeds in {secs:.1}s ({:.0} seeds/s); {committed} entries \
         committed, {terms} leader terms, {crashes} crashes, {reads} reads confirmed ({by_lease} \
         from a lease; lease reads in {lease_seeds} seeds, {lease_pause_seeds} with pauses), \
         {taken} snapshots taken, {installed} installed from a leader, {changes} membership \
         changes, slowest heal {heal} ticks",
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

/// Three voters and spare nodes under every fault, with the leader asked again and again to
/// change the membership: add and promote learners, add, remove, replace and demote voters,
/// remove itself, grow to 5 and shrink to 3.
#[test]
fn simulator_membership_changes() {
    run_scenario(Scenario::Reconfiguring, DEFAULT_RECONFIGURING_SEEDS);
}

#[test]
fn regression_seeds() {
    for &(seed, nodes) in REGRESSIONS {
        check_seed(seed, nodes);
    }
    for &seed in RECONFIGURING_REGRESSIONS {
        // As recorded, and with today's fault mix.
        check(seed, Scenario::ReconfiguringAsRecorded);
        check(seed, Scenario::Reconfiguring);
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
