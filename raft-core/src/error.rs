//! Typed errors: rejected network input, caller misuse, refused requests, and bad restart state.
//!
//! Every error is `Copy`, carries no strings, and leaves the node able to go on serving.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::membership::MembershipError;
use crate::types::{Index, LogId, NodeId};

/// Why [`Node::step`](crate::Node::step) did not do what the input asked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum StepError {
    /// The input came from the network and cannot be valid. The node's state is unchanged and the
    /// rejection is counted in [`Stats`](crate::Stats). Log it and carry on.
    Rejected(Reject),
    /// The caller broke the contract of the API (for example acknowledged a write that was never
    /// issued). Never caused by network input: it is a bug in the adapter.
    Misuse(Misuse),
    /// A valid request that cannot be served now: not the leader, a transfer under way, too
    /// large. Retry elsewhere or later.
    Refused(Refusal),
}

/// Network input that cannot come from a correct peer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Reject {
    /// The message is addressed to another node.
    WrongRecipient {
        /// The addressee named in the message.
        to: NodeId,
    },
    /// The message claims to come from this node.
    FromSelf,
    /// A response (vote, append, heartbeat or snapshot response) from a node that is not a
    /// member of the configuration. Requests are heard from any sender: a node must hear the
    /// leader of a configuration it has not received yet.
    UnknownSender {
        /// The claimed sender.
        from: NodeId,
    },
    /// Entries in an AppendEntries message are not contiguous after `prev`, or their terms go
    /// backwards or past the message's term.
    MalformedEntries,
    /// A commit index past the end of this node's log (etcd's raft and raft-rs panic here).
    CommitPastLog {
        /// The commit index claimed.
        commit: Index,
        /// This node's last index.
        last: Index,
    },
    /// A commit notice naming an entry this node's log does not hold (a different term at that
    /// index): a correct leader names only entries the follower has acknowledged.
    CommitNotInLog {
        /// The entry the notice named as committed.
        commit: LogId,
    },
    /// A follower acknowledged entries this leader never had.
    AckPastLog {
        /// The index acknowledged.
        index: Index,
    },
    /// Another node claims to lead in this node's term while this node leads it.
    ConflictingLeader {
        /// The other claimant.
        from: NodeId,
    },
    /// An InstallSnapshot chunk whose snapshot is empty or of a later term than its sender's.
    MalformedSnapshot,
    /// A vote request whose last log term is above the term it campaigns for.
    MalformedVoteRequest,
    /// An index or term at the very top of its range, which would overflow.
    Overflow,
}

/// The caller broke the API contract. These indicate a bug in the adapter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Misuse {
    /// `Persisted` acknowledged a write id that was never issued.
    UnknownWrite,
    /// `SnapshotTaken` named a snapshot the node did not describe: get the metadata from
    /// `Node::snapshot_meta` for an index the state machine has applied.
    SnapshotMismatch,
    /// `Applied` reported an index that was never handed out for applying.
    AppliedPastEmitted {
        /// The index reported.
        index: Index,
        /// The highest index handed out.
        emitted: Index,
    },
}

/// A valid request the node cannot serve now. Serializable, so that a server can pass it on to
/// the node a request was forwarded from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// Only the leader can do this; `leader` is the leader this node knows of, if any.
    NotLeader {
        /// The leader this node believes in, to redirect to.
        leader: Option<NodeId>,
    },
    /// A leadership transfer is under way; proposals wait until it ends.
    TransferInProgress,
    /// The proposal is larger than `Config::max_entry_bytes`.
    TooLarge,
    /// Too many reads are waiting for confirmation (`Config::max_pending_reads`).
    TooManyReads,
    /// The transfer target is not a voter of the configuration (or is this node).
    InvalidTransferTarget,
    /// The log index or term would overflow.
    Exhausted,
    /// This node is not a voter and so cannot campaign.
    NotVoter,
    /// A membership change is still in progress: a configuration entry is not yet committed,
    /// the joint configuration has not been left, or this leader has not yet committed an
    /// entry of its own term. Retry once it is.
    ChangePending,
    /// The membership change's target is not a valid simple configuration.
    InvalidMembership(MembershipError),
    /// The voters of the change's target that the leader can bring up to date from its log are
    /// not a majority of it: the others (new nodes, or nodes left behind) would first need a
    /// snapshot, and until one reached them nothing could commit (Raft thesis §4.2.1). Add new
    /// nodes as learners and promote them once they have caught up.
    NotCaughtUp,
    /// With `Config::lease_reads`, a campaign asked of a follower that heard from a leader (or
    /// restarted) within the minimum election timeout: that leader may be serving reads from
    /// its lease, which rests on this node not voting, itself included, until then. Retry once
    /// the timeout has passed, or ask the leader for a transfer.
    InLease,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(r) => write!(f, "rejected input: {r}"),
            Self::Misuse(m) => write!(f, "API misuse: {m}"),
            Self::Refused(r) => write!(f, "refused: {r}"),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongRecipient { to } => write!(f, "the message is addressed to node {to}"),
            Self::FromSelf => f.write_str("the message claims to come from this node"),
            Self::UnknownSender { from } => {
                write!(f, "a response from node {from}, which is not a member")
            }
            Self::MalformedEntries => f.write_str(
                "the entries are not contiguous after prev, or their terms go backwards or past the message's term",
            ),
            Self::CommitPastLog { commit, last } => write!(
                f,
                "commit index {commit} is past the end of this node's log ({last})"
            ),
            Self::CommitNotInLog { commit } => write!(
                f,
                "a commit notice names entry {commit}, which this node's log does not hold"
            ),
            Self::AckPastLog { index } => {
                write!(f, "a follower acknowledged index {index}, which this leader never had")
            }
            Self::ConflictingLeader { from } => {
                write!(f, "node {from} claims to lead in this leader's term")
            }
            Self::MalformedSnapshot => {
                f.write_str("an empty snapshot, or one of a later term than its sender's")
            }
            Self::MalformedVoteRequest => {
                f.write_str("a vote request whose last log term is above its term")
            }
            Self::Overflow => f.write_str("an index or term at the top of its range"),
        }
    }
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownWrite => {
                f.write_str("Persisted acknowledged a write that was never issued")
            }
            Self::SnapshotMismatch => {
                f.write_str("SnapshotTaken named a snapshot the node did not describe")
            }
            Self::AppliedPastEmitted { index, emitted } => write!(
                f,
                "Applied reported index {index}, past the highest handed out for applying ({emitted})"
            ),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader { leader: Some(l) } => write!(f, "not the leader (node {l} is)"),
            Self::NotLeader { leader: None } => f.write_str("not the leader (no leader known)"),
            Self::TransferInProgress => f.write_str("a leadership transfer is under way"),
            Self::TooLarge => f.write_str("the proposal is larger than max_entry_bytes"),
            Self::TooManyReads => f.write_str("too many reads are waiting for confirmation"),
            Self::InvalidTransferTarget => {
                f.write_str("the transfer target is not another voter of the configuration")
            }
            Self::Exhausted => f.write_str("the log index or term would overflow"),
            Self::NotVoter => f.write_str("this node is not a voter"),
            Self::ChangePending => f.write_str("a membership change is still in progress"),
            Self::InvalidMembership(e) => write!(f, "invalid membership change: {e}"),
            Self::NotCaughtUp => f.write_str(
                "too few of the new voters have caught up with the log for the new \
                 configuration to commit",
            ),
            Self::InLease => f.write_str(
                "a leader was heard from within the minimum election timeout and may hold a \
                 read lease",
            ),
        }
    }
}

impl core::error::Error for StepError {}

impl From<Reject> for StepError {
    fn from(r: Reject) -> Self {
        Self::Rejected(r)
    }
}

impl From<Misuse> for StepError {
    fn from(m: Misuse) -> Self {
        Self::Misuse(m)
    }
}

impl From<Refusal> for StepError {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

/// The persisted state handed to [`Node::restore`](crate::Node::restore) is inconsistent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum RestoreError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The snapshot has index 0 but a non-zero term, or the reverse.
    SnapshotIdInconsistent,
    /// The entry expected at `expected` has another index.
    EntriesNotContiguous {
        /// The index the entry should have had.
        expected: Index,
        /// The index it had.
        found: Index,
    },
    /// The entry at `at` has a lower term than the one before it (or than the snapshot).
    TermsDecrease {
        /// The entry's index.
        at: Index,
    },
    /// The hard state's term is below the term of the last entry.
    TermBehindLog,
    /// The applied index is below the snapshot: the state machine is older than the snapshot the
    /// log was compacted to.
    AppliedBeforeSnapshot,
    /// The applied index is past the last entry.
    AppliedPastLog,
    /// The configuration entry at `at` does not decode.
    BadConfigEntry {
        /// The entry's index.
        at: Index,
    },
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "invalid configuration: {e}"),
            Self::SnapshotIdInconsistent => {
                f.write_str("snapshot id has index 0 with a non-zero term, or the reverse")
            }
            Self::EntriesNotContiguous { expected, found } => {
                write!(
                    f,
                    "log entry {found} found where entry {expected} was expected"
                )
            }
            Self::TermsDecrease { at } => write!(f, "log term decreases at index {at}"),
            Self::TermBehindLog => {
                f.write_str("hard state term is below the last log entry's term")
            }
            Self::AppliedBeforeSnapshot => f.write_str("applied index is below the snapshot index"),
            Self::AppliedPastLog => f.write_str("applied index is past the end of the log"),
            Self::BadConfigEntry { at } => {
                write!(f, "configuration entry at index {at} does not decode")
            }
        }
    }
}

impl core::error::Error for RestoreError {}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    #[test]
    fn errors_display_as_sentences_not_debug() {
        let n = |i| NodeId::new(i).unwrap();
        assert_eq!(
            StepError::from(Refusal::NotLeader { leader: Some(n(2)) }).to_string(),
            "refused: not the leader (node 2 is)"
        );
        assert_eq!(
            StepError::from(Reject::CommitPastLog {
                commit: Index(9),
                last: Index(4)
            })
            .to_string(),
            "rejected input: commit index 9 is past the end of this node's log (4)"
        );
        assert_eq!(
            StepError::from(Misuse::UnknownWrite).to_string(),
            "API misuse: Persisted acknowledged a write that was never issued"
        );
    }

    /// The errors a node refuses to start with name what is wrong (an operator reads them).
    #[test]
    fn restore_configuration_and_membership_errors_say_what_is_wrong() {
        assert_eq!(
            RestoreError::Config(ConfigError::ZeroHeartbeat).to_string(),
            "invalid configuration: heartbeat_ticks must be at least 1"
        );
        assert_eq!(
            RestoreError::TermsDecrease { at: Index(7) }.to_string(),
            "log term decreases at index 7"
        );
        assert_eq!(
            ConfigError::ZeroChunkSize.to_string(),
            "snapshot_chunk_bytes must be at least 1"
        );
        assert_eq!(
            MembershipError::NotSorted.to_string(),
            "membership ids are not strictly increasing"
        );
        assert_eq!(
            MembershipError::VoterIsLearner(NodeId::new(3).unwrap()).to_string(),
            "node 3 is both a voter and a learner"
        );
    }
}
