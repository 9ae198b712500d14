//! Log compaction and InstallSnapshot (Raft §7): the application snapshots its state machine and
//! the node drops the log it covers; a leader sends its snapshot, chunk by chunk, to a follower
//! that needs entries it no longer has. The snapshot bytes stay with the adapter: the leader asks
//! for each chunk and passes it on; the follower hands each chunk to its adapter to store.
//!
//! Chunks are pipelined: the leader asks for the next chunk as soon as one leaves, while the
//! bytes sent and not yet acknowledged, the next chunk included, stay within
//! `max_inflight_bytes` (with the defaults, 32 chunks of 1 MiB). One chunk always goes when
//! none is in flight, so with `max_inflight_bytes` at most `snapshot_chunk_bytes` a transfer is
//! stop-and-wait. The follower takes chunks only in order and answers
//! with the bytes it holds; a chunk lost or overtaken leaves it waiting, which its heartbeat
//! answers show, and the leader sends again from what it holds.

use alloc::boxed::Box;

use crate::error::{Misuse, Reject, StepError};
use crate::input::SnapshotChunk;
use crate::leader::{Halt, Leadership};
use crate::message::MessageBody;
use crate::output::{ChunkRequest, Outputs};
use crate::restore::SnapshotMeta;
use crate::shared::Shared;
use crate::status::ReplicationState;
use crate::types::{Index, LogId, NodeId};

// ---- compaction (any role) -------------------------------------------------------------------

impl Shared {
    /// The metadata of a snapshot of the state machine as of `index`: `None` if `index` has not
    /// been applied or is no longer in the log.
    pub(crate) fn snapshot_meta(&self, index: Index) -> Option<SnapshotMeta> {
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

    /// The application stored a snapshot: compact the log behind it. Returns whether it is
    /// newer than the one in force (an older one changes nothing).
    pub(crate) fn snapshot_taken(&mut self, meta: SnapshotMeta) -> Result<bool, StepError> {
        if meta.last.index <= self.snapshot.last.index {
            return Ok(false);
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
        Ok(true)
    }
}

// ---- sending (leader) ------------------------------------------------------------------------

impl Leadership {
    /// A newer snapshot was taken: transfers of an older one start over with it.
    pub(crate) fn restart_transfers(&mut self, s: &Shared, out: &mut Outputs) {
        let id = s.snapshot.last;
        for i in 0..self.peers.len() {
            let Some(p) = self.peers.get_mut(i) else {
                continue;
            };
            if p.snapshot.is_some_and(|t| t.id != id) {
                p.become_snapshot(id);
                self.request_chunk(s, i, out);
            }
        }
    }

    /// The follower at `i` needs entries before the log's start: send the latest snapshot.
    pub(crate) fn start_snapshot(&mut self, s: &Shared, i: usize, out: &mut Outputs) {
        let id = s.snapshot.last;
        if let Some(p) = self.peers.get_mut(i) {
            if p.snapshot.is_some_and(|t| t.id == id) {
                return;
            }
            p.become_snapshot(id);
        }
        self.request_chunk(s, i, out);
    }

    /// Asks the adapter for the next chunk of the transfer to the follower at `i`, if none is
    /// requested already, some is left to send, and the bytes in flight leave room for it.
    pub(crate) fn request_chunk(&mut self, s: &Shared, i: usize, out: &mut Outputs) {
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        let Some(t) = &mut p.snapshot else { return };
        let cfg = &s.config;
        let chunk = u64::from(cfg.snapshot_chunk_bytes);
        // Bounded in bytes, not in messages: chunks are the adapter's size, and a transfer of
        // small chunks limited to `max_inflight_msgs` of them would crawl.
        let window = cfg.max_inflight_bytes;
        let in_flight = t.sent.saturating_sub(t.offset);
        // The next chunk must fit in the window, unless nothing is in flight (a chunk larger
        // than the window still goes, alone).
        let fits = in_flight == 0 || in_flight.saturating_add(chunk) <= window;
        if t.requested || t.sent_all || !fits {
            return;
        }
        t.requested = true;
        out.chunk_requests.push(ChunkRequest {
            to: p.id,
            snapshot: t.id,
            offset: t.sent,
            max_len: cfg.snapshot_chunk_bytes,
        });
    }

    /// The transfer to the follower at `i` made no progress since the last heartbeat: a chunk
    /// or its acknowledgement was lost, or chunks arrived out of order. Sends again from what
    /// the follower holds.
    pub(crate) fn resend_chunks(&mut self, s: &Shared, i: usize, out: &mut Outputs) {
        if let Some(t) = self.peers.get_mut(i).and_then(|p| p.snapshot.as_mut()) {
            t.resend_from_offset();
        }
        self.request_chunk(s, i, out);
    }

    /// The adapter read a chunk: pass it on, if the transfer still wants it.
    pub(crate) fn snapshot_chunk(&mut self, s: &Shared, chunk: SnapshotChunk, out: &mut Outputs) {
        if chunk.snapshot != s.snapshot.last {
            return; // the snapshot changed since the request: stale
        }
        let Some(i) = self.peer_index(chunk.to) else {
            return;
        };
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        match &mut p.snapshot {
            Some(t) if t.requested && t.sent == chunk.offset && t.id == chunk.snapshot => {
                t.requested = false;
                t.sent = t.sent.saturating_add(chunk.data.len() as u64);
                t.sent_all = chunk.done;
            }
            _ => return,
        }
        let progressed = !chunk.data.is_empty();
        let body = MessageBody::InstallSnapshot {
            meta: Box::new(s.snapshot.clone()),
            offset: chunk.offset,
            data: chunk.data,
            done: chunk.done,
        };
        s.send(chunk.to, body, out);
        // Keep the pipeline full, unless the chunk brought nothing (an adapter answering an
        // empty chunk before the end would be asked for the same one forever; the next stalled
        // heartbeat asks again).
        if progressed {
            self.request_chunk(s, i, out);
        }
    }

    pub(crate) fn handle_snapshot_response(
        &mut self,
        s: &mut Shared,
        from: NodeId,
        snapshot: LogId,
        received: u64,
        installed: bool,
        out: &mut Outputs,
    ) -> Result<(), Halt> {
        let Some(i) = self.peer_index(from) else {
            return Ok(());
        };
        if installed && snapshot.index > s.log.last_index() {
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
            if p.acknowledge(snapshot.index) && self.maybe_commit(s, out)? {
                self.broadcast_commit(s, out);
            }
            self.send_append(s, i, true, out);
            return Ok(());
        }
        match &mut p.snapshot {
            Some(t) if p.state == ReplicationState::Snapshot && t.id == snapshot => {
                // The follower holds `received` bytes: continue from there, or from 0 if it lost
                // the transfer (a follower's count only grows until it starts over). Any other
                // answer is a duplicate, a late one, or the refusal of a chunk that overtook
                // another: what follows `t.offset` is already on its way, and a lost chunk is
                // sent again when the follower's heartbeats show no progress. Answering those
                // too would send chunks per duplicate, and each chunk's answer can be duplicated
                // again: a storm.
                let progress = received > t.offset;
                let restart = received == 0 && t.offset > 0;
                if progress || restart {
                    t.offset = received;
                    if restart || received > t.sent {
                        // It holds more than this transfer sent (from an earlier transfer of
                        // the same snapshot), or nothing any more: what is in flight is of no use.
                        t.resend_from_offset();
                    }
                    p.acked_since_heartbeat = true;
                    self.request_chunk(s, i, out);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
