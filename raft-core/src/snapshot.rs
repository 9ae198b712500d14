//! Log compaction and InstallSnapshot (Raft §7): the application snapshots its state machine and
//! the node drops the log it covers; a leader sends its snapshot, chunk by chunk, to a follower
//! that needs entries it no longer has. The snapshot bytes stay with the adapter: the leader asks
//! for each chunk and passes it on; the follower hands each chunk to its adapter to store.

use alloc::boxed::Box;

use rand_core::Rng;

use crate::error::{Misuse, Reject, StepError};
use crate::input::SnapshotChunk;
use crate::message::MessageBody;
use crate::node::Node;
use crate::output::{ChunkRequest, Event, Outputs, SnapshotPart};
use crate::restore::SnapshotMeta;
use crate::status::{ReplicationState, Role};
use crate::types::{Index, LogId, NodeId, Payload};

/// A snapshot this follower is receiving from its leader.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming {
    /// The leader sending it (a new leader starts over: its snapshot's bytes may differ).
    pub(crate) from: NodeId,
    pub(crate) id: LogId,
    /// Bytes received and handed to the adapter so far.
    pub(crate) received: u64,
}

impl<R: Rng> Node<R> {
    /// The metadata of a snapshot of the state machine as of `index`, for
    /// [`Input::SnapshotTaken`](crate::Input::SnapshotTaken).
    ///
    /// Call this when the state machine has applied exactly `index` and is about to be
    /// snapshotted. `None` if `index` has not been applied or is no longer in the log.
    #[must_use]
    pub fn snapshot_meta(&self, index: Index) -> Option<SnapshotMeta> {
        if index > self.applied {
            return None;
        }
        if index == self.snapshot.last.index {
            return Some(self.snapshot.clone());
        }
        if index < self.snapshot.last.index {
            return None;
        }
        let term = self.log.entry(index)?.id.term;
        Some(SnapshotMeta {
            last: LogId { term, index },
            membership: self.membership_as_of(index).0,
        })
    }

    /// The latest snapshot (`LogId::ZERO` for none).
    #[must_use]
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The application stored a snapshot: compact the log behind it.
    pub(crate) fn snapshot_taken(
        &mut self,
        meta: SnapshotMeta,
        out: &mut Outputs,
    ) -> Result<(), StepError> {
        if meta.last.index <= self.snapshot.last.index {
            return Ok(()); // an older snapshot than the one in force: nothing to do
        }
        if self.snapshot_meta(meta.last.index).as_ref() != Some(&meta) {
            return Err(Misuse::SnapshotMismatch.into());
        }
        self.snapshot = meta;
        // A configuration entry now inside the snapshot is the snapshot's configuration.
        self.config_index = self.config_index.max(self.snapshot.last.index);
        let keep_from = self
            .snapshot
            .last
            .index
            .0
            .saturating_sub(self.config.snapshot_trailing_entries);
        if let Some(term) = self.log.term_at(Index(keep_from)) {
            self.log.compact_to(LogId {
                term,
                index: Index(keep_from),
            });
        }
        self.snapshot_suggested = false;
        // Transfers of an older snapshot start over with this one.
        let id = self.snapshot.last;
        for i in 0..self.peers.len() {
            let Some(p) = self.peers.get_mut(i) else {
                continue;
            };
            if p.snapshot.is_some_and(|t| t.id != id) {
                p.become_snapshot(id);
                self.request_chunk(i, out);
            }
        }
        Ok(())
    }

    /// Suggests a snapshot once more than `snapshot_log_entries` applied entries follow the
    /// latest one. Counted from the snapshot, not as the log's length: the log keeps
    /// `snapshot_trailing_entries` below the snapshot, and with more of those than the interval
    /// a length rule would suggest a snapshot after every entry.
    pub(crate) fn maybe_suggest_snapshot(&mut self, out: &mut Outputs) {
        let since = self.applied.0.saturating_sub(self.snapshot.last.index.0);
        if !self.snapshot_suggested && since > self.config.snapshot_log_entries {
            self.snapshot_suggested = true;
            out.events.push(Event::SnapshotSuggested {
                applied: self.applied,
                log_entries: self.log.len(),
            });
        }
    }

    // ---- leader ------------------------------------------------------------------------------

    /// The follower at `i` needs entries before the log's start: send the latest snapshot.
    pub(crate) fn start_snapshot(&mut self, i: usize, out: &mut Outputs) {
        let id = self.snapshot.last;
        if let Some(p) = self.peers.get_mut(i) {
            if p.snapshot.is_some_and(|t| t.id == id) {
                return;
            }
            p.become_snapshot(id);
        }
        self.request_chunk(i, out);
    }

    /// Asks the adapter for the next chunk of the transfer to the follower at `i`.
    pub(crate) fn request_chunk(&mut self, i: usize, out: &mut Outputs) {
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        let Some(t) = &mut p.snapshot else { return };
        t.requested = true;
        out.chunk_requests.push(ChunkRequest {
            to: p.id,
            snapshot: t.id,
            offset: t.offset,
            max_len: self.config.snapshot_chunk_bytes,
        });
    }

    /// The adapter read a chunk: pass it on, if the transfer still wants it.
    pub(crate) fn snapshot_chunk(&mut self, chunk: SnapshotChunk, out: &mut Outputs) {
        if self.role != Role::Leader || chunk.snapshot != self.snapshot.last {
            return; // leadership or the snapshot changed since the request: stale
        }
        let Some(i) = self.peer_index(chunk.to) else {
            return;
        };
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        match &mut p.snapshot {
            Some(t) if t.requested && t.offset == chunk.offset && t.id == chunk.snapshot => {
                t.requested = false;
            }
            _ => return,
        }
        let body = MessageBody::InstallSnapshot {
            meta: Box::new(self.snapshot.clone()),
            offset: chunk.offset,
            data: chunk.data,
            done: chunk.done,
        };
        self.send(chunk.to, body, out);
    }

    pub(crate) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        snapshot: LogId,
        received: u64,
        installed: bool,
        out: &mut Outputs,
    ) -> Result<(), StepError> {
        if self.role != Role::Leader {
            return Ok(());
        }
        let Some(i) = self.peer_index(from) else {
            return Ok(());
        };
        if installed && snapshot.index > self.log.last_index() {
            return Err(Reject::AckPastLog {
                index: snapshot.index,
            }
            .into());
        }
        let Some(p) = self.peers.get_mut(i) else {
            return Ok(());
        };
        p.recent_active = true;
        if installed {
            // The follower holds everything up to the snapshot: replicate from there.
            if p.acknowledge(snapshot.index) && self.maybe_commit(out) {
                self.broadcast_append(true, out);
            }
            self.send_append(i, true, out);
            return Ok(());
        }
        match &mut p.snapshot {
            Some(t) if p.state == ReplicationState::Snapshot && t.id == snapshot => {
                // The follower holds `received` bytes: continue from there, or from 0 if it lost
                // the transfer (a follower's count only grows until it starts over). Any other
                // answer is a duplicate or a late one: the chunk at `t.offset` is already on its
                // way, and a lost one is resent when the follower's heartbeats show no progress.
                // Answering those too would send a chunk per duplicate, and each chunk's answer
                // can be duplicated again: a storm.
                let progress = received > t.offset;
                let restart = received == 0 && t.offset > 0;
                if progress || restart {
                    t.offset = received;
                    p.acked_since_heartbeat = true;
                    self.request_chunk(i, out);
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ---- follower ----------------------------------------------------------------------------

    /// One chunk of the leader's snapshot. The message is validated and from the leader of this
    /// node's term.
    pub(crate) fn handle_install_snapshot(
        &mut self,
        from: NodeId,
        meta: Box<SnapshotMeta>,
        offset: u64,
        data: Payload,
        done: bool,
        out: &mut Outputs,
    ) {
        let id = meta.last;
        if id.index <= self.commit {
            // Everything it covers is committed here already.
            self.incoming = None;
            let body = MessageBody::SnapshotResponse {
                snapshot: id,
                received: 0,
                installed: true,
            };
            self.respond(from, self.term, body, out);
            return;
        }
        let expected = match self.incoming {
            Some(inc) if inc.id == id && inc.from == from => inc.received,
            _ => 0,
        };
        if offset != expected {
            // A lost, duplicated or stale chunk: say where to continue.
            let body = MessageBody::SnapshotResponse {
                snapshot: id,
                received: expected,
                installed: false,
            };
            self.respond(from, self.term, body, out);
            return;
        }
        let received = offset.saturating_add(data.len() as u64);
        let part = SnapshotPart {
            meta: (*meta).clone(),
            offset,
            data,
            done,
        };
        if done {
            let kept = self.log.install(id);
            // If the log after the snapshot belongs to another history, the same write drops
            // it (before installing, so a torn write leaves an old but consistent log).
            let truncate = (!kept).then(|| Index(id.index.0.saturating_add(1)));
            if let Some(after) = truncate {
                self.durability.note_truncation(after);
            }
            self.durability
                .write_snapshot(out, self.log.last_index(), part, truncate);
            self.install_write = self.durability.latest();
            self.snapshot = *meta;
            self.refresh_membership();
            self.commit = self.commit.max(id.index);
            self.incoming = None;
            // A pending suggestion is answered by this snapshot: suggest again when the log
            // outgrows the limit, as after one the application took.
            self.snapshot_suggested = false;
        } else {
            self.durability
                .write_snapshot(out, self.log.last_index(), part, None);
            self.incoming = Some(Incoming { from, id, received });
        }
        let body = MessageBody::SnapshotResponse {
            snapshot: id,
            received,
            installed: done,
        };
        self.respond(from, self.term, body, out);
    }
}
