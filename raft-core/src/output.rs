//! What a node asks its adapter to do, sorted into lanes the adapter drains.

use alloc::boxed::Box;
use alloc::vec::{Drain, Vec};

use smallvec::SmallVec;

use crate::message::Message;
use crate::restore::SnapshotMeta;
use crate::status::Role;
pub(crate) use crate::types::WriteId;
use crate::types::{Entries, Entry, HardState, Index, LogId, NodeId, Payload, ReadId, Term};

/// The outputs of one or more steps, sorted into lanes.
///
/// The caller owns it and passes it to every [`Node::step`](crate::Node::step), which appends and
/// never clears. Drain each lane, then reuse the value: its buffers keep their capacity, so the
/// steady state allocates nothing.
///
/// The lanes, and what the adapter MUST do with each:
///
/// 1. **sends**: send each message to its addressee. Everything here is safe to send at once;
///    responses that depend on unconfirmed writes are held inside the node until the writes are
///    acknowledged.
/// 2. **writes**: make each [`Write`] durable, in order, then step
///    [`Input::Persisted`](crate::Input::Persisted) with the id of the last one made durable.
///    Writes still in the lane may be merged by the node into one.
/// 3. **apply**: apply these to the state machine in order (entries are committed and locally
///    durable; a snapshot replaces the state machine's state), then step
///    [`Input::Applied`](crate::Input::Applied).
/// 4. **reads**: each [`ReadResult::Ready`] may be served once the state machine has applied its
///    index.
/// 5. **chunk requests**: read each [`ChunkRequest`] from the snapshot it names and step the
///    bytes back as [`Input::SnapshotChunk`](crate::Input::SnapshotChunk).
/// 6. **events**: observability and hints; nothing must be done.
#[derive(Default, Debug)]
pub struct Outputs {
    pub(crate) sends: Vec<Message>,
    pub(crate) writes: Vec<Write>,
    pub(crate) apply: Vec<Apply>,
    pub(crate) reads: Vec<ReadResult>,
    pub(crate) chunk_requests: Vec<ChunkRequest>,
    pub(crate) events: Vec<Event>,
}

impl Outputs {
    /// Empty lanes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the messages to send.
    pub fn drain_sends(&mut self) -> Drain<'_, Message> {
        self.sends.drain(..)
    }

    /// Moves the messages to send to the end of `to`, in order, leaving the lane empty (it keeps
    /// its capacity): `to.extend(outputs.drain_sends())` in one copy, for an adapter that queues
    /// messages in a list of its own.
    pub fn append_sends_to(&mut self, to: &mut Vec<Message>) {
        to.append(&mut self.sends);
    }

    /// Takes the writes to make durable, oldest first.
    pub fn drain_writes(&mut self) -> Drain<'_, Write> {
        self.writes.drain(..)
    }

    /// Takes what to apply, in index order.
    pub fn drain_apply(&mut self) -> Drain<'_, Apply> {
        self.apply.drain(..)
    }

    /// Takes the snapshot chunks to read for followers.
    pub fn drain_chunk_requests(&mut self) -> Drain<'_, ChunkRequest> {
        self.chunk_requests.drain(..)
    }

    /// Takes the finished reads.
    pub fn drain_reads(&mut self) -> Drain<'_, ReadResult> {
        self.reads.drain(..)
    }

    /// Takes the events.
    pub fn drain_events(&mut self) -> Drain<'_, Event> {
        self.events.drain(..)
    }

    /// The messages waiting to be sent.
    #[must_use]
    pub fn sends(&self) -> &[Message] {
        &self.sends
    }

    /// The writes waiting to be made durable.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// What waits to be applied.
    #[must_use]
    pub fn apply(&self) -> &[Apply] {
        &self.apply
    }

    /// The snapshot chunks waiting to be read.
    #[must_use]
    pub fn chunk_requests(&self) -> &[ChunkRequest] {
        &self.chunk_requests
    }

    /// The finished reads.
    #[must_use]
    pub fn reads(&self) -> &[ReadResult] {
        &self.reads
    }

    /// The events.
    #[must_use]
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Whether every lane is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.writes.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
            && self.chunk_requests.is_empty()
            && self.events.is_empty()
    }

    /// Empties every lane, keeping the capacity.
    pub fn clear(&mut self) {
        self.sends.clear();
        self.writes.clear();
        self.apply.clear();
        self.reads.clear();
        self.chunk_requests.clear();
        self.events.clear();
    }
}

/// State the adapter MUST make durable, then acknowledge with
/// [`Input::Persisted`](crate::Input::Persisted)`(id)`.
///
/// Apply the parts in this order: `hard_state`, then `truncate_from`, then `snapshot`, then
/// `entries`. A crash part-way MUST leave a prefix of that order on disk (as an append-only log
/// does), never the entries without the hard state that precedes them.
#[must_use = "a write must be made durable and acknowledged, or the node stalls"]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Write {
    /// The id to acknowledge once this write (and every earlier one) is durable.
    pub id: WriteId,
    /// A new term and vote to record, if they changed.
    pub hard_state: Option<HardState>,
    /// Delete every entry at this index and above.
    pub truncate_from: Option<Index>,
    /// A chunk of a snapshot received from the leader, to store (see [`SnapshotPart`]).
    pub snapshot: Option<Box<SnapshotPart>>,
    /// Entries to append after the log's current end, contiguous and in index order.
    pub entries: Entries,
}

/// A chunk of a snapshot a follower receives from its leader.
///
/// Chunks of one snapshot arrive in order, starting at offset 0. A chunk at offset 0 starts a
/// new snapshot: discard any partial one. When `done` is set, once this chunk is stored the
/// snapshot is complete and becomes this node's snapshot: make it durable (write to a temporary
/// file, sync, rename), and delete every log entry up to `meta.last.index` (they are in the
/// snapshot). The entries after it stay, unless the same write's `truncate_from` removed them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SnapshotPart {
    /// The snapshot's metadata.
    pub meta: SnapshotMeta,
    /// Where `data` goes in the snapshot.
    pub offset: u64,
    /// The bytes.
    pub data: Payload,
    /// The snapshot is complete with this chunk.
    pub done: bool,
}

impl Write {
    pub(crate) fn new(id: WriteId) -> Self {
        Self {
            id,
            hard_state: None,
            snapshot: None,
            truncate_from: None,
            entries: SmallVec::new(),
        }
    }

    /// Folds a later write into this one (which has not been handed to the adapter yet), so the
    /// adapter makes both durable with one sync and acknowledges the later id.
    pub(crate) fn absorb_truncation(&mut self, from: Index) {
        self.entries.retain(|e| e.id.index < from);
        self.truncate_from = Some(self.truncate_from.map_or(from, |t| t.min(from)));
    }
}

/// Something for the state machine, in log order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Apply {
    /// A committed entry to apply.
    Entry(Entry),
    /// The node installed a snapshot from its leader: replace the state machine's state with the
    /// snapshot's (the one completed by the last [`SnapshotPart`] with `done`). The entries that
    /// follow continue from `meta.last`.
    Snapshot(Box<SnapshotMeta>),
}

impl Apply {
    /// The log index the state machine has reached once this is applied.
    #[must_use]
    pub fn index(&self) -> Index {
        match self {
            Self::Entry(e) => e.id.index,
            Self::Snapshot(meta) => meta.last.index,
        }
    }
}

/// A request to read part of the leader's snapshot for a follower. Answer it with
/// [`Input::SnapshotChunk`](crate::Input::SnapshotChunk); the node keeps no snapshot bytes itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChunkRequest {
    /// The follower the chunk is for.
    pub to: NodeId,
    /// The snapshot to read (the latest one taken).
    pub snapshot: LogId,
    /// Where to start reading.
    pub offset: u64,
    /// The most bytes to read.
    pub max_len: u32,
}

/// The outcome of a read request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReadResult {
    /// Leadership was confirmed after the read arrived: once the state machine has applied
    /// `index`, serving the read from it is linearizable.
    Ready {
        /// The caller's id for the read.
        id: ReadId,
        /// The commit index the read must wait for.
        index: Index,
    },
    /// This node stopped being leader before the read was confirmed. Retry at the new leader.
    Aborted {
        /// The caller's id for the read.
        id: ReadId,
    },
}

/// Something observable happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The node's role, term or known leader changed.
    StateChanged {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The leader this node now knows of.
        leader: Option<NodeId>,
    },
    /// More than `Config::snapshot_log_entries` entries were applied since the latest snapshot:
    /// the application should
    /// take a snapshot (at `applied`) and report it with
    /// [`Input::SnapshotTaken`](crate::Input::SnapshotTaken).
    SnapshotSuggested {
        /// The index the state machine has applied.
        applied: Index,
        /// Entries held in memory.
        log_entries: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageBody;
    use crate::types::EntryKind;
    use crate::{Membership, Role};

    fn entry(index: u64) -> Entry {
        Entry {
            id: LogId::new(1, index),
            kind: EntryKind::Normal,
            data: Payload::new(b"x"),
        }
    }

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last: LogId::new(1, index),
            membership: Membership::new(&[NodeId::MIN]).unwrap(),
        }
    }

    /// `append_sends_to` moves the lane's messages after what the list holds, in order, and
    /// leaves the lane empty.
    #[test]
    fn append_sends_to_moves_the_messages_in_order() {
        let message = |term| Message {
            from: NodeId::MIN,
            to: NodeId::MIN,
            term: Term(term),
            body: MessageBody::TimeoutNow,
        };
        let mut o = Outputs::new();
        o.sends.extend([message(2), message(3)]);
        let mut list = alloc::vec![message(1)];
        o.append_sends_to(&mut list);
        let terms: Vec<u64> = list.iter().map(|m| m.term.0).collect();
        assert_eq!(terms, [1, 2, 3]);
        assert!(o.sends().is_empty());
    }

    /// Outputs with one item in lane `lane` (0 sends, 1 writes, 2 apply, 3 reads, 4 chunk
    /// requests, 5 events) and nothing elsewhere.
    fn one_in(lane: usize) -> Outputs {
        let mut o = Outputs::new();
        match lane {
            0 => o.sends.push(Message {
                from: NodeId::MIN,
                to: NodeId::MIN,
                term: Term(1),
                body: MessageBody::TimeoutNow,
            }),
            1 => o.writes.push(Write::new(WriteId(1))),
            2 => o.apply.push(Apply::Entry(entry(1))),
            3 => o.reads.push(ReadResult::Aborted { id: ReadId(1) }),
            4 => o.chunk_requests.push(ChunkRequest {
                to: NodeId::MIN,
                snapshot: LogId::new(1, 1),
                offset: 0,
                max_len: 1,
            }),
            _ => o.events.push(Event::StateChanged {
                role: Role::Follower,
                term: Term(1),
                leader: None,
            }),
        }
        o
    }

    /// `is_empty` holds only when every lane is empty: an item in any one lane, the others
    /// empty, is something the adapter must still do.
    #[test]
    fn outputs_are_empty_only_when_every_lane_is() {
        assert!(Outputs::new().is_empty());
        for lane in 0..6 {
            let mut o = one_in(lane);
            assert!(!o.is_empty(), "an item in lane {lane}");
            o.clear();
            assert!(o.is_empty(), "lane {lane} cleared");
        }
    }

    /// Each lane's accessor shows what its drain would take, without taking it.
    #[test]
    fn each_lane_shows_what_its_drain_takes() {
        let mut o = Outputs::new();
        for lane in 0..6 {
            let one = one_in(lane);
            o.sends.extend(one.sends);
            o.writes.extend(one.writes);
            o.apply.extend(one.apply);
            o.reads.extend(one.reads);
            o.chunk_requests.extend(one.chunk_requests);
            o.events.extend(one.events);
        }
        let sends = o.sends().to_vec();
        let writes = o.writes().to_vec();
        let apply = o.apply().to_vec();
        let reads = o.reads().to_vec();
        let chunks = o.chunk_requests().to_vec();
        let events = o.events().to_vec();
        for (lane, len) in [
            sends.len(),
            writes.len(),
            apply.len(),
            reads.len(),
            chunks.len(),
            events.len(),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(len, 1, "lane {lane} shows its item");
        }
        assert_eq!(o.drain_sends().collect::<Vec<_>>(), sends);
        assert_eq!(o.drain_writes().collect::<Vec<_>>(), writes);
        assert_eq!(o.drain_apply().collect::<Vec<_>>(), apply);
        assert_eq!(o.drain_reads().collect::<Vec<_>>(), reads);
        assert_eq!(o.drain_chunk_requests().collect::<Vec<_>>(), chunks);
        assert_eq!(o.drain_events().collect::<Vec<_>>(), events);
        assert!(o.is_empty());
    }

    /// A truncation folded into a pending write deletes every entry at and after its index
    /// (`truncate_from`: "delete every entry at this index and above"), keeps the ones before,
    /// and the write truncates from the lowest index it was given.
    #[test]
    fn absorbing_a_truncation_drops_the_entries_at_and_after_it() {
        let mut w = Write::new(WriteId(1));
        w.entries.extend((1..=5).map(entry));
        w.absorb_truncation(Index(3));
        let kept: Vec<u64> = w.entries.iter().map(|e| e.id.index.0).collect();
        assert_eq!(kept, [1, 2]);
        assert_eq!(w.truncate_from, Some(Index(3)));
        w.absorb_truncation(Index(7));
        assert_eq!(w.entries.len(), 2, "a later truncation point keeps them");
        assert_eq!(w.truncate_from, Some(Index(3)));
        w.absorb_truncation(Index(2));
        let kept: Vec<u64> = w.entries.iter().map(|e| e.id.index.0).collect();
        assert_eq!(kept, [1]);
        assert_eq!(w.truncate_from, Some(Index(2)));
    }

    /// `Apply::index` is the index the state machine reaches: the entry's, or the last index
    /// the installed snapshot covers.
    #[test]
    fn apply_index_is_where_the_state_machine_gets_to() {
        assert_eq!(Apply::Entry(entry(4)).index(), Index(4));
        assert_eq!(Apply::Snapshot(Box::new(meta(9))).index(), Index(9));
    }
}
