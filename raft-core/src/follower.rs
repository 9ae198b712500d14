//! The follower's side of the protocol: the AppendEntries receiver rules (Raft Figure 2, §5.3),
//! heartbeats, and receiving a snapshot from the leader chunk by chunk (§7). Every message here
//! has been validated and comes from the leader of this node's term.

use alloc::boxed::Box;

use crate::message::{AppendOutcome, MessageBody};
use crate::output::{Outputs, SnapshotPart};
use crate::restore::SnapshotMeta;
use crate::shared::{EarlyChunk, Incoming, Shared};
use crate::types::{
    Entries, EntryKind, Index, LogId, NodeId, Payload, detach_from_wasteful_buffer,
};

/// At most this many early chunks are kept (see `Shared::early_chunks`).
const EARLY_CHUNKS_MAX: usize = 64;

impl Shared {
    /// The AppendEntries receiver rules (Raft Figure 2). The message is validated and from the
    /// leader of this node's term.
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        prev: LogId,
        entries: Entries,
        leader_commit: Index,
        out: &mut Outputs,
    ) {
        if prev.index < self.commit {
            // Everything up to the commit index matches any leader's log (Leader Completeness):
            // tell the leader to continue from there.
            let body = MessageBody::AppendResponse {
                outcome: AppendOutcome::Accepted {
                    match_index: self.commit,
                },
            };
            self.respond(from, self.term, body, out);
            return;
        }
        // Rule 2: reply false if the log has no entry at prev.index with term prev.term.
        if !self.log.matches(prev) {
            let hint = self.log.last_at_or_before(prev.index, prev.term);
            let body = MessageBody::AppendResponse {
                outcome: AppendOutcome::Conflict {
                    rejected: prev.index,
                    hint,
                },
            };
            self.respond(from, self.term, body, out);
            return;
        }
        let last_new = Index(prev.index.0 + entries.len() as u64);
        // Rule 3: delete a conflicting entry and all that follow it; rule 4: append new entries
        // not already in the log. Entries already present are left alone, so a delayed or
        // duplicated message never truncates what a later one appended.
        let first_new = entries
            .iter()
            .position(|e| self.log.term_at(e.id.index) != Some(e.id.term));
        if let Some(k) = first_new {
            let at = Index(prev.index.0 + k as u64 + 1);
            // The configuration in force is the latest in the log: it changes if a configuration
            // entry is cut off or arrives.
            let reconfigure = (at <= self.config_index)
                || entries.iter().skip(k).any(|e| e.kind == EntryKind::Config);
            if at <= self.log.last_index() {
                self.log.truncate_from(at);
                self.durability.note_truncation(at);
                self.durability
                    .write(out, self.log.last_index(), |w| w.absorb_truncation(at));
            }
            let mut new = entries;
            if k > 0 {
                new.drain(..k);
                // The entries kept may be a few of a large received buffer (a resend that
                // overlaps what this log holds): they are not to keep all of it alive.
                detach_from_wasteful_buffer(&mut new);
            }
            for e in &new {
                self.log.push(e.clone());
            }
            // One write for the whole message; the message's entries move into it as they are.
            self.durability.write(out, self.log.last_index(), |w| {
                if w.entries.is_empty() {
                    w.entries = new;
                } else {
                    w.entries.extend(new);
                }
            });
            if reconfigure {
                self.refresh_membership();
            }
        }
        // Rule 5: commit up to min(leaderCommit, index of last new entry).
        let commit = leader_commit.min(last_new);
        // Planted bug: rule 5 capped at this node's own last index only (so the commit index
        // stays within the log), not at the last entry this message vouches for: a stale suffix
        // past it is committed.
        #[cfg(raft_planted)]
        let commit = if crate::planted::active(crate::planted::Bug::FollowerCommitUnclamped) {
            leader_commit.min(self.log.last_index())
        } else {
            commit
        };
        if commit > self.commit {
            self.commit = commit;
        }
        let body = MessageBody::AppendResponse {
            outcome: AppendOutcome::Accepted {
                match_index: last_new,
            },
        };
        // Planted bug: the acknowledgement leaves before the write appending the entries is
        // durable.
        #[cfg(raft_planted)]
        if crate::planted::active(crate::planted::Bug::AckBeforeDurable) {
            self.send(from, body, out);
            return;
        }
        self.respond(from, self.term, body, out);
    }

    pub(crate) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        commit: Index,
        read_round: u64,
        out: &mut Outputs,
    ) {
        // `validate` rejected a commit past the log; the leader caps it at what this node holds.
        if commit > self.commit {
            self.commit = commit;
        }
        let body = MessageBody::HeartbeatResponse {
            read_round,
            writes_pending: !self.durability.all_acked(),
        };
        self.respond(from, self.term, body, out);
    }

    /// The leader's commit index, capped by the leader at this node's acknowledged match index.
    /// `validate` rejected a notice past the log or naming an entry this log does not hold, so
    /// the log matches the leader's up to it. No answer: the leader knows this node holds it.
    pub(crate) fn handle_commit(&mut self, commit: LogId) {
        if commit.index > self.commit {
            self.commit = commit.index;
        }
    }

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
            self.early_chunks.clear();
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
            // A chunk ahead of the next one expected (the network reordered them) is kept for
            // when the ones before it arrive, within bounds; a lost, duplicated or stale chunk
            // is dropped. Either way: say where to continue.
            if offset > expected {
                self.keep_early_chunk(from, id, offset, data, done);
            }
            let body = MessageBody::SnapshotResponse {
                snapshot: id,
                received: expected,
                installed: false,
            };
            self.respond(from, self.term, body, out);
            return;
        }
        // This chunk, then any that arrived early and now follow on.
        let (mut offset, mut data, mut done) = (offset, data, done);
        let received = loop {
            let received = offset.saturating_add(data.len() as u64);
            self.store_chunk(from, &meta, offset, data, done, out);
            if done {
                break received;
            }
            let next = self
                .early_chunks
                .iter()
                .position(|c| c.from == from && c.id == id && c.offset == received);
            match next {
                Some(k) => {
                    let c = self.early_chunks.swap_remove(k);
                    (offset, data, done) = (c.offset, c.data, c.done);
                }
                None => break received,
            }
        };
        if done {
            self.early_chunks.clear();
        } else {
            // Early chunks now behind what is received are of no use.
            self.early_chunks
                .retain(|c| c.from == from && c.id == id && c.offset > received);
        }
        let body = MessageBody::SnapshotResponse {
            snapshot: id,
            received,
            installed: done,
        };
        self.respond(from, self.term, body, out);
    }

    /// Hands one chunk, the next one expected, to the adapter as a write, and installs the
    /// snapshot if it is the last.
    fn store_chunk(
        &mut self,
        from: NodeId,
        meta: &SnapshotMeta,
        offset: u64,
        data: Payload,
        done: bool,
        out: &mut Outputs,
    ) {
        let id = meta.last;
        let received = offset.saturating_add(data.len() as u64);
        let part = SnapshotPart {
            meta: meta.clone(),
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
            self.snapshot = meta.clone();
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
    }

    /// Keeps a chunk that arrived ahead of the ones before it, unless one at that offset is
    /// kept already or the bounds are reached (`EARLY_CHUNKS_MAX` chunks,
    /// `Config::max_inflight_bytes` bytes: what a leader has in flight at most). Chunks of
    /// another transfer are dropped first: only one is received at a time.
    fn keep_early_chunk(
        &mut self,
        from: NodeId,
        id: LogId,
        offset: u64,
        data: Payload,
        done: bool,
    ) {
        self.early_chunks.retain(|c| c.from == from && c.id == id);
        let bytes: u64 = self.early_chunks.iter().map(|c| c.data.len() as u64).sum();
        let fits = self.early_chunks.len() < EARLY_CHUNKS_MAX
            && bytes.saturating_add(data.len() as u64) <= self.config.max_inflight_bytes;
        if fits && !self.early_chunks.iter().any(|c| c.offset == offset) {
            self.early_chunks.push(EarlyChunk {
                from,
                id,
                offset,
                data,
                done,
            });
        }
    }
}
