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
    /// Most payload bytes (entries, or snapshot chunks) in flight to one follower. Default 32 MiB.
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
    /// The largest snapshot chunk to request from the adapter. A transfer keeps chunks in flight
    /// (the next is requested as one leaves) within `max_inflight_bytes`. Default 1 MiB.
    pub snapshot_chunk_bytes: u32,
    /// Run a pre-vote round before a real election, so that a node cut off from the cluster
    /// does not inflate terms and depose a healthy leader when it returns (Raft thesis §9.6).
    /// Default on.
    pub pre_vote: bool,
    /// A leader steps down if it has not heard from a quorum within `election_ticks_min`
    /// (Raft thesis §6.2). Default on.
    pub check_quorum: bool,
    /// Lease reads: a leader answers [`Input::Read`](crate::Input::Read) (and a follower's
    /// forwarded read) at once, with its commit index, while its lease holds, instead of
    /// confirming its leadership by a heartbeat round. The read is then reported, and served
    /// once applied, exactly as a ReadIndex read; when the lease does not hold, the read falls
    /// back to ReadIndex. Requires `check_quorum`. Default off.
    ///
    /// **The lease.** It starts at the tick a heartbeat round was *sent* (numbered), once a
    /// quorum of the configuration in force (both halves of a joint one) has answered that
    /// round or a later one, and lasts [`Config::lease_ticks`] ticks:
    /// `election_ticks_min - 1 - lease_drift_ticks`. Why no other leader can exist meanwhile:
    /// a follower that received the heartbeat ignores vote requests (and refuses
    /// [`Input::Campaign`](crate::Input::Campaign)) until `election_ticks_min` of its own ticks
    /// have passed since (thesis §4.2.3), so no candidate gathers a quorum before then; the
    /// heartbeat was received after it was sent; one tick is given up for ticks falling at
    /// different instants on different nodes, and `lease_drift_ticks` for their clocks running
    /// at different rates. A node that restarts with lease reads on behaves, for
    /// `election_ticks_min` ticks, as if it had just heard from a leader (it may have, before
    /// it crashed). No lease holds before the leader has committed an entry of its term (as for
    /// ReadIndex), nor for the rest of a leadership in which a transfer was started: the
    /// target's TimeoutNow election passes the followers' vote refusal.
    ///
    /// **The adapter's clock contract.** The core sees time only through
    /// [`Input::Tick`](crate::Input::Tick). With lease reads on, before stepping a read the
    /// adapter MUST have stepped every tick that has elapsed on its *monotonic* clock (after a
    /// process pause, a descheduled thread or a slow step, the ticks that passed meanwhile,
    /// before the reads that waited), and its ticks must run at a rate within the drift margin
    /// of every other node's. A stall between the last tick stepped and the read's answer being
    /// served is not seen by the core: the margin must cover it too.
    pub lease_reads: bool,
    /// The clock-drift margin of lease reads, in ticks, taken off the lease (see
    /// [`Config::lease_reads`]). It must cover how much faster another node's ticks may run
    /// than this one's over `election_ticks_min` ticks, plus the longest stall between the
    /// adapter's last tick and its answering a read: at least `(election_ticks_min - 1) * ρ`
    /// for a relative rate difference ρ (0.1 for 10%). At least 1, and it must leave a lease
    /// of at least one tick. Default 2 (with the default timeouts, a lease of 7 ticks).
    pub lease_drift_ticks: u32,
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
            lease_reads: false,
            lease_drift_ticks: 2,
        }
    }

    /// How many ticks a leader's lease lasts from the tick the heartbeat round a quorum
    /// answered was sent: `election_ticks_min - 1 - lease_drift_ticks` (0 when that is not
    /// positive, which [`Config::validate`] refuses with lease reads on).
    #[must_use]
    pub const fn lease_ticks(&self) -> u32 {
        self.election_ticks_min
            .saturating_sub(1)
            .saturating_sub(self.lease_drift_ticks)
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
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        if self.lease_reads && (self.lease_drift_ticks == 0 || self.lease_ticks() == 0) {
            return Err(ConfigError::LeaseDriftOutOfRange);
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
    /// `lease_reads` is on but `check_quorum` is off.
    LeaseWithoutCheckQuorum,
    /// `lease_reads` is on and `lease_drift_ticks` is zero, or leaves no lease
    /// (`election_ticks_min - 1 - lease_drift_ticks` is not positive).
    LeaseDriftOutOfRange,
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
            Self::LeaseWithoutCheckQuorum => "lease_reads requires check_quorum",
            Self::LeaseDriftOutOfRange => {
                "lease_drift_ticks must be at least 1 and below election_ticks_min - 1"
            }
        })
    }
}

impl core::error::Error for ConfigError {}
