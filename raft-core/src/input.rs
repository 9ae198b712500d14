//! Everything that can happen to a node, as data: the simulator and the fuzzers record and
//! replay it.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::membership::Membership;
use crate::message::Message;
use crate::restore::SnapshotMeta;
use crate::types::{Index, LogId, NodeId, Payload, WriteId};
// The old paths (`crate::input::ReadId`, `crate::output::WriteId`), still used inside the crate.
pub(crate) use crate::types::ReadId;

/// An input to [`Node::step`](crate::Node::step).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Input {
    /// One unit of logical time passed. The adapter decides what a tick is worth.
    Tick,
    /// A message arrived from a peer. Untrusted: nonsense is rejected, never obeyed.
    Message(Message),
    /// The application proposes a command (leader only). [`Node::propose`](crate::Node::propose)
    /// does the same and also returns the entry's id.
    Propose(Payload),
    /// The application asks for a linearizable read (leader only). The answer comes out in the
    /// reads lane with the same id.
    Read(ReadId),
    /// Ask the leader to hand leadership to a voter (Raft thesis §3.10).
    TransferLeader(NodeId),
    /// Ask the leader to change the cluster's configuration to this one, through a joint
    /// configuration when voters change (Raft thesis §4.3). See
    /// [`Node::change_membership`](crate::Node::change_membership), which does the same and
    /// returns the configuration entry's id.
    ChangeMembership(Box<Membership>),
    /// Start an election now, without waiting for the election timeout (with a pre-vote round
    /// first if pre-vote is on).
    Campaign,
    /// Every write with an id up to and including this one is durable. Cumulative: one
    /// acknowledgement covers many writes, and a repeated one is harmless.
    Persisted(WriteId),
    /// The state machine has applied every entry up to and including this index.
    Applied(Index),
    /// The adapter could not reach this peer; the leader stops pipelining to it and probes.
    Unreachable(NodeId),
    /// The adapter durably stored a snapshot of its state machine with this metadata (get it
    /// from [`Node::snapshot_meta`](crate::Node::snapshot_meta) for an applied index). The node
    /// drops log entries up to it, keeping `Config::snapshot_trailing_entries` for slow
    /// followers, and sends this snapshot to followers that need what was dropped.
    SnapshotTaken(Box<SnapshotMeta>),
    /// A chunk of the leader's snapshot, read by the adapter in answer to a
    /// [`ChunkRequest`](crate::ChunkRequest).
    SnapshotChunk(SnapshotChunk),
    /// The application proposes several commands at once (leader only): consecutive entries
    /// of one term in one write, all or none.
    /// [`Node::propose_batch`](crate::Node::propose_batch) does the same and also returns the
    /// last entry's id.
    ProposeBatch(Vec<Payload>),
}

/// A chunk of snapshot bytes the adapter read for a [`ChunkRequest`](crate::ChunkRequest).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SnapshotChunk {
    /// The follower it is for (from the request).
    pub to: NodeId,
    /// The snapshot it is from (from the request).
    pub snapshot: LogId,
    /// Where it starts (from the request).
    pub offset: u64,
    /// The bytes, at most the request's `max_len`.
    pub data: Payload,
    /// Whether the snapshot ends with this chunk.
    pub done: bool,
}
