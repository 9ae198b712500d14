//! The node: one value holding a member's Raft state, driven only by [`Node::step`].
//!
//! This file holds the whole public API, the dispatcher and the role changes. What each input
//! does is in the file of its topic, as methods of the state it belongs to: the role-independent
//! [`Shared`] state (`shared`, `snapshot`, and the follower's receiver rules in `follower`), and
//! the role state in [`RoleState`]: a leader's [`Leadership`] (`leader`, `replication`,
//! `reconfiguration`, `snapshot`), a (pre-)candidate's [`Votes`] (`election`).

use rand_core::Rng;

use crate::config::Config;
use crate::durability::Durability;
use crate::election::{self, Votes, random_timeout};
use crate::error::{Misuse, Refusal, Reject, RestoreError, StepError};
use crate::follower_read::ForwardedReads;
use crate::input::Input;
use crate::leader::{Halt, Leadership, StepDown};
use crate::log::RaftLog;
use crate::membership::{Membership, VoteResult};
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::output::{Event, Outputs};
use crate::read_index::ReadOrigin;
use crate::restore::{Restored, SnapshotMeta};
use crate::role::RoleState;
use crate::shared::Shared;
use crate::status::{Role, Stats, Status};
use crate::types::{Index, LogId, NodeId, Payload, Term, WriteId};
use crate::validate::validate;

/// One member of a Raft cluster, as a deterministic state machine.
///
/// Everything that happens to the node comes in through [`step`](Self::step); everything it
/// wants done comes out in the caller's [`Outputs`]. It reads no clock, does no I/O, spawns no
/// thread, and uses its RNG only to draw election timeouts. Given the same persisted state, the
/// same RNG stream and the same inputs, it produces the same outputs.
#[derive(Debug)]
pub struct Node<R> {
    /// What every role has.
    s: Shared,
    /// The role, with what only that role has.
    role: RoleState,
    rng: R,
    /// The last ReadIndex round this node started, in any of its leaderships.
    read_round: u64,
    /// The role, term and leader last told in an [`Event::StateChanged`].
    reported: (Role, Term, Option<NodeId>),
    /// With lease reads: restarted, and `election_ticks_min` ticks have not passed since. The
    /// node may have answered a leader's heartbeat just before it crashed (see `in_lease`).
    restart_lease: bool,
}

impl<R: Rng> Node<R> {
    /// Builds a node from its persisted state. This is the only constructor: a fresh cluster
    /// passes [`Restored::initial`].
    ///
    /// # Errors
    /// [`RestoreError`] naming the first inconsistency in `config` or `state`.
    pub fn restore(config: Config, mut rng: R, state: Restored) -> Result<Self, RestoreError> {
        config.validate().map_err(RestoreError::Config)?;
        let state = state.validate()?;
        let election_timeout = random_timeout(
            &mut rng,
            config.election_ticks_min,
            config.election_ticks_max,
        );
        let log = RaftLog::restored(state.snapshot.last, state.entries);
        let mut s = Shared {
            id: config.id,
            term: state.hard_state.term,
            vote: state.hard_state.vote,
            leader: None,
            log,
            membership: state.snapshot.membership.clone(),
            config_index: state.snapshot.last.index,
            voted_before_config: false,
            snapshot: state.snapshot,
            incoming: None,
            early_chunks: alloc::vec::Vec::new(),
            install_write: 0,
            snapshot_suggested: false,
            commit: state.applied,
            applied: state.applied,
            emitted: state.applied,
            election_elapsed: 0,
            election_timeout,
            durability: Durability::default(),
            forwarded_reads: ForwardedReads::default(),
            stats: Stats::default(),
            config,
        };
        // The configuration in force is the latest in the log, committed or not.
        s.refresh_membership();
        let restart_lease = s.config.lease_reads;
        Ok(Self {
            reported: (Role::Follower, s.term, None),
            s,
            role: RoleState::Follower,
            rng,
            read_round: 0,
            restart_lease,
        })
    }

    /// Feeds one input to the node; what it wants done is appended to `out`.
    ///
    /// Call this for every tick, received message, proposal, read, and acknowledgement. `out` is
    /// never cleared here: drain its lanes (see [`Outputs`]) and reuse it.
    ///
    /// # Errors
    /// - [`StepError::Rejected`]: a message that cannot come from a correct peer; the node's
    ///   state is unchanged and the rejection counted. Log it and keep going.
    /// - [`StepError::Misuse`]: the adapter broke the contract (a bug to fix).
    /// - [`StepError::Refused`]: the request cannot be served here or now.
    pub fn step(&mut self, input: Input, out: &mut Outputs) -> Result<(), StepError> {
        let result = match input {
            Input::Applied(index) => {
                // The cheapest and most frequent input: it changes neither role, term, leader
                // nor what is committed, so the end of a step has only the snapshot suggestion
                // to do.
                let result = self.set_applied(index);
                self.s.maybe_suggest_snapshot(out);
                return result;
            }
            Input::Tick => {
                self.tick(out);
                Ok(())
            }
            Input::Message(m) => self.step_message(m, out),
            Input::Propose(data) => self.propose_entry(data, out).map(drop),
            Input::ProposeBatch(commands) => self.propose_entries(&commands, out).map(drop),
            Input::Read(id) => match (&mut self.role, self.s.leader) {
                (RoleState::Leader(l), _) => l.read(&mut self.s, ReadOrigin::Local(id), out),
                (RoleState::Follower, Some(leader)) if self.s.config.follower_reads => {
                    if self.s.forwarded_reads.unstarted() {
                        let start = self.rng.next_u64();
                        self.s.forwarded_reads.start(start);
                    }
                    let max = self.s.config.max_pending_reads;
                    let me = (self.s.id, self.s.term);
                    self.s.forwarded_reads.forward(me, id, leader, max, out)
                }
                _ => Err(self.not_leader().into()),
            },
            Input::TransferLeader(to) => match &mut self.role {
                RoleState::Leader(l) => l.transfer_leader(&self.s, to, out),
                _ => Err(self.not_leader().into()),
            },
            Input::ChangeMembership(target) => self.start_change(&target, out).map(drop),
            // A leader's read lease rests on its followers not campaigning within it.
            Input::Campaign
                if self.s.config.lease_reads
                    && matches!(self.role, RoleState::Follower)
                    && self.in_lease() =>
            {
                Err(Refusal::InLease.into())
            }
            Input::Campaign => self.campaign(false, out),
            Input::Persisted(id) => self.persisted(id, out),
            Input::Unreachable(id) => {
                if let RoleState::Leader(l) = &mut self.role {
                    l.unreachable(id);
                }
                Ok(())
            }
            Input::SnapshotTaken(meta) => self.snapshot_taken(*meta, out),
            Input::SnapshotChunk(chunk) => {
                if let RoleState::Leader(l) = &mut self.role {
                    l.snapshot_chunk(&self.s, chunk, out);
                }
                Ok(())
            }
        };
        self.finish_step(result, out)
    }

    /// Proposes a command; returns the id of the entry that will carry it.
    ///
    /// The command is committed once an entry with this id is applied; if an entry with the same
    /// index but another term is applied instead, leadership changed and the proposal was lost.
    ///
    /// # Errors
    /// [`Refusal::NotLeader`] (with the leader to redirect to), [`Refusal::TransferInProgress`],
    /// [`Refusal::TooLarge`].
    pub fn propose(&mut self, data: Payload, out: &mut Outputs) -> Result<LogId, StepError> {
        let result = self.propose_entry(data, out);
        self.finish_step(result.map(drop), out).and(result)
    }

    /// Proposes several commands at once: they become consecutive entries of the same term, in
    /// one write, and each follower gets them in one message. Cheaper than proposing them one by
    /// one. All or none: if any is refused (too large, say), none is appended.
    ///
    /// Returns the id of the last entry (the first is `commands.len() - 1` before it), or `None`
    /// if `commands` is empty.
    ///
    /// # Errors
    /// As [`propose`](Self::propose).
    pub fn propose_batch(
        &mut self,
        commands: &[Payload],
        out: &mut Outputs,
    ) -> Result<Option<LogId>, StepError> {
        let result = self.propose_entries(commands, out);
        self.finish_step(result.map(drop), out).and(result)
    }

    /// Starts a membership change towards `target` (leader only). Returns the id of the
    /// configuration entry appended: the joint configuration, or `target` itself when only
    /// learners change.
    ///
    /// Build `target` with [`Membership::with_changes`] from [`Node::membership`]. A node that
    /// joins the cluster starts from [`Restored::initial`] with a membership naming the current
    /// voters and itself as a learner; it adopts the cluster's real configuration as soon as the
    /// leader's log reaches it.
    ///
    /// # Errors
    /// [`Refusal::NotLeader`], [`Refusal::TransferInProgress`], [`Refusal::ChangePending`],
    /// [`Refusal::InvalidMembership`], [`Refusal::NotCaughtUp`] (add new voters as learners
    /// first and promote them once they have caught up), [`Refusal::Exhausted`].
    pub fn change_membership(
        &mut self,
        target: &Membership,
        out: &mut Outputs,
    ) -> Result<LogId, StepError> {
        let result = self.start_change(target, out);
        self.finish_step(result.map(drop), out).and(result)
    }

    /// The metadata of a snapshot of the state machine as of `index`, for
    /// [`Input::SnapshotTaken`].
    ///
    /// Call this when the state machine has applied exactly `index` and is about to be
    /// snapshotted. `None` if `index` has not been applied or is no longer in the log.
    #[must_use]
    pub fn snapshot_meta(&self, index: Index) -> Option<SnapshotMeta> {
        self.s.snapshot_meta(index)
    }

    /// The latest snapshot (`LogId::ZERO` for none).
    #[must_use]
    pub fn snapshot(&self) -> &SnapshotMeta {
        &self.s.snapshot
    }

    /// Checks the node's internal invariants (the simulator and the fuzzers run this after every
    /// step).
    ///
    /// # Errors
    /// The first invariant found broken.
    #[cfg(any(test, feature = "sim"))]
    pub fn check_invariants(&self) -> Result<(), crate::InvariantViolation> {
        crate::invariants::check_node(&self.s, &self.role)
    }

    // Inlined into every step (a call per step cost more than its body: callgrind batch 1
    // 7,456 -> 7,436 instructions/entry, sync 10,255 -> 10,223).
    #[inline(always)]
    fn finish_step(
        &mut self,
        result: Result<(), StepError>,
        out: &mut Outputs,
    ) -> Result<(), StepError> {
        self.s.emit_committed(out);
        self.s.maybe_suggest_snapshot(out);
        let (role, term, leader) = (self.role(), self.s.term, self.s.leader);
        if (role, term, leader) != self.reported {
            self.reported = (role, term, leader);
            self.s.stats.reads_aborted += self.s.forwarded_reads.abort_all(out);
            out.events.push(Event::StateChanged { role, term, leader });
        }
        match &result {
            Err(StepError::Rejected(r)) => {
                self.s.stats.rejected += 1;
                self.s.stats.last_rejected = Some(*r);
            }
            Err(StepError::Refused(_)) => self.s.stats.refused += 1,
            _ => {}
        }
        result
    }

    // ---- accessors -------------------------------------------------------------------------

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.s.id
    }

    /// Its current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role.role()
    }

    /// Its current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.s.term
    }

    /// The leader it knows of, if any.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.s.leader
    }

    /// The highest index it knows committed.
    #[must_use]
    pub fn commit_index(&self) -> Index {
        self.s.commit
    }

    /// The highest index the adapter reported applied.
    #[must_use]
    pub fn applied_index(&self) -> Index {
        self.s.applied
    }

    /// The last entry of its log.
    #[must_use]
    pub fn last_log(&self) -> LogId {
        self.s.log.last()
    }

    /// The configuration in force.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        &self.s.membership
    }

    /// Counters of what it has seen.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.s.stats
    }

    /// The configuration it runs with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.s.config
    }

    /// How many ticks can pass before a timer fires (an election, a heartbeat, a CheckQuorum
    /// round). An adapter may sleep this long if no other input arrives; a simulator may skip
    /// ahead. Always at least 1.
    #[must_use]
    pub fn ticks_until_timer(&self) -> u32 {
        match &self.role {
            RoleState::Leader(l) => l.ticks_until_timer(&self.s),
            _ if self.s.may_campaign() => self
                .s
                .election_timeout
                .saturating_sub(self.s.election_elapsed)
                .max(1),
            _ => u32::MAX,
        }
    }

    /// A snapshot of the node's state for operators.
    #[must_use]
    pub fn status(&self) -> Status {
        let s = &self.s;
        Status {
            id: s.id,
            role: self.role(),
            term: s.term,
            vote: s.vote,
            leader: s.leader,
            commit: s.commit,
            applied: s.applied,
            last_log: s.log.last(),
            persisted: s.log.persisted(),
            snapshot: s.snapshot.last,
            log_len: s.log.len(),
            membership: s.membership.clone(),
            peers: match &self.role {
                RoleState::Leader(l) => l.peer_statuses(),
                _ => heapless::Vec::new(),
            },
        }
    }

    // ---- requests ----------------------------------------------------------------------------

    fn not_leader(&self) -> Refusal {
        Refusal::NotLeader {
            leader: self.s.leader,
        }
    }

    fn propose_entry(&mut self, data: Payload, out: &mut Outputs) -> Result<LogId, StepError> {
        self.propose_entries(core::slice::from_ref(&data), out)?
            .ok_or(StepError::Refused(Refusal::Exhausted))
    }

    fn propose_entries(
        &mut self,
        commands: &[Payload],
        out: &mut Outputs,
    ) -> Result<Option<LogId>, StepError> {
        match &mut self.role {
            RoleState::Leader(l) => l.propose_entries(&mut self.s, commands, out),
            _ => Err(self.not_leader().into()),
        }
    }

    fn start_change(&mut self, target: &Membership, out: &mut Outputs) -> Result<LogId, StepError> {
        match &mut self.role {
            RoleState::Leader(l) => l.start_change(&mut self.s, target, out),
            _ => Err(self.not_leader().into()),
        }
    }

    /// Carries out what a leader's handler asked for: stepping down, or an error to return.
    fn carry_out(&mut self, result: Result<(), Halt>, out: &mut Outputs) -> Result<(), StepError> {
        match result {
            Ok(()) => Ok(()),
            Err(Halt::StepDown) => {
                self.step_down(out);
                Ok(())
            }
            Err(Halt::Error(e)) => Err(e),
        }
    }

    /// Back to follower in the current term, with no known leader: a leader whose CheckQuorum
    /// failed or that was removed, a candidate that lost.
    fn step_down(&mut self, out: &mut Outputs) {
        let term = self.s.term;
        self.become_follower(term, None, out);
    }

    // ---- acknowledgements --------------------------------------------------------------------

    fn persisted(&mut self, id: WriteId, out: &mut Outputs) -> Result<(), StepError> {
        let acked = self.s.durability.ack(id).ok_or(Misuse::UnknownWrite)?;
        if let Some(index) = acked.persisted {
            self.s.log.set_persisted(index);
        }
        self.s.durability.release(&mut out.sends);
        let outcome = match &mut self.role {
            RoleState::Leader(l) => l.persisted(&mut self.s, out),
            RoleState::Candidate(_) => {
                self.tally(out);
                Ok(())
            }
            _ => Ok(()),
        };
        if outcome == Err(StepDown) {
            self.step_down(out);
        }
        Ok(())
    }

    fn set_applied(&mut self, index: Index) -> Result<(), StepError> {
        if index > self.s.emitted {
            return Err(Misuse::AppliedPastEmitted {
                index,
                emitted: self.s.emitted,
            }
            .into());
        }
        self.s.applied = self.s.applied.max(index);
        Ok(())
    }

    fn snapshot_taken(&mut self, meta: SnapshotMeta, out: &mut Outputs) -> Result<(), StepError> {
        if self.s.snapshot_taken(meta)? {
            if let RoleState::Leader(l) = &mut self.role {
                l.restart_transfers(&self.s, out);
            }
        }
        Ok(())
    }

    // ---- time --------------------------------------------------------------------------------

    fn tick(&mut self, out: &mut Outputs) {
        self.s.election_elapsed = self.s.election_elapsed.saturating_add(1);
        self.restart_lease &= self.s.election_elapsed < self.s.config.election_ticks_min;
        let outcome = match &mut self.role {
            RoleState::Leader(l) => l.tick(&mut self.s, out),
            _ if self.s.election_elapsed >= self.s.election_timeout && self.s.may_campaign() => {
                // A refusal here (the term is exhausted) leaves the node a follower; nothing to do.
                let _ = self.campaign(false, out);
                Ok(())
            }
            _ => Ok(()),
        };
        if outcome == Err(StepDown) {
            self.step_down(out);
        }
    }

    fn reset_election_timer(&mut self) {
        self.s.election_elapsed = 0;
        self.s.election_timeout = random_timeout(
            &mut self.rng,
            self.s.config.election_ticks_min,
            self.s.config.election_ticks_max,
        );
    }

    /// Whether a live leader is known, so vote requests are ignored (Raft thesis §4.2.3: a
    /// server that heard from a leader within the minimum election timeout does not grant votes
    /// or raise its term on a vote request). A leader is one while it hears from a quorum,
    /// CheckQuorum or not: otherwise a removed server that campaigns without pre-vote deposes
    /// every leader it reaches (simulator seed 202301 of the membership scenario). With lease
    /// reads, a node that restarted counts as having heard from a leader at its start.
    fn in_lease(&self) -> bool {
        match &self.role {
            RoleState::Leader(l) => self.s.config.check_quorum || l.quorum_heard,
            RoleState::Follower => {
                (self.s.leader.is_some() || self.restart_lease)
                    && self.s.election_elapsed < self.s.config.election_ticks_min
            }
            RoleState::PreCandidate(_) | RoleState::Candidate(_) => false,
        }
    }

    // ---- roles -------------------------------------------------------------------------------

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>, out: &mut Outputs) {
        if term > self.s.term {
            self.s.term = term;
            self.s.vote = None;
            self.s.persist_hard_state(out);
        }
        if let RoleState::Leader(l) = &mut self.role {
            self.s.stats.reads_aborted += l.abort_reads(&self.s, out);
            self.read_round = l.reads.round();
        }
        // Leaving a role drops its state: a leader's peers and transfer, a candidate's votes.
        self.role = RoleState::Follower;
        self.s.leader = leader;
        self.reset_election_timer();
    }

    fn become_leader(&mut self, out: &mut Outputs) {
        self.s.leader = Some(self.s.id);
        self.s.stats.became_leader += 1;
        self.s.election_elapsed = 0;
        self.role = RoleState::Leader(Leadership::new(&self.s, self.read_round));
        let outcome = match &mut self.role {
            RoleState::Leader(l) => l.start(&mut self.s, out),
            _ => Ok(()),
        };
        if outcome == Err(StepDown) {
            self.step_down(out);
        }
    }

    /// Starts an election: a pre-vote round first if configured, unless `transfer` (a leader
    /// handed over leadership, so the election must not wait or be ignored).
    fn campaign(&mut self, transfer: bool, out: &mut Outputs) -> Result<(), StepError> {
        if !self.s.may_campaign() {
            return Err(Refusal::NotVoter.into());
        }
        if matches!(self.role, RoleState::Leader(_)) {
            return Ok(());
        }
        self.s.stats.elections += 1;
        if self.s.config.pre_vote && !transfer {
            self.become_pre_candidate(out)
        } else {
            self.become_candidate(transfer, out)
        }
    }

    fn become_pre_candidate(&mut self, out: &mut Outputs) -> Result<(), StepError> {
        let proposed = self.s.term.next().ok_or(Refusal::Exhausted)?;
        let last_log = self.s.log.durable_last();
        let votes = match core::mem::replace(&mut self.role, RoleState::Follower) {
            RoleState::PreCandidate(earlier) => earlier.next_pre_vote(proposed, last_log),
            _ => Votes::pre_vote(proposed, last_log),
        };
        self.role = RoleState::PreCandidate(votes);
        self.s.leader = None;
        self.reset_election_timer();
        election::request_votes(&self.s, proposed, true, false, out);
        self.tally(out);
        Ok(())
    }

    fn become_candidate(&mut self, transfer: bool, out: &mut Outputs) -> Result<(), StepError> {
        let term = self.s.term.next().ok_or(Refusal::Exhausted)?;
        self.s.term = term;
        self.s.vote = Some(self.s.id);
        self.s.leader = None;
        self.reset_election_timer();
        self.s.persist_hard_state(out);
        // The vote for itself counts only once it is durable.
        self.role = RoleState::Candidate(Votes::election(self.s.durability.latest()));
        election::request_votes(&self.s, term, false, transfer, out);
        self.tally(out);
        Ok(())
    }

    /// Counts the votes of the current (pre-)election and acts on the result.
    fn tally(&mut self, out: &mut Outputs) {
        let (result, pre_vote) = match &self.role {
            RoleState::PreCandidate(v) => (v.tally(&self.s), true),
            RoleState::Candidate(v) => (v.tally(&self.s), false),
            _ => return,
        };
        match (result, pre_vote) {
            (VoteResult::Won, true) => {
                // A refusal (term exhausted) leaves the node a pre-candidate that times out.
                let _ = self.become_candidate(false, out);
            }
            (VoteResult::Won, false) => self.become_leader(out),
            (VoteResult::Lost, _) => self.step_down(out),
            (VoteResult::Pending, _) => {}
        }
    }

    fn handle_vote_response(
        &mut self,
        from: NodeId,
        term: Term,
        granted: bool,
        pre_vote: bool,
        out: &mut Outputs,
    ) {
        let current = match (&self.role, pre_vote) {
            // Grants carry the proposed term, refusals this node's own.
            (RoleState::PreCandidate(_), true) if granted => self.s.term.next() == Some(term),
            (RoleState::PreCandidate(_), true) => term == self.s.term,
            (RoleState::Candidate(_), false) => term == self.s.term,
            _ => false,
        };
        if !current || !self.s.membership.is_voter(from) {
            return;
        }
        if let RoleState::PreCandidate(v) | RoleState::Candidate(v) = &mut self.role {
            v.record(from, granted);
        }
        self.tally(out);
    }

    // ---- messages ----------------------------------------------------------------------------

    fn step_message(&mut self, m: Message, out: &mut Outputs) -> Result<(), StepError> {
        validate(&self.s, &m)?;
        let Message {
            from, term, body, ..
        } = m;
        if term > self.s.term {
            match &body {
                MessageBody::VoteRequest {
                    pre_vote,
                    leader_transfer,
                    ..
                } => {
                    if !leader_transfer && self.in_lease() {
                        self.s.stats.votes_ignored_in_lease += 1;
                        return Ok(());
                    }
                    if !pre_vote {
                        self.become_follower(term, None, out);
                    }
                }
                // A granted pre-vote carries the term this node proposed: nothing to adopt.
                MessageBody::VoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Commit { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(term, Some(from), out);
                }
                _ => self.become_follower(term, None, out),
            }
        } else if term < self.s.term {
            self.s.stats.stale_term += 1;
            match body {
                // A deposed leader, or one this node outran in a partition: tell it the newer
                // term so it steps down (it would otherwise never learn it, since vote requests
                // from this node may be ignored by its lease).
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Commit { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    let body = MessageBody::AppendResponse {
                        outcome: AppendOutcome::Outdated,
                    };
                    self.s.respond(from, self.s.term, body, out);
                }
                // Figure 2: "reply false if term < currentTerm", with the current term, so that a
                // candidate that fell behind (its requests ignored, its elections going nowhere)
                // learns the term it must beat.
                MessageBody::VoteRequest { pre_vote, .. } => {
                    let body = MessageBody::VoteResponse {
                        granted: false,
                        pre_vote,
                    };
                    self.s.respond(from, self.s.term, body, out);
                }
                _ => {}
            }
            return Ok(());
        }

        match body {
            MessageBody::VoteRequest {
                last_log, pre_vote, ..
            } => {
                election::handle_vote_request(&mut self.s, from, term, last_log, pre_vote, out);
                Ok(())
            }
            MessageBody::VoteResponse { granted, pre_vote } => {
                self.handle_vote_response(from, term, granted, pre_vote, out);
                Ok(())
            }
            MessageBody::AppendEntries {
                prev,
                entries,
                commit,
            } => {
                self.follow(from, out)?;
                self.s.handle_append(from, prev, entries, commit, out);
                Ok(())
            }
            MessageBody::AppendResponse { outcome } => match &mut self.role {
                RoleState::Leader(l) => {
                    let result = l.handle_append_response(&mut self.s, from, outcome, out);
                    self.carry_out(result, out)
                }
                _ => Ok(()),
            },
            MessageBody::Heartbeat { commit, read_round } => {
                self.follow(from, out)?;
                self.s.handle_heartbeat(from, commit, read_round, out);
                Ok(())
            }
            MessageBody::Commit { commit } => {
                self.follow(from, out)?;
                self.s.handle_commit(commit);
                Ok(())
            }
            MessageBody::HeartbeatResponse {
                read_round,
                writes_pending,
            } => {
                if let RoleState::Leader(l) = &mut self.role {
                    l.handle_heartbeat_response(&self.s, from, read_round, writes_pending, out);
                }
                Ok(())
            }
            MessageBody::ReadIndexRequest { request } => {
                let origin = ReadOrigin::Forwarded { from, request };
                let refused = match &mut self.role {
                    RoleState::Leader(l) => l.read(&mut self.s, origin, out).is_err(),
                    _ => true,
                };
                if refused {
                    origin.answer(self.s.id, self.s.term, None, out);
                }
                Ok(())
            }
            MessageBody::ReadIndexResponse { request, index } => {
                self.s
                    .forwarded_reads
                    .answered(from, term, request, index, out);
                Ok(())
            }
            MessageBody::TimeoutNow => {
                if matches!(self.role, RoleState::Follower) && self.s.leader == Some(from) {
                    self.campaign(true, out)?;
                }
                Ok(())
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => {
                self.follow(from, out)?;
                self.s
                    .handle_install_snapshot(from, meta, offset, data, done, out);
                Ok(())
            }
            MessageBody::SnapshotResponse {
                snapshot,
                received,
                installed,
            } => match &mut self.role {
                RoleState::Leader(l) => {
                    let result = l.handle_snapshot_response(
                        &mut self.s,
                        from,
                        snapshot,
                        received,
                        installed,
                        out,
                    );
                    self.carry_out(result, out)
                }
                _ => Ok(()),
            },
        }
    }

    /// A message from the leader of this node's term: follow it.
    fn follow(&mut self, from: NodeId, out: &mut Outputs) -> Result<(), Reject> {
        match self.role {
            RoleState::Leader(_) => return Err(Reject::ConflictingLeader { from }),
            RoleState::Candidate(_) | RoleState::PreCandidate(_) => {
                let term = self.s.term;
                self.become_follower(term, Some(from), out);
            }
            RoleState::Follower => match self.s.leader {
                Some(l) if l != from => return Err(Reject::ConflictingLeader { from }),
                _ => self.s.leader = Some(from),
            },
        }
        self.s.election_elapsed = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
