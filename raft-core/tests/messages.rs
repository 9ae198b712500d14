//! Messages per committed entry: what the leader sends when its commit index moves.

#![allow(dead_code)] // the shared harness has helpers these tests do not use

mod common;

use common::{Harness, Out, accepted};
use raft_core::{Input, MessageBody, Payload, WriteId};

const THREE: &[u64] = &[1, 2, 3];

/// AppendEntries without entries (the commit index alone) sent to follower `to`.
fn commit_only(out: &Out, to: u64) -> usize {
    out.sent_to(to)
        .iter()
        .filter(
            |m| matches!(&m.body, MessageBody::AppendEntries { entries, .. } if entries.is_empty()),
        )
        .count()
}

/// A leader whose own writes complete one at a time, each raising the commit index by one
/// (follower 2 holds everything, follower 3 is silent), tells follower 2 once, not once per
/// write: later advances wait for the next tick, which sends one message for all of them.
#[test]
fn a_leader_whose_writes_complete_one_by_one_sends_one_commit_message_per_tick_not_per_write() {
    let mut h = Harness::leader(1, THREE);
    let term = h.node.term().0;
    let mut writes: Vec<WriteId> = Vec::new();
    for _ in 0..11 {
        let out = h.step(Input::Propose(Payload::new(b"x")));
        writes.extend(out.writes.iter().map(|w| w.id));
    }
    assert_eq!(writes.len(), 11, "one write per proposal");
    let last = h.node.last_log().index.0;
    let out = h.recv(accepted(2, 1, term, last));
    assert_eq!(commit_only(&out, 2), 0);

    let mut out = Out::default();
    for w in writes {
        out.merge(h.step(Input::Persisted(w)));
    }
    assert_eq!(h.node.commit_index().0, last, "every entry committed");
    assert_eq!(
        commit_only(&out, 2),
        1,
        "11 commit advances, one message: {:?}",
        out.sent_to(2)
    );

    // The next tick carries the rest: follower 2 learns the final commit index.
    let out = h.step(Input::Tick);
    let commits: Vec<u64> = out
        .sent_to(2)
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries { commit, .. } => Some(commit.0),
            _ => None,
        })
        .collect();
    assert_eq!(
        commits,
        [last],
        "one message at the tick, with the final commit index"
    );
    // Nothing more is owed: the tick after sends no commit-only message.
    assert_eq!(commit_only(&h.step(Input::Tick), 2), 0);
}
