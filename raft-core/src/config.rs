//! Node configuration: timeouts in ticks, flow-control limits and feature switches.

use core::fmt;

use crate::types::NodeId;

/// How a node behaves. Build it with [`Config::new`] and adjust fields; [`Node::restore`]
/// validates it.
///
/// All times are in ticks. The adapter decides what a tick is worth: with a 10 ms tick, the
/// defaults give a heartbeat every 20 ms and an election timeout drawn from 100–200 ms.
///
/// [`Node::restore`]: crate::Node::restore
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// A leader sends heartbeats every this many ticks. Default 2.
    pub heartbeat_ticks: u32,
    /// The lower bound (inclusive) of the randomized election timeout. It is also the CheckQuorum
    /// period and the window in which a follower that heard from a leader ignores vote
    /// requests. Default 10.
    pub election_ticks_min: u32,
    /// The upper bound (exclusive) of the randomized election timeout. Default 20.
    pub election_ticks_max: u32,
    /// Most entries in one AppendEntries message. Default 256.
    pub max_msg_entries: u32,
    /// Most payload bytes in one AppendEntries message (a single larger entry is still sent
    /// alone). Default 1 MiB.
    pub max_msg_bytes: u64,
    /// Most AppendEntries messages in flight to one follower in the replicate state. Default 256.
    pub max_inflight_msgs: u32,
    /// Most payload bytes in flight to one follower. Default 32 MiB.
    pub max_inflight_bytes: u64,
    /// The largest payload a proposal may carry. Default 8 MiB.
    pub max_entry_bytes: u64,
    /// Most reads waiting for a ReadIndex confirmation at once (on a follower, reads waiting
    /// for the leader's answer). Default 4096.
    pub max_pending_reads: u32,
    /// Follower reads: a follower that knows its leader takes [`Input::Read`](crate::Input::Read)
    /// itself, asks the leader for a read index (etcd's `MsgReadIndex`), and reports
    /// [`ReadResult::Ready`](crate::ReadResult::Ready) with it; the adapter serves the read once
    /// its state machine has applied that index, as on a leader. Off: a follower refuses reads
    /// with [`Refusal::NotLeader`](crate::Refusal::NotLeader), for the adapter to forward.
    /// Default off.
    pub follower_reads: bool,
    /// After a snapshot, keep this many entries below it in memory, so a follower a little
    /// behind still gets entries rather than the whole snapshot. Default 1024.
    pub snapshot_trailing_entries: u64,
    /// Suggest a snapshot ([`Event::SnapshotSuggested`](crate::Event::SnapshotSuggested)) when
    /// more entries than this have been applied since the latest snapshot. The log in memory then
    /// holds at most this many entries after the snapshot, plus `snapshot_trailing_entries`
    /// before it, plus those not yet applied. Default 10,000.
    pub snapshot_log_entries: u64,
    /// The largest snapshot chunk to request from the adapter. Default 1 MiB.
    pub snapshot_chunk_bytes: u32,
    /// Run a pre-vote round before a real election, so that a node cut off from the cluster
    /// does not inflate terms and depose a healthy leader when it returns (Raft thesis §9.6).
    /// Default on.
    pub pre_vote: bool,
    /// A leader steps down if it has not heard from a quorum within `election_ticks_min`
    /// (Raft thesis §6.2). Default on.
    pub check_quorum: bool,
}

impl Config {
    /// A configuration with the defaults documented on each field.
    #[must_use]
    pub const fn new(id: NodeId) -> Self {
        Self {
            id,
            heartbeat_ticks: 2,
            election_ticks_min: 10,
            election_ticks_max: 20,
            max_msg_entries: 256,
            max_msg_bytes: 1 << 20,
            max_inflight_msgs: 256,
            max_inflight_bytes: 32 << 20,
            max_entry_bytes: 8 << 20,
            max_pending_reads: 4096,
            follower_reads: false,
            snapshot_trailing_entries: 1024,
            snapshot_log_entries: 10_000,
            snapshot_chunk_bytes: 1 << 20,
            pre_vote: true,
            check_quorum: true,
        }
    }

    /// Checks the fields against each other.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.election_ticks_min <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAboveHeartbeat);
        }
        if self.election_ticks_max <= self.election_ticks_min {
            return Err(ConfigError::EmptyElectionRange);
        }
        if self.max_msg_entries == 0 || self.max_msg_bytes == 0 {
            return Err(ConfigError::ZeroMessageLimit);
        }
        if self.max_inflight_msgs == 0 || self.max_inflight_bytes == 0 {
            return Err(ConfigError::ZeroInflightLimit);
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError::ZeroChunkSize);
        }
        Ok(())
    }
}

/// A configuration whose fields contradict each other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// `heartbeat_ticks` is zero.
    ZeroHeartbeat,
    /// `election_ticks_min` is not above `heartbeat_ticks`, so followers would time out between
    /// heartbeats.
    ElectionNotAboveHeartbeat,
    /// `election_ticks_max` is not above `election_ticks_min`.
    EmptyElectionRange,
    /// A per-message limit is zero.
    ZeroMessageLimit,
    /// An in-flight limit is zero.
    ZeroInflightLimit,
    /// `snapshot_chunk_bytes` is zero.
    ZeroChunkSize,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroHeartbeat => "heartbeat_ticks must be at least 1",
            Self::ElectionNotAboveHeartbeat => {
                "election_ticks_min must be greater than heartbeat_ticks"
            }
            Self::EmptyElectionRange => {
                "election_ticks_max must be greater than election_ticks_min"
            }
            Self::ZeroMessageLimit => "max_msg_entries and max_msg_bytes must be at least 1",
            Self::ZeroInflightLimit => {
                "max_inflight_msgs and max_inflight_bytes must be at least 1"
            }
            Self::ZeroChunkSize => "snapshot_chunk_bytes must be at least 1",
        })
    }
}

impl core::error::Error for ConfigError {}
