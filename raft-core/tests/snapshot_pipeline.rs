//! Raft §7, a snapshot transfer with chunks in a pipeline. The leader's side: the next chunk
//! is asked for as soon as one leaves, while the bytes sent and not acknowledged, the next chunk
//! included, fit `max_inflight_bytes`; a transfer that stalls is sent again from what the
//! follower holds. The follower's side: chunks that overtake others on the way are kept until
//! those arrive.

mod common;

use common::{Harness, Out, heartbeat_response, id, leader_sending_a_snapshot, msg};
use raft_core::{Input, LogId, MessageBody, Payload, SnapshotChunk};

const SNAPSHOT: LogId = LogId::new(1, 10);

/// The adapter's answer to a chunk request at `offset`: `len` bytes, the last if `done`.
fn chunk(offset: u64, len: usize, done: bool) -> Input {
    Input::SnapshotChunk(SnapshotChunk {
        to: id(3),
        snapshot: SNAPSHOT,
        offset,
        data: Payload::new(&vec![7; len]),
        done,
    })
}

/// Node 3 holds `received` bytes of the snapshot.
fn answer(h: &mut Harness, received: u64) -> Out {
    let body = MessageBody::SnapshotResponse {
        snapshot: SNAPSHOT,
        received,
        installed: false,
    };
    let term = h.node.term().0;
    h.recv(msg(3, 1, term, body))
}

/// The offsets of the chunks asked for.
fn requested(out: &Out) -> Vec<u64> {
    out.chunk_requests.iter().map(|c| c.offset).collect()
}

/// The offsets of the chunks sent to node 3.
fn sent(out: &Out) -> Vec<u64> {
    out.sent_to(3)
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::InstallSnapshot { offset, .. } => Some(offset),
            _ => None,
        })
        .collect()
}

/// A chunk leaving asks for the next one until the chunks in flight fill the window (12 bytes:
/// 3 chunks of 4); each acknowledgement makes room for one more.
#[test]
fn chunks_stay_in_flight_up_to_the_flow_control_window() {
    let (mut h, out) = leader_sending_a_snapshot(|c| {
        c.snapshot_chunk_bytes = 4;
        c.max_inflight_bytes = 12;
    });
    assert_eq!(requested(&out), [0]);
    let out = h.step(chunk(0, 4, false));
    assert_eq!((sent(&out), requested(&out)), (vec![0], vec![4]));
    let out = h.step(chunk(4, 4, false));
    assert_eq!((sent(&out), requested(&out)), (vec![4], vec![8]));
    let out = h.step(chunk(8, 4, false));
    assert_eq!(
        (sent(&out), requested(&out)),
        (vec![8], vec![]),
        "12 bytes in flight: the window is full"
    );
    assert_eq!(requested(&answer(&mut h, 4)), [12], "4 acknowledged");
    assert_eq!(requested(&answer(&mut h, 4)), [], "a duplicate answer");
}

/// The window is in bytes, not in messages: the next chunk must fit in it (9 bytes: two
/// chunks of 4, not three), and `max_inflight_msgs`, the appends' bound, does not limit it.
#[test]
fn the_window_is_bounded_in_bytes() {
    let (mut h, _) = leader_sending_a_snapshot(|c| {
        c.snapshot_chunk_bytes = 4;
        c.max_inflight_msgs = 1;
        c.max_inflight_bytes = 9;
    });
    assert_eq!(requested(&h.step(chunk(0, 4, false))), [4]);
    assert_eq!(requested(&h.step(chunk(4, 4, false))), Vec::<u64>::new());
    assert_eq!(
        requested(&answer(&mut h, 4)),
        [8],
        "4 in flight: room for one more"
    );
}

/// A window smaller than a chunk still lets one chunk go at a time.
#[test]
fn a_chunk_larger_than_the_window_goes_alone() {
    let (mut h, out) = leader_sending_a_snapshot(|c| {
        c.snapshot_chunk_bytes = 4;
        c.max_inflight_bytes = 2;
    });
    assert_eq!(requested(&out), [0]);
    assert_eq!(requested(&h.step(chunk(0, 4, false))), Vec::<u64>::new());
    assert_eq!(requested(&answer(&mut h, 4)), [4]);
}

/// With a window of one chunk, a transfer is stop-and-wait: the next chunk is asked for only
/// once the follower holds the last one.
#[test]
fn with_a_window_of_one_chunk_a_transfer_is_stop_and_wait() {
    let (mut h, _) = leader_sending_a_snapshot(|c| {
        c.snapshot_chunk_bytes = 4;
        c.max_inflight_bytes = 4;
    });
    let out = h.step(chunk(0, 4, false));
    assert_eq!((sent(&out), requested(&out)), (vec![0], vec![]));
    assert_eq!(requested(&answer(&mut h, 4)), [4]);
}

/// After the last chunk nothing more is asked for, however much room is left.
#[test]
fn nothing_is_asked_for_after_the_last_chunk() {
    let (mut h, _) = leader_sending_a_snapshot(|c| c.snapshot_chunk_bytes = 4);
    assert_eq!(requested(&h.step(chunk(0, 4, false))), [4]);
    let out = h.step(chunk(4, 2, true));
    assert_eq!((sent(&out), requested(&out)), (vec![4], vec![]));
    assert_eq!(requested(&answer(&mut h, 4)), Vec::<u64>::new());
}

/// A chunk lost (or overtaken) leaves the follower at the bytes it holds: its answers to later
/// chunks make no progress. Once a heartbeat answer shows no progress since the one before, the
/// leader sends again from what the follower holds, not from where it had got to.
#[test]
fn a_stalled_transfer_is_sent_again_from_what_the_follower_holds() {
    let (mut h, _) = leader_sending_a_snapshot(|c| {
        c.snapshot_chunk_bytes = 4;
        c.max_inflight_bytes = 12;
    });
    h.step(chunk(0, 4, false));
    h.step(chunk(4, 4, false));
    h.step(chunk(8, 4, false));
    // The chunk at 4 is lost: 3 holds 4 bytes, and refuses the chunk at 8.
    assert_eq!(requested(&answer(&mut h, 4)), [12]);
    assert_eq!(requested(&answer(&mut h, 4)), []);
    let term = h.node.term().0;
    // The first heartbeat answer follows progress; the second shows none since.
    let out = h.recv(heartbeat_response(3, 1, term, 1));
    assert_eq!(requested(&out), []);
    let out = h.recv(heartbeat_response(3, 1, term, 2));
    assert_eq!(requested(&out), [4], "sent again from the 4 bytes it holds");
    // The chunk at 12 asked for before is stale now; the one at 4 goes out.
    assert_eq!(sent(&h.step(chunk(12, 4, false))), Vec::<u64>::new());
    assert_eq!(sent(&h.step(chunk(4, 4, false))), [4]);
}

/// A follower holding more than this transfer sent (from an earlier transfer of the same
/// snapshot) is sent what follows, and what was in flight is not waited for.
#[test]
fn a_follower_ahead_of_the_transfer_is_sent_what_follows() {
    let (mut h, _) = leader_sending_a_snapshot(|c| c.snapshot_chunk_bytes = 4);
    h.step(chunk(0, 4, false));
    assert_eq!(requested(&answer(&mut h, 20)), [20]);
    assert_eq!(
        sent(&h.step(chunk(4, 4, false))),
        Vec::<u64>::new(),
        "stale"
    );
    assert_eq!(sent(&h.step(chunk(20, 4, false))), [20]);
}

/// A transfer just started counts as progress: a heartbeat answer already on its way does not
/// take it for a stalled one and send the window again from 0.
#[test]
fn a_heartbeat_answer_at_the_start_of_a_transfer_is_not_a_stall() {
    let (mut h, _) = leader_sending_a_snapshot(|c| {
        c.snapshot_chunk_bytes = 4;
        c.max_inflight_bytes = 12;
    });
    h.step(chunk(0, 4, false));
    h.step(chunk(4, 4, false));
    let term = h.node.term().0;
    let out = h.recv(heartbeat_response(3, 1, term, 1));
    assert_eq!(requested(&out), []);
    assert_eq!(
        sent(&h.step(chunk(8, 4, false))),
        [8],
        "the transfer goes on"
    );
}

/// An adapter answering an empty chunk before the end is not asked for the same chunk again at
/// once (it would be, forever); the next stalled heartbeat asks again.
#[test]
fn an_empty_chunk_before_the_end_is_not_asked_for_again_at_once() {
    let (mut h, _) = leader_sending_a_snapshot(|c| c.snapshot_chunk_bytes = 4);
    let out = h.step(chunk(0, 0, false));
    assert_eq!((sent(&out), requested(&out)), (vec![0], vec![]));
    let term = h.node.term().0;
    h.recv(heartbeat_response(3, 1, term, 1));
    let out = h.recv(heartbeat_response(3, 1, term, 2));
    assert_eq!(requested(&out), [0]);
}

/// An acknowledgement of everything sent, while the next chunk is already asked for, asks for
/// nothing more: the adapter reads each chunk once.
#[test]
fn an_acknowledgement_of_everything_sent_asks_nothing_twice() {
    let (mut h, _) = leader_sending_a_snapshot(|c| c.snapshot_chunk_bytes = 4);
    assert_eq!(requested(&h.step(chunk(0, 4, false))), [4]);
    assert_eq!(requested(&answer(&mut h, 4)), Vec::<u64>::new());
    assert_eq!(sent(&h.step(chunk(4, 4, false))), [4]);
}

// ---- the follower's side ---------------------------------------------------------------------

/// Chunk `offset..offset + len` of a 10-entry snapshot from leader 1 in `term` (1), to node 2.
fn chunk_to_2(offset: u64, len: usize, done: bool) -> raft_core::Message {
    chunk_of(SNAPSHOT, offset, len, done)
}

fn chunk_of(snapshot: LogId, offset: u64, len: usize, done: bool) -> raft_core::Message {
    let body = MessageBody::InstallSnapshot {
        meta: Box::new(raft_core::SnapshotMeta {
            last: snapshot,
            membership: common::membership(common::paper::THREE),
        }),
        offset,
        data: Payload::new(&vec![offset as u8; len]),
        done,
    };
    msg(1, 2, 1, body)
}

/// The chunks written, as (offset, len, done).
fn chunk_writes(out: &Out) -> Vec<(u64, usize, bool)> {
    out.writes
        .iter()
        .filter_map(|w| w.snapshot.as_ref())
        .map(|p| (p.offset, p.data.len(), p.done))
        .collect()
}

/// The `received` of each snapshot answer, in order.
fn answers(out: &Out) -> Vec<(u64, bool)> {
    out.sends
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::SnapshotResponse {
                received,
                installed,
                ..
            } => Some((received, installed)),
            _ => None,
        })
        .collect()
}

/// Chunks that arrive before the one the follower expects are kept, and written in order once
/// it arrives, the last one installing the snapshot: the leader need not send them again (before,
/// each was dropped, and with a network that reorders a transfer went at a chunk per round trip).
#[test]
fn a_follower_keeps_chunks_that_arrive_early_and_writes_them_in_order() {
    let mut h = common::paper::follower_of_1(1, &[1, 1]);
    h.persist();
    for (offset, done) in [(4, true), (2, false)] {
        let out = h.recv(chunk_to_2(offset, 2, done));
        assert_eq!(chunk_writes(&out), [], "nothing before offset 0");
        assert_eq!(answers(&out), [(0, false)], "it still needs offset 0");
    }
    let out = h.recv(chunk_to_2(0, 2, false));
    assert_eq!(
        chunk_writes(&out),
        [(0, 2, false), (2, 2, false), (4, 2, true)]
    );
    assert_eq!(answers(&h.persist()), [(6, true)]);
    assert_eq!(h.node.commit_index().0, 10, "installed");
    assert_eq!(h.node.snapshot().last, SNAPSHOT);
}

/// What a follower keeps is bounded: at most 64 chunks, and `max_inflight_bytes`. Chunks of
/// another snapshot are not mixed in: a chunk of a new one drops those kept of the old.
#[test]
fn early_chunks_are_bounded_and_of_one_transfer() {
    let mut h = common::paper::follower_of_1(1, &[1, 1]);
    h.persist();
    // 70 one-byte chunks from offset 1: only the first 64 are kept.
    for offset in 1..=70 {
        h.recv(chunk_to_2(offset, 1, false));
    }
    let out = h.recv(chunk_to_2(0, 1, false));
    assert_eq!(chunk_writes(&out).len(), 65, "chunk 0 and the 64 kept");
    assert_eq!(
        answers(&h.persist()),
        [(65, false)],
        "one answer, once durable"
    );

    // Bytes: with a window of 4 bytes, a 3-byte chunk is kept and a 2-byte one after it is not.
    let mut h = Harness::with_config(2, common::paper::THREE, |c| {
        c.max_inflight_bytes = 4;
    });
    h.recv(common::heartbeat(1, 2, 1, 0, 0));
    h.persist();
    h.recv(chunk_to_2(1, 3, false));
    h.recv(chunk_to_2(4, 2, true));
    let out = h.recv(chunk_to_2(0, 1, false));
    assert_eq!(chunk_writes(&out), [(0, 1, false), (1, 3, false)]);
    assert_eq!(answers(&h.persist()), [(4, false)]);

    // A chunk of a newer snapshot drops what was kept of the older one.
    let mut h = common::paper::follower_of_1(1, &[1, 1]);
    h.persist();
    h.recv(chunk_to_2(2, 2, false));
    let newer = LogId::new(1, 12);
    h.recv(chunk_of(newer, 3, 1, true));
    let out = h.recv(chunk_to_2(0, 2, false));
    assert_eq!(
        chunk_writes(&out),
        [(0, 2, false)],
        "the older transfer's chunk 2 is gone"
    );
}
