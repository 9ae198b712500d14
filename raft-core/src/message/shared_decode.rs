//! Decoding a message whose payloads are ranges of the buffer it was received in.
//!
//! A derived `Deserialize` copies every payload into an allocation of its own: a 64-entry
//! AppendEntries costs 64 allocations and copies. [`Message::deserialize_shared`] decodes into
//! borrowed mirrors of the message types (payloads as `&[u8]` into the input), then makes each
//! payload a [`Payload::slice`] of the buffer the caller holds those bytes in. The wire format is
//! the same: the mirrors serialize byte for byte as the real types do, which the tests check for
//! every kind of message, and the conversions between mirror and message are exhaustive matches:
//! the one from message to mirror is built with the tests only, so a new kind of message fails
//! to compile in `cargo test` (and CI) until it has a mirror.

use alloc::borrow::Cow;
use alloc::boxed::Box;

use serde::{Deserialize, Deserializer, Serialize};
use smallvec::SmallVec;

use super::{AppendOutcome, Message, MessageBody};
use crate::restore::SnapshotMeta;
use crate::types::{Entries, Entry, EntryKind, Index, LogId, NodeId, Payload, Term, offset_in};

impl Message {
    /// Decodes a message from `deserializer`, whose input is the bytes of `buffer` (or a part of
    /// them): each payload becomes a range of `buffer`, with no allocation or copy of its own.
    ///
    /// A payload that the deserializer does not lend from `buffer` (a format that cannot borrow,
    /// or input that is not `buffer`'s bytes) is copied, so the result is always the message; only
    /// the cost differs. With postcard, a 64-entry AppendEntries costs two allocations (the
    /// borrowed entry list and the message's), not 64; an unbatched one none.
    ///
    /// ```
    /// use raft_core::{Entries, Entry, EntryKind, LogId, Message, MessageBody, NodeId, Payload, Index, Term};
    ///
    /// let entry = |i| Entry { id: LogId::new(1, i), kind: EntryKind::Normal, data: Payload::new(b"set k v") };
    /// let sent = Message {
    ///     from: NodeId::MIN,
    ///     to: NodeId::new(2).unwrap(),
    ///     term: Term(1),
    ///     body: MessageBody::AppendEntries {
    ///         prev: LogId::ZERO,
    ///         entries: (1..=3).map(entry).collect::<Entries>(),
    ///         commit: Index(0),
    ///     },
    /// };
    /// // What a transport reads from a socket, held in one shared buffer.
    /// let frame = Payload::new(&postcard::to_allocvec(&sent).unwrap());
    /// let mut de = postcard::Deserializer::from_bytes(frame.as_bytes());
    /// let received = Message::deserialize_shared(&mut de, &frame).unwrap();
    /// assert_eq!(received, sent);
    /// ```
    ///
    /// # Errors
    ///
    /// The deserializer's error, for input that is not a message.
    pub fn deserialize_shared<'de, D: Deserializer<'de>>(
        deserializer: D,
        buffer: &Payload,
    ) -> Result<Self, D::Error> {
        MessageRef::deserialize(deserializer).map(|m| m.into_message(&mut Source::Shared(buffer)))
    }

    /// Decodes a message from `deserializer`, whose input is `input`: the payloads become ranges
    /// of one copy of `input`, made when the first payload is met. A message without payloads
    /// (a response, a heartbeat, a vote) copies nothing; a 64-entry AppendEntries costs three
    /// allocations with postcard (the copy, the borrowed entry list and the message's), not 64.
    ///
    /// This is for a transport that reads into a buffer it reuses: the copy outlives the
    /// buffer. A payload the deserializer does not lend from `input` is copied on its own.
    ///
    /// ```
    /// use raft_core::{Entries, Entry, EntryKind, LogId, Message, MessageBody, NodeId, Payload, Index, Term};
    ///
    /// let entry = |i| Entry { id: LogId::new(1, i), kind: EntryKind::Normal, data: Payload::new(b"set k v") };
    /// let sent = Message {
    ///     from: NodeId::MIN,
    ///     to: NodeId::new(2).unwrap(),
    ///     term: Term(1),
    ///     body: MessageBody::AppendEntries {
    ///         prev: LogId::ZERO,
    ///         entries: (1..=3).map(entry).collect::<Entries>(),
    ///         commit: Index(0),
    ///     },
    /// };
    /// // A socket's read buffer, reused for the next read once the message is decoded.
    /// let read_buffer = postcard::to_allocvec(&sent).unwrap();
    /// let mut de = postcard::Deserializer::from_bytes(&read_buffer);
    /// let received = Message::deserialize_with_one_copy(&mut de, &read_buffer).unwrap();
    /// assert_eq!(received, sent);
    /// ```
    ///
    /// # Errors
    ///
    /// The deserializer's error, for input that is not a message.
    pub fn deserialize_with_one_copy<'de, D: Deserializer<'de>>(
        deserializer: D,
        input: &[u8],
    ) -> Result<Self, D::Error> {
        MessageRef::deserialize(deserializer)
            .map(|m| m.into_message(&mut Source::CopyOnce { input, copy: None }))
    }
}

/// Where decoded payloads take their bytes from.
enum Source<'s> {
    /// Ranges of a buffer the caller holds.
    Shared(&'s Payload),
    /// Ranges of one copy of `input`, made when the first payload is met.
    CopyOnce {
        /// The deserializer's input.
        input: &'s [u8],
        /// Its copy, once made.
        copy: Option<Payload>,
    },
}

impl Source<'_> {
    /// The payload of `bytes`: a range of the source if they lie in it, else a copy of its own.
    fn payload_of(&mut self, bytes: &[u8]) -> Payload {
        let shared = match self {
            Self::Shared(buffer) => buffer.slice(bytes),
            Self::CopyOnce { input, copy } => offset_in(input, bytes).and_then(|offset| {
                copy.get_or_insert_with(|| Payload::new(input))
                    .slice_at(offset, bytes.len())
            }),
        };
        shared.unwrap_or_else(|| Payload::new(bytes))
    }

    /// The payload of decoded `bytes`.
    fn payload_from(&mut self, bytes: Bytes<'_>) -> Payload {
        match bytes {
            Cow::Borrowed(b) => self.payload_of(b),
            Cow::Owned(v) => Payload::from(v),
        }
    }
}

/// A payload as decoded: borrowed from the input if the format lends it, else owned.
type Bytes<'a> = Cow<'a, [u8]>;

/// [`Message`], with payloads borrowed from the input.
#[derive(Serialize, Deserialize)]
struct MessageRef<'a> {
    from: NodeId,
    to: NodeId,
    term: Term,
    #[serde(borrow)]
    body: BodyRef<'a>,
}

/// [`Entry`], with its payload borrowed from the input.
#[derive(Serialize, Deserialize)]
struct EntryRef<'a> {
    id: LogId,
    kind: EntryKind,
    #[serde(borrow, with = "borrowed_bytes")]
    data: Bytes<'a>,
}

/// [`MessageBody`], with payloads borrowed from the input. The variants are in the same order,
/// with the same fields in the same order: that order is the wire format.
#[derive(Serialize, Deserialize)]
enum BodyRef<'a> {
    VoteRequest {
        last_log: LogId,
        pre_vote: bool,
        leader_transfer: bool,
    },
    VoteResponse {
        granted: bool,
        pre_vote: bool,
    },
    AppendEntries {
        prev: LogId,
        #[serde(borrow)]
        entries: SmallVec<[EntryRef<'a>; 1]>,
        commit: Index,
    },
    AppendResponse {
        outcome: AppendOutcome,
    },
    Heartbeat {
        commit: Index,
        read_round: u64,
    },
    HeartbeatResponse {
        read_round: u64,
        writes_pending: bool,
    },
    TimeoutNow,
    InstallSnapshot {
        meta: Box<SnapshotMeta>,
        offset: u64,
        #[serde(borrow, with = "borrowed_bytes")]
        data: Bytes<'a>,
        done: bool,
    },
    SnapshotResponse {
        snapshot: LogId,
        received: u64,
        installed: bool,
    },
    ReadIndexRequest {
        request: u64,
    },
    ReadIndexResponse {
        request: u64,
        index: Option<Index>,
    },
    Commit {
        commit: LogId,
    },
}

impl MessageRef<'_> {
    #[inline]
    fn into_message(self, source: &mut Source<'_>) -> Message {
        let body = match self.body {
            BodyRef::VoteRequest {
                last_log,
                pre_vote,
                leader_transfer,
            } => MessageBody::VoteRequest {
                last_log,
                pre_vote,
                leader_transfer,
            },
            BodyRef::VoteResponse { granted, pre_vote } => {
                MessageBody::VoteResponse { granted, pre_vote }
            }
            BodyRef::AppendEntries {
                prev,
                entries,
                commit,
            } => MessageBody::AppendEntries {
                prev,
                entries: {
                    // Pushed one by one into a list of the final size: `collect` costs about
                    // 150 instructions more for the one entry of an unbatched append.
                    let mut list = Entries::with_capacity(entries.len());
                    for e in entries {
                        list.push(Entry {
                            id: e.id,
                            kind: e.kind,
                            data: source.payload_from(e.data),
                        });
                    }
                    list
                },
                commit,
            },
            BodyRef::AppendResponse { outcome } => MessageBody::AppendResponse { outcome },
            BodyRef::Heartbeat { commit, read_round } => {
                MessageBody::Heartbeat { commit, read_round }
            }
            BodyRef::HeartbeatResponse {
                read_round,
                writes_pending,
            } => MessageBody::HeartbeatResponse {
                read_round,
                writes_pending,
            },
            BodyRef::TimeoutNow => MessageBody::TimeoutNow,
            BodyRef::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => MessageBody::InstallSnapshot {
                meta,
                offset,
                data: source.payload_from(data),
                done,
            },
            BodyRef::SnapshotResponse {
                snapshot,
                received,
                installed,
            } => MessageBody::SnapshotResponse {
                snapshot,
                received,
                installed,
            },
            BodyRef::ReadIndexRequest { request } => MessageBody::ReadIndexRequest { request },
            BodyRef::ReadIndexResponse { request, index } => {
                MessageBody::ReadIndexResponse { request, index }
            }
            BodyRef::Commit { commit } => MessageBody::Commit { commit },
        };
        Message {
            from: self.from,
            to: self.to,
            term: self.term,
            body,
        }
    }
}

/// The mirror of `message`, borrowing its payloads. Only the tests serialize it, to check that
/// it is the same bytes as `message`; it lives here so that a new kind of message fails to
/// compile until it has a mirror.
#[cfg(test)]
fn mirror_of(message: &Message) -> MessageRef<'_> {
    let body = match &message.body {
        &MessageBody::VoteRequest {
            last_log,
            pre_vote,
            leader_transfer,
        } => BodyRef::VoteRequest {
            last_log,
            pre_vote,
            leader_transfer,
        },
        &MessageBody::VoteResponse { granted, pre_vote } => {
            BodyRef::VoteResponse { granted, pre_vote }
        }
        MessageBody::AppendEntries {
            prev,
            entries,
            commit,
        } => BodyRef::AppendEntries {
            prev: *prev,
            entries: entries
                .iter()
                .map(|e| EntryRef {
                    id: e.id,
                    kind: e.kind,
                    data: Cow::Borrowed(e.data.as_bytes()),
                })
                .collect(),
            commit: *commit,
        },
        &MessageBody::AppendResponse { outcome } => BodyRef::AppendResponse { outcome },
        &MessageBody::Heartbeat { commit, read_round } => BodyRef::Heartbeat { commit, read_round },
        &MessageBody::HeartbeatResponse {
            read_round,
            writes_pending,
        } => BodyRef::HeartbeatResponse {
            read_round,
            writes_pending,
        },
        MessageBody::TimeoutNow => BodyRef::TimeoutNow,
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
        } => BodyRef::InstallSnapshot {
            meta: meta.clone(),
            offset: *offset,
            data: Cow::Borrowed(data.as_bytes()),
            done: *done,
        },
        &MessageBody::SnapshotResponse {
            snapshot,
            received,
            installed,
        } => BodyRef::SnapshotResponse {
            snapshot,
            received,
            installed,
        },
        &MessageBody::ReadIndexRequest { request } => BodyRef::ReadIndexRequest { request },
        &MessageBody::ReadIndexResponse { request, index } => {
            BodyRef::ReadIndexResponse { request, index }
        }
        &MessageBody::Commit { commit } => BodyRef::Commit { commit },
    };
    MessageRef {
        from: message.from,
        to: message.to,
        term: message.term,
        body,
    }
}

/// A payload as serde bytes, borrowed from the input when the format can lend them, as the
/// derived `Payload` decoding accepts them otherwise (bytes, a byte buffer or a sequence).
mod borrowed_bytes {
    use alloc::borrow::Cow;
    use alloc::vec::Vec;
    use core::fmt;

    use serde::{Deserializer, Serializer};

    // serde's `with` hands the field by reference, so the signature takes `&Cow`.
    #[allow(clippy::ptr_arg)]
    pub(super) fn serialize<S: Serializer>(v: &Cow<'_, [u8]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'de, [u8]>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Cow<'de, [u8]>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                // Bounded by what the decoder holds: the hint is never trusted for the allocation.
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Cow::Owned(bytes))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::Membership;

    fn n(i: u64) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn entry(i: u64, data: &[u8]) -> Entry {
        Entry {
            id: LogId::new(2, i),
            kind: if data.is_empty() {
                EntryKind::Noop
            } else {
                EntryKind::Normal
            },
            data: Payload::new(data),
        }
    }

    /// One message of every kind (the match in `mirror_of` keeps this list honest: a new kind
    /// needs a mirror, and then belongs here).
    fn every_kind() -> Vec<Message> {
        let meta = SnapshotMeta {
            last: LogId::new(2, 5),
            membership: Membership::new(&[n(1), n(2), n(3)]).unwrap(),
        };
        let bodies = vec![
            MessageBody::VoteRequest {
                last_log: LogId::new(2, 5),
                pre_vote: true,
                leader_transfer: false,
            },
            MessageBody::VoteResponse {
                granted: true,
                pre_vote: false,
            },
            MessageBody::AppendEntries {
                prev: LogId::new(2, 5),
                entries: Entries::new(),
                commit: Index(5),
            },
            MessageBody::AppendEntries {
                prev: LogId::new(2, 5),
                entries: [entry(6, b"one")].into_iter().collect(),
                commit: Index(5),
            },
            MessageBody::AppendEntries {
                prev: LogId::new(2, 5),
                entries: (6..70)
                    .map(|i| entry(i, if i % 9 == 0 { b"" } else { b"set key value" }))
                    .collect(),
                commit: Index(300),
            },
            MessageBody::AppendResponse {
                outcome: AppendOutcome::Accepted {
                    match_index: Index(9),
                },
            },
            MessageBody::AppendResponse {
                outcome: AppendOutcome::Conflict {
                    rejected: Index(9),
                    hint: LogId::new(1, 4),
                },
            },
            MessageBody::AppendResponse {
                outcome: AppendOutcome::Outdated,
            },
            MessageBody::Heartbeat {
                commit: Index(5),
                read_round: 7,
            },
            MessageBody::HeartbeatResponse {
                read_round: 7,
                writes_pending: true,
            },
            MessageBody::TimeoutNow,
            MessageBody::InstallSnapshot {
                meta: Box::new(meta),
                offset: 4096,
                data: Payload::new(&[0xab; 300]),
                done: false,
            },
            MessageBody::SnapshotResponse {
                snapshot: LogId::new(2, 5),
                received: 4096,
                installed: false,
            },
            MessageBody::ReadIndexRequest { request: 3 },
            MessageBody::ReadIndexResponse {
                request: 3,
                index: Some(Index(12)),
            },
            MessageBody::ReadIndexResponse {
                request: 4,
                index: None,
            },
            MessageBody::Commit {
                commit: LogId::new(2, 6),
            },
        ];
        bodies
            .into_iter()
            .map(|body| Message {
                from: n(1),
                to: n(2),
                term: Term(2),
                body,
            })
            .collect()
    }

    fn payloads(message: &Message) -> Vec<&Payload> {
        match &message.body {
            MessageBody::AppendEntries { entries, .. } => entries.iter().map(|e| &e.data).collect(),
            MessageBody::InstallSnapshot { data, .. } => vec![data],
            _ => Vec::new(),
        }
    }

    /// The mirrors are the wire format: each kind of message encodes to the same bytes through
    /// its mirror as through its own derive. Were a variant or a field out of order, a shared
    /// decode would misread what a plain encode wrote.
    #[test]
    fn mirrors_encode_as_the_messages_do() {
        for m in every_kind() {
            assert_eq!(
                postcard::to_allocvec(&mirror_of(&m)).unwrap(),
                postcard::to_allocvec(&m).unwrap(),
                "{m:?}"
            );
        }
    }

    /// A shared decode gives the message back, and every payload is a range of the frame's
    /// buffer, not a copy.
    #[test]
    fn a_shared_decode_gives_the_message_with_payloads_in_the_buffer() {
        for m in every_kind() {
            let frame = Payload::new(&postcard::to_allocvec(&m).unwrap());
            let bytes = frame.as_bytes();
            let within = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
            let mut de = postcard::Deserializer::from_bytes(bytes);
            let got = Message::deserialize_shared(&mut de, &frame).unwrap();
            assert_eq!(got, m);
            for p in payloads(&got) {
                let at = p.as_bytes().as_ptr() as usize;
                assert!(
                    p.is_empty() || within.contains(&at),
                    "{m:?}: a copied payload"
                );
            }
        }
    }

    /// A follower keeps the payloads of new entries in the frame they came in; of a resend that
    /// overlaps its log, it keeps only the new entry, and copies it out of the frame rather than
    /// keep the frame alive for it.
    #[test]
    fn a_follower_keeps_few_entries_of_a_large_frame_in_a_buffer_of_their_own() {
        use crate::{Config, Input, Node, Outputs, Restored, rng::SplitMix64};
        let membership = Membership::new(&[n(1), n(2), n(3)]).unwrap();
        let mut follower = Node::restore(
            Config::new(n(2)),
            SplitMix64::new(2),
            Restored::initial(membership),
        )
        .unwrap();
        let mut out = Outputs::new();
        let append = |last: u64| Message {
            from: n(1),
            to: n(2),
            term: Term(1),
            body: MessageBody::AppendEntries {
                prev: LogId::ZERO,
                entries: (1..=last)
                    .map(|i| Entry {
                        id: LogId::new(1, i),
                        kind: EntryKind::Normal,
                        data: Payload::new(&[i as u8; 256]),
                    })
                    .collect(),
                commit: Index(0),
            },
        };
        let mut deliver = |m: &Message| {
            let frame = Payload::new(&postcard::to_allocvec(m).unwrap());
            let mut de = postcard::Deserializer::from_bytes(frame.as_bytes());
            let m = Message::deserialize_shared(&mut de, &frame).unwrap();
            follower.step(Input::Message(m), &mut out).unwrap();
            let written: Vec<Entry> = out.drain_writes().flat_map(|w| w.entries).collect();
            let within = frame.as_bytes().as_ptr_range();
            let in_frame: Vec<bool> = written
                .iter()
                .map(|e| within.contains(&e.data.as_ptr()))
                .collect();
            (written, in_frame)
        };
        let (written, in_frame) = deliver(&append(64));
        assert_eq!(written.len(), 64);
        assert!(in_frame.iter().all(|&f| f), "all new: no copy");
        let (written, in_frame) = deliver(&append(65));
        assert_eq!(
            written.iter().map(|e| e.id.index.0).collect::<Vec<_>>(),
            [65]
        );
        assert_eq!(written[0].data.as_bytes(), [65; 256]);
        assert_eq!(in_frame, [false], "one entry of a 16 KiB frame: copied out");
    }

    /// The payload visitor takes every form of bytes a serde format may hand it: lent bytes are
    /// borrowed, the rest (bytes, a byte buffer, a sequence of u8) owned; anything else is an
    /// error that says a byte string was expected. Postcard only lends, so these paths are the
    /// other formats'.
    #[test]
    fn payload_bytes_decode_from_every_form_serde_has() {
        use alloc::string::ToString;
        use serde::de::IntoDeserializer;
        use serde::de::value::{BorrowedBytesDeserializer, BytesDeserializer, Error};

        /// A deserializer that hands over an owned byte buffer.
        struct ByteBuf(Vec<u8>);
        impl<'de> Deserializer<'de> for ByteBuf {
            type Error = Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
                v.visit_byte_buf(self.0)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
                enum identifier ignored_any
            }
        }

        let lent = borrowed_bytes::deserialize(BorrowedBytesDeserializer::<Error>::new(b"ab"));
        assert!(matches!(lent, Ok(Cow::Borrowed(b"ab"))));
        let copied = borrowed_bytes::deserialize(BytesDeserializer::<Error>::new(b"cd"));
        assert!(matches!(copied, Ok(Cow::Owned(ref v)) if v == b"cd"));
        let owned = borrowed_bytes::deserialize(ByteBuf(vec![5, 6]));
        assert!(matches!(owned, Ok(Cow::Owned(ref v)) if v == &[5, 6]));
        let seq: serde::de::value::SeqDeserializer<_, Error> = vec![7_u8, 8].into_deserializer();
        let from_seq = borrowed_bytes::deserialize(seq);
        assert!(matches!(from_seq, Ok(Cow::Owned(ref v)) if v == &[7, 8]));
        let number: serde::de::value::U32Deserializer<Error> = 5_u32.into_deserializer();
        let err = borrowed_bytes::deserialize(number).unwrap_err();
        assert!(err.to_string().contains("expected a byte string"), "{err}");
    }

    /// A one-copy decode gives the message back, and the payloads are ranges of a single copy
    /// of the input: each sits at its own offset from the first, as in the input, and none in
    /// the input itself (which the caller goes on to reuse).
    #[test]
    fn a_one_copy_decode_gives_the_message_with_payloads_in_one_copy() {
        for m in every_kind() {
            let bytes = postcard::to_allocvec(&m).unwrap();
            let input = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
            let mut de = postcard::Deserializer::from_bytes(&bytes);
            let got = Message::deserialize_with_one_copy(&mut de, &bytes).unwrap();
            assert_eq!(got, m);
            let wire = |p: &Payload| {
                let part = p.as_bytes();
                bytes
                    .windows(part.len().max(1))
                    .position(|w| part.is_empty() || w == part)
            };
            let got_payloads = payloads(&got);
            if let Some(first) = got_payloads.first() {
                let base = first.as_bytes().as_ptr() as usize;
                let base_wire = wire(first).unwrap();
                for p in got_payloads.iter().filter(|p| !p.is_empty()) {
                    let at = p.as_bytes().as_ptr() as usize;
                    assert!(!input.contains(&at), "{m:?}: a payload in the input");
                    assert!(at >= base, "{m:?}: a payload before the first");
                    let gap = at - base;
                    assert_eq!(
                        &bytes[base_wire + gap..base_wire + gap + p.len()],
                        p.as_bytes(),
                        "{m:?}: a payload not at its input offset in the copy"
                    );
                }
            }
            for cut in 0..bytes.len() {
                let plain = postcard::from_bytes::<Message>(&bytes[..cut]).ok();
                let mut de = postcard::Deserializer::from_bytes(&bytes[..cut]);
                let one_copy = Message::deserialize_with_one_copy(&mut de, &bytes[..cut]).ok();
                assert_eq!(one_copy, plain, "{m:?} cut at {cut}");
            }
        }
    }

    /// Decoding from bytes that are not the buffer's still gives the message: the payloads are
    /// copies then. And a frame cut short, or with garbage in it, is an error like any other.
    #[test]
    fn a_shared_decode_outside_the_buffer_copies_and_bad_input_is_an_error() {
        let elsewhere = Payload::new(b"unrelated");
        for m in every_kind() {
            let bytes = postcard::to_allocvec(&m).unwrap();
            let mut de = postcard::Deserializer::from_bytes(&bytes);
            assert_eq!(Message::deserialize_shared(&mut de, &elsewhere).unwrap(), m);
            for cut in 0..bytes.len() {
                let plain = postcard::from_bytes::<Message>(&bytes[..cut]).ok();
                let mut de = postcard::Deserializer::from_bytes(&bytes[..cut]);
                let shared = Message::deserialize_shared(&mut de, &elsewhere).ok();
                assert_eq!(shared, plain, "{m:?} cut at {cut}");
            }
        }
    }

    /// Over arbitrary messages, a shared decode agrees with the derived one on every input: the
    /// same message for valid bytes, an error for the rest.
    #[cfg(feature = "arbitrary")]
    #[test]
    fn a_shared_decode_agrees_with_the_derived_one() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let raw: Vec<u8> = (0..(next() % 256)).map(|_| next() as u8).collect();
            let mut u = arbitrary::Unstructured::new(&raw);
            let Ok(m) = <Message as arbitrary::Arbitrary>::arbitrary(&mut u) else {
                continue;
            };
            let bytes = postcard::to_allocvec(&m).unwrap();
            assert_eq!(postcard::to_allocvec(&mirror_of(&m)).unwrap(), bytes);
            let frame = Payload::new(&bytes);
            let mut de = postcard::Deserializer::from_bytes(frame.as_bytes());
            assert_eq!(Message::deserialize_shared(&mut de, &frame).unwrap(), m);
            let mut de = postcard::Deserializer::from_bytes(&bytes);
            assert_eq!(
                Message::deserialize_with_one_copy(&mut de, &bytes).unwrap(),
                m
            );
            // The raw bytes as a frame: both decoders accept them or both refuse.
            let frame = Payload::new(&raw);
            let mut de = postcard::Deserializer::from_bytes(frame.as_bytes());
            let shared = Message::deserialize_shared(&mut de, &frame).ok();
            let derived = postcard::from_bytes::<Message>(&raw).ok();
            assert_eq!(shared, derived);
            let mut de = postcard::Deserializer::from_bytes(&raw);
            let one_copy = Message::deserialize_with_one_copy(&mut de, &raw).ok();
            assert_eq!(one_copy, derived);
        }
    }
}
