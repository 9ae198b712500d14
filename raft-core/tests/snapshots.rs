//! Log compaction and InstallSnapshot (Raft §7), scenario by scenario, on the simulator: every
//! safety property (and the state machine's contents after loading a snapshot) is checked after
//! every step.

use raft_core::ReplicationState;
use raft_core::sim::{NetworkFaults, SimFailure, Simulation};

type Result<T = ()> = core::result::Result<T, SimFailure>;

// With the planted bugs compiled in, the bug `RAFT_PLANTED_BUG` names (raft-core/PLANTED-BUGS.md).
#[cfg(raft_planted)]
#[path = "common/planted.rs"]
mod planted;

/// A 3-node cluster with a leader, snapshots of `max_bytes` sent in chunks of `chunk` bytes.
fn cluster(seed: u64, chunk: u32, max_bytes: u64) -> Result<Simulation> {
    #[cfg(raft_planted)]
    planted::from_env();
    let mut sim = Simulation::scripted(3, seed, |o| {
        o.snapshot_chunk_bytes = chunk;
        o.snapshot_trailing_entries = 5;
        o.snapshot_max_bytes = max_bytes;
    })?;
    sim.run_until(300, "a leader", |s| s.leader_index().is_some())?;
    Ok(sim)
}

fn propose(sim: &mut Simulation, n: usize) -> Result {
    for _ in 0..n {
        sim.propose_at_leader()?;
        sim.run_ticks(1)?;
    }
    Ok(())
}

fn commit(sim: &Simulation, i: usize) -> u64 {
    sim.node(i).map_or(0, |n| n.commit_index().0)
}

fn a_follower(sim: &Simulation) -> usize {
    let l = sim.leader_index().unwrap_or(0);
    (l + 1) % 3
}

/// Every node has applied what the leader committed.
fn caught_up(sim: &Simulation) -> bool {
    let Some(l) = sim.leader_index() else {
        return false;
    };
    (0..3).all(|i| {
        sim.node(i)
            .is_some_and(|n| n.applied_index().0 == commit(sim, l))
    })
}

/// Isolates a follower, commits `n` entries without it, and compacts the others' logs past it.
fn leave_behind(sim: &mut Simulation, n: usize) -> Result<usize> {
    let f = a_follower(sim);
    sim.isolate(f);
    propose(sim, n)?;
    for i in (0..3).filter(|&i| i != f) {
        sim.snapshot_node(i)?;
    }
    let l = sim.leader_index().unwrap_or(0);
    let first_kept = sim.node(l).map_or(0, |n| n.status().snapshot.index.0) - 5;
    assert!(
        commit(sim, f) < first_kept,
        "the follower must need compacted entries"
    );
    Ok(f)
}

/// Raft §7: the application reports a snapshot and the log before it is dropped (all but the
/// configured trailing entries), on disk and in memory.
#[test]
fn snapshot_compacts_the_log() -> Result {
    let mut sim = cluster(1, 64, 100)?;
    propose(&mut sim, 60)?;
    sim.run_ticks(10)?;
    let l = sim.leader_index().expect("leader");
    let before = sim.node(l).expect("up").status();
    assert!(before.log_len >= 60);
    sim.snapshot_node(l)?;
    let after = sim.node(l).expect("up").status();
    assert_eq!(after.snapshot.index, before.applied);
    assert_eq!(
        after.log_len as u64,
        5 + after.last_log.index.0 - after.snapshot.index.0,
        "only the trailing entries and those after the snapshot stay in memory"
    );
    let disk = sim.disk(l).expect("disk");
    assert_eq!(
        disk.first(),
        after.snapshot.index.0,
        "the durable log starts after it"
    );
    // Replication goes on past the snapshot.
    propose(&mut sim, 10)?;
    sim.run_until(200, "caught up", caught_up)?;
    Ok(())
}

/// Raft §7: a follower that was away while the leader compacted its log catches up by
/// InstallSnapshot, then by entries.
#[test]
fn disconnected_follower_catches_up_by_snapshot_after_compaction() -> Result {
    let mut sim = cluster(2, 16, 200)?;
    propose(&mut sim, 5)?;
    let f = leave_behind(&mut sim, 80)?;
    sim.heal_network();
    sim.run_until(500, "follower caught up", caught_up)?;
    let n = sim.node(f).expect("up");
    assert!(
        n.snapshot().last.index.0 > 0,
        "it installed the leader's snapshot"
    );
    assert!(sim.summary().snapshots.1 >= 1);
    assert_eq!(n.applied_index(), n.commit_index());
    Ok(())
}

/// The same on a network that drops a fifth of all messages and duplicates a tenth: chunks and
/// their acknowledgements are retried until the transfer completes.
#[test]
fn follower_catches_up_by_snapshot_on_a_lossy_network() -> Result {
    for seed in 0..20 {
        let mut sim = cluster(100 + seed, 8, 200)?;
        let f = leave_behind(&mut sim, 60)?;
        sim.set_network_faults(NetworkFaults {
            drop_per_million: 200_000,
            duplicate_per_million: 100_000,
            max_delay: 3,
        });
        sim.heal_network();
        sim.run_until(3000, "follower caught up over a lossy network", caught_up)?;
        assert!(sim.node(f).expect("up").snapshot().last.index.0 > 0);
    }
    Ok(())
}

/// Runs until the leader is sending a snapshot to `f` and `f` has received some of it.
fn until_mid_transfer(sim: &mut Simulation, f: usize) -> Result {
    sim.run_until(500, "a transfer under way", |s| {
        let id = s.node(f).map(|n| n.id());
        let sending = s.leader_index().and_then(|l| s.node(l)).is_some_and(|n| {
            n.status()
                .peers
                .iter()
                .any(|p| Some(p.id) == id && p.state == ReplicationState::Snapshot)
        });
        sending && s.disk(f).is_some_and(|d| d.incoming_len() > 0)
    })?;
    Ok(())
}

/// The follower crashes in the middle of a transfer: it restarts without the partial snapshot,
/// the leader starts over, and the transfer completes.
#[test]
fn follower_crash_in_the_middle_of_a_transfer() -> Result {
    let mut sim = cluster(3, 4, 200)?;
    let f = leave_behind(&mut sim, 60)?;
    sim.heal_network();
    until_mid_transfer(&mut sim, f)?;
    sim.crash_node(f)?;
    sim.run_ticks(30)?;
    sim.restart_node(f);
    sim.run_until(1000, "follower caught up after its crash", caught_up)?;
    assert!(sim.node(f).expect("up").snapshot().last.index.0 > 0);
    Ok(())
}

/// The leader crashes in the middle of a transfer: the new leader (which compacted too) sends
/// its own snapshot from the start.
#[test]
fn leader_crash_in_the_middle_of_a_transfer() -> Result {
    let mut sim = cluster(4, 4, 200)?;
    let f = leave_behind(&mut sim, 60)?;
    sim.heal_network();
    until_mid_transfer(&mut sim, f)?;
    let old = sim.leader_index().expect("leader");
    sim.crash_node(old)?;
    sim.run_until(1000, "a new leader", |s| {
        s.leader_index().is_some_and(|l| l != old)
    })?;
    sim.run_until(1000, "follower caught up from the new leader", |s| {
        let l = s.leader_index().unwrap_or(old);
        s.node(f)
            .is_some_and(|n| n.applied_index().0 == commit(s, l))
    })?;
    sim.restart_node(old);
    sim.run_until(1000, "all caught up", caught_up)?;
    assert!(sim.node(f).expect("up").snapshot().last.index.0 > 0);
    Ok(())
}

/// A node restarts from a snapshot with an empty log after it: its state machine is loaded from
/// the snapshot and the cluster goes on.
#[test]
fn node_restarts_from_a_snapshot_with_an_empty_log() -> Result {
    #[cfg(raft_planted)]
    planted::from_env();
    let mut sim = Simulation::scripted(3, 5, |o| o.snapshot_trailing_entries = 0)?;
    sim.run_until(300, "a leader", |s| s.leader_index().is_some())?;
    propose(&mut sim, 30)?;
    sim.run_until(200, "everything committed and applied", |s| {
        caught_up(s)
            && s.leader_index()
                .and_then(|l| s.node(l))
                .is_some_and(|n| n.commit_index() == n.last_log().index)
    })?;
    for i in 0..3 {
        sim.snapshot_node(i)?;
    }
    for i in 0..3 {
        let d = sim.disk(i).expect("disk");
        assert!(
            d.entries.is_empty(),
            "node {i}: nothing after the snapshot on disk"
        );
        assert!(d.snapshot.is_some());
        sim.crash_node(i)?;
    }
    for i in 0..3 {
        sim.restart_node(i);
        let n = sim.node(i).expect("restarted");
        assert_eq!(n.status().log_len, 0);
        assert_eq!(n.applied_index(), n.snapshot().last.index);
    }
    sim.run_until(300, "a leader after the restart", |s| {
        s.leader_index().is_some()
    })?;
    let before = sim.summary().committed;
    propose(&mut sim, 5)?;
    sim.run_until(300, "new entries committed", |s| {
        caught_up(s) && s.summary().committed >= before + 5
    })?;
    Ok(())
}
