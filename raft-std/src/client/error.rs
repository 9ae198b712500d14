//! [`RequestError`]: why a request (a proposal, a read, a leadership transfer, a membership
//! change, a status call) did not succeed, what became of it ([`Outcome`]) and whether and where
//! to try again ([`Retry`]).

use std::fmt;

use raft_core::{NodeId, Refusal};

use crate::error::NodeStopped;

/// Why a request did not succeed.
///
/// Every variant falls in one of three [`Outcome`]s, and says once where to go next
/// ([`RequestError::retry`]):
///
/// | variant | outcome | retry |
/// | --- | --- | --- |
/// | [`NotLeader`](Self::NotLeader) | not applied | at the leader named, or elsewhere |
/// | [`LeaderChanged`](Self::LeaderChanged) | not applied | again, after a pause |
/// | [`Stopped`](Self::Stopped) | not applied | elsewhere |
/// | [`Timeout`](Self::Timeout) | not applied (reads and calls only) | elsewhere |
/// | [`Refused`](Self::Refused) | refused | again later if the refusal is temporary, else never |
/// | [`Uncertain`](Self::Uncertain) | unknown | never (unless the write carries a session) |
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RequestError {
    /// This node is not the leader; `leader` is the one it knows of. Nothing was done.
    NotLeader {
        /// The leader this node believes in, to retry at.
        leader: Option<NodeId>,
    },
    /// Leadership changed before the request finished: a proposal whose log entry a new leader
    /// replaced, or a read whose leadership could not be confirmed. Nothing was applied.
    LeaderChanged,
    /// The node is not running, and never acted on the request (or the request only reads).
    Stopped(NodeStopped),
    /// A request that changes nothing (a read, a status call) got no answer in time.
    Timeout,
    /// The core refused it (see [`Refusal`]): nothing was done.
    Refused(Refusal),
    /// The outcome is not known: the write may have been applied, or may still be.
    Uncertain(Uncertainty),
}

/// Why a write's outcome is not known.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Uncertainty {
    /// It was appended to the log but not applied before its deadline. It may still commit.
    TimedOut,
    /// The node stopped after appending it.
    NodeStopped(NodeStopped),
    /// The node replaced its state with a snapshot from the leader that covers the write's log
    /// index, so it cannot tell whether the write made it.
    CoveredBySnapshot,
}

/// What became of a request that failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// It was not applied and never will be: safe to send again, here or elsewhere.
    NotApplied,
    /// It may or may not have been applied (or may still be). Sending it again may apply it
    /// twice, unless it carries a session (see [`Session`](super::Session)), which makes the
    /// retry harmless.
    Unknown,
    /// The core refused it; nothing was done. [`RequestError::retry`] says whether the refusal
    /// is temporary.
    Refused,
}

/// Where to send a failed request next (see [`RequestError::retry`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Retry {
    /// At this node, which leads (or is believed to).
    At(NodeId),
    /// At the same node again, after a pause (a leadership change or a transfer is settling).
    Again,
    /// At another node (this one is stopped, unresponsive or knows no leader), after a pause.
    Elsewhere,
    /// Not at all: the request is refused for good, or its outcome is unknown.
    Never,
}

impl RequestError {
    /// What became of the request.
    #[must_use]
    pub const fn outcome(&self) -> Outcome {
        match self {
            Self::NotLeader { .. } | Self::LeaderChanged | Self::Stopped(_) | Self::Timeout => {
                Outcome::NotApplied
            }
            Self::Refused(_) => Outcome::Refused,
            Self::Uncertain(_) => Outcome::Unknown,
        }
    }

    /// Where to try again, if at all. An [`Outcome::Unknown`] answers [`Retry::Never`]: only a
    /// write that carries a session may be sent again, and then to any node (the router takes
    /// that into account: [`Router::failed`](super::Router::failed)).
    #[must_use]
    pub const fn retry(&self) -> Retry {
        match self {
            Self::NotLeader { leader: Some(l) } => Retry::At(*l),
            Self::NotLeader { leader: None } | Self::Stopped(_) | Self::Timeout => Retry::Elsewhere,
            Self::LeaderChanged => Retry::Again,
            Self::Refused(r) if refusal_is_temporary(r) => Retry::Again,
            Self::Refused(_) | Self::Uncertain(_) => Retry::Never,
        }
    }

    /// The error a request gets from a core refusal: [`Refusal::NotLeader`] becomes
    /// [`RequestError::NotLeader`], the others [`RequestError::Refused`].
    #[must_use]
    pub const fn from_refusal(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotLeader { leader } => Self::NotLeader { leader },
            r => Self::Refused(r),
        }
    }
}

/// Whether a refusal goes away by itself: a transfer ends, a membership change finishes, waiting
/// reads are served, a learner being promoted catches up, a leader's read lease runs out.
const fn refusal_is_temporary(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::TransferInProgress
            | Refusal::ChangePending
            | Refusal::TooManyReads
            | Refusal::NotCaughtUp
            | Refusal::InLease
    )
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader { leader: Some(l) } => write!(f, "not the leader; node {l} is"),
            Self::NotLeader { leader: None } => f.write_str("not the leader; no leader known"),
            Self::LeaderChanged => f.write_str("leadership changed; not applied, retry"),
            Self::Stopped(s) => s.fmt(f),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Refused(r) => write!(f, "refused: {r}"),
            Self::Uncertain(u) => u.fmt(f),
        }
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Stopped(s) | Self::Uncertain(Uncertainty::NodeStopped(s)) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Uncertainty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimedOut => f.write_str("outcome unknown: timed out after it was appended"),
            Self::NodeStopped(s) => write!(f, "outcome unknown: {s} after it was appended"),
            Self::CoveredBySnapshot => {
                f.write_str("outcome unknown: covered by a snapshot from the leader")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::new(n).unwrap_or(NodeId::MIN)
    }

    #[test]
    fn every_error_says_its_outcome_and_retry() {
        let stopped = NodeStopped { cause: None };
        let cases = [
            (
                RequestError::NotLeader {
                    leader: Some(id(2)),
                },
                Outcome::NotApplied,
                Retry::At(id(2)),
            ),
            (
                RequestError::NotLeader { leader: None },
                Outcome::NotApplied,
                Retry::Elsewhere,
            ),
            (
                RequestError::LeaderChanged,
                Outcome::NotApplied,
                Retry::Again,
            ),
            (
                RequestError::Stopped(stopped.clone()),
                Outcome::NotApplied,
                Retry::Elsewhere,
            ),
            (RequestError::Timeout, Outcome::NotApplied, Retry::Elsewhere),
            (
                RequestError::Refused(Refusal::TransferInProgress),
                Outcome::Refused,
                Retry::Again,
            ),
            (
                RequestError::Refused(Refusal::ChangePending),
                Outcome::Refused,
                Retry::Again,
            ),
            (
                RequestError::Refused(Refusal::TooLarge),
                Outcome::Refused,
                Retry::Never,
            ),
            (
                RequestError::Uncertain(Uncertainty::TimedOut),
                Outcome::Unknown,
                Retry::Never,
            ),
            (
                RequestError::Uncertain(Uncertainty::NodeStopped(stopped)),
                Outcome::Unknown,
                Retry::Never,
            ),
            (
                RequestError::Uncertain(Uncertainty::CoveredBySnapshot),
                Outcome::Unknown,
                Retry::Never,
            ),
        ];
        for (error, outcome, retry) in cases {
            assert_eq!(error.outcome(), outcome, "{error}");
            assert_eq!(error.retry(), retry, "{error}");
        }
    }

    #[test]
    fn a_not_leader_refusal_becomes_not_leader() {
        let e = RequestError::from_refusal(Refusal::NotLeader {
            leader: Some(id(3)),
        });
        assert!(matches!(e, RequestError::NotLeader { leader: Some(l) } if l == id(3)));
        let e = RequestError::from_refusal(Refusal::TooLarge);
        assert!(matches!(e, RequestError::Refused(Refusal::TooLarge)));
    }
}
