//! Log replication (Raft §5.3) and commitment (§5.4.2), the leader's side: proposals, sending
//! AppendEntries with batching, pipelining and flow control, counting matches, heartbeats. The
//! follower's side is in `follower`.

use smallvec::SmallVec;

use crate::error::{Refusal, Reject, StepError};
use crate::leader::{Halt, Leadership, StepDown};
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::output::Outputs;
use crate::progress::Progress;
use crate::shared::Shared;
use crate::status::ReplicationState;
use crate::types::{Entries, Entry, EntryKind, Index, LogId, NodeId, Payload, Term};

impl Leadership {
    /// Appends the commands as consecutive entries of one write, then replicates them: all or
    /// none (every size is checked first). Returns the id of the last entry.
    pub(crate) fn propose_entries(
        &mut self,
        s: &mut Shared,
        commands: &[Payload],
        out: &mut Outputs,
    ) -> Result<Option<LogId>, StepError> {
        self.check_can_append()?;
        if commands
            .iter()
            .any(|c| c.len() as u64 > s.config.max_entry_bytes)
        {
            return Err(Refusal::TooLarge.into());
        }
        if commands.is_empty() {
            return Ok(None);
        }
        let first = s.log.last_index();
        let last = first
            .0
            .checked_add(commands.len() as u64)
            .ok_or(Refusal::Exhausted)?;
        let term = s.term;
        let log = &mut s.log;
        s.durability.write(out, Index(last), |w| {
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
        self.broadcast_append(s, out);
        Ok(Some(LogId {
            term,
            index: Index(last),
        }))
    }

    /// Refuses a new entry while leadership is being handed over.
    pub(crate) fn check_can_append(&self) -> Result<(), Refusal> {
        if self.transfer.is_some() {
            return Err(Refusal::TransferInProgress);
        }
        Ok(())
    }

    /// Appends an entry of the current term to the leader's log and to the step's write (only a
    /// leader may: hence `&self`).
    pub(crate) fn append_entry(
        &self,
        s: &mut Shared,
        kind: EntryKind,
        data: Payload,
        out: &mut Outputs,
    ) -> Option<LogId> {
        let index = s.log.last_index().next()?;
        let id = LogId {
            term: s.term,
            index,
        };
        let entry = Entry { id, kind, data };
        s.log.push(entry.clone());
        s.durability.write(out, index, |w| w.entries.push(entry));
        Some(id)
    }

    /// Sends every follower what it is missing, as far as its flow control allows.
    pub(crate) fn broadcast_append(&mut self, s: &Shared, out: &mut Outputs) {
        for i in 0..self.peers.len() {
            self.send_append(s, i, false, out);
        }
    }

    /// The commit index advanced: tell every follower. New entries going out carry it, and so
    /// does an AppendEntries to it still in the sends lane. A follower with every entry sent and
    /// some unacknowledged hears of it with its acknowledgement (`awaiting_acknowledgement`).
    /// Otherwise one commit-only message goes out, and later advances wait for the next append
    /// with entries or the next tick (a leader whose own writes complete one by one would
    /// otherwise send one per write).
    pub(crate) fn broadcast_commit(&mut self, s: &Shared, out: &mut Outputs) {
        for i in 0..self.peers.len() {
            let Some(p) = self.peers.get_mut(i) else {
                continue;
            };
            if p.awaiting_acknowledgement(s.log.last_index()) {
                // Planted bug: the follower is told the commit index now, in a notice, although
                // its log may not yet match the leader's up to it (what is in flight has not
                // been acknowledged; a stale suffix of an earlier term may sit there).
                #[cfg(raft_planted)]
                if crate::planted::active(crate::planted::Bug::CommitNoticePastMatch) {
                    if let Some(commit) = s.log.id_at(s.commit) {
                        s.send(p.id, MessageBody::Commit { commit }, out);
                        continue;
                    }
                }
                if !queued_append_carries_commit(&mut out.sends, p, s, s.commit) {
                    p.commit_deferred = true;
                }
            } else if p.commit_only_sent {
                if !self.send_append(s, i, false, out) {
                    if let Some(p) = self.peers.get_mut(i) {
                        if !queued_append_carries_commit(&mut out.sends, p, s, s.commit) {
                            p.commit_deferred = true;
                        }
                    }
                }
            } else {
                // Marked first: an append with entries clears the mark as it goes out.
                p.commit_only_sent = true;
                if !self.send_append(s, i, true, out) {
                    if let Some(p) = self.peers.get_mut(i) {
                        // Paused (a probe or a full pipeline): the advance waits for the
                        // answer that unpauses it, or the next tick.
                        p.commit_only_sent = false;
                        if !queued_append_carries_commit(&mut out.sends, p, s, s.commit) {
                            p.commit_deferred = true;
                        }
                    }
                }
            }
        }
    }

    /// A tick: commit advances deferred since the last one go out, one message per follower.
    pub(crate) fn tick_commits(&mut self, s: &Shared, out: &mut Outputs) {
        for i in 0..self.peers.len() {
            let Some(p) = self.peers.get_mut(i) else {
                continue;
            };
            p.commit_only_sent = false;
            if p.commit_deferred {
                self.send_deferred_commit(s, i, out);
            }
        }
    }

    /// Sends the follower at `i` the commit advance deferred for it, if its flow control allows
    /// (otherwise it stays deferred).
    fn send_deferred_commit(&mut self, s: &Shared, i: usize, out: &mut Outputs) {
        if self.send_append(s, i, true, out) {
            if let Some(p) = self.peers.get_mut(i) {
                p.commit_deferred = false;
                p.commit_only_sent = true;
            }
        }
    }

    /// Sends the follower at `i` the next batch of entries, if its flow control allows.
    ///
    /// When an AppendEntries to the same follower is still waiting in the sends lane and ends
    /// just before this batch, the batch is appended to it instead (up to the per-message
    /// limits): proposals stepped one by one between drains leave as one message per follower.
    pub(crate) fn send_append(
        &mut self,
        s: &Shared,
        i: usize,
        send_if_empty: bool,
        out: &mut Outputs,
    ) -> bool {
        let scan = 2 * self.peers.len();
        let Some(p) = self.peers.get_mut(i) else {
            return false;
        };
        let cfg = &s.config;
        if p.paused(cfg.max_inflight_msgs, cfg.max_inflight_bytes) {
            return false;
        }
        // Nothing new for it: the common answer to an acknowledgement, found before anything
        // else is looked up (`next` is past the last entry, so its `prev` is not compacted).
        let nothing_new = p.next > s.log.last_index();
        if nothing_new && !send_if_empty {
            return false;
        }
        let prev_index = p.next.prev();
        let Some(prev_term) = s.log.term_at(prev_index) else {
            // Compacted away: only a snapshot can help this follower.
            self.start_snapshot(s, i, out);
            return false;
        };
        let to = p.id;
        if p.state == ReplicationState::Replicate {
            if let Some(MessageBody::AppendEntries {
                entries, commit, ..
            }) = queued_append(&mut out.sends, to, s.term, prev_index, scan)
            {
                if nothing_new {
                    // A message is waiting: it carries the commit index.
                    *commit = s.commit;
                    p.commit_deferred = false;
                    return true;
                }
                let room = cfg.max_msg_entries.saturating_sub(entries.len() as u32);
                let used = p
                    .flight_bytes_ending_at(prev_index)
                    .unwrap_or_else(|| entries.iter().map(Entry::size_estimate).sum());
                let room_bytes = cfg.max_msg_bytes.saturating_sub(used);
                let (count, bytes) = s.log.batch(p.next, room, room_bytes, false);
                entries.extend(s.log.range(p.next, count).cloned());
                if let Some(last) = entries.last().filter(|_| count > 0) {
                    p.sent(last.id.index, bytes, Some(used));
                    *commit = s.commit;
                    return true;
                }
                if send_if_empty {
                    // Nothing new fits, but a message is waiting: it carries the commit index.
                    *commit = s.commit;
                    p.commit_deferred = false;
                    return true;
                }
            }
        }
        if nothing_new && p.state == ReplicationState::Replicate && p.match_index == prev_index {
            if let Some(commit) = s.log.id_at(s.commit) {
                // It has acknowledged everything: only the commit index is news, and it needs
                // no answer (`commit` is at most the last index, which is its match index).
                s.send(to, MessageBody::Commit { commit }, out);
                p.commit_deferred = false;
                return true;
            }
        }
        let mut entries = Entries::new();
        let mut bytes = 0;
        if nothing_new {
            // An empty append: a probe, or the commit index for a follower with entries in
            // flight (its answer says whether they arrived).
        } else if p.next == s.log.last_index() {
            // One entry: the lone proposal's path, without measuring a batch (a message carries
            // at least one entry, whatever its size).
            if let Some(e) = s.log.entry(p.next) {
                bytes = e.size_estimate();
                entries.push(e.clone());
            }
        } else {
            let (count, size) = s
                .log
                .batch(p.next, cfg.max_msg_entries, cfg.max_msg_bytes, true);
            // Allocated once at its final size.
            entries.reserve_exact(count);
            entries.extend(s.log.range(p.next, count).cloned());
            bytes = size;
        }
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        match entries.last() {
            Some(last) => p.sent(last.id.index, bytes, None),
            None if p.state == ReplicationState::Probe => p.probe_sent = true,
            None => {}
        }
        // It carries the commit index: nothing is left to tell.
        p.commit_deferred = false;
        let body = MessageBody::AppendEntries {
            prev: LogId {
                term: prev_term,
                index: prev_index,
            },
            entries,
            commit: s.commit,
        };
        s.send(to, body, out);
        true
    }

    /// Sends the follower at `i` an AppendEntries with no entries after the last entry sent to
    /// it, whatever its flow control says: its answer tells whether what is in flight arrived.
    /// If that entry is compacted away, probes instead (which starts the snapshot).
    fn send_check(&mut self, s: &Shared, i: usize, out: &mut Outputs) {
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        let prev_index = p.next.prev();
        let Some(prev_term) = s.log.term_at(prev_index) else {
            p.become_probe();
            self.send_append(s, i, true, out);
            return;
        };
        let body = MessageBody::AppendEntries {
            prev: LogId {
                term: prev_term,
                index: prev_index,
            },
            entries: SmallVec::new(),
            commit: s.commit,
        };
        s.send(p.id, body, out);
    }

    /// Advances the commit index to the highest index a quorum holds, if that entry is of the
    /// current term (Raft §5.4.2: earlier terms' entries are committed only indirectly). The
    /// leader counts itself only up to what is durable on its own disk.
    pub(crate) fn maybe_commit(
        &mut self,
        s: &mut Shared,
        out: &mut Outputs,
    ) -> Result<bool, StepDown> {
        let own = s.log.persisted();
        // Planted bug: the leader counts its whole log, durable or not (thesis §10.2.1 allows
        // replicating before its own write completes, not counting it).
        #[cfg(raft_planted)]
        let own = if crate::planted::active(crate::planted::Bug::LeaderSelfCountEarly) {
            s.log.last_index()
        } else {
            own
        };
        let id = s.id;
        let peers = &self.peers;
        let quorum_index = s.membership.committed_index(|m| {
            if m == id {
                own
            } else {
                peers
                    .iter()
                    .find(|p| p.id == m)
                    .map_or(Index::ZERO, |p| p.match_index)
            }
        });
        if quorum_index <= s.commit {
            return Ok(false);
        }
        let current_term = s.log.term_at(quorum_index) == Some(s.term);
        // Planted bug: an earlier term's entry is committed by counting replicas (Figure 8).
        #[cfg(raft_planted)]
        let current_term =
            current_term || crate::planted::active(crate::planted::Bug::CommitPreviousTerm);
        if !current_term {
            return Ok(false);
        }
        s.commit = quorum_index;
        if self.reads.has_waiting_for_commit() {
            self.broadcast_heartbeat(s, out);
            self.reads.start_waiting(s.commit);
            self.confirm_reads(s, out);
        }
        self.after_commit(s, out)?;
        Ok(true)
    }

    pub(crate) fn handle_append_response(
        &mut self,
        s: &mut Shared,
        from: NodeId,
        outcome: AppendOutcome,
        out: &mut Outputs,
    ) -> Result<(), Halt> {
        let Some(i) = self.peer_index(from) else {
            return Ok(());
        };
        match outcome {
            AppendOutcome::Accepted { match_index } => {
                if match_index > s.log.last_index() {
                    return Err(Reject::AckPastLog { index: match_index }.into());
                }
                let Some(p) = self.peers.get_mut(i) else {
                    return Ok(());
                };
                p.recent_active = true;
                if p.acknowledge(match_index) {
                    // A match at or below the commit index cannot move the quorum's index past it.
                    if match_index > s.commit && self.maybe_commit(s, out)? {
                        self.broadcast_commit(s, out);
                    }
                    self.advance_transfer(s, out);
                }
                // Acknowledgements free in-flight room: keep the pipeline full, or at least tell
                // the follower of a commit advance it missed while paused or held back for this
                // acknowledgement (unless more of what is in flight is still to be acknowledged).
                while self.send_append(s, i, false, out) {}
                let last = s.log.last_index();
                if self
                    .peers
                    .get(i)
                    .is_some_and(|p| p.commit_deferred && !p.awaiting_acknowledgement(last))
                {
                    self.send_deferred_commit(s, i, out);
                }
            }
            AppendOutcome::Conflict { rejected, hint } => {
                let probe_at = if hint.index < s.log.base().index {
                    // The follower lacks even the start of this log: it will need the snapshot.
                    hint.index
                } else if hint.term.0 > 0 {
                    s.log.last_at_or_before(hint.index, hint.term).index
                } else {
                    hint.index
                };
                let Some(p) = self.peers.get_mut(i) else {
                    return Ok(());
                };
                p.recent_active = true;
                let hint_agrees = s.log.term_at(hint.index) == Some(hint.term);
                if p.refused(rejected, hint.index, hint_agrees, probe_at)
                    && self.send_append(s, i, true, out)
                {
                    // Pipelining still (a resend after a reordering): fill the pipeline.
                    while self.send_append(s, i, false, out) {}
                }
            }
            // Only meaningful with a newer term, which the term check already handled.
            AppendOutcome::Outdated => {}
        }
        Ok(())
    }

    /// Sends every follower a heartbeat, as a new ReadIndex round (see `read_index`).
    pub(crate) fn broadcast_heartbeat(&mut self, s: &Shared, out: &mut Outputs) {
        let round = self.reads.next_round();
        for p in &self.peers {
            let body = MessageBody::Heartbeat {
                // Never past what the follower is known to hold: it could not check it.
                commit: s.commit.min(p.match_index),
                read_round: round,
            };
            out.sends.push(Message {
                from: s.id,
                to: p.id,
                term: s.term,
                body,
            });
        }
    }

    pub(crate) fn handle_heartbeat_response(
        &mut self,
        s: &Shared,
        from: NodeId,
        read_round: u64,
        writes_pending: bool,
        out: &mut Outputs,
    ) {
        let Some(i) = self.peer_index(from) else {
            return;
        };
        let last = s.log.last_index();
        let Some(p) = self.peers.get_mut(i) else {
            return;
        };
        p.recent_active = true;
        p.read_round = p.read_round.max(read_round);
        // A follower that is behind and made no progress since the last heartbeat may have lost
        // what was in flight. Not while its writes are pending: its heartbeat answers do not
        // wait for its disk, its acknowledgements do.
        if writes_pending {
            self.confirm_reads(s, out);
            return;
        }
        let stalled = p.match_index < last && !p.acked_since_heartbeat;
        p.acked_since_heartbeat = false;
        if stalled {
            match p.state {
                ReplicationState::Replicate if p.has_inflight() => {
                    // Ask rather than resend: an empty append after the last entry sent is
                    // acknowledged once the follower's disk catches up, or refused with a hint
                    // to resend from if something was lost.
                    self.send_check(s, i, out);
                    self.confirm_reads(s, out);
                    return;
                }
                ReplicationState::Probe => p.probe_sent = false,
                ReplicationState::Replicate => {}
                ReplicationState::Snapshot => {
                    // A chunk or its acknowledgement was lost, or chunks arrived out of order:
                    // send again from what the follower holds.
                    self.resend_chunks(s, i, out);
                    self.confirm_reads(s, out);
                    return;
                }
            }
            self.send_append(s, i, true, out);
        }
        self.confirm_reads(s, out);
    }
}

/// The body of an AppendEntries to `to` in `term`, still in the sends lane (among its last
/// `scan` messages), whose entries end at `prev_index`: the next batch can be appended to it.
fn queued_append(
    sends: &mut [Message],
    to: NodeId,
    term: Term,
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

/// Sets the commit index of the message to `p`'s follower in this term still in the sends lane,
/// if it is an AppendEntries (a follower caps the index at what the message brings, so any commit
/// index is safe to carry) or a commit notice (capped at the follower's match index). Returns
/// whether that message now carries `commit`.
fn queued_append_carries_commit(
    sends: &mut [Message],
    p: &mut Progress,
    s: &Shared,
    commit: Index,
) -> bool {
    let Some(m) = sends
        .iter_mut()
        .rev()
        .find(|m| m.to == p.id && m.term == s.term)
    else {
        return false;
    };
    let carried = match &mut m.body {
        MessageBody::AppendEntries { commit: c, .. } => {
            *c = (*c).max(commit);
            true
        }
        MessageBody::Commit { commit: c } => {
            let index = commit.min(p.match_index);
            if let Some(id) = s.log.id_at(index).filter(|_| index > c.index) {
                *c = id;
            }
            c.index >= commit
        }
        _ => false,
    };
    if carried {
        p.commit_deferred = false;
    }
    carried
}
