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
//!
//! # Catching up first (thesis §4.2.1)
//!
//! A change is also refused, with [`Refusal::NotCaughtUp`], unless the target's voters that can
//! be brought up to date from the leader's log are a majority of it. Those are the leader and
//! the followers whose acknowledged log reaches the point compaction may cut the log to (the
//! log's start, or the commit index less `snapshot_trailing_entries`, whichever is later).
//! Anyone else (a node never replicated to, a learner still far behind) can only catch up
//! through a snapshot; were the change accepted, every commit from the joint entry on would
//! wait for that snapshot, and a transfer started over by each newer snapshot the leader takes
//! may take longer than the cluster can afford. Commitment cannot pass the joint entry without
//! the new majority, so compaction cannot overtake the voters counted here before they have
//! caught up.

use crate::error::{Refusal, StepError};
use crate::leader::{Leadership, StepDown};
use crate::membership::Membership;
use crate::message::MessageBody;
use crate::output::Outputs;
use crate::progress::Progress;
use crate::shared::Shared;
use crate::types::{EntryKind, Index, LogId, Payload};

impl Leadership {
    /// Starts a membership change towards `target`. Returns the id of the configuration entry
    /// appended: the joint configuration, or `target` itself when only learners change.
    pub(crate) fn start_change(
        &mut self,
        s: &mut Shared,
        target: &Membership,
        out: &mut Outputs,
    ) -> Result<LogId, StepError> {
        self.check_can_append()?;
        if s.membership.is_joint()
            || s.config_index > s.commit
            || s.log.term_at(s.commit) != Some(s.term)
        {
            return Err(Refusal::ChangePending.into());
        }
        let next = s
            .membership
            .transition_to(target)
            .map_err(Refusal::InvalidMembership)?;
        if !self.can_catch_up(s, &next) {
            return Err(Refusal::NotCaughtUp.into());
        }
        let id = self.append_config(s, next, out).ok_or(Refusal::Exhausted)?;
        self.broadcast_append(s, out);
        Ok(id)
    }

    /// Whether the voters of `next` (of both sets, when joint) that this leader can bring up to
    /// date from its log form a quorum: itself, and the followers whose match index is at or past
    /// the furthest point the log may be compacted to while `next` waits for its majority.
    fn can_catch_up(&self, s: &Shared, next: &Membership) -> bool {
        let floor = s.log.base().index.max(Index(
            s.commit
                .0
                .saturating_sub(s.config.snapshot_trailing_entries),
        ));
        // A node the leader does not replicate to yet (not a member) has nothing: it counts only
        // if the log can still be replayed from its first entry.
        next.has_quorum(|m| {
            m == s.id
                || self
                    .peers
                    .iter()
                    .find(|p| p.id == m)
                    .map_or(floor == Index::ZERO, |p| p.match_index >= floor)
        })
    }

    /// Appends a configuration entry and puts it in force.
    fn append_config(
        &mut self,
        s: &mut Shared,
        membership: Membership,
        out: &mut Outputs,
    ) -> Option<LogId> {
        let data = Payload::from(membership.encode());
        let id = self.append_entry(s, EntryKind::Config, data, out)?;
        s.adopt_membership(membership, id.index);
        self.track_members(s);
        Some(id)
    }

    /// Called whenever the commit index advances: leaves a committed joint configuration, and
    /// steps down once a configuration without this node is committed.
    pub(crate) fn after_commit(
        &mut self,
        s: &mut Shared,
        out: &mut Outputs,
    ) -> Result<(), StepDown> {
        if s.commit < s.config_index {
            return Ok(());
        }
        if s.membership.is_joint() {
            let target = s.membership.leave_joint();
            if self.append_config(s, target, out).is_some() {
                self.broadcast_append(s, out);
            }
        } else if !s.membership.is_voter(s.id) {
            return Err(self.step_down_removed(s, out));
        }
        Ok(())
    }

    /// This leader is not a voter of the committed configuration: hand over to the voter that
    /// holds the whole log, if any (so the cluster need not wait out an election timeout), and
    /// step down. The node never campaigns again unless a later configuration makes it a voter.
    fn step_down_removed(&self, s: &mut Shared, out: &mut Outputs) -> StepDown {
        let last = s.log.last_index();
        let successor = self
            .peers
            .iter()
            .filter(|p| p.match_index == last && s.membership.is_voter(p.id))
            .map(|p| p.id)
            .next();
        if let Some(to) = successor {
            s.send(to, MessageBody::TimeoutNow, out);
        }
        s.stats.removed_step_downs += 1;
        StepDown
    }

    /// The configuration in force changed: replicate to new members, stop tracking removed ones,
    /// and drop a transfer to a node that no longer votes.
    pub(crate) fn track_members(&mut self, s: &Shared) {
        let membership = &s.membership;
        self.peers.retain(|p| membership.contains(p.id));
        for p in &mut self.peers {
            p.learner = !membership.is_voter(p.id);
        }
        let next = s.log.last_index();
        for id in membership.members() {
            if id != s.id && !self.peers.iter().any(|p| p.id == id) {
                // Cannot overflow: members() yields at most MAX_MEMBERS ids.
                let _ = self
                    .peers
                    .push(Progress::new(id, !membership.is_voter(id), next));
            }
        }
        if self
            .transfer
            .is_some_and(|t| !membership.is_voter(t.target()))
        {
            self.transfer = None;
        }
    }
}
