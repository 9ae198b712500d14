//! `Node::check_invariants` (module `invariants`) on real nodes: a consistent node passes, and a
//! node with one of its private fields corrupted fails with the invariant that field breaks.

use super::*;
use crate::InvariantViolation;
use crate::rng::SplitMix64;
use crate::types::{Entry, EntryKind};

fn id(n: u64) -> NodeId {
    NodeId::new(n).expect("non-zero")
}

/// Node `n` of a fresh cluster of 1, 2 and 3, pre-vote off.
fn node(n: u64) -> Node<SplitMix64> {
    let membership = Membership::new(&[id(1), id(2), id(3)]).expect("valid");
    let mut config = Config::new(id(n));
    config.pre_vote = false;
    Node::restore(config, SplitMix64::new(n), Restored::initial(membership)).expect("valid")
}

fn step(node: &mut Node<SplitMix64>, input: Input, out: &mut Outputs) {
    node.step(input, out).expect("accepted");
    assert_eq!(node.check_invariants(), Ok(()), "consistent after {out:?}");
}

/// Acknowledges every write issued so far.
fn persist(node: &mut Node<SplitMix64>, out: &mut Outputs) {
    if let Some(w) = out.drain_writes().map(|w| w.id).max() {
        step(node, Input::Persisted(w), out);
    }
}

fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Input {
    Input::Message(Message {
        from: id(from),
        to: id(to),
        term: Term(term),
        body,
    })
}

/// Node 1, leader of term 1 with its no-op (index 1) durable and acknowledged by 2, so committed;
/// 3 has not answered.
fn leader() -> Node<SplitMix64> {
    let mut n = node(1);
    let mut out = Outputs::new();
    step(&mut n, Input::Campaign, &mut out);
    assert_eq!(n.role(), Role::Candidate);
    persist(&mut n, &mut out);
    let grant = MessageBody::VoteResponse {
        granted: true,
        pre_vote: false,
    };
    step(&mut n, msg(2, 1, 1, grant), &mut out);
    assert_eq!(n.role(), Role::Leader);
    persist(&mut n, &mut out);
    let outcome = AppendOutcome::Accepted {
        match_index: Index(1),
    };
    step(
        &mut n,
        msg(2, 1, 1, MessageBody::AppendResponse { outcome }),
        &mut out,
    );
    assert_eq!(n.commit_index(), Index(1));
    n
}

fn violated(node: &Node<SplitMix64>) -> &'static str {
    match node.check_invariants() {
        Err(InvariantViolation(what)) => what,
        Ok(()) => panic!("no invariant violated"),
    }
}

fn peer(node: &mut Node<SplitMix64>, n: u64) -> &mut crate::progress::Progress {
    match &mut node.role {
        RoleState::Leader(l) => l.peers.iter_mut().find(|p| p.id == id(n)).expect("a peer"),
        _ => panic!("not a leader"),
    }
}

#[test]
fn a_consistent_node_passes_in_every_role() {
    let follower = node(2);
    assert_eq!(follower.check_invariants(), Ok(()));
    let mut candidate = node(3);
    let mut out = Outputs::new();
    step(&mut candidate, Input::Campaign, &mut out);
    assert_eq!(candidate.role(), Role::Candidate);
    assert_eq!(leader().check_invariants(), Ok(()));
}

#[test]
fn a_commit_index_past_the_log_is_found() {
    let mut n = leader();
    n.s.commit = Index(2);
    assert_eq!(violated(&n), "commit index past the last entry");
}

#[test]
fn a_log_that_skips_an_index_is_found() {
    let mut n = node(2);
    n.s.log.push(Entry {
        id: LogId::new(0, 2),
        kind: EntryKind::Normal,
        data: Payload::new(b""),
    });
    assert_eq!(violated(&n), "log not contiguous");
}

#[test]
fn a_configuration_index_that_is_not_the_latest_is_found() {
    // The no-op at index 1 is no configuration: the one in force comes from index 0.
    let mut n = leader();
    n.s.config_index = Index(1);
    assert_eq!(
        violated(&n),
        "configuration in force is not the latest in the log"
    );
    let mut n = leader();
    n.s.membership = Membership::new(&[id(1), id(2)]).expect("valid");
    assert_eq!(
        violated(&n),
        "configuration in force is not the latest in the log"
    );
}

#[test]
fn a_response_withheld_with_no_write_pending_is_found() {
    // Follower 2 grants a vote in term 1: the response waits for the write of the vote.
    let mut n = node(2);
    let mut out = Outputs::new();
    let request = MessageBody::VoteRequest {
        last_log: LogId::ZERO,
        pre_vote: false,
        leader_transfer: false,
    };
    step(&mut n, msg(1, 2, 1, request), &mut out);
    assert_eq!(out.drain_sends().count(), 0, "withheld");
    assert_eq!(n.s.durability.withheld_len(), 1);
    // The write is acknowledged without the response being released.
    let w = out.drain_writes().map(|w| w.id).max().expect("a write");
    assert!(n.s.durability.ack(w).is_some());
    assert_eq!(n.s.durability.pending_len(), 0);
    assert_eq!(violated(&n), "a response is withheld with no write pending");
}

#[test]
fn a_voter_tracked_as_a_learner_is_found() {
    let mut n = leader();
    peer(&mut n, 3).learner = true;
    assert_eq!(
        violated(&n),
        "leader tracks a non-member, or a voter as a learner"
    );
}

#[test]
fn a_next_index_not_above_the_match_index_is_found() {
    // Peer 2 matches the no-op at index 1; the next to send it is 2.
    let mut n = leader();
    assert_eq!(peer(&mut n, 2).match_index, Index(1));
    peer(&mut n, 2).next = Index(1);
    assert_eq!(violated(&n), "next index not above match index");
}
