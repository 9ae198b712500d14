//! The Raft paper's rules for terms and leader election (Ongaro and Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", Figure 2, §5.1 and §5.2), one test per rule, with the
//! extensions from the Raft thesis that guard elections: pre-vote, CheckQuorum and the
//! disruptive-server rule.
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use std::collections::BTreeSet;

use common::paper::{FIVE, THREE, follower_of_1, no_pre_vote};
use common::{
    Harness, append, append_response, config, heartbeat, heartbeat_response, id, pre_vote_request,
    restored, vote_request, vote_response,
};
use raft_core::{AppendOutcome, HardState, Index, Input, LogId, MessageBody, Payload, Role, Term};

// ---- pre-vote (thesis §9.6) -------------------------------------------------------------------

/// Thesis §9.6: pre-vote grants answer "would you vote for this log in this term". A grant from
/// an earlier timeout of the same prospective term, with the same log, still answers the round
/// a node runs now, so it counts: with slow answers, every round would otherwise start from
/// nothing and never gather a quorum. A voter's later answer replaces its earlier one.
#[test]
fn pre_vote_grants_from_an_earlier_timeout_of_the_same_term_still_count() {
    let mut h = Harness::new(1, FIVE);
    h.step(Input::Campaign);
    assert_eq!(h.node.role(), Role::PreCandidate);
    h.recv(vote_response(2, 1, 1, true, true));
    assert_eq!(h.node.role(), Role::PreCandidate, "2 of 5 is not a quorum");
    // The election timeout passes: a new pre-vote round, for the same term and log.
    let out = h.tick(h.node.config().election_ticks_max);
    assert!(
        out.sends
            .iter()
            .any(|m| matches!(m.body, MessageBody::VoteRequest { pre_vote: true, .. }))
    );
    assert_eq!(
        (h.node.role(), h.node.term()),
        (Role::PreCandidate, Term(0))
    );
    // Voter 3 grants in the new round: with voter 2's grant and its own, a quorum of five.
    h.recv(vote_response(3, 1, 1, true, true));
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(1));
}

/// A voter that granted in an earlier round and refuses in the current one is counted as
/// refusing: its newer answer replaces the old grant.
#[test]
fn a_newer_pre_vote_refusal_replaces_an_earlier_grant() {
    let mut h = Harness::new(1, FIVE);
    h.step(Input::Campaign);
    h.recv(vote_response(2, 1, 1, true, true));
    h.tick(h.node.config().election_ticks_max);
    // Voter 2 now refuses (a refusal carries the voter's own term), voter 3 grants: 2 of 5.
    h.recv(vote_response(2, 1, 0, false, true));
    h.recv(vote_response(3, 1, 1, true, true));
    assert_eq!(h.node.role(), Role::PreCandidate);
    assert_eq!(h.node.term(), Term(0));
}

/// Thesis §9.6: a pre-vote is answered as the vote would be. For the receiver's own term, in
/// which it already voted for another candidate, that is a refusal (one vote per term), even
/// for an up-to-date log; only a pre-vote for a later term may be granted regardless.
#[test]
fn a_pre_vote_for_the_current_term_is_refused_after_voting_for_another() {
    let mut h = Harness::new(1, THREE);
    h.recv(vote_request(3, 1, 1, LogId::ZERO));
    h.persist();
    assert_eq!(h.node.term(), Term(1));
    let out = h.recv(pre_vote_request(2, 1, 1, LogId::ZERO));
    assert_eq!(out.vote_responses(), [(2, 1, false, true)]);
    let out = h.recv(pre_vote_request(2, 1, 2, LogId::ZERO));
    assert_eq!(out.vote_responses(), [(2, 2, true, true)]);
}

// ---- §5.1 terms ------------------------------------------------------------------------------

/// Raft §5.1, Figure 2 "Rules for Servers, all servers": if an RPC request or response contains
/// a term T > currentTerm, set currentTerm = T and convert to follower.
#[test]
fn node_seeing_higher_term_adopts_it_and_becomes_follower() {
    // A leader hears of a newer term in an AppendEntries request.
    let mut leader = Harness::leader(1, THREE);
    let out = leader.recv(append(2, 1, 5, LogId::ZERO, &[], 0));
    assert_eq!(leader.node.role(), Role::Follower);
    assert_eq!(leader.node.term(), Term(5));
    assert_eq!(leader.node.leader(), Some(id(2)));
    assert_eq!(
        out.hard_states(),
        [HardState {
            term: Term(5),
            vote: None
        }],
        "the new term is made durable, with no vote in it"
    );

    // A candidate hears of a newer term in a vote response.
    let mut candidate = Harness::with_config(1, THREE, no_pre_vote);
    candidate.step(Input::Campaign);
    assert_eq!(candidate.node.role(), Role::Candidate);
    candidate.persist();
    candidate.recv(vote_response(2, 1, 7, false, false));
    assert_eq!(candidate.node.role(), Role::Follower);
    assert_eq!(candidate.node.term(), Term(7));
    assert_eq!(candidate.node.status().vote, None);

    // A leader hears of a newer term in an append response.
    let mut leader = Harness::leader(1, THREE);
    leader.recv(append_response(3, 1, 4, AppendOutcome::Outdated));
    assert_eq!(leader.node.role(), Role::Follower);
    assert_eq!(leader.node.term(), Term(4));
}

/// Raft §5.1, Figure 2 AppendEntries receiver rule 1: reply false if term < currentTerm. The
/// reply carries the receiver's newer term, so the stale leader steps down.
#[test]
fn follower_rejects_append_from_older_term_and_stale_leader_steps_down() {
    let mut old_leader = Harness::leader(1, THREE);
    let mut newer = Harness::restored(2, restored(THREE, 3, None, &[], 0));

    let sent = old_leader.step(Input::Propose(Payload::new(b"x")));
    let before = newer.node.status();
    let reply = newer.deliver(&sent);
    assert_eq!(
        newer.node.status(),
        before,
        "the stale request changed nothing"
    );
    assert_eq!(newer.node.stats().stale_term, 1);
    assert_eq!(
        reply.append_responses(),
        [(1, 3, AppendOutcome::Outdated)],
        "answered with the newer term"
    );

    old_leader.deliver(&reply);
    assert_eq!(old_leader.node.role(), Role::Follower);
    assert_eq!(old_leader.node.term(), Term(3));

    // A stale heartbeat is answered the same way, and so is a stale commit notice (which a
    // current one is not).
    let out = newer.recv(heartbeat(1, 2, 1, 0, 0));
    assert_eq!(out.append_responses(), [(1, 3, AppendOutcome::Outdated)]);
    let notice = MessageBody::Commit {
        commit: LogId::ZERO,
    };
    let out = newer.recv(common::msg(1, 2, 1, notice));
    assert_eq!(out.append_responses(), [(1, 3, AppendOutcome::Outdated)]);
}

/// Raft §5.1, Figure 2 RequestVote receiver rule 1: a vote request from an older term is not
/// granted, and changes neither the receiver's term nor its vote. The refusal carries the current
/// term, so a candidate that fell behind learns the term it must beat.
#[test]
fn stale_term_vote_request_is_not_granted() {
    let mut h = Harness::restored(1, restored(THREE, 3, None, &[1, 2], 0));
    let out = h.recv(vote_request(2, 1, 2, LogId::new(2, 9)));
    assert_eq!(
        out.vote_responses(),
        [(2, 3, false, false)],
        "a stale vote request is refused with the current term"
    );
    assert!(out.writes.is_empty());
    assert_eq!(h.node.term(), Term(3));
    assert_eq!(h.node.status().vote, None);
    assert_eq!(h.node.stats().stale_term, 1);

    // A pre-vote for a term older than the receiver's is refused with the newer term.
    let out = h.recv(pre_vote_request(2, 1, 2, LogId::new(2, 9)));
    assert_eq!(out.vote_responses(), [(2, 3, false, true)]);
}

// ---- §5.2 leader election --------------------------------------------------------------------

/// Raft §5.2 with pre-vote (thesis §9.6): a follower that hears nothing for an election timeout
/// first asks whether it could win, without raising its term.
#[test]
fn follower_times_out_and_starts_pre_vote_when_enabled() {
    let mut h = Harness::new(1, THREE);
    let min = h.node.config().election_ticks_min;
    let max = h.node.config().election_ticks_max;
    let mut ticks = 0;
    let out = loop {
        let out = h.tick(1);
        ticks += 1;
        if h.node.role() != Role::Follower {
            break out;
        }
        assert!(ticks < max, "no election within election_ticks_max");
    };
    assert!(
        ticks >= min,
        "election started after {ticks} ticks, before the minimum"
    );
    assert_eq!(h.node.role(), Role::PreCandidate);
    assert_eq!(h.node.term(), Term(0), "a pre-vote does not raise the term");
    assert!(out.writes.is_empty(), "a pre-vote writes nothing");
    let mut to: Vec<u64> = out.sends.iter().map(|m| m.to.get()).collect();
    to.sort_unstable();
    assert_eq!(to, [2, 3]);
    for m in &out.sends {
        assert_eq!(
            m.term,
            Term(1),
            "a pre-vote carries the term it would campaign in"
        );
        assert!(matches!(
            m.body,
            MessageBody::VoteRequest { pre_vote: true, .. }
        ));
    }
}

/// Raft §5.2, Figure 2 "Rules for Servers, followers": if the election timeout elapses without
/// hearing from a leader, convert to candidate (straight away when pre-vote is off).
#[test]
fn follower_times_out_and_becomes_candidate_when_pre_vote_disabled() {
    let mut h = Harness::with_config(1, THREE, no_pre_vote);
    let max = h.node.config().election_ticks_max;
    let out = h.tick(max);
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(1));
    assert!(out.sends.iter().all(|m| matches!(
        m.body,
        MessageBody::VoteRequest {
            pre_vote: false,
            ..
        }
    )));
}

/// Raft §5.2, Figure 2 "Rules for Servers, candidates": on conversion to candidate, increment
/// currentTerm, vote for self, and send RequestVote to all other servers.
#[test]
fn candidate_votes_for_itself_and_requests_votes_from_all() {
    let state = restored(FIVE, 4, None, &[1, 2, 4], 0);
    let mut h = Harness::restore(config(3, no_pre_vote), state).expect("consistent state");
    let out = h.step(Input::Campaign);
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(5));
    assert_eq!(h.node.status().vote, Some(id(3)));
    assert_eq!(
        out.hard_states(),
        [HardState {
            term: Term(5),
            vote: Some(id(3))
        }]
    );
    let mut to = Vec::new();
    for m in &out.sends {
        assert_eq!(m.term, Term(5));
        assert_eq!(
            m.body,
            MessageBody::VoteRequest {
                last_log: LogId::new(4, 3),
                pre_vote: false,
                leader_transfer: false,
            }
        );
        to.push(m.to.get());
    }
    to.sort_unstable();
    assert_eq!(to, [1, 2, 4, 5]);
}

/// Raft §5.2: a candidate that wins votes from a majority becomes leader and sends AppendEntries
/// to every other server (here carrying the no-op entry of §8 that lets it commit).
#[test]
fn candidate_wins_with_majority_and_sends_append_entries() {
    let mut h = Harness::with_config(1, FIVE, no_pre_vote);
    h.step(Input::Campaign);
    h.persist();
    h.recv(vote_response(2, 1, 1, true, false));
    assert_eq!(h.node.role(), Role::Candidate, "two of five is no majority");
    h.recv(vote_response(4, 1, 1, false, false));
    assert_eq!(h.node.role(), Role::Candidate);
    let out = h.recv(vote_response(3, 1, 1, true, false));
    assert_eq!(h.node.role(), Role::Leader);
    assert_eq!(h.node.leader(), Some(id(1)));
    assert_eq!(out.written(), [LogId::new(1, 1)], "the no-op");
    let mut to: Vec<u64> = Vec::new();
    for (peer, prev, ids, _) in out.appends() {
        assert_eq!(prev, LogId::ZERO);
        assert_eq!(ids, [LogId::new(1, 1)]);
        to.push(peer);
    }
    to.sort_unstable();
    assert_eq!(to, [2, 3, 4, 5]);
}

/// Raft §5.2 and the persistence contract: a candidate's vote for itself counts only once the
/// hard state that records it is durable.
#[test]
fn candidate_counts_its_own_vote_only_once_durable() {
    let mut h = Harness::with_config(1, THREE, no_pre_vote);
    h.step(Input::Campaign);
    h.recv(vote_response(2, 1, 1, true, false));
    assert_eq!(
        h.node.role(),
        Role::Candidate,
        "won with a vote for itself that is not yet on disk"
    );
    h.persist();
    assert_eq!(h.node.role(), Role::Leader);
}

/// Figure 2, "Persistent state on all servers (updated on stable storage before responding to
/// RPCs)": a candidate whose other voters' grants alone make a majority still takes leadership
/// only once its new term is durable. Were it to lead first and crash, it would restart in the
/// term before, campaign for the same term again, be granted by the same voters and lead that
/// term a second time, with a different log (found by the simulator, seed 691 on 3 nodes).
#[test]
fn candidate_leads_only_once_its_term_is_durable() {
    let mut h = Harness::with_config(1, THREE, no_pre_vote);
    h.step(Input::Campaign);
    h.recv(vote_response(2, 1, 1, true, false));
    h.recv(vote_response(3, 1, 1, true, false));
    assert_eq!(
        h.node.role(),
        Role::Candidate,
        "leads a term that is not yet on its disk"
    );
    let out = h.persist();
    assert_eq!(h.node.role(), Role::Leader);
    assert_eq!(out.written(), [LogId::new(1, 1)], "the no-op, once leader");
}

/// Raft §5.4.1 with the persistence contract: a candidate offers voters only the part of its log
/// that is durable. A crash could take the rest; the restarted node, back in the term before,
/// would campaign for the same term again and count grants given to the longer log it offered
/// before, leading without entries its voters hold (found by the simulator, seed 1620 of the
/// membership-change scenario).
#[test]
fn candidate_offers_only_its_durable_log() {
    let mut h = Harness::with_config(2, THREE, no_pre_vote);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1], 0));
    h.persist();
    h.recv(append(1, 2, 1, LogId::new(1, 1), &[1], 0));
    assert_eq!(
        h.node.last_log(),
        LogId::new(1, 2),
        "entry 2 is in the log, not yet durable"
    );
    let out = h.step(Input::Campaign);
    let offered: Vec<LogId> = out
        .sends
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::VoteRequest { last_log, .. } => Some(last_log),
            _ => None,
        })
        .collect();
    assert_eq!(offered, [LogId::new(1, 1), LogId::new(1, 1)]);
    h.persist();
    let out = h.step(Input::Campaign);
    assert!(out.sends.iter().all(|m| matches!(
        m.body,
        MessageBody::VoteRequest { last_log, .. } if last_log == LogId::new(1, 2)
    )));
}

/// Raft §5.2: while waiting for votes, a candidate that receives AppendEntries from a leader
/// whose term is at least its own recognizes the leader and returns to follower.
#[test]
fn candidate_steps_down_on_append_entries_from_leader_of_same_term() {
    let mut h = Harness::with_config(1, THREE, no_pre_vote);
    h.step(Input::Campaign);
    let out = h.recv(append(3, 1, 1, LogId::ZERO, &[], 0));
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(h.node.leader(), Some(id(3)));
    assert!(
        out.append_responses().is_empty(),
        "its vote is not durable yet"
    );
    let out = h.persist();
    assert_eq!(
        out.append_responses(),
        [(
            3,
            1,
            AppendOutcome::Accepted {
                match_index: Index(0)
            }
        )]
    );

    // A heartbeat of the same term has the same effect.
    let mut h = Harness::with_config(1, THREE, no_pre_vote);
    h.step(Input::Campaign);
    h.recv(heartbeat(2, 1, 1, 0, 0));
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.leader(), Some(id(2)));
}

/// Raft §5.2: if the term in the AppendEntries is smaller than the candidate's current term, the
/// candidate rejects it and continues in candidate state.
#[test]
fn candidate_rejects_append_entries_from_older_term_and_remains_candidate() {
    let state = restored(THREE, 1, None, &[1], 0);
    let mut h = Harness::restore(config(1, no_pre_vote), state).expect("consistent state");
    h.step(Input::Campaign);
    h.persist();
    assert_eq!(h.node.term(), Term(2));
    let out = h.recv(append(2, 1, 1, LogId::new(1, 1), &[1], 0));
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(2));
    assert_eq!(h.node.leader(), None);
    assert_eq!(h.node.last_log(), LogId::new(1, 1));
    assert_eq!(out.append_responses(), [(2, 2, AppendOutcome::Outdated)]);
}

/// Raft §5.2: if many followers become candidates at once and no one wins, each candidate times
/// out and starts a new election by incrementing its term.
#[test]
fn candidate_starts_new_election_when_election_times_out() {
    let mut h = Harness::with_config(1, THREE, no_pre_vote);
    h.step(Input::Campaign);
    h.persist();
    h.recv(vote_response(2, 1, 1, false, false));
    assert_eq!(h.node.role(), Role::Candidate);
    let max = h.node.config().election_ticks_max;
    let mut ticks = 0;
    while h.node.term() == Term(1) {
        h.tick(1);
        ticks += 1;
        assert!(ticks < max, "the election did not time out");
    }
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(2));
    assert_eq!(h.node.status().vote, Some(id(1)));
}

/// Raft §5.2, Figure 2 RequestVote receiver rule 2: each server votes for at most one candidate
/// in a given term, first come first served; asking again as the same candidate is granted again.
#[test]
fn one_vote_per_term_first_come_first_served() {
    let mut h = Harness::new(1, THREE);
    h.recv(vote_request(2, 1, 1, LogId::ZERO));
    let out = h.persist();
    assert_eq!(out.vote_responses(), [(2, 1, true, false)]);
    assert_eq!(h.node.status().vote, Some(id(2)));

    let mut out = h.recv(vote_request(3, 1, 1, LogId::ZERO));
    out.merge(h.persist());
    assert_eq!(
        out.vote_responses(),
        [(3, 1, false, false)],
        "a second candidate in the same term"
    );
    assert_eq!(h.node.status().vote, Some(id(2)));

    let mut out = h.recv(vote_request(2, 1, 1, LogId::ZERO));
    out.merge(h.persist());
    assert_eq!(
        out.vote_responses(),
        [(2, 1, true, false)],
        "the same candidate"
    );

    // The next term is a new vote.
    let mut out = h.recv(vote_request(3, 1, 2, LogId::ZERO));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(3, 2, true, false)]);
    assert_eq!(h.node.status().vote, Some(id(3)));
}

/// Raft §5.2, Figure 2 "Persistent state on all servers (updated on stable storage before
/// responding to RPCs)": a vote is not granted before the hard state recording it is durable.
#[test]
fn vote_not_granted_before_hard_state_write_is_acknowledged() {
    let mut h = Harness::new(1, THREE);
    let out = h.recv(vote_request(2, 1, 1, LogId::ZERO));
    assert!(out.sends.is_empty(), "the grant went out before its write");
    assert_eq!(
        out.hard_states(),
        [HardState {
            term: Term(1),
            vote: Some(id(2))
        }]
    );
    assert!(
        h.tick(1).sends.is_empty(),
        "unrelated steps do not release it"
    );
    let out = h.persist();
    assert_eq!(out.vote_responses(), [(2, 1, true, false)]);
}

/// Raft §5.2: election timeouts are chosen randomly from a fixed interval, so that split votes
/// are rare; they differ from node to node and from one election to the next.
#[test]
fn election_timeouts_are_randomized() {
    fn ticks_to_campaign(h: &mut Harness) -> u32 {
        let term = h.node.term();
        let mut ticks = 0;
        while h.node.term() == term {
            h.tick(1);
            ticks += 1;
            assert!(ticks <= 100, "no election");
        }
        ticks
    }
    // Nodes 1 to 30 (each node's RNG is seeded with its id).
    let mut first = BTreeSet::new();
    for n in 1..=30 {
        let mut h = Harness::with_config(n, &[n, 100, 101], no_pre_vote);
        first.insert(ticks_to_campaign(&mut h));
    }
    assert!(first.iter().all(|t| (10..20).contains(t)), "{first:?}");
    assert!(first.len() >= 5, "timeouts across nodes: {first:?}");

    let mut h = Harness::with_config(1, THREE, no_pre_vote);
    let mut successive = BTreeSet::new();
    for _ in 0..10 {
        successive.insert(ticks_to_campaign(&mut h));
        h.persist();
    }
    assert!(successive.iter().all(|t| (10..20).contains(t)));
    assert!(
        successive.len() >= 3,
        "timeouts of one node: {successive:?}"
    );
}

/// Raft §5.2, Figure 2 "Rules for Servers, followers": a follower that keeps hearing from its
/// leader never starts an election, and granting a vote also restarts its timer.
#[test]
fn follower_that_hears_from_leader_or_grants_vote_does_not_time_out() {
    let mut h = follower_of_1(1, &[]);
    for _ in 0..50 {
        h.tick(5);
        h.recv(heartbeat(1, 2, 1, 0, 0));
    }
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.stats().elections, 0);

    // A vote in the node's own term (adopting a new term restarts the timer by itself).
    let short_timeouts = config(1, |c| c.election_ticks_max = 12);
    let state = restored(THREE, 1, None, &[], 0);
    let mut h = Harness::restore(short_timeouts, state).expect("consistent state");
    h.tick(9);
    h.recv(vote_request(2, 1, 1, LogId::ZERO));
    h.persist();
    h.tick(9);
    assert_eq!(
        h.node.role(),
        Role::Follower,
        "the grant restarted the timer"
    );
    h.tick(3);
    assert_ne!(h.node.role(), Role::Follower);
}

// ---- pre-vote, CheckQuorum, the disruptive-server rule (Raft thesis §9.6, §6.2, §4.2.3) ------

/// Raft thesis §9.6: answering a pre-vote changes neither the receiver's term nor its vote.
#[test]
fn pre_vote_does_not_change_receivers_term_or_vote() {
    let mut h = Harness::restored(1, restored(THREE, 1, Some(3), &[1], 0));
    let out = h.recv(pre_vote_request(2, 1, 2, LogId::new(1, 1)));
    assert_eq!(out.vote_responses(), [(2, 2, true, true)]);
    assert!(out.writes.is_empty());
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(h.node.status().vote, Some(id(3)));

    // Refused by the election restriction: also no change.
    let out = h.recv(pre_vote_request(2, 1, 2, LogId::ZERO));
    assert_eq!(out.vote_responses(), [(2, 1, false, true)]);
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(h.node.status().vote, Some(id(3)));
}

/// Raft thesis §9.6: a pre-candidate becomes a candidate (and raises its term) only once a
/// majority said it could win.
#[test]
fn pre_candidate_campaigns_only_after_majority_of_pre_votes() {
    let mut h = Harness::new(1, FIVE);
    h.step(Input::Campaign);
    assert_eq!(h.node.role(), Role::PreCandidate);
    h.recv(vote_response(2, 1, 1, true, true));
    assert_eq!(h.node.role(), Role::PreCandidate);
    assert_eq!(h.node.term(), Term(0));
    let out = h.recv(vote_response(3, 1, 1, true, true));
    assert_eq!(h.node.role(), Role::Candidate);
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(out.sends.len(), 4);

    // Refused by a majority: back to follower, term unchanged.
    let mut h = Harness::new(1, THREE);
    h.step(Input::Campaign);
    h.recv(vote_response(2, 1, 0, false, true));
    h.recv(vote_response(3, 1, 0, false, true));
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.term(), Term(0));
}

/// Raft thesis §6.2 (CheckQuorum): a leader that has not heard from a majority within an
/// election timeout steps down.
#[test]
fn leader_steps_down_when_it_hears_from_no_quorum_for_an_election_timeout() {
    // No answer at all.
    let mut h = Harness::new(1, THREE);
    h.elect();
    h.persist();
    let min = h.node.config().election_ticks_min;
    h.tick(min - 1);
    assert_eq!(h.node.role(), Role::Leader);
    h.tick(1);
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(h.node.stats().check_quorum_step_downs, 1);

    // An answer from one follower keeps it in office for one period, not two.
    let mut h = Harness::new(1, THREE);
    h.elect();
    h.persist();
    h.tick(min - 1);
    h.recv(heartbeat_response(3, 1, 1, 0));
    h.tick(1);
    assert_eq!(
        h.node.role(),
        Role::Leader,
        "heard from 3 within the period"
    );

    h.tick(min - 1);
    assert_eq!(h.node.role(), Role::Leader);
    h.tick(1);
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(h.node.stats().check_quorum_step_downs, 1);
}

/// Raft thesis §4.2.3: a server that heard from a current leader within the minimum election
/// timeout neither grants a vote nor adopts the term of a vote request.
#[test]
fn follower_in_lease_ignores_higher_term_vote_request() {
    let mut h = follower_of_1(1, &[1]);
    let out = h.recv(vote_request(3, 2, 2, LogId::new(1, 1)));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.node.term(), Term(1));
    assert_eq!(h.node.status().vote, None);
    assert_eq!(h.node.stats().votes_ignored_in_lease, 1);
    let out = h.recv(pre_vote_request(3, 2, 2, LogId::new(1, 1)));
    assert!(out.is_empty(), "{out:?}");

    // After a minimum election timeout without the leader, the request is heard.
    let min = h.node.config().election_ticks_min;
    h.tick(min);
    let mut out = h.recv(vote_request(3, 2, 2, LogId::new(1, 1)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(3, 2, true, false)]);
    assert_eq!(h.node.term(), Term(2));
}

/// Raft thesis §4.2.3 at the leader, with CheckQuorum off: while it hears from a quorum it is
/// the current leader, and a vote request of a higher term (a removed server campaigning
/// without pre-vote, say) neither deposes it nor raises its term. After a CheckQuorum period
/// without a quorum it hears such requests again (and, CheckQuorum being off, stays leader
/// until then).
#[test]
fn leader_hearing_a_quorum_ignores_higher_term_vote_requests_without_check_quorum() {
    let mut h = Harness::with_config(1, THREE, |c| c.check_quorum = false);
    h.elect();
    h.persist();
    let min = h.node.config().election_ticks_min;
    let disruptor = LogId::new(1, 1);
    // A period in which 2 answers: a quorum with the leader.
    for _ in 0..min {
        h.tick(1);
        h.recv(heartbeat_response(2, 1, 1, 0));
    }
    let out = h.recv(vote_request(3, 1, 5, disruptor));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!((h.node.role(), h.node.term()), (Role::Leader, Term(1)));
    assert_eq!(h.node.stats().votes_ignored_in_lease, 1);
    // A whole period in which nobody answers (the period running now may have heard from 2):
    // the lease is over.
    h.tick(2 * min);
    assert_eq!(h.node.role(), Role::Leader);
    h.recv(vote_request(3, 1, 5, disruptor));
    assert_eq!((h.node.role(), h.node.term()), (Role::Follower, Term(5)));
}
