//! [`Session`]: exactly-once writes from the client's side (Raft thesis §6.3). Each write
//! carries a [`Stamp`]: the client's id, the write's sequence number, and how far the client has
//! heard back. A retry reuses the stamp's sequence number, so a state machine that keeps the
//! session (as [`KvStore`](crate::kv::KvStore) does) answers it from memory instead of applying
//! it again.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use serde::{Deserialize, Serialize};

/// Identifies a client for the deduplication of retried writes.
///
/// Clients pick their own ids ([`ClientId::random`] draws 64 bits); two clients that share an id
/// share a session and confuse each other's retries.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ClientId(pub u64);

impl ClientId {
    /// A random id (from the process's random hasher keys and the clock), never 0.
    #[must_use]
    pub fn random() -> Self {
        let mut h = std::hash::RandomState::new().build_hasher();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        Self(h.finish().max(1))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a write carries so that a retry of it is recognised.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stamp {
    /// The client.
    pub client: ClientId,
    /// The write's sequence number: 1 for the client's first, then increasing.
    pub seq: u64,
    /// Every write of the client numbered below `ack` has been answered: the state machine may
    /// forget their responses. At most `seq`.
    pub ack: u64,
}

/// A client's session: numbers its writes, and tracks which are still waiting for an answer.
///
/// Writes may overlap (a pipelining client has many in flight): each gets the next sequence
/// number from [`Session::begin`], keeps it across retries, and is [`Session::finish`]ed once
/// answered. The state machine keeps the responses of every write from the lowest one still
/// waiting, so a retry of any of them, in any order, is answered and not applied again. The
/// limits of that promise are the state machine's: [`KvStore`](crate::kv::KvStore) keeps a
/// bounded number of sessions and of responses per session, and says so
/// ([`KvError::SessionExpired`](crate::kv::KvError::SessionExpired),
/// [`KvError::StaleSequence`](crate::kv::KvError::StaleSequence)) rather than guess.
///
/// ```
/// use raft_std::client::{ClientId, Session};
///
/// let mut session = Session::new(ClientId(9));
/// let a = session.begin();
/// let b = session.begin();
/// assert_eq!((a.seq, a.ack), (1, 1));
/// assert_eq!((b.seq, b.ack), (2, 1), "1 is still waiting");
/// session.finish(a.seq);
/// let c = session.begin();
/// assert_eq!((c.seq, c.ack), (3, 2));
/// // A retry of b keeps its number, with what the client has heard since.
/// assert_eq!(session.retry(b), ClientId(9).stamp(2, 2));
/// ```
#[derive(Clone, Debug)]
pub struct Session {
    client: ClientId,
    /// The last sequence number handed out.
    last: u64,
    /// The sequence numbers handed out and not yet finished.
    waiting: BTreeSet<u64>,
}

impl ClientId {
    /// A stamp of this client's write `seq`, with `ack`.
    #[must_use]
    pub const fn stamp(self, seq: u64, ack: u64) -> Stamp {
        Stamp {
            client: self,
            seq,
            ack,
        }
    }
}

impl Session {
    /// A new session for `client`, whose first write is numbered 1.
    #[must_use]
    pub const fn new(client: ClientId) -> Self {
        Self {
            client,
            last: 0,
            waiting: BTreeSet::new(),
        }
    }

    /// A new session under a [`ClientId::random`] id.
    #[must_use]
    pub fn random() -> Self {
        Self::new(ClientId::random())
    }

    /// The client.
    #[must_use]
    pub const fn client(&self) -> ClientId {
        self.client
    }

    /// Stamps a new write.
    pub fn begin(&mut self) -> Stamp {
        self.last += 1;
        self.waiting.insert(self.last);
        self.client.stamp(self.last, self.ack())
    }

    /// The stamp to send `stamp`'s write again with: the same number, the latest `ack`.
    #[must_use]
    pub fn retry(&self, stamp: Stamp) -> Stamp {
        self.client.stamp(stamp.seq, self.ack().min(stamp.seq))
    }

    /// Write `seq` was answered (or given up): it will not be sent again.
    pub fn finish(&mut self, seq: u64) {
        self.waiting.remove(&seq);
    }

    /// The lowest write still waiting, or the next number when none is.
    #[must_use]
    pub fn ack(&self) -> u64 {
        self.waiting.first().copied().unwrap_or(self.last + 1)
    }

    /// How many writes are waiting for an answer.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_follows_the_lowest_write_still_waiting() {
        let mut s = Session::new(ClientId(1));
        let stamps: Vec<Stamp> = (0..4).map(|_| s.begin()).collect();
        assert_eq!(s.ack(), 1);
        s.finish(2);
        assert_eq!(s.ack(), 1, "1 still waits");
        s.finish(1);
        assert_eq!(s.ack(), 3);
        assert_eq!(s.retry(stamps[3]), ClientId(1).stamp(4, 3));
        s.finish(3);
        s.finish(4);
        assert_eq!(s.ack(), 5);
        assert_eq!(s.waiting(), 0);
        assert_eq!(s.begin(), ClientId(1).stamp(5, 5));
    }

    #[test]
    fn a_retry_never_acks_past_itself() {
        let mut s = Session::new(ClientId(1));
        let a = s.begin();
        s.finish(a.seq);
        // Retrying an answered write (a caller's mistake) keeps ack <= seq.
        assert_eq!(s.retry(a), ClientId(1).stamp(1, 1));
    }

    #[test]
    fn random_ids_differ_and_are_not_zero() {
        let a = ClientId::random();
        let b = ClientId::random();
        assert_ne!(a, b);
        assert_ne!(a.0, 0);
    }
}
