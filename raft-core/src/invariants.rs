//! Internal consistency checks, run by the simulator and the fuzzers after every step.

use crate::role::RoleState;
use crate::shared::Shared;
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

/// Checks a node's internal invariants: the first found broken.
pub(crate) fn check_node(s: &Shared, role: &RoleState) -> Result<(), InvariantViolation> {
    let last = s.log.last();
    check(s.commit <= last.index, "commit index past the last entry")?;
    check(s.applied <= s.emitted, "applied past what was handed out")?;
    check(s.emitted <= s.commit, "handed out an uncommitted entry")?;
    check(
        s.emitted <= s.log.persisted(),
        "handed out an entry not durable",
    )?;
    check(
        s.log.persisted() <= last.index,
        "persisted past the last entry",
    )?;
    check(last.term <= s.term, "log term above the current term")?;
    check(s.commit >= s.log.base().index, "commit below the snapshot")?;
    let mut prev = s.log.base();
    for e in s.log.iter() {
        check(e.id.index == Index(prev.index.0 + 1), "log not contiguous")?;
        check(e.id.term >= prev.term, "log terms decrease")?;
        prev = e.id;
    }
    let (in_log, index) = s.membership_as_of(last.index);
    check(
        in_log == s.membership && index == s.config_index,
        "configuration in force is not the latest in the log",
    )?;
    check(
        s.durability.withheld_len() == 0 || s.durability.pending_len() > 0,
        "a response is withheld with no write pending",
    )?;
    match role {
        RoleState::Leader(l) => {
            check(
                s.leader == Some(s.id),
                "leader does not know itself as leader",
            )?;
            check(s.vote == Some(s.id), "leader did not vote for itself")?;
            let own = usize::from(s.membership.contains(s.id));
            check(
                l.peers.len() + own == s.membership.members().count(),
                "leader does not track every member",
            )?;
            for p in &l.peers {
                check(
                    s.membership.contains(p.id) && p.learner != s.membership.is_voter(p.id),
                    "leader tracks a non-member, or a voter as a learner",
                )?;
                check(
                    p.match_index <= last.index,
                    "match index past the leader's log",
                )?;
                check(p.match_index < p.next, "next index not above match index")?;
            }
        }
        RoleState::Candidate(_) => {
            check(s.vote == Some(s.id), "candidate did not vote for itself")?;
        }
        // Peers, reads and a transfer exist only in a leader's state: nothing to check.
        RoleState::Follower | RoleState::PreCandidate(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    #[test]
    fn a_violation_says_which_invariant() {
        let v = InvariantViolation("log terms decrease");
        assert_eq!(v.to_string(), "invariant violated: log terms decrease");
    }
}
