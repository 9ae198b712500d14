//! Leadership transfer (Raft thesis §3.10) and membership changes (thesis §4.2, §4.3), one test
//! per rule: the target caught up then sent TimeoutNow, transfers refused, replaced or abandoned,
//! changes refused while their new majority has not caught up, a removed leader handing over, and
//! a learner that does not campaign.
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use common::paper::{THREE, follower_of_1};
use common::{Harness, accepted, heartbeat, heartbeat_response, id, msg, restored};
use raft_core::{
    Change, Index, Input, LogId, Membership, MessageBody, Payload, Refusal, Role, StepError, Term,
};

// ---- leadership transfer (Raft thesis §3.10) -------------------------------------------------

/// Raft thesis §3.10: the leader brings the target's log up to date, then sends it TimeoutNow;
/// it refuses proposals meanwhile.
#[test]
fn transfer_catches_target_up_then_sends_timeout_now() {
    fn timeout_now_to(out: &common::Out) -> Vec<u64> {
        out.sends
            .iter()
            .filter(|m| m.body == MessageBody::TimeoutNow)
            .map(|m| m.to.get())
            .collect()
    }
    // 2 holds the no-op; 3 has not answered the leader's first probe yet.
    let mut h = Harness::leader(1, THREE);
    h.step(Input::Propose(Payload::new(b"a")));
    h.persist();
    let out = h.step(Input::TransferLeader(id(3)));
    assert!(
        timeout_now_to(&out).is_empty(),
        "TimeoutNow before the target holds the whole log"
    );
    let (result, _) = h.try_step(Input::Propose(Payload::new(b"b")));
    assert_eq!(result, Err(StepError::Refused(Refusal::TransferInProgress)));

    // 3 answers the probe: the leader sends it what it lacks.
    let out = h.recv(accepted(3, 1, 1, 1));
    assert!(timeout_now_to(&out).is_empty());
    let to_3: Vec<_> = out.appends().into_iter().filter(|a| a.0 == 3).collect();
    assert_eq!(to_3, [(3, LogId::new(1, 1), vec![LogId::new(1, 2)], 1)]);

    let out = h.recv(accepted(3, 1, 1, 2));
    assert_eq!(timeout_now_to(&out), [3]);
}

/// Raft thesis §3.10: a leadership transfer that does not complete within an election timeout is
/// abandoned and the leader serves proposals again.
#[test]
fn transfer_that_does_not_complete_is_abandoned() {
    let mut h = Harness::leader(1, THREE);
    h.step(Input::TransferLeader(id(3)));
    let (result, _) = h.try_step(Input::Propose(Payload::new(b"x")));
    assert_eq!(result, Err(StepError::Refused(Refusal::TransferInProgress)));
    let min = h.node.config().election_ticks_min;
    h.tick(min - 1);
    h.recv(heartbeat_response(2, 1, 1, 0)); // keep CheckQuorum happy
    h.tick(1);
    assert_eq!(h.node.role(), Role::Leader);
    let (result, _) = h.try_step(Input::Propose(Payload::new(b"x")));
    assert_eq!(result, Ok(()));
}

/// Raft thesis §3.10: on TimeoutNow the target campaigns at once, skipping pre-vote, and its vote
/// requests are granted even by followers that heard from the leader recently.
#[test]
fn transfer_target_campaigns_immediately_and_its_vote_request_bypasses_lease() {
    let mut target = follower_of_1(1, &[1]);
    let out = target.recv(msg(1, 2, 1, MessageBody::TimeoutNow));
    assert_eq!(target.node.role(), Role::Candidate);
    assert_eq!(target.node.term(), Term(2));
    let request = out
        .sends
        .iter()
        .find(|m| m.to == id(3))
        .expect("a vote request to 3")
        .clone();
    assert_eq!(
        request.body,
        MessageBody::VoteRequest {
            last_log: LogId::new(1, 1),
            pre_vote: false,
            leader_transfer: true,
        }
    );

    let mut voter = Harness::restored(3, restored(THREE, 1, None, &[1], 0));
    voter.recv(heartbeat(1, 3, 1, 0, 0));
    let mut out = voter.recv(request);
    out.merge(voter.persist());
    assert_eq!(out.vote_responses(), [(2, 2, true, false)]);
    assert_eq!(voter.node.stats().votes_ignored_in_lease, 0);

    // TimeoutNow from a node that is not the leader is ignored.
    let mut h = follower_of_1(1, &[1]);
    let out = h.recv(msg(3, 2, 1, MessageBody::TimeoutNow));
    assert_eq!(h.node.role(), Role::Follower);
    assert!(out.sends.is_empty());
}

/// Raft thesis §3.10: leadership goes to another voter. A transfer to the leader itself, or to
/// a node that is not a voter of the configuration, is refused (and counted as refused).
#[test]
fn transfer_to_itself_or_to_a_non_voter_is_refused() {
    let mut h = Harness::leader(1, THREE);
    for target in [1, 4] {
        let (result, out) = h.try_step(Input::TransferLeader(id(target)));
        assert_eq!(
            result,
            Err(StepError::Refused(Refusal::InvalidTransferTarget)),
            "transfer to {target}"
        );
        assert!(
            out.sends.is_empty(),
            "transfer to {target}: {:?}",
            out.sends
        );
    }
    assert_eq!(h.node.stats().refused, 2);
    // Proposals are still served: no transfer is under way.
    let (result, _) = h.try_step(Input::Propose(Payload::new(b"x")));
    assert_eq!(result, Ok(()));
}

/// Raft thesis §3.10: asking again for the transfer under way changes nothing (one TimeoutNow
/// per transfer); asking for another voter hands leadership to that one instead.
#[test]
fn transfer_to_the_same_target_again_changes_nothing_and_a_new_target_replaces_it() {
    fn timeout_now_to(out: &common::Out) -> Vec<u64> {
        out.sends
            .iter()
            .filter(|m| m.body == MessageBody::TimeoutNow)
            .map(|m| m.to.get())
            .collect()
    }
    // Both followers hold the whole log (the no-op).
    let mut h = Harness::leader(1, THREE);
    h.recv(accepted(3, 1, 1, 1));
    let out = h.step(Input::TransferLeader(id(2)));
    assert_eq!(timeout_now_to(&out), [2]);
    let out = h.step(Input::TransferLeader(id(2)));
    assert!(out.sends.is_empty(), "{:?}", out.sends);
    let out = h.step(Input::TransferLeader(id(3)));
    assert_eq!(timeout_now_to(&out), [3]);
    let out = h.step(Input::TransferLeader(id(3)));
    assert!(out.sends.is_empty(), "{:?}", out.sends);
}

/// Raft thesis §3.10: a transfer lasts an election timeout (`election_ticks_min` ticks): until
/// then the leader keeps refusing proposals, and only then resumes.
#[test]
fn a_transfer_lasts_until_the_election_timeout() {
    let mut h = Harness::leader(1, THREE);
    h.step(Input::TransferLeader(id(3)));
    let min = h.node.config().election_ticks_min;
    for tick in 1..min {
        h.recv(heartbeat_response(2, 1, 1, 0)); // keep CheckQuorum happy
        h.tick(1);
        let (result, _) = h.try_step(Input::Propose(Payload::new(b"x")));
        assert_eq!(
            result,
            Err(StepError::Refused(Refusal::TransferInProgress)),
            "after {tick} ticks"
        );
    }
    h.recv(heartbeat_response(2, 1, 1, 0));
    h.tick(1);
    assert_eq!(h.node.role(), Role::Leader);
    let (result, _) = h.try_step(Input::Propose(Payload::new(b"x")));
    assert_eq!(result, Ok(()));
}

// ---- membership changes (Raft thesis §4.2.1, §4.3) ---------------------------------------------

/// Raft thesis §4.2.1: a server added with an empty log leaves the cluster unable to commit
/// until it has caught up. A change whose new voters that hold the log (the leader, and
/// followers that acknowledged entries up to where compaction may cut the log) are not a
/// majority of the new configuration is refused; the joint entry would otherwise need, for
/// every later commit, a node that only a snapshot can bring up to date. (Simulator seed
/// 5001107 of the membership scenario: voters 2, 3 and 5, node 5 empty, learner 4 empty, 4
/// promoted; the joint configuration then needed 4 or 5, whose snapshot transfers never
/// finished, and nothing committed for 1,300 ticks.)
#[test]
fn change_whose_new_majority_has_not_caught_up_is_refused() {
    let mut h = Harness::with_config(1, THREE, |c| c.snapshot_trailing_entries = 0);
    h.elect();
    h.persist();
    let term = h.node.term().0;
    // Node 2 acknowledges the no-op; node 3 never answers, as a voter added while it was down.
    h.recv(accepted(2, 1, term, 1));
    assert_eq!(h.node.commit_index(), Index(1));
    let change = |h: &mut Harness, target: &Membership| {
        h.try_step(Input::ChangeMembership(Box::new(target.clone())))
            .0
    };

    // Learners change alone: the voters, and so the majority, stay as they are.
    let with_learner = h
        .node
        .membership()
        .with_changes(&[Change::AddLearner(id(4))])
        .expect("valid");
    assert_eq!(change(&mut h, &with_learner), Ok(()));
    h.persist();
    h.recv(accepted(2, 1, term, 2));
    assert_eq!(h.node.commit_index(), Index(2), "the learner is added");

    // Promoting the learner before it has caught up: of the four voters only the leader and
    // node 2 hold the log, not the three a majority needs.
    let promoted = with_learner
        .with_changes(&[Change::AddVoter(id(4))])
        .expect("valid");
    assert_eq!(
        change(&mut h, &promoted),
        Err(StepError::Refused(Refusal::NotCaughtUp))
    );
    assert!(!h.node.membership().is_joint(), "nothing was appended");
    // The cluster keeps committing with the majority it has.
    h.step(Input::Propose(Payload::new(b"x")));
    h.persist();
    h.recv(accepted(2, 1, term, 3));
    assert_eq!(h.node.commit_index(), Index(3));

    // Neither may a voter that never caught up be left in a majority it would be needed for.
    let without_2 = h
        .node
        .membership()
        .with_changes(&[Change::Remove(id(2))])
        .expect("valid");
    assert_eq!(
        change(&mut h, &without_2),
        Err(StepError::Refused(Refusal::NotCaughtUp))
    );

    // Once the learner has caught up, the same promotion is accepted: the joint configuration
    // commits with nodes 1, 2 and 4.
    h.recv(accepted(4, 1, term, 3));
    assert_eq!(change(&mut h, &promoted), Ok(()));
    assert!(h.node.membership().is_joint());
    h.persist();
    h.recv(accepted(2, 1, term, 4));
    h.recv(accepted(4, 1, term, 4));
    assert_eq!(h.node.commit_index(), Index(4), "the joint entry commits");

    // Replacing the silent voter with a new, empty one is accepted: nodes 1, 2 and 4 hold the
    // log, a majority of the new voters 1, 2, 4 and 5.
    h.persist();
    h.recv(accepted(2, 1, term, 5));
    h.recv(accepted(4, 1, term, 5));
    assert_eq!(
        h.node.membership(),
        &promoted,
        "the joint configuration is left"
    );
    let replaced = promoted
        .with_changes(&[Change::Remove(id(3)), Change::AddVoter(id(5))])
        .expect("valid");
    assert_eq!(change(&mut h, &replaced), Ok(()));
}

/// Raft thesis §4.2.1: while nothing has been compacted from the log (the first entry can still
/// be replayed), a new voter the leader does not replicate to yet can be caught up from the log,
/// so it counts towards the new majority: replacing two voters by two new ones is accepted.
#[test]
fn new_voters_count_as_catchable_while_the_log_is_whole() {
    let mut h = Harness::leader(1, THREE);
    let target = h
        .node
        .membership()
        .with_changes(&[
            Change::Remove(id(2)),
            Change::Remove(id(3)),
            Change::AddVoter(id(4)),
            Change::AddVoter(id(5)),
        ])
        .expect("valid");
    let (result, _) = h.try_step(Input::ChangeMembership(Box::new(target)));
    assert_eq!(result, Ok(()));
    assert!(h.node.membership().is_joint());
}

/// Raft thesis §4.2.2: a leader removed by a committed configuration steps down and hands over
/// with TimeoutNow to a voter of that configuration that holds its whole log, not to one that
/// is behind.
#[test]
fn a_removed_leader_hands_over_to_a_voter_holding_its_whole_log() {
    let mut h = Harness::leader(1, THREE);
    h.recv(accepted(3, 1, 1, 1));
    let target = h
        .node
        .membership()
        .with_changes(&[Change::Remove(id(1))])
        .expect("valid");
    h.step(Input::ChangeMembership(Box::new(target)));
    h.persist();
    h.recv(accepted(2, 1, 1, 2));
    h.recv(accepted(3, 1, 1, 2));
    assert_eq!(h.node.commit_index(), Index(2), "the joint configuration");
    assert_eq!(h.node.last_log().index, Index(3), "the final configuration");
    h.step(Input::Propose(Payload::new(b"x")));
    h.persist();
    // 3 holds everything; 2 only up to the final configuration, which that commits.
    h.recv(accepted(3, 1, 1, 4));
    assert_eq!(h.node.role(), Role::Leader);
    let out = h.recv(accepted(2, 1, 1, 3));
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.stats().removed_step_downs, 1);
    let to: Vec<u64> = out
        .sends
        .iter()
        .filter(|m| m.body == MessageBody::TimeoutNow)
        .map(|m| m.to.get())
        .collect();
    assert_eq!(to, [3]);
}

/// Raft thesis §3.10 with §4.2: a transfer to a voter that a committed change then removes is
/// dropped (the target can no longer lead), and the leader serves proposals again.
#[test]
fn a_transfer_to_a_voter_being_removed_is_dropped_once_it_is_out() {
    let mut h = Harness::leader(1, THREE);
    let target = h
        .node
        .membership()
        .with_changes(&[Change::Remove(id(3))])
        .expect("valid");
    h.step(Input::ChangeMembership(Box::new(target)));
    h.persist();
    assert!(h.node.membership().is_joint());
    // 3 still votes in the joint configuration: leadership may go to it.
    h.step(Input::TransferLeader(id(3)));
    let (result, _) = h.try_step(Input::Propose(Payload::new(b"x")));
    assert_eq!(result, Err(StepError::Refused(Refusal::TransferInProgress)));
    // The joint configuration commits; the final one, without 3, is in force at once.
    h.recv(accepted(2, 1, 1, 2));
    assert!(!h.node.membership().contains(id(3)));
    let (result, _) = h.try_step(Input::Propose(Payload::new(b"x")));
    assert_eq!(result, Ok(()));
    assert_eq!(h.node.role(), Role::Leader);
}

/// Raft thesis §4.2.2: a node may campaign while a configuration that removed it as a voter is
/// uncommitted only if it voted in the configuration before; a learner that never voted does not
/// campaign because a configuration naming it a learner is not committed yet.
#[test]
fn a_learner_that_never_voted_does_not_campaign_while_its_configuration_is_uncommitted() {
    // Leader 1 adds learner 4: the no-op at 1, the configuration at 2.
    let mut leader = Harness::leader(1, THREE);
    let target = leader
        .node
        .membership()
        .with_changes(&[Change::AddLearner(id(4))])
        .expect("valid");
    // (Harness::leader took the no-op's write: a fresh leader of term 1 writes the same one.)
    let mut written = Harness::new(1, THREE).elect().writes;
    written.extend(
        leader
            .step(Input::ChangeMembership(Box::new(target.clone())))
            .writes,
    );
    let entries: Vec<raft_core::Entry> = written.into_iter().flat_map(|w| w.entries).collect();
    assert_eq!(
        entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        [LogId::new(1, 1), LogId::new(1, 2)]
    );
    // Node 4 starts as the cluster's voters and itself as a learner, and receives both entries
    // with only the no-op committed.
    let voters = [id(1), id(2), id(3)];
    let joining = Membership::with_learners(&voters, &[id(4)]).expect("valid");
    let mut h = Harness::restored(4, raft_core::Restored::initial(joining));
    let body = MessageBody::AppendEntries {
        prev: LogId::ZERO,
        entries: entries.into_iter().collect(),
        commit: Index(1),
    };
    h.recv(msg(1, 4, 1, body));
    h.persist();
    assert_eq!(h.node.membership(), &target);
    assert_eq!(h.node.commit_index(), Index(1));
    assert_eq!(h.node.ticks_until_timer(), u32::MAX);
    let out = h.tick(h.node.config().election_ticks_max * 2);
    assert_eq!(h.node.role(), Role::Follower);
    assert!(out.sends.is_empty(), "{:?}", out.sends);
}
