//! The values Raft talks about: node identities, terms, indexes, log entries and their payloads.

use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroU64;

use serde::{Deserialize, Serialize};
use triomphe::ThinArc;

/// The identity of a node, unique within a cluster for all time.
///
/// Never reuse an id for a different machine or a wiped data directory: Raft's safety rests on a
/// node remembering what it voted for under its id. Zero is not a valid id, which makes
/// `Option<NodeId>` as small as a `u64`.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(NonZeroU64);

impl NodeId {
    /// The smallest id, 1.
    pub const MIN: Self = Self(NonZeroU64::MIN);

    /// Makes an id from a non-zero number; `None` for zero.
    #[must_use]
    pub const fn new(id: u64) -> Option<Self> {
        match NonZeroU64::new(id) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The number behind the id.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A Raft term: a logical clock that numbers elections (Raft §5.1).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[serde(transparent)]
pub struct Term(pub u64);

impl Term {
    /// The term before any election.
    pub const ZERO: Self = Self(0);

    /// The following term, or `None` if the counter would overflow.
    #[must_use]
    pub const fn next(self) -> Option<Self> {
        match self.0.checked_add(1) {
            Some(t) => Some(Self(t)),
            None => None,
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A position in the replicated log. The first entry has index 1; index 0 means "before the log".
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[serde(transparent)]
pub struct Index(pub u64);

impl Index {
    /// The position before the first entry.
    pub const ZERO: Self = Self(0);

    /// The following index, or `None` if the counter would overflow.
    #[must_use]
    pub const fn next(self) -> Option<Self> {
        match self.0.checked_add(1) {
            Some(i) => Some(Self(i)),
            None => None,
        }
    }

    /// The preceding index, saturating at zero.
    #[must_use]
    pub const fn prev(self) -> Self {
        Self(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The identity of one log entry: its term and index. Two logs that hold an entry with the same
/// `LogId` are identical up to it (the Log Matching Property, Raft §5.3).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct LogId {
    /// The term in which a leader created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: Index,
}

impl LogId {
    /// The id "before the log": term 0, index 0.
    pub const ZERO: Self = Self {
        term: Term::ZERO,
        index: Index::ZERO,
    };

    /// Makes a log id.
    #[must_use]
    pub const fn new(term: u64, index: u64) -> Self {
        Self {
            term: Term(term),
            index: Index(index),
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.term.0, self.index.0)
    }
}

/// The opaque bytes of a command. The core never looks inside.
///
/// Cloning a payload copies a pointer, not the bytes: one entry fans out to every follower, the
/// write-ahead log and the state machine without being copied.
///
/// A payload is a range of a shared, immutable buffer. [`Payload::new`] makes a buffer of its
/// own; [`Payload::slice`] and [`Message::deserialize_shared`](crate::Message::deserialize_shared) make payloads that are
/// ranges of one received buffer, so a transport decodes a message of 64 entries without 64
/// copies. A range keeps its whole buffer alive. The entries of one message are adjacent in the
/// log and are dropped together, so this usually costs little beyond the message itself; where
/// a follower keeps only a few entries of a message (the rest it already held, as after a resend
/// that overlaps), it copies them out of the message's buffer once it holds more than twice
/// their bytes, so that a resend cannot pin a large buffer for a few small entries.
#[derive(Clone)]
pub struct Payload {
    /// One word: the buffer's length is stored with its bytes, so a payload is as small as a
    /// plain `Arc<[u8]>`, and an entry no larger for being able to share a buffer.
    buffer: ThinArc<(), u8>,
    /// Where the payload's bytes start in `buffer`.
    start: u32,
    /// How many there are; [`TO_END`] for all the rest of `buffer`, so that a payload of a whole
    /// buffer holds any length. Kept here because the hot path asks for the length of every
    /// entry (the byte limits), and the buffer's own length is a load from the heap.
    len: u32,
}

/// [`Payload::len`]'s mark for "to the end of the buffer".
const TO_END: u32 = u32::MAX;

impl Payload {
    /// Copies `bytes` into a new payload (one allocation).
    #[must_use]
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            buffer: ThinArc::from_header_and_slice((), bytes),
            start: 0,
            // A length of u32::MAX or more is TO_END: the rest of the buffer, which is all of it.
            len: u32::try_from(bytes.len()).unwrap_or(TO_END),
        }
    }

    /// An empty payload.
    #[must_use]
    pub fn empty() -> Self {
        Self::new(&[])
    }

    /// The bytes.
    #[must_use]
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        let buffer = &self.buffer.slice;
        let start = self.start as usize;
        let end = if self.len == TO_END {
            buffer.len()
        } else {
            start + self.len as usize
        };
        buffer.get(start..end).unwrap_or_default()
    }

    /// The number of bytes.
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        if self.len == TO_END {
            self.as_bytes().len()
        } else {
            self.len as usize
        }
    }

    /// Whether the payload holds no bytes.
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload of `part`, which must lie within this payload's bytes, sharing this payload's
    /// buffer (no copy, no allocation). `None` if `part` is not a subslice of
    /// [`as_bytes`](Self::as_bytes), and for a subslice this type cannot express: one that starts
    /// 4 GiB or more into the buffer, or is `u32::MAX` bytes long.
    ///
    /// ```
    /// use raft_core::Payload;
    ///
    /// let frame = Payload::new(b"header:command");
    /// let command = frame.slice(&frame.as_bytes()[7..]).unwrap();
    /// assert_eq!(command.as_bytes(), b"command");
    /// assert!(frame.slice(b"elsewhere").is_none());
    /// ```
    #[must_use]
    pub fn slice(&self, part: &[u8]) -> Option<Self> {
        self.slice_at(offset_in(self.as_bytes(), part)?, part.len())
    }

    /// The payload of this payload's bytes `offset..offset + len`, sharing its buffer; `None`
    /// if they do not lie within it.
    pub(crate) fn slice_at(&self, offset: usize, len: usize) -> Option<Self> {
        if offset.checked_add(len)? > self.len() {
            return None;
        }
        let start = u32::try_from(self.start as usize + offset).ok()?;
        let len = u32::try_from(len).ok().filter(|&len| len != TO_END)?;
        Some(Self {
            buffer: self.buffer.clone(),
            start,
            len,
        })
    }
}

/// Where `part` starts in `whole`, if it lies within it (by address: `part` must be a subslice of
/// `whole`, not bytes equal to some of it).
pub(crate) fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let offset = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (offset.checked_add(part.len())? <= whole.len()).then_some(offset)
}

/// Gives `entries` a buffer of their own when the one their payloads share holds more than
/// twice their bytes (and more than [`DETACH_SLACK`] beyond them): one copy, so that a few
/// entries kept from a large message do not keep the whole message alive. Entries whose payloads
/// are in different buffers are left as they are (each was made on its own).
pub(crate) fn detach_from_wasteful_buffer(entries: &mut [Entry]) {
    let Some(first) = entries.first() else {
        return;
    };
    let buffer = first.data.buffer.ptr();
    let buffer_len = first.data.buffer.slice.len();
    if entries.iter().any(|e| e.data.buffer.ptr() != buffer) {
        return;
    }
    let kept: usize = entries.iter().map(|e| e.data.len()).sum();
    if buffer_len <= kept.saturating_mul(2).saturating_add(DETACH_SLACK) {
        return;
    }
    let mut bytes = Vec::with_capacity(kept);
    for e in entries.iter() {
        bytes.extend_from_slice(e.data.as_bytes());
    }
    let copy = Payload::new(&bytes);
    let mut at = 0;
    for e in entries.iter_mut() {
        let len = e.data.len();
        if let Some(part) = copy.slice_at(at, len) {
            e.data = part;
        }
        at += len;
    }
}

/// What a shared buffer may hold beyond the entries kept from it before they are copied out.
const DETACH_SLACK: usize = 4096;

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Payload {}

impl core::hash::Hash for Payload {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.len())
    }
}

impl core::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for Payload {
    fn from(bytes: &[u8]) -> Self {
        Self::new(bytes)
    }
}

impl From<Vec<u8>> for Payload {
    /// Copies the bytes (one allocation), as `Arc<[u8]>::from` does.
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(&bytes)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Payload {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::new(u.arbitrary::<&[u8]>()?))
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload::new(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload::from(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Payload, A::Error> {
                // Bounded by what the decoder holds: the hint is never trusted for the allocation.
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Payload::from(bytes))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

/// What an entry is for.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EntryKind {
    /// A command proposed by the application; its payload goes to the state machine.
    Normal,
    /// The empty entry a new leader appends to commit entries of earlier terms (Raft §5.4.2,
    /// §8). The state machine skips it, but it still counts as applied.
    Noop,
    /// A cluster configuration ([`Membership::encode`](crate::Membership::encode) bytes). It
    /// takes effect on each node as soon as it is in that node's log, committed or not (Raft
    /// thesis §4.1). The state machine skips it, but it still counts as applied.
    Config,
}

/// One entry of the replicated log.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's term and index.
    pub id: LogId,
    /// What the entry is for.
    pub kind: EntryKind,
    /// The command bytes (empty for a no-op).
    pub data: Payload,
}

/// A run of consecutive entries, as an AppendEntries carries them and a [`Write`](crate::Write)
/// appends them: one entry is held inline, more in one heap buffer. The same type on both
/// sides, so a follower moves a message's entries into its write without copying them.
pub type Entries = smallvec::SmallVec<[Entry; 1]>;

impl Entry {
    /// A rough size in bytes, for the per-message and in-flight byte limits.
    #[must_use]
    pub fn size_estimate(&self) -> u64 {
        // Term, index and kind on the wire come to about 16 bytes next to the payload.
        self.data.len() as u64 + 16
    }
}

/// The part of a node's state that MUST be durable before it is relied upon (Raft Figure 2,
/// "persistent state on all servers", less the log, which is persisted as entries).
///
/// The commit index is volatile (Figure 2) and is not part of it: on restart the node learns it
/// again from the leader, starting from the applied index the adapter reports.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
}

/// The caller's name for a read request, echoed back when the read is ready.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ReadId(pub u64);

/// The name of a write. Only the node can mint one; ids increase with every write.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct WriteId(pub(crate) u64);

impl WriteId {
    /// The number behind the id, for logs and metrics.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use serde::de::IntoDeserializer;

    /// Entries of `bytes` at `ranges`, their payloads ranges of one buffer holding `bytes`.
    fn entries_in(bytes: &[u8], ranges: &[(usize, usize)]) -> (Payload, Vec<Entry>) {
        let buffer = Payload::new(bytes);
        let entries = ranges
            .iter()
            .enumerate()
            .map(|(i, &(at, len))| Entry {
                id: LogId::new(1, i as u64 + 1),
                kind: EntryKind::Normal,
                data: buffer.slice_at(at, len).unwrap(),
            })
            .collect();
        (buffer, entries)
    }

    fn in_buffer(buffer: &Payload, p: &Payload) -> bool {
        let b = buffer.as_bytes().as_ptr_range();
        b.contains(&p.as_bytes().as_ptr())
    }

    /// A few entries kept from a large buffer are copied out into one buffer of their own, bytes
    /// unchanged; entries that use most of their buffer, or a buffer only a little larger, or
    /// buffers of their own, are left where they are.
    #[test]
    fn entries_leave_a_buffer_they_mostly_do_not_use() {
        let bytes: Vec<u8> = (0..20_000_u32).map(|i| i as u8).collect();
        let (buffer, mut few) = entries_in(&bytes, &[(10_000, 16), (10_016, 16)]);
        let before: Vec<Vec<u8>> = few.iter().map(|e| e.data.to_vec()).collect();
        detach_from_wasteful_buffer(&mut few);
        let after: Vec<Vec<u8>> = few.iter().map(|e| e.data.to_vec()).collect();
        assert_eq!(after, before);
        assert!(few.iter().all(|e| !in_buffer(&buffer, &e.data)));
        assert_eq!(
            few[0].data.buffer.ptr(),
            few[1].data.buffer.ptr(),
            "one copy for both"
        );
        assert_eq!(few[0].data.buffer.slice.len(), 32);

        let (buffer, mut most) = entries_in(&bytes, &[(0, 12_000)]);
        detach_from_wasteful_buffer(&mut most);
        assert!(
            in_buffer(&buffer, &most[0].data),
            "uses more than half: kept"
        );

        let (buffer, mut small) = entries_in(&bytes[..4_000], &[(100, 16)]);
        detach_from_wasteful_buffer(&mut small);
        assert!(in_buffer(&buffer, &small[0].data), "within the slack: kept");

        let (buffer, mut shared) = entries_in(&bytes, &[(0, 16)]);
        shared.push(Entry {
            id: LogId::new(1, 2),
            kind: EntryKind::Normal,
            data: Payload::new(b"its own"),
        });
        detach_from_wasteful_buffer(&mut shared);
        assert!(
            in_buffer(&buffer, &shared[0].data),
            "mixed buffers: left alone"
        );

        detach_from_wasteful_buffer(&mut []);
    }

    /// A node id prints as its number, and debugs as `n<number>` (as in traces and assertion
    /// messages), so it cannot be mistaken for a term or an index.
    #[test]
    fn node_ids_display_bare_and_debug_with_an_n() {
        let n = NodeId::new(7).unwrap();
        assert_eq!(n.to_string(), "7");
        assert_eq!(format!("{n:?}"), "n7");
        assert_eq!(format!("{:?}", Some(n)), "Some(n7)");
    }

    /// A log id prints as `term.index`, the form traces and error messages use.
    #[test]
    fn log_ids_display_as_term_dot_index() {
        assert_eq!(LogId::new(3, 12).to_string(), "3.12");
        assert_eq!(LogId::ZERO.to_string(), "0.0");
    }

    /// A payload gives back exactly the bytes it was made from, through every view, and is
    /// empty exactly when it holds no bytes.
    #[test]
    fn payloads_give_back_their_bytes() {
        let p = Payload::new(b"abc");
        assert_eq!(p.as_bytes(), b"abc");
        assert_eq!(p.as_ref(), b"abc");
        assert_eq!(&*p, b"abc");
        assert_eq!(p.len(), 3);
        assert!(!p.is_empty());
        let e = Payload::empty();
        assert!(e.is_empty());
        assert_eq!(e.as_bytes(), b"");
        assert!(Payload::from(alloc::vec![0_u8]).as_bytes() == [0]);
    }

    /// Payloads are equal, and hash alike, by their bytes alone: wherever their buffers are and
    /// whatever else those hold. A slice of a slice is the bytes it names.
    #[test]
    fn payloads_compare_and_hash_by_their_bytes() {
        /// A hasher that keeps what it is fed.
        #[derive(Default)]
        struct Fed(Vec<u8>);
        impl core::hash::Hasher for Fed {
            fn finish(&self) -> u64 {
                0
            }
            fn write(&mut self, bytes: &[u8]) {
                self.0.extend_from_slice(bytes);
            }
        }
        let fed = |p: &Payload| {
            let mut h = Fed::default();
            core::hash::Hash::hash(p, &mut h);
            h.0
        };
        let own = Payload::new(b"abc");
        let frame = Payload::new(b"xxabcxx");
        let part = frame.slice(&frame[2..5]).unwrap();
        assert_eq!(own, part);
        assert_eq!(fed(&own), fed(&part));
        let other = frame.slice(&frame[1..4]).unwrap();
        assert_ne!(own, other);
        assert_ne!(fed(&own), fed(&other));
        assert_ne!(own, Payload::new(b"abcd"));

        let digits = Payload::new(b"0123456789");
        let middle = digits.slice(&digits[2..8]).unwrap();
        let inner = middle.slice(&middle[1..3]).unwrap();
        assert_eq!(inner.as_bytes(), b"34");
        assert_eq!(inner.len(), 2);
        assert!(
            middle.slice(&digits[8..9]).is_none(),
            "outside the slice, inside the buffer"
        );
    }

    /// A payload's `Debug` shows its size, never its bytes: commands may be large or
    /// confidential, and a node's state is debugged into logs.
    #[test]
    fn payload_debug_shows_the_size_not_the_bytes() {
        let p = Payload::new(b"secret");
        assert_eq!(format!("{p:?}"), "Payload(6 bytes)");
    }

    /// Decoding a payload from something other than bytes fails with a message that says what
    /// was expected.
    #[test]
    fn payload_decoding_says_it_expects_bytes() {
        let d: serde::de::value::U32Deserializer<serde::de::value::Error> =
            5_u32.into_deserializer();
        let err = Payload::deserialize(d).unwrap_err();
        assert!(err.to_string().contains("expected a byte string"), "{err}");
    }
}
