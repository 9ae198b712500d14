//! Leadership transfer (Raft thesis §3.10): the leader stops taking proposals, brings the target
//! up to date, and sends it TimeoutNow so that it starts an election at once, without pre-vote
//! and past the other voters' leases. If the target has not taken over within an election
//! timeout, the leader resumes service.

use crate::types::{Index, NodeId};

/// A leadership transfer under way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transfer {
    target: NodeId,
    elapsed: u32,
    timeout_now_sent: bool,
}

impl Transfer {
    pub(crate) fn new(target: NodeId) -> Self {
        Self {
            target,
            elapsed: 0,
            timeout_now_sent: false,
        }
    }

    /// The voter leadership goes to.
    pub(crate) fn target(&self) -> NodeId {
        self.target
    }

    /// One tick passed. Returns whether the transfer has run out of time (`limit` ticks, an
    /// election timeout, without the target taking over): the leader then resumes service.
    pub(crate) fn tick(&mut self, limit: u32) -> bool {
        self.elapsed = self.elapsed.saturating_add(1);
        self.elapsed >= limit
    }

    /// Whether TimeoutNow should go to the target now: it holds the whole log (`target_match`
    /// is `last`) and none was sent. Once this says yes it says no: one TimeoutNow per transfer.
    pub(crate) fn take_timeout_now(&mut self, target_match: Option<Index>, last: Index) -> bool {
        if self.timeout_now_sent || target_match != Some(last) {
            return false;
        }
        self.timeout_now_sent = true;
        true
    }
}
