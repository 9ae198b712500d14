//! Golden transcripts: simulator runs whose traces are checked in (`tests/golden/*.txt`) and
//! compared verbatim, so that a change of behaviour shows up in review as a diff of what the
//! nodes said and wrote: an extra round trip, a lost batching merge, a changed election cadence.
//! (etcd's raft keeps `testdata/*.txt` for the same reason.)
//!
//! Each file is one run: a few seeds of the simulator's own seed set (`tests/simulator.rs`, the
//! fault phase cut short so the file stays reviewable; the rest of the run is the seed's CI run
//! up to there, then the healed phase), and scripted scenarios without random faults. Every line
//! is `t<tick> n<node> ...`: what the node received (`<-`; a tick only when the node emitted
//! something on it), the messages it sent (with their fate on the network), its writes and when
//! they become durable, what it applied, its read results and role changes; lines with `#` are
//! the scenario's own notes. All of the simulator's checks run as usual.
//!
//! After an intended change of behaviour, regenerate the files and review the diff:
//! `GOLDEN_BLESS=1 cargo test -p raft-core --features sim --test golden`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use raft_core::sim::{SimFailure, SimOptions, Simulation, Summary};
use raft_core::{Change, Membership, NodeId};

const BLESS: &str = "GOLDEN_BLESS=1 cargo test -p raft-core --features sim --test golden";

/// A file longer than this is hard to review: cut the run shorter.
const MAX_LINES: usize = 1_500;

/// Every golden file, by name: a file in `tests/golden/` that is not listed here is stale.
const GOLDEN: &[&str] = &[
    "seed_3_nodes",
    "seed_5_nodes",
    "seed_membership_changes",
    "seed_targeted_faults",
    "election_burst_read",
    "leader_failover",
    "membership_change",
    "snapshot_to_lagging_follower",
    "leadership_transfer",
];

type Result<T = ()> = core::result::Result<T, SimFailure>;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with `tests/golden/<name>.txt`, or writes it there under `GOLDEN_BLESS=1`.
fn check_golden(name: &str, actual: &str) {
    assert!(GOLDEN.contains(&name), "{name} is missing from GOLDEN");
    let path = golden_dir().join(format!("{name}.txt"));
    if std::env::var_os("GOLDEN_BLESS").is_some_and(|v| v == "1") {
        let lines = actual.lines().count();
        assert!(
            lines <= MAX_LINES,
            "{name}: {lines} lines, more than {MAX_LINES} to review: cut the run shorter"
        );
        std::fs::create_dir_all(golden_dir()).expect("create tests/golden");
        std::fs::write(&path, actual).expect("write the golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}\nto create it: {BLESS}", path.display()));
    if expected == actual {
        return;
    }
    let (exp, act): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let first = exp
        .iter()
        .zip(&act)
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| exp.len().min(act.len()));
    let mut report = format!(
        "golden transcript {name} differs from {} at line {} (expected {} lines, got {}):\n",
        path.display(),
        first + 1,
        exp.len(),
        act.len()
    );
    let from = first.saturating_sub(5);
    for (k, line) in exp.iter().enumerate().take(first).skip(from) {
        let _ = writeln!(report, "  {:>5}   {line}", k + 1);
    }
    for (k, line) in exp.iter().enumerate().skip(first).take(5) {
        let _ = writeln!(report, "- {:>5}   {line}", k + 1);
    }
    for (k, line) in act.iter().enumerate().skip(first).take(5) {
        let _ = writeln!(report, "+ {:>5}   {line}", k + 1);
    }
    if first >= exp.len() {
        let _ = writeln!(report, "- (end of the golden file)");
    }
    if first >= act.len() {
        let _ = writeln!(report, "+ (end of the trace)");
    }
    let _ = write!(
        report,
        "If the change of behaviour is intended, regenerate the files and review the diff:\n  \
         {BLESS}"
    );
    panic!("{report}");
}

/// The options a run was made with, for the file's header.
fn describe_options(o: &SimOptions, scripted: bool) -> String {
    let phases = if scripted {
        String::from("scripted, no random faults")
    } else {
        format!(
            "fault phase {} ticks, heal within {}",
            o.fault_ticks, o.heal_ticks
        )
    };
    format!(
        "# seed {}, {} nodes + {} spare; {phases}\n\
         # network: drop {}/M, duplicate {}/M, delay <= {}; per tick per M: partition {}, crash \
         {}, restart {}, leader crash {}, propose {}, read {}, transfer {}, snapshot {}, \
         membership change {}; deferred drains {}/M\n\
         # disk delay <= {}; pre-vote {}, check-quorum {}, follower reads {}, max in flight {}, \
         max entries per message {}; snapshot chunks of {} bytes, {} trailing entries, up to {} \
         bytes\n",
        o.seed,
        o.nodes,
        o.spare_nodes,
        o.net.drop_per_million,
        o.net.duplicate_per_million,
        o.net.max_delay,
        o.partition_per_million,
        o.crash_per_million,
        o.restart_per_million,
        o.leader_crash_per_million,
        o.propose_per_million,
        o.read_per_million,
        o.transfer_per_million,
        o.snapshot_per_million,
        o.change_per_million,
        o.defer_writes_per_million,
        o.max_disk_delay,
        o.pre_vote,
        o.check_quorum,
        o.follower_reads,
        o.max_inflight_msgs,
        o.max_msg_entries,
        o.snapshot_chunk_bytes,
        o.snapshot_trailing_entries,
        o.snapshot_max_bytes,
    ) + &targeted_faults(o)
        + &lease_reads(o)
}

/// Lease reads, where a run has them (a line of their own, as for the targeted faults).
fn lease_reads(o: &SimOptions) -> String {
    if !o.lease_reads {
        return String::new();
    }
    let drift = o.clock_drift.map_or_else(
        || String::from("none"),
        |d| {
            format!(
                "n{} {} one tick in {}",
                d.node + 1,
                if d.fast { "gains" } else { "loses" },
                d.every
            )
        },
    );
    format!(
        "# lease reads, drift margin {} ticks; clock drift: {drift}\n",
        o.lease_drift_ticks
    )
}

/// The targeted faults, where a run has them (a line of their own, so the transcripts recorded
/// before they existed read as they did).
fn targeted_faults(o: &SimOptions) -> String {
    if o.slow_disks == 0
        && o.role_change_crash_per_million == 0
        && o.ack_ahead_crash_per_million == 0
        && o.coarse_hint_per_million == 0
        && o.pause_per_million == 0
    {
        return String::new();
    }
    let slow: Vec<String> = (0..o.nodes + o.spare_nodes)
        .filter(|&i| o.slow_disk(i))
        .map(|i| format!("n{}", i + 1))
        .collect();
    format!(
        "# slow disks: {} (delay <= {}); power cut right after becoming candidate or leader \
         {}/M, at a leader acknowledged ahead of its disk {}/M; coarse conflict hints {}/M; \
         pauses {}/M\n",
        if slow.is_empty() {
            String::from("none")
        } else {
            slow.join(" ")
        },
        o.slow_disk_delay,
        o.role_change_crash_per_million,
        o.ack_ahead_crash_per_million,
        o.coarse_hint_per_million,
        o.pause_per_million
    )
}

fn describe_summary(s: &Summary) -> String {
    format!(
        "# {} ticks, {} entries committed, {} leader terms, messages {} sent {} lost {} \
         duplicated, {} crashes, reads {} confirmed {} aborted, snapshots {} taken {} installed, \
         {} membership changes",
        s.ticks,
        s.committed,
        s.leader_terms,
        s.messages.0,
        s.messages.1,
        s.messages.2,
        s.crashes,
        s.reads.0,
        s.reads.1,
        s.snapshots.0,
        s.snapshots.1,
        s.membership_changes
    )
}

/// The file for a run: header, trace, outcome.
fn transcript(name: &str, what: &str, options: &str, trace: &str, end: &str) -> String {
    format!("# golden transcript {name}: {what}\n# regenerate: {BLESS}\n{options}{trace}{end}\n")
}

/// A seed of the simulator's seed set, with its fault phase cut to `fault_ticks`: the trace is
/// the first `fault_ticks` ticks of the seed's CI run, then the healed phase.
fn seed_run(name: &str, what: &str, mut opts: SimOptions, fault_ticks: u64) {
    opts.fault_ticks = fault_ticks;
    opts.trace = true;
    let mut sim = Simulation::new(opts.clone()).expect("valid options");
    let result = sim.run();
    let end = match &result {
        Ok(s) => format!(
            "# run passed (heal took {} ticks)\n{}",
            s.heal_ticks,
            describe_summary(s)
        ),
        Err(e) => format!("# run FAILED: {e}"),
    };
    let text = transcript(
        name,
        what,
        &describe_options(&opts, false),
        sim.trace(),
        &end,
    );
    if let Err(e) = result {
        panic!("{e}\n(the trace is the golden file's content; compare it with {name}.txt)");
    }
    check_golden(name, &text);
}

/// A scripted scenario: `script` drives a cluster without random faults.
fn scripted(
    name: &str,
    what: &str,
    nodes: usize,
    seed: u64,
    tweak: impl FnOnce(&mut SimOptions),
    script: impl FnOnce(&mut Simulation) -> Result,
) {
    let mut opts = None;
    let mut sim = Simulation::scripted(nodes, seed, |o| {
        tweak(o);
        o.trace = true;
        opts = Some(o.clone());
    })
    .expect("valid options");
    let result = script(&mut sim);
    if let Err(e) = result {
        let trace = sim.trace();
        let lines: Vec<&str> = trace.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!("{name}: {e}\n--- last trace lines ---\n{tail}");
    }
    let end = format!("# script done\n{}", describe_summary(&sim.summary()));
    let opts = opts.expect("the tweak ran");
    let options = describe_options(&opts, true);
    check_golden(name, &transcript(name, what, &options, sim.trace(), &end));
}

fn id(i: usize) -> NodeId {
    NodeId::new(i as u64 + 1).expect("non-zero")
}

/// Runs until there is a leader whose whole log is committed (its first entry of its term too).
fn elect(sim: &mut Simulation) -> Result<usize> {
    sim.run_until(500, "a leader with its log committed", |s| {
        s.leader_index()
            .and_then(|l| s.node(l))
            .is_some_and(|n| n.commit_index() == n.last_log().index)
    })?;
    Ok(sim.leader_index().expect("a leader"))
}

/// Runs until every running node has applied everything the leader committed, and the leader
/// has committed its whole log.
fn caught_up(sim: &mut Simulation, what: &str) -> Result {
    caught_up_except(sim, usize::MAX, what)
}

/// The same, leaving node `except` out.
fn caught_up_except(sim: &mut Simulation, except: usize, what: &str) -> Result {
    sim.run_until(500, what, |s| {
        let Some(leader) = s.leader_index().and_then(|l| s.node(l)) else {
            return false;
        };
        let commit = leader.commit_index();
        commit == leader.last_log().index
            && (0..)
                .take_while(|&i| s.disk(i).is_some())
                .filter(|&i| i != except)
                .all(|i| s.node(i).is_none_or(|n| n.applied_index() == commit))
    })?;
    Ok(())
}

fn membership_of(sim: &Simulation, i: usize) -> Membership {
    sim.node(i).expect("running").membership().clone()
}

/// Three nodes of seed 60 under every fault (5 crashes, partitions, snapshots taken and one
/// installed, a log truncation), the first 250 ticks.
#[test]
fn seed_3_nodes() {
    seed_run(
        "seed_3_nodes",
        "simulator seed 60 of the 3-node set, fault phase cut to 250 ticks",
        SimOptions::random(60, 3).without_targeted_faults(),
        250,
    );
}

/// Five nodes of seed 57: crashes, partitions, leadership transfers, a truncation.
#[test]
fn seed_5_nodes() {
    seed_run(
        "seed_5_nodes",
        "simulator seed 57 of the 5-node set, fault phase cut to 120 ticks",
        SimOptions::random(57, 5).without_targeted_faults(),
        120,
    );
}

/// A seed of the 5-node set with every targeted fault: slow disks, power cuts right after a
/// node becomes candidate or leader and at a leader acknowledged ahead of its own disk (with
/// restarts that campaign at once), and coarse conflict hints.
#[test]
fn seed_targeted_faults() {
    seed_run(
        "seed_targeted_faults",
        "simulator seed 6 of the 5-node set (every targeted fault), fault phase cut to 120 ticks",
        SimOptions::random(6, 5).without_lease_reads(),
        120,
    );
}

/// Seed 91 of the membership-change set: a voter replaced (joint), a learner added, the leader
/// removed, among crashes and partitions.
#[test]
fn seed_membership_changes() {
    seed_run(
        "seed_membership_changes",
        "simulator seed 91 of the membership-change set, fault phase cut to 200 ticks",
        SimOptions::reconfiguring(91).without_targeted_faults(),
        200,
    );
}

/// A cold start's election, a burst of 12 proposals in one tick (two messages in flight per
/// follower: the rest wait and leave merged), a ReadIndex read at the leader and one refused at
/// a follower.
#[test]
fn election_burst_read() {
    scripted(
        "election_burst_read",
        "election, a burst of 12 proposals, ReadIndex reads",
        3,
        1,
        |o| {
            o.max_inflight_msgs = 2;
            o.max_msg_entries = 8;
        },
        |sim| {
            sim.note("cold start: run until a leader has committed its first entry");
            let l = elect(sim)?;
            sim.note("a burst of 12 proposals at the leader within one tick");
            for _ in 0..12 {
                sim.propose_at_leader()?;
            }
            caught_up(sim, "the burst applied everywhere")?;
            sim.note("a ReadIndex read at the leader");
            let confirmed = sim.summary().reads.0;
            sim.read_at(l)?;
            sim.run_until(50, "the read confirmed", |s| {
                s.summary().reads.0 > confirmed
            })?;
            sim.note("a read at a follower: refused, not the leader");
            sim.read_at((l + 1) % 3)?;
            sim.note("steady state: heartbeats");
            sim.run_ticks(4)
        },
    );
}

/// The leader crashes; the others elect a new one, which commits; the old leader restarts and
/// catches up as a follower.
#[test]
fn leader_failover() {
    scripted(
        "leader_failover",
        "leader crash, failover, the old leader restarts and catches up",
        3,
        2,
        |_| {},
        |sim| {
            let old = elect(sim)?;
            sim.note("three proposals");
            for _ in 0..3 {
                sim.propose_at_leader()?;
            }
            caught_up(sim, "the proposals applied")?;
            sim.note("the leader crashes");
            sim.crash_node(old)?;
            sim.run_until(500, "a new leader with its log committed", |s| {
                s.leader_index()
                    .filter(|&l| l != old)
                    .and_then(|l| s.node(l))
                    .is_some_and(|n| n.commit_index() == n.last_log().index)
            })?;
            sim.note("two proposals at the new leader");
            for _ in 0..2 {
                sim.propose_at_leader()?;
            }
            caught_up(sim, "the proposals applied by the two running nodes")?;
            sim.note("the old leader restarts from its disk");
            sim.restart_node(old);
            caught_up(sim, "the old leader caught up")
        },
    );
}

/// A voter added through a joint configuration, then the leader removed: it leads through the
/// joint configuration and hands over once the new one is committed.
#[test]
fn membership_change() {
    scripted(
        "membership_change",
        "a voter added (joint configuration), then the leader removed",
        3,
        3,
        |o| o.spare_nodes = 1,
        |sim| {
            let l = elect(sim)?;
            sim.note("add n4 as a voter");
            let target = membership_of(sim, l)
                .with_changes(&[Change::AddVoter(id(3))])
                .expect("valid");
            sim.change_membership_at(l, &target)?
                .expect("the leader accepts");
            let settled = |target: Membership| {
                move |s: &Simulation| {
                    s.leader_index().and_then(|l| s.node(l)).is_some_and(|n| {
                        n.membership() == &target && n.commit_index() == n.last_log().index
                    }) && target.members().all(|m| {
                        s.node(m.get() as usize - 1)
                            .is_some_and(|n| n.membership() == &target)
                    })
                }
            };
            sim.run_until(500, "n4 a voter everywhere", settled(target))?;
            let l = sim.leader_index().expect("a leader");
            sim.note("remove the leader");
            let target = membership_of(sim, l)
                .with_changes(&[Change::Remove(id(l))])
                .expect("valid");
            sim.change_membership_at(l, &target)?
                .expect("the leader accepts");
            sim.run_until(500, "the leader removed, a new one leads", settled(target))?;
            sim.run_ticks(2)
        },
    );
}

/// A follower cut off while the others commit and compact their logs: once the network heals,
/// the leader sends it its snapshot in chunks, then the entries after it.
#[test]
fn snapshot_to_lagging_follower() {
    scripted(
        "snapshot_to_lagging_follower",
        "a lagging follower catches up by a snapshot sent in chunks",
        3,
        4,
        |o| {
            o.snapshot_chunk_bytes = 16;
            o.snapshot_trailing_entries = 1;
            o.snapshot_max_bytes = 64;
        },
        |sim| {
            let l = elect(sim)?;
            let f = (l + 1) % 3;
            sim.note("isolate a follower");
            sim.isolate(f);
            sim.note("six proposals, one per tick, committed without it");
            for _ in 0..6 {
                sim.propose_at_leader()?;
                sim.run_ticks(1)?;
            }
            caught_up_except(sim, f, "the proposals applied by the two connected nodes")?;
            sim.note("the two connected nodes snapshot and compact their logs");
            for i in (0..3).filter(|&i| i != f) {
                sim.snapshot_node(i)?;
            }
            sim.note("heal the network");
            sim.heal_network();
            sim.run_until(500, "the follower installed the snapshot", |s| {
                s.node(f).is_some_and(|n| n.snapshot().last.index.0 > 0)
            })?;
            sim.note("one more proposal");
            sim.propose_at_leader()?;
            caught_up(sim, "everyone caught up")
        },
    );
}

/// The leader hands leadership to a follower (TimeoutNow), which wins at once and commits.
#[test]
fn leadership_transfer() {
    scripted(
        "leadership_transfer",
        "a leadership transfer to a follower",
        3,
        5,
        |_| {},
        |sim| {
            let l = elect(sim)?;
            sim.note("two proposals");
            for _ in 0..2 {
                sim.propose_at_leader()?;
            }
            caught_up(sim, "the proposals applied")?;
            let t = (l + 1) % 3;
            sim.note("transfer leadership to the next node");
            sim.transfer_leader_at(l, id(t))?;
            sim.run_until(100, "the target leads with its log committed", |s| {
                s.leader_index() == Some(t)
                    && s.node(t)
                        .is_some_and(|n| n.commit_index() == n.last_log().index)
            })?;
            sim.note("a proposal at the new leader");
            sim.propose_at_leader()?;
            caught_up(sim, "the proposal applied")
        },
    );
}

/// Every file in `tests/golden/` belongs to a test.
#[test]
fn no_stale_golden_files() {
    let Ok(dir) = std::fs::read_dir(golden_dir()) else {
        panic!("no tests/golden directory: {BLESS}");
    };
    for entry in dir {
        let name = entry.expect("read tests/golden").file_name();
        let name = name.to_string_lossy();
        let stem = name.strip_suffix(".txt").unwrap_or(&name);
        assert!(
            GOLDEN.contains(&stem),
            "tests/golden/{name} belongs to no test: remove it (or list it in GOLDEN)"
        );
    }
}
