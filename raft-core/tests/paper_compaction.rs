//! Log compaction (Raft §7), one test per rule: when the node suggests a snapshot, InstallSnapshot
//! at a follower (Figure 13's rules 6 and 7, applied only once durable), and the leader's side of
//! a snapshot transfer.
//!
//! Every test drives single nodes by hand through `common::Harness`: peers are played by the
//! test, which builds their messages and decides when the node's writes become durable.

mod common;

use common::paper::{THREE, follower_of_1, install_snapshot};
use common::{Harness, accepted, append, id, msg, restored};
use raft_core::{Index, Input, LogId, MessageBody, Payload};

// ---- §7 log compaction -----------------------------------------------------------------------

/// Raft §7: the node suggests a snapshot whenever its log outgrows the configured size, also
/// after it installed a snapshot from its leader (which replaces any snapshot the application was
/// about to take): otherwise a follower that once installed one while a suggestion was pending
/// would never be told again, and its log would grow without bound.
#[test]
fn snapshot_is_suggested_again_after_installing_one_from_the_leader() {
    let suggested = |out: &common::Out| {
        out.events
            .iter()
            .any(|e| matches!(e, raft_core::Event::SnapshotSuggested { .. }))
    };
    let mut h = Harness::with_config(2, THREE, |c| c.snapshot_log_entries = 4);
    h.recv(append(1, 2, 1, LogId::ZERO, &[1; 6], 6));
    h.persist();
    let out = h.step(Input::Applied(Index(6)));
    assert!(suggested(&out), "log of 6 entries past the limit of 4");
    // Before the application takes it, a snapshot arrives from the leader.
    let meta = raft_core::SnapshotMeta {
        last: LogId::new(1, 10),
        membership: common::membership(THREE),
    };
    let install = msg(
        1,
        2,
        1,
        MessageBody::InstallSnapshot {
            meta: Box::new(meta),
            offset: 0,
            data: Payload::new(b"state"),
            done: true,
        },
    );
    h.recv(install);
    h.persist();
    h.step(Input::Applied(Index(10)));
    // The log grows past the limit again: a new suggestion.
    h.recv(append(1, 2, 1, LogId::new(1, 10), &[1; 6], 16));
    h.persist();
    let out = h.step(Input::Applied(Index(16)));
    assert!(
        suggested(&out),
        "no suggestion after the installed snapshot"
    );
}

/// Raft §7: snapshots come once per `snapshot_log_entries` applied entries, also when the log
/// keeps more trailing entries below a snapshot than that (found by the chaos runs: a length rule
/// suggested a snapshot after every entry once the log passed the interval, and never compacted).
#[test]
fn a_snapshot_is_suggested_once_per_interval_even_with_more_trailing_entries() {
    let mut h = Harness::with_config(2, THREE, |c| {
        c.snapshot_log_entries = 20;
        c.snapshot_trailing_entries = 1024;
    });
    let mut suggestions = 0;
    let mut last = LogId::ZERO;
    for _ in 0..10 {
        let commit = last.index.0 + 10;
        h.recv(append(1, 2, 1, last, &[1; 10], commit));
        h.persist();
        let out = h.step(Input::Applied(Index(commit)));
        last = LogId::new(1, commit);
        if out
            .events
            .iter()
            .any(|e| matches!(e, raft_core::Event::SnapshotSuggested { .. }))
        {
            suggestions += 1;
            let meta = h.node.snapshot_meta(Index(commit)).expect("applied");
            h.step(Input::SnapshotTaken(Box::new(meta)));
        }
    }
    // 100 entries at an interval of 20: after 30, 60 and 90.
    assert_eq!(
        suggestions, 3,
        "one snapshot per interval, not one per entry"
    );
}

/// Raft Figure 13 (InstallSnapshot), rules 6 and 7: a log that holds the snapshot's last entry
/// keeps what follows it; any other log is discarded entirely, in the same write that installs
/// the snapshot. Here the follower's entry at the snapshot's index is of an older term: its
/// suffix (of that term, and beyond the snapshot) belongs to another history.
#[test]
fn snapshot_discards_a_log_that_conflicts_with_it() {
    // Entries 3 and 4 of term 2 never committed; leader 1 of term 3 has (3, 3) at index 3.
    let mut h = Harness::restored(2, restored(THREE, 2, None, &[1, 1, 2, 2], 0));
    let out = h.recv(install_snapshot(2, 3, LogId::new(3, 3)));
    assert_eq!(
        h.node.last_log(),
        LogId::new(3, 3),
        "the conflicting suffix is gone"
    );
    let install = out
        .writes
        .iter()
        .find(|w| w.snapshot.is_some())
        .expect("the snapshot is written");
    assert_eq!(
        install.truncate_from,
        Some(Index(4)),
        "the disk drops the conflicting suffix with the same write"
    );
    h.persist();
    assert_eq!(h.node.last_log(), LogId::new(3, 3));

    // Rule 6: the log holds the snapshot's last entry, so the entry after it stays.
    let mut h = Harness::restored(2, restored(THREE, 3, None, &[1, 1, 3, 3], 0));
    let out = h.recv(install_snapshot(2, 3, LogId::new(3, 3)));
    assert_eq!(h.node.last_log(), LogId::new(3, 4));
    let install = out.writes.iter().find(|w| w.snapshot.is_some());
    assert_eq!(install.map(|w| w.truncate_from), Some(None));
}

/// The persistence contract: a snapshot received from the leader reaches the state machine only
/// once the write installing it is durable (a crash before that would leave a state machine ahead
/// of everything the node can restart from).
#[test]
fn snapshot_from_the_leader_is_applied_only_once_durable() {
    let mut h = follower_of_1(1, &[1, 1]);
    h.persist();
    let out = h.recv(install_snapshot(2, 1, LogId::new(1, 10)));
    assert_eq!(
        out.applied(),
        [],
        "applied before the install write is durable"
    );
    assert_eq!(h.node.commit_index(), Index(10));
    let out = h.persist();
    assert_eq!(out.applied(), [LogId::new(1, 10)]);
}

/// `common::leader_sending_a_snapshot` with the default configuration.
fn leader_hearing_a_hint_below_its_snapshot() -> (Harness, common::Out) {
    common::leader_sending_a_snapshot(|_| {})
}

/// Raft §7: a follower whose hint is below the leader's snapshot lacks entries the leader no
/// longer has: the leader sends it the snapshot, not an append it cannot match.
#[test]
fn a_hint_below_the_snapshot_makes_the_leader_send_the_snapshot() {
    let (_, out) = leader_hearing_a_hint_below_its_snapshot();
    assert_eq!(out.appends(), []);
    let to: Vec<(u64, LogId)> = out
        .chunk_requests
        .iter()
        .map(|c| (c.to.get(), c.snapshot))
        .collect();
    assert_eq!(to, [(3, LogId::new(1, 10))]);
}

/// Raft §7: a follower that installed the snapshot is replicated from there; the snapshot's
/// index is already committed, so its acknowledgement advances nothing and the other followers
/// hear nothing new, now or at the next tick.
#[test]
fn an_installed_snapshot_resumes_replication_and_tells_the_others_nothing() {
    let (mut h, _) = leader_hearing_a_hint_below_its_snapshot();
    h.recv(accepted(2, 1, 2, 13));
    assert_eq!(h.node.commit_index(), Index(13));
    let body = MessageBody::SnapshotResponse {
        snapshot: LogId::new(1, 10),
        received: 0,
        installed: true,
    };
    let out = h.recv(msg(3, 1, 2, body));
    assert_eq!(h.node.commit_index(), Index(13));
    let appends: Vec<(u64, LogId)> = out.appends().iter().map(|a| (a.0, a.1)).collect();
    assert_eq!(appends, [(3, LogId::new(1, 10))]);
    assert_eq!(h.tick(1).sent_to(2), Vec::<&raft_core::Message>::new());
}

/// Raft §7, the leader's side of a snapshot transfer: a chunk the adapter read is passed on
/// only if it is the one the transfer asked for (a chunk at another offset is stale); a newer
/// snapshot taken meanwhile restarts the transfer with it, from offset 0.
#[test]
fn snapshot_chunks_go_out_only_as_asked_and_a_newer_snapshot_restarts_the_transfer() {
    let (mut h, out) = leader_hearing_a_hint_below_its_snapshot();
    assert_eq!(out.chunk_requests.len(), 1);
    let request = out.chunk_requests[0];
    assert_eq!((request.snapshot, request.offset), (LogId::new(1, 10), 0));
    let chunk = |offset: u64| {
        Input::SnapshotChunk(raft_core::SnapshotChunk {
            to: id(3),
            snapshot: LogId::new(1, 10),
            offset,
            data: Payload::new(b"state"),
            done: false,
        })
    };
    let installs = |out: &common::Out| {
        out.sends
            .iter()
            .filter(|m| matches!(m.body, MessageBody::InstallSnapshot { .. }))
            .count()
    };
    assert_eq!(installs(&h.step(chunk(5))), 0, "not the chunk asked for");
    assert_eq!(installs(&h.step(chunk(0))), 1);
    assert_eq!(installs(&h.step(chunk(0))), 0, "already sent");

    // 2 acknowledges the no-op (13); applied, it is snapshotted: 3's transfer restarts with it.
    h.recv(accepted(2, 1, 2, 13));
    assert_eq!(h.node.commit_index(), Index(13));
    h.step(Input::Applied(Index(13)));
    let meta = h.node.snapshot_meta(Index(13)).expect("applied");
    let out = h.step(Input::SnapshotTaken(Box::new(meta)));
    let requests: Vec<(u64, LogId, u64)> = out
        .chunk_requests
        .iter()
        .map(|c| (c.to.get(), c.snapshot, c.offset))
        .collect();
    assert_eq!(requests, [(3, LogId::new(2, 13), 0)]);

    // The follower's answers: progress asks for the chunk at its count; a duplicate of it, an
    // answer of 0 at offset 0, or an answer about the older snapshot, asks for nothing.
    let answer = |h: &mut Harness, snapshot: LogId, received: u64| {
        let body = MessageBody::SnapshotResponse {
            snapshot,
            received,
            installed: false,
        };
        let out = h.recv(msg(3, 1, 2, body));
        out.chunk_requests
            .iter()
            .map(|c| (c.snapshot, c.offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(answer(&mut h, LogId::new(2, 13), 0), []);
    assert_eq!(answer(&mut h, LogId::new(1, 10), 5), []);
    assert_eq!(
        answer(&mut h, LogId::new(2, 13), 5),
        [(LogId::new(2, 13), 5)]
    );
    assert_eq!(answer(&mut h, LogId::new(2, 13), 5), []);
}
