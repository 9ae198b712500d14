//! The runtime under faults: a leader crash and failover, a follower crash and catch-up, a
//! partitioned minority leader.

mod common;

use std::time::{Duration, Instant};

use common::{WAIT, cluster, wait_converged};
use raft_core::{NodeId, Role};
use raft_std::client::RequestError;

#[test]
fn leader_crash_fails_over_and_writes_continue() {
    let (mut cluster, lists) = cluster(3, |_| {});
    let old = cluster.wait_for_leader(WAIT).unwrap();
    for i in 1..=10usize {
        assert_eq!(cluster.propose(vec![i as u8]).unwrap(), i);
    }
    let crashed_at = Instant::now();
    cluster.crash(old);
    let new = cluster.wait_for_leader(WAIT).unwrap();
    let elected = crashed_at.elapsed();
    assert_ne!(new, old);
    // The first write after the crash commits at the new leader: failover as a client sees it.
    assert_eq!(cluster.propose(vec![11]).unwrap(), 11);
    let writable = crashed_at.elapsed();
    println!(
        "failover: node {old} crashed, node {new} elected after {elected:?}, first write after {writable:?}"
    );
    assert!(
        writable < Duration::from_secs(5),
        "failover took {writable:?}"
    );
    for i in 12..=20usize {
        assert_eq!(cluster.propose(vec![i as u8]).unwrap(), i);
    }
    // The old leader comes back as a follower and catches up.
    cluster.restart(old).unwrap();
    wait_converged(&cluster, &lists, 20);
    let items = lists.of(old);
    assert!(items.iter().enumerate().all(|(i, v)| v == &[i as u8 + 1]));
}

#[test]
fn a_crashed_follower_restarts_and_catches_up() {
    let (mut cluster, lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    for i in 1..=5usize {
        cluster.propose(vec![i as u8]).unwrap();
    }
    let follower = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    wait_converged(&cluster, &lists, 5);
    cluster.crash(follower);
    // Two of three still make a quorum.
    for i in 6..=40usize {
        assert_eq!(cluster.propose(vec![i as u8]).unwrap(), i);
    }
    let disk = cluster.disk(follower).unwrap();
    assert!(
        disk.last_log().index.0 >= 5,
        "the follower's synced log survived the crash"
    );
    cluster.restart(follower).unwrap();
    wait_converged(&cluster, &lists, 40);
    assert_eq!(lists.of(follower).len(), 40);
}

#[test]
fn every_node_crashes_and_restarts_without_losing_acknowledged_writes() {
    let (mut cluster, lists) = cluster(3, |_| {});
    cluster.wait_for_leader(WAIT).unwrap();
    for i in 1..=10usize {
        cluster.propose(vec![i as u8]).unwrap();
    }
    let ids: Vec<NodeId> = cluster.ids().to_vec();
    for &n in &ids {
        cluster.crash(n);
    }
    for &n in &ids {
        cluster.restart(n).unwrap();
    }
    cluster.wait_for_leader(WAIT).unwrap();
    assert_eq!(cluster.propose(vec![11]).unwrap(), 11);
    wait_converged(&cluster, &lists, 11);
}

#[test]
fn a_partitioned_minority_leader_cannot_commit_and_the_cluster_agrees_after_healing() {
    let (cluster, lists) = cluster(3, |_| {});
    let old = cluster.wait_for_leader(WAIT).unwrap();
    for i in 1..=3usize {
        cluster.propose(vec![i as u8]).unwrap();
    }
    wait_converged(&cluster, &lists, 3);
    let majority: Vec<NodeId> = cluster
        .running()
        .into_iter()
        .filter(|&n| n != old)
        .collect();
    cluster.isolate(old);
    // The old leader accepts a proposal before it notices (CheckQuorum) that it is alone, or
    // redirects once it has: either way the proposal must not be applied.
    let stranded = cluster
        .node(old)
        .unwrap()
        .propose_async(b"stranded".to_vec());
    // The majority elects a leader of its own and commits.
    let mut new = None;
    cluster
        .wait_for(WAIT, "a leader in the majority", |c| {
            new = majority.iter().copied().find(|&m| {
                c.node(m)
                    .and_then(|n| n.status().ok())
                    .is_some_and(|s| s.role == Role::Leader)
            });
            new.is_some()
        })
        .unwrap();
    let new = new.unwrap();
    let node = cluster.node(new).unwrap();
    for i in 4..=8usize {
        assert_eq!(node.propose(vec![i as u8]).unwrap(), i);
    }
    // The old leader stepped down (CheckQuorum) and applied nothing new.
    cluster
        .wait_for(WAIT, "the old leader to step down", |c| {
            c.node(old)
                .and_then(|n| n.status().ok())
                .is_some_and(|s| s.role != Role::Leader)
        })
        .unwrap();
    assert_eq!(lists.len(old), 3);
    cluster.heal();
    wait_converged(&cluster, &lists, 8);
    match stranded.wait(WAIT) {
        Err(RequestError::LeaderChanged | RequestError::NotLeader { .. }) => {}
        other => panic!("the stranded proposal must not be applied: {other:?}"),
    }
    assert!(lists.of(old).iter().all(|v| v != b"stranded"));
    assert_eq!(cluster.propose(vec![9]).unwrap(), 9);
    wait_converged(&cluster, &lists, 9);
}

#[test]
fn a_one_way_cut_does_not_stop_the_cluster() {
    let (cluster, lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let follower = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    // The follower hears the leader but its answers are lost.
    cluster.network().cut(follower, leader);
    for i in 1..=10usize {
        assert_eq!(cluster.propose(vec![i as u8]).unwrap(), i);
    }
    cluster.heal();
    wait_converged(&cluster, &lists, 10);
}
