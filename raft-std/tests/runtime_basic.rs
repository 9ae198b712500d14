//! The runtime on a healthy cluster: election, proposals with results, linearizable reads,
//! leadership transfer, a fatal storage error, clean shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{Answer, Query, WAIT, cluster, wait_converged};
use raft_std::client::RequestError;
use raft_std::storage::StorageError;

#[test]
fn three_nodes_elect_a_leader_and_apply_proposals_with_results() {
    let (cluster, lists) = cluster(3, |_| {});
    let started = Instant::now();
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    println!("first leader: node {leader} after {:?}", started.elapsed());
    for i in 1..=20usize {
        let len = cluster.propose(format!("cmd {i}").into_bytes()).unwrap();
        assert_eq!(len, i, "the response is the state machine's answer");
    }
    wait_converged(&cluster, &lists, 20);
    let items = lists.of(leader);
    assert_eq!(items[0], b"cmd 1");
    assert_eq!(items[19], b"cmd 20");
    // Group commit: fewer syncs than entries on the leader is possible, never more than
    // roughly one per write.
    let disk = cluster.disk(leader).unwrap();
    assert!(disk.syncs() > 0);
    cluster.shutdown().unwrap();
}

#[test]
fn a_follower_redirects_to_the_leader() {
    let (cluster, _lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"x".to_vec()).unwrap();
    let follower = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    let node = cluster.node(follower).unwrap();
    match node.propose(b"y".to_vec()) {
        Err(RequestError::NotLeader { leader: Some(l) }) => assert_eq!(l, leader),
        other => panic!("expected a redirect to {leader}, got {other:?}"),
    }
    match node.read(Query::Len) {
        Err(RequestError::NotLeader { leader: Some(l) }) => assert_eq!(l, leader),
        other => panic!("expected a redirect to {leader}, got {other:?}"),
    }
}

/// With follower reads (`raft_core::Config::follower_reads`) a follower serves a read itself:
/// its node asks the leader for the read index and answers once it has applied it, so the read
/// sees every write acknowledged before it was issued.
#[test]
fn a_follower_serves_reads_itself_with_follower_reads() {
    let (cluster, _lists) = cluster(3, |o| o.runtime.raft.follower_reads = true);
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let follower = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    let node = cluster.node(follower).unwrap();
    for i in 1..=20usize {
        assert_eq!(cluster.propose(vec![i as u8]).unwrap(), i);
        assert_eq!(node.read(Query::Len).unwrap(), Answer::Len(i), "read {i}");
    }
    // Proposals still go to the leader.
    assert!(matches!(
        node.propose(b"y".to_vec()),
        Err(RequestError::NotLeader { leader: Some(l) }) if l == leader
    ));
    // A leader-only read is refused at the follower, and served at the leader.
    let (tx, rx) = std::sync::mpsc::channel();
    let done = move |tx: std::sync::mpsc::Sender<_>| {
        raft_std::client::Completion::new(move |r| {
            let _ = tx.send(r);
        })
    };
    node.read_at_leader_with(Query::Len, WAIT, done(tx.clone()));
    assert!(matches!(
        rx.recv_timeout(WAIT).unwrap(),
        Err(RequestError::NotLeader { leader: Some(l) }) if l == leader
    ));
    let at_leader = cluster.node(leader).unwrap();
    at_leader.read_at_leader_with(Query::Len, WAIT, done(tx));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().unwrap(), Answer::Len(20));
}

#[test]
fn reads_see_every_write_acknowledged_before_them() {
    let (cluster, _lists) = cluster(3, |_| {});
    cluster.wait_for_leader(WAIT).unwrap();
    assert_eq!(cluster.read(Query::Len).unwrap(), Answer::Len(0));
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 1..=30usize {
                assert_eq!(cluster.propose(vec![i as u8]).unwrap(), i);
            }
        });
        // Concurrent reads never go backwards.
        let mut seen = 0;
        while !writer.is_finished() {
            let Answer::Len(n) = cluster.read(Query::Len).unwrap() else {
                unreachable!()
            };
            assert!(n >= seen, "a read went back from {seen} to {n}");
            seen = n;
        }
        writer.join().unwrap();
    });
    // After a write is acknowledged, a read sees it.
    for i in 31..=40usize {
        assert_eq!(cluster.propose(vec![i as u8]).unwrap(), i);
        assert_eq!(cluster.read(Query::Len).unwrap(), Answer::Len(i));
    }
    let Answer::All(items) = cluster.read(Query::All).unwrap() else {
        unreachable!()
    };
    assert_eq!(items.len(), 40);
    assert!(items.iter().enumerate().all(|(i, v)| v == &[i as u8 + 1]));
}

#[test]
fn many_proposals_in_flight_are_group_committed() {
    let (cluster, lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let node = cluster.node(leader).unwrap();
    let proposals: Vec<_> = (0..200u32)
        .map(|i| node.propose_async(i.to_le_bytes().to_vec()))
        .collect();
    let mut results: Vec<usize> = proposals
        .into_iter()
        .map(|p| p.wait(WAIT).unwrap())
        .collect();
    results.sort_unstable();
    assert_eq!(results, (1..=200).collect::<Vec<_>>());
    wait_converged(&cluster, &lists, 200);
    let syncs = cluster.disk(leader).unwrap().syncs();
    println!("leader synced {syncs} times for 200 proposals");
}

#[test]
fn leadership_transfer_moves_the_leader() {
    let (cluster, _lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"before".to_vec()).unwrap();
    let target = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    cluster
        .node(leader)
        .unwrap()
        .transfer_leader(target)
        .unwrap();
    cluster
        .wait_for(WAIT, "the transfer", |c| c.leader() == Some(target))
        .unwrap();
    assert_eq!(cluster.propose(b"after".to_vec()).unwrap(), 2);
}

#[test]
fn a_failed_sync_stops_the_node_and_names_the_cause() {
    let (cluster, _lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"a".to_vec()).unwrap();
    let follower = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    cluster.disk(follower).unwrap().fail_next_sync();
    // The next append the follower receives fails its sync.
    cluster.propose(b"b".to_vec()).unwrap();
    let node = cluster.node(follower).unwrap().clone();
    cluster
        .wait_for(WAIT, "the follower to stop", |_| !node.is_running())
        .unwrap();
    let Err(RequestError::Stopped(stopped)) = node.status() else {
        panic!("a stopped node answers NodeStopped");
    };
    let cause = stopped.cause.expect("a cause");
    assert!(
        matches!(
            &*cause,
            raft_std::runtime::NodeError::Storage(StorageError::SyncFailed { .. })
        ),
        "{cause}"
    );
    assert!(matches!(
        node.propose(b"c".to_vec()),
        Err(RequestError::Stopped(_))
    ));
    assert!(node.shutdown().is_err());
    // The other two carry on.
    assert_eq!(cluster.propose(b"c".to_vec()).unwrap(), 3);
}

#[test]
fn shutdown_is_clean() {
    let (cluster, _lists) = cluster(3, |_| {});
    cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"a".to_vec()).unwrap();
    let handles: Vec<_> = cluster
        .running()
        .iter()
        .map(|&n| cluster.node(n).unwrap().clone())
        .collect();
    let started = Instant::now();
    cluster.shutdown().unwrap();
    println!("shutdown took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5));
    for h in handles {
        assert!(!h.is_running());
        let Err(RequestError::Stopped(stopped)) = h.status() else {
            panic!("a shut down node answers NodeStopped");
        };
        assert!(stopped.cause.is_none(), "a clean shutdown has no cause");
        assert!(h.shutdown().is_ok(), "shutting down twice is harmless");
    }
}

#[test]
fn nonsense_from_the_network_is_rejected_and_the_node_carries_on() {
    use raft_core::{Index, Message, MessageBody, NodeId};
    let (cluster, lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"a".to_vec()).unwrap();
    let follower = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    let term = cluster.node(follower).unwrap().status().unwrap().term;
    let forged = [
        // A sender that is not a member.
        Message {
            from: NodeId::new(99).unwrap(),
            to: follower,
            term,
            body: MessageBody::Heartbeat {
                commit: Index(1),
                read_round: 0,
            },
        },
        // The leader's id with a commit index far past the follower's log (etcd's raft and
        // raft-rs panic on this one).
        Message {
            from: leader,
            to: follower,
            term,
            body: MessageBody::Heartbeat {
                commit: Index(1_000_000),
                read_round: 0,
            },
        },
    ];
    for m in forged {
        cluster.network().inject(m).unwrap();
    }
    let node = cluster.node(follower).unwrap();
    cluster
        .wait_for(WAIT, "the follower to reject the forged messages", |_| {
            node.stats().is_ok_and(|s| s.rejected >= 2)
        })
        .unwrap();
    assert!(node.is_running());
    assert_eq!(cluster.propose(b"b".to_vec()).unwrap(), 2);
    wait_converged(&cluster, &lists, 2);
}

#[test]
fn membership_change_adds_a_node_promotes_it_and_removes_a_voter() {
    use raft_core::{Change, NodeId};

    let (mut cluster, lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    assert_eq!(cluster.propose(b"a".to_vec()).unwrap(), 1);
    let membership = |c: &raft_std::test_util::cluster::Cluster<_, _>| {
        let leader = c.wait_for_leader(WAIT).unwrap();
        c.node(leader).unwrap().status().unwrap().membership
    };

    // A fourth node joins as a learner and catches up.
    let four = NodeId::new(4).unwrap();
    cluster.add_node(four).unwrap();
    let with_learner = membership(&cluster)
        .with_changes(&[Change::AddLearner(four)])
        .unwrap();
    cluster.change_membership(&with_learner).unwrap();
    assert_eq!(cluster.propose(b"b".to_vec()).unwrap(), 2);
    cluster
        .wait_for(WAIT, "the learner to catch up", |_| lists.len(four) == 2)
        .unwrap();

    // Promoted to voter; then an original voter (not the leader) is removed. The second change
    // is retried by the cluster until the first has finished.
    let promoted = with_learner
        .with_changes(&[Change::AddVoter(four)])
        .unwrap();
    cluster.change_membership(&promoted).unwrap();
    let removed = *cluster
        .running()
        .iter()
        .find(|&&n| n != leader && n != four)
        .unwrap();
    let target = promoted.with_changes(&[Change::Remove(removed)]).unwrap();
    cluster.change_membership(&target).unwrap();
    cluster
        .wait_for(WAIT, "the leader to reach the target", |c| {
            membership(c) == target
        })
        .unwrap();
    assert!(!target.is_voter(removed) && target.is_voter(four));

    // Proposals keep committing without the removed node and with the new voter needed for a
    // majority: of the voters {leader, other, 4}, only the leader and node 4 stay up.
    let other = *target
        .voters()
        .iter()
        .find(|&&n| n != leader && n != four)
        .unwrap();
    cluster.crash(removed);
    cluster.crash(other);
    for i in 3..=5 {
        assert_eq!(cluster.propose(vec![i as u8]).unwrap(), i);
    }
    wait_converged(&cluster, &lists, 5);
}
