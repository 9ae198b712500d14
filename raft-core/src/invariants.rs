//! Internal consistency checks, run by the simulator and the fuzzers after every step.

use rand_core::Rng;

use crate::node::Node;
use crate::status::Role;
use crate::types::Index;

/// A broken internal invariant: a bug in the core.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InvariantViolation(pub &'static str);

impl core::fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invariant violated: {}", self.0)
    }
}

fn check(ok: bool, what: &'static str) -> Result<(), InvariantViolation> {
    if ok {
        Ok(())
    } else {
        Err(InvariantViolation(what))
    }
}

impl<R: Rng> Node<R> {
    /// Checks the node's internal invariants.
    ///
    /// # Errors
    /// The first invariant found broken.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let last = self.log.last();
        check(
            self.commit <= last.index,
            "commit index past the last entry",
        )?;
        check(
            self.applied <= self.emitted,
            "applied past what was handed out",
        )?;
        check(
            self.emitted <= self.commit,
            "handed out an uncommitted entry",
        )?;
        check(
            self.emitted <= self.log.persisted(),
            "handed out an entry not durable",
        )?;
        check(
            self.log.persisted() <= last.index,
            "persisted past the last entry",
        )?;
        check(last.term <= self.term, "log term above the current term")?;
        check(
            self.commit >= self.log.base().index,
            "commit below the snapshot",
        )?;
        let mut prev = self.log.base();
        for e in self.log.iter() {
            check(e.id.index == Index(prev.index.0 + 1), "log not contiguous")?;
            check(e.id.term >= prev.term, "log terms decrease")?;
            prev = e.id;
        }
        let (in_log, index) = self.membership_as_of(last.index);
        check(
            in_log == self.membership && index == self.config_index,
            "configuration in force is not the latest in the log",
        )?;
        check(
            self.durability.withheld_len() == 0 || self.durability.pending_len() > 0,
            "a response is withheld with no write pending",
        )?;
        match self.role {
            Role::Leader => {
                check(
                    self.leader == Some(self.id),
                    "leader does not know itself as leader",
                )?;
                check(self.vote == Some(self.id), "leader did not vote for itself")?;
                let own = usize::from(self.membership.contains(self.id));
                check(
                    self.peers.len() + own == self.membership.members().count(),
                    "leader does not track every member",
                )?;
                for p in &self.peers {
                    check(
                        self.membership.contains(p.id)
                            && p.learner != self.membership.is_voter(p.id),
                        "leader tracks a non-member, or a voter as a learner",
                    )?;
                    check(
                        p.match_index <= last.index,
                        "match index past the leader's log",
                    )?;
                    check(p.match_index < p.next, "next index not above match index")?;
                }
            }
            Role::Candidate => {
                check(
                    self.vote == Some(self.id),
                    "candidate did not vote for itself",
                )?;
                check(self.peers.is_empty(), "candidate tracks progress")?;
            }
            Role::Follower | Role::PreCandidate => {
                check(self.peers.is_empty(), "non-leader tracks progress")?;
                check(self.transfer.is_none(), "non-leader transfers leadership")?;
            }
        }
        Ok(())
    }
}
