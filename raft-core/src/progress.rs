//! A leader's record of one follower: how far it matches, what is in flight, and whether to probe
//! or pipeline.

use alloc::collections::VecDeque;

use crate::status::{PeerStatus, ReplicationState};
use crate::types::{Index, LogId, NodeId};

/// A snapshot being sent to a follower, chunk by chunk, several chunks in flight (at most
/// `max_inflight_bytes` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotTransfer {
    /// The snapshot's last entry.
    pub(crate) id: LogId,
    /// The follower holds the snapshot's bytes up to here (durably: it said so).
    pub(crate) offset: u64,
    /// Chunks went out up to here: the next chunk starts at `sent`.
    pub(crate) sent: u64,
    /// The last chunk went out (`sent` is the snapshot's length).
    pub(crate) sent_all: bool,
    /// The chunk at `sent` was requested from the adapter (and not yet sent).
    pub(crate) requested: bool,
}

impl SnapshotTransfer {
    /// Sends again from what the follower holds: what was in flight is lost, or out of order.
    pub(crate) fn resend_from_offset(&mut self) {
        self.sent = self.offset;
        self.sent_all = false;
        self.requested = false;
    }
}

/// One AppendEntries in flight: its last index and payload bytes.
#[derive(Debug, Clone, Copy)]
struct Flight {
    last: Index,
    bytes: u64,
}

#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) id: NodeId,
    pub(crate) learner: bool,
    pub(crate) match_index: Index,
    pub(crate) next: Index,
    pub(crate) state: ReplicationState,
    /// Probe state: a probe is out and unanswered, so send no other.
    pub(crate) probe_sent: bool,
    /// It answered within the current CheckQuorum period.
    pub(crate) recent_active: bool,
    /// An append was acknowledged since the last heartbeat response: replication is moving.
    pub(crate) acked_since_heartbeat: bool,
    /// The newest ReadIndex round it confirmed.
    pub(crate) read_round: u64,
    /// The snapshot transfer, in the snapshot state.
    pub(crate) snapshot: Option<SnapshotTransfer>,
    /// A commit-only message went to it since the last append with entries or the last tick:
    /// further commit advances wait for one of those.
    pub(crate) commit_only_sent: bool,
    /// A commit advance is waiting to be sent: at the acknowledgement of what is in flight to
    /// it, or at the next tick.
    pub(crate) commit_deferred: bool,
    /// Replicate state: entries were resent after a refusal, up to here (everything sent
    /// before); a refusal of a message sent before the resend needs nothing more.
    resent_through: Option<Index>,
    flights: VecDeque<Flight>,
    flight_bytes: u64,
}

impl Progress {
    pub(crate) fn new(id: NodeId, learner: bool, next: Index) -> Self {
        Self {
            id,
            learner,
            match_index: Index::ZERO,
            next,
            state: ReplicationState::Probe,
            probe_sent: false,
            recent_active: false,
            acked_since_heartbeat: false,
            read_round: 0,
            snapshot: None,
            commit_only_sent: false,
            commit_deferred: false,
            resent_through: None,
            flights: VecDeque::new(),
            flight_bytes: 0,
        }
    }

    /// Whether no new AppendEntries may go out now.
    pub(crate) fn paused(&self, max_msgs: u32, max_bytes: u64) -> bool {
        match self.state {
            ReplicationState::Probe => self.probe_sent,
            ReplicationState::Replicate => {
                self.flights.len() >= max_msgs as usize || self.flight_bytes >= max_bytes
            }
            ReplicationState::Snapshot => true,
        }
    }

    pub(crate) fn has_inflight(&self) -> bool {
        !self.flights.is_empty()
    }

    /// An AppendEntries carrying entries up to `last` went out, `bytes` of them new. `merged`:
    /// the entries were added to a message still in the sends lane that already held that many
    /// payload bytes.
    pub(crate) fn sent(&mut self, last: Index, bytes: u64, merged: Option<u64>) {
        // Entries carry the commit index: the next advance may go out alone again, and none
        // is left waiting.
        self.commit_only_sent = false;
        self.commit_deferred = false;
        match self.state {
            ReplicationState::Probe | ReplicationState::Snapshot => self.probe_sent = true,
            ReplicationState::Replicate => {
                let prev = self.next.prev();
                self.next = last.next().unwrap_or(last);
                match (self.flights.back_mut(), merged) {
                    (Some(f), Some(_)) if f.last == prev => {
                        f.last = last;
                        f.bytes = f.bytes.saturating_add(bytes);
                        self.flight_bytes = self.flight_bytes.saturating_add(bytes);
                    }
                    (_, merged) => {
                        // A message queued while probing was not counted in flight: now that it
                        // grows, all of it is.
                        let bytes = bytes.saturating_add(merged.unwrap_or(0));
                        self.flights.push_back(Flight { last, bytes });
                        self.flight_bytes = self.flight_bytes.saturating_add(bytes);
                    }
                }
            }
        }
    }

    /// The payload bytes of the newest message in flight, if it ends at `last` (the message a
    /// new batch would be merged into).
    pub(crate) fn flight_bytes_ending_at(&self, last: Index) -> Option<u64> {
        self.flights
            .back()
            .filter(|f| f.last == last)
            .map(|f| f.bytes)
    }

    /// The follower matches up to `index`. Returns whether that is news.
    pub(crate) fn acknowledge(&mut self, index: Index) -> bool {
        self.probe_sent = false;
        while let Some(f) = self.flights.front() {
            if f.last > index {
                break;
            }
            self.flight_bytes = self.flight_bytes.saturating_sub(f.bytes);
            self.flights.pop_front();
        }
        if index <= self.match_index {
            return false;
        }
        self.match_index = index;
        if self.resent_through.is_some_and(|through| index >= through) {
            self.resent_through = None;
        }
        self.acked_since_heartbeat = true;
        if self.next <= index {
            self.next = index.next().unwrap_or(index);
        }
        if self.state != ReplicationState::Replicate {
            self.become_replicate();
        }
        true
    }

    /// Replicate state, every entry sent and some still unacknowledged: the acknowledgement on
    /// its way is the moment to tell it of a commit advance (then in a commit notice, which
    /// needs no answer), rather than now in an empty AppendEntries that would need one.
    pub(crate) fn awaiting_acknowledgement(&self, last_index: Index) -> bool {
        self.state == ReplicationState::Replicate
            && self.next > last_index
            && self.match_index < self.next.prev()
    }

    /// The follower refused the request whose `prev` was `rejected`, hinting that its log
    /// holds `hint` (`hint_agrees`: the leader's log holds the same entry there); `probe_at` is
    /// where the leader's log and the follower's hint can next agree. Returns whether to send
    /// again.
    pub(crate) fn refused(
        &mut self,
        rejected: Index,
        hint: Index,
        hint_agrees: bool,
        probe_at: Index,
    ) -> bool {
        match self.state {
            // Answers to appends sent before the transfer began.
            ReplicationState::Snapshot => false,
            ReplicationState::Replicate => {
                if rejected <= self.match_index {
                    return false; // a stale answer to something already superseded
                }
                if !hint_agrees && hint >= self.match_index {
                    // The follower holds entries the leader's log does not (or names no term):
                    // probe back to where they part.
                    self.become_probe();
                    return true;
                }
                // The follower agrees with the leader's log up to `at` and lacks what follows: a
                // later message overtook an earlier one on the way (or the earlier one was lost),
                // and the follower dropped the entries of the one it refused. They are resent
                // once, from `at`, still pipelining; a refusal of a message sent before that
                // resend is answered by it. (Should the resend be lost, the heartbeat's stall
                // check falls back to probing: `handle_heartbeat_response`.)
                if self
                    .resent_through
                    .is_some_and(|through| rejected < through)
                {
                    return false;
                }
                let at = hint.max(self.match_index);
                self.resent_through = Some(self.next.prev());
                self.next = at.next().unwrap_or(at);
                self.flights.retain(|f| f.last <= at);
                self.flight_bytes = self.flights.iter().map(|f| f.bytes).sum();
                true
            }
            ReplicationState::Probe => {
                if self.next.prev() != rejected {
                    return false; // not the probe that is outstanding
                }
                let next = rejected.min(probe_at.next().unwrap_or(probe_at));
                self.next = next.max(self.match_index.next().unwrap_or(self.match_index));
                self.probe_sent = false;
                true
            }
        }
    }

    /// Starts sending the snapshot `id`. A transfer just started counts as progress: a heartbeat
    /// answer already on its way must not take it for a stalled one and resend the window.
    pub(crate) fn become_snapshot(&mut self, id: LogId) {
        self.become_probe();
        self.state = ReplicationState::Snapshot;
        self.acked_since_heartbeat = true;
        self.snapshot = Some(SnapshotTransfer {
            id,
            offset: 0,
            sent: 0,
            sent_all: false,
            requested: false,
        });
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ReplicationState::Probe;
        self.snapshot = None;
        self.next = self.match_index.next().unwrap_or(self.match_index);
        self.probe_sent = false;
        self.resent_through = None;
        self.flights.clear();
        self.flight_bytes = 0;
    }

    fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.snapshot = None;
        self.resent_through = None;
        self.next = self.match_index.next().unwrap_or(self.match_index);
        self.probe_sent = false;
    }

    pub(crate) fn status(&self) -> PeerStatus {
        PeerStatus {
            id: self.id,
            match_index: self.match_index,
            next_index: self.next,
            state: self.state,
            recent_active: self.recent_active,
            inflight_msgs: u32::try_from(self.flights.len()).unwrap_or(u32::MAX),
            learner: self.learner,
        }
    }
}
