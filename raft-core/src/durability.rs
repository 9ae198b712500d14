//! The persistence contract: minting write ids, tracking which writes are durable, and holding
//! back the responses that depend on writes not yet acknowledged.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::message::Message;
use crate::output::{Outputs, Write};
use crate::types::{Index, WriteId};

/// A write handed to the adapter and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    /// The log's last index once this write is durable, lowered by later truncations.
    last_index: Index,
}

#[derive(Debug, Default)]
pub(crate) struct Durability {
    /// The last id minted (0: none yet).
    minted: u64,
    /// The last id acknowledged.
    acked: u64,
    pending: VecDeque<Pending>,
    /// Responses waiting for the write with this id (and all before it) to be durable.
    withheld: VecDeque<(u64, Message)>,
}

/// What an acknowledgement changed.
pub(crate) struct Acked {
    /// The log is durable up to here, if the acknowledgement covered a log write.
    pub(crate) persisted: Option<Index>,
}

impl Durability {
    /// Adds to the current write: the newest write in the lane if this node minted it last and
    /// it is not acknowledged (it keeps its id), otherwise a new write with a fresh id. Either
    /// way the adapter's acknowledgement of the lane's last id covers everything added. (Every
    /// write in a node's lane is minted by this node, so the lane's last write is the one minted
    /// last unless it is a snapshot chunk, which keeps a write of its own.)
    pub(crate) fn write(
        &mut self,
        out: &mut Outputs,
        last_index: Index,
        f: impl FnOnce(&mut Write),
    ) {
        let current = out
            .writes
            .last()
            .is_some_and(|w| w.id.0 == self.minted && w.id.0 > self.acked && w.snapshot.is_none());
        if !current {
            let id = self.mint(last_index);
            out.writes.push(Write::new(id));
        }
        if let Some(p) = self.pending.back_mut() {
            p.last_index = last_index;
        }
        if let Some(w) = out.writes.last_mut() {
            f(w);
        }
    }

    /// A fresh write id, recorded as pending until acknowledged.
    fn mint(&mut self, last_index: Index) -> WriteId {
        self.minted += 1;
        self.pending.push_back(Pending {
            id: self.minted,
            last_index,
        });
        WriteId(self.minted)
    }

    /// Adds a snapshot chunk in a write of its own.
    pub(crate) fn write_snapshot(
        &mut self,
        out: &mut Outputs,
        last_index: Index,
        part: crate::SnapshotPart,
        truncate_from: Option<Index>,
    ) {
        let mut w = Write::new(self.mint(last_index));
        w.truncate_from = truncate_from;
        w.snapshot = Some(alloc::boxed::Box::new(part));
        out.writes.push(w);
    }

    /// Entries from `from` on were truncated: no pending write can make them durable any more.
    pub(crate) fn note_truncation(&mut self, from: Index) {
        for p in &mut self.pending {
            p.last_index = p.last_index.min(from.prev());
        }
    }

    /// Whether every write minted so far is acknowledged.
    pub(crate) fn all_acked(&self) -> bool {
        self.acked == self.minted
    }

    /// The last minted id, for something that depends on every write so far.
    pub(crate) fn latest(&self) -> u64 {
        self.minted
    }

    /// Whether the write with this id is durable.
    pub(crate) fn is_acked(&self, id: u64) -> bool {
        id <= self.acked
    }

    /// Queues a response until every write minted so far is durable; sends it now if none is
    /// pending.
    pub(crate) fn send_after_writes(&mut self, msg: Message, out: &mut Outputs) {
        if self.all_acked() {
            out.sends.push(msg);
        } else {
            self.withheld.push_back((self.minted, msg));
        }
    }

    /// Records the adapter's cumulative acknowledgement. Returns `None` if `id` was never minted.
    pub(crate) fn ack(&mut self, id: WriteId) -> Option<Acked> {
        if id.0 > self.minted {
            return None;
        }
        let mut persisted = None;
        if id.0 > self.acked {
            self.acked = id.0;
            while let Some(p) = self.pending.front().copied() {
                if p.id > id.0 {
                    break;
                }
                persisted = Some(p.last_index);
                self.pending.pop_front();
            }
        }
        Some(Acked { persisted })
    }

    /// Moves the withheld messages whose writes are now durable to `sends`, in order.
    pub(crate) fn release(&mut self, sends: &mut Vec<Message>) {
        while self
            .withheld
            .front()
            .is_some_and(|(id, _)| *id <= self.acked)
        {
            if let Some((_, m)) = self.withheld.pop_front() {
                sends.push(m);
            }
        }
    }

    /// How many responses are waiting for writes.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn withheld_len(&self) -> usize {
        self.withheld.len()
    }

    /// Writes pending.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageBody;
    use crate::types::{NodeId, Term};
    use alloc::vec::Vec;

    fn response(n: u64) -> Message {
        Message {
            from: NodeId::MIN,
            to: NodeId::new(2).unwrap(),
            term: Term(n),
            body: MessageBody::HeartbeatResponse {
                read_round: n,
                writes_pending: false,
            },
        }
    }

    /// The terms of the messages `release` moves out.
    fn release_terms(d: &mut Durability) -> Vec<u64> {
        let mut sends = Vec::new();
        d.release(&mut sends);
        sends.iter().map(|m| m.term.0).collect()
    }

    /// A response waits for every write minted before it (what it says may rest on them) and
    /// is released, in order, once they are acknowledged; with no write pending it goes at once.
    #[test]
    fn responses_wait_for_the_writes_before_them() {
        let mut d = Durability::default();
        let mut out = Outputs::new();
        d.send_after_writes(response(1), &mut out);
        assert_eq!((out.sends.len(), d.withheld_len()), (1, 0));
        d.write(&mut out, Index(1), |_| {});
        let first = out.writes[0].id;
        d.send_after_writes(response(2), &mut out);
        out.writes.clear();
        d.write(&mut out, Index(2), |_| {});
        let second = out.writes[0].id;
        d.send_after_writes(response(3), &mut out);
        assert_eq!((d.withheld_len(), d.pending_len()), (2, 2));
        assert!(d.ack(first).is_some());
        let released = release_terms(&mut d);
        assert_eq!(released, [2]);
        assert_eq!((d.withheld_len(), d.pending_len()), (1, 1));
        assert!(d.ack(second).is_some());
        let released = release_terms(&mut d);
        assert_eq!(released, [3]);
        assert_eq!((d.withheld_len(), d.pending_len()), (0, 0));
        assert!(d.all_acked());
    }
}
