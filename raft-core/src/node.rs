//! The node: one value holding all of a member's Raft state, driven only by [`Node::step`].

use alloc::boxed::Box;

use rand_core::Rng;

use crate::config::Config;
use crate::durability::Durability;
use crate::election::random_timeout;
use crate::error::{Misuse, Refusal, Reject, RestoreError, StepError};
use crate::input::Input;
use crate::log::RaftLog;
use crate::membership::{MAX_MEMBERS, Membership};
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::output::{Apply, Event, Outputs};
use crate::progress::Progress;
use crate::read_index::ReadIndex;
use crate::restore::{Restored, SnapshotMeta};
use crate::snapshot::Incoming;
use crate::status::{ReplicationState, Role, Stats, Status};
use crate::types::{EntryKind, HardState, Index, LogId, NodeId, Payload, Term};

/// A leadership transfer under way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transfer {
    pub(crate) target: NodeId,
    pub(crate) elapsed: u32,
    pub(crate) timeout_now_sent: bool,
}

/// One member of a Raft cluster, as a deterministic state machine.
///
/// Everything that happens to the node comes in through [`step`](Self::step); everything it
/// wants done comes out in the caller's [`Outputs`]. It reads no clock, does no I/O, spawns no
/// thread, and uses its RNG only to draw election timeouts. Given the same persisted state, the
/// same RNG stream and the same inputs, it produces the same outputs.
#[derive(Debug)]
pub struct Node<R> {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    pub(crate) rng: R,
    pub(crate) role: Role,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
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
    /// The write that installs the latest snapshot received; it is applied once durable.
    pub(crate) install_write: u64,
    pub(crate) snapshot_suggested: bool,
    /// The highest index known committed (volatile, Raft Figure 2).
    pub(crate) commit: Index,
    /// The highest index the adapter reported applied.
    pub(crate) applied: Index,
    /// The highest index handed out in the apply lane.
    pub(crate) emitted: Index,
    pub(crate) election_elapsed: u32,
    pub(crate) election_timeout: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Votes received in the current (pre-)election, excluding this node's own.
    pub(crate) votes: heapless::Vec<(NodeId, bool), MAX_MEMBERS>,
    /// The write that records this candidate's vote for itself; it counts once durable.
    pub(crate) self_vote_write: u64,
    /// Leader only: progress of every other member.
    pub(crate) peers: heapless::Vec<Progress, MAX_MEMBERS>,
    pub(crate) reads: ReadIndex,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) durability: Durability,
    pub(crate) stats: Stats,
    reported: (Role, Term, Option<NodeId>),
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
        let mut node = Self {
            id: config.id,
            rng,
            role: Role::Follower,
            term: state.hard_state.term,
            vote: state.hard_state.vote,
            leader: None,
            log,
            membership: state.snapshot.membership.clone(),
            config_index: state.snapshot.last.index,
            voted_before_config: false,
            snapshot: state.snapshot,
            incoming: None,
            install_write: 0,
            snapshot_suggested: false,
            commit: state.applied,
            applied: state.applied,
            emitted: state.applied,
            election_elapsed: 0,
            election_timeout,
            heartbeat_elapsed: 0,
            votes: heapless::Vec::new(),
            self_vote_write: 0,
            peers: heapless::Vec::new(),
            reads: ReadIndex::default(),
            transfer: None,
            durability: Durability::default(),
            stats: Stats::default(),
            reported: (Role::Follower, state.hard_state.term, None),
            config,
        };
        // The configuration in force is the latest in the log, committed or not.
        node.refresh_membership();
        Ok(node)
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
            Input::Tick => {
                self.tick(out);
                Ok(())
            }
            Input::Message(m) => self.step_message(m, out),
            Input::Propose(data) => self.propose_entry(data, out).map(drop),
            Input::Read(id) => self.read(id, out),
            Input::TransferLeader(to) => self.transfer_leader(to, out),
            Input::ChangeMembership(target) => self.start_change(&target, out).map(drop),
            Input::Campaign => self.campaign(false, out),
            Input::Persisted(id) => self.persisted(id, out),
            Input::Applied(index) => self.set_applied(index),
            Input::Unreachable(id) => {
                self.unreachable(id);
                Ok(())
            }
            Input::SnapshotTaken(meta) => self.snapshot_taken(*meta, out),
            Input::SnapshotChunk(chunk) => {
                self.snapshot_chunk(chunk, out);
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

    pub(crate) fn finish_step(
        &mut self,
        result: Result<(), StepError>,
        out: &mut Outputs,
    ) -> Result<(), StepError> {
        self.emit_committed(out);
        self.maybe_suggest_snapshot(out);
        let now = (self.role, self.term, self.leader);
        if now != self.reported {
            self.reported = now;
            out.events.push(Event::StateChanged {
                role: self.role,
                term: self.term,
                leader: self.leader,
            });
        }
        match &result {
            Err(StepError::Rejected(r)) => {
                self.stats.rejected += 1;
                self.stats.last_rejected = Some(*r);
            }
            Err(StepError::Refused(_)) => self.stats.refused += 1,
            _ => {}
        }
        result
    }

    /// Hands out, in order, what is both committed and durable here: a snapshot installed from
    /// the leader, then entries.
    fn emit_committed(&mut self, out: &mut Outputs) {
        if self.emitted < self.log.base().index {
            // The log now starts after a snapshot the state machine has not loaded.
            if !self.durability.is_acked(self.install_write) {
                return;
            }
            out.apply
                .push(Apply::Snapshot(Box::new(self.snapshot.clone())));
            self.emitted = self.snapshot.last.index;
        }
        let upto = self.commit.min(self.log.persisted());
        while self.emitted < upto {
            let next = Index(self.emitted.0 + 1);
            let Some(entry) = self.log.entry(next) else {
                break;
            };
            out.apply.push(Apply::Entry(entry.clone()));
            self.emitted = next;
        }
    }

    // ---- accessors -------------------------------------------------------------------------

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Its current role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Its current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader it knows of, if any.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The highest index it knows committed.
    #[must_use]
    pub fn commit_index(&self) -> Index {
        self.commit
    }

    /// The highest index the adapter reported applied.
    #[must_use]
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// The last entry of its log.
    #[must_use]
    pub fn last_log(&self) -> LogId {
        self.log.last()
    }

    /// The configuration in force.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Counters of what it has seen.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration it runs with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many ticks can pass before a timer fires (an election, a heartbeat, a CheckQuorum
    /// round). An adapter may sleep this long if no other input arrives; a simulator may skip
    /// ahead. Always at least 1.
    #[must_use]
    pub fn ticks_until_timer(&self) -> u32 {
        match self.role {
            Role::Leader => {
                let hb = self
                    .config
                    .heartbeat_ticks
                    .saturating_sub(self.heartbeat_elapsed);
                let cq = self
                    .config
                    .election_ticks_min
                    .saturating_sub(self.election_elapsed);
                hb.min(cq).max(1)
            }
            _ if self.may_campaign() => self
                .election_timeout
                .saturating_sub(self.election_elapsed)
                .max(1),
            _ => u32::MAX,
        }
    }

    /// A snapshot of the node's state for operators.
    #[must_use]
    pub fn status(&self) -> Status {
        let mut peers = heapless::Vec::new();
        for p in &self.peers {
            // Cannot overflow: both vectors hold at most MAX_MEMBERS.
            let _ = peers.push(p.status());
        }
        Status {
            id: self.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit: self.commit,
            applied: self.applied,
            last_log: self.log.last(),
            persisted: self.log.persisted(),
            snapshot: self.snapshot.last,
            log_len: self.log.len(),
            membership: self.membership.clone(),
            peers,
        }
    }

    // ---- acknowledgements --------------------------------------------------------------------

    fn persisted(&mut self, id: crate::WriteId, out: &mut Outputs) -> Result<(), StepError> {
        let acked = self.durability.ack(id).ok_or(Misuse::UnknownWrite)?;
        if let Some(index) = acked.persisted {
            self.log.set_persisted(index);
        }
        out.sends.extend(self.durability.release());
        let role = self.role;
        match role {
            Role::Leader if self.maybe_commit(out) => self.broadcast_append(true, out),
            Role::Candidate => self.tally(out),
            _ => {}
        }
        Ok(())
    }

    fn set_applied(&mut self, index: Index) -> Result<(), StepError> {
        if index > self.emitted {
            return Err(Misuse::AppliedPastEmitted {
                index,
                emitted: self.emitted,
            }
            .into());
        }
        self.applied = self.applied.max(index);
        Ok(())
    }

    fn unreachable(&mut self, id: NodeId) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == id) {
            if p.state == ReplicationState::Replicate {
                p.become_probe();
            }
        }
    }

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

    /// Sends a response once every write issued so far is durable.
    pub(crate) fn respond(&mut self, to: NodeId, term: Term, body: MessageBody, out: &mut Outputs) {
        let msg = Message {
            from: self.id,
            to,
            term,
            body,
        };
        self.durability.send_after_writes(msg, out);
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

    // ---- time --------------------------------------------------------------------------------

    fn tick(&mut self, out: &mut Outputs) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.role == Role::Leader {
            self.tick_leader(out);
        } else if self.election_elapsed >= self.election_timeout && self.may_campaign() {
            // A refusal here (the term is exhausted) leaves the node a follower; nothing to do.
            let _ = self.campaign(false, out);
        }
    }

    fn tick_leader(&mut self, out: &mut Outputs) {
        self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
        if let Some(t) = &mut self.transfer {
            t.elapsed = t.elapsed.saturating_add(1);
            if t.elapsed >= self.config.election_ticks_min {
                // The target did not take over within an election timeout: resume service.
                self.transfer = None;
            }
        }
        if self.election_elapsed >= self.config.election_ticks_min {
            self.election_elapsed = 0;
            if self.config.check_quorum {
                let id = self.id;
                let peers = &self.peers;
                let active = self
                    .membership
                    .has_quorum(|m| m == id || peers.iter().any(|p| p.id == m && p.recent_active));
                if !active {
                    self.stats.check_quorum_step_downs += 1;
                    self.become_follower(self.term, None, out);
                    return;
                }
                for p in &mut self.peers {
                    p.recent_active = false;
                }
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(out);
        }
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = random_timeout(
            &mut self.rng,
            self.config.election_ticks_min,
            self.config.election_ticks_max,
        );
    }

    /// Whether a live leader is known, so vote requests are ignored (Raft thesis §4.2.3: a
    /// server that heard from a leader within the minimum election timeout does not grant votes
    /// or raise its term on a vote request).
    fn in_lease(&self) -> bool {
        match self.role {
            Role::Leader => self.config.check_quorum,
            Role::Follower => {
                self.leader.is_some() && self.election_elapsed < self.config.election_ticks_min
            }
            Role::PreCandidate | Role::Candidate => false,
        }
    }

    // ---- roles -------------------------------------------------------------------------------

    pub(crate) fn become_follower(
        &mut self,
        term: Term,
        leader: Option<NodeId>,
        out: &mut Outputs,
    ) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard_state(out);
        }
        if self.role == Role::Leader {
            self.stats.reads_aborted += self.reads.abort_all(out);
            self.peers.clear();
            self.transfer = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_election_timer();
    }

    pub(crate) fn become_leader(&mut self, out: &mut Outputs) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.stats.became_leader += 1;
        self.votes.clear();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.transfer = None;
        self.peers.clear();
        let last = self.log.last_index();
        let next = last.next().unwrap_or(last);
        for id in self.membership.members() {
            if id != self.id {
                let learner = !self.membership.is_voter(id);
                // Cannot overflow: members() yields at most MAX_MEMBERS ids.
                let _ = self.peers.push(Progress::new(id, learner, next));
            }
        }
        // Raft §5.4.2 and §8: commit entries of earlier terms by committing one of this term.
        if self
            .append_entry(EntryKind::Noop, Payload::empty(), out)
            .is_some()
        {
            self.broadcast_append(false, out);
        }
        // A lone voter commits as soon as its own write is durable.
        if self.maybe_commit(out) {
            self.broadcast_append(true, out);
        }
    }

    // ---- messages ----------------------------------------------------------------------------

    fn step_message(&mut self, m: Message, out: &mut Outputs) -> Result<(), StepError> {
        self.validate(&m)?;
        let Message {
            from, term, body, ..
        } = m;
        if term > self.term {
            match &body {
                MessageBody::VoteRequest {
                    pre_vote,
                    leader_transfer,
                    ..
                } => {
                    if !leader_transfer && self.in_lease() {
                        self.stats.votes_ignored_in_lease += 1;
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
                | MessageBody::InstallSnapshot { .. } => {
                    self.become_follower(term, Some(from), out);
                }
                _ => self.become_follower(term, None, out),
            }
        } else if term < self.term {
            self.stats.stale_term += 1;
            match body {
                // A deposed leader, or one this node outran in a partition: tell it the newer
                // term so it steps down (it would otherwise never learn it, since vote requests
                // from this node may be ignored by its lease).
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    let body = MessageBody::AppendResponse {
                        outcome: AppendOutcome::Outdated,
                    };
                    self.respond(from, self.term, body, out);
                }
                // Figure 2: "reply false if term < currentTerm", with the current term, so that a
                // candidate that fell behind (its requests ignored, its elections going nowhere)
                // learns the term it must beat.
                MessageBody::VoteRequest { pre_vote, .. } => {
                    let body = MessageBody::VoteResponse {
                        granted: false,
                        pre_vote,
                    };
                    self.respond(from, self.term, body, out);
                }
                _ => {}
            }
            return Ok(());
        }

        match body {
            MessageBody::VoteRequest {
                last_log, pre_vote, ..
            } => {
                self.handle_vote_request(from, term, last_log, pre_vote, out);
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
                self.handle_append(from, prev, entries, commit, out);
                Ok(())
            }
            MessageBody::AppendResponse { outcome } => {
                self.handle_append_response(from, outcome, out)
            }
            MessageBody::Heartbeat { commit, read_round } => {
                self.follow(from, out)?;
                self.handle_heartbeat(from, commit, read_round, out);
                Ok(())
            }
            MessageBody::HeartbeatResponse { read_round } => {
                self.handle_heartbeat_response(from, read_round, out);
                Ok(())
            }
            MessageBody::TimeoutNow => {
                if self.role == Role::Follower && self.leader == Some(from) {
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
                self.handle_install_snapshot(from, meta, offset, data, done, out);
                Ok(())
            }
            MessageBody::SnapshotResponse {
                snapshot,
                received,
                installed,
            } => self.handle_snapshot_response(from, snapshot, received, installed, out),
        }
    }

    /// Checks what can be checked before any state changes.
    fn validate(&self, m: &Message) -> Result<(), Reject> {
        if m.to != self.id {
            return Err(Reject::WrongRecipient { to: m.to });
        }
        if m.from == self.id {
            return Err(Reject::FromSelf);
        }
        // Requests are processed from any sender (Raft thesis §4.1): a leader or candidate of a
        // configuration this node has not yet received must be heard, or the node could never
        // catch up with it. Responses come only from members this node asked.
        let request = matches!(
            m.body,
            MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::VoteRequest { .. }
                | MessageBody::TimeoutNow
        );
        if !request && !self.membership.contains(m.from) {
            return Err(Reject::UnknownSender { from: m.from });
        }
        if m.term.next().is_none() {
            return Err(Reject::Overflow);
        }
        match &m.body {
            MessageBody::VoteRequest { last_log, .. } if last_log.term > m.term => {
                Err(Reject::MalformedVoteRequest)
            }
            MessageBody::AppendEntries { prev, entries, .. } => {
                let mut last = *prev;
                if last.term > m.term {
                    return Err(Reject::MalformedEntries);
                }
                for e in entries {
                    let index = last.index.next().ok_or(Reject::Overflow)?;
                    if e.id.index != index || e.id.term < last.term || e.id.term > m.term {
                        return Err(Reject::MalformedEntries);
                    }
                    if e.kind == EntryKind::Config && Membership::decode(&e.data).is_err() {
                        return Err(Reject::MalformedEntries);
                    }
                    last = e.id;
                }
                Ok(())
            }
            MessageBody::InstallSnapshot {
                meta, offset, data, ..
            } => {
                if meta.last.term > m.term || meta.last.index == Index::ZERO {
                    return Err(Reject::MalformedSnapshot);
                }
                offset
                    .checked_add(data.len() as u64)
                    .map(drop)
                    .ok_or(Reject::Overflow)
            }
            MessageBody::Heartbeat { commit, .. }
                if m.term >= self.term && *commit > self.log.last_index() =>
            {
                Err(Reject::CommitPastLog {
                    commit: *commit,
                    last: self.log.last_index(),
                })
            }
            _ => Ok(()),
        }
    }

    /// A message from the leader of this node's term: follow it.
    fn follow(&mut self, from: NodeId, out: &mut Outputs) -> Result<(), Reject> {
        match self.role {
            Role::Leader => return Err(Reject::ConflictingLeader { from }),
            Role::Candidate | Role::PreCandidate => {
                self.become_follower(self.term, Some(from), out)
            }
            Role::Follower => match self.leader {
                Some(l) if l != from => return Err(Reject::ConflictingLeader { from }),
                _ => self.leader = Some(from),
            },
        }
        self.election_elapsed = 0;
        Ok(())
    }

    // ---- leadership transfer (Raft thesis §3.10) ---------------------------------------------

    fn transfer_leader(&mut self, target: NodeId, out: &mut Outputs) -> Result<(), StepError> {
        if self.role != Role::Leader {
            return Err(Refusal::NotLeader {
                leader: self.leader,
            }
            .into());
        }
        if target == self.id || !self.membership.is_voter(target) {
            return Err(Refusal::InvalidTransferTarget.into());
        }
        if self.transfer.is_some_and(|t| t.target == target) {
            return Ok(());
        }
        self.transfer = Some(Transfer {
            target,
            elapsed: 0,
            timeout_now_sent: false,
        });
        self.advance_transfer(out);
        if let Some(i) = self.peer_index(target) {
            self.send_append(i, true, out);
        }
        Ok(())
    }

    /// Sends TimeoutNow once the transfer target has caught up with the whole log.
    pub(crate) fn advance_transfer(&mut self, out: &mut Outputs) {
        let Some(t) = self.transfer else { return };
        if t.timeout_now_sent {
            return;
        }
        let last = self.log.last_index();
        let caught_up = self
            .peers
            .iter()
            .any(|p| p.id == t.target && p.match_index == last);
        if caught_up {
            self.send(t.target, MessageBody::TimeoutNow, out);
            if let Some(t) = &mut self.transfer {
                t.timeout_now_sent = true;
            }
        }
    }

    pub(crate) fn peer_index(&self, id: NodeId) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }
}
