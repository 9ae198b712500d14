//! Log replication (Raft §5.3) and commitment (§5.4.2): the leader's side (proposals, sending
//! AppendEntries with batching, pipelining and flow control, counting matches) and the
//! follower's (the AppendEntries receiver rules, heartbeats).

use rand_core::Rng;
use smallvec::SmallVec;

use crate::error::{Refusal, Reject, StepError};
use crate::message::{AppendOutcome, MessageBody};
use crate::node::Node;
use crate::output::Outputs;
use crate::status::{ReplicationState, Role};
use crate::types::{Entry, EntryKind, Index, LogId, NodeId, Payload};

impl<R: Rng> Node<R> {
    // ---- leader ------------------------------------------------------------------------------

    pub(crate) fn propose_entry(
        &mut self,
        data: Payload,
        out: &mut Outputs,
    ) -> Result<LogId, StepError> {
        self.propose_entries(core::slice::from_ref(&data), out)?
            .ok_or(StepError::Refused(Refusal::Exhausted))
    }

    /// Appends the commands as consecutive entries of one write, then replicates them: all or
    /// none (every size is checked first). Returns the id of the last entry.
    pub(crate) fn propose_entries(
        &mut self,
        commands: &[Payload],
        out: &mut Outputs,
    ) -> Result<Option<LogId>, StepError> {
        self.check_can_append()?;
        if commands
            .iter()
            .any(|c| c.len() as u64 > self.config.max_entry_bytes)
        {
            return Err(Refusal::TooLarge.into());
        }
        if commands.is_empty() {
            return Ok(None);
        }
        let first = self.log.last_index();
        let last = first
            .0
            .checked_add(commands.len() as u64)
            .ok_or(Refusal::Exhausted)?;
        let term = self.term;
        let log = &mut self.log;
        self.durability.write(out, Index(last), |w| {
            w.entries.reserve(commands.len());
            for (i, data) in (first.0 + 1..).zip(commands) {
                let entry = Entry {
                    id: LogId {
                        term,
                        index: Index(i),
                    },
                    kind: EntryKind::Normal,
                    data: data.clone(),
                };
                log.push(entry.clone());
                w.entries.push(entry);
            }
        });
        self.broadcast_append(false, out);
        Ok(Some(LogId {
            term,
            index: Index(last),
        }))
    }

    /// Refuses a new entry unless this node leads and is not handing leadership over.
    pub(crate) fn check_can_append(&self) -> Result<(), Refusal> {
        if self.role != Role::Leader {
            return Err(Refusal::NotLeader {
                leader: self.leader,
            });
        }
        if self.transfer.is_some() {
            return Err(Refusal::TransferInProgress);
        }
        Ok(())
    }

    /// Appends an entry of the current term to the leader's log and to the step's write.
    pub(crate) fn append_entry(
        &mut self,
        kind: EntryKind,
        data: Payload,
        out: &mut Outputs,
    ) -> Option<LogId> {
        let index = self.log.last_index().next()?;
        let id = LogId {
            term: self.term,
            index,
        };
        let entry = Entry { id, kind, data };
        self.log.push(entry.clone());
        self.durability.write(out, index, |w| w.entries.push(entry));
        Some(id)
    }

    /// Sends every follower what it is missing (and, with `send_if_empty`, at least the commit
    /// index).
    pub(crate) fn broadcast_append(&mut self, send_if_empty: bool, out: &mut Outputs) {
        for i in 0..self.peers.len() {
            self.send_append(i, send_if_empty, out);
        }
    }

    /// Sends the follower at `i` the next batch of entries, if its flow control allows.
    ///
    /// When an AppendEntries to the same follower is still waiting in the sends lane and ends
    /// just before this batch, the batch is appended to it instead (up to the per-message
    /// limits): proposals stepped one by one between drains leave as one message per follower.
    pub(crate) fn send_append(&mut self, i: usize, send_if_empty: bool, out: &mut Outputs) -> bool {
        let scan = 2 * self.peers.len();
        let Some(p) = self.peers.get_mut(i) else {
            return false;
        };
        let cfg = &self.config;
        if p.paused(cfg.max_inflight_msgs, cfg.max_inflight_bytes) {
            return false;
        }
        let prev_index = p.next.prev();
        let Some(prev_term) = self.log.term_at(prev_index) else {
            // Compacted away: only a snapshot can help this follower.
            self.start_snapshot(i, out);
            return false;
        };
        let to = p.id;
        if p.state == ReplicationState::Replicate {
            if let Some(MessageBody::AppendEntries {
                entries, commit, ..
            }) = queued_append(&mut out.sends, to, self.term, prev_index, scan)
            {
                let room = cfg.max_msg_entries.saturating_sub(entries.len() as u32);
                let used = p
                    .flight_bytes_ending_at(prev_index)
                    .unwrap_or_else(|| entries.iter().map(Entry::size_estimate).sum());
                let room_bytes = cfg.max_msg_bytes.saturating_sub(used);
                let before = entries.len();
                entries.extend(self.log.slice(p.next, room, room_bytes, false).cloned());
                if let Some(last) = entries.last().filter(|_| entries.len() > before) {
                    let bytes = entries.iter().skip(before).map(Entry::size_estimate).sum();
                    p.sent(last.id.index, bytes, true);
                    *commit = self.commit;
                    return true;
                }
                if send_if_empty {
                    // Nothing new to send, but a message is waiting: it carries the commit index.
                    *commit = self.commit;
                    return true;
                }
            }
        }
        // Counted first so the message is allocated once at its final size.
        let batch = self
            .log
            .slice(p.next, cfg.max_msg_entries, cfg.max_msg_bytes, true)
            .count();
        let mut entries = SmallVec::<[Entry; 1]>::with_capacity(batch);
        entries.extend(
            self.log
                .slice(p.next, cfg.max_msg_entries, cfg.max_msg_bytes, true)
                .cloned(),
        );
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let bytes = entries.iter().map(Entry::size_estimate).sum();
        match entries.last() {
            Some(last) => p.sent(last.id.index, bytes, false),
            None if p.state == ReplicationState::Probe => p.probe_sent = true,
            None => {}
        }
        let body = MessageBody::AppendEntries {
            prev: LogId {
                term: prev_term,
                index: prev_index,
            },
            entries,
            commit: self.commit,
        };
        self.send(to, body, out);
        true
    }

    /// Advances the commit index to the highest index a quorum holds, if that entry is of the
    /// current term (Raft §5.4.2: earlier terms' entries are committed only indirectly). The
    /// leader counts itself only up to what is durable on its own disk.
    pub(crate) fn maybe_commit(&mut self, out: &mut Outputs) -> bool {
        let own = self.log.persisted();
        let id = self.id;
        let peers = &self.peers;
        let quorum_index = self.membership.committed_index(|m| {
            if m == id {
                own
            } else {
                peers
                    .iter()
                    .find(|p| p.id == m)
                    .map_or(Index::ZERO, |p| p.match_index)
            }
        });
        if quorum_index <= self.commit || self.log.term_at(quorum_index) != Some(self.term) {
            return false;
        }
        self.commit = quorum_index;
        if self.reads.has_waiting_for_commit() {
            self.reads.start_waiting(self.commit);
            self.broadcast_heartbeat(out);
            self.confirm_reads(out);
        }
        self.after_commit(out);
        true
    }

    pub(crate) fn handle_append_response(
        &mut self,
        from: NodeId,
        outcome: AppendOutcome,
        out: &mut Outputs,
    ) -> Result<(), StepError> {
        if self.role != Role::Leader {
            return Ok(());
        }
        let Some(i) = self.peer_index(from) else {
            return Ok(());
        };
        match outcome {
            AppendOutcome::Accepted { match_index } => {
                if match_index > self.log.last_index() {
                    return Err(Reject::AckPastLog { index: match_index }.into());
                }
                let Some(p) = self.peers.get_mut(i) else {
                    return Ok(());
                };
                p.recent_active = true;
                if p.acknowledge(match_index) {
                    if self.maybe_commit(out) {
                        self.broadcast_append(true, out);
                    }
                    self.advance_transfer(out);
                }
                // Acknowledgements free in-flight room: keep the pipeline full.
                while self.send_append(i, false, out) {}
            }
            AppendOutcome::Conflict { rejected, hint } => {
                let probe_at = if hint.index < self.log.base().index {
                    // The follower lacks even the start of this log: it will need the snapshot.
                    hint.index
                } else if hint.term.0 > 0 {
                    self.log.last_at_or_before(hint.index, hint.term).index
                } else {
                    hint.index
                };
                let Some(p) = self.peers.get_mut(i) else {
                    return Ok(());
                };
                p.recent_active = true;
                if p.refused(rejected, probe_at) {
                    self.send_append(i, true, out);
                }
            }
            // Only meaningful with a newer term, which the term check already handled.
            AppendOutcome::Outdated => {}
        }
        Ok(())
    }

    pub(crate) fn broadcast_heartbeat(&self, out: &mut Outputs) {
        let round = self.reads.round();
        for p in &self.peers {
            let body = MessageBody::Heartbeat {
                // Never past what the follower is known to hold: it could not check it.
                commit: self.commit.min(p.match_index),
                read_round: round,
            };
            out.sends.push(crate::Message {
                from: self.id,
                to: p.id,
                term: self.term,
                body,
            });
        }
    }

    pub(crate) fn handle_heartbeat_response(
        &mut self,
        from: NodeId,
        read_round: u64,
        out: &mut Outputs,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(i) = self.peer_index(from) else {
            return;
        };
        let last = self.log.last_index();
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        p.recent_active = true;
        p.read_round = p.read_round.max(read_round);
        // A follower that is behind and made no progress since the last heartbeat may have lost
        // what was in flight: fall back to probing from its match index and send again.
        let stalled = p.match_index < last && !p.acked_since_heartbeat;
        p.acked_since_heartbeat = false;
        if stalled {
            match p.state {
                ReplicationState::Replicate if p.has_inflight() => p.become_probe(),
                ReplicationState::Probe => p.probe_sent = false,
                ReplicationState::Replicate => {}
                ReplicationState::Snapshot => {
                    // A chunk or its acknowledgement was lost: ask for the chunk again.
                    self.request_chunk(i, out);
                    self.confirm_reads(out);
                    return;
                }
            }
            self.send_append(i, true, out);
        }
        self.confirm_reads(out);
    }

    // ---- follower ----------------------------------------------------------------------------

    /// The AppendEntries receiver rules (Raft Figure 2). The message is validated and from the
    /// leader of this node's term.
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        prev: LogId,
        entries: SmallVec<[Entry; 1]>,
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
            new.drain(..k);
            for e in &new {
                self.log.push(e.clone());
            }
            // One write for the whole message; a heap-allocated batch moves into it as is.
            self.durability.write(out, self.log.last_index(), |w| {
                if w.entries.is_empty() && new.spilled() {
                    w.entries = SmallVec::from_vec(new.into_vec());
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
        if commit > self.commit {
            self.commit = commit;
        }
        let body = MessageBody::AppendResponse {
            outcome: AppendOutcome::Accepted {
                match_index: last_new,
            },
        };
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
        let body = MessageBody::HeartbeatResponse { read_round };
        self.respond(from, self.term, body, out);
    }
}

/// The body of an AppendEntries to `to` in `term`, still in the sends lane (among its last
/// `scan` messages), whose entries end at `prev_index`: the next batch can be appended to it.
fn queued_append(
    sends: &mut [crate::Message],
    to: NodeId,
    term: crate::Term,
    prev_index: Index,
    scan: usize,
) -> Option<&mut MessageBody> {
    let m = sends
        .iter_mut()
        .rev()
        .take(scan)
        .find(|m| m.to == to && m.term == term)?;
    match &m.body {
        MessageBody::AppendEntries { entries, .. }
            if entries.last().is_some_and(|e| e.id.index == prev_index) =>
        {
            Some(&mut m.body)
        }
        _ => None,
    }
}
