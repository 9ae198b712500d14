//! What an operator can see: role, term, leader, indexes, per-peer progress and counters.

use crate::error::Reject;
use crate::membership::{MAX_MEMBERS, Membership};
use crate::types::{Index, LogId, NodeId, Term};

/// A node's role.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Probing with a pre-vote whether an election could be won, without raising its term.
    PreCandidate,
    /// Campaigning in an election.
    Candidate,
    /// Leads its term.
    Leader,
}

/// How a leader is replicating to one follower.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ReplicationState {
    /// Finding where the follower's log matches: one message at a time.
    Probe,
    /// The logs match: entries are pipelined, up to the in-flight limits.
    Replicate,
    /// The follower needs entries the leader has compacted: a snapshot is being sent.
    Snapshot,
}

/// A leader's view of one follower.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PeerStatus {
    /// The follower.
    pub id: NodeId,
    /// The highest index known to be replicated on it.
    pub match_index: Index,
    /// The next index to send it.
    pub next_index: Index,
    /// Probe or pipeline.
    pub state: ReplicationState,
    /// Whether it answered within the current CheckQuorum period.
    pub recent_active: bool,
    /// AppendEntries messages in flight to it.
    pub inflight_msgs: u32,
    /// Whether it is a learner.
    pub learner: bool,
}

/// A snapshot of a node's state, for status pages and `INFO`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// Whom it voted for in `term`.
    pub vote: Option<NodeId>,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The highest index known committed.
    pub commit: Index,
    /// The highest index the state machine has reported applied.
    pub applied: Index,
    /// The last entry in the log.
    pub last_log: LogId,
    /// The highest index durable locally.
    pub persisted: Index,
    /// The latest snapshot (`LogId::ZERO` for none).
    pub snapshot: LogId,
    /// Entries held in memory (those after the snapshot, and up to
    /// `Config::snapshot_trailing_entries` before it).
    pub log_len: usize,
    /// The configuration in force (the latest in the log, committed or not).
    pub membership: Membership,
    /// Per-follower progress (leaders only; empty otherwise).
    pub peers: heapless::Vec<PeerStatus, MAX_MEMBERS>,
}

/// Counters of what the node has seen, for metrics. They only grow.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Network inputs rejected as impossible.
    pub rejected: u64,
    /// The most recent rejection, for logs.
    pub last_rejected: Option<Reject>,
    /// Messages from an older term, ignored (normal Raft traffic).
    pub stale_term: u64,
    /// Vote requests ignored because a leader was heard from recently.
    pub votes_ignored_in_lease: u64,
    /// Elections this node started (pre-vote rounds included).
    pub elections: u64,
    /// Times this node became leader.
    pub became_leader: u64,
    /// Times a leader stepped down because it lost contact with a quorum.
    pub check_quorum_step_downs: u64,
    /// Requests refused (proposals, reads, transfers: see [`Refusal`](crate::Refusal)).
    pub refused: u64,
    /// Reads aborted by a change of leadership.
    pub reads_aborted: u64,
    /// Reads a leader answered from its lease, without a heartbeat round
    /// ([`Config::lease_reads`](crate::Config::lease_reads)).
    pub reads_by_lease: u64,
    /// Times a leader stepped down because a committed configuration no longer made it a voter.
    pub removed_step_downs: u64,
}
