//! The wire format: every message round-trips through postcard, and bytes from the network that
//! are not a valid encoding come back as an error, never a panic.

mod common;

use common::{SplitMix, entry, id};
use raft_core::{
    AppendOutcome, Entry, EntryKind, HardState, Index, LogId, Membership, Message, MessageBody,
    Payload, SnapshotMeta, Term,
};
use rand_core::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn message(body: MessageBody) -> Message {
    Message {
        from: id(1),
        to: id(2),
        term: Term(7),
        body,
    }
}

/// One message of every kind, with the awkward values: zero, the largest, empty and non-empty
/// payloads, both entry kinds.
fn every_message() -> Vec<Message> {
    let bodies = vec![
        MessageBody::VoteRequest {
            last_log: LogId::new(6, 42),
            pre_vote: false,
            leader_transfer: false,
        },
        MessageBody::VoteRequest {
            last_log: LogId::ZERO,
            pre_vote: true,
            leader_transfer: true,
        },
        MessageBody::VoteResponse {
            granted: true,
            pre_vote: false,
        },
        MessageBody::VoteResponse {
            granted: false,
            pre_vote: true,
        },
        MessageBody::AppendEntries {
            prev: LogId::ZERO,
            entries: Default::default(),
            commit: Index(0),
        },
        MessageBody::AppendEntries {
            prev: LogId::new(5, 9),
            entries: vec![
                Entry {
                    id: LogId::new(7, 10),
                    kind: EntryKind::Noop,
                    data: Payload::empty(),
                },
                entry(7, 11),
                Entry {
                    id: LogId::new(7, 12),
                    kind: EntryKind::Normal,
                    data: Payload::new(&[0xff; 300]),
                },
            ]
            .into(),
            commit: Index(u64::MAX),
        },
        MessageBody::AppendResponse {
            outcome: AppendOutcome::Accepted {
                match_index: Index(12),
            },
        },
        MessageBody::AppendResponse {
            outcome: AppendOutcome::Conflict {
                rejected: Index(9),
                hint: LogId::new(3, 4),
            },
        },
        MessageBody::AppendResponse {
            outcome: AppendOutcome::Outdated,
        },
        MessageBody::Heartbeat {
            commit: Index(3),
            read_round: u64::MAX,
        },
        MessageBody::HeartbeatResponse {
            read_round: 17,
            writes_pending: true,
        },
        MessageBody::TimeoutNow,
        MessageBody::InstallSnapshot {
            meta: Box::new(SnapshotMeta {
                last: LogId::new(6, 1000),
                membership: Membership::with_learners(&[id(1), id(2), id(3)], &[id(9)])
                    .expect("valid"),
            }),
            offset: 4096,
            data: Payload::new(&[7; 100]),
            done: false,
        },
        MessageBody::InstallSnapshot {
            meta: Box::new(SnapshotMeta {
                last: LogId::new(1, 1),
                membership: Membership::new(&[id(2)]).expect("valid"),
            }),
            offset: 0,
            data: Payload::empty(),
            done: true,
        },
        MessageBody::SnapshotResponse {
            snapshot: LogId::new(6, 1000),
            received: 4196,
            installed: false,
        },
        MessageBody::SnapshotResponse {
            snapshot: LogId::new(6, 1000),
            received: u64::MAX,
            installed: true,
        },
        MessageBody::ReadIndexRequest { request: u64::MAX },
        MessageBody::ReadIndexResponse {
            request: 1,
            index: Some(Index(u64::MAX)),
        },
        MessageBody::ReadIndexResponse {
            request: 2,
            index: None,
        },
        MessageBody::Commit {
            commit: LogId::new(6, u64::MAX),
        },
    ];
    let mut messages: Vec<Message> = bodies.into_iter().map(message).collect();
    messages.push(Message {
        from: id(u64::MAX),
        to: id(1),
        term: Term(u64::MAX),
        body: MessageBody::TimeoutNow,
    });
    messages
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = postcard::to_allocvec(value).expect("encodes");
    let back: T = postcard::from_bytes(&bytes).expect("decodes");
    assert_eq!(&back, value);
}

#[test]
fn every_message_body_round_trips() {
    let messages = every_message();
    // Every variant is represented (MessageBody is non-exhaustive, so count them by hand).
    let mut kinds = std::collections::BTreeSet::new();
    for m in &messages {
        kinds.insert(match &m.body {
            MessageBody::VoteRequest { .. } => "VoteRequest",
            MessageBody::VoteResponse { .. } => "VoteResponse",
            MessageBody::AppendEntries { .. } => "AppendEntries",
            MessageBody::AppendResponse { .. } => "AppendResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::SnapshotResponse { .. } => "SnapshotResponse",
            MessageBody::ReadIndexRequest { .. } => "ReadIndexRequest",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
            MessageBody::Commit { .. } => "Commit",
            other => panic!("a message kind this test does not know: {other:?}"),
        });
        round_trip(m);
    }
    assert_eq!(kinds.len(), 12);
}

#[test]
fn persisted_types_round_trip() {
    round_trip(&HardState::default());
    round_trip(&HardState {
        term: Term(9),
        vote: Some(id(3)),
    });
    round_trip(&entry(4, 5));
    let voters = [id(1), id(2), id(3)];
    let membership = Membership::with_learners(&voters, &[id(4)]).expect("valid");
    round_trip(&membership);
    round_trip(&SnapshotMeta {
        last: LogId::new(3, 100),
        membership,
    });
}

/// Every strict prefix of a valid encoding is an error (and does not panic).
#[test]
fn truncated_messages_fail_to_decode() {
    for m in every_message() {
        let bytes = postcard::to_allocvec(&m).expect("encodes");
        for len in 0..bytes.len() {
            let result = postcard::from_bytes::<Message>(&bytes[..len]);
            assert!(
                result.is_err(),
                "{len} of {} bytes of {m:?} decoded as {result:?}",
                bytes.len()
            );
        }
    }
}

/// Random bytes, and valid encodings with bytes changed, decode to a value or an error: never a
/// panic, never an allocation sized by an untrusted length.
#[test]
fn garbage_bytes_never_panic() {
    let mut rng = SplitMix::new(0x5eed);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let len = (rng.next_u32() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
        decoded += usize::from(postcard::from_bytes::<Message>(&bytes).is_ok());
        let _ = postcard::from_bytes::<Entry>(&bytes);
        let _ = postcard::from_bytes::<Membership>(&bytes);
        let _ = postcard::from_bytes::<SnapshotMeta>(&bytes);
    }
    assert!(
        decoded < 20_000,
        "everything decodes: the test decodes nothing"
    );

    for m in every_message() {
        let bytes = postcard::to_allocvec(&m).expect("encodes");
        for i in 0..bytes.len() {
            for b in [0x00, 0x01, 0x7f, 0x80, 0xff, bytes[i] ^ 0x55] {
                let mut changed = bytes.clone();
                changed[i] = b;
                let _ = postcard::from_bytes::<Message>(&changed);
            }
        }
    }
}

/// Specific invalid encodings: an unknown message kind, node id zero, a length prefix far beyond
/// the input.
#[test]
fn invalid_encodings_are_errors() {
    let m = message(MessageBody::TimeoutNow);
    let bytes = postcard::to_allocvec(&m).expect("encodes");
    // from (1), to (2), term (7), then the variant tag.
    assert_eq!(bytes, [1, 2, 7, 6]);
    // The commit notice came last, so every earlier kind keeps its tag.
    let notice = message(MessageBody::Commit {
        commit: LogId::new(4, 5),
    });
    let notice = postcard::to_allocvec(&notice).expect("encodes");
    assert_eq!(notice, [1, 2, 7, 11, 4, 5]);

    let mut unknown_kind = bytes.clone();
    unknown_kind[3] = 200;
    assert!(postcard::from_bytes::<Message>(&unknown_kind).is_err());

    let mut from_zero = bytes;
    from_zero[0] = 0;
    assert!(postcard::from_bytes::<Message>(&from_zero).is_err());

    // An AppendEntries claiming 2^62 entries.
    let mut huge = vec![1, 2, 7, 2, 0, 0];
    huge.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    assert!(postcard::from_bytes::<Message>(&huge).is_err());

    // An entry whose payload claims more bytes than follow.
    let e = postcard::to_allocvec(&entry(1, 1)).expect("encodes");
    let mut long_payload = e[..e.len() - 4].to_vec(); // drop the 3-byte payload and its length
    long_payload.push(100);
    long_payload.extend([0; 10]);
    assert!(postcard::from_bytes::<Entry>(&long_payload).is_err());
}

/// The unchecked shape of a `Membership` on the wire.
#[derive(Serialize)]
struct MembershipWire {
    voters: Vec<u64>,
    outgoing: Vec<u64>,
    learners: Vec<u64>,
}

fn decode_membership(voters: &[u64], outgoing: &[u64], learners: &[u64]) -> Option<Membership> {
    let wire = MembershipWire {
        voters: voters.to_vec(),
        outgoing: outgoing.to_vec(),
        learners: learners.to_vec(),
    };
    let bytes = postcard::to_allocvec(&wire).expect("encodes");
    postcard::from_bytes::<Membership>(&bytes).ok()
}

#[test]
fn membership_wire_shape_matches() {
    let m = Membership::with_learners(&[id(1), id(3)], &[id(5)]).expect("valid");
    let wire = MembershipWire {
        voters: vec![1, 3],
        outgoing: vec![],
        learners: vec![5],
    };
    assert_eq!(
        postcard::to_allocvec(&m).expect("encodes"),
        postcard::to_allocvec(&wire).expect("encodes")
    );
    assert_eq!(decode_membership(&[1, 3], &[], &[5]), Some(m));
}

/// A node listed as both an (incoming) voter and a learner is not a valid configuration. An
/// outgoing voter may be a learner: it is being demoted, and votes until the joint configuration
/// is left.
#[test]
fn membership_with_overlapping_voters_and_learners_fails_to_decode() {
    assert_eq!(decode_membership(&[1, 2, 3], &[], &[3]), None);
    assert_eq!(decode_membership(&[1, 2], &[2, 3], &[2]), None);
    let demoting = decode_membership(&[1, 2], &[2, 3], &[3]).expect("a demotion in progress");
    assert!(demoting.is_voter(id(3)) && !demoting.is_learner(id(3)));
    assert_eq!(decode_membership(&[], &[], &[1]), None, "no voters");
    let many: Vec<u64> = (1..=17).collect();
    assert_eq!(decode_membership(&many, &[], &[]), None, "too many");
    assert_eq!(
        decode_membership(&many[..9], &[], &many[9..]),
        None,
        "too many"
    );
}

/// A set on the wire lists each node once: an encoding with duplicates is not one a correct peer
/// produces, and decoding it must fail rather than silently reinterpret it.
#[test]
fn membership_with_duplicate_ids_fails_to_decode() {
    assert_eq!(decode_membership(&[1, 2, 2], &[], &[]), None, "voters");
    assert_eq!(decode_membership(&[1, 2], &[], &[4, 4]), None, "learners");
    assert_eq!(decode_membership(&[1, 2], &[3, 3], &[]), None, "outgoing");
}
