//! Linearizable reads by ReadIndex (Raft thesis §6.4): a read is served at the commit index the
//! leader had when it arrived, once a heartbeat round sent after its arrival has been confirmed by
//! a quorum, and only by a leader that has committed an entry of its own term.
//!
//! Every broadcast of heartbeats (for reads, or the regular ones) is a round of its own, with a
//! fresh number. A read that arrives while the latest round's heartbeats are all still in the
//! sends lane (the adapter has not taken them yet, so they leave after the read arrived) joins
//! that round instead of starting one: many reads stepped between two drains share one
//! broadcast. A read that arrives after they left starts the next round; a heartbeat sent
//! before a read arrived can never confirm it.

use alloc::collections::VecDeque;

use crate::lease::Lease;
use crate::message::{Message, MessageBody};
use crate::output::{Outputs, ReadResult};
use crate::types::{Index, NodeId, ReadId, Term};

/// Who asked for a read: the node's own adapter, or a follower (`ReadIndexRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOrigin {
    Local(ReadId),
    Forwarded { from: NodeId, request: u64 },
}

impl ReadOrigin {
    /// Answers the read: in the reads lane, or to the follower that asked (`index` `None`:
    /// aborted).
    pub(crate) fn answer(
        self,
        leader: NodeId,
        term: Term,
        index: Option<Index>,
        out: &mut Outputs,
    ) {
        match (self, index) {
            (Self::Local(id), Some(index)) => out.reads.push(ReadResult::Ready { id, index }),
            (Self::Local(id), None) => out.reads.push(ReadResult::Aborted { id }),
            (Self::Forwarded { from, request }, index) => out.sends.push(Message {
                from: leader,
                to: from,
                term,
                body: MessageBody::ReadIndexResponse { request, index },
            }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PendingRead {
    origin: ReadOrigin,
    round: u64,
    index: Index,
}

#[derive(Debug, Default)]
pub(crate) struct ReadIndex {
    /// The last heartbeat round broadcast.
    round: u64,
    /// Reads waiting for their round to be confirmed, oldest first.
    confirming: VecDeque<PendingRead>,
    /// Reads that arrived before the leader committed an entry of its term.
    waiting_for_commit: VecDeque<ReadOrigin>,
    /// With `Config::lease_reads`: when the rounds were sent, for the lease they back.
    pub(crate) lease: Option<Lease>,
}

impl ReadIndex {
    /// No reads yet; the first round will be `after + 1`. A node numbers its rounds on from its
    /// previous leadership's (responses from an earlier term never count, so restarting at 0
    /// would be as safe; continuing keeps every heartbeat's round what it always was).
    /// `lease_ticks`: with lease reads, how long a lease lasts.
    pub(crate) fn continuing_after(after: u64, lease_ticks: Option<u32>) -> Self {
        Self {
            round: after,
            lease: lease_ticks.map(Lease::new),
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.confirming.len() + self.waiting_for_commit.len()
    }

    /// The newest round broadcast (0: none yet).
    pub(crate) fn round(&self) -> u64 {
        self.round
    }

    /// Numbers a new broadcast of heartbeats: the round they carry.
    pub(crate) fn next_round(&mut self) -> u64 {
        self.round += 1;
        if let Some(lease) = &mut self.lease {
            lease.round_sent(self.round);
        }
        self.round
    }

    pub(crate) fn wait_for_commit(&mut self, origin: ReadOrigin) {
        self.waiting_for_commit.push_back(origin);
    }

    pub(crate) fn has_waiting_for_commit(&self) -> bool {
        !self.waiting_for_commit.is_empty()
    }

    /// Every read waiting for the leader's first commit joins the newest round (just broadcast),
    /// at `commit`.
    pub(crate) fn start_waiting(&mut self, commit: Index) {
        while let Some(origin) = self.waiting_for_commit.pop_front() {
            self.confirming.push_back(PendingRead {
                origin,
                round: self.round,
                index: commit,
            });
        }
    }

    /// A read that must see `commit` waits for the newest round, whose heartbeats have not left
    /// the node yet.
    pub(crate) fn join_newest(&mut self, origin: ReadOrigin, commit: Index) {
        self.confirming.push_back(PendingRead {
            origin,
            round: self.round,
            index: commit,
        });
    }

    /// Releases, in order, the reads whose round a quorum has confirmed (leader `leader` of
    /// `term` answers the forwarded ones).
    pub(crate) fn confirm(
        &mut self,
        quorum_confirmed: impl Fn(u64) -> bool,
        (leader, term): (NodeId, Term),
        out: &mut Outputs,
    ) {
        while let Some(r) = self.confirming.front().copied() {
            if !quorum_confirmed(r.round) {
                break;
            }
            self.confirming.pop_front();
            r.origin.answer(leader, term, Some(r.index), out);
        }
    }

    /// Leadership ended: every pending read is aborted (a forwarded one is answered `None`).
    /// Returns how many.
    pub(crate) fn abort_all(&mut self, (leader, term): (NodeId, Term), out: &mut Outputs) -> u64 {
        let mut n = 0;
        for r in self.confirming.drain(..) {
            r.origin.answer(leader, term, None, out);
            n += 1;
        }
        for origin in self.waiting_for_commit.drain(..) {
            origin.answer(leader, term, None, out);
            n += 1;
        }
        n
    }
}

/// Whether every peer's heartbeat of `round`, sent by `from` in `term`, is still in the sends
/// lane: then none has left the node, and a read arriving now may join the round.
pub(crate) fn round_unsent(
    sends: &[Message],
    from: NodeId,
    term: Term,
    round: u64,
    peers: usize,
) -> bool {
    let queued = sends
        .iter()
        .filter(|m| {
            m.from == from
                && m.term == term
                && matches!(m.body, MessageBody::Heartbeat { read_round, .. } if read_round == round)
        })
        .count();
    peers > 0 && queued == peers
}
