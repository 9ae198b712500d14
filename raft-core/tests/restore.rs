//! Restarting from persisted state (Raft Figure 2, "persistent state on all servers"): what a
//! restored node remembers, and how inconsistent persisted state is refused.

mod common;

use common::{Harness, config, entries_from, entry, id, membership, restored, vote_request};
use raft_core::{
    ConfigError, HardState, Index, Input, LogId, Node, RestoreError, Restored, Role, SnapshotMeta,
    Term,
};

const THREE: &[u64] = &[1, 2, 3];

fn restore_error(state: Restored) -> Option<RestoreError> {
    Node::restore(config(1, |_| {}), common::SplitMix::new(1), state).err()
}

fn with_snapshot(last: LogId, first_entry_terms: &[u64], hard_term: u64, applied: u64) -> Restored {
    Restored {
        hard_state: HardState {
            term: Term(hard_term),
            vote: None,
        },
        snapshot: SnapshotMeta {
            last,
            membership: membership(THREE),
        },
        entries: entries_from(last.index.0 + 1, first_entry_terms),
        applied: Index(applied),
    }
}

/// Raft Figure 2: currentTerm and votedFor are persistent. A node restored with a vote keeps its
/// term and will not vote for another candidate in that term; it may repeat its vote.
#[test]
fn restored_node_keeps_term_and_vote() {
    let mut h = Harness::restored(1, restored(THREE, 5, Some(2), &[1, 3, 5], 0));
    assert_eq!(h.node.term(), Term(5));
    assert_eq!(h.node.status().vote, Some(id(2)));
    assert_eq!(h.node.role(), Role::Follower);
    assert_eq!(h.node.last_log(), LogId::new(5, 3));

    let mut out = h.recv(vote_request(3, 1, 5, LogId::new(5, 9)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(3, 5, false, false)]);
    assert_eq!(h.node.status().vote, Some(id(2)));

    let mut out = h.recv(vote_request(2, 1, 5, LogId::new(5, 3)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(2, 5, true, false)]);

    // A new term frees the vote.
    let mut out = h.recv(vote_request(3, 1, 6, LogId::new(5, 3)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(3, 6, true, false)]);
}

/// Raft Figure 2: a node that voted for itself before a restart does not vote for another
/// candidate in that term after it, and its next election is in a later term.
#[test]
fn restored_candidate_does_not_vote_again_and_campaigns_in_a_later_term() {
    let mut h = Harness::restore(
        config(1, |c| c.pre_vote = false),
        restored(THREE, 4, Some(1), &[1, 2], 0),
    )
    .expect("consistent state");
    let mut out = h.recv(vote_request(2, 1, 4, LogId::new(2, 2)));
    out.merge(h.persist());
    assert_eq!(out.vote_responses(), [(2, 4, false, false)]);
    h.step(Input::Campaign);
    assert_eq!(h.node.term(), Term(5));
    assert_eq!(h.node.role(), Role::Candidate);
}

/// The commit index is volatile (Figure 2): a restored node knows only what it applied, hands out
/// nothing at or below it again, and applies the rest once a leader says it is committed.
#[test]
fn restored_node_applies_from_after_applied_index() {
    let mut h = Harness::restored(2, restored(THREE, 1, None, &[1, 1, 1], 1));
    assert_eq!(h.node.commit_index(), Index(1));
    assert_eq!(h.node.applied_index(), Index(1));
    assert!(h.tick(1).apply.is_empty());
    let out = h.recv(common::heartbeat(1, 2, 1, 3, 0));
    assert_eq!(out.applied(), [LogId::new(1, 2), LogId::new(1, 3)]);
}

/// A node restored from a snapshot continues the log after it: the snapshot's last entry is the
/// base that AppendEntries consistency checks and vote comparisons use.
#[test]
fn restored_node_with_snapshot_continues_after_it() {
    let state = with_snapshot(LogId::new(2, 10), &[2, 3], 3, 10);
    let mut h = Harness::restored(2, state);
    assert_eq!(h.node.last_log(), LogId::new(3, 12));
    assert_eq!(h.node.commit_index(), Index(10));
    assert_eq!(h.node.status().snapshot, LogId::new(2, 10));

    // Matching on the snapshot's last entry works (the entries after it are already held).
    let out = h.recv(common::append(1, 2, 3, LogId::new(2, 10), &[2, 3], 10));
    assert!(out.writes.is_empty(), "{:?}", out.writes);
    assert_eq!(
        out.append_responses(),
        [(
            1,
            3,
            raft_core::AppendOutcome::Accepted {
                match_index: Index(12)
            }
        )]
    );
    // Appending after the log's end.
    let mut out = h.recv(common::append(1, 2, 3, LogId::new(3, 12), &[3], 13));
    assert_eq!(out.written(), [LogId::new(3, 13)]);
    assert_eq!(out.applied(), [LogId::new(2, 11), LogId::new(3, 12)]);
    out.merge(h.persist());
    assert_eq!(
        out.applied(),
        [LogId::new(2, 11), LogId::new(3, 12), LogId::new(3, 13)]
    );
}

/// A brand-new cluster starts from `Restored::initial`: term 0, no vote, empty log.
#[test]
fn initial_state_is_empty() {
    let h = Harness::new(1, THREE);
    let s = h.node.status();
    assert_eq!(s.term, Term(0));
    assert_eq!(s.vote, None);
    assert_eq!(s.last_log, LogId::ZERO);
    assert_eq!(s.commit, Index(0));
    assert_eq!(s.role, Role::Follower);
}

// ---- every RestoreError ----------------------------------------------------------------------

/// The entries must follow the snapshot (or index 0) without gaps.
#[test]
fn restore_refuses_entries_that_are_not_contiguous() {
    let mut gap = restored(THREE, 1, None, &[], 0);
    gap.entries = vec![entry(1, 1), entry(1, 3)];
    assert_eq!(
        restore_error(gap),
        Some(RestoreError::EntriesNotContiguous {
            expected: Index(2),
            found: Index(3)
        })
    );

    let mut not_from_one = restored(THREE, 1, None, &[], 0);
    not_from_one.entries = entries_from(2, &[1]);
    assert_eq!(
        restore_error(not_from_one),
        Some(RestoreError::EntriesNotContiguous {
            expected: Index(1),
            found: Index(2)
        })
    );

    // Entries overlapping the snapshot.
    let mut overlap = with_snapshot(LogId::new(1, 5), &[], 1, 5);
    overlap.entries = entries_from(5, &[1, 1]);
    assert_eq!(
        restore_error(overlap),
        Some(RestoreError::EntriesNotContiguous {
            expected: Index(6),
            found: Index(5)
        })
    );
}

/// Terms never decrease along a log (and an entry after a snapshot is not older than it).
#[test]
fn restore_refuses_terms_that_decrease() {
    let state = restored(THREE, 3, None, &[1, 3, 2], 0);
    assert_eq!(
        restore_error(state),
        Some(RestoreError::TermsDecrease { at: Index(3) })
    );
    let state = with_snapshot(LogId::new(3, 5), &[2], 3, 5);
    assert_eq!(
        restore_error(state),
        Some(RestoreError::TermsDecrease { at: Index(6) })
    );
}

/// The current term is at least the term of every entry in the log.
#[test]
fn restore_refuses_hard_state_term_behind_the_log() {
    let state = restored(THREE, 1, None, &[1, 2], 0);
    assert_eq!(restore_error(state), Some(RestoreError::TermBehindLog));
    let state = with_snapshot(LogId::new(4, 5), &[], 3, 5);
    assert_eq!(restore_error(state), Some(RestoreError::TermBehindLog));
}

/// The state machine is at least as new as the snapshot the log was compacted to.
#[test]
fn restore_refuses_applied_before_snapshot() {
    let state = with_snapshot(LogId::new(2, 5), &[2, 2], 2, 4);
    assert_eq!(
        restore_error(state),
        Some(RestoreError::AppliedBeforeSnapshot)
    );
}

/// The state machine cannot have applied entries the log does not hold.
#[test]
fn restore_refuses_applied_past_the_log() {
    let state = restored(THREE, 1, None, &[1, 1], 3);
    assert_eq!(restore_error(state), Some(RestoreError::AppliedPastLog));
    let state = with_snapshot(LogId::new(2, 5), &[], 2, 6);
    assert_eq!(restore_error(state), Some(RestoreError::AppliedPastLog));
}

/// A snapshot id is "before the log" (0.0) or a real entry: never one zero and the other not.
#[test]
fn restore_refuses_inconsistent_snapshot_id() {
    let state = with_snapshot(LogId::new(0, 5), &[], 0, 5);
    assert_eq!(
        restore_error(state),
        Some(RestoreError::SnapshotIdInconsistent)
    );
    let state = with_snapshot(LogId::new(3, 0), &[], 3, 0);
    assert_eq!(
        restore_error(state),
        Some(RestoreError::SnapshotIdInconsistent)
    );
}

/// An invalid configuration is refused with the reason. (A `Membership` is validated when it is
/// built or decoded, so `Restored` cannot carry an invalid one.)
#[test]
fn restore_refuses_invalid_config() {
    type Tweak = fn(&mut raft_core::Config);
    let cases: [(Tweak, ConfigError); 8] = [
        (|c| c.heartbeat_ticks = 0, ConfigError::ZeroHeartbeat),
        (
            |c| c.election_ticks_min = c.heartbeat_ticks,
            ConfigError::ElectionNotAboveHeartbeat,
        ),
        (
            |c| c.election_ticks_max = c.election_ticks_min,
            ConfigError::EmptyElectionRange,
        ),
        (|c| c.max_msg_entries = 0, ConfigError::ZeroMessageLimit),
        (|c| c.max_msg_bytes = 0, ConfigError::ZeroMessageLimit),
        (|c| c.max_inflight_msgs = 0, ConfigError::ZeroInflightLimit),
        (|c| c.max_inflight_bytes = 0, ConfigError::ZeroInflightLimit),
        (|c| c.snapshot_chunk_bytes = 0, ConfigError::ZeroChunkSize),
    ];
    for (tweak, expected) in cases {
        let state = Restored::initial(membership(THREE));
        let err = Node::restore(config(1, tweak), common::SplitMix::new(1), state).err();
        assert_eq!(err, Some(RestoreError::Config(expected)));
    }
}

/// A consistent state with entries, a snapshot and an applied index between them is accepted.
#[test]
fn restore_accepts_consistent_state() {
    assert_eq!(
        restore_error(with_snapshot(LogId::new(2, 5), &[2, 3, 3], 3, 7)),
        None
    );
    assert_eq!(
        restore_error(restored(THREE, 2, Some(1), &[1, 1, 2], 3)),
        None
    );
}
