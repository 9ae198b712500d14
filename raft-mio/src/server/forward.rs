//! Forwarding between servers: a node that does not lead sends a client's request to the one
//! that does, over the peer connection, as application frames; the leader runs it on its own
//! node and sends the outcome back.
//!
//! The leader never forwards again: a request that reaches a node that no longer leads is
//! answered `NotLeader`, and the node it came from decides where to go next (with its
//! [`Router`](raft_std::client::Router)).

use std::sync::Arc;
use std::time::Duration;

use raft_core::{Change, NodeId, Refusal};
use raft_std::client::{Completion, RequestError, Uncertainty};
use raft_std::error::NodeStopped;
use raft_std::kv::{KvCommand, KvQuery, KvRequest, KvResponse};
use raft_std::runtime::RaftNode;
use serde::{Deserialize, Serialize};

use super::machine::ServerMachine;
use crate::transport::PeerNet;

/// An application frame between servers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ForwardFrame {
    /// Run this at the leader. `id` is the forwarding node's, echoed in the reply.
    Request {
        id: u64,
        timeout_ms: u64,
        body: ForwardBody,
    },
    /// The outcome of request `id`.
    Reply {
        id: u64,
        result: Result<Answer, WireError>,
    },
}

/// What a forwarded request asks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ForwardBody {
    /// Propose these bytes (an encoded, stamped `KvRequest`).
    Write(Vec<u8>),
    /// A linearizable read.
    Read(KvQuery),
    /// Hand leadership to this node.
    Transfer(NodeId),
    /// Change the membership by this one step.
    Change(Change),
    /// Record `addr` as node `id`'s peer address (through the log), then add it as a learner;
    /// refused if it is a member already.
    AddLearner { id: NodeId, addr: String },
}

/// What a request answers when it succeeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// The store's response.
    Kv(KvResponse),
    /// Done (a transfer started, a membership change appended).
    Done,
    /// Refused, for this reason (`-ERR` to the client).
    Refused(String),
}

/// A [`RequestError`] on the wire: the kind, which is all the forwarding node routes by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireError {
    NotLeader(Option<NodeId>),
    LeaderChanged,
    Stopped,
    Timeout,
    Refused(Refusal),
    Uncertain,
}

impl From<&RequestError> for WireError {
    fn from(e: &RequestError) -> Self {
        match e {
            RequestError::NotLeader { leader } => Self::NotLeader(*leader),
            RequestError::LeaderChanged => Self::LeaderChanged,
            RequestError::Stopped(_) => Self::Stopped,
            RequestError::Timeout => Self::Timeout,
            RequestError::Refused(r) => Self::Refused(*r),
            _ => Self::Uncertain,
        }
    }
}

impl WireError {
    /// The error as the forwarding node reports and routes it.
    pub(crate) fn into_request_error(self) -> RequestError {
        match self {
            Self::NotLeader(leader) => RequestError::NotLeader { leader },
            Self::LeaderChanged => RequestError::LeaderChanged,
            Self::Stopped => RequestError::Stopped(NodeStopped { cause: None }),
            Self::Timeout => RequestError::Timeout,
            Self::Refused(r) => RequestError::Refused(r),
            Self::Uncertain => RequestError::Uncertain(Uncertainty::TimedOut),
        }
    }
}

/// Encodes a frame for [`PeerNet::send_app`].
pub(crate) fn encode(frame: &ForwardFrame) -> Vec<u8> {
    // Cannot fail for these types; an empty frame is dropped by the receiver as malformed.
    postcard::to_allocvec(frame).unwrap_or_default()
}

/// Decodes a frame from a peer.
pub(crate) fn decode(bytes: &[u8]) -> Option<ForwardFrame> {
    match postcard::take_from_bytes::<ForwardFrame>(bytes) {
        Ok((frame, [])) => Some(frame),
        _ => None,
    }
}

/// Runs a step of membership change at `node` (which must lead): reads the membership in force,
/// asks for the change from it, and answers once the change is done: the target configuration
/// (after the joint one, when voters change) committed. Until then the cluster may still need
/// the nodes of the old configuration, so "+OK" must not come sooner.
pub(crate) fn change_membership(
    node: &RaftNode<ServerMachine>,
    change: Change,
    timeout: Duration,
    done: Completion<Answer>,
) {
    let node2 = node.clone();
    node.status_with(Completion::new(
        move |status: Result<raft_core::Status, RequestError>| match status {
            Ok(status) => match status.membership.with_changes(&[change]) {
                Ok(target) => {
                    let node3 = node2.clone();
                    let wanted = target.clone();
                    node2.change_membership_with(
                        target,
                        Completion::new(move |r| match r {
                            Ok(_) => wait_until_committed(node3, wanted, timeout, done),
                            Err(e) => done.complete(Err(e)),
                        }),
                    );
                }
                Err(e) => done.complete(Err(RequestError::Refused(Refusal::InvalidMembership(e)))),
            },
            Err(e) => done.complete(Err(e)),
        },
    ));
}

/// Answers `done` once `target` is the configuration in force and committed at `node`, or with
/// an unknown outcome if that does not happen within `timeout` (or `node` stops leading).
/// Polls from a thread of its own: membership changes are rare, and the node thread must not
/// wait.
fn wait_until_committed(
    node: RaftNode<ServerMachine>,
    target: raft_core::Membership,
    timeout: Duration,
    done: Completion<Answer>,
) {
    let spawned = std::thread::Builder::new()
        .name("raft-kv-membership".into())
        .spawn(move || {
            let deadline = std::time::Instant::now() + timeout;
            // The last index when the target was first seen in force: once that is committed,
            // so is the target's entry.
            let mut seen_at = None;
            let unknown = || RequestError::Uncertain(Uncertainty::TimedOut);
            loop {
                let status = match node.status() {
                    Ok(s) => s,
                    Err(e) => return done.complete(Err(e)),
                };
                if status.role != raft_core::Role::Leader {
                    return done.complete(Err(unknown()));
                }
                if seen_at.is_none() && status.membership == target {
                    seen_at = Some(status.last_log.index);
                }
                if seen_at.is_some_and(|at| status.commit >= at) {
                    return done.complete(Ok(Answer::Done));
                }
                if std::time::Instant::now() >= deadline {
                    return done.complete(Err(unknown()));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    // Without a thread the change still goes on; its outcome is unknown to the client.
    drop(spawned);
}

/// Where a read may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadAt {
    /// Only at the leader: a read that must follow writes sent to the leader (forwarded reads,
    /// and reads behind their connection's writes).
    Leader,
    /// Here, leader or follower (with follower reads on, a follower serves it at a read index
    /// its leader confirms).
    Here,
}

/// Runs `body` at `node` and calls `done` with the outcome.
pub(crate) fn run(
    node: &RaftNode<ServerMachine>,
    body: ForwardBody,
    reads: ReadAt,
    timeout: Duration,
    done: Completion<Answer>,
) {
    match body {
        ForwardBody::Write(bytes) => node.propose_with(
            bytes,
            timeout,
            Completion::new(move |r| done.complete(r.map(Answer::Kv))),
        ),
        ForwardBody::Read(query) => {
            let done = Completion::new(move |r: Result<_, _>| done.complete(r.map(Answer::Kv)));
            match reads {
                ReadAt::Leader => node.read_at_leader_with(query, timeout, done),
                ReadAt::Here => node.read_with(query, timeout, done),
            }
        }
        ForwardBody::Transfer(to) => node.transfer_leader_with(
            to,
            Completion::new(move |r| done.complete(r.map(|()| Answer::Done))),
        ),
        ForwardBody::Change(change) => change_membership(node, change, timeout, done),
        ForwardBody::AddLearner { id, addr } => add_learner(node, id, addr, timeout, done),
    }
}

/// Records `addr` for `id` through the log, so that every node (and every later leader)
/// accepts it, then adds it as a learner. A member is refused: its address is not rewritten.
fn add_learner(
    node: &RaftNode<ServerMachine>,
    id: NodeId,
    addr: String,
    timeout: Duration,
    done: Completion<Answer>,
) {
    let node2 = node.clone();
    node.status_with(Completion::new(
        move |status: Result<raft_core::Status, RequestError>| {
            let status = match status {
                Ok(s) => s,
                Err(e) => return done.complete(Err(e)),
            };
            if status.role != raft_core::Role::Leader {
                return done.complete(Err(RequestError::NotLeader {
                    leader: status.leader,
                }));
            }
            if status.membership.contains(id) {
                return done.complete(Ok(Answer::Refused(format!(
                    "node {id} is already a member"
                ))));
            }
            let record = KvRequest::unsessioned(KvCommand::SetPeer {
                id: id.get(),
                addr: Some(addr),
            });
            let node3 = node2.clone();
            node2.propose_with(
                record.encode(),
                timeout,
                Completion::new(move |r| match r {
                    Ok(_) => change_membership(&node3, Change::AddLearner(id), timeout, done),
                    Err(e) => done.complete(Err(e)),
                }),
            );
        },
    ));
}

/// Serves a request forwarded by `from`: runs it here and sends the outcome back.
pub(crate) fn serve(
    node: &RaftNode<ServerMachine>,
    net: &Arc<PeerNet>,
    from: NodeId,
    id: u64,
    timeout_ms: u64,
    body: ForwardBody,
) {
    let net = Arc::clone(net);
    // A forwarding node never waits longer than its own request timeout.
    let timeout = Duration::from_millis(timeout_ms.min(60_000));
    // A node forwards a read to the leader either because it serves none itself, or because
    // the read must follow a write it forwarded: only the leader may answer it.
    run(
        node,
        body,
        ReadAt::Leader,
        timeout,
        Completion::new(move |result| {
            let result = result.map_err(|e| WireError::from(&e));
            // The forwarding node gone or unreachable: it times the request out itself.
            let _ = net.send_app(from, encode(&ForwardFrame::Reply { id, result }));
        }),
    );
}
