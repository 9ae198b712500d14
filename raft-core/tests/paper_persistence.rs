//! The core's own persistence contract as the adapter sees it (write ids, writes merged in the
//! writes lane, `Input::Persisted` and its misuse) and its validation of untrusted input:
//! messages that cannot come from a correct peer are rejected with typed errors and change
//! nothing, while requests from a leader outside the configuration are heard.
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use common::paper::{THREE, follower_of_1, install_snapshot};
use common::{
    Harness, accepted, append, heartbeat, heartbeat_response, id, restored, vote_request,
};
use raft_core::{
    AppendOutcome, Index, Input, LogId, MessageBody, Misuse, Outputs, Payload, Refusal, Reject,
    Role, StepError, Term,
};

// ---- the persistence contract ----------------------------------------------------------------

/// The persistence contract: acknowledging a write that was never issued is the adapter's bug,
/// reported as `Misuse::UnknownWrite`, and changes nothing.
#[test]
fn persisted_with_unknown_write_id_is_misuse() {
    // Write ids cannot be made up: borrow the second write id of another node.
    let mut other = Harness::new(1, THREE);
    other.recv(vote_request(2, 1, 1, LogId::ZERO));
    other.persist();
    other.recv(vote_request(2, 1, 2, LogId::ZERO));
    let foreign = other.unacked().expect("a second write");

    let mut h = Harness::new(1, THREE);
    h.recv(vote_request(2, 1, 1, LogId::ZERO));
    let issued = h.unacked().expect("a write");
    assert!(foreign > issued);

    let before = h.node.status();
    let (result, out) = h.try_step(Input::Persisted(foreign));
    assert_eq!(result, Err(StepError::Misuse(Misuse::UnknownWrite)));
    assert!(out.is_empty());
    assert_eq!(h.node.status(), before);
    assert_eq!(h.node.stats().rejected, 0, "misuse is not network input");

    // A node that issued no write at all.
    let mut fresh = Harness::new(2, THREE);
    let (result, _) = fresh.try_step(Input::Persisted(issued));
    assert_eq!(result, Err(StepError::Misuse(Misuse::UnknownWrite)));
}

/// The persistence contract: an adapter that leaves writes in the lane may receive them merged
/// into one, and one acknowledgement of its id releases every response that waited for them.
#[test]
fn writes_left_in_the_lane_are_merged_and_one_ack_covers_them() {
    let mut h = Harness::new(2, THREE);
    let mut outputs = Outputs::new();
    for m in [
        append(1, 2, 1, LogId::ZERO, &[1], 0),
        append(1, 2, 1, LogId::new(1, 1), &[1, 1], 0),
    ] {
        h.node
            .step(Input::Message(m), &mut outputs)
            .expect("accepted");
    }
    assert!(outputs.sends().is_empty());
    let writes: Vec<_> = outputs.drain_writes().collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let ids: Vec<LogId> = writes[0].entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, [LogId::new(1, 1), LogId::new(1, 2), LogId::new(1, 3)]);
    h.node
        .step(Input::Persisted(writes[0].id), &mut outputs)
        .expect("acknowledged");
    assert_eq!(outputs.sends().len(), 2, "both appends are answered");
}

/// The persistence contract: `Persisted` is cumulative, and repeating it (or acknowledging an
/// older write again) is harmless.
#[test]
fn duplicate_persisted_is_harmless() {
    let mut h = Harness::new(1, THREE);
    h.recv(vote_request(2, 1, 1, LogId::ZERO));
    let first = h.unacked().expect("the vote's write");
    h.step(Input::Persisted(first));
    h.recv(append(2, 1, 1, LogId::ZERO, &[1], 1));
    let second = h.unacked().expect("the entry's write");
    let out = h.step(Input::Persisted(second));
    assert_eq!(out.append_responses().len(), 1);
    assert_eq!(out.applied(), [LogId::new(1, 1)]);
    let before = h.node.status();
    for again in [second, first, second] {
        let out = h.step(Input::Persisted(again));
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(h.node.status(), before);
    }
}

/// The persistence contract: a write the node adds to while it waits in the lane keeps the id
/// the adapter saw there, and acknowledging that id covers everything the write holds.
#[test]
fn a_write_growing_in_the_lane_keeps_its_id() {
    let mut h = Harness::new(2, THREE);
    let mut outputs = Outputs::new();
    h.node
        .step(
            Input::Message(append(1, 2, 1, LogId::ZERO, &[1], 0)),
            &mut outputs,
        )
        .expect("accepted");
    let seen = outputs.writes().last().expect("a write").id;
    h.node
        .step(
            Input::Message(append(1, 2, 1, LogId::new(1, 1), &[1], 0)),
            &mut outputs,
        )
        .expect("accepted");
    let writes: Vec<_> = outputs.drain_writes().collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].id, seen, "the id the adapter saw");
    h.node
        .step(Input::Persisted(seen), &mut outputs)
        .expect("acknowledged");
    assert_eq!(outputs.sends().len(), 2, "both appends are answered");
    assert_eq!(
        h.node.status().persisted,
        Index(2),
        "both entries are durable"
    );
}

/// The persistence contract: a write the adapter acknowledged while it was still in the lane
/// is done. What the node writes next goes in a write of its own with a new id, and the
/// response that depends on it waits for that id.
#[test]
fn a_write_acknowledged_in_the_lane_is_not_extended() {
    let mut h = Harness::new(2, THREE);
    let mut outputs = Outputs::new();
    h.node
        .step(
            Input::Message(append(1, 2, 1, LogId::ZERO, &[1], 0)),
            &mut outputs,
        )
        .expect("accepted");
    let first = outputs.writes().last().expect("a write").id;
    h.node
        .step(Input::Persisted(first), &mut outputs)
        .expect("acknowledged");
    assert_eq!(outputs.sends().len(), 1, "the first append is answered");
    h.node
        .step(
            Input::Message(append(1, 2, 1, LogId::new(1, 1), &[1], 0)),
            &mut outputs,
        )
        .expect("accepted");
    assert_eq!(outputs.sends().len(), 1, "the second answer waits");
    let writes: Vec<_> = outputs.drain_writes().collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[0].id, first);
    assert!(writes[1].id > first);
    let ids: Vec<LogId> = writes[1].entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, [LogId::new(1, 2)]);
    h.node
        .step(Input::Persisted(writes[1].id), &mut outputs)
        .expect("acknowledged");
    assert_eq!(outputs.sends().len(), 2, "both appends are answered");
}

/// The persistence contract: write ids increase with every write, and so do the numbers
/// behind them (`WriteId::get`, for an adapter's logs and metrics); the writes lane shows each
/// write before the adapter drains it.
#[test]
fn write_ids_and_their_numbers_increase_with_every_write() {
    let mut h = Harness::leader(1, THREE);
    let mut outputs = Outputs::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        h.node
            .step(Input::Propose(Payload::new(b"x")), &mut outputs)
            .expect("proposed");
        let shown: Vec<_> = outputs.writes().iter().map(|w| w.id).collect();
        let taken: Vec<_> = outputs.drain_writes().map(|w| w.id).collect();
        assert_eq!(shown, taken);
        ids.extend(taken);
    }
    assert_eq!(ids.len(), 3, "one write per proposal");
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "{ids:?}");
        assert!(pair[0].get() < pair[1].get(), "{ids:?}");
    }
}

// ---- untrusted input -------------------------------------------------------------------------

/// Raft thesis §4.1: requests are processed whatever the receiver's configuration says about the
/// sender. A node that has not yet received the configuration that added its new leader must
/// still follow that leader, or it could never catch up with the log that would tell it.
#[test]
fn requests_from_a_leader_outside_the_configuration_are_heard() {
    let mut h = Harness::restored(2, restored(THREE, 2, None, &[1, 2], 0));
    // Node 9 is not in node 2's configuration {1, 2, 3}, but leads term 3.
    let out = h.recv(append(9, 2, 3, LogId::new(2, 2), &[3], 0));
    assert_eq!(h.node.term(), Term(3));
    assert_eq!(h.node.leader(), Some(id(9)));
    assert!(
        out.append_responses().is_empty(),
        "acknowledged before durable"
    );
    let out = h.persist();
    assert_eq!(
        out.append_responses(),
        [(
            9,
            3,
            AppendOutcome::Accepted {
                match_index: Index(3)
            }
        )]
    );
    // Its answers are not: a response from a non-member is rejected and changes nothing.
    let before = h.node.status();
    let (result, out) = h.try_recv(heartbeat_response(9, 2, 3, 0));
    assert_eq!(
        result,
        Err(StepError::Rejected(Reject::UnknownSender { from: id(9) }))
    );
    assert!(out.is_empty());
    assert_eq!(h.node.status(), before);
}

/// Messages that cannot come from a correct peer are rejected with a typed error, counted, and
/// change nothing.
#[test]
fn invalid_messages_are_rejected_with_typed_errors_and_change_nothing() {
    let mut h = Harness::restored(2, restored(THREE, 2, None, &[1, 2], 0));
    h.recv(heartbeat(1, 2, 2, 0, 0));
    let mut bad_entries = append(1, 2, 3, LogId::new(2, 2), &[3, 3], 0);
    if let MessageBody::AppendEntries { entries, .. } = &mut bad_entries.body {
        entries[1].id.index = Index(5); // a gap
    }
    let cases = [
        (
            // Responses come only from members (requests from non-members are heard: Raft
            // thesis §4.1, see `requests_from_a_leader_outside_the_configuration_are_heard`).
            raft_core::Message {
                from: id(9),
                to: id(2),
                term: Term(3),
                body: MessageBody::HeartbeatResponse {
                    read_round: 0,
                    writes_pending: false,
                },
            },
            Reject::UnknownSender { from: id(9) },
        ),
        (
            heartbeat(1, 3, 3, 0, 0),
            Reject::WrongRecipient { to: id(3) },
        ),
        (heartbeat(2, 2, 3, 0, 0), Reject::FromSelf),
        (bad_entries, Reject::MalformedEntries),
        (
            // Terms going backwards.
            append(1, 2, 3, LogId::new(2, 2), &[3, 2], 0),
            Reject::MalformedEntries,
        ),
        (
            // An entry from a term later than the message's.
            append(1, 2, 3, LogId::new(2, 2), &[4], 0),
            Reject::MalformedEntries,
        ),
        (
            // prev from a term later than the message's.
            append(1, 2, 3, LogId::new(4, 2), &[], 0),
            Reject::MalformedEntries,
        ),
        (
            vote_request(3, 2, 3, LogId::new(4, 2)),
            Reject::MalformedVoteRequest,
        ),
        (
            // Entries of term 0: no leader makes one, and a log holding one cannot be restored
            // (found by the single_node fuzzer: fuzz/regressions/single_node/snapshot-term-zero).
            append(1, 2, 3, LogId::new(2, 2), &[0], 0),
            Reject::MalformedEntries,
        ),
        (
            // A prev at an index above 0 with term 0.
            append(1, 2, 3, LogId::new(0, 2), &[], 0),
            Reject::MalformedEntries,
        ),
        (
            vote_request(3, 2, 3, LogId::new(0, 2)),
            Reject::MalformedVoteRequest,
        ),
        (
            // A snapshot whose last entry has term 0.
            raft_core::Message {
                from: id(1),
                to: id(2),
                term: Term(3),
                body: MessageBody::InstallSnapshot {
                    meta: Box::new(raft_core::SnapshotMeta {
                        last: LogId::new(0, 5),
                        membership: common::membership(THREE),
                    }),
                    offset: 0,
                    data: Payload::new(b"x"),
                    done: true,
                },
            },
            Reject::MalformedSnapshot,
        ),
        (heartbeat(1, 2, u64::MAX, 0, 0), Reject::Overflow),
        (
            // Another leader for the term this node follows 1 in.
            append(3, 2, 2, LogId::new(2, 2), &[], 0),
            Reject::ConflictingLeader { from: id(3) },
        ),
    ];
    for (n, (m, reject)) in cases.into_iter().enumerate() {
        let before = h.node.status();
        let (result, out) = h.try_recv(m.clone());
        assert_eq!(result, Err(StepError::Rejected(reject)), "{m:?}");
        assert!(out.is_empty(), "{m:?}: {out:?}");
        assert_eq!(h.node.status(), before, "{m:?}");
        assert_eq!(h.node.stats().rejected, n as u64 + 1);
        assert_eq!(h.node.stats().last_rejected, Some(reject));
    }
    // Still serving.
    let out = h.recv(append(1, 2, 2, LogId::new(2, 2), &[2], 0));
    assert_eq!(out.written(), [LogId::new(2, 3)]);
}

/// A leader rejects an acknowledgement of entries it never had, and a second leader of its own
/// term (Election Safety, Figure 3, makes both impossible from correct peers).
#[test]
fn leader_rejects_ack_past_its_log_and_conflicting_leader() {
    let mut h = Harness::leader(1, THREE);
    let before = h.node.status();
    let (result, out) = h.try_recv(accepted(2, 1, 1, 7));
    assert_eq!(
        result,
        Err(StepError::Rejected(Reject::AckPastLog { index: Index(7) }))
    );
    assert!(out.is_empty());
    let (result, _) = h.try_recv(append(3, 1, 1, LogId::ZERO, &[1], 0));
    assert_eq!(
        result,
        Err(StepError::Rejected(Reject::ConflictingLeader {
            from: id(3)
        }))
    );
    assert_eq!(h.node.status(), before);
    assert_eq!(h.node.role(), Role::Leader);
    assert_eq!(h.node.stats().rejected, 2);
}

/// Only the leader accepts proposals (Raft §5.3: clients talk to the leader); others refuse and
/// name the leader they know.
#[test]
fn proposal_on_follower_is_refused_with_not_leader() {
    let mut h = follower_of_1(1, &[]);
    let (result, out) = h.try_step(Input::Propose(Payload::new(b"x")));
    assert_eq!(
        result,
        Err(StepError::Refused(Refusal::NotLeader {
            leader: Some(id(1))
        }))
    );
    assert!(out.is_empty());
    assert_eq!(h.node.last_log(), LogId::ZERO);
}

/// Untrusted input: a snapshot whose last entry has a term above the sender's is impossible (no
/// leader can have made that entry) and is rejected.
#[test]
fn a_snapshot_from_a_later_term_than_its_sender_is_rejected() {
    let mut h = Harness::new(2, THREE);
    let (result, _) = h.try_recv(install_snapshot(2, 1, LogId::new(2, 5)));
    assert_eq!(result, Err(StepError::Rejected(Reject::MalformedSnapshot)));
}
