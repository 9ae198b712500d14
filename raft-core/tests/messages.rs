//! Messages per committed entry: what the leader sends when its commit index moves.

#![allow(dead_code)] // the shared harness has helpers these tests do not use

mod common;

use common::{Harness, Out, accepted, restored};
use raft_core::{Input, MessageBody, Payload, WriteId};

const THREE: &[u64] = &[1, 2, 3];

/// Messages that carry the commit index alone, sent to follower `to`: commit notices, and
/// AppendEntries without entries.
fn commit_only(out: &Out, to: u64) -> usize {
    out.sent_to(to)
        .iter()
        .filter(|m| match &m.body {
            MessageBody::AppendEntries { entries, .. } => entries.is_empty(),
            MessageBody::Commit { .. } => true,
            _ => false,
        })
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
            MessageBody::Commit { commit } => Some(commit.index.0),
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

/// A lone proposal costs two messages per follower, and a third that needs no answer: the entry
/// out, the acknowledgement back, then the commit advance in a commit notice, which the follower
/// applies without answering (an empty AppendEntries would cost an answer per follower per
/// entry). A follower whose acknowledgement has not arrived gets its notice when it does.
#[test]
fn a_commit_advance_goes_to_each_follower_in_a_notice_that_needs_no_answer() {
    let mut h = Harness::leader(1, THREE);
    let term = h.node.term().0;
    // Follower 3 acknowledges the no-op too: both followers hold the whole log.
    h.recv(accepted(3, 1, term, 1));
    h.step(Input::Propose(Payload::new(b"x")));
    h.persist();
    let out = h.recv(accepted(2, 1, term, 2));
    assert_eq!(h.node.commit_index().0, 2);
    assert_eq!(out.commit_notices(), [(2, 2)], "{:?}", out.sends);
    assert_eq!(
        commit_only(&out, 3),
        0,
        "3's acknowledgement of entry 2 is on its way"
    );
    let later = h.recv(accepted(3, 1, term, 2));
    assert_eq!(later.commit_notices(), [(3, 2)], "{:?}", later.sends);

    // The follower's side: it commits and applies, and sends nothing back.
    let mut f = Harness::restored(2, restored(THREE, term, None, &[term, term], 0));
    let notice = out.sent_to(2)[0].clone();
    let answer = f.recv(notice);
    assert_eq!(f.node.commit_index().0, 2);
    assert_eq!(answer.applied().len(), 2);
    assert!(answer.sends.is_empty(), "{:?}", answer.sends);
}
