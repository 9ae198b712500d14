//! What clients send and get back: requests, commands, queries, responses and errors.
//!
//! Requests travel through the replicated log as [`postcard`] bytes ([`KvRequest::encode`],
//! [`decode_request`]). Postcard numbers enum variants by position, so the variants below are
//! never reordered or removed: new ones go at the end.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::client::ClientId;
use crate::client::Stamp;

/// One client request, as proposed to the log.
///
/// `seq` numbers a client's writes: 1 for its first, then increasing (gaps are allowed). A
/// retry of a write reuses its `seq`, and the store answers it with the saved response instead
/// of applying it again. `ack` tells the store which responses it may forget. `seq` 0 opts
/// out: the command is applied every time it is committed (see [`KvStore`](super::KvStore) for
/// the whole rule). A [`Session`](crate::client::Session) numbers a client's writes.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct KvRequest {
    /// Who sends it.
    pub client: ClientId,
    /// The client's sequence number for this write; 0 for no deduplication.
    pub seq: u64,
    /// Every write of the client numbered below this has been answered: the store may forget
    /// their responses. At most `seq`.
    pub ack: u64,
    /// What to do.
    pub command: KvCommand,
}

impl KvRequest {
    /// A request from `client` with sequence number `seq`, from a client with one write in
    /// flight at a time (`ack` is `seq`: every earlier write was answered).
    #[must_use]
    pub const fn new(client: ClientId, seq: u64, command: KvCommand) -> Self {
        Self {
            client,
            seq,
            ack: seq,
            command,
        }
    }

    /// A request stamped by a [`Session`](crate::client::Session).
    #[must_use]
    pub const fn stamped(stamp: Stamp, command: KvCommand) -> Self {
        Self {
            client: stamp.client,
            seq: stamp.seq,
            ack: stamp.ack,
            command,
        }
    }

    /// A request that is not deduplicated (`seq` 0): applied every time it commits.
    #[must_use]
    pub const fn unsessioned(command: KvCommand) -> Self {
        Self::new(ClientId(0), 0, command)
    }

    /// The bytes to propose to the log; [`decode_request`] reads them back.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // Serializing into a growable Vec cannot fail for these types (every sequence has a
        // known length and no serde impl returns a custom error). Were it ever to, the empty
        // output decodes as `KvError::Malformed`: an error answer, never a wrong write.
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

/// Reads a request written by [`KvRequest::encode`].
///
/// Total: any byte string gives a request or [`KvError::Malformed`], never a panic, and no
/// allocation larger than the input justifies (beyond serde's capped preallocation). Trailing
/// bytes after a valid request are malformed too. Fuzz targets call this directly.
///
/// # Errors
///
/// [`KvError::Malformed`] for bytes that are not exactly one encoded request.
pub fn decode_request(bytes: &[u8]) -> Result<KvRequest, KvError> {
    match postcard::take_from_bytes::<KvRequest>(bytes) {
        Ok((request, [])) => Ok(request),
        Ok(_) | Err(_) => Err(KvError::Malformed),
    }
}

/// A write (or a read through the log), applied in log order on every replica.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum KvCommand {
    /// `SET key value`: answers [`KvResponse::Ok`].
    Set {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// Its new value.
        #[serde(with = "bytes")]
        value: Vec<u8>,
    },
    /// `DEL key...`: answers [`KvResponse::Integer`], how many of the keys existed (a key named
    /// twice counts once, as in Redis).
    Del {
        /// The keys to remove.
        #[serde(with = "bytes_list")]
        keys: Vec<Vec<u8>>,
    },
    /// `INCRBY key delta` (`INCR` is a delta of 1, `DECR` of -1): answers the new value as
    /// [`KvResponse::Integer`]. A missing key counts as 0. A value that is not the canonical
    /// decimal form of an `i64` gives [`KvError::NotAnInteger`]; overflow gives
    /// [`KvError::Overflow`].
    IncrBy {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// What to add.
        delta: i64,
    },
    /// `APPEND key value`: answers the value's new length as [`KvResponse::Integer`]; a missing
    /// key is created.
    Append {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// What to append.
        #[serde(with = "bytes")]
        value: Vec<u8>,
    },
    /// `MSET key value...`: sets every pair, in order (a key named twice keeps its last value),
    /// or none if one is over the size limits; answers [`KvResponse::Ok`].
    MSet {
        /// The pairs to set.
        #[serde(with = "bytes_pairs")]
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// A read through the log, for clients that want reads ordered with writes without a
    /// ReadIndex. Reads change nothing, so they are never deduplicated: their `seq` is ignored
    /// and their response not saved.
    Read(KvQuery),
    /// `SET key value NX` or `XX`: sets the key only if it is absent (or present); answers
    /// [`KvResponse::Ok`] if it did, [`KvResponse::Value`]`(None)` if not.
    SetIf {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// Its new value.
        #[serde(with = "bytes")]
        value: Vec<u8>,
        /// When to set it.
        condition: SetCondition,
    },
    /// `FLUSHALL` (and `FLUSHDB`, there being one database): removes every key; answers
    /// [`KvResponse::Ok`]. Sessions and peer addresses stay.
    FlushAll,
    /// Records (or, with `None`, forgets) the peer address of node `id`, replicated so that every
    /// node, and every future leader, can reach it; answers [`KvResponse::Ok`]. See
    /// [`KvStore::peers`](super::KvStore::peers).
    SetPeer {
        /// The node.
        id: u64,
        /// Where its peer port listens (`host:port`).
        addr: Option<String>,
    },
}

/// When a [`KvCommand::SetIf`] sets its key.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum SetCondition {
    /// Only if the key does not exist (`NX`).
    IfAbsent,
    /// Only if the key exists (`XX`).
    IfPresent,
}

impl KvCommand {
    /// `SET key value`.
    pub fn set(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `INCR key`.
    pub fn incr(key: impl Into<Vec<u8>>) -> Self {
        Self::IncrBy {
            key: key.into(),
            delta: 1,
        }
    }

    /// Whether the command only reads.
    #[must_use]
    pub const fn is_read(&self) -> bool {
        matches!(self, Self::Read(_))
    }
}

/// A read-only request: served at a linearizable read point ([`StateMachine::query`]), or
/// through the log as [`KvCommand::Read`].
///
/// [`StateMachine::query`]: crate::state_machine::StateMachine::query
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum KvQuery {
    /// `GET key`: answers [`KvResponse::Value`].
    Get {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
    },
    /// `MGET key...`: answers [`KvResponse::Values`], one per key, in order.
    MGet {
        /// The keys.
        #[serde(with = "bytes_list")]
        keys: Vec<Vec<u8>>,
    },
    /// `EXISTS key...`: answers [`KvResponse::Integer`], how many of the keys exist (a key named
    /// twice counts twice, as in Redis).
    Exists {
        /// The keys.
        #[serde(with = "bytes_list")]
        keys: Vec<Vec<u8>>,
    },
    /// `DBSIZE`: answers [`KvResponse::Integer`], the number of keys.
    DbSize,
}

impl KvQuery {
    /// `GET key`.
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        Self::Get { key: key.into() }
    }
}

/// What a command or query answers.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum KvResponse {
    /// Done (RESP `+OK`).
    Ok,
    /// A value, or none for a missing key (RESP bulk string or nil).
    Value(#[serde(with = "opt_bytes")] Option<Vec<u8>>),
    /// One value or none per key (RESP array).
    Values(#[serde(with = "opt_bytes_list")] Vec<Option<Vec<u8>>>),
    /// A number (RESP integer).
    Integer(i64),
    /// The request failed; nothing changed (RESP error, [`KvError::message`]).
    Error(KvError),
}

/// Why a request failed. Every variant leaves the store unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum KvError {
    /// The command bytes are not a [`KvRequest`].
    Malformed,
    /// The write's sequence number is below what its session still keeps responses for (the
    /// client acknowledged it, or more writes were in flight than the session keeps): a late
    /// retry. The write may or may not have been applied.
    StaleSequence,
    /// The client's session was evicted (too many clients since it last wrote), so a retry can
    /// no longer be told from a new write. The write was not applied now; an earlier attempt
    /// may have been. The client should start a new session (a fresh [`ClientId`]).
    SessionExpired,
    /// The value is not the decimal form of a 64-bit signed integer.
    NotAnInteger,
    /// The increment would overflow a 64-bit signed integer.
    Overflow,
    /// A key is longer than [`KvConfig::max_key_len`](super::KvConfig::max_key_len).
    KeyTooLarge,
    /// A value (or an append's result) is longer than
    /// [`KvConfig::max_value_len`](super::KvConfig::max_value_len).
    ValueTooLarge,
    /// A read would answer more than
    /// [`KvConfig::max_response_bytes`](super::KvConfig::max_response_bytes) (an `MGET` of many
    /// large values, or of one large value many times).
    ResponseTooLarge,
}

impl KvError {
    /// The Redis-style error line (without RESP framing), e.g.
    /// `ERR value is not an integer or out of range`.
    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::Malformed => "ERR malformed request",
            Self::StaleSequence => "ERR stale request: a later one from this client was applied",
            Self::SessionExpired => "ERR client session expired: start a new session",
            Self::NotAnInteger => "ERR value is not an integer or out of range",
            Self::Overflow => "ERR increment or decrement would overflow",
            Self::KeyTooLarge => "ERR key exceeds the maximum allowed size",
            Self::ValueTooLarge => "ERR string exceeds maximum allowed size",
            Self::ResponseTooLarge => "ERR reply exceeds the maximum allowed size",
        }
    }

    /// A stable one-byte code (used by the snapshot format).
    pub(super) const fn code(self) -> u8 {
        match self {
            Self::Malformed => 0,
            Self::StaleSequence => 1,
            Self::SessionExpired => 2,
            Self::NotAnInteger => 3,
            Self::Overflow => 4,
            Self::KeyTooLarge => 5,
            Self::ValueTooLarge => 6,
            Self::ResponseTooLarge => 7,
        }
    }

    /// The error with code `code`, if any.
    pub(super) const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Malformed,
            1 => Self::StaleSequence,
            2 => Self::SessionExpired,
            3 => Self::NotAnInteger,
            4 => Self::Overflow,
            5 => Self::KeyTooLarge,
            6 => Self::ValueTooLarge,
            7 => Self::ResponseTooLarge,
            _ => return None,
        })
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for KvError {}

// Serde helpers: byte strings as serde "bytes" rather than sequences of u8, so postcard copies
// them in one go instead of visiting every byte. Postcard writes both forms identically (a
// varint length, then the bytes), so this is an implementation detail, not a format choice.

/// A borrowed byte string that serializes as bytes.
struct ByteRef<'a>(&'a [u8]);

impl Serialize for ByteRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// An owned byte string that deserializes from bytes.
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

mod bytes {
    use super::{ByteBuf, ByteRef};
    use serde::{Deserialize, Serialize};

    pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        ByteRef(v).serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        ByteBuf::deserialize(d).map(|b| b.0)
    }
}

mod bytes_list {
    use super::{ByteBuf, ByteRef};
    use serde::Deserialize;

    pub(super) fn serialize<S: serde::Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| ByteRef(b)))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<ByteBuf>::deserialize(d).map(|v| v.into_iter().map(|b| b.0).collect())
    }
}

mod bytes_pairs {
    use super::{ByteBuf, ByteRef};
    use serde::Deserialize;

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    pub(super) fn serialize<S: serde::Serializer>(
        v: &[(Vec<u8>, Vec<u8>)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(k, v)| (ByteRef(k), ByteRef(v))))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        Vec::<(ByteBuf, ByteBuf)>::deserialize(d)
            .map(|v| v.into_iter().map(|(k, v)| (k.0, v.0)).collect())
    }
}

mod opt_bytes {
    use super::{ByteBuf, ByteRef};
    use serde::{Deserialize, Serialize};

    #[allow(clippy::ref_option)] // serde's `with` hands the field by reference
    pub(super) fn serialize<S: serde::Serializer>(
        v: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_deref().map(ByteRef).serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<ByteBuf>::deserialize(d).map(|b| b.map(|b| b.0))
    }
}

mod opt_bytes_list {
    use super::{ByteBuf, ByteRef};
    use serde::Deserialize;

    pub(super) fn serialize<S: serde::Serializer>(
        v: &[Option<Vec<u8>>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| b.as_deref().map(ByteRef)))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Option<Vec<u8>>>, D::Error> {
        Vec::<Option<ByteBuf>>::deserialize(d)
            .map(|v| v.into_iter().map(|b| b.map(|b| b.0)).collect())
    }
}
