//! CheckQuorum (Raft thesis §6.2): a leader that has not heard from a quorum within an election
//! timeout steps down, so that a leader cut off by a partition stops serving reads and taking
//! proposals that cannot commit, and so that followers' leases (which make them ignore vote
//! requests) are backed by a leader that is really alive.

use crate::membership::Membership;
use crate::progress::Progress;
use crate::types::NodeId;

/// Ends one CheckQuorum period of leader `id`. Returns whether a quorum (the leader included)
/// was heard from during it; the next period starts with nobody heard from yet. A peer counts
/// as heard from if any response of it arrived: appends, heartbeats, snapshots. (With
/// CheckQuorum off the periods still run: they bound the leader's lease.)
pub(crate) fn period_ends(id: NodeId, membership: &Membership, peers: &mut [Progress]) -> bool {
    let active =
        membership.has_quorum(|m| m == id || peers.iter().any(|p| p.id == m && p.recent_active));
    for p in peers {
        p.recent_active = false;
    }
    active
}
