//! Follower reads (`Config::follower_reads`; etcd's `MsgReadIndex`, Raft thesis §6.4): a
//! follower asks its leader for a read index, and reports the read ready at that index. The
//! adapter serves it once its state machine has applied the index, as it does a leader's read:
//! the leader answered only after a heartbeat round sent after the request arrived was confirmed
//! by a quorum, with its commit index of when the request arrived, so every write committed
//! before the read was issued is at or below it.
//!
//! A read waits for the leader it asked, in the term it asked in: when the node's role, term or
//! leader changes, every read waiting is aborted (the adapter retries), and an answer from
//! another node or term is ignored.

use alloc::collections::VecDeque;

use crate::error::{Refusal, StepError};
use crate::message::{Message, MessageBody};
use crate::output::{Outputs, ReadResult};
use crate::types::{Index, NodeId, ReadId, Term};

/// A read sent to the leader and not yet answered.
#[derive(Debug, Clone, Copy)]
struct Forwarded {
    request: u64,
    id: ReadId,
    leader: NodeId,
    term: Term,
}

/// The reads a follower forwarded to its leader.
#[derive(Debug, Default)]
pub(crate) struct ForwardedReads {
    /// The last request number used; `None` until the first read. The numbers start at a
    /// random point in each incarnation of the node, so that an answer to a request made
    /// before a crash, still in flight, never matches a request made after the restart (it
    /// would carry a read index older than writes committed in between: simulator seed 294).
    last_request: Option<u64>,
    waiting: VecDeque<Forwarded>,
}

impl ForwardedReads {
    /// Whether the request numbers still need their random start.
    pub(crate) fn unstarted(&self) -> bool {
        self.last_request.is_none()
    }

    /// Numbers requests on from `start` (drawn from the node's random generator).
    pub(crate) fn start(&mut self, start: u64) {
        self.last_request = Some(start);
    }

    /// A read on follower `me` in `term`: asked of `leader`. Refused if `max_pending` already
    /// wait.
    pub(crate) fn forward(
        &mut self,
        (me, term): (NodeId, Term),
        id: ReadId,
        leader: NodeId,
        max_pending: u32,
        out: &mut Outputs,
    ) -> Result<(), StepError> {
        if self.waiting.len() >= max_pending as usize {
            return Err(Refusal::TooManyReads.into());
        }
        let request = self.last_request.unwrap_or(0).wrapping_add(1);
        self.last_request = Some(request);
        self.waiting.push_back(Forwarded {
            request,
            id,
            leader,
            term,
        });
        out.sends.push(Message {
            from: me,
            to: leader,
            term,
            body: MessageBody::ReadIndexRequest { request },
        });
        Ok(())
    }

    /// The leader's answer to a forwarded read: ready at `index`, or aborted. An answer that
    /// matches no read waiting (a duplicate, or from another node or term) changes nothing.
    pub(crate) fn answered(
        &mut self,
        from: NodeId,
        term: Term,
        request: u64,
        index: Option<Index>,
        out: &mut Outputs,
    ) {
        let Some(k) = self
            .waiting
            .iter()
            .position(|r| r.request == request && r.leader == from && r.term == term)
        else {
            return;
        };
        let Some(r) = self.waiting.remove(k) else {
            return;
        };
        out.reads.push(match index {
            Some(index) => ReadResult::Ready { id: r.id, index },
            None => ReadResult::Aborted { id: r.id },
        });
    }

    /// The node's role, term or leader changed: every read waiting for an answer is aborted.
    /// Returns how many.
    pub(crate) fn abort_all(&mut self, out: &mut Outputs) -> u64 {
        let mut n = 0;
        for r in self.waiting.drain(..) {
            out.reads.push(ReadResult::Aborted { id: r.id });
            n += 1;
        }
        n
    }
}
