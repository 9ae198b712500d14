//! The leader's own state ([`Leadership`]: its peers' progress, the reads it is confirming, a
//! leadership transfer, the heartbeat timer) and what a leader does with time, acknowledgements,
//! reads and transfers. Replication is in `replication`, membership changes in
//! `reconfiguration`, snapshot sending in `snapshot`; all of them are methods of [`Leadership`]
//! that take the node's [`Shared`] state as an argument.

use crate::check_quorum;
use crate::error::{Refusal, Reject, StepError};
use crate::membership::MAX_MEMBERS;
use crate::message::MessageBody;
use crate::output::Outputs;
use crate::progress::Progress;
use crate::read_index::{self, ReadIndex, ReadOrigin};
use crate::shared::Shared;
use crate::status::{PeerStatus, ReplicationState};
use crate::transfer::Transfer;
use crate::types::{EntryKind, NodeId, Payload};

/// The leader must step down now, as a follower in its term with no known leader. Returned by a
/// leader's handler after it has done what must precede that (counted it, sent a TimeoutNow);
/// nothing after it in the same handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepDown;

/// Why a leader's handler stopped early: the leader must step down, or the input is an error.
#[derive(Debug)]
pub(crate) enum Halt {
    StepDown,
    Error(StepError),
}

impl From<StepDown> for Halt {
    fn from(_: StepDown) -> Self {
        Self::StepDown
    }
}

impl From<StepError> for Halt {
    fn from(e: StepError) -> Self {
        Self::Error(e)
    }
}

impl From<Reject> for Halt {
    fn from(e: Reject) -> Self {
        Self::Error(e.into())
    }
}

impl From<Refusal> for Halt {
    fn from(e: Refusal) -> Self {
        Self::Error(e.into())
    }
}

/// What only a leader has.
#[derive(Debug)]
pub(crate) struct Leadership {
    /// The progress of every other member of the configuration in force.
    pub(crate) peers: heapless::Vec<Progress, MAX_MEMBERS>,
    pub(crate) reads: ReadIndex,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) heartbeat_elapsed: u32,
    /// A quorum was heard from in the last CheckQuorum period (or the election just won): the
    /// leader's lease, in which it ignores vote requests (thesis §4.2.3), with CheckQuorum on
    /// or off.
    pub(crate) quorum_heard: bool,
}

impl Leadership {
    /// The state of a node that has just won an election: every other member is probed from
    /// the end of its log. `read_round` is the last ReadIndex round this node started.
    pub(crate) fn new(s: &Shared, read_round: u64) -> Self {
        let mut peers = heapless::Vec::new();
        let last = s.log.last_index();
        let next = last.next().unwrap_or(last);
        for id in s.membership.members() {
            if id != s.id {
                let learner = !s.membership.is_voter(id);
                // Cannot overflow: members() yields at most MAX_MEMBERS ids.
                let _ = peers.push(Progress::new(id, learner, next));
            }
        }
        Self {
            peers,
            reads: ReadIndex::continuing_after(
                read_round,
                s.config.lease_reads.then(|| s.config.lease_ticks()),
            ),
            transfer: None,
            heartbeat_elapsed: 0,
            quorum_heard: true,
        }
    }

    /// Starts leading: an empty entry of the new term, so that entries of earlier terms commit
    /// by committing it (Raft §5.4.2 and §8). A lone voter commits as soon as its own write is
    /// durable.
    pub(crate) fn start(&mut self, s: &mut Shared, out: &mut Outputs) -> Result<(), StepDown> {
        if self
            .append_entry(s, EntryKind::Noop, Payload::empty(), out)
            .is_some()
        {
            self.broadcast_append(s, out);
        }
        if self.maybe_commit(s, out)? {
            self.broadcast_commit(s, out);
        }
        Ok(())
    }

    pub(crate) fn peer_index(&self, id: NodeId) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }

    pub(crate) fn peer_statuses(&self) -> heapless::Vec<PeerStatus, MAX_MEMBERS> {
        let mut peers = heapless::Vec::new();
        for p in &self.peers {
            // Cannot overflow: both vectors hold at most MAX_MEMBERS.
            let _ = peers.push(p.status());
        }
        peers
    }

    /// Ticks until the next heartbeat or CheckQuorum period ends (at least 1).
    pub(crate) fn ticks_until_timer(&self, s: &Shared) -> u32 {
        let hb = s
            .config
            .heartbeat_ticks
            .saturating_sub(self.heartbeat_elapsed);
        let cq = s
            .config
            .election_ticks_min
            .saturating_sub(s.election_elapsed);
        hb.min(cq).max(1)
    }

    // ---- time --------------------------------------------------------------------------------

    /// A tick (the node has counted it in `election_elapsed`): a transfer may time out, a
    /// CheckQuorum period may end, a heartbeat may be due.
    pub(crate) fn tick(&mut self, s: &mut Shared, out: &mut Outputs) -> Result<(), StepDown> {
        self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
        if let Some(lease) = &mut self.reads.lease {
            lease.tick();
        }
        if let Some(t) = &mut self.transfer {
            if t.tick(s.config.election_ticks_min) {
                // The target did not take over within an election timeout: resume service.
                self.transfer = None;
            }
        }
        if s.election_elapsed >= s.config.election_ticks_min {
            s.election_elapsed = 0;
            self.quorum_heard = check_quorum::period_ends(s.id, &s.membership, &mut self.peers);
            if s.config.check_quorum && !self.quorum_heard {
                s.stats.check_quorum_step_downs += 1;
                return Err(StepDown);
            }
        }
        self.tick_commits(s, out);
        if self.heartbeat_elapsed >= s.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(s, out);
        }
        Ok(())
    }

    // ---- acknowledgements --------------------------------------------------------------------

    /// The leader's own disk caught up: it may now count itself towards more entries.
    pub(crate) fn persisted(&mut self, s: &mut Shared, out: &mut Outputs) -> Result<(), StepDown> {
        // Its own index completes a quorum past the commit index only together with a peer's
        // past it, unless it is a quorum by itself: otherwise the count is skipped (one entry
        // at a time, the leader's write completes before any follower's acknowledgement, every
        // time; callgrind batch 1: about 200 instructions per entry).
        let alone = |voters: &[NodeId]| voters == [s.id];
        let quorum_alone = alone(s.membership.voters())
            && (!s.membership.is_joint() || alone(s.membership.outgoing_voters()));
        if !quorum_alone && self.peers.iter().all(|p| p.match_index <= s.commit) {
            return Ok(());
        }
        if self.maybe_commit(s, out)? {
            self.broadcast_commit(s, out);
        }
        Ok(())
    }

    /// The adapter could not reach `id`: stop pipelining to it and probe.
    pub(crate) fn unreachable(&mut self, id: NodeId) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == id) {
            if p.state == ReplicationState::Replicate {
                p.become_probe();
            }
        }
    }

    // ---- reads (Raft thesis §6.4) ------------------------------------------------------------

    /// A linearizable read: served at the commit index of now, at once while the lease holds
    /// (`Config::lease_reads`), else once a quorum has confirmed a heartbeat round sent after it
    /// arrived.
    pub(crate) fn read(
        &mut self,
        s: &mut Shared,
        origin: ReadOrigin,
        out: &mut Outputs,
    ) -> Result<(), StepError> {
        if self.reads.len() >= s.config.max_pending_reads as usize {
            return Err(Refusal::TooManyReads.into());
        }
        // Planted bug: a new leader serves from its lease before it has committed an entry of
        // its term, at a commit index that may miss entries an earlier leader committed.
        #[cfg(raft_planted)]
        if crate::planted::active(crate::planted::Bug::LeaseBeforeTermCommit) && self.lease_holds(s)
        {
            s.stats.reads_by_lease += 1;
            origin.answer(s.id, s.term, Some(s.commit), out);
            return Ok(());
        }
        if s.log.term_at(s.commit) != Some(s.term) {
            // Until it commits an entry of its own term, a new leader does not know the commit
            // index of the cluster (thesis §6.4 step 1).
            self.reads.wait_for_commit(origin);
            return Ok(());
        }
        if self.lease_holds(s) {
            s.stats.reads_by_lease += 1;
            origin.answer(s.id, s.term, Some(s.commit), out);
            return Ok(());
        }
        // A deliberately broken build for the chaos runner's teeth: never in a normal build.
        if cfg!(feature = "bug-read-index-no-heartbeat") {
            origin.answer(s.id, s.term, Some(s.commit), out);
            return Ok(());
        }
        // Planted bug, the same as the feature above: released at once, no heartbeat round.
        #[cfg(raft_planted)]
        if crate::planted::active(crate::planted::Bug::ReadWithoutHeartbeat) {
            origin.answer(s.id, s.term, Some(s.commit), out);
            return Ok(());
        }
        // Join the newest round if none of its heartbeats has left yet (they leave after this
        // read arrived), else start one. (Round 0, before the first, has no heartbeats: never
        // unsent.)
        let round = self.reads.round();
        let joinable = read_index::round_unsent(&out.sends, s.id, s.term, round, self.peers.len());
        // Planted bug: the read joins the newest round even if its heartbeats already left, so
        // responses to heartbeats sent before the read arrived may confirm it.
        #[cfg(raft_planted)]
        let joinable = joinable
            || (round > 0 && crate::planted::active(crate::planted::Bug::ReadJoinsSentRound));
        if !joinable {
            self.broadcast_heartbeat(s, out);
        }
        self.reads.join_newest(origin, s.commit);
        self.confirm_reads(s, out);
        Ok(())
    }

    /// Whether this leader's lease holds now (always false without `Config::lease_reads`): a
    /// quorum of the configuration in force (this leader included) answered a heartbeat round
    /// sent within the lease (see `lease`).
    pub(crate) fn lease_holds(&self, s: &Shared) -> bool {
        let Some(lease) = &self.reads.lease else {
            return false;
        };
        let id = s.id;
        let peers = &self.peers;
        lease.holds(|round| {
            s.membership
                .has_quorum(|m| m == id || peers.iter().any(|p| p.id == m && p.read_round >= round))
        })
    }

    /// Releases the reads whose heartbeat round a quorum (this leader included) confirmed.
    pub(crate) fn confirm_reads(&mut self, s: &Shared, out: &mut Outputs) {
        let id = s.id;
        let peers = &self.peers;
        let membership = &s.membership;
        self.reads.confirm(
            |round| {
                membership.has_quorum(|m| {
                    m == id || peers.iter().any(|p| p.id == m && p.read_round >= round)
                })
            },
            (s.id, s.term),
            out,
        );
    }

    /// Leadership ends: every pending read is aborted (the reads lane says so). Returns how
    /// many.
    pub(crate) fn abort_reads(&mut self, s: &Shared, out: &mut Outputs) -> u64 {
        self.reads.abort_all((s.id, s.term), out)
    }

    // ---- leadership transfer (Raft thesis §3.10) ---------------------------------------------

    pub(crate) fn transfer_leader(
        &mut self,
        s: &Shared,
        target: NodeId,
        out: &mut Outputs,
    ) -> Result<(), StepError> {
        if target == s.id || !s.membership.is_voter(target) {
            return Err(Refusal::InvalidTransferTarget.into());
        }
        if self.transfer.is_some_and(|t| t.target() == target) {
            return Ok(());
        }
        // The target's election will pass the followers' refusal to vote: no lease from now on
        // in this leadership (a TimeoutNow may arrive however late).
        if let Some(lease) = &mut self.reads.lease {
            lease.give_up();
        }
        self.transfer = Some(Transfer::new(target));
        self.advance_transfer(s, out);
        if let Some(i) = self.peer_index(target) {
            self.send_append(s, i, true, out);
        }
        Ok(())
    }

    /// Sends TimeoutNow once the transfer target has caught up with the whole log.
    pub(crate) fn advance_transfer(&mut self, s: &Shared, out: &mut Outputs) {
        let Some(t) = &mut self.transfer else { return };
        let target = t.target();
        let target_match = self
            .peers
            .iter()
            .find(|p| p.id == target)
            .map(|p| p.match_index);
        if t.take_timeout_now(target_match, s.log.last_index()) {
            s.send(target, MessageBody::TimeoutNow, out);
        }
    }
}
