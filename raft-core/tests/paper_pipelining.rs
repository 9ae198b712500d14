//! The leader's replication pipeline, beyond the paper's one AppendEntries at a time (Raft §5.3):
//! flow control (`max_inflight_msgs`, `max_inflight_bytes`, `max_msg_bytes`), proposals merged
//! into a queued message, resends after rejections and losses while pipelining, probing, and
//! commit advances riding on queued appends.
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use common::paper::{FIVE, THREE, appends_to_2, replicating_leader};
use common::{Harness, accepted, append_response, heartbeat_response, id};
use raft_core::{
    AppendOutcome, HardState, Index, Input, LogId, MessageBody, Outputs, Payload, Term,
};

// ---- the leader's pipeline: flow control, resends, merged messages, commit broadcasts --------

/// `Config::max_inflight_msgs`: at most that many AppendEntries with entries are unacknowledged
/// per follower; an acknowledgement makes room and the pipeline refills. (Likewise
/// `max_inflight_bytes`: one message over it is alone in flight.)
#[test]
fn a_follower_has_at_most_max_inflight_msgs_appends_in_flight() {
    let mut h = replicating_leader(|c| c.max_inflight_msgs = 2);
    let out = h.step(Input::Propose(Payload::new(b"a")));
    assert_eq!(appends_to_2(&out.sends), [vec![2]]);
    let out = h.step(Input::Propose(Payload::new(b"b")));
    assert_eq!(appends_to_2(&out.sends), [vec![3]]);
    let out = h.step(Input::Propose(Payload::new(b"c")));
    assert_eq!(appends_to_2(&out.sends), Vec::<Vec<u64>>::new(), "paused");
    let out = h.recv(accepted(2, 1, 1, 2));
    assert_eq!(appends_to_2(&out.sends), [vec![4]]);
    // The acknowledgement of 2 freed the message ending at 2 only: 3 and 4 are in flight.
    let out = h.step(Input::Propose(Payload::new(b"d")));
    assert_eq!(appends_to_2(&out.sends), Vec::<Vec<u64>>::new(), "paused");

    let mut h = replicating_leader(|c| c.max_inflight_bytes = 1);
    let out = h.step(Input::Propose(Payload::new(b"a")));
    assert_eq!(appends_to_2(&out.sends), [vec![2]]);
    let out = h.step(Input::Propose(Payload::new(b"b")));
    assert_eq!(appends_to_2(&out.sends), Vec::<Vec<u64>>::new(), "paused");
    let out = h.recv(accepted(2, 1, 1, 2));
    assert_eq!(appends_to_2(&out.sends), [vec![3]]);
}

/// Proposals stepped between two drains of the sends lane leave as one AppendEntries per
/// follower (`send_append`), and that message counts once towards `max_inflight_msgs`; a
/// proposal after the drain is a message of its own, counted apart.
#[test]
fn proposals_merged_into_one_message_count_as_one_in_flight() {
    let mut h = replicating_leader(|c| c.max_inflight_msgs = 2);
    let mut out = Outputs::new();
    for data in [b"a", b"b"] {
        h.node
            .propose(Payload::new(data), &mut out)
            .expect("leader");
    }
    let sends: Vec<_> = out.drain_sends().collect();
    assert_eq!(appends_to_2(&sends), [vec![2, 3]], "merged");
    h.node
        .propose(Payload::new(b"c"), &mut out)
        .expect("leader");
    let sends: Vec<_> = out.drain_sends().collect();
    assert_eq!(
        appends_to_2(&sends),
        [vec![4]],
        "one message in flight: room for one more"
    );
    h.node
        .propose(Payload::new(b"d"), &mut out)
        .expect("leader");
    let sends: Vec<_> = out.drain_sends().collect();
    assert_eq!(
        appends_to_2(&sends),
        Vec::<Vec<u64>>::new(),
        "two in flight: paused"
    );
    assert_eq!(h.node.check_invariants(), Ok(()));
}

/// `Config::max_msg_bytes` bounds a merged message too: a proposal that would take the queued
/// AppendEntries past it goes in a message of its own. (Each entry here is 17 bytes: a 1-byte
/// payload and about 16 on the wire, `Entry::size_estimate`.)
#[test]
fn merging_into_a_queued_message_respects_max_msg_bytes() {
    let mut h = replicating_leader(|c| c.max_msg_bytes = 40);
    let mut out = Outputs::new();
    for data in [b"a", b"b", b"c"] {
        h.node
            .propose(Payload::new(data), &mut out)
            .expect("leader");
    }
    let sends: Vec<_> = out.drain_sends().collect();
    assert_eq!(appends_to_2(&sends), [vec![2, 3], vec![4]]);
}

/// The same bound when the queued AppendEntries was sent while the follower was probing (so
/// flow control had not counted it) and the follower has since moved to replicating: the merged
/// message holds its earlier entries too. A regression: the leader once counted only the merged
/// entries and sent 84 bytes under a limit of 70.
#[test]
fn merging_into_a_message_queued_while_probing_respects_max_msg_bytes() {
    use raft_core::ReplicationState;
    let limit = 70;
    let mut h = Harness::with_config(1, THREE, |c| c.max_msg_bytes = limit);
    h.elect();
    h.persist();
    h.recv(accepted(2, 1, 1, 1));
    // 3 has not answered its first probe: the proposals wait for it.
    h.step(Input::Propose(Payload::new(b"a")));
    h.step(Input::Propose(Payload::new(b"b")));
    h.persist();
    // 3 answers a heartbeat: the leader probes it with entries 1 to 3, and the message stays
    // in the sends lane while 3 acknowledges them (the answer to an earlier copy).
    let mut out = Outputs::new();
    h.node
        .step(Input::Message(heartbeat_response(3, 1, 1, 0)), &mut out)
        .expect("heartbeat response");
    h.node
        .step(Input::Message(accepted(3, 1, 1, 3)), &mut out)
        .expect("acknowledgement");
    assert_eq!(h.node.status().peers[1].state, ReplicationState::Replicate);
    for data in [b"c", b"d", b"e"] {
        h.node
            .propose(Payload::new(data), &mut out)
            .expect("leader");
    }
    let sizes: Vec<u64> = out
        .drain_sends()
        .filter(|m| m.to == id(3))
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries { entries, .. } => {
                Some(entries.iter().map(|e| e.size_estimate()).sum())
            }
            _ => None,
        })
        .collect();
    assert!(sizes.len() > 1, "{sizes:?}");
    assert!(sizes.iter().all(|&b| b <= limit), "{sizes:?} over {limit}");
}

/// A conflict hint without a term (term 0, as from a follower that names only where its log
/// ends) is taken at its index: the leader probes just after it, not from the start of its log.
#[test]
fn a_conflict_hint_without_a_term_is_taken_at_its_index() {
    let state = raft_core::Restored {
        hard_state: HardState {
            term: Term(1),
            vote: None,
        },
        snapshot: raft_core::SnapshotMeta {
            last: LogId::ZERO,
            membership: common::membership(THREE),
        },
        entries: common::entries_from(1, &[1, 1, 1, 1, 1]),
        applied: Index(0),
    };
    let mut h = Harness::restored(1, state);
    let out = h.elect();
    h.persist();
    let probe = out
        .appends()
        .into_iter()
        .find(|a| a.0 == 2)
        .expect("a probe to 2");
    let conflict = AppendOutcome::Conflict {
        rejected: probe.1.index,
        hint: LogId::new(0, 3),
    };
    let out = h.recv(append_response(2, 1, h.node.term().0, conflict));
    let prevs: Vec<LogId> = out
        .appends()
        .iter()
        .filter(|a| a.0 == 2)
        .map(|a| a.1)
        .collect();
    assert_eq!(prevs, [LogId::new(1, 3)]);
}

/// A pipelining leader with entries 2 and 3 in flight to 2, refused after 2 with `hint`: its
/// replication state for 2 afterwards, and the entries of each append it sent 2.
fn pipelining_leader_refused_after_2(hint: LogId) -> (raft_core::ReplicationState, Vec<Vec<u64>>) {
    let mut h = replicating_leader(|_| {});
    h.step(Input::Propose(Payload::new(b"a")));
    h.step(Input::Propose(Payload::new(b"b")));
    // A stale answer to the first probe (after 0), which 2 acknowledged past long ago.
    let stale = AppendOutcome::Conflict {
        rejected: Index(0),
        hint: LogId::ZERO,
    };
    let out = h.recv(append_response(2, 1, 1, stale));
    assert!(out.sends.is_empty(), "{:?}", out.sends);
    assert_eq!(
        h.node.status().peers[0].state,
        raft_core::ReplicationState::Replicate
    );
    let conflict = AppendOutcome::Conflict {
        rejected: Index(2),
        hint,
    };
    let out = h.recv(append_response(2, 1, 1, conflict));
    (h.node.status().peers[0].state, appends_to_2(&out.sends))
}

/// Raft §5.3: a rejection makes the leader send again from the follower's hint; a rejection of
/// a request the follower has since acknowledged past (a stale answer) changes nothing. While
/// pipelining, a hint that agrees with the leader's log means only that a message is missing
/// (lost, or overtaken by a later one): the leader resends from there and stays in Replicate.
#[test]
fn a_pipelining_leader_resends_after_a_rejection_and_ignores_a_stale_one() {
    // 2 lost the message with entry 2, so it rejects the one after 2.
    let (state, appends) = pipelining_leader_refused_after_2(LogId::new(1, 1));
    assert_eq!(state, raft_core::ReplicationState::Replicate);
    assert_eq!(appends, [vec![2, 3]]);
}

/// A hint that does not agree with the leader's log (here one that names no term) is a
/// divergence: the pipelining leader falls back to probing.
#[test]
fn a_pipelining_leader_probes_on_a_hint_its_log_does_not_hold() {
    let (state, appends) = pipelining_leader_refused_after_2(LogId::new(0, 1));
    assert_eq!(state, raft_core::ReplicationState::Probe);
    assert_eq!(appends, [vec![2, 3]]);
}

/// Four proposals, each sent alone; the follower meets the last two before the first two, so it
/// refuses them. The leader resends once, from the follower's hint, and sends nothing more: the
/// second refusal is of a message sent before that resend, and the acceptances of the first two
/// are not a reason to send their successors again (before, the leader probed, then resent 3 to
/// 5 once the first acceptance switched it back to pipelining: six appends where five do).
#[test]
fn a_burst_delivered_out_of_order_is_resent_once() {
    let mut h = replicating_leader(|_| {});
    let mut sent = Vec::new();
    for data in [b"a", b"b", b"c", b"d"] {
        sent.extend(appends_to_2(
            &h.step(Input::Propose(Payload::new(data))).sends,
        ));
    }
    assert_eq!(sent, [vec![2], vec![3], vec![4], vec![5]]);
    h.persist();
    let refused = |rejected| AppendOutcome::Conflict {
        rejected: Index(rejected),
        hint: LogId::new(1, 1),
    };
    let out = h.recv(append_response(2, 1, 1, refused(4)));
    assert_eq!(appends_to_2(&out.sends), [vec![2, 3, 4, 5]]);
    // The first message's acceptance comes between the two refusals: it is not past what was
    // resent, so the second refusal is still answered by the resend.
    let mut more = Vec::new();
    more.extend(appends_to_2(&h.recv(accepted(2, 1, 1, 2)).sends));
    more.extend(appends_to_2(
        &h.recv(append_response(2, 1, 1, refused(3))).sends,
    ));
    for index in [3, 5] {
        more.extend(appends_to_2(&h.recv(accepted(2, 1, 1, index)).sends));
    }
    // Commit advances go out (with no entries); no entry goes out again.
    more.retain(|entries| !entries.is_empty());
    assert_eq!(more, Vec::<Vec<u64>>::new());
    assert_eq!(h.node.status().peers[0].match_index, Index(5));
}

/// If the resend after a refusal is lost too, the heartbeats find the stall: the second
/// heartbeat response without progress makes the leader ask, with an empty append after the
/// last entry sent, and the follower's refusal of it makes the leader resend.
#[test]
fn a_lost_resend_is_found_by_the_heartbeats() {
    use raft_core::ReplicationState;
    let mut h = replicating_leader(|_| {});
    for data in [b"a", b"b"] {
        h.step(Input::Propose(Payload::new(data)));
    }
    h.persist();
    let refused = |rejected| AppendOutcome::Conflict {
        rejected: Index(rejected),
        hint: LogId::new(1, 1),
    };
    let lost = h.recv(append_response(2, 1, 1, refused(2)));
    assert_eq!(appends_to_2(&lost.sends), [vec![2, 3]]);
    let first = h.recv(heartbeat_response(2, 1, 1, 0));
    assert_eq!(appends_to_2(&first.sends), Vec::<Vec<u64>>::new());
    let second = h.recv(heartbeat_response(2, 1, 1, 0));
    let asked: Vec<LogId> = second
        .appends()
        .into_iter()
        .filter(|a| a.0 == 2 && a.2.is_empty())
        .map(|a| a.1)
        .collect();
    assert_eq!(asked, [LogId::new(1, 3)]);
    let out = h.recv(append_response(2, 1, 1, refused(3)));
    assert_eq!(h.node.status().peers[0].state, ReplicationState::Replicate);
    assert_eq!(appends_to_2(&out.sends), [vec![2, 3]]);
}

/// `send_append`: a proposal's entries join the AppendEntries to the same follower still waiting
/// in the sends lane, even with messages to the other followers queued after it (here, in a
/// cluster of five, the re-probes of three stalled followers).
#[test]
fn a_proposal_joins_the_queued_append_behind_messages_to_other_followers() {
    let mut h = Harness::new(1, FIVE);
    h.elect();
    h.persist();
    for p in 2..=5 {
        h.recv(accepted(p, 1, 1, 1));
    }
    let mut out = Outputs::new();
    h.node
        .propose(Payload::new(b"a"), &mut out)
        .expect("leader");
    for p in 3..=5 {
        // The second heartbeat response with no progress since the first: stalled.
        for _ in 0..2 {
            let m = heartbeat_response(p, 1, 1, 0);
            h.node.step(Input::Message(m), &mut out).expect("valid");
        }
    }
    let to_others = out.sends().iter().filter(|m| m.to != id(2)).count();
    assert_eq!(to_others, 6, "{:?}", out.sends());
    h.node
        .propose(Payload::new(b"b"), &mut out)
        .expect("leader");
    assert_eq!(appends_to_2(out.sends()), [vec![2, 3]]);
}

/// `ReplicationState::Probe`: one message at a time, an empty one (carrying only the commit
/// index to a follower that holds the whole log) included: until the follower answers it, new
/// entries wait.
#[test]
fn an_empty_probe_is_one_outstanding_message_too() {
    use raft_core::ReplicationState;
    let mut h = replicating_leader(|_| {});
    h.step(Input::Propose(Payload::new(b"a")));
    h.recv(accepted(3, 1, 1, 2));
    assert_eq!(
        h.node.commit_index(),
        Index(1),
        "the leader's write is not durable"
    );
    // 3, holding the whole log, is probed again.
    h.step(Input::Unreachable(id(3)));
    assert_eq!(h.node.status().peers[1].state, ReplicationState::Probe);
    // 2's acknowledgement commits entry 2: the commit goes to 3 in an empty probe.
    let out = h.recv(accepted(2, 1, 1, 2));
    assert_eq!(h.node.commit_index(), Index(2));
    let to_3: Vec<_> = out.appends().into_iter().filter(|a| a.0 == 3).collect();
    assert_eq!(to_3, [(3, LogId::new(1, 2), vec![], 2)]);
    // A new entry waits for 3's answer; 2, pipelining, gets it at once.
    let out = h.step(Input::Propose(Payload::new(b"b")));
    let to: Vec<u64> = out.appends().into_iter().map(|a| a.0).collect();
    assert_eq!(to, [2]);
    let out = h.recv(accepted(3, 1, 1, 2));
    let to_3: Vec<_> = out.appends().into_iter().filter(|a| a.0 == 3).collect();
    assert_eq!(to_3, [(3, LogId::new(1, 2), vec![LogId::new(1, 3)], 2)]);
}

/// A commit advance that finds a follower paused (its probe unanswered) is not lost: the answer
/// that unpauses it brings it the commit index at once, in a message of its own if no entry is
/// left to send (a commit notice, since it now holds everything), rather than at the next
/// heartbeat.
#[test]
fn a_follower_paused_when_the_commit_advanced_hears_of_it_when_unpaused() {
    let mut h = Harness::new(1, THREE);
    h.elect();
    h.persist();
    // 2 acknowledges the leader's empty entry: committed, while 3's probe is unanswered.
    h.recv(accepted(2, 1, 1, 1));
    assert_eq!(h.node.commit_index(), Index(1));
    let out = h.recv(accepted(3, 1, 1, 1));
    assert_eq!(out.sent_to(3).len(), 1, "{:?}", out.sends);
    assert_eq!(out.commit_notices(), [(3, 1)]);
}

/// `broadcast_commit`: a second commit advance between two drains goes out in the message to the
/// follower still waiting in the sends lane (a commit notice: it carries the newest commit index),
/// not in another message. Here the leader's own writes complete one by one, after follower 2
/// acknowledged everything (follower 3, its entries in flight, hears with its acknowledgement).
#[test]
fn a_second_commit_advance_rides_on_the_queued_commit_notice() {
    let mut h = replicating_leader(|_| {});
    let writes = propose_one_write_each(&mut h, 2);
    h.recv(accepted(2, 1, 1, 3));
    assert_eq!(
        h.node.commit_index(),
        Index(1),
        "the leader's writes are pending"
    );
    let mut out = Outputs::new();
    for (w, index) in writes.into_iter().zip([2, 3]) {
        h.node.step(Input::Persisted(w), &mut out).expect("valid");
        assert_eq!(h.node.commit_index(), Index(index));
    }
    let bodies: Vec<_> = out
        .sends()
        .iter()
        .map(|m| (m.to.get(), m.body.clone()))
        .collect();
    assert_eq!(
        bodies,
        [(
            2,
            MessageBody::Commit {
                commit: LogId::new(1, 3),
            }
        )]
    );
    // Nothing was left for the next tick.
    let _ = out.drain_sends();
    let out = h.tick(1);
    assert_eq!(out.sent_to(2), Vec::<&raft_core::Message>::new());
}

/// One write per proposal, each drained from the lane before the next: their ids.
fn propose_one_write_each(h: &mut Harness, n: usize) -> Vec<raft_core::WriteId> {
    let writes: Vec<_> = (0..n)
        .flat_map(|_| h.step(Input::Propose(Payload::new(b"x"))).writes)
        .map(|w| w.id)
        .collect();
    assert_eq!(writes.len(), n);
    writes
}

/// A commit advance finds follower 2 with entries in flight and nothing new to send: rather than
/// an empty AppendEntries now (which would need an answer of its own), it is told with the
/// acknowledgement of those entries, in a commit notice. If that acknowledgement never comes,
/// the next tick sends the advance in an empty AppendEntries, whose answer says what arrived.
#[test]
fn a_commit_advance_waits_for_the_acknowledgement_in_flight() {
    for acknowledged in [true, false] {
        let mut h = replicating_leader(|_| {});
        h.step(Input::Propose(Payload::new(b"a")));
        h.persist();
        let out = h.recv(accepted(3, 1, 1, 2));
        assert_eq!(h.node.commit_index(), Index(2));
        assert_eq!(out.commit_notices(), [(3, 2)]);
        assert_eq!(out.sent_to(2).len(), 0, "{:?}", out.sends);
        if acknowledged {
            let out = h.recv(accepted(2, 1, 1, 2));
            assert_eq!(out.commit_notices(), [(2, 2)]);
            assert_eq!(out.sends.len(), 1, "{:?}", out.sends);
            let out = h.tick(1);
            assert_eq!(out.sent_to(2), Vec::<&raft_core::Message>::new());
        } else {
            let out = h.tick(1);
            assert_eq!(out.appends(), [(2, LogId::new(1, 2), vec![], 2)]);
        }
    }
}

/// `send_append` merges only into a queued AppendEntries that ends just before the entries to
/// send: here the one waiting (a re-probe after a rejection whose hint names no term) reaches
/// past where the follower, acknowledging, resumed; the leader sends what follows the
/// acknowledgement in a message of its own, and every message stays contiguous.
#[test]
fn entries_join_only_a_queued_append_ending_just_before_them() {
    let mut h = replicating_leader(|_| {});
    let mut out = Outputs::new();
    for data in [b"a", b"b"] {
        h.node
            .propose(Payload::new(data), &mut out)
            .expect("leader");
    }
    let conflict = AppendOutcome::Conflict {
        rejected: Index(2),
        hint: LogId::new(0, 1),
    };
    let m = append_response(2, 1, 1, conflict);
    h.node.step(Input::Message(m), &mut out).expect("valid");
    h.node
        .step(Input::Message(accepted(2, 1, 1, 2)), &mut out)
        .expect("valid");
    let sends: Vec<_> = out.drain_sends().collect();
    for m in &sends {
        if let MessageBody::AppendEntries { prev, entries, .. } = &m.body {
            let indexes: Vec<u64> = entries.iter().map(|e| e.id.index.0).collect();
            let expected: Vec<u64> = (prev.index.0 + 1..).take(entries.len()).collect();
            assert_eq!(indexes, expected, "{m:?}");
        }
    }
    assert_eq!(appends_to_2(&sends), [vec![2, 3], vec![2, 3], vec![3]]);
}

/// As above, in a cluster of five (followers 2 and 3 acknowledge everything, 4 and 5 nothing):
/// each follower's waiting commit notice carries the newest commit index, whatever was queued for
/// the others after it.
#[test]
fn a_second_commit_advance_rides_on_each_followers_queued_notice() {
    let mut h = Harness::new(1, FIVE);
    h.elect();
    h.persist();
    for p in 2..=5 {
        h.recv(accepted(p, 1, 1, 1));
    }
    let writes = propose_one_write_each(&mut h, 2);
    for p in [2, 3] {
        h.recv(accepted(p, 1, 1, 3));
    }
    let mut out = Outputs::new();
    for (w, index) in writes.into_iter().zip([2, 3]) {
        h.node.step(Input::Persisted(w), &mut out).expect("valid");
        assert_eq!(h.node.commit_index(), Index(index));
    }
    let commits: Vec<(u64, u64)> = out
        .sends()
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::Commit { commit } => Some((m.to.get(), commit.index.0)),
            _ => None,
        })
        .collect();
    assert_eq!(commits, [(2, 3), (3, 3)]);
    assert_eq!(out.sends().len(), 2);
    // 4 and 5 hear of it with their acknowledgements.
    for p in [4, 5] {
        let out = h.recv(accepted(p, 1, 1, 3));
        assert_eq!(out.commit_notices(), [(p, 3)], "{:?}", out.sends);
    }
}

/// A follower whose advance was held for its acknowledgement, and which then gets the commit
/// index another way (here a commit notice, when that acknowledgement itself advances the commit
/// index), is not told a second time.
#[test]
fn a_commit_advance_held_for_an_acknowledgement_goes_out_once() {
    let mut h = replicating_leader(|_| {});
    for _ in 0..2 {
        h.step(Input::Propose(Payload::new(b"x")));
        h.persist();
    }
    let out = h.recv(accepted(2, 1, 1, 2));
    assert_eq!(h.node.commit_index(), Index(2));
    assert_eq!(
        out.sent_to(2).len(),
        0,
        "entry 3 is still in flight: {:?}",
        out.sends
    );
    let out = h.recv(accepted(2, 1, 1, 3));
    assert_eq!(h.node.commit_index(), Index(3));
    let to_2: Vec<_> = out.sent_to(2).into_iter().map(|m| m.body.clone()).collect();
    assert_eq!(
        to_2,
        [MessageBody::Commit {
            commit: LogId::new(1, 3)
        }]
    );
}

/// A commit advance for a follower with an AppendEntries to it still in the sends lane goes out
/// in that message, whichever way the follower stands: here both followers have the new entry
/// queued, one of them also an earlier one unacknowledged.
#[test]
fn a_commit_advance_rides_on_a_queued_append_with_entries() {
    let mut h = replicating_leader(|_| {});
    h.step(Input::Propose(Payload::new(b"a")));
    h.persist();
    let mut out = Outputs::new();
    h.node
        .propose(Payload::new(b"b"), &mut out)
        .expect("leader");
    h.node
        .step(Input::Message(accepted(3, 1, 1, 2)), &mut out)
        .expect("valid");
    assert_eq!(h.node.commit_index(), Index(2));
    let sends: Vec<_> = out
        .sends()
        .iter()
        .map(|m| match &m.body {
            MessageBody::AppendEntries {
                prev,
                entries,
                commit,
            } => (m.to.get(), *prev, entries.len(), commit.0),
            other => panic!("only the two appends: {other:?}"),
        })
        .collect();
    assert_eq!(
        sends,
        [(2, LogId::new(1, 2), 1, 2), (3, LogId::new(1, 2), 1, 2)]
    );
}
