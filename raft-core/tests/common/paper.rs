//! What the paper_*.rs tests (the Raft paper's rules, one test each) share: the clusters of three
//! and five, nodes set up as a follower or a pipelining leader, and the messages they exchange.

use super::{Harness, accepted, heartbeat, id, msg, restored};
use raft_core::{Config, LogId, MessageBody, Payload};

pub(crate) const THREE: &[u64] = &[1, 2, 3];

pub(crate) const FIVE: &[u64] = &[1, 2, 3, 4, 5];

pub(crate) fn no_pre_vote(c: &mut Config) {
    c.pre_vote = false;
}

/// Node 2 of three, a follower in `term` with log `terms`, that has heard from leader 1.
pub(crate) fn follower_of_1(term: u64, terms: &[u64]) -> Harness {
    let mut h = Harness::restored(2, restored(THREE, term, None, terms, 0));
    h.recv(heartbeat(1, 2, term, 0, 0));
    assert_eq!(h.node.leader(), Some(id(1)));
    h
}

/// A leader elected with `tweak`, its no-op committed and acknowledged by both followers, so both
/// are replicating (pipelining) with nothing in flight.
pub(crate) fn replicating_leader(tweak: impl FnOnce(&mut Config)) -> Harness {
    let mut h = Harness::with_config(1, THREE, tweak);
    h.elect();
    h.persist();
    h.recv(accepted(2, 1, 1, 1));
    h.recv(accepted(3, 1, 1, 1));
    h
}

/// The entries of each AppendEntries to 2 in `sends`, by index.
pub(crate) fn appends_to_2(sends: &[raft_core::Message]) -> Vec<Vec<u64>> {
    sends
        .iter()
        .filter(|m| m.to == id(2))
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries { entries, .. } => {
                Some(entries.iter().map(|e| e.id.index.0).collect())
            }
            _ => None,
        })
        .collect()
}

/// A complete snapshot from leader 1 of `term`, ending at `last`.
pub(crate) fn install_snapshot(to: u64, term: u64, last: LogId) -> raft_core::Message {
    msg(
        1,
        to,
        term,
        MessageBody::InstallSnapshot {
            meta: Box::new(raft_core::SnapshotMeta {
                last,
                membership: super::membership(THREE),
            }),
            offset: 0,
            data: Payload::new(b"state"),
            done: true,
        },
    )
}
