//! The state every role has: the persistent Raft state (term, vote, log), the configuration in
//! force, the commit and apply indexes, the election timer and the write lanes. A role's own state
//! lives in its variant of the node's role state (module `role`); its handlers take this as an
//! argument.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::config::Config;
use crate::durability::Durability;
use crate::follower_read::ForwardedReads;
use crate::log::RaftLog;
use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::output::{Apply, Event, Outputs};
use crate::restore::SnapshotMeta;
use crate::status::Stats;
use crate::types::{EntryKind, HardState, Index, LogId, NodeId, Payload, Term};

/// A snapshot this follower is receiving from its leader.
///
/// Kept across role changes within a term: a follower whose pre-vote failed goes back to the
/// same leader and resumes the transfer where it was.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming {
    /// The leader sending it (a new leader starts over: its snapshot's bytes may differ).
    pub(crate) from: NodeId,
    pub(crate) id: LogId,
    /// Bytes received and handed to the adapter so far.
    pub(crate) received: u64,
}

/// A chunk of the snapshot being received that arrived before the chunks ahead of it (the
/// network reordered them): kept until those arrive, so that it need not be sent again.
#[derive(Debug, Clone)]
pub(crate) struct EarlyChunk {
    pub(crate) from: NodeId,
    pub(crate) id: LogId,
    pub(crate) offset: u64,
    pub(crate) data: Payload,
    pub(crate) done: bool,
}

/// What every role of a node holds. Fields are named as in Raft's Figure 2 where it names them.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    /// The leader of `term` this node knows of (itself, on a leader).
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    pub(crate) membership: Membership,
    /// The index of the log entry holding `membership`, or the snapshot's index if the
    /// configuration comes from the snapshot (no configuration entry after it): the
    /// configuration in force is the latest in the log (Raft thesis §4.1).
    pub(crate) config_index: Index,
    /// This node voted in the configuration before `membership` but not in `membership`: until
    /// `membership` is committed it may still be needed to elect a leader (thesis §4.2.2).
    pub(crate) voted_before_config: bool,
    /// The latest snapshot: taken by the application, installed from a leader, or restored.
    pub(crate) snapshot: SnapshotMeta,
    /// A snapshot being received from the leader.
    pub(crate) incoming: Option<Incoming>,
    /// Chunks of it that arrived early, in no order (at most `EARLY_CHUNKS_MAX` of them, and
    /// `Config::max_inflight_bytes` bytes).
    pub(crate) early_chunks: Vec<EarlyChunk>,
    /// The write that installs the latest snapshot received; it is applied once durable.
    pub(crate) install_write: u64,
    pub(crate) snapshot_suggested: bool,
    /// The highest index known committed (volatile, Raft Figure 2).
    pub(crate) commit: Index,
    /// The highest index the adapter reported applied.
    pub(crate) applied: Index,
    /// The highest index handed out in the apply lane.
    pub(crate) emitted: Index,
    /// Ticks since the election timer was reset (on a leader: since the last CheckQuorum).
    pub(crate) election_elapsed: u32,
    pub(crate) election_timeout: u32,
    pub(crate) durability: Durability,
    /// Reads this node, a follower, asked its leader to confirm.
    pub(crate) forwarded_reads: ForwardedReads,
    pub(crate) stats: Stats,
}

impl Shared {
    // ---- durable state -----------------------------------------------------------------------

    /// Records the current term and vote in the write of this step.
    pub(crate) fn persist_hard_state(&mut self, out: &mut Outputs) {
        let hs = HardState {
            term: self.term,
            vote: self.vote,
        };
        self.durability
            .write(out, self.log.last_index(), |w| w.hard_state = Some(hs));
    }

    /// Sends a response: at once, unless it vouches for durable state
    /// (`Message::vouches_for_durable_state`); then once every write so far is durable.
    pub(crate) fn respond(&mut self, to: NodeId, term: Term, body: MessageBody, out: &mut Outputs) {
        let msg = Message {
            from: self.id,
            to,
            term,
            body,
        };
        if msg.vouches_for_durable_state() {
            self.durability.send_after_writes(msg, out);
        } else {
            out.sends.push(msg);
        }
    }

    /// Sends a request now (requests depend on nothing unconfirmed, Raft thesis §10.2.1).
    pub(crate) fn send(&self, to: NodeId, body: MessageBody, out: &mut Outputs) {
        out.sends.push(Message {
            from: self.id,
            to,
            term: self.term,
            body,
        });
    }

    // ---- the apply lane ----------------------------------------------------------------------

    /// Hands out, in order, what is both committed and durable here: a snapshot installed from
    /// the leader, then entries. It runs at the end of every step, usually to find nothing to
    /// do: that check is inlined, the work is not (a call that found nothing cost about 34
    /// instructions of register saving; callgrind batch 1: about 130 per entry).
    #[inline(always)]
    pub(crate) fn emit_committed(&mut self, out: &mut Outputs) {
        if self.emitted < self.log.base().index
            || self.emitted < self.commit.min(self.log.persisted())
        {
            self.emit_committed_now(out);
        }
    }

    #[inline(never)]
    fn emit_committed_now(&mut self, out: &mut Outputs) {
        if self.emitted < self.log.base().index {
            // The log now starts after a snapshot the state machine has not loaded.
            let durable = self.durability.is_acked(self.install_write);
            // Planted bug: the snapshot is loaded before the write installing it is durable.
            #[cfg(raft_planted)]
            let durable = durable
                || crate::planted::active(crate::planted::Bug::SnapshotAppliedBeforeDurable);
            if !durable {
                return;
            }
            out.apply
                .push(Apply::Snapshot(Box::new(self.snapshot.clone())));
            self.emitted = self.snapshot.last.index;
        }
        let upto = self.commit.min(self.log.persisted());
        if self.emitted < upto {
            let next = Index(self.emitted.0 + 1);
            if upto == next {
                // One entry, the unbatched path: a lookup costs a third of setting up a range.
                if let Some(entry) = self.log.entry(next) {
                    out.apply.push(Apply::Entry(entry.clone()));
                    self.emitted = next;
                }
            } else {
                // A batch: one range of the log, not a lookup per index (105 instructions
                // fewer per committed entry at 64 per batch on 3 nodes). It ends early only
                // where the log does, as a lookup would.
                let count = usize::try_from(upto.0 - self.emitted.0).unwrap_or(usize::MAX);
                let before = out.apply.len();
                out.apply.extend(
                    self.log
                        .range(next, count)
                        .map(|entry| Apply::Entry(entry.clone())),
                );
                self.emitted = Index(self.emitted.0 + (out.apply.len() - before) as u64);
            }
        }
    }

    /// Suggests a snapshot once more than `snapshot_log_entries` applied entries follow the
    /// latest one. Counted from the snapshot, not as the log's length: the log keeps
    /// `snapshot_trailing_entries` below the snapshot, and with more of those than the interval
    /// a length rule would suggest a snapshot after every entry. (Inlined, as `emit_committed`.)
    #[inline]
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

    // ---- the configuration in force ----------------------------------------------------------

    /// Puts `membership`, found in the log at `index`, in force. (A leader then also re-tracks
    /// its peers: `Leadership::track_members`.)
    pub(crate) fn adopt_membership(&mut self, membership: Membership, index: Index) {
        self.voted_before_config = !membership.is_voter(self.id)
            && index > self.snapshot.last.index
            && self.membership_as_of(index.prev()).0.is_voter(self.id);
        self.membership = membership;
        self.config_index = index;
    }

    /// Recomputes the configuration in force from the log: the latest configuration entry after
    /// the snapshot, else the snapshot's. Called after the log lost or gained configuration
    /// entries by truncation, snapshot installation or restart (never on a leader, whose log
    /// only grows by its own appends).
    pub(crate) fn refresh_membership(&mut self) {
        let (membership, index) = self.membership_as_of(self.log.last_index());
        self.adopt_membership(membership, index);
    }

    /// The configuration in force at `index` (at or after the snapshot), and the index of the
    /// entry that set it (the snapshot's index if it comes from the snapshot).
    pub(crate) fn membership_as_of(&self, index: Index) -> (Membership, Index) {
        let floor = self.snapshot.last.index;
        let mut i = index.min(self.log.last_index());
        while i > floor {
            if let Some(e) = self.log.entry(i) {
                if e.kind == EntryKind::Config {
                    if let Ok(m) = Membership::decode(&e.data) {
                        return (m, i);
                    }
                }
            }
            i = i.prev();
        }
        (self.snapshot.membership.clone(), floor)
    }

    /// Whether this node may start an election: it votes in the configuration in force, or it
    /// voted in the one before and the one in force is not yet known committed. Without the
    /// second case a cluster can deadlock: a leader appends a configuration without itself and
    /// crashes; a remaining voter, still in the joint configuration, needs this node's vote,
    /// which it cannot get, since this node's log is ahead (Raft thesis §4.2.2).
    pub(crate) fn may_campaign(&self) -> bool {
        self.membership.is_voter(self.id)
            || (self.voted_before_config && self.config_index > self.commit)
    }
}
