//! Membership changes (Raft thesis §4.3): joint consensus, learners, leadership transfer and
//! removal of the leader, under partitions and crashes. Every scenario runs in the
//! deterministic simulator with all of its checks (election safety, log matching, leader
//! completeness, state machine safety, durability before acknowledgement) after every step.

use raft_core::sim::Simulation;
use raft_core::{Change, Membership, NodeId, Refusal, Role, StepError};

// With the planted bugs compiled in, the bug `RAFT_PLANTED_BUG` names (raft-core/PLANTED-BUGS.md).
#[cfg(raft_planted)]
#[path = "common/planted.rs"]
mod planted;

fn id(i: u64) -> NodeId {
    NodeId::new(i).expect("non-zero")
}

/// Index in the simulation of the node with this id.
fn ix(node: u64) -> usize {
    node as usize - 1
}

/// `voters` initial voters and `spares` nodes outside the configuration, no random faults.
fn cluster(voters: usize, spares: usize, seed: u64) -> Simulation {
    #[cfg(raft_planted)]
    planted::from_env();
    let mut sim = Simulation::scripted(voters, seed, |o| o.spare_nodes = spares).expect("sim");
    elect(&mut sim);
    sim
}

/// Runs until a leader has committed its whole log (so its first entry of its term, too:
/// until then it refuses membership changes).
fn elect(sim: &mut Simulation) -> usize {
    sim.run_until(2_000, "a leader", |s| {
        s.leader_index()
            .and_then(|l| s.node(l))
            .is_some_and(|n| n.commit_index() == n.last_log().index)
    })
    .expect("a leader is elected");
    sim.leader_index().expect("leader")
}

fn membership_of(sim: &Simulation, i: usize) -> Membership {
    sim.node(i).expect("running").membership().clone()
}

fn leader_membership(sim: &Simulation) -> Membership {
    membership_of(sim, sim.leader_index().expect("leader"))
}

/// Asks the leader for `changes`, expecting it to accept.
fn change(sim: &mut Simulation, changes: &[Change]) -> Membership {
    let l = sim.leader_index().expect("leader");
    let target = membership_of(sim, l)
        .with_changes(changes)
        .expect("valid target");
    let answer = sim.change_membership_at(l, &target).expect("no violation");
    answer.expect("the leader accepts the change");
    target
}

/// Runs until a leader is in `target` (left joint), has committed it, and every running member
/// of `target` has it too.
fn settle(sim: &mut Simulation, target: &Membership) {
    let target = target.clone();
    sim.run_until(3_000, "the configuration settles", move |s| {
        let Some(l) = s.leader_index() else {
            return false;
        };
        let leader = s.node(l).expect("running");
        leader.membership() == &target
            && leader.commit_index() == leader.last_log().index
            && target.members().all(|m| {
                s.node(ix(m.get())).is_none_or(|n| {
                    n.membership() == &target && n.commit_index() >= leader.commit_index()
                })
            })
    })
    .expect("settles");
}

/// Proposes at whoever leads until a new entry commits.
fn commit_one(sim: &mut Simulation) {
    let before = sim.summary().committed;
    for _ in 0..200 {
        sim.propose_at_leader().expect("no violation");
        sim.run_ticks(10).expect("no violation");
        if sim.summary().committed > before {
            return;
        }
    }
    panic!("nothing committed");
}

fn voters(ids: &[u64]) -> Vec<NodeId> {
    ids.iter().map(|&i| id(i)).collect()
}

#[test]
fn add_a_voter() {
    let mut sim = cluster(3, 1, 1);
    let target = change(&mut sim, &[Change::AddVoter(id(4))]);
    // The leader appended the joint configuration: old and new majorities both needed.
    assert!(leader_membership(&sim).is_joint());
    settle(&mut sim, &target);
    assert_eq!(leader_membership(&sim).voters(), &voters(&[1, 2, 3, 4])[..]);
    // The new voter counts: with node 1 down, a majority of the four voters is nodes 2, 3 and
    // 4, so nothing commits (nor, if node 1 led, is anyone elected) without node 4.
    sim.crash_node(ix(1)).expect("crash");
    commit_one(&mut sim);
    assert_eq!(
        sim.node(ix(4)).expect("running").last_log(),
        sim.node(sim.leader_index().expect("leader"))
            .expect("running")
            .last_log()
    );
}

#[test]
fn remove_a_voter() {
    let mut sim = cluster(3, 0, 2);
    let l = sim.leader_index().expect("leader");
    let victim = (0..3).find(|&i| i != l).expect("a follower") as u64 + 1;
    let target = change(&mut sim, &[Change::Remove(id(victim))]);
    settle(&mut sim, &target);
    assert_eq!(leader_membership(&sim).voters().len(), 2);
    // The removed node is gone from the leader's progress, and the rest commit without it.
    assert!(
        sim.node(sim.leader_index().expect("leader"))
            .expect("running")
            .status()
            .peers
            .iter()
            .all(|p| p.id != id(victim))
    );
    sim.crash_node(ix(victim)).expect("crash");
    commit_one(&mut sim);
}

#[test]
fn add_and_promote_a_learner() {
    let mut sim = cluster(3, 1, 3);
    let target = change(&mut sim, &[Change::AddLearner(id(4))]);
    // Learners change alone: no joint configuration.
    assert!(!leader_membership(&sim).is_joint());
    settle(&mut sim, &target);
    commit_one(&mut sim);
    let learner = sim.node(ix(4)).expect("running");
    assert!(learner.membership().is_learner(id(4)));
    assert_eq!(learner.stats().elections, 0, "a learner never campaigns");
    // A learner does not count towards a commit: with two voters down, the leader and the
    // learner cannot commit.
    let l = sim.leader_index().expect("leader");
    let others: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    for &i in &others {
        sim.crash_node(i).expect("crash");
    }
    let committed = sim.summary().committed;
    for _ in 0..5 {
        sim.propose_at_leader().expect("no violation");
        sim.run_ticks(5).expect("no violation");
    }
    assert_eq!(
        sim.summary().committed,
        committed,
        "a learner made a quorum"
    );
    for &i in &others {
        sim.restart_node(i);
    }
    elect(&mut sim);
    settle(&mut sim, &target);
    // Promotion goes through the joint configuration.
    let promoted = change(&mut sim, &[Change::AddVoter(id(4))]);
    assert!(leader_membership(&sim).is_joint());
    settle(&mut sim, &promoted);
    assert!(membership_of(&sim, ix(4)).is_voter(id(4)));
    assert!(promoted.learners().is_empty());
}

#[test]
fn remove_the_leader() {
    let mut sim = cluster(3, 0, 4);
    let old = sim.leader_index().expect("leader");
    let target = change(&mut sim, &[Change::Remove(id(old as u64 + 1))]);
    // The leader keeps leading through the joint configuration, appends the target by itself,
    // and steps down once the target is committed, handing over to a caught-up voter.
    sim.run_until(2_000, "the old leader steps down", |s| {
        s.node(old).is_some_and(|n| n.role() != Role::Leader)
    })
    .expect("steps down");
    let node = sim.node(old).expect("running");
    assert_eq!(node.stats().removed_step_downs, 1);
    assert_eq!(node.membership(), &target);
    let ticks = sim
        .run_until(100, "a new leader", |s| {
            s.leader_index().is_some_and(|l| l != old)
        })
        .expect("new leader");
    assert!(
        ticks < 10,
        "the hand-over took {ticks} ticks, not a timeout"
    );
    settle(&mut sim, &target);
    commit_one(&mut sim);
    // The removed node never campaigns again.
    let elections = sim.node(old).expect("running").stats().elections;
    sim.run_ticks(300).expect("no violation");
    assert_eq!(sim.node(old).expect("running").stats().elections, elections);
}

#[test]
fn replace_every_member_one_by_one() {
    let mut sim = cluster(3, 3, 5);
    for (out, inn) in [(1, 4), (2, 5), (3, 6)] {
        let target = change(
            &mut sim,
            &[Change::AddVoter(id(inn)), Change::Remove(id(out))],
        );
        settle(&mut sim, &target);
        commit_one(&mut sim);
    }
    assert_eq!(leader_membership(&sim).voters(), &voters(&[4, 5, 6])[..]);
    // The original members are not needed any more.
    for i in 0..3 {
        sim.crash_node(i).expect("crash");
    }
    elect(&mut sim);
    commit_one(&mut sim);
}

#[test]
fn grow_to_five_and_shrink_back_to_three() {
    let mut sim = cluster(3, 2, 6);
    let five = change(
        &mut sim,
        &[Change::AddVoter(id(4)), Change::AddVoter(id(5))],
    );
    settle(&mut sim, &five);
    // Five voters survive two crashes.
    sim.crash_node(ix(1)).expect("crash");
    sim.crash_node(ix(2)).expect("crash");
    elect(&mut sim);
    commit_one(&mut sim);
    sim.restart_node(ix(1));
    sim.restart_node(ix(2));
    let three = change(&mut sim, &[Change::Remove(id(4)), Change::Remove(id(5))]);
    settle(&mut sim, &three);
    commit_one(&mut sim);
}

#[test]
fn a_second_change_while_one_is_pending_is_refused() {
    let mut sim = cluster(3, 2, 7);
    let l = sim.leader_index().expect("leader");
    let target = change(&mut sim, &[Change::AddVoter(id(4))]);
    let again = target
        .with_changes(&[Change::AddVoter(id(5))])
        .expect("valid");
    assert_eq!(
        sim.change_membership_at(l, &again).expect("no violation"),
        Err(StepError::Refused(Refusal::ChangePending))
    );
    // A joint target is not a change.
    let joint = leader_membership(&sim);
    assert!(joint.is_joint());
    settle(&mut sim, &target);
    assert!(matches!(
        sim.change_membership_at(sim.leader_index().expect("leader"), &joint)
            .expect("no violation"),
        Err(StepError::Refused(Refusal::InvalidMembership(_)))
    ));
    // A follower redirects to the leader.
    let f = (0..3)
        .find(|&i| Some(i) != sim.leader_index())
        .expect("follower");
    assert!(matches!(
        sim.change_membership_at(f, &again).expect("no violation"),
        Err(StepError::Refused(Refusal::NotLeader { leader: Some(_) }))
    ));
    // Once settled, the next change is accepted.
    let next = change(&mut sim, &[Change::AddVoter(id(5))]);
    settle(&mut sim, &next);
}

#[test]
fn a_change_during_a_partition_commits_with_both_majorities() {
    let mut sim = cluster(5, 0, 8);
    let l = sim.leader_index().expect("leader");
    // Two followers are cut off; the change removes them. The joint configuration needs three
    // of the old five (the leader and two others) and all three of the new.
    let cut: Vec<usize> = (0..5).filter(|&i| i != l).take(2).collect();
    for &i in &cut {
        sim.isolate(i);
    }
    let changes: Vec<Change> = cut
        .iter()
        .map(|&i| Change::Remove(id(i as u64 + 1)))
        .collect();
    let target = change(&mut sim, &changes);
    settle(&mut sim, &target);
    commit_one(&mut sim);
    // Healing brings back nodes that missed their own removal: they may campaign, but cannot
    // disturb the new configuration's leader.
    sim.heal_network();
    sim.run_ticks(500).expect("no violation");
    commit_one(&mut sim);
    let l = sim.leader_index().expect("leader");
    assert!(target.is_voter(sim.node(l).expect("running").id()));
}

#[test]
fn a_change_on_the_minority_side_of_a_partition_is_rolled_back() {
    let mut sim = cluster(3, 1, 9);
    let old = sim.leader_index().expect("leader");
    let before = leader_membership(&sim);
    sim.isolate(old);
    // The cut-off leader accepts the change (the joint configuration is in force in its log at
    // once) but cannot commit it.
    let _ = change(&mut sim, &[Change::AddVoter(id(4))]);
    assert!(membership_of(&sim, old).is_joint());
    let new = sim
        .run_until(2_000, "the majority elects", |s| {
            (0..3).any(|i| i != old && s.node(i).is_some_and(|n| n.role() == Role::Leader))
        })
        .map(|_| {
            (0..3).find(|&i| i != old && sim.node(i).is_some_and(|n| n.role() == Role::Leader))
        })
        .expect("a new leader")
        .expect("a new leader");
    assert_ne!(new, old);
    commit_one(&mut sim);
    sim.heal_network();
    // The old leader's uncommitted configuration entry is truncated and its configuration
    // falls back to the one before it.
    sim.run_until(2_000, "the old leader rejoins", |s| {
        s.node(old)
            .is_some_and(|n| n.role() == Role::Follower && n.membership() == &before)
    })
    .expect("rolled back");
    settle(&mut sim, &before);
}

#[test]
fn a_change_interrupted_by_a_leader_crash_is_finished_or_forgotten() {
    for seed in 0..20 {
        let mut sim = cluster(3, 2, 100 + seed);
        let old = sim.leader_index().expect("leader");
        let before = leader_membership(&sim);
        let target = change(
            &mut sim,
            &[Change::AddVoter(id(4)), Change::AddVoter(id(5))],
        );
        // Crash the leader somewhere in the joint phase: before or after the joint entry
        // reaches the others, before or after it commits.
        sim.run_ticks(seed % 5).expect("no violation");
        sim.crash_node(old).expect("crash");
        let l = elect(&mut sim);
        assert_ne!(l, old);
        // The new leader either finishes the change (it leaves the joint configuration by
        // itself) or never saw it; either way the cluster settles in a simple configuration.
        sim.run_until(3_000, "a simple configuration", |s| {
            s.leader_index().and_then(|l| s.node(l)).is_some_and(|n| {
                !n.membership().is_joint() && n.commit_index() == n.last_log().index
            })
        })
        .expect("settles");
        let settled = leader_membership(&sim);
        assert!(
            settled == target || settled == before,
            "seed {seed}: {settled:?}"
        );
        sim.restart_node(old);
        settle(&mut sim, &settled);
        commit_one(&mut sim);
    }
}

/// Raft thesis §4.2.1, simulator seed 5001107 of the membership scenario: voters 2, 3 and 5
/// with node 5 empty, learner 4 empty, and the leader asked to promote 4. Accepted, the joint
/// configuration needed three of the voters 2, 3, 4 and 5, so 4 or 5, which only a snapshot
/// could bring up to date; the transfers never finished (each newer snapshot the leader took
/// started them over) and nothing committed for the last 1,300 ticks. The leader now refuses a
/// change whose new majority has not caught up, keeps committing, and accepts it once the
/// learner has caught up.
#[test]
fn promoting_a_learner_that_has_not_caught_up_is_refused() {
    #[cfg(raft_planted)]
    planted::from_env();
    let mut sim = Simulation::scripted(3, 12, |o| {
        o.spare_nodes = 2;
        o.snapshot_trailing_entries = 0;
    })
    .expect("sim");
    let l = elect(&mut sim);
    sim.run_ticks(20).expect("no violation");
    let followers: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    // Node 5 is down (it will join the configuration with an empty log), node 4 is cut off.
    sim.crash_node(ix(5)).expect("crash");
    sim.isolate(ix(4));
    let committed = |target: Membership| {
        move |s: &Simulation| {
            s.leader_index().and_then(|l| s.node(l)).is_some_and(|n| {
                n.membership() == &target && n.commit_index() == n.last_log().index
            })
        }
    };

    // One voter replaced with the empty node 5: the leader and the other follower hold the log,
    // a majority of the new three voters, so this is accepted.
    let removed = followers[1] as u64 + 1;
    let three = change(
        &mut sim,
        &[Change::Remove(id(removed)), Change::AddVoter(id(5))],
    );
    sim.run_until(2_000, "node 5 replaces a voter", committed(three))
        .expect("committed");
    let with_learner = change(&mut sim, &[Change::AddLearner(id(4))]);
    sim.run_until(2_000, "learner 4 is added", committed(with_learner.clone()))
        .expect("committed");
    commit_one(&mut sim);
    // The leader compacts its log: nodes 4 and 5 can only catch up through the snapshot.
    sim.snapshot_node(l).expect("snapshot");

    // Promoting 4 would need 4 or 5 for every commit.
    let promoted = with_learner
        .with_changes(&[Change::AddVoter(id(4))])
        .expect("valid");
    assert_eq!(
        sim.change_membership_at(l, &promoted)
            .expect("no violation"),
        Err(StepError::Refused(Refusal::NotCaughtUp))
    );
    assert!(!leader_membership(&sim).is_joint());
    commit_one(&mut sim);

    // Once 4 and 5 have caught up (through the snapshot), the promotion is accepted.
    sim.heal_network();
    sim.restart_node(ix(5));
    sim.run_until(3_000, "nodes 4 and 5 catch up", |s| {
        let Some(leader) = s.leader_index().and_then(|l| s.node(l)) else {
            return false;
        };
        [4, 5].iter().all(|&m| {
            s.node(ix(m))
                .is_some_and(|n| n.last_log().index == leader.last_log().index)
        })
    })
    .expect("caught up");
    assert!(
        sim.summary().snapshots.1 >= 2,
        "4 and 5 installed the snapshot"
    );
    let promoted = change(&mut sim, &[Change::AddVoter(id(4))]);
    settle(&mut sim, &promoted);
    commit_one(&mut sim);
}

#[test]
fn demote_a_voter_to_a_learner() {
    let mut sim = cluster(3, 0, 10);
    let l = sim.leader_index().expect("leader");
    let f = (0..3).find(|&i| i != l).expect("follower") as u64 + 1;
    let target = change(&mut sim, &[Change::AddLearner(id(f))]);
    // In the joint configuration the demoted node still votes, in the outgoing set.
    let joint = leader_membership(&sim);
    assert!(joint.is_joint() && joint.is_voter(id(f)));
    settle(&mut sim, &target);
    assert!(membership_of(&sim, ix(f)).is_learner(id(f)));
    commit_one(&mut sim);
}

#[test]
fn the_configuration_survives_snapshot_and_restart() {
    let mut sim = cluster(3, 1, 11);
    let target = change(&mut sim, &[Change::AddVoter(id(4))]);
    settle(&mut sim, &target);
    commit_one(&mut sim);
    for i in 0..4 {
        sim.snapshot_node(i).expect("snapshot");
        let node = sim.node(i).expect("running");
        assert_eq!(
            node.snapshot().membership,
            target,
            "node {i}'s snapshot metadata"
        );
    }
    for i in 0..4 {
        sim.crash_node(i).expect("crash");
    }
    for i in 0..4 {
        sim.restart_node(i);
        assert_eq!(membership_of(&sim, i), target, "node {i} after restart");
    }
    elect(&mut sim);
    commit_one(&mut sim);
}
