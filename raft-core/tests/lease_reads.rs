//! Lease reads (`Config::lease_reads`, Raft thesis §6.4.1): a leader answers reads from its
//! lease, without a heartbeat round, while a quorum has answered a heartbeat round sent within
//! `Config::lease_ticks` ticks; otherwise, and whenever the lease cannot be trusted (no CheckQuorum,
//! a transfer started, no entry of its term committed yet), reads fall back to ReadIndex. The
//! followers' side: a node that heard from a leader, or restarted, within the minimum election
//! timeout neither votes nor campaigns.

mod common;

use common::*;
use raft_core::{
    Config, ConfigError, Index, Input, MessageBody, Node, ReadId, ReadResult, Refusal,
    RestoreError, Restored, Role, StepError,
};

const THREE: &[u64] = &[1, 2, 3];

fn lease(c: &mut Config) {
    c.lease_reads = true;
}

/// Node 1 of `THREE` with lease reads, elected leader of its first term: the election timeout
/// of its restart (every node starts as if restarted) has passed, it won, and its no-op
/// (index 1) is committed.
fn lease_leader() -> Harness {
    let mut h = Harness::with_config(1, THREE, lease);
    let min = h.node.config().election_ticks_min;
    let _ = h.tick(min);
    h.elect();
    h.persist();
    let term = h.node.term().0;
    h.recv(accepted(2, 1, term, 1));
    assert_eq!(h.node.commit_index(), Index(1), "the no-op is committed");
    h
}

/// The heartbeat rounds in `out` (to any peer).
fn heartbeat_rounds(out: &Out) -> Vec<u64> {
    let mut rounds: Vec<u64> = out
        .sends
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat { read_round, .. } => Some(read_round),
            _ => None,
        })
        .collect();
    rounds.dedup();
    rounds
}

/// Ticks until the leader broadcasts a heartbeat round; returns the round and the ticks taken.
fn next_round(h: &mut Harness) -> (u64, u32) {
    for k in 1..=h.node.config().heartbeat_ticks {
        if let Some(&r) = heartbeat_rounds(&h.tick(1)).first() {
            return (r, k);
        }
    }
    panic!("no heartbeat within heartbeat_ticks");
}

fn ready(id: u64, index: u64) -> ReadResult {
    ReadResult::Ready {
        id: ReadId(id),
        index: Index(index),
    }
}

/// A leader whose heartbeat round a quorum answered answers a read at once, with its commit
/// index, and sends nothing for it; without lease reads the same read waits for a round.
#[test]
fn a_leader_in_its_lease_answers_at_once_without_a_heartbeat_round() {
    let mut h = lease_leader();
    let term = h.node.term().0;
    let (round, _) = next_round(&mut h);
    h.recv(heartbeat_response(2, 1, term, round));
    let out = h.step(Input::Read(ReadId(7)));
    assert_eq!(out.reads, vec![ready(7, 1)]);
    assert!(
        out.sends.is_empty(),
        "no heartbeat for a lease read: {out:?}"
    );
    assert_eq!(h.node.stats().reads_by_lease, 1);

    // A follower's forwarded read is answered from the lease too.
    let out = h.recv(msg(
        2,
        1,
        term,
        MessageBody::ReadIndexRequest { request: 4 },
    ));
    let answer = MessageBody::ReadIndexResponse {
        request: 4,
        index: Some(Index(1)),
    };
    assert_eq!(out.sends, vec![msg(1, 2, term, answer)]);
    assert_eq!(h.node.stats().reads_by_lease, 2);

    // Without lease reads: a round of its own, and no answer until a quorum confirms it.
    let mut plain = Harness::leader(1, THREE);
    let term = plain.node.term().0;
    let (round, _) = next_round(&mut plain);
    plain.recv(heartbeat_response(2, 1, term, round));
    let out = plain.step(Input::Read(ReadId(7)));
    assert!(out.reads.is_empty());
    assert_eq!(heartbeat_rounds(&out).len(), 1);
    assert_eq!(plain.node.stats().reads_by_lease, 0);
}

/// The lease lasts `lease_ticks` ticks from the tick the answered round was *sent*, however late
/// the answer came; after that a read falls back to a heartbeat round of its own.
#[test]
fn the_lease_runs_from_the_send_of_the_answered_round_and_then_reads_need_a_round() {
    let mut h = lease_leader();
    let term = h.node.term().0;
    let lease_ticks = h.node.config().lease_ticks();
    assert_eq!(lease_ticks, 7, "the defaults: 10 - 1 - 2");
    let (round, _) = next_round(&mut h);
    // The answer takes 3 ticks to arrive (the heartbeats sent meanwhile go unanswered).
    let _ = h.tick(3);
    h.recv(heartbeat_response(2, 1, term, round));
    let _ = h.tick(lease_ticks - 1 - 3);
    let out = h.step(Input::Read(ReadId(1)));
    assert_eq!(out.reads, vec![ready(1, 1)], "the lease's last tick");
    assert!(heartbeat_rounds(&out).is_empty());
    let _ = h.tick(1);
    assert_eq!(h.node.role(), Role::Leader);
    let out = h.step(Input::Read(ReadId(2)));
    assert!(out.reads.is_empty(), "the lease ran out: {out:?}");
    let rounds = heartbeat_rounds(&out);
    assert_eq!(rounds.len(), 1, "the read starts a round of its own");
    // The round's answer confirms the read, and renews the lease.
    let out = h.recv(heartbeat_response(3, 1, term, rounds[0]));
    assert_eq!(out.reads, vec![ready(2, 1)]);
    let out = h.step(Input::Read(ReadId(3)));
    assert_eq!(out.reads, vec![ready(3, 1)]);
    assert_eq!(h.node.stats().reads_by_lease, 2);
}

/// Only a quorum's answers make a lease: one follower of five is not enough.
#[test]
fn a_lease_needs_a_quorum_of_the_configuration() {
    let five = &[1, 2, 3, 4, 5];
    let mut h = Harness::with_config(1, five, lease);
    let min = h.node.config().election_ticks_min;
    let _ = h.tick(min);
    h.elect();
    h.persist();
    let term = h.node.term().0;
    h.recv(accepted(2, 1, term, 1));
    h.recv(accepted(3, 1, term, 1));
    assert_eq!(h.node.commit_index(), Index(1));
    let (round, _) = next_round(&mut h);
    h.recv(heartbeat_response(2, 1, term, round));
    let out = h.step(Input::Read(ReadId(1)));
    assert!(out.reads.is_empty(), "two of five is no quorum");
    let read_round = heartbeat_rounds(&out)[0];
    // An answer to the older round from a third voter completes the quorum of that round: the
    // lease holds from its send, and the next read is answered at once.
    h.recv(heartbeat_response(3, 1, term, round));
    let out = h.step(Input::Read(ReadId(2)));
    assert_eq!(out.reads, vec![ready(2, 1)]);
    // The first read still waits for its own round (it arrived before the quorum answered).
    let out = h.recv(heartbeat_response(2, 1, term, read_round));
    assert!(out.reads.is_empty());
    let out = h.recv(heartbeat_response(4, 1, term, read_round));
    assert_eq!(out.reads, vec![ready(1, 1)]);
}

/// Lease reads require CheckQuorum, and a drift margin of at least one tick that leaves a
/// lease; a configuration without is refused, by `validate` and by `Node::restore`.
#[test]
fn lease_reads_need_check_quorum_and_a_drift_margin_that_leaves_a_lease() {
    let mut c = config(1, lease);
    assert_eq!(c.validate(), Ok(()));
    assert!(!Config::new(id(1)).lease_reads, "off by default");
    c.check_quorum = false;
    assert_eq!(c.validate(), Err(ConfigError::LeaseWithoutCheckQuorum));
    let state = Restored::initial(membership(THREE));
    let refused = Node::restore(c.clone(), SplitMix::new(1), state).map(drop);
    assert_eq!(
        refused,
        Err(RestoreError::Config(ConfigError::LeaseWithoutCheckQuorum))
    );
    c.lease_reads = false;
    assert_eq!(
        c.validate(),
        Ok(()),
        "without lease reads CheckQuorum may be off"
    );

    let mut c = config(1, lease);
    c.lease_drift_ticks = 0;
    assert_eq!(c.validate(), Err(ConfigError::LeaseDriftOutOfRange));
    c.lease_drift_ticks = c.election_ticks_min - 1;
    assert_eq!(c.lease_ticks(), 0);
    assert_eq!(c.validate(), Err(ConfigError::LeaseDriftOutOfRange));
    c.lease_drift_ticks = c.election_ticks_min - 2;
    assert_eq!(c.lease_ticks(), 1);
    assert_eq!(c.validate(), Ok(()));
}

/// A leader that starts a leadership transfer serves no read from its lease for the rest of its
/// term: the target's election (TimeoutNow) passes the followers' refusal to vote, and a
/// TimeoutNow may arrive however late, even after the transfer timed out.
#[test]
fn a_leader_that_started_a_transfer_serves_no_lease_read() {
    let mut h = lease_leader();
    let term = h.node.term().0;
    let (round, _) = next_round(&mut h);
    h.recv(heartbeat_response(2, 1, term, round));
    assert_eq!(h.step(Input::Read(ReadId(1))).reads, vec![ready(1, 1)]);
    let _ = h.step(Input::TransferLeader(id(3)));
    let out = h.step(Input::Read(ReadId(2)));
    assert!(out.reads.is_empty(), "no lease during a transfer: {out:?}");
    let rounds = heartbeat_rounds(&out);
    assert_eq!(rounds.len(), 1, "ReadIndex instead");
    let out = h.recv(heartbeat_response(2, 1, term, rounds[0]));
    assert_eq!(out.reads, vec![ready(2, 1)]);

    // The transfer times out (node 3 never answered); the leader resumes, still without a lease.
    for _ in 0..h.node.config().election_ticks_min {
        let out = h.tick(1);
        for r in heartbeat_rounds(&out) {
            h.recv(heartbeat_response(2, 1, term, r));
        }
    }
    assert_eq!(h.node.role(), Role::Leader);
    let (round, _) = next_round(&mut h);
    h.recv(heartbeat_response(2, 1, term, round));
    let out = h.step(Input::Read(ReadId(3)));
    assert!(out.reads.is_empty(), "no lease for the rest of the term");
    assert_eq!(h.node.stats().reads_by_lease, 1);
}

/// A new leader serves no read from a lease before it has committed an entry of its term: its
/// commit index may miss entries an earlier leader committed. The read waits for the no-op, then
/// for a round, as with ReadIndex.
#[test]
fn a_new_leader_serves_no_lease_read_before_committing_an_entry_of_its_term() {
    let mut h = Harness::with_config(1, THREE, lease);
    let min = h.node.config().election_ticks_min;
    let _ = h.tick(min);
    h.elect();
    h.persist();
    let term = h.node.term().0;
    // Both followers answer a heartbeat round, but neither has acknowledged the no-op.
    let (round, _) = next_round(&mut h);
    h.recv(heartbeat_response(2, 1, term, round));
    h.recv(heartbeat_response(3, 1, term, round));
    assert_eq!(h.node.commit_index(), Index(0));
    let out = h.step(Input::Read(ReadId(1)));
    assert!(
        out.reads.is_empty(),
        "no read before the term's first commit: {out:?}"
    );
    assert_eq!(h.node.stats().reads_by_lease, 0);
    // The no-op commits: the waiting read joins a round and is confirmed by it.
    let out = h.recv(accepted(2, 1, term, 1));
    assert!(out.reads.is_empty());
    let rounds = heartbeat_rounds(&out);
    assert_eq!(rounds.len(), 1);
    let out = h.recv(heartbeat_response(2, 1, term, rounds[0]));
    assert_eq!(out.reads, vec![ready(1, 1)]);
    // From now on the lease serves.
    assert_eq!(h.step(Input::Read(ReadId(2))).reads, vec![ready(2, 1)]);
}

/// The followers' side of the lease: a follower that heard from its leader within the minimum
/// election timeout ignores vote requests (as with CheckQuorum alone) and, with lease reads,
/// refuses to campaign; a node that restarts does both for an election timeout, since it may
/// have answered a heartbeat just before it crashed.
#[test]
fn a_follower_in_lease_and_a_restarted_node_neither_vote_nor_campaign() {
    let mut f = Harness::with_config(2, THREE, lease);
    f.recv(heartbeat(1, 2, 1, 0, 1));
    let (result, _) = f.try_step(Input::Campaign);
    assert_eq!(result, Err(StepError::Refused(Refusal::InLease)));
    let out = f.recv(pre_vote_request(3, 2, 2, raft_core::LogId::ZERO));
    assert!(out.vote_responses().is_empty(), "ignored in lease");

    // A restarted node (every node starts as one) knows no leader and still refuses.
    let state = restored(THREE, 3, Some(1), &[1, 3], 0);
    let mut r = Harness::restore(config(2, lease), state.clone()).unwrap();
    assert_eq!(r.node.leader(), None);
    let last = raft_core::LogId::new(3, 2);
    let out = r.recv(vote_request(3, 2, 4, last));
    assert!(out.vote_responses().is_empty(), "ignored after a restart");
    assert_eq!(r.node.stats().votes_ignored_in_lease, 1);
    let (result, _) = r.try_step(Input::Campaign);
    assert_eq!(result, Err(StepError::Refused(Refusal::InLease)));
    // An election timeout after the restart it votes again (once its vote is durable).
    let min = r.node.config().election_ticks_min;
    let _ = r.tick(min);
    let mut out = r.recv(vote_request(3, 2, 4, last));
    out.merge(r.persist());
    assert_eq!(out.vote_responses(), vec![(3, 4, true, false)]);

    // Without lease reads a restarted node votes at once.
    let mut plain = Harness::restored(2, state);
    let mut out = plain.recv(vote_request(3, 2, 4, last));
    out.merge(plain.persist());
    assert_eq!(out.vote_responses(), vec![(3, 4, true, false)]);
}
