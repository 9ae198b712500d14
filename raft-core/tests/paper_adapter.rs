//! The core's interface to its adapter, one test per promise: timers (`Node::ticks_until_timer`),
//! counters (`Stats`), unreachable peers (`Input::Unreachable`), batches (`Node::propose_batch`)
//! and the largest proposal (`Config::max_entry_bytes`).
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use common::paper::{THREE, no_pre_vote};
use common::{Harness, accepted, id};
use raft_core::{Index, Input, LogId, Membership, Outputs, Payload, Refusal, Role, StepError};

// ---- the adapter's interface: timers, counters, unreachable peers, batches, limits -----------

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
