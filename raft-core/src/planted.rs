//! Planted bugs: named, deliberately broken variants of the protocol's rules, for measuring
//! whether the tests and the simulator catch them (`raft-core/PLANTED-BUGS.md`).
//!
//! Compiled only with `RUSTFLAGS="--cfg raft_planted"`: a normal build has neither this module
//! nor any of the hooks that consult it. One such build serves every bug: the bug in force is
//! chosen at run time with [`set`] (none until then), and each hook asks [`active`] whether its
//! bug is the one. The selection is one process-wide atomic, so every node of every simulation
//! in the process runs with the same bug.

use core::sync::atomic::{AtomicU8, Ordering};

/// A planted bug: the rule it breaks is in [`Bug::rule`], its stable name in [`Bug::name`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Bug {
    /// A node grants a second vote in a term it already voted in.
    DoubleVote = 1,
    /// A vote is granted without the log-up-to-date check (§5.4.1).
    VoteSkipsLogCheck,
    /// A leader commits an entry of an earlier term by counting replicas (§5.4.2, Figure 8).
    CommitPreviousTerm,
    /// A follower acknowledges an append before its write is durable.
    AckBeforeDurable,
    /// A vote is granted before the write recording it is durable.
    GrantBeforeDurable,
    /// A leader serves a ReadIndex read without a heartbeat round confirming its leadership.
    ReadWithoutHeartbeat,
    /// A leader counts its whole log towards the commit quorum, durable or not.
    LeaderSelfCountEarly,
    /// A follower commits up to the leader's commit index, not capped at the last new entry.
    FollowerCommitUnclamped,
    /// A candidate counts its own vote before the write recording it is durable.
    CandidateSelfVoteEarly,
    /// Installing a snapshot keeps a log suffix that conflicts with it.
    SnapshotKeepsConflictingSuffix,
    /// A snapshot received from the leader is handed to the state machine before it is durable.
    SnapshotAppliedBeforeDurable,
    /// A membership change goes straight to the target configuration, without the joint phase.
    NoJointPhase,
    /// A read joins the newest ReadIndex round even when that round's heartbeats already left.
    ReadJoinsSentRound,
    /// A new leader serves lease reads before it has committed an entry of its term.
    LeaseBeforeTermCommit,
    /// A leader's commit notice carries its commit index to a follower that has not
    /// acknowledged everything up to it.
    CommitNoticePastMatch,
}

impl Bug {
    /// Every planted bug, in the order of the tables.
    pub const ALL: [Self; 15] = [
        Self::DoubleVote,
        Self::VoteSkipsLogCheck,
        Self::CommitPreviousTerm,
        Self::AckBeforeDurable,
        Self::GrantBeforeDurable,
        Self::ReadWithoutHeartbeat,
        Self::LeaderSelfCountEarly,
        Self::FollowerCommitUnclamped,
        Self::CandidateSelfVoteEarly,
        Self::SnapshotKeepsConflictingSuffix,
        Self::SnapshotAppliedBeforeDurable,
        Self::NoJointPhase,
        Self::ReadJoinsSentRound,
        Self::LeaseBeforeTermCommit,
        Self::CommitNoticePastMatch,
    ];

    /// Its stable kebab-case name (`RAFT_PLANTED_BUG=<name>`, the runner's arguments).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::DoubleVote => "double-vote",
            Self::VoteSkipsLogCheck => "vote-skips-log-check",
            Self::CommitPreviousTerm => "commit-previous-term",
            Self::AckBeforeDurable => "ack-before-durable",
            Self::GrantBeforeDurable => "grant-before-durable",
            Self::ReadWithoutHeartbeat => "read-without-heartbeat",
            Self::LeaderSelfCountEarly => "leader-self-count-early",
            Self::FollowerCommitUnclamped => "follower-commit-unclamped",
            Self::CandidateSelfVoteEarly => "candidate-self-vote-early",
            Self::SnapshotKeepsConflictingSuffix => "snapshot-keeps-conflicting-suffix",
            Self::SnapshotAppliedBeforeDurable => "snapshot-applied-before-durable",
            Self::NoJointPhase => "no-joint-phase",
            Self::ReadJoinsSentRound => "read-joins-sent-round",
            Self::LeaseBeforeTermCommit => "lease-before-term-commit",
            Self::CommitNoticePastMatch => "commit-notice-past-match",
        }
    }

    /// The bug of this name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The rule it breaks, and where its hook is.
    #[must_use]
    pub const fn rule(self) -> &'static str {
        match self {
            Self::DoubleVote => "one vote per term (Figure 2, RequestVote rule 2; election.rs)",
            Self::VoteSkipsLogCheck => {
                "the election restriction (§5.4.1: vote only for an up-to-date log; election.rs)"
            }
            Self::CommitPreviousTerm => {
                "commit only entries of the current term by counting (§5.4.2, Figure 8; \
                 replication.rs maybe_commit)"
            }
            Self::AckBeforeDurable => {
                "persist before responding (Figure 2: append ack after the write; follower.rs)"
            }
            Self::GrantBeforeDurable => {
                "persist before responding (Figure 2: vote grant after the write; election.rs)"
            }
            Self::ReadWithoutHeartbeat => {
                "ReadIndex confirms leadership with a heartbeat round (thesis §6.4 step 3; \
                 leader.rs read)"
            }
            Self::LeaderSelfCountEarly => {
                "the leader counts itself only up to its durable index (thesis §10.2.1; \
                 replication.rs maybe_commit)"
            }
            Self::FollowerCommitUnclamped => {
                "commitIndex = min(leaderCommit, index of last new entry) (Figure 2, \
                 AppendEntries rule 5; follower.rs)"
            }
            Self::CandidateSelfVoteEarly => {
                "the candidate's own vote counts once durable (election.rs Votes::tally)"
            }
            Self::SnapshotKeepsConflictingSuffix => {
                "InstallSnapshot rule 7: discard the log unless it holds the snapshot's last \
                 entry (Figure 13; log.rs install)"
            }
            Self::SnapshotAppliedBeforeDurable => {
                "apply only what is durable (shared.rs emit_committed)"
            }
            Self::NoJointPhase => {
                "joint consensus for a change of voters (thesis §4.3; membership.rs \
                 transition_to)"
            }
            Self::ReadJoinsSentRound => {
                "a read is confirmed only by heartbeats sent after it arrived (thesis §6.4; \
                 leader.rs read)"
            }
            Self::LeaseBeforeTermCommit => {
                "no lease read before the leader commits an entry of its term (thesis §6.4 \
                 step 1, §6.4.1; leader.rs read)"
            }
            Self::CommitNoticePastMatch => {
                "a commit notice names only entries the follower has acknowledged, which match \
                 the leader's (the Log Matching Property; replication.rs broadcast_commit)"
            }
        }
    }
}

/// 0: no bug; otherwise the `Bug` discriminant.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// Puts `bug` in force for the whole process (`None`: the correct protocol).
pub fn set(bug: Option<Bug>) {
    ACTIVE.store(bug.map_or(0, |b| b as u8), Ordering::Relaxed);
}

/// The bug in force, if any.
#[must_use]
pub fn current() -> Option<Bug> {
    let v = ACTIVE.load(Ordering::Relaxed);
    Bug::ALL.into_iter().find(|&b| b as u8 == v)
}

/// Whether `bug` is the one in force: what each hook asks.
#[must_use]
pub fn active(bug: Bug) -> bool {
    ACTIVE.load(Ordering::Relaxed) == bug as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Bug::ALL {
            assert_eq!(Bug::from_name(b.name()), Some(b));
        }
        assert_eq!(Bug::from_name("no-such-bug"), None);
    }
}
