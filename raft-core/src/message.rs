//! The messages nodes exchange. They derive serde, so any serde format (postcard in this
//! workspace) carries them; the core treats every received message as untrusted.

use alloc::boxed::Box;

use serde::{Deserialize, Serialize};

use crate::restore::SnapshotMeta;
use crate::types::{Entries, Index, LogId, NodeId, Payload, Term};

mod shared_decode;

/// A message between two nodes.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The addressee.
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term the sender would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of message.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MessageBody {
    /// RequestVote (Raft §5.2), or a pre-vote probe (thesis §9.6) when `pre_vote` is set.
    VoteRequest {
        /// The candidate's last log entry, for the election restriction (§5.4.1).
        last_log: LogId,
        /// A pre-vote: the receiver answers as if asked but changes no state.
        pre_vote: bool,
        /// Sent on a leader's behalf during a leadership transfer: receivers grant it even if
        /// they heard from the leader recently.
        leader_transfer: bool,
    },
    /// The answer to a `VoteRequest`.
    VoteResponse {
        /// Whether the vote was granted.
        granted: bool,
        /// Whether it answers a pre-vote.
        pre_vote: bool,
    },
    /// AppendEntries (Raft §5.3): entries after `prev`, and the leader's commit index.
    AppendEntries {
        /// The entry just before `entries`, which the follower must already hold.
        prev: LogId,
        /// The entries to append, contiguous after `prev`; empty to carry only the commit index.
        /// One entry is stored inline, so an unbatched append costs no allocation.
        entries: Entries,
        /// The leader's commit index.
        commit: Index,
    },
    /// The answer to an `AppendEntries`.
    AppendResponse {
        /// What the follower did with it.
        outcome: AppendOutcome,
    },
    /// A leader's heartbeat: it asserts leadership and carries the commit index, capped at what
    /// the follower is known to hold, and the newest ReadIndex round to confirm.
    Heartbeat {
        /// The commit index, at most the follower's known match index.
        commit: Index,
        /// The ReadIndex round this heartbeat confirms (0 for none).
        read_round: u64,
    },
    /// The answer to a heartbeat, echoing its ReadIndex round. It goes out at once, ahead of
    /// acknowledgements still waiting for the follower's disk.
    HeartbeatResponse {
        /// The round being confirmed.
        read_round: u64,
        /// The follower has writes not yet durable: acknowledgements it owes may still come,
        /// so a lack of progress is not (yet) a sign that something was lost.
        writes_pending: bool,
    },
    /// Leadership transfer: the leader tells its chosen successor to campaign at once.
    TimeoutNow,
    /// InstallSnapshot (Raft §7): one chunk of the leader's snapshot, for a follower that needs
    /// entries the leader has compacted away.
    InstallSnapshot {
        /// The snapshot's last entry and configuration.
        meta: Box<SnapshotMeta>,
        /// Where `data` starts in the snapshot.
        offset: u64,
        /// The chunk.
        data: Payload,
        /// This is the last chunk.
        done: bool,
    },
    /// The answer to an `InstallSnapshot` chunk.
    SnapshotResponse {
        /// The snapshot being transferred.
        snapshot: LogId,
        /// How many bytes of it the follower holds durably: the offset to send next.
        received: u64,
        /// The follower has installed it (or already held everything it covers).
        installed: bool,
    },
    /// A follower asks its leader for the index at which to serve a read (etcd's
    /// `MsgReadIndex`, Raft thesis §6.4): the leader answers once a heartbeat round sent after
    /// the request arrived is confirmed, with its commit index of when the request arrived.
    ReadIndexRequest {
        /// The follower's number for the request, echoed in the answer.
        request: u64,
    },
    /// The answer to a `ReadIndexRequest`.
    ReadIndexResponse {
        /// The request answered.
        request: u64,
        /// The index to serve the read at once applied; `None`: refused (not the leader, too
        /// many reads, or leadership lost), and the follower aborts the read.
        index: Option<Index>,
    },
    /// The leader's commit index, for a follower known to hold every entry up to it (its
    /// acknowledged match index is at or past it): unlike an empty `AppendEntries`, it needs
    /// no answer. A leader sends one when its commit index advances and no append is going to
    /// that follower to carry it, so that a lone proposal costs two messages per follower, not
    /// four. It names the entry, not only its index: the follower adopts it only if its log
    /// holds that entry, and so (Log Matching) everything before it as the leader has it.
    /// (Added after the other kinds, so their encodings are unchanged; a node of an earlier
    /// version cannot decode it.)
    Commit {
        /// The entry at the leader's commit index, never past the follower's acknowledged match
        /// index.
        commit: LogId,
    },
}

/// What a follower did with an `AppendEntries`.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AppendOutcome {
    /// The follower's log matches the leader's up to and including `match_index`, durably.
    Accepted {
        /// The last index known to match.
        match_index: Index,
    },
    /// The follower has no entry matching the request's `prev` at index `rejected`. `hint` is
    /// the last entry of the follower's log at or before `rejected` whose term is at most the
    /// term the leader expected: the leader can skip a whole term per round trip (Raft §5.3).
    Conflict {
        /// The `prev` index of the rejected request.
        rejected: Index,
        /// Where the follower suggests probing next. A hint of term 0 names only an index (a
        /// follower that does not say which term it holds there): the leader probes at that
        /// index, without skipping further back by term.
        hint: LogId,
    },
    /// The request came from an older term; the header carries the follower's newer term, which
    /// makes a deposed leader step down.
    Outdated,
}

impl Message {
    /// Whether the message vouches for state that must be durable before it is sent: a granted
    /// vote (the vote is recorded), an accepted append (the entries are on disk), a snapshot
    /// transfer's progress (the chunks are). The core withholds these until the writes before
    /// them are acknowledged; every other response goes out at once, because what it says (a
    /// term, a refusal, a conflict's hint, a heartbeat's confirmation) holds at the instant it
    /// is sent whatever a crash later loses.
    #[must_use]
    pub fn vouches_for_durable_state(&self) -> bool {
        matches!(
            self.body,
            MessageBody::VoteResponse {
                granted: true,
                pre_vote: false,
            } | MessageBody::AppendResponse {
                outcome: AppendOutcome::Accepted { .. }
            } | MessageBody::SnapshotResponse { .. }
        )
    }

    /// Whether the message answers a request.
    #[must_use]
    pub fn is_response(&self) -> bool {
        matches!(
            self.body,
            MessageBody::VoteResponse { .. }
                | MessageBody::AppendResponse { .. }
                | MessageBody::HeartbeatResponse { .. }
                | MessageBody::SnapshotResponse { .. }
                | MessageBody::ReadIndexResponse { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Membership;

    fn message(body: MessageBody) -> Message {
        Message {
            from: NodeId::MIN,
            to: NodeId::new(2).unwrap(),
            term: Term(3),
            body,
        }
    }

    /// The answers (vote, append, heartbeat and snapshot responses) are responses; the
    /// requests and TimeoutNow are not. The node holds back responses until the writes they
    /// depend on are durable, so misreading one would send an answer it could not stand by.
    #[test]
    fn only_the_answers_are_responses() {
        let meta = SnapshotMeta {
            last: LogId::new(2, 5),
            membership: Membership::new(&[NodeId::MIN]).unwrap(),
        };
        let requests = [
            MessageBody::VoteRequest {
                last_log: LogId::new(2, 5),
                pre_vote: false,
                leader_transfer: false,
            },
            MessageBody::AppendEntries {
                prev: LogId::new(2, 5),
                entries: Entries::new(),
                commit: Index(5),
            },
            MessageBody::Heartbeat {
                commit: Index(5),
                read_round: 1,
            },
            MessageBody::TimeoutNow,
            MessageBody::Commit {
                commit: LogId::new(2, 5),
            },
            MessageBody::InstallSnapshot {
                meta: Box::new(meta),
                offset: 0,
                data: Payload::empty(),
                done: true,
            },
        ];
        let responses = [
            MessageBody::VoteResponse {
                granted: true,
                pre_vote: false,
            },
            MessageBody::AppendResponse {
                outcome: AppendOutcome::Outdated,
            },
            MessageBody::HeartbeatResponse {
                read_round: 1,
                writes_pending: false,
            },
            MessageBody::SnapshotResponse {
                snapshot: LogId::new(2, 5),
                received: 0,
                installed: true,
            },
        ];
        for body in requests {
            let m = message(body);
            assert!(!m.is_response(), "{m:?}");
        }
        for body in responses {
            let m = message(body);
            assert!(m.is_response(), "{m:?}");
        }
    }
}
