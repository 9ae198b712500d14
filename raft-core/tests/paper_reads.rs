//! ReadIndex (Raft thesis §6.4), one test per rule: a read is served at the commit index once a
//! quorum has confirmed a heartbeat round sent after it arrived, on the leader and, asked of the
//! leader, on followers (`Config::follower_reads`); how reads share rounds, how rounds are
//! numbered, the limit on pending reads, and reads aborted when leadership ends.
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use common::paper::{THREE, appends_to_2, follower_of_1, replicating_leader};
use common::{Harness, accepted, append, heartbeat, heartbeat_response, id, msg};
use raft_core::{
    Change, Index, Input, LogId, MessageBody, Outputs, Payload, ReadId, ReadResult, Refusal, Role,
    StepError, Term,
};

// ---- ReadIndex (Raft thesis §6.4) ------------------------------------------------------------

/// Follower reads (`Config::follower_reads`, etcd's `MsgReadIndex`): a follower asks its leader
/// for a read index and reports the read ready at the index the leader answers. An answer from
/// another node, or to another request, changes nothing.
#[test]
fn a_follower_read_is_ready_at_the_index_its_leader_answers() {
    let mut h = Harness::with_config(2, THREE, |c| c.follower_reads = true);
    h.recv(heartbeat(1, 2, 1, 0, 0));
    let out = h.step(Input::Read(ReadId(7)));
    assert!(out.reads.is_empty());
    let asked: Vec<(u64, u64)> = out
        .sends
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::ReadIndexRequest { request } => Some((m.to.get(), request)),
            _ => None,
        })
        .collect();
    let [(1, request)] = asked[..] else {
        panic!("one request, to the leader: {asked:?}");
    };
    let answer = |from, request, index| {
        msg(
            from,
            2,
            1,
            MessageBody::ReadIndexResponse { request, index },
        )
    };
    assert!(h.recv(answer(3, request, Some(Index(5)))).reads.is_empty());
    let other = request.wrapping_add(1);
    assert!(h.recv(answer(1, other, Some(Index(5)))).reads.is_empty());
    let out = h.recv(answer(1, request, Some(Index(5))));
    assert_eq!(
        out.reads,
        [ReadResult::Ready {
            id: ReadId(7),
            index: Index(5)
        }]
    );
    assert!(
        h.recv(answer(1, request, Some(Index(5)))).reads.is_empty(),
        "answered once"
    );
}

/// A follower read waits for the leader it asked, in the term it asked in: refused by it, or
/// overtaken by a new leader, it is aborted (the adapter retries). Without follower reads a
/// follower refuses reads, for the adapter to forward.
#[test]
fn a_follower_read_is_aborted_when_refused_or_when_the_leader_changes() {
    let mut h = Harness::with_config(2, THREE, |c| c.follower_reads = true);
    h.recv(heartbeat(1, 2, 1, 0, 0));
    h.step(Input::Read(ReadId(7)));
    let second = h.step(Input::Read(ReadId(8)));
    let request = second
        .sends
        .iter()
        .find_map(|m| match m.body {
            MessageBody::ReadIndexRequest { request } => Some(request),
            _ => None,
        })
        .expect("asked the leader");
    let refused = MessageBody::ReadIndexResponse {
        request,
        index: None,
    };
    let out = h.recv(msg(1, 2, 1, refused));
    assert_eq!(out.reads, [ReadResult::Aborted { id: ReadId(8) }]);
    let out = h.recv(heartbeat(3, 2, 2, 0, 0));
    assert_eq!(out.reads, [ReadResult::Aborted { id: ReadId(7) }]);
    assert_eq!(
        h.node.stats().reads_aborted,
        1,
        "the one the leader change aborted"
    );

    let mut off = follower_of_1(1, &[1]);
    let (result, _) = off.try_step(Input::Read(ReadId(1)));
    assert_eq!(
        result,
        Err(StepError::Refused(Refusal::NotLeader {
            leader: Some(id(1))
        }))
    );
}

/// The leader side of a follower read: the same rule as its own reads (thesis §6.4), answered
/// to the follower: the commit index of when the request arrived, once a quorum confirmed a
/// heartbeat round sent after it. A node that is not the leader refuses at once.
#[test]
fn a_leader_answers_a_forwarded_read_once_a_round_sent_after_it_is_confirmed() {
    let mut h = Harness::leader(1, THREE);
    let out = h.recv(msg(2, 1, 1, MessageBody::ReadIndexRequest { request: 4 }));
    let round = out
        .sends
        .iter()
        .find_map(|m| match m.body {
            MessageBody::HeartbeatResponse { .. } => None,
            MessageBody::Heartbeat { read_round, .. } => Some(read_round),
            _ => None,
        })
        .expect("a heartbeat round for the read");
    let answers = |out: &common::Out| -> Vec<(u64, MessageBody)> {
        out.sends
            .iter()
            .filter(|m| matches!(m.body, MessageBody::ReadIndexResponse { .. }))
            .map(|m| (m.to.get(), m.body.clone()))
            .collect()
    };
    assert_eq!(answers(&out), []);
    assert_eq!(answers(&h.recv(heartbeat_response(3, 1, 1, round - 1))), []);
    let out = h.recv(heartbeat_response(3, 1, 1, round));
    let ready = MessageBody::ReadIndexResponse {
        request: 4,
        index: Some(Index(1)),
    };
    assert_eq!(answers(&out), [(2, ready)]);

    let mut follower = follower_of_1(1, &[1]);
    let out = follower.recv(msg(3, 2, 1, MessageBody::ReadIndexRequest { request: 9 }));
    let refused = MessageBody::ReadIndexResponse {
        request: 9,
        index: None,
    };
    assert_eq!(answers(&out), [(3, refused)]);
}

/// Raft thesis §6.4: a read is served at the commit index once a quorum has answered a heartbeat
/// sent after the read arrived; answers to earlier heartbeats do not count.
#[test]
fn read_on_leader_is_ready_only_after_quorum_answers_heartbeat_sent_after_read() {
    let mut h = Harness::leader(1, THREE);
    h.tick(h.node.config().heartbeat_ticks); // a heartbeat before the read
    let out = h.step(Input::Read(ReadId(9)));
    assert!(out.reads.is_empty());
    let rounds: Vec<(u64, u64)> = out
        .sends
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat { read_round, .. } => Some((m.to.get(), read_round)),
            _ => None,
        })
        .collect();
    assert_eq!(rounds.len(), 2, "a heartbeat to each follower: {rounds:?}");
    let round = rounds[0].1;
    assert!(rounds.iter().all(|&(_, r)| r == round && r > 0));

    let out = h.recv(heartbeat_response(2, 1, 1, round - 1));
    assert!(
        out.reads.is_empty(),
        "confirmed by a heartbeat sent before the read"
    );
    let out = h.recv(heartbeat_response(3, 1, 1, round));
    assert_eq!(
        out.reads,
        [ReadResult::Ready {
            id: ReadId(9),
            index: Index(1)
        }]
    );
}

/// Reads stepped before the adapter takes the heartbeats of the newest round join that round
/// (they leave after every one of those reads arrived); a read stepped after they left starts
/// the next round, so a heartbeat sent before a read arrived never confirms it.
#[test]
fn reads_stepped_between_two_drains_share_one_heartbeat_round() {
    let mut h = Harness::leader(1, THREE);
    let mut out = Outputs::new();
    let heartbeats = |out: &mut Outputs| -> Vec<u64> {
        out.drain_sends()
            .filter_map(|m| match m.body {
                MessageBody::Heartbeat { read_round, .. } => Some(read_round),
                _ => None,
            })
            .collect()
    };
    for id in 1..=64 {
        h.node.step(Input::Read(ReadId(id)), &mut out).unwrap();
    }
    let first = heartbeats(&mut out);
    assert_eq!(
        first.len(),
        2,
        "one heartbeat per follower for 64 reads: {first:?}"
    );
    let round = first[0];
    assert!(first.iter().all(|&r| r == round));

    // The heartbeats have left: the next read starts the next round.
    h.node.step(Input::Read(ReadId(65)), &mut out).unwrap();
    let second = heartbeats(&mut out);
    assert_eq!(second, [round + 1, round + 1]);

    // One follower confirms the first round: with the leader that is a quorum of three, for
    // the 64 reads of that round only.
    h.node
        .step(Input::Message(heartbeat_response(2, 1, 1, round)), &mut out)
        .unwrap();
    let ready: Vec<ReadResult> = out.drain_reads().collect();
    assert_eq!(ready.len(), 64, "{ready:?}");
    assert!(
        ready
            .iter()
            .all(|r| matches!(r, ReadResult::Ready { id, .. } if id.0 <= 64))
    );
    h.node
        .step(
            Input::Message(heartbeat_response(3, 1, 1, round + 1)),
            &mut out,
        )
        .unwrap();
    let ready: Vec<ReadResult> = out.drain_reads().collect();
    assert!(
        matches!(ready.as_slice(), [ReadResult::Ready { id: ReadId(65), .. }]),
        "{ready:?}"
    );
}

/// Raft thesis §6.4 step 1: a new leader does not know the cluster's commit index until it has
/// committed an entry of its own term; a read arriving before that waits.
#[test]
fn read_before_leader_commits_entry_of_its_term_waits() {
    let mut h = Harness::new(1, THREE);
    h.elect();
    let out = h.step(Input::Read(ReadId(7)));
    assert!(out.reads.is_empty());
    assert!(
        out.sends.is_empty(),
        "a read round started before the first commit"
    );
    let mut out = h.recv(heartbeat_response(2, 1, 1, 0));
    out.merge(h.recv(heartbeat_response(3, 1, 1, 0)));
    assert!(out.reads.is_empty());

    h.persist();
    let out = h.recv(accepted(2, 1, 1, 1));
    assert_eq!(h.node.commit_index(), Index(1));
    assert!(out.reads.is_empty(), "ready without a heartbeat round");
    let round = out
        .sends
        .iter()
        .find_map(|m| match m.body {
            MessageBody::Heartbeat { read_round, .. } if read_round > 0 => Some(read_round),
            _ => None,
        })
        .expect("a heartbeat round for the waiting read");
    let out = h.recv(heartbeat_response(3, 1, 1, round));
    assert_eq!(
        out.reads,
        [ReadResult::Ready {
            id: ReadId(7),
            index: Index(1)
        }]
    );
}

/// Raft thesis §6.4: a follower answers a heartbeat echoing its ReadIndex round, which is how the
/// leader learns that a quorum confirmed its leadership after a read arrived.
#[test]
fn follower_answers_heartbeat_echoing_its_read_round() {
    let mut h = follower_of_1(1, &[1]);
    let out = h.recv(heartbeat(1, 2, 1, 1, 41));
    let response = msg(
        2,
        1,
        1,
        MessageBody::HeartbeatResponse {
            read_round: 41,
            writes_pending: false,
        },
    );
    assert_eq!(out.sends, [response]);
}

/// Raft thesis §6.4: only the leader serves reads; a follower refuses and names the leader.
#[test]
fn read_on_follower_is_refused_with_not_leader() {
    let mut h = follower_of_1(1, &[]);
    let (result, out) = h.try_step(Input::Read(ReadId(1)));
    assert_eq!(
        result,
        Err(StepError::Refused(Refusal::NotLeader {
            leader: Some(id(1))
        }))
    );
    assert!(out.is_empty());
}

/// Raft thesis §6.4: reads a leader could not confirm are aborted when it steps down.
#[test]
fn reads_are_aborted_when_leader_steps_down() {
    let mut h = Harness::leader(1, THREE);
    h.step(Input::Read(ReadId(1)));
    let out = h.recv(heartbeat(3, 1, 2, 0, 0));
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(out.reads, [ReadResult::Aborted { id: ReadId(1) }]);
    assert_eq!(h.node.stats().reads_aborted, 1);

    // A read still waiting for the leader's first commit too.
    let mut h = Harness::new(1, THREE);
    h.elect();
    h.step(Input::Read(ReadId(2)));
    let out = h.recv(append(2, 1, 2, LogId::ZERO, &[], 0));
    assert_eq!(out.reads, [ReadResult::Aborted { id: ReadId(2) }]);
}

/// `Config::max_pending_reads`: a leader holds at most that many reads unanswered; more are
/// refused with `Refusal::TooManyReads`.
#[test]
fn reads_beyond_max_pending_reads_are_refused() {
    let mut h = Harness::with_config(1, THREE, |c| c.max_pending_reads = 2);
    h.elect();
    h.persist();
    h.recv(accepted(2, 1, 1, 1));
    let mut round = 0;
    for read in 1..=2 {
        let (result, out) = h.try_step(Input::Read(ReadId(read)));
        assert_eq!(result, Ok(()), "read {read}");
        for m in &out.sends {
            if let MessageBody::Heartbeat { read_round, .. } = m.body {
                round = round.max(read_round);
            }
        }
    }
    let (result, _) = h.try_step(Input::Read(ReadId(3)));
    assert_eq!(result, Err(StepError::Refused(Refusal::TooManyReads)));
    // A quorum confirms both reads' rounds: they are answered, which makes room again.
    let out = h.recv(heartbeat_response(2, 1, 1, round));
    assert_eq!(out.reads.len(), 2, "{:?}", out.reads);
    let (result, _) = h.try_step(Input::Read(ReadId(3)));
    assert_eq!(result, Ok(()));
}

/// ReadIndex rounds: a node numbers its heartbeat rounds on from its previous leadership's, so
/// a round number is never reused by the same node (`ReadIndex::continuing_after`).
#[test]
fn heartbeat_rounds_continue_from_the_previous_leadership() {
    fn rounds(out: &common::Out) -> Vec<u64> {
        out.sends
            .iter()
            .filter_map(|m| match m.body {
                MessageBody::Heartbeat { read_round, .. } => Some(read_round),
                _ => None,
            })
            .collect()
    }
    let mut h = Harness::leader(1, THREE);
    let mut first = rounds(&h.tick(h.node.config().heartbeat_ticks * 2));
    first.sort_unstable();
    let last = *first.last().expect("heartbeats");
    assert!(last > 0);
    // Deposed by 2 in term 2, then elected again in term 3.
    h.recv(heartbeat(2, 1, 2, 1, 0));
    assert_eq!(h.node.role(), Role::Follower);
    h.elect();
    assert_eq!(h.node.term(), Term(3));
    let out = h.tick(h.node.config().heartbeat_ticks);
    let next = rounds(&out);
    assert!(!next.is_empty());
    assert!(
        next.iter().all(|&r| r > last),
        "rounds {next:?} after {last}"
    );
}

/// Raft thesis §6.4: reads that arrived before the leader's first commit of its term go out in
/// a heartbeat round once it commits; a later commit, with no read waiting, sends no heartbeat
/// (followers learn it from AppendEntries).
#[test]
fn a_commit_sends_heartbeats_only_for_reads_waiting_for_it() {
    fn heartbeats(out: &common::Out) -> usize {
        out.sends
            .iter()
            .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
            .count()
    }
    let mut h = Harness::new(1, THREE);
    h.elect();
    h.persist();
    h.step(Input::Read(ReadId(1)));
    let out = h.recv(accepted(2, 1, 1, 1));
    assert_eq!(heartbeats(&out), 2, "the waiting read's round");

    let mut h = replicating_leader(|_| {});
    h.step(Input::Propose(Payload::new(b"a")));
    h.persist();
    let out = h.recv(accepted(2, 1, 1, 2));
    assert_eq!(h.node.commit_index(), Index(2));
    assert_eq!(heartbeats(&out), 0, "{:?}", out.sends);
}

/// ReadIndex (`read_index`): reads stepped between two drains share one heartbeat round, but
/// other messages waiting in the sends lane (appends) are no heartbeats: a read arriving with
/// only those queued starts a round.
#[test]
fn reads_between_drains_share_one_round_that_queued_appends_do_not_start() {
    fn heartbeats(sends: &[raft_core::Message]) -> Vec<(u64, u64)> {
        sends
            .iter()
            .filter_map(|m| match m.body {
                MessageBody::Heartbeat { read_round, .. } => Some((m.to.get(), read_round)),
                _ => None,
            })
            .collect()
    }
    let mut h = replicating_leader(|_| {});
    let mut out = Outputs::new();
    h.node
        .propose(Payload::new(b"a"), &mut out)
        .expect("leader");
    assert_eq!(appends_to_2(out.sends()), [vec![2]]);
    assert_eq!(out.sends().len(), 2, "an append to each follower");
    h.node
        .step(Input::Read(ReadId(1)), &mut out)
        .expect("leader");
    let round = match heartbeats(out.sends()).as_slice() {
        [(2, r), (3, s)] if r == s => *r,
        other => panic!("not one round to both followers: {other:?}"),
    };
    h.node
        .step(Input::Read(ReadId(2)), &mut out)
        .expect("leader");
    assert_eq!(heartbeats(out.sends()), [(2, round), (3, round)], "joined");
    let _ = out.drain_sends();
    let out = h.recv(heartbeat_response(2, 1, 1, round));
    assert_eq!(
        out.reads,
        [
            ReadResult::Ready {
                id: ReadId(1),
                index: Index(1)
            },
            ReadResult::Ready {
                id: ReadId(2),
                index: Index(1)
            }
        ]
    );
}

/// `Stats::reads_aborted` counts every read aborted when leadership ends, those still waiting
/// for the leader's first commit included.
#[test]
fn reads_waiting_for_the_first_commit_count_as_aborted() {
    let mut h = Harness::new(1, THREE);
    h.elect();
    h.step(Input::Read(ReadId(1)));
    h.step(Input::Read(ReadId(2)));
    let out = h.recv(append(2, 1, 2, LogId::ZERO, &[], 0));
    assert_eq!(out.reads.len(), 2);
    assert_eq!(h.node.stats().reads_aborted, 2);
}

/// ReadIndex rounds (`read_index`): a read that cannot join a round of unsent heartbeats starts
/// the next round, even at a lone voter, which has no one to send heartbeats to (and confirms
/// the read at once): its later heartbeats, once it has a peer, are numbered one round further
/// on than those of the same node without the read.
#[test]
fn a_lone_voters_read_is_a_round_of_its_own() {
    fn heartbeat_round(with_read: bool) -> u64 {
        let mut h = Harness::new(1, &[1]);
        h.elect();
        h.persist();
        assert_eq!(h.node.commit_index(), Index(1));
        if with_read {
            let out = h.step(Input::Read(ReadId(1)));
            assert_eq!(
                out.reads,
                [ReadResult::Ready {
                    id: ReadId(1),
                    index: Index(1)
                }]
            );
        }
        let target = h
            .node
            .membership()
            .with_changes(&[Change::AddLearner(id(2))])
            .expect("valid");
        h.step(Input::ChangeMembership(Box::new(target)));
        let out = h.tick(h.node.config().heartbeat_ticks);
        let rounds: Vec<u64> = out
            .sends
            .iter()
            .filter_map(|m| match m.body {
                MessageBody::Heartbeat { read_round, .. } => Some(read_round),
                _ => None,
            })
            .collect();
        match rounds.as_slice() {
            [r] => *r,
            other => panic!("one heartbeat to the learner, not {other:?}"),
        }
    }
    assert_eq!(heartbeat_round(true), heartbeat_round(false) + 1);
}
