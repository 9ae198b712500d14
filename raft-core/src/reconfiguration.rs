//! Membership changes (Raft thesis §4.3): joint consensus, learners, and a leader that removes
//! itself.
//!
//! # When a configuration takes effect
//!
//! On append, not on commit or apply: every node uses the latest configuration in its log,
//! committed or not (thesis §4.1), and falls back to the one before when a conflicting suffix is
//! truncated. A leader must count votes and matches by the configuration it replicates, or it
//! could commit an entry of the joint configuration with the old majority alone, which is the
//! very split that joint consensus exists to prevent. Applying is too late for the same reason:
//! the state machine lags the log by an unbounded amount.
//!
//! # The change
//!
//! [`Input::ChangeMembership`](crate::Input::ChangeMembership) names the target configuration.
//! If its voters are the current voters (only learners change), the leader appends it directly.
//! Otherwise it appends the joint configuration: the target's voters, the current voters as
//! outgoing voters, the target's learners. From then on elections and commitment need
//! majorities of both voter sets. Once that entry is committed the leader appends the target
//! configuration by itself. A leader that is not a voter of the target keeps leading (without
//! counting itself) until the target is committed, then hands leadership to the most caught-up
//! voter and steps down.
//!
//! Only one change at a time: a new one is refused with [`Refusal::ChangePending`] while a
//! configuration entry is uncommitted or the joint configuration has not been left, and until
//! the leader has committed an entry of its own term (without that, a new leader could append a
//! configuration that conflicts with an uncommitted one of an earlier term).

use rand_core::Rng;

use crate::error::{Refusal, StepError};
use crate::membership::Membership;
use crate::message::MessageBody;
use crate::node::Node;
use crate::output::Outputs;
use crate::progress::Progress;
use crate::status::Role;
use crate::types::{EntryKind, Index, LogId, Payload};

impl<R: Rng> Node<R> {
    /// Starts a membership change towards `target` (leader only). Returns the id of the
    /// configuration entry appended: the joint configuration, or `target` itself when only
    /// learners change.
    ///
    /// Build `target` with [`Membership::with_changes`] from [`Node::membership`]. A node that
    /// joins the cluster starts from [`Restored::initial`](crate::Restored::initial) with a
    /// membership naming the current voters and itself as a learner; it adopts the cluster's
    /// real configuration as soon as the leader's log reaches it.
    ///
    /// # Errors
    /// [`Refusal::NotLeader`], [`Refusal::TransferInProgress`], [`Refusal::ChangePending`],
    /// [`Refusal::InvalidMembership`], [`Refusal::Exhausted`].
    pub fn change_membership(
        &mut self,
        target: &Membership,
        out: &mut Outputs,
    ) -> Result<LogId, StepError> {
        let result = self.start_change(target, out);
        self.finish_step(result.map(drop), out).and(result)
    }

    pub(crate) fn start_change(
        &mut self,
        target: &Membership,
        out: &mut Outputs,
    ) -> Result<LogId, StepError> {
        self.check_can_append()?;
        if self.membership.is_joint()
            || self.config_index > self.commit
            || self.log.term_at(self.commit) != Some(self.term)
        {
            return Err(Refusal::ChangePending.into());
        }
        let next = self
            .membership
            .transition_to(target)
            .map_err(Refusal::InvalidMembership)?;
        let id = self.append_config(next, out).ok_or(Refusal::Exhausted)?;
        self.broadcast_append(false, out);
        Ok(id)
    }

    /// Appends a configuration entry (leader only) and puts it in force.
    fn append_config(&mut self, membership: Membership, out: &mut Outputs) -> Option<LogId> {
        let data = Payload::from(membership.encode());
        let id = self.append_entry(EntryKind::Config, data, out)?;
        self.adopt_membership(membership, id.index);
        Some(id)
    }

    /// Called whenever the leader's commit index advances: leaves a committed joint
    /// configuration, and steps down once a configuration without this node is committed.
    pub(crate) fn after_commit(&mut self, out: &mut Outputs) {
        if self.role != Role::Leader || self.commit < self.config_index {
            return;
        }
        if self.membership.is_joint() {
            let target = self.membership.leave_joint();
            if self.append_config(target, out).is_some() {
                self.broadcast_append(false, out);
            }
        } else if !self.membership.is_voter(self.id) {
            self.step_down_removed(out);
        }
    }

    /// This leader is not a voter of the committed configuration: hand over to the voter that
    /// holds the whole log, if any (so the cluster need not wait out an election timeout), and
    /// step down. The node never campaigns again unless a later configuration makes it a voter.
    fn step_down_removed(&mut self, out: &mut Outputs) {
        let last = self.log.last_index();
        let successor = self
            .peers
            .iter()
            .filter(|p| p.match_index == last && self.membership.is_voter(p.id))
            .map(|p| p.id)
            .next();
        if let Some(to) = successor {
            self.send(to, MessageBody::TimeoutNow, out);
        }
        self.stats.removed_step_downs += 1;
        self.become_follower(self.term, None, out);
    }

    /// Puts `membership`, found in the log at `index`, in force. A leader starts replicating to
    /// new members and stops tracking removed ones.
    pub(crate) fn adopt_membership(&mut self, membership: Membership, index: Index) {
        self.voted_before_config = !membership.is_voter(self.id)
            && index > self.snapshot.last.index
            && self.membership_as_of(index.prev()).0.is_voter(self.id);
        self.membership = membership;
        self.config_index = index;
        if self.role != Role::Leader {
            return;
        }
        let membership = &self.membership;
        self.peers.retain(|p| membership.contains(p.id));
        for p in &mut self.peers {
            p.learner = !membership.is_voter(p.id);
        }
        let next = self.log.last_index();
        for id in membership.members() {
            if id != self.id && !self.peers.iter().any(|p| p.id == id) {
                // Cannot overflow: members() yields at most MAX_MEMBERS ids.
                let _ = self
                    .peers
                    .push(Progress::new(id, !membership.is_voter(id), next));
            }
        }
        if self
            .transfer
            .is_some_and(|t| !self.membership.is_voter(t.target))
        {
            self.transfer = None;
        }
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

    /// Recomputes the configuration in force from the log: the latest configuration entry after
    /// the snapshot, else the snapshot's. Called after the log lost or gained configuration
    /// entries by truncation, snapshot installation or restart.
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
}
