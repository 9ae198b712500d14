//! What the simulator checks after every step, beyond the cluster-wide history in `checker`:
//! the node's own state (commit index monotonic, log as its writes describe it, election safety,
//! leader completeness), the persistence contract on every message it sends, State Machine Safety
//! on every entry or snapshot it applies, and linearizability of every read it answers.

use alloc::format;

use super::adapter::{SimResult, Simulation};
use super::disk::{self, blob_prefix};
use super::options::SimFailure;
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::output::{Apply, ReadResult};
use crate::status::Role;
use crate::types::{Index, LogId};

impl Simulation {
    /// Checks the node's state after a step.
    pub(super) fn check_node(&mut self, i: usize) -> SimResult {
        let Some(node) = self.nodes[i].node.as_ref() else {
            return Ok(());
        };
        let (role, term, commit, last) = (
            node.role(),
            node.term(),
            node.commit_index(),
            node.last_log(),
        );
        let n = &self.nodes[i];
        if commit < n.last_commit {
            return Err(self.fail(format!(
                "node {i}: commit index went back from {} to {commit}",
                n.last_commit
            )));
        }
        {
            // Every change to the log must have been described by a write.
            let mirror_last = n.mirror.last().map_or(LogId::ZERO, |&(t, _)| LogId {
                term: t,
                index: Index(n.mirror.len() as u64),
            });
            if mirror_last != last {
                return Err(self.fail(format!(
                    "node {i}: log ends at {last} but its writes describe {mirror_last}"
                )));
            }
        }
        let entry_at = |k: u64| n.entry_at(k);
        self.checker
            .commit(term, commit, entry_at)
            .map_err(|w| SimFailure {
                seed: self.opts.seed,
                tick: self.now,
                what: format!("node {i}: {w}"),
            })?;
        self.nodes[i].last_commit = commit;
        if role == Role::Leader {
            let incarnation = self.nodes[i].incarnation;
            self.checker
                .leader(term, i, incarnation)
                .map_err(|w| self.fail(w))?;
            let n = &self.nodes[i];
            self.checker
                .leader_complete(term, i, |k| n.prefix_at(k))
                .map_err(|w| SimFailure {
                    seed: self.opts.seed,
                    tick: self.now,
                    what: w,
                })?;
        }
        Ok(())
    }

    /// The persistence contract: a granted vote and an append acknowledgement leave a node only
    /// after the state they promise is on its disk.
    pub(super) fn check_durable_before_send(&self, i: usize, m: &Message) -> SimResult {
        let n = &self.nodes[i];
        match m.body {
            MessageBody::VoteResponse {
                granted: true,
                pre_vote: false,
            } => {
                let hs = n.disk.hard_state;
                if !(hs.term > m.term || (hs.term == m.term && hs.vote == Some(m.to))) {
                    return Err(self.fail(format!(
                        "persistence: node {i} granted its vote in term {} before recording it \
                         (disk has {hs:?})",
                        m.term
                    )));
                }
            }
            MessageBody::AppendResponse {
                outcome: AppendOutcome::Accepted { match_index },
            } => {
                // The claim: this node holds, durably, the log of the leader of `m.term` up to
                // `k`. Its disk may no longer hold it (a later write, issued before this
                // acknowledgement was released, may have truncated it): an acknowledgement
                // released late is indistinguishable from one sent in time and delayed in the
                // network. It must have been durable at some instant, though.
                let k = match_index.0;
                let leader_log = self.checker.leader_of(m.term).and_then(|l| {
                    let leader = &self.nodes[l];
                    let node = leader.node.as_ref()?;
                    (node.term() == m.term && node.role() == Role::Leader)
                        .then(|| leader.prefix_at(k))
                        .flatten()
                });
                if !n.disk.was_durable(k, leader_log) {
                    return Err(self.fail(format!(
                        "persistence: node {i} acknowledged entries up to {k} in term {} that \
                         were never durable (disk holds {})",
                        m.term.0,
                        n.disk.entries.len()
                    )));
                }
            }
            MessageBody::SnapshotResponse {
                snapshot,
                installed: true,
                ..
            } => {
                let k = snapshot.index.0;
                if n.disk.first() < k && !n.disk.was_durable(k, None) {
                    return Err(self.fail(format!(
                        "persistence: node {i} reported snapshot {snapshot} installed before it \
                         was durable"
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The simulated state machine applies an entry, or loads the snapshot the node installed:
    /// what it holds must be a prefix of the committed log (State Machine Safety). Returns the
    /// index it has applied through.
    pub(super) fn apply(&mut self, i: usize, a: Apply) -> SimResult<Index> {
        let e = match a {
            Apply::Entry(e) => e,
            Apply::Snapshot(meta) => {
                // Load the snapshot the node installed: it must be the committed state.
                let n = &self.nodes[i];
                let prefix = match &n.disk.snapshot {
                    Some((m, blob)) if m.last == meta.last => blob_prefix(blob),
                    _ => None,
                };
                let Some(prefix) = prefix else {
                    return Err(self.fail(format!(
                        "node {i} was told to load snapshot {} which is not on its disk",
                        meta.last
                    )));
                };
                if meta.last.index < n.sm_next {
                    return Err(self.fail(format!(
                        "node {i} loaded snapshot {} behind its state machine",
                        meta.last
                    )));
                }
                self.checker
                    .applied(i, meta.last.index, prefix)
                    .map_err(|w| self.fail(w))?;
                let n = &mut self.nodes[i];
                n.sm_prefix = prefix;
                n.sm_next = Index(meta.last.index.0 + 1);
                self.summary.snapshots.1 += 1;
                return Ok(meta.last.index);
            }
        };
        let next = self.nodes[i].sm_next;
        if e.id.index != next {
            return Err(self.fail(format!(
                "node {i}: applied {} when {next} was next",
                e.id.index
            )));
        }
        let n = &mut self.nodes[i];
        n.sm_prefix = disk::chain(n.sm_prefix, &e);
        n.sm_next = Index(n.sm_next.0 + 1);
        let prefix = n.sm_prefix;
        self.checker
            .applied(i, e.id.index, prefix)
            .map_err(|w| self.fail(w))?;
        Ok(e.id.index)
    }

    /// A read the node answered: if ready, at an index no older than anything committed
    /// before the read was issued (linearizability).
    pub(super) fn read_done(&mut self, r: ReadResult) -> SimResult {
        match r {
            ReadResult::Ready { id, index } => {
                let needed = self.reads.remove(&id.0).unwrap_or(Index::ZERO);
                if index < needed {
                    return Err(self.fail(format!(
                        "linearizability: read {} served at index {index} but index {needed} \
                         was committed before it was issued",
                        id.0
                    )));
                }
                self.summary.reads.0 += 1;
            }
            ReadResult::Aborted { id } => {
                self.reads.remove(&id.0);
                self.summary.reads.1 += 1;
            }
        }
        Ok(())
    }
}
