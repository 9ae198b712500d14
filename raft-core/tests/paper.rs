//! One test per rule of the Raft paper (Ongaro and Ousterhout, "In Search of an Understandable
//! Consensus Algorithm", Figure 2 and §5.1–§5.4), plus the extensions the core implements from
//! the Raft thesis: pre-vote, CheckQuorum, the disruptive-server rule, ReadIndex and leadership
//! transfer, and the core's own persistence contract and input validation.
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use std::collections::BTreeSet;

use common::{
    Harness, accepted, append, append_response, config, heartbeat, heartbeat_response, id, msg,
    pre_vote_request, restored, vote_request, vote_response,
};
use raft_core::{
    AppendOutcome, Change, Config, HardState, Index, Input, LogId, Membership, MessageBody, Misuse,
    Outputs, Payload, ReadId, ReadResult, Refusal, Reject, Role, StepError, Term,
};

const THREE: &[u64] = &[1, 2, 3];
const FIVE: &[u64] = &[1, 2, 3, 4, 5];

fn no_pre_vote(c: &mut Config) {
    c.pre_vote = false;
}

/// Node 2 of three, a follower in `term` with log `terms`, that has heard from leader 1.
fn follower_of_1(term: u64, terms: &[u64]) -> Harness {
    let mut h = Harness::restored(2, restored(THREE, term, None, terms, 0));
    h.recv(heartbeat(1, 2, term, 0, 0));
    assert_eq!(h.node.leader(), Some(id(1)));
    h
}

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

    // A stale heartbeat is answered the same way.
    let out = newer.recv(heartbeat(1, 2, 1, 0, 0));
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

// ---- §5.3 log replication --------------------------------------------------------------------

/// Raft §5.3, Figure 2 AppendEntries receiver rule 2: reply false if the log does not contain an
/// entry at prevLogIndex whose term matches prevLogTerm. The reply carries a hint for the leader.
#[test]
fn follower_rejects_append_when_prev_log_does_not_match() {
    let mut h = Harness::restored(2, restored(THREE, 2, None, &[1, 1, 2, 2, 2], 0));
    let before = h.node.last_log();

    // An entry at the index, of another term.
    let out = h.recv(append(1, 2, 2, LogId::new(1, 4), &[2], 0));
    assert_eq!(
        out.append_responses(),
        [(
            1,
            2,
            AppendOutcome::Conflict {
                rejected: Index(4),
                hint: LogId::new(1, 2),
            }
        )]
    );
    assert_eq!(h.node.last_log(), before, "nothing appended");

    // No entry at the index at all.
    let out = h.recv(append(1, 2, 2, LogId::new(2, 9), &[2], 0));
    assert_eq!(
        out.append_responses(),
        [(
            1,
            2,
            AppendOutcome::Conflict {
                rejected: Index(9),
                hint: LogId::new(2, 5),
            }
        )]
    );
    assert_eq!(h.node.last_log(), before);
    assert!(out.writes.is_empty());
}

/// Raft §5.3, Figure 2 AppendEntries receiver rule 3: if an existing entry conflicts with a new
/// one (same index, different terms), delete the existing entry and all that follow it.
#[test]
fn follower_deletes_conflicting_entry_and_all_that_follow() {
    let mut h = Harness::restored(2, restored(THREE, 2, None, &[1, 1, 2, 2, 2], 0));
    let out = h.recv(append(1, 2, 3, LogId::new(1, 2), &[3], 0));
    assert_eq!(h.node.last_log(), LogId::new(3, 3));
    assert_eq!(h.node.status().log_len, 3);
    let truncations: Vec<Index> = out.writes.iter().filter_map(|w| w.truncate_from).collect();
    assert_eq!(truncations, [Index(3)]);
    assert_eq!(out.written(), [LogId::new(3, 3)]);
    let out = h.persist();
    assert_eq!(
        out.append_responses(),
        [(
            1,
            3,
            AppendOutcome::Accepted {
                match_index: Index(3)
            }
        )]
    );
}

/// Raft §5.3, Figure 2 AppendEntries receiver rule 4: append any new entries not already in the
/// log (entries already present are not written again).
#[test]
fn follower_appends_new_entries_not_already_in_log() {
    let mut h = Harness::restored(2, restored(THREE, 1, None, &[1, 1], 0));
    let out = h.recv(append(1, 2, 1, LogId::new(1, 1), &[1, 1, 1], 0));
    assert_eq!(out.written(), [LogId::new(1, 3), LogId::new(1, 4)]);
    assert!(out.writes.iter().all(|w| w.truncate_from.is_none()));
    assert_eq!(h.node.last_log(), LogId::new(1, 4));
    let out = h.persist();
    assert_eq!(
        out.append_responses(),
        [(
            1,
            1,
            AppendOutcome::Accepted {
                match_index: Index(4)
            }
        )]
    );
}

/// Raft §5.3, Figure 2 AppendEntries receiver rule 5: if leaderCommit > commitIndex, set
/// commitIndex = min(leaderCommit, index of last new entry).
#[test]
fn follower_sets_commit_to_min_of_leader_commit_and_last_new_entry() {
    // The leader's commit is past the entries sent: capped at the last new one.
    let mut h = Harness::new(2, THREE);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1], 5));
    assert_eq!(h.node.commit_index(), Index(2));

    // The leader's commit is below the entries sent.
    let mut h = Harness::new(2, THREE);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1, 1], 1));
    assert_eq!(h.node.commit_index(), Index(1));

    // The follower holds entries past the message's last one; those are not known to match the
    // leader's log, so they are not committed.
    let mut h = Harness::restored(2, restored(THREE, 1, None, &[1, 1, 1, 1], 0));
    h.recv(append(1, 2, 1, LogId::new(1, 1), &[], 3));
    assert_eq!(h.node.commit_index(), Index(1));
    h.recv(append(1, 2, 1, LogId::new(1, 2), &[1], 4));
    assert_eq!(h.node.commit_index(), Index(3));

    // It never goes back.
    h.recv(append(1, 2, 1, LogId::new(1, 3), &[], 1));
    assert_eq!(h.node.commit_index(), Index(3));
}

/// Raft §5.3: a delayed or duplicated AppendEntries must not truncate entries a later one
/// appended (the "if an existing entry conflicts" condition of rule 3 is essential).
#[test]
fn stale_append_does_not_truncate_entries_appended_by_later_one() {
    let mut h = Harness::new(2, THREE);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1, 1], 0));
    h.persist();
    let mut out = h.recv(append(1, 2, 1, LogId::ZERO, &[1], 0));
    out.merge(h.persist());
    assert_eq!(h.node.last_log(), LogId::new(1, 3));
    assert!(out.writes.is_empty(), "nothing to write: {:?}", out.writes);
    assert_eq!(
        out.append_responses(),
        [(
            1,
            1,
            AppendOutcome::Accepted {
                match_index: Index(1)
            }
        )],
        "acknowledges only what the message covered"
    );
}

/// Raft §5.3, Figure 2 "Rules for Servers, leaders": if AppendEntries fails because of log
/// inconsistency, decrement nextIndex and retry.
#[test]
fn leader_backs_up_next_index_on_rejection() {
    let mut h = Harness::restored(1, restored(THREE, 2, None, &[1, 1, 2], 0));
    let out = h.elect();
    assert_eq!(h.node.term(), Term(3));
    let first: Vec<_> = out.appends().into_iter().filter(|a| a.0 == 2).collect();
    assert_eq!(
        first,
        [(2, LogId::new(2, 3), vec![LogId::new(3, 4)], 0)],
        "the first probe is after the leader's last entry"
    );
    let conflict = AppendOutcome::Conflict {
        rejected: Index(3),
        hint: LogId::new(1, 2),
    };
    let out = h.recv(append_response(2, 1, 3, conflict));
    assert_eq!(
        out.appends(),
        [(
            2,
            LogId::new(1, 2),
            vec![LogId::new(2, 3), LogId::new(3, 4)],
            0
        )]
    );
}

/// Raft §5.3 (the optimization at the end of the section): with the follower's hint, the leader
/// skips every conflicting entry of a term in one round trip instead of one entry per round trip.
#[test]
fn leader_fast_backtracking_skips_whole_term_using_conflict_hint() {
    let mut leader = Harness::restored(1, restored(THREE, 4, None, &[1, 1, 1, 4, 4, 4, 4], 0));
    let mut follower = Harness::restored(
        2,
        restored(THREE, 3, None, &[1, 1, 1, 2, 2, 3, 3, 3, 3, 3], 0),
    );
    let mut to_follower = leader.elect();
    leader.persist();
    assert_eq!(leader.node.term(), Term(5));

    let mut conflicts = 0;
    for _ in 0..10 {
        let reply = follower.deliver(&to_follower);
        conflicts += reply
            .append_responses()
            .iter()
            .filter(|r| matches!(r.2, AppendOutcome::Conflict { .. }))
            .count();
        if reply.sends.is_empty() {
            break;
        }
        to_follower = leader.deliver(&reply);
    }
    assert_eq!(conflicts, 1, "one round trip skips the whole of term 4");
    assert_eq!(follower.node.last_log(), LogId::new(5, 8));
    assert_eq!(leader.node.commit_index(), Index(8));
    assert_eq!(follower.node.commit_index(), Index(8));
}

/// Raft §5.3 with the persistence contract: a follower acknowledges entries only once they are
/// durable on its disk; what vouches for nothing durable is not held back behind that write
/// (a follower whose disk is slow still answers heartbeats, so CheckQuorum keeps its leader:
/// simulator seed 209533 of the membership scenario).
#[test]
fn append_ack_withheld_until_follower_write_is_acknowledged() {
    let mut h = Harness::new(2, THREE);
    let out = h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1], 0));
    assert_eq!(out.written(), [LogId::new(1, 1), LogId::new(1, 2)]);
    assert!(
        out.append_responses().is_empty(),
        "acknowledged before durable"
    );
    // What vouches for nothing on the disk goes out at once: a heartbeat's answer, and a
    // conflict (an append after an entry the follower lacks).
    let out = h.recv(heartbeat(1, 2, 1, 1, 7));
    assert_eq!(
        out.sends.iter().map(|m| &m.body).collect::<Vec<_>>(),
        [&MessageBody::HeartbeatResponse {
            read_round: 7,
            writes_pending: true
        }]
    );
    let out = h.recv(append(1, 2, 1, LogId::new(1, 5), &[1], 0));
    assert_eq!(
        out.append_responses(),
        [(
            1,
            1,
            AppendOutcome::Conflict {
                rejected: Index(5),
                hint: LogId::new(1, 2)
            }
        )]
    );
    let out = h.persist();
    assert_eq!(
        out.append_responses(),
        [(
            1,
            1,
            AppendOutcome::Accepted {
                match_index: Index(2)
            }
        )]
    );
}

/// Raft §5.3, Figure 2 "Rules for Servers, leaders": if the last log index is at least a
/// follower's nextIndex, send it AppendEntries with the entries from nextIndex.
#[test]
fn leader_replicates_new_entries_to_followers() {
    let mut h = Harness::leader(1, THREE);
    let out = h.step(Input::Propose(Payload::new(b"x")));
    assert_eq!(out.written(), [LogId::new(1, 2)]);
    let to_2: Vec<_> = out.appends().into_iter().filter(|a| a.0 == 2).collect();
    assert_eq!(to_2, [(2, LogId::new(1, 1), vec![LogId::new(1, 2)], 1)]);
}

/// Raft Figure 2 "Rules for Servers, leaders": upon election, send initial AppendEntries to each
/// server, and repeat heartbeats during idle periods to prevent election timeouts.
#[test]
fn leader_sends_heartbeats_during_idle_periods() {
    let mut h = Harness::leader(1, THREE);
    let every = h.node.config().heartbeat_ticks;
    for _ in 0..5 {
        let out = h.tick(every - 1);
        assert!(out.sends.is_empty(), "{:?}", out.sends);
        let out = h.tick(1);
        let mut to: Vec<u64> = out
            .sends
            .iter()
            .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
            .map(|m| m.to.get())
            .collect();
        to.sort_unstable();
        assert_eq!(to, [2, 3]);
        // Keep CheckQuorum satisfied.
        h.recv(heartbeat_response(2, 1, 1, 0));
    }
}

/// Raft §5.3: if a follower does not answer (its messages were lost), the leader retries
/// AppendEntries until the follower eventually stores every entry.
#[test]
fn leader_retries_append_entries_when_follower_makes_no_progress() {
    let mut h = Harness::leader(1, THREE); // 3 never answered the first AppendEntries
    let lost = h.step(Input::Propose(Payload::new(b"x")));
    assert_eq!(
        lost.appends(),
        [(2, LogId::new(1, 1), vec![LogId::new(1, 2)], 1)]
    );
    let retries = |out: &common::Out, to: u64| -> Vec<Vec<LogId>> {
        out.appends()
            .into_iter()
            .filter(|a| a.0 == to && !a.2.is_empty())
            .map(|a| a.2)
            .collect()
    };
    // Heartbeat answers show no progress: the leader sends the entries again.
    let out = h.recv(heartbeat_response(3, 1, 1, 0));
    assert_eq!(retries(&out, 3), [vec![LogId::new(1, 1), LogId::new(1, 2)]]);
    // 2 was pipelining: the leader asks first, with an empty append after the entry in flight,
    // and resends once 2's refusal says the entry is missing.
    let mut out = h.recv(heartbeat_response(2, 1, 1, 0));
    out.merge(h.recv(heartbeat_response(2, 1, 1, 0)));
    let to_2: Vec<(LogId, Vec<LogId>)> = out
        .appends()
        .into_iter()
        .filter(|a| a.0 == 2)
        .map(|a| (a.1, a.2))
        .collect();
    assert_eq!(to_2, [(LogId::new(1, 2), vec![])]);
    let refused = AppendOutcome::Conflict {
        rejected: Index(2),
        hint: LogId::new(1, 1),
    };
    let out = h.recv(append_response(2, 1, 1, refused));
    assert_eq!(retries(&out, 2), [vec![LogId::new(1, 2)]]);
}

/// A follower whose writes are pending says so in its heartbeat answers (they do not wait for
/// its disk, its acknowledgements do): the leader does not take the missing acknowledgements
/// for a loss, and neither asks nor resends.
#[test]
fn a_follower_with_writes_pending_is_not_taken_for_stalled() {
    let mut h = replicating_leader(|_| {});
    h.step(Input::Propose(Payload::new(b"a")));
    h.persist();
    let slow = |round| {
        msg(
            2,
            1,
            1,
            MessageBody::HeartbeatResponse {
                read_round: round,
                writes_pending: true,
            },
        )
    };
    for round in 0..4 {
        let out = h.recv(slow(round));
        assert_eq!(
            out.sent_to(2),
            Vec::<&raft_core::Message>::new(),
            "round {round}"
        );
    }
    // Once its disk has caught up, two answers without progress are a stall again.
    h.recv(heartbeat_response(2, 1, 1, 0));
    let out = h.recv(heartbeat_response(2, 1, 1, 0));
    assert_eq!(out.appends().iter().filter(|a| a.0 == 2).count(), 1);
}

// ---- §5.4 safety -----------------------------------------------------------------------------

/// Raft §5.4.1, Figure 2 RequestVote receiver rule 2: grant a vote only if the candidate's log is
/// at least as up to date; a log whose last entry has an older term is less up to date, however
/// long it is.
#[test]
fn vote_refused_to_candidate_with_older_last_term() {
    let mut h = Harness::restored(1, restored(THREE, 2, None, &[1, 1, 2], 0));
    let mut out = h.recv(vote_request(2, 1, 3, LogId::new(1, 7)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(2, 3, false, false)]);
    assert_eq!(h.node.term(), Term(3), "the term is still adopted");
    assert_eq!(h.node.status().vote, None);

    // A later last term wins even with a shorter log.
    let mut out = h.recv(vote_request(3, 1, 3, LogId::new(3, 1)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(3, 3, true, false)]);
}

/// Raft §5.4.1: if the logs end with the same term, the longer log is more up to date.
#[test]
fn vote_refused_to_candidate_with_shorter_log_at_equal_last_term() {
    let mut h = Harness::restored(1, restored(THREE, 2, None, &[1, 1, 2], 0));
    let mut out = h.recv(vote_request(2, 1, 3, LogId::new(2, 2)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(2, 3, false, false)]);
    assert_eq!(h.node.status().vote, None);

    let mut out = h.recv(vote_request(3, 1, 3, LogId::new(2, 3)));
    out.merge(h.persist());
    assert_eq!(
        out.vote_responses(),
        [(3, 3, true, false)],
        "an equal log is up to date"
    );
}

/// Raft §5.4.2, Figure 8: a leader never commits an entry from an earlier term by counting
/// replicas; only entries of its own term are, and earlier ones are committed with them.
#[test]
fn leader_commits_only_current_term_entries_by_counting() {
    // Index 1 is committed; index 2 was appended in term 2 and never committed.
    let one_entry_per_message = config(1, |c| c.max_msg_entries = 1);
    let state = restored(THREE, 2, None, &[1, 2], 1);
    let mut leader = Harness::restore(one_entry_per_message, state).expect("consistent state");
    let mut follower = Harness::restored(2, restored(THREE, 2, None, &[1], 1));
    let mut to_follower = leader.elect();
    leader.persist();
    assert_eq!(leader.node.term(), Term(3));
    assert_eq!(leader.node.last_log(), LogId::new(3, 3));

    let mut saw_old_entry_on_majority = false;
    for _ in 0..10 {
        let reply = follower.deliver(&to_follower);
        if reply.sends.is_empty() {
            break;
        }
        to_follower = leader.deliver(&reply);
        if follower.node.last_log() == LogId::new(2, 2) {
            // Entry 2 (term 2) is now on two of three nodes.
            saw_old_entry_on_majority = true;
            assert_eq!(
                leader.node.commit_index(),
                Index(1),
                "committed an entry of an earlier term by counting replicas"
            );
        }
    }
    assert!(saw_old_entry_on_majority, "the test did not reach its case");
    assert_eq!(follower.node.last_log(), LogId::new(3, 3));
    assert_eq!(leader.node.commit_index(), Index(3));
}

/// Raft §5.4.2 with the persistence contract: a leader counts itself towards a majority only for
/// entries durable on its own disk.
#[test]
fn leader_counts_itself_toward_commit_only_after_its_own_write_is_acknowledged() {
    let mut h = Harness::new(1, THREE);
    h.elect();
    let no_op = h.unacked().expect("the no-op write");
    let out = h.recv(accepted(2, 1, 1, 1));
    assert_eq!(
        h.node.commit_index(),
        Index(0),
        "committed with one durable copy of three"
    );
    assert!(out.apply.is_empty());
    let out = h.step(Input::Persisted(no_op));
    assert_eq!(h.node.commit_index(), Index(1));
    assert_eq!(out.applied(), [LogId::new(1, 1)]);
}

/// Raft Figure 2 "Rules for Servers, all servers": if commitIndex > lastApplied, apply entries in
/// log order; with the persistence contract, only entries that are also durable locally.
#[test]
fn entries_are_applied_in_order_only_when_committed_and_durable() {
    let mut h = Harness::new(2, THREE);
    let out = h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1, 1], 2));
    assert_eq!(h.node.commit_index(), Index(2));
    assert!(out.apply.is_empty(), "applied an entry that is not durable");
    let out = h.persist();
    assert_eq!(out.applied(), [LogId::new(1, 1), LogId::new(1, 2)]);
    let out = h.recv(heartbeat(1, 2, 1, 3, 0));
    assert_eq!(out.applied(), [LogId::new(1, 3)]);

    h.step(Input::Applied(Index(3)));
    assert_eq!(h.node.applied_index(), Index(3));
    let (result, _) = h.try_step(Input::Applied(Index(4)));
    assert_eq!(
        result,
        Err(StepError::Misuse(Misuse::AppliedPastEmitted {
            index: Index(4),
            emitted: Index(3)
        }))
    );
}

/// Raft §5.3 with the persistence contract: entries written and then replaced by a new leader
/// before their write was acknowledged are never applied, even when that acknowledgement arrives
/// after the replacement.
#[test]
fn replaced_entries_are_never_applied_even_if_their_write_is_acknowledged_late() {
    let mut h = Harness::new(2, THREE);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1, 1, 1], 0));
    let old_write = h.unacked().expect("the entries' write");
    // The leader of term 2 replaces entries 2 and 3, and says index 2 is committed.
    let out = h.recv(append(3, 2, 2, LogId::new(1, 1), &[2], 2));
    assert_eq!(h.node.commit_index(), Index(2));
    assert!(out.apply.is_empty());

    let out = h.step(Input::Persisted(old_write));
    assert_eq!(
        out.applied(),
        [LogId::new(1, 1)],
        "only entry 1 is both committed and durable"
    );
    assert!(
        !out.sends.iter().any(|m| m.to == id(3)),
        "acknowledged term 2's entry before its write was durable"
    );
    let out = h.persist();
    assert_eq!(out.applied(), [LogId::new(2, 2)]);
    assert_eq!(
        out.append_responses(),
        [(
            3,
            2,
            AppendOutcome::Accepted {
                match_index: Index(2)
            }
        )]
    );
}

/// Raft Figure 2 / §5.3: a commit index past the end of the log cannot come from a correct
/// leader. The node rejects it with a typed error, changes nothing, counts it, and keeps serving
/// (etcd's raft and raft-rs panic here).
#[test]
fn heartbeat_with_commit_past_log_is_rejected_and_node_keeps_serving() {
    let mut h = Harness::restored(2, restored(THREE, 1, None, &[1, 1], 0));
    let before = h.node.status();
    for term in [1, 4] {
        let (result, out) = h.try_recv(heartbeat(1, 2, term, 5, 0));
        assert_eq!(
            result,
            Err(StepError::Rejected(Reject::CommitPastLog {
                commit: Index(5),
                last: Index(2)
            }))
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(h.node.status(), before);
    }
    assert_eq!(h.node.stats().rejected, 2);
    assert!(matches!(
        h.node.stats().last_rejected,
        Some(Reject::CommitPastLog { .. })
    ));

    let out = h.recv(heartbeat(1, 2, 1, 2, 0));
    assert_eq!(h.node.leader(), Some(id(1)));
    assert_eq!(h.node.commit_index(), Index(2));
    assert_eq!(out.applied(), [LogId::new(1, 1), LogId::new(1, 2)]);
    assert_eq!(out.sends.len(), 1, "the heartbeat is answered");
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

// ---- §7 log compaction -----------------------------------------------------------------------

/// Raft §7: the node suggests a snapshot whenever its log outgrows the configured size, also
/// after it installed a snapshot from its leader (which replaces any snapshot the application was
/// about to take): otherwise a follower that once installed one while a suggestion was pending
/// would never be told again, and its log would grow without bound.
#[test]
fn snapshot_is_suggested_again_after_installing_one_from_the_leader() {
    let suggested = |out: &common::Out| {
        out.events
            .iter()
            .any(|e| matches!(e, raft_core::Event::SnapshotSuggested { .. }))
    };
    let mut h = Harness::with_config(2, THREE, |c| c.snapshot_log_entries = 4);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1; 6], 6));
    h.persist();
    let out = h.step(Input::Applied(Index(6)));
    assert!(suggested(&out), "log of 6 entries past the limit of 4");
    // Before the application takes it, a snapshot arrives from the leader.
    let meta = raft_core::SnapshotMeta {
        last: LogId::new(1, 10),
        membership: common::membership(THREE),
    };
    let install = msg(
        1,
        2,
        1,
        MessageBody::InstallSnapshot {
            meta: Box::new(meta),
            offset: 0,
            data: Payload::new(b"state"),
            done: true,
        },
    );
    h.recv(install);
    h.persist();
    h.step(Input::Applied(Index(10)));
    // The log grows past the limit again: a new suggestion.
    h.recv(append(1, 2, 1, LogId::new(1, 10), &[1; 6], 16));
    h.persist();
    let out = h.step(Input::Applied(Index(16)));
    assert!(
        suggested(&out),
        "no suggestion after the installed snapshot"
    );
}

/// Raft §7: snapshots come once per `snapshot_log_entries` applied entries, also when the log
/// keeps more trailing entries below a snapshot than that (found by the chaos runs: a length rule
/// suggested a snapshot after every entry once the log passed the interval, and never compacted).
#[test]
fn a_snapshot_is_suggested_once_per_interval_even_with_more_trailing_entries() {
    let mut h = Harness::with_config(2, THREE, |c| {
        c.snapshot_log_entries = 20;
        c.snapshot_trailing_entries = 1024;
    });
    let mut suggestions = 0;
    let mut last = LogId::ZERO;
    for _ in 0..10 {
        let commit = last.index.0 + 10;
        h.recv(append(1, 2, 1, last, &[1; 10], commit));
        h.persist();
        let out = h.step(Input::Applied(Index(commit)));
        last = LogId::new(1, commit);
        if out
            .events
            .iter()
            .any(|e| matches!(e, raft_core::Event::SnapshotSuggested { .. }))
        {
            suggestions += 1;
            let meta = h.node.snapshot_meta(Index(commit)).expect("applied");
            h.step(Input::SnapshotTaken(Box::new(meta)));
        }
    }
    // 100 entries at an interval of 20: after 30, 60 and 90.
    assert_eq!(
        suggestions, 3,
        "one snapshot per interval, not one per entry"
    );
}

/// A complete snapshot from leader 1 of `term`, ending at `last`.
fn install_snapshot(to: u64, term: u64, last: LogId) -> raft_core::Message {
    msg(
        1,
        to,
        term,
        MessageBody::InstallSnapshot {
            meta: Box::new(raft_core::SnapshotMeta {
                last,
                membership: common::membership(THREE),
            }),
            offset: 0,
            data: Payload::new(b"state"),
            done: true,
        },
    )
}

/// Raft Figure 13 (InstallSnapshot), rules 6 and 7: a log that holds the snapshot's last entry
/// keeps what follows it; any other log is discarded entirely, in the same write that installs
/// the snapshot. Here the follower's entry at the snapshot's index is of an older term: its
/// suffix (of that term, and beyond the snapshot) belongs to another history.
#[test]
fn snapshot_discards_a_log_that_conflicts_with_it() {
    // Entries 3 and 4 of term 2 never committed; leader 1 of term 3 has (3, 3) at index 3.
    let mut h = Harness::restored(2, restored(THREE, 2, None, &[1, 1, 2, 2], 0));
    let out = h.recv(install_snapshot(2, 3, LogId::new(3, 3)));
    assert_eq!(
        h.node.last_log(),
        LogId::new(3, 3),
        "the conflicting suffix is gone"
    );
    let install = out
        .writes
        .iter()
        .find(|w| w.snapshot.is_some())
        .expect("the snapshot is written");
    assert_eq!(
        install.truncate_from,
        Some(Index(4)),
        "the disk drops the conflicting suffix with the same write"
    );
    h.persist();
    assert_eq!(h.node.last_log(), LogId::new(3, 3));

    // Rule 6: the log holds the snapshot's last entry, so the entry after it stays.
    let mut h = Harness::restored(2, restored(THREE, 3, None, &[1, 1, 3, 3], 0));
    let out = h.recv(install_snapshot(2, 3, LogId::new(3, 3)));
    assert_eq!(h.node.last_log(), LogId::new(3, 4));
    let install = out.writes.iter().find(|w| w.snapshot.is_some());
    assert_eq!(install.map(|w| w.truncate_from), Some(None));
}

/// The persistence contract: a snapshot received from the leader reaches the state machine only
/// once the write installing it is durable (a crash before that would leave a state machine ahead
/// of everything the node can restart from).
#[test]
fn snapshot_from_the_leader_is_applied_only_once_durable() {
    let mut h = follower_of_1(1, &[1, 1]);
    h.persist();
    let out = h.recv(install_snapshot(2, 1, LogId::new(1, 10)));
    assert_eq!(
        out.applied(),
        [],
        "applied before the install write is durable"
    );
    assert_eq!(h.node.commit_index(), Index(10));
    let out = h.persist();
    assert_eq!(out.applied(), [LogId::new(1, 10)]);
}

// ---- the adapter's interface: timers, counters, unreachable peers, batches --------------------

/// `Node::ticks_until_timer`: ticks can pass that many times, minus one, with nothing happening;
/// the next fires the timer. A follower's timer is its election timeout.
#[test]
fn a_followers_timer_is_its_election_timeout() {
    let mut h = Harness::new(1, THREE);
    let n = h.node.ticks_until_timer();
    let c = h.node.config().clone();
    assert!(
        (c.election_ticks_min..=c.election_ticks_max).contains(&n),
        "{n}"
    );
    let out = h.tick(n - 1);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.node.ticks_until_timer(), 1);
    let out = h.tick(1);
    assert_eq!(h.node.role(), Role::PreCandidate);
    assert!(!out.sends.is_empty());
}

/// `Node::ticks_until_timer`: a leader's timer is its next heartbeat (or the end of its
/// CheckQuorum period, whichever comes first).
#[test]
fn a_leaders_timer_is_its_next_heartbeat() {
    let mut h = Harness::leader(1, THREE);
    let heartbeat = h.node.config().heartbeat_ticks;
    assert_eq!(heartbeat, 2, "the default");
    assert_eq!(h.node.ticks_until_timer(), heartbeat);
    let out = h.tick(1);
    assert!(out.sends.is_empty(), "{:?}", out.sends);
    assert_eq!(h.node.ticks_until_timer(), 1);
    let out = h.tick(1);
    assert_eq!(out.sent_to(2).len(), 1, "a heartbeat");
    assert_eq!(h.node.ticks_until_timer(), heartbeat);

    // Once a heartbeat went out 6 ticks into a CheckQuorum period of 10, the period's end, 4
    // ticks on, comes before the next heartbeat.
    let mut h = Harness::with_config(1, THREE, |c| c.heartbeat_ticks = 6);
    h.elect();
    assert_eq!(h.node.config().election_ticks_min, 10, "the default");
    assert_eq!(h.node.ticks_until_timer(), 6);
    let out = h.tick(6);
    assert_eq!(out.sent_to(2).len(), 1, "a heartbeat");
    assert_eq!(h.node.ticks_until_timer(), 4);
}

/// `Node::ticks_until_timer`: a node that may not campaign (a learner) has no timer to fire.
#[test]
fn a_learner_has_no_timer() {
    let voters = [id(1), id(2), id(3)];
    let m = Membership::with_learners(&voters, &[id(4)]).expect("valid");
    let state = raft_core::Restored::initial(m);
    let mut h = Harness::restored(4, state);
    assert_eq!(h.node.ticks_until_timer(), u32::MAX);
    let out = h.tick(h.node.config().election_ticks_max * 2);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.node.role(), Role::Follower);
}

/// `Stats`: an election started and won counts once in `elections` and once in `became_leader`;
/// a refused request counts in `refused`.
#[test]
fn stats_count_elections_leaderships_and_refusals() {
    let mut h = Harness::with_config(1, THREE, no_pre_vote);
    h.elect();
    assert_eq!(h.node.stats().elections, 1);
    assert_eq!(h.node.stats().became_leader, 1);
    assert_eq!(h.node.stats().refused, 0);
    let (result, _) = h.try_step(Input::TransferLeader(id(1)));
    assert!(matches!(result, Err(StepError::Refused(_))), "{result:?}");
    assert_eq!(h.node.stats().refused, 1);

    // A refusal returned by a method rather than a step is counted too.
    let mut follower = Harness::new(2, THREE);
    let mut out = Outputs::new();
    let refused = follower.node.propose(Payload::new(b"x"), &mut out);
    assert!(matches!(refused, Err(StepError::Refused(_))), "{refused:?}");
    let refused = follower.node.propose_batch(&[Payload::new(b"x")], &mut out);
    assert!(matches!(refused, Err(StepError::Refused(_))), "{refused:?}");
    assert_eq!(follower.node.stats().refused, 2);
}

/// `Input::Unreachable`: the leader stops pipelining to that peer and probes it; the other
/// peers are left as they are.
#[test]
fn an_unreachable_peer_is_probed_again() {
    use raft_core::ReplicationState;
    fn state(h: &Harness, peer: u64) -> ReplicationState {
        let status = h.node.status();
        let p = status.peers.iter().find(|p| p.id == id(peer));
        p.expect("a peer").state
    }
    let mut h = Harness::leader(1, THREE);
    h.recv(accepted(3, 1, 1, 1));
    assert_eq!(state(&h, 2), ReplicationState::Replicate);
    assert_eq!(state(&h, 3), ReplicationState::Replicate);
    h.step(Input::Unreachable(id(3)));
    assert_eq!(state(&h, 3), ReplicationState::Probe);
    assert_eq!(state(&h, 2), ReplicationState::Replicate);
}

/// `Node::propose_batch` returns the id of the last entry appended, or `None` for no command.
#[test]
fn propose_batch_returns_the_last_entry_appended() {
    let mut h = Harness::leader(1, THREE);
    let mut out = Outputs::new();
    let batch = [Payload::new(b"a"), Payload::new(b"b"), Payload::new(b"c")];
    let last = h.node.propose_batch(&batch, &mut out);
    assert_eq!(last, Ok(Some(LogId::new(1, 4))));
    assert_eq!(h.node.last_log(), LogId::new(1, 4));
    assert_eq!(h.node.propose_batch(&[], &mut out), Ok(None));
    assert_eq!(h.node.last_log(), LogId::new(1, 4));
}

/// A leader elected with `tweak`, its no-op committed and acknowledged by both followers, so both
/// are replicating (pipelining) with nothing in flight.
fn replicating_leader(tweak: impl FnOnce(&mut Config)) -> Harness {
    let mut h = Harness::with_config(1, THREE, tweak);
    h.elect();
    h.persist();
    h.recv(accepted(2, 1, 1, 1));
    h.recv(accepted(3, 1, 1, 1));
    h
}

/// The entries of each AppendEntries to 2 in `sends`, by index.
fn appends_to_2(sends: &[raft_core::Message]) -> Vec<Vec<u64>> {
    sends
        .iter()
        .filter(|m| m.to == id(2))
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries { entries, .. } => {
                Some(entries.iter().map(|e| e.id.index.0).collect())
            }
            _ => None,
        })
        .collect()
}

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

/// `Config::max_entry_bytes` is the largest payload a proposal may carry: one of exactly that
/// size is appended, one byte more is refused with `Refusal::TooLarge`.
#[test]
fn a_proposal_of_exactly_max_entry_bytes_is_accepted() {
    let mut h = Harness::leader(1, THREE);
    let max = usize::try_from(h.node.config().max_entry_bytes).expect("fits");
    let (result, _) = h.try_step(Input::Propose(Payload::from(vec![7; max])));
    assert_eq!(result, Ok(()));
    assert_eq!(h.node.last_log().index, Index(2));
    let (result, _) = h.try_step(Input::Propose(Payload::from(vec![7; max + 1])));
    assert_eq!(result, Err(StepError::Refused(Refusal::TooLarge)));
    assert_eq!(h.node.last_log().index, Index(2));
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

/// `common::leader_sending_a_snapshot` with the default configuration.
fn leader_hearing_a_hint_below_its_snapshot() -> (Harness, common::Out) {
    common::leader_sending_a_snapshot(|_| {})
}

/// Raft §7: a follower whose hint is below the leader's snapshot lacks entries the leader no
/// longer has: the leader sends it the snapshot, not an append it cannot match.
#[test]
fn a_hint_below_the_snapshot_makes_the_leader_send_the_snapshot() {
    let (_, out) = leader_hearing_a_hint_below_its_snapshot();
    assert_eq!(out.appends(), []);
    let to: Vec<(u64, LogId)> = out
        .chunk_requests
        .iter()
        .map(|c| (c.to.get(), c.snapshot))
        .collect();
    assert_eq!(to, [(3, LogId::new(1, 10))]);
}

/// Raft §7: a follower that installed the snapshot is replicated from there; the snapshot's
/// index is already committed, so its acknowledgement advances nothing and the other followers
/// hear nothing new, now or at the next tick.
#[test]
fn an_installed_snapshot_resumes_replication_and_tells_the_others_nothing() {
    let (mut h, _) = leader_hearing_a_hint_below_its_snapshot();
    h.recv(accepted(2, 1, 2, 13));
    assert_eq!(h.node.commit_index(), Index(13));
    let body = MessageBody::SnapshotResponse {
        snapshot: LogId::new(1, 10),
        received: 0,
        installed: true,
    };
    let out = h.recv(msg(3, 1, 2, body));
    assert_eq!(h.node.commit_index(), Index(13));
    let appends: Vec<(u64, LogId)> = out.appends().iter().map(|a| (a.0, a.1)).collect();
    assert_eq!(appends, [(3, LogId::new(1, 10))]);
    assert_eq!(h.tick(1).sent_to(2), Vec::<&raft_core::Message>::new());
}

/// A commit advance that finds a follower paused (its probe unanswered) is not lost: the answer
/// that unpauses it brings it the commit index at once, in a message of its own if no entry is
/// left to send, rather than at the next heartbeat.
#[test]
fn a_follower_paused_when_the_commit_advanced_hears_of_it_when_unpaused() {
    let mut h = Harness::new(1, THREE);
    h.elect();
    h.persist();
    // 2 acknowledges the leader's empty entry: committed, while 3's probe is unanswered.
    h.recv(accepted(2, 1, 1, 1));
    assert_eq!(h.node.commit_index(), Index(1));
    let out = h.recv(accepted(3, 1, 1, 1));
    let to_3: Vec<(LogId, Vec<LogId>, u64)> = out
        .appends()
        .into_iter()
        .filter(|a| a.0 == 3)
        .map(|a| (a.1, a.2, a.3))
        .collect();
    assert_eq!(to_3, [(LogId::new(1, 1), vec![], 1)]);
}

/// `broadcast_commit`: a second commit advance between two drains goes out in the AppendEntries
/// to the follower still waiting in the sends lane (it carries the newest commit index), not in
/// another message.
#[test]
fn a_second_commit_advance_rides_on_the_queued_append() {
    let mut h = replicating_leader(|_| {});
    h.step(Input::Propose(Payload::new(b"a")));
    h.step(Input::Propose(Payload::new(b"b")));
    h.persist();
    let mut out = Outputs::new();
    for index in [2, 3] {
        h.node
            .step(Input::Message(accepted(3, 1, 1, index)), &mut out)
            .expect("valid");
        assert_eq!(h.node.commit_index(), Index(index));
    }
    let to_2: Vec<_> = out
        .sends()
        .iter()
        .filter(|m| m.to == id(2))
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(
        to_2,
        [MessageBody::AppendEntries {
            prev: LogId::new(1, 3),
            entries: Default::default(),
            commit: Index(3),
        }]
    );
    // Nothing was left for the next tick.
    let _ = out.drain_sends();
    let out = h.tick(1);
    assert_eq!(out.sent_to(2), Vec::<&raft_core::Message>::new());
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

/// As above, in a cluster of five: each follower's waiting AppendEntries carries the newest
/// commit index, whatever was queued for the others after it.
#[test]
fn a_second_commit_advance_rides_on_each_followers_queued_append() {
    let mut h = Harness::new(1, FIVE);
    h.elect();
    h.persist();
    for p in 2..=5 {
        h.recv(accepted(p, 1, 1, 1));
    }
    h.step(Input::Propose(Payload::new(b"a")));
    h.step(Input::Propose(Payload::new(b"b")));
    h.persist();
    let mut out = Outputs::new();
    for index in [2, 3] {
        for p in [3, 4] {
            h.node
                .step(Input::Message(accepted(p, 1, 1, index)), &mut out)
                .expect("valid");
        }
        assert_eq!(h.node.commit_index(), Index(index));
    }
    let commits: Vec<(u64, u64)> = out
        .sends()
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries { commit, .. } => Some((m.to.get(), commit.0)),
            _ => None,
        })
        .collect();
    assert_eq!(commits, [(2, 3), (3, 3), (4, 3), (5, 3)]);
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

/// Raft §7, the leader's side of a snapshot transfer: a chunk the adapter read is passed on
/// only if it is the one the transfer asked for (a chunk at another offset is stale); a newer
/// snapshot taken meanwhile restarts the transfer with it, from offset 0.
#[test]
fn snapshot_chunks_go_out_only_as_asked_and_a_newer_snapshot_restarts_the_transfer() {
    let (mut h, out) = leader_hearing_a_hint_below_its_snapshot();
    assert_eq!(out.chunk_requests.len(), 1);
    let request = out.chunk_requests[0];
    assert_eq!((request.snapshot, request.offset), (LogId::new(1, 10), 0));
    let chunk = |offset: u64| {
        Input::SnapshotChunk(raft_core::SnapshotChunk {
            to: id(3),
            snapshot: LogId::new(1, 10),
            offset,
            data: Payload::new(b"state"),
            done: false,
        })
    };
    let installs = |out: &common::Out| {
        out.sends
            .iter()
            .filter(|m| matches!(m.body, MessageBody::InstallSnapshot { .. }))
            .count()
    };
    assert_eq!(installs(&h.step(chunk(5))), 0, "not the chunk asked for");
    assert_eq!(installs(&h.step(chunk(0))), 1);
    assert_eq!(installs(&h.step(chunk(0))), 0, "already sent");

    // 2 acknowledges the no-op (13); applied, it is snapshotted: 3's transfer restarts with it.
    h.recv(accepted(2, 1, 2, 13));
    assert_eq!(h.node.commit_index(), Index(13));
    h.step(Input::Applied(Index(13)));
    let meta = h.node.snapshot_meta(Index(13)).expect("applied");
    let out = h.step(Input::SnapshotTaken(Box::new(meta)));
    let requests: Vec<(u64, LogId, u64)> = out
        .chunk_requests
        .iter()
        .map(|c| (c.to.get(), c.snapshot, c.offset))
        .collect();
    assert_eq!(requests, [(3, LogId::new(2, 13), 0)]);

    // The follower's answers: progress asks for the chunk at its count; a duplicate of it, an
    // answer of 0 at offset 0, or an answer about the older snapshot, asks for nothing.
    let answer = |h: &mut Harness, snapshot: LogId, received: u64| {
        let body = MessageBody::SnapshotResponse {
            snapshot,
            received,
            installed: false,
        };
        let out = h.recv(msg(3, 1, 2, body));
        out.chunk_requests
            .iter()
            .map(|c| (c.snapshot, c.offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(answer(&mut h, LogId::new(2, 13), 0), []);
    assert_eq!(answer(&mut h, LogId::new(1, 10), 5), []);
    assert_eq!(
        answer(&mut h, LogId::new(2, 13), 5),
        [(LogId::new(2, 13), 5)]
    );
    assert_eq!(answer(&mut h, LogId::new(2, 13), 5), []);
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

/// Untrusted input: a snapshot whose last entry has a term above the sender's is impossible (no
/// leader can have made that entry) and is rejected.
#[test]
fn a_snapshot_from_a_later_term_than_its_sender_is_rejected() {
    let mut h = Harness::new(2, THREE);
    let (result, _) = h.try_recv(install_snapshot(2, 1, LogId::new(2, 5)));
    assert_eq!(result, Err(StepError::Rejected(Reject::MalformedSnapshot)));
}
