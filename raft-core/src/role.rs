//! What a node holds in one role only. "Leader only" is a pattern match on [`RoleState`]: a
//! follower has no peers to update, a leader no votes to count, and leaving a role drops its
//! state.

use crate::election::Votes;
use crate::leader::Leadership;
use crate::status::Role;

/// The role a node is in, with the state that exists only in that role.
#[derive(Debug)]
// One per node, never in a collection: boxing the leader's state would only add an indirection
// to every leader step.
#[allow(clippy::large_enum_variant)]
pub(crate) enum RoleState {
    Follower,
    PreCandidate(Votes),
    Candidate(Votes),
    Leader(Leadership),
}

impl RoleState {
    /// The public name of the role.
    pub(crate) fn role(&self) -> Role {
        match self {
            Self::Follower => Role::Follower,
            Self::PreCandidate(_) => Role::PreCandidate,
            Self::Candidate(_) => Role::Candidate,
            Self::Leader(_) => Role::Leader,
        }
    }
}
