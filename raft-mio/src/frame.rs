//! The peer wire format: length-prefixed [`postcard`] frames with a version byte.
//!
//! ```text
//! len      u32 little-endian: the bytes that follow (version + body), at most the maximum
//! version  u8  2 (1: before raft-core's commit notice, `MessageBody::Commit`)
//! body     postcard-encoded PeerFrame, exactly len - 1 bytes
//! ```
//!
//! The decoder ([`FrameDecoder`]) is total: any byte string gives frames, "need more bytes", or a
//! [`FrameError`], never a panic; a length over the maximum is refused from its four header bytes,
//! before any of the body is buffered. The fuzz target `peer_frame` drives it.

use std::fmt;

use raft_core::{Message, NodeId};
use serde::{Deserialize, Serialize};

/// The frame format version this build speaks. Version 2 added a message kind (raft-core's
/// commit notice) that a version-1 node could not decode: a peer of the other version is
/// refused by its first frame, with [`FrameError::Version`], rather than failing on some bodies.
pub const VERSION: u8 = 2;

/// The bytes before a frame's body: the length and the version.
pub(crate) const HEADER: usize = 5;

/// What travels between two nodes' peer ports.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum PeerFrame {
    /// The first frame on a connection, from the node that dialed.
    Hello(Hello),
    /// The answer to an accepted [`Hello`]: the node that accepted.
    Welcome {
        /// Its cluster name.
        cluster: String,
        /// Its id.
        id: NodeId,
    },
    /// The answer to a refused [`Hello`], just before the connection is closed.
    Refused {
        /// Why, for the dialer's log.
        reason: String,
    },
    /// A Raft message.
    Raft(Message),
    /// Bytes for the application on top of the transport (the server's forwarding).
    App(#[serde(with = "serde_bytes_vec")] Vec<u8>),
}

/// Who is dialing, and whom it believes it reached.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The cluster's name: a node of another cluster is refused.
    pub cluster: String,
    /// The dialing node's id.
    pub from: NodeId,
    /// The id the dialer expects the listener to have.
    pub to: NodeId,
    /// The dialing node's own peer address, as configured: it must match what the listener has
    /// on record for `from`.
    pub addr: String,
}

/// Why bytes from a peer are not a frame. The connection is closed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// The length prefix is larger than the maximum frame size.
    TooLarge {
        /// The length announced.
        len: u64,
        /// The maximum.
        max: usize,
    },
    /// A zero length: no room for the version byte.
    Empty,
    /// A version this build does not speak.
    Version(u8),
    /// The body is not one postcard-encoded frame.
    Malformed,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max}")
            }
            Self::Empty => f.write_str("frame of length 0"),
            Self::Version(v) => write!(f, "frame version {v}, expected {VERSION}"),
            Self::Malformed => f.write_str("malformed frame body"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends `frame`, framed, to `out`.
pub fn encode(frame: &PeerFrame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    // Serializing into a growable Vec cannot fail for these types; were it ever to, the frame
    // is left out rather than sent half-written.
    match postcard::to_extend(frame, std::mem::take(out)) {
        Ok(v) => *out = v,
        Err(_) => {
            out.truncate(start);
            return;
        }
    }
    let body = out.len() - start - HEADER;
    let len = u32::try_from(body + 1).unwrap_or(u32::MAX);
    if let Some((h_len, rest)) = out
        .get_mut(start..)
        .and_then(<[u8]>::split_first_chunk_mut::<4>)
        && let Some(h_version) = rest.first_mut()
    {
        *h_len = len.to_le_bytes();
        *h_version = VERSION;
    }
}

/// Decodes frames from the front of a byte buffer, refusing any longer than `max` bytes.
#[derive(Clone, Copy, Debug)]
pub struct FrameDecoder {
    max: usize,
}

impl FrameDecoder {
    /// A decoder for frames of at most `max` bytes (version byte and body).
    #[must_use]
    pub const fn new(max: usize) -> Self {
        Self { max }
    }

    /// The first frame in `buf` and the bytes it took, `Ok(None)` if `buf` holds only part of
    /// one.
    ///
    /// # Errors
    ///
    /// [`FrameError`] for bytes that are not a frame; nothing after them can be trusted.
    pub fn decode(&self, buf: &[u8]) -> Result<Option<(PeerFrame, usize)>, FrameError> {
        let Some(&len) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(len);
        let too_large = FrameError::TooLarge {
            len: u64::from(len),
            max: self.max,
        };
        let len = usize::try_from(len).map_err(|_| too_large.clone())?;
        if len > self.max {
            return Err(too_large);
        }
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if let Some(&version) = buf.get(4)
            && version != VERSION
        {
            return Err(FrameError::Version(version));
        }
        let Some(body) = buf.get(HEADER..4 + len) else {
            return Ok(None);
        };
        decode_body(body).map(|frame| Some((frame, 4 + len)))
    }

    /// Decodes every frame in `bytes` until it runs out or fails: what the fuzz target calls.
    ///
    /// # Errors
    ///
    /// The first [`FrameError`].
    pub fn decode_all(&self, mut bytes: &[u8]) -> Result<Vec<PeerFrame>, FrameError> {
        let mut frames = Vec::new();
        while let Some((frame, used)) = self.decode(bytes)? {
            frames.push(frame);
            bytes = bytes.get(used..).unwrap_or_default();
        }
        Ok(frames)
    }
}

/// The first byte of a [`PeerFrame::Raft`] body: postcard's variant index, a one-byte varint.
const RAFT_TAG: u8 = 3;

/// The frame in `body`, all of it.
///
/// A Raft message decodes with [`Message::deserialize_with_one_copy`]: its payloads are ranges
/// of one copy of the body, so a 64-entry AppendEntries costs three allocations, not 65, and a
/// message without payloads none. Every other frame, and any body that does not start with the
/// one-byte tag, takes the derived decode, which gives the same frame (the tests and the fuzz
/// target `peer_frame` check that the two agree).
fn decode_body(body: &[u8]) -> Result<PeerFrame, FrameError> {
    if let Some((&RAFT_TAG, message)) = body.split_first() {
        let mut de = postcard::Deserializer::from_bytes(message);
        return match Message::deserialize_with_one_copy(&mut de, message)
            .map(|m| (m, de.finalize()))
        {
            Ok((message, Ok([]))) => Ok(PeerFrame::Raft(message)),
            Ok(_) | Err(_) => Err(FrameError::Malformed),
        };
    }
    decode_body_derived(body)
}

/// The frame in `body`, all of it, by the derived decode (a copy per payload).
pub(crate) fn decode_body_derived(body: &[u8]) -> Result<PeerFrame, FrameError> {
    match postcard::take_from_bytes::<PeerFrame>(body) {
        Ok((frame, [])) => Ok(frame),
        Ok(_) | Err(_) => Err(FrameError::Malformed),
    }
}

/// An application payload as serde bytes (one copy, not a sequence of u8).
mod serde_bytes_vec {
    use std::fmt;

    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use raft_core::{MessageBody, Term};

    use super::*;

    fn n(i: u64) -> NodeId {
        NodeId::new(i).unwrap_or(NodeId::MIN)
    }

    fn frames() -> Vec<PeerFrame> {
        vec![
            PeerFrame::Hello(Hello {
                cluster: "c".into(),
                from: n(1),
                to: n(2),
                addr: "127.0.0.1:7001".into(),
            }),
            PeerFrame::Welcome {
                cluster: "c".into(),
                id: n(2),
            },
            PeerFrame::App(vec![1, 2, 3]),
            PeerFrame::Raft(Message {
                from: n(1),
                to: n(2),
                term: Term(3),
                body: MessageBody::TimeoutNow,
            }),
            PeerFrame::Refused {
                reason: "no".into(),
            },
        ]
    }

    #[test]
    fn frames_round_trip_one_after_another() {
        let mut buf = Vec::new();
        for f in frames() {
            encode(&f, &mut buf);
        }
        let decoder = FrameDecoder::new(1 << 20);
        assert_eq!(decoder.decode_all(&buf).unwrap(), frames());
        // Every prefix is "not yet", never an error.
        for cut in 0..buf.len() {
            let got = decoder.decode_all(&buf[..cut]).unwrap();
            assert!(got.len() < frames().len());
        }
    }

    /// 20,000 pseudo-random byte strings shorter than `max_len`, from `seed`.
    fn random_byte_strings(seed: u64, max_len: u64) -> impl Iterator<Item = Vec<u8>> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..20_000).map(move |_| {
            let len = (next() % max_len) as usize;
            (0..len).map(|_| next() as u8).collect()
        })
    }

    /// Raft frames of the kinds that carry payloads: an AppendEntries of 64 entries (one of
    /// them empty), one of a single entry, and a snapshot chunk.
    fn raft_frames_with_payloads() -> Vec<PeerFrame> {
        let entries = |count: u64| -> raft_core::Entries {
            (1..=count)
                .map(|i| raft_core::Entry {
                    id: raft_core::LogId::new(3, i),
                    kind: raft_core::EntryKind::Normal,
                    data: raft_core::Payload::new(if i == 5 { &[][..] } else { b"set k v" }),
                })
                .collect()
        };
        let raft = |body| {
            PeerFrame::Raft(Message {
                from: n(1),
                to: n(2),
                term: Term(3),
                body,
            })
        };
        vec![
            raft(MessageBody::AppendEntries {
                prev: raft_core::LogId::ZERO,
                entries: entries(64),
                commit: raft_core::Index(2),
            }),
            raft(MessageBody::AppendEntries {
                prev: raft_core::LogId::new(3, 7),
                entries: entries(1),
                commit: raft_core::Index(7),
            }),
            raft(MessageBody::InstallSnapshot {
                meta: Box::new(raft_core::SnapshotMeta {
                    last: raft_core::LogId::new(3, 9),
                    membership: raft_core::Membership::new(&[n(1), n(2), n(3)]).unwrap(),
                }),
                offset: 4096,
                data: raft_core::Payload::new(&[0xab; 300]),
                done: true,
            }),
        ]
    }

    /// The one-byte tag the Raft fast path looks for is what `encode` writes for a Raft frame,
    /// and only for one.
    #[test]
    fn the_raft_tag_is_the_raft_variant() {
        for f in frames() {
            let mut buf = Vec::new();
            encode(&f, &mut buf);
            assert_eq!(
                buf[HEADER] == RAFT_TAG,
                matches!(f, PeerFrame::Raft(_)),
                "{f:?}"
            );
        }
    }

    /// A 64-entry AppendEntries decodes to the message sent, and its payloads are ranges of one
    /// buffer: each at its wire offset from the first.
    #[test]
    fn a_raft_frame_decodes_with_payloads_in_one_buffer() {
        let entries: raft_core::Entries = (1..=64)
            .map(|i| raft_core::Entry {
                id: raft_core::LogId::new(3, i),
                kind: raft_core::EntryKind::Normal,
                data: raft_core::Payload::new(format!("set key{i:02} value").as_bytes()),
            })
            .collect();
        let sent = PeerFrame::Raft(Message {
            from: n(1),
            to: n(2),
            term: Term(3),
            body: MessageBody::AppendEntries {
                prev: raft_core::LogId::ZERO,
                entries,
                commit: raft_core::Index(0),
            },
        });
        let mut buf = Vec::new();
        encode(&sent, &mut buf);
        let (got, used) = FrameDecoder::new(1 << 20).decode(&buf).unwrap().unwrap();
        assert_eq!((&got, used), (&sent, buf.len()));
        let PeerFrame::Raft(Message {
            body: MessageBody::AppendEntries { entries, .. },
            ..
        }) = got
        else {
            unreachable!("decoded as sent")
        };
        let base = entries[0].data.as_ptr() as usize;
        for e in &entries {
            let wire = buf
                .windows(e.data.len())
                .position(|w| w == e.data.as_bytes())
                .unwrap();
            let first = buf
                .windows(entries[0].data.len())
                .position(|w| w == entries[0].data.as_bytes())
                .unwrap();
            assert_eq!(e.data.as_ptr() as usize - base, wire - first);
        }
    }

    /// The Raft fast path and the derived decode agree on every body that starts with the tag:
    /// each frame, payloads or none, cut anywhere or with a byte too many, and random bytes
    /// after the tag.
    #[test]
    fn the_raft_fast_path_agrees_with_the_derived_decode() {
        let mut bodies = Vec::new();
        for f in frames().into_iter().chain(raft_frames_with_payloads()) {
            let mut buf = Vec::new();
            encode(&f, &mut buf);
            let body = buf[HEADER..].to_vec();
            assert_eq!(decode_body(&body), Ok(f));
            for cut in 0..=body.len() {
                bodies.push(body[..cut].to_vec());
            }
            bodies.push([&body[..], &[0]].concat());
        }
        for bytes in random_byte_strings(0x2545_f491_4f6c_dd1d, 48) {
            bodies.push([&[RAFT_TAG], &bytes[..]].concat());
        }
        for body in bodies {
            assert_eq!(decode_body(&body), decode_body_derived(&body), "{body:?}");
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header() {
        let decoder = FrameDecoder::new(100);
        let header = 1_000_000_u32.to_le_bytes();
        assert!(matches!(
            decoder.decode(&header),
            Err(FrameError::TooLarge { len: 1_000_000, .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let decoder = FrameDecoder::new(1 << 20);
        assert_eq!(decoder.decode(&[0, 0, 0, 0]), Err(FrameError::Empty));
        assert_eq!(
            decoder.decode(&[2, 0, 0, 0, 9, 0]),
            Err(FrameError::Version(9))
        );
        assert_eq!(
            decoder.decode(&[3, 0, 0, 0, VERSION, 0xff, 0xff]),
            Err(FrameError::Malformed)
        );
        // A valid body with a trailing byte inside the frame is malformed too.
        let mut buf = Vec::new();
        encode(&PeerFrame::App(vec![7]), &mut buf);
        buf[0] += 1;
        buf.push(0);
        assert_eq!(decoder.decode(&buf), Err(FrameError::Malformed));
        for bytes in random_byte_strings(0x1234_5678, 40) {
            let _ = decoder.decode_all(&bytes);
        }
    }
}
