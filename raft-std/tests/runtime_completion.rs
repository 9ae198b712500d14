//! Requests that complete by calling back: every request completes exactly once, with its
//! result, at its deadline, or when the node stops; the outcome it reports is the true one.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Answer, Query, WAIT, cluster};
use raft_std::client::{Completion, Outcome, RequestError, Uncertainty};

#[test]
fn a_completion_is_called_from_the_node_thread_with_the_result() {
    let (cluster, _lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let node = cluster.node(leader).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..10_u8 {
        let tx = tx.clone();
        node.propose_with(
            vec![i],
            WAIT,
            Completion::new(move |result| {
                let thread = std::thread::current().name().map(str::to_owned);
                tx.send((i, result, thread)).unwrap();
            }),
        );
    }
    let mut answers: Vec<(u8, usize)> = (0..10)
        .map(|_| {
            let (i, result, thread) = rx.recv_timeout(WAIT).unwrap();
            assert_eq!(thread.as_deref(), Some(&*format!("raft-node-{leader}")));
            (i, result.unwrap())
        })
        .collect();
    answers.sort_unstable();
    let lens: Vec<usize> = answers.iter().map(|a| a.1).collect();
    assert_eq!(
        lens,
        (1..=10).collect::<Vec<_>>(),
        "each applied once, in order"
    );
    let (done, rx) = Completion::channel();
    node.read_with(Query::Len, WAIT, done);
    assert!(matches!(
        rx.recv_timeout(WAIT).unwrap(),
        Ok(Answer::Len(10))
    ));
}

#[test]
fn a_proposal_past_its_deadline_has_an_unknown_outcome_and_a_read_times_out() {
    let (mut cluster, lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"a".to_vec()).unwrap();
    let node = cluster.node(leader).unwrap().clone();
    for id in cluster.running() {
        if id != leader {
            cluster.crash(id);
        }
    }
    // Alone, the leader appends the proposal but cannot commit it.
    let (done, proposal) = Completion::channel();
    let started = Instant::now();
    node.propose_with(b"b".to_vec(), Duration::from_millis(300), done);
    let result = proposal.recv_timeout(WAIT).unwrap();
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(RequestError::Uncertain(Uncertainty::TimedOut))),
        "{result:?}"
    );
    assert_eq!(result.unwrap_err().outcome(), Outcome::Unknown);
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "completed at its deadline, not before: {waited:?}"
    );
    // A read cannot be confirmed: it times out (or is aborted once the leader steps down),
    // changing nothing.
    let (done, read) = Completion::channel();
    node.read_with(Query::Len, Duration::from_millis(50), done);
    let result = read.recv_timeout(WAIT).unwrap();
    assert!(
        matches!(
            result,
            Err(RequestError::Timeout
                | RequestError::LeaderChanged
                | RequestError::NotLeader { .. })
        ),
        "{result:?}"
    );
    assert_eq!(result.unwrap_err().outcome(), Outcome::NotApplied);
    assert_eq!(lists.len(leader), 1, "b was never applied");
}

#[test]
fn stopping_completes_every_waiting_request_with_the_truth() {
    let (mut cluster, _lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let node = cluster.node(leader).unwrap().clone();
    for id in cluster.running() {
        if id != leader {
            cluster.crash(id);
        }
    }
    let (done, proposal) = Completion::channel();
    node.propose_with(b"b".to_vec(), WAIT, done);
    let (done, read) = Completion::channel();
    node.read_with(Query::Len, WAIT, done);
    // Let the node step both before it stops.
    std::thread::sleep(Duration::from_millis(20));
    node.shutdown().unwrap();
    let p = proposal.recv_timeout(WAIT).unwrap();
    assert!(
        matches!(p, Err(RequestError::Uncertain(Uncertainty::NodeStopped(_)))),
        "an appended proposal's outcome is unknown: {p:?}"
    );
    let r = read.recv_timeout(WAIT).unwrap();
    assert!(
        matches!(
            r,
            Err(RequestError::Stopped(_) | RequestError::LeaderChanged)
        ),
        "a read changed nothing: {r:?}"
    );
    // After the stop, a request is completed at once, on the caller's thread, as not applied.
    let (done, late) = Completion::channel();
    node.propose_with(b"c".to_vec(), WAIT, done);
    let late = late
        .try_recv()
        .expect("completed before propose_with returned");
    assert!(matches!(late, Err(RequestError::Stopped(_))), "{late:?}");
    assert_eq!(late.unwrap_err().outcome(), Outcome::NotApplied);
}

#[test]
fn observed_follows_the_leader_without_a_call() {
    let (cluster, _lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"a".to_vec()).unwrap();
    cluster
        .wait_for(WAIT, "every node to know the leader", |c| {
            c.running()
                .iter()
                .all(|&id| c.node(id).unwrap().observed().leader == Some(leader))
        })
        .unwrap();
    let seen = cluster.node(leader).unwrap().observed();
    assert_eq!(seen.role, raft_core::Role::Leader);
    // Published after the round that applied it, which may end just after the answer.
    cluster
        .wait_for(WAIT, "the applied index to be published", |c| {
            c.node(leader).unwrap().observed().applied.0 >= 2
        })
        .unwrap();
}

#[test]
fn a_read_sees_every_write_the_node_accepted_before_it() {
    // Without waiting for the write's answer (a pipelining client): the read still sees it.
    let (cluster, _lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    let node = cluster.node(leader).unwrap();
    let mut reads = Vec::new();
    for i in 1..=50_usize {
        let (done, _write) = Completion::channel();
        node.propose_with(vec![0], WAIT, done);
        let (done, read) = Completion::channel();
        node.read_with(Query::Len, WAIT, done);
        reads.push((i, read));
    }
    for (i, read) in reads {
        match read.recv_timeout(WAIT).unwrap() {
            Ok(Answer::Len(len)) => assert!(len >= i, "read {i} saw only {len} writes"),
            other => panic!("read {i}: {other:?}"),
        }
    }
}

#[test]
fn a_local_read_answers_from_the_node_itself() {
    let (mut cluster, _lists) = cluster(3, |_| {});
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"a".to_vec()).unwrap();
    let follower = *cluster.running().iter().find(|&&n| n != leader).unwrap();
    cluster
        .wait_for(WAIT, "the follower to apply", |c| {
            matches!(
                c.node(follower).unwrap().read_local(Query::Len),
                Ok(Answer::Len(1))
            )
        })
        .unwrap();
    // A follower cut off from the leader still answers from what it has (a stale read).
    cluster.isolate(follower);
    cluster.propose(b"b".to_vec()).unwrap();
    let node = cluster.node(follower).unwrap();
    assert!(matches!(node.read_local(Query::Len), Ok(Answer::Len(1))));
    assert!(matches!(
        node.read_timeout(Query::Len, Duration::from_millis(300)),
        Err(RequestError::NotLeader { .. } | RequestError::Timeout)
    ));
    cluster.heal();
    cluster.crash(follower);
}

#[test]
fn reads_that_arrive_together_share_one_read_index_round() {
    // With room for a single round in the core, 200 reads queued together are all served: the
    // node thread takes them in one batch and starts one round (one heartbeat to each follower)
    // for all of them. To queue them together, the thread is held in a completion meanwhile.
    let (cluster, _lists) = cluster(3, |o| o.runtime.raft.max_pending_reads = 1);
    let leader = cluster.wait_for_leader(WAIT).unwrap();
    cluster.propose(b"a".to_vec()).unwrap();
    let node = cluster.node(leader).unwrap();
    let (held, release) = mpsc::channel::<()>();
    node.status_with(Completion::new(move |_| {
        let _ = release.recv_timeout(WAIT);
    }));
    let reads: Vec<_> = (0..200)
        .map(|_| {
            let (done, rx) = Completion::channel();
            node.read_with(Query::Len, WAIT, done);
            rx
        })
        .collect();
    held.send(()).unwrap();
    for rx in reads {
        let answer = rx.recv_timeout(WAIT).unwrap();
        assert!(matches!(answer, Ok(Answer::Len(1))), "{answer:?}");
    }
    assert_eq!(node.stats().unwrap().refused, 0, "no round was refused");
}
