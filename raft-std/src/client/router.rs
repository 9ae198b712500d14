//! [`Router`]: which node to send a request to, and where to go after a failure. Sans-IO: it
//! does no I/O, sleeps nowhere and reads no clock. Its caller sends, waits and keeps the
//! deadline; the in-process cluster, the `raft-kv` server's forwarding and the demo's clients
//! all drive the same one.

use std::time::Duration;

use raft_core::NodeId;

use super::error::{Outcome, RequestError, Retry};

/// What to do next with a request that failed (see [`Router::failed`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Route {
    /// Send it to this node now.
    Now(NodeId),
    /// Send it to this node after waiting this long.
    After(Duration, NodeId),
    /// Give up: report the error to the caller.
    GiveUp,
}

/// Knows the nodes of a cluster and which one leads, as far as answers have told.
///
/// ```
/// use raft_core::NodeId;
/// use raft_std::client::{RequestError, Route, Router};
///
/// let n = |i| NodeId::new(i).unwrap();
/// let mut router = Router::new([n(1), n(2), n(3)]);
/// assert_eq!(router.target(), Some(n(1)));
/// // Node 1 says node 3 leads: go there at once, and remember it.
/// let route = router.failed(n(1), &RequestError::NotLeader { leader: Some(n(3)) }, false, 1);
/// assert_eq!(route, Route::Now(n(3)));
/// router.succeeded(n(3));
/// assert_eq!(router.target(), Some(n(3)));
/// ```
#[derive(Clone, Debug)]
pub struct Router {
    /// Every node requests may go to, ascending.
    nodes: Vec<NodeId>,
    /// The node believed to lead.
    leader: Option<NodeId>,
    /// How long to wait before a retry that needs the cluster to settle first.
    pause: Duration,
}

impl Router {
    /// A router over `nodes`, with no leader known yet and a pause of 10 ms (one default
    /// tick) before retries that wait.
    pub fn new(nodes: impl IntoIterator<Item = NodeId>) -> Self {
        let mut nodes: Vec<NodeId> = nodes.into_iter().collect();
        nodes.sort_unstable();
        nodes.dedup();
        Self {
            nodes,
            leader: None,
            pause: Duration::from_millis(10),
        }
    }

    /// The same router with another pause before waiting retries.
    #[must_use]
    pub const fn with_pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// The nodes, ascending.
    #[must_use]
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Adds a node (one that joined the cluster).
    pub fn add(&mut self, id: NodeId) {
        if let Err(at) = self.nodes.binary_search(&id) {
            self.nodes.insert(at, id);
        }
    }

    /// Removes a node (one that left the cluster, or that this client must not use).
    pub fn remove(&mut self, id: NodeId) {
        self.nodes.retain(|&n| n != id);
        if self.leader == Some(id) {
            self.leader = None;
        }
    }

    /// The node believed to lead.
    #[must_use]
    pub const fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Sets the node believed to lead, learnt some other way (a status call, a node's own view).
    /// A node the router does not know is added.
    pub fn set_leader(&mut self, leader: Option<NodeId>) {
        if let Some(l) = leader {
            self.add(l);
        }
        self.leader = leader;
    }

    /// Where to send a new request: the leader if one is known, else the first node.
    #[must_use]
    pub fn target(&self) -> Option<NodeId> {
        self.leader.or_else(|| self.nodes.first().copied())
    }

    /// The node after `id` in turn (round to the first), for a request that must go elsewhere;
    /// `id` itself when it is the only node.
    #[must_use]
    pub fn next_after(&self, id: NodeId) -> Option<NodeId> {
        self.nodes
            .iter()
            .copied()
            .find(|&n| n > id)
            .or_else(|| self.nodes.first().copied())
    }

    /// `at` answered a request: it leads (or serves, for a node that forwards).
    pub fn succeeded(&mut self, at: NodeId) {
        self.set_leader(Some(at));
    }

    /// `at` could not be reached at all (a refused connection, a dropped one before the answer):
    /// forget it as leader and move on. A write whose connection dropped after it was sent has an
    /// unknown outcome, though: pass that to [`Router::failed`] as
    /// [`RequestError::Uncertain`] instead.
    pub fn unreachable(&mut self, at: NodeId) -> Route {
        if self.leader == Some(at) {
            self.leader = None;
        }
        match self.next_after(at) {
            Some(next) => Route::After(self.pause, next),
            None => Route::GiveUp,
        }
    }

    /// `at` answered a request with `error`; `tries` is how many times the request has been
    /// sent so far (1 after the first). Returns where to go next.
    ///
    /// A request whose outcome is unknown is given up, unless `idempotent` says that sending it
    /// again cannot apply it twice (a read, or a write that carries a session): then it goes to
    /// the node believed to lead, or elsewhere. Redirects are followed at once for the first
    /// `nodes` tries; past that (nodes that disagree on the leader while an election settles)
    /// each waits a pause.
    pub fn failed(
        &mut self,
        at: NodeId,
        error: &RequestError,
        idempotent: bool,
        tries: u32,
    ) -> Route {
        let mut retry = error.retry();
        if error.outcome() == Outcome::Unknown && idempotent {
            retry = Retry::Elsewhere;
        }
        match retry {
            Retry::Never => Route::GiveUp,
            Retry::At(leader) if leader != at => {
                self.set_leader(Some(leader));
                let settled = usize::try_from(tries).unwrap_or(usize::MAX) <= self.nodes.len();
                if settled {
                    Route::Now(leader)
                } else {
                    Route::After(self.pause, leader)
                }
            }
            // A node naming itself as the leader it is not: wait for it to settle.
            Retry::At(_) | Retry::Again => Route::After(self.pause, at),
            Retry::Elsewhere => {
                if self.leader == Some(at) {
                    self.leader = None;
                }
                match self
                    .leader
                    .filter(|&l| l != at)
                    .or_else(|| self.next_after(at))
                {
                    Some(next) => Route::After(self.pause, next),
                    None => Route::GiveUp,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use raft_core::Refusal;

    use super::*;
    use crate::client::error::Uncertainty;
    use crate::error::NodeStopped;

    fn n(i: u64) -> NodeId {
        NodeId::new(i).unwrap_or(NodeId::MIN)
    }

    fn router() -> Router {
        Router::new([n(3), n(1), n(2), n(2)])
    }

    const PAUSE: Duration = Duration::from_millis(10);

    #[test]
    fn nodes_are_sorted_and_unique_and_the_first_is_tried_first() {
        let r = router();
        assert_eq!(r.nodes(), &[n(1), n(2), n(3)]);
        assert_eq!(r.target(), Some(n(1)));
        assert_eq!(r.next_after(n(1)), Some(n(2)));
        assert_eq!(r.next_after(n(3)), Some(n(1)));
        assert_eq!(Router::new([]).target(), None);
    }

    #[test]
    fn a_redirect_is_followed_at_once_then_with_a_pause() {
        let mut r = router();
        let e = RequestError::NotLeader { leader: Some(n(2)) };
        assert_eq!(r.failed(n(1), &e, false, 1), Route::Now(n(2)));
        assert_eq!(r.leader(), Some(n(2)));
        assert_eq!(r.failed(n(1), &e, false, 3), Route::Now(n(2)));
        assert_eq!(r.failed(n(1), &e, false, 4), Route::After(PAUSE, n(2)));
    }

    #[test]
    fn no_leader_known_moves_on_after_a_pause() {
        let mut r = router();
        r.set_leader(Some(n(2)));
        let e = RequestError::NotLeader { leader: None };
        assert_eq!(r.failed(n(2), &e, false, 1), Route::After(PAUSE, n(3)));
        assert_eq!(r.leader(), None);
    }

    #[test]
    fn a_stopped_node_is_skipped_for_the_known_leader() {
        let mut r = router();
        r.set_leader(Some(n(3)));
        let e = RequestError::Stopped(NodeStopped { cause: None });
        assert_eq!(r.failed(n(1), &e, false, 1), Route::After(PAUSE, n(3)));
    }

    #[test]
    fn temporary_refusals_and_leader_changes_wait_at_the_same_node() {
        let mut r = router();
        for e in [
            RequestError::LeaderChanged,
            RequestError::Refused(Refusal::TransferInProgress),
            RequestError::Refused(Refusal::ChangePending),
            RequestError::Refused(Refusal::TooManyReads),
            RequestError::Refused(Refusal::InLease),
        ] {
            assert_eq!(
                r.failed(n(2), &e, false, 1),
                Route::After(PAUSE, n(2)),
                "{e}"
            );
        }
    }

    #[test]
    fn permanent_refusals_give_up() {
        let mut r = router();
        let e = RequestError::Refused(Refusal::TooLarge);
        assert_eq!(r.failed(n(1), &e, true, 1), Route::GiveUp);
    }

    #[test]
    fn an_unknown_outcome_is_retried_only_when_idempotent() {
        let mut r = router();
        r.set_leader(Some(n(1)));
        let e = RequestError::Uncertain(Uncertainty::TimedOut);
        assert_eq!(r.failed(n(1), &e, false, 1), Route::GiveUp);
        assert_eq!(r.leader(), Some(n(1)), "giving up forgets nothing");
        assert_eq!(r.failed(n(1), &e, true, 1), Route::After(PAUSE, n(2)));
    }

    #[test]
    fn an_unreachable_leader_is_forgotten() {
        let mut r = router();
        r.set_leader(Some(n(3)));
        assert_eq!(r.unreachable(n(3)), Route::After(PAUSE, n(1)));
        assert_eq!(r.leader(), None);
        assert_eq!(r.target(), Some(n(1)));
    }

    #[test]
    fn membership_changes_update_the_nodes() {
        let mut r = router();
        r.set_leader(Some(n(2)));
        r.remove(n(2));
        assert_eq!(r.leader(), None);
        assert_eq!(r.nodes(), &[n(1), n(3)]);
        r.set_leader(Some(n(5)));
        assert_eq!(r.nodes(), &[n(1), n(3), n(5)]);
    }
}
