//! The key-value state machine: an ordered map of byte keys to byte values, with Redis-like
//! commands and exactly-once application of retried writes.
//!
//! - Writes ([`KvCommand`]) go through the log as encoded [`KvRequest`]s and are applied by
//!   [`StateMachine::apply`]; reads ([`KvQuery`]) are answered by [`StateMachine::query`] at a
//!   linearizable read point, or go through the log as [`KvCommand::Read`].
//! - [`KvStore`] documents the deduplication (sessions) rule; [`KvStore::snapshot`] documents
//!   the snapshot format.
//!
//! ```
//! use raft_core::Index;
//! use raft_std::kv::{ClientId, KvCommand, KvConfig, KvQuery, KvRequest, KvResponse, KvStore};
//! use raft_std::state_machine::StateMachine;
//!
//! let mut store = KvStore::new(KvConfig::default());
//! let incr = KvRequest::new(ClientId(7), 1, KvCommand::incr("hits")).encode();
//! assert_eq!(store.apply(Index(1), &incr), KvResponse::Integer(1));
//! // A retry of the same write (same client, same seq) is answered, not applied again.
//! assert_eq!(store.apply(Index(2), &incr), KvResponse::Integer(1));
//! assert_eq!(store.query(&KvQuery::get("hits")), KvResponse::Value(Some(b"1".to_vec())));
//! ```
//!
//! [`StateMachine::apply`]: crate::state_machine::StateMachine::apply
//! [`StateMachine::query`]: crate::state_machine::StateMachine::query

mod snapshot;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use imbl::OrdMap;
use raft_core::Index;

use crate::state_machine::{SnapshotSource, StateMachine};

pub use wire::{
    ClientId, KvCommand, KvError, KvQuery, KvRequest, KvResponse, SetCondition, decode_request,
};

/// Limits of a [`KvStore`]. Every replica of a cluster MUST use the same configuration: the
/// limits decide responses and session eviction, which must be identical everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KvConfig {
    /// The longest key a write may create, in bytes; longer ones get
    /// [`KvError::KeyTooLarge`]. Default 64 KiB.
    pub max_key_len: usize,
    /// The longest value a write may leave (also after an `APPEND`), in bytes; longer ones get
    /// [`KvError::ValueTooLarge`]. Default 8 MiB.
    pub max_value_len: usize,
    /// How many client sessions are kept for deduplication; past it the least recently used
    /// (by log index) is evicted. At least 1 (0 counts as 1). Default 10,000.
    pub max_sessions: usize,
    /// How many responses a session keeps for writes its client has not acknowledged (see
    /// [`KvRequest::ack`]); past it the lowest is forgotten, and a retry of it is stale. At
    /// least 1 (0 counts as 1). Default 1,024: a client with more writes in flight than this
    /// may see [`KvError::StaleSequence`] for a retry.
    pub max_responses_per_session: usize,
    /// The most bytes of values one read may answer; past it the read gets
    /// [`KvError::ResponseTooLarge`]. Default 32 MiB.
    pub max_response_bytes: usize,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            max_key_len: 64 * 1024,
            max_value_len: 8 * 1024 * 1024,
            max_sessions: 10_000,
            max_responses_per_session: 1024,
            max_response_bytes: 32 << 20,
        }
    }
}

/// The response saved in a session: a write only ever answers one of these.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Saved {
    Ok,
    Integer(i64),
    Error(KvError),
    /// A conditional write that did not happen (RESP nil).
    Nil,
}

impl Saved {
    const fn to_response(self) -> KvResponse {
        match self {
            Self::Ok => KvResponse::Ok,
            Self::Integer(n) => KvResponse::Integer(n),
            Self::Error(e) => KvResponse::Error(e),
            Self::Nil => KvResponse::Value(None),
        }
    }
}

/// A write: a [`KvCommand`] other than [`KvCommand::Read`].
enum Write {
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Del {
        keys: Vec<Vec<u8>>,
    },
    IncrBy {
        key: Vec<u8>,
        delta: i64,
    },
    Append {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    MSet {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    SetIf {
        key: Vec<u8>,
        value: Vec<u8>,
        condition: SetCondition,
    },
    FlushAll,
    SetPeer {
        id: u64,
        addr: Option<String>,
    },
}

impl Write {
    /// The write `command` is, or the query of a read through the log.
    fn from_command(command: KvCommand) -> Result<Self, KvQuery> {
        Ok(match command {
            KvCommand::Set { key, value } => Self::Set { key, value },
            KvCommand::Del { keys } => Self::Del { keys },
            KvCommand::IncrBy { key, delta } => Self::IncrBy { key, delta },
            KvCommand::Append { key, value } => Self::Append { key, value },
            KvCommand::MSet { pairs } => Self::MSet { pairs },
            KvCommand::SetIf {
                key,
                value,
                condition,
            } => Self::SetIf {
                key,
                value,
                condition,
            },
            KvCommand::FlushAll => Self::FlushAll,
            KvCommand::SetPeer { id, addr } => Self::SetPeer { id, addr },
            KvCommand::Read(query) => return Err(query),
        })
    }
}

/// What the store remembers of a client: the responses of its writes it may still retry, and
/// when it last wrote.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Session {
    /// Every write numbered below this was answered and forgotten: a retry of one is stale.
    floor: u64,
    /// The responses of the writes applied at or above `floor`, by `seq`.
    responses: BTreeMap<u64, Saved>,
    /// The log index of the client's last write (applied or answered from the session): the
    /// eviction order.
    last_used: u64,
}

impl Session {
    /// Forgets the responses below `ack`: the client has heard them all.
    fn forget_below(&mut self, ack: u64) {
        if ack > self.floor {
            self.floor = ack;
            self.responses = self.responses.split_off(&ack);
        }
    }
}

/// The key-value [`StateMachine`].
///
/// # Exactly-once writes (Raft thesis §6.3)
///
/// Each [`KvRequest`] names its client, a sequence number `seq`, and `ack`: every write of the
/// client numbered below `ack` has been answered (a [`Session`](crate::client::Session) keeps
/// these). The store keeps a *session* per client: the responses of the writes it applied
/// that the client may still retry. When a write commits:
///
/// - `seq` 0: no deduplication. The command is applied every time it is committed and no
///   session is read, created or touched. For clients that never retry (or accept a double
///   apply).
/// - a session exists: first it forgets the responses below `ack` (taken as at most `seq`).
///   Then, if `seq` is below what it has forgotten: [`KvError::StaleSequence`] (the write may
///   or may not have been applied: a retry of an acknowledged write, or of one pushed out by
///   more than [`KvConfig::max_responses_per_session`] later writes in flight). If it
///   holds a response for `seq`: a retry, answered with that response and not applied again.
///   Otherwise the write is new: applied, and its response kept.
/// - no session and `ack` at most 1 (the client has heard back from no write yet): the
///   client's first writes. A session is created, the write applied.
/// - no session and `ack` above 1: [`KvError::SessionExpired`], nothing applied. The session was
///   evicted, so the store cannot tell whether this is a retry of something already applied;
///   refusing is the only answer that never applies twice. The client starts again with a
///   fresh [`ClientId`].
///
/// Writes may overlap: a pipelining client has many in flight, numbered in order, and their
/// retries may arrive in any order. A session keeps at most
/// [`KvConfig::max_responses_per_session`] responses.
///
/// Reads through the log ([`KvCommand::Read`]) ignore sessions entirely. Every response of a
/// write is saved, errors included (they are deterministic, so a retry gets the same one).
/// Session-level errors (`Malformed`, `StaleSequence`, `SessionExpired`) are not saved.
///
/// ## Eviction
///
/// At most [`KvConfig::max_sessions`] sessions are kept. A session is *used* at the log index of
/// each write that names it (applied or answered as a retry). When a new session would exceed
/// the cap, the session used at the lowest log index is evicted (ties, possible only after a
/// restore, go to the lower client id). This depends only on the log, never on a clock, so
/// every replica evicts the same sessions at the same index; sessions are part of the snapshot
/// with their last-used index.
///
/// The one case this cannot cover: a client whose session was evicted before it heard back
/// from any write (`ack` 1), and who then retries one, gets it applied again, as if new. That needs
/// `max_sessions` other clients to write between the first attempt and the retry; size the cap
/// for that never to happen within a client's retry horizon.
#[derive(Clone, Debug)]
pub struct KvStore {
    config: KvConfig,
    /// Persistent maps (B-trees whose nodes are shared between copies): a snapshot takes a copy
    /// in O(1) and writes it out while the store goes on applying; a write to a node still
    /// shared with a copy copies that node first.
    data: OrdMap<Vec<u8>, Vec<u8>>,
    /// Sum of the lengths of every key and value.
    bytes: usize,
    sessions: OrdMap<ClientId, Session>,
    /// `(last_used, client)` of every session: the eviction order.
    lru: BTreeSet<(u64, ClientId)>,
    /// Peer addresses recorded through the log ([`KvCommand::SetPeer`]).
    peers: BTreeMap<u64, String>,
}

impl Default for KvStore {
    fn default() -> Self {
        Self::new(KvConfig::default())
    }
}

impl KvStore {
    /// An empty store with the given limits.
    #[must_use]
    pub fn new(config: KvConfig) -> Self {
        Self {
            config,
            data: OrdMap::new(),
            bytes: 0,
            sessions: OrdMap::new(),
            lru: BTreeSet::new(),
            peers: BTreeMap::new(),
        }
    }

    /// The limits the store was built with.
    #[must_use]
    pub const fn config(&self) -> &KvConfig {
        &self.config
    }

    /// The number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The total length of every key and value, in bytes (without map overhead).
    #[must_use]
    pub const fn bytes_used(&self) -> usize {
        self.bytes
    }

    /// What a snapshot holds: the maps shared, not copied (the peers, few, are copied).
    fn view(&self) -> snapshot::View {
        snapshot::View {
            sessions: self.sessions.clone(),
            peers: self.peers.clone(),
            data: self.data.clone(),
        }
    }

    /// The number of client sessions kept for deduplication.
    #[must_use]
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The peer addresses recorded through the log, by node id: how a cluster that changes its
    /// membership tells every node where a new member listens.
    #[must_use]
    pub const fn peers(&self) -> &BTreeMap<u64, String> {
        &self.peers
    }

    /// The value of `key`, if any.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }

    /// Applies a decoded request committed at `index`, with the deduplication rule of
    /// [`KvStore`]. [`StateMachine::apply`] decodes and calls this.
    pub fn apply_request(&mut self, index: Index, request: KvRequest) -> KvResponse {
        let KvRequest {
            client,
            seq,
            ack,
            command,
        } = request;
        let write = match Write::from_command(command) {
            Ok(write) => write,
            Err(query) => return self.query(&query),
        };
        if seq == 0 {
            return self.execute(write).to_response();
        }
        let ack = ack.min(seq);
        let Some(mut session) = self.sessions.remove(&client) else {
            if ack > 1 {
                return KvResponse::Error(KvError::SessionExpired);
            }
            let response = self.execute(write);
            let session = Session {
                floor: 1,
                responses: BTreeMap::from([(seq, response)]),
                last_used: index.0,
            };
            self.sessions.insert(client, session);
            self.lru.insert((index.0, client));
            self.evict();
            return response.to_response();
        };
        session.forget_below(ack);
        let response = if seq < session.floor {
            Err(KvError::StaleSequence)
        } else if let Some(&saved) = session.responses.get(&seq) {
            Ok(saved)
        } else {
            let response = self.execute(write);
            session.responses.insert(seq, response);
            let cap = self.config.max_responses_per_session.max(1);
            while session.responses.len() > cap {
                if let Some((forgotten, _)) = session.responses.pop_first() {
                    session.floor = forgotten + 1;
                }
            }
            Ok(response)
        };
        if response.is_ok() {
            self.lru.remove(&(session.last_used, client));
            self.lru.insert((index.0, client));
            session.last_used = index.0;
        }
        self.sessions.insert(client, session);
        match response {
            Ok(saved) => saved.to_response(),
            Err(e) => KvResponse::Error(e),
        }
    }

    /// Evicts least recently used sessions down to the cap.
    fn evict(&mut self) {
        let cap = self.config.max_sessions.max(1);
        while self.sessions.len() > cap {
            let Some((_, client)) = self.lru.pop_first() else {
                break;
            };
            self.sessions.remove(&client);
        }
    }

    /// Applies a write without looking at sessions.
    fn execute(&mut self, write: Write) -> Saved {
        match write {
            Write::Set { key, value } => match self.check(&key, value.len()) {
                Err(e) => Saved::Error(e),
                Ok(()) => {
                    self.insert(key, value);
                    Saved::Ok
                }
            },
            Write::Del { keys } => {
                let mut removed = 0_i64;
                for key in &keys {
                    if let Some(value) = self.data.remove(key.as_slice()) {
                        self.bytes = self.bytes.saturating_sub(key.len() + value.len());
                        removed = removed.saturating_add(1);
                    }
                }
                Saved::Integer(removed)
            }
            Write::SetIf {
                key,
                value,
                condition,
            } => {
                let present = self.data.contains_key(&key);
                let wanted = match condition {
                    SetCondition::IfAbsent => !present,
                    SetCondition::IfPresent => present,
                };
                if let Err(e) = self.check(&key, value.len()) {
                    Saved::Error(e)
                } else if wanted {
                    self.insert(key, value);
                    Saved::Ok
                } else {
                    Saved::Nil
                }
            }
            Write::FlushAll => {
                self.data.clear();
                self.bytes = 0;
                Saved::Ok
            }
            Write::SetPeer { id, addr } => {
                match addr {
                    Some(addr) => self.peers.insert(id, addr),
                    None => self.peers.remove(&id),
                };
                Saved::Ok
            }
            Write::IncrBy { key, delta } => self.incr_by(key, delta),
            Write::Append { key, value } => self.append(key, &value),
            Write::MSet { pairs } => {
                for (key, value) in &pairs {
                    if let Err(e) = self.check(key, value.len()) {
                        return Saved::Error(e);
                    }
                }
                for (key, value) in pairs {
                    self.insert(key, value);
                }
                Saved::Ok
            }
        }
    }

    /// Whether a write may leave `key` with a value of `value_len` bytes.
    const fn check(&self, key: &[u8], value_len: usize) -> Result<(), KvError> {
        if key.len() > self.config.max_key_len {
            Err(KvError::KeyTooLarge)
        } else if value_len > self.config.max_value_len {
            Err(KvError::ValueTooLarge)
        } else {
            Ok(())
        }
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let (key_len, value_len) = (key.len(), value.len());
        self.bytes = match self.data.insert(key, value) {
            // The map keeps the key it had: only the value changes size.
            Some(old) => self
                .bytes
                .saturating_sub(old.len())
                .saturating_add(value_len),
            None => self.bytes.saturating_add(key_len).saturating_add(value_len),
        };
    }

    fn incr_by(&mut self, key: Vec<u8>, delta: i64) -> Saved {
        // The key is checked first (with an empty value), as before any parsing.
        if let Err(e) = self.check(&key, 0) {
            return Saved::Error(e);
        }
        let current = match self.data.get(&key) {
            None => 0,
            Some(value) => match parse_i64(value) {
                Some(n) => n,
                None => return Saved::Error(KvError::NotAnInteger),
            },
        };
        let Some(new) = current.checked_add(delta) else {
            return Saved::Error(KvError::Overflow);
        };
        let value = new.to_string().into_bytes();
        if let Err(e) = self.check(&key, value.len()) {
            return Saved::Error(e);
        }
        self.insert(key, value);
        Saved::Integer(new)
    }

    fn append(&mut self, key: Vec<u8>, suffix: &[u8]) -> Saved {
        let old_len = self.data.get(&key).map_or(0, Vec::len);
        let new_len = old_len.saturating_add(suffix.len());
        if let Err(e) = self.check(&key, new_len) {
            return Saved::Error(e);
        }
        if let Some(value) = self.data.get_mut(&key) {
            value.extend_from_slice(suffix);
            self.bytes = self.bytes.saturating_add(suffix.len());
        } else {
            self.insert(key, suffix.to_vec());
        }
        Saved::Integer(i64::try_from(new_len).unwrap_or(i64::MAX))
    }
}

/// Parses the canonical decimal form of an `i64`, exactly as Redis does (`string2ll`): an
/// optional `-`, then digits without leading zeros (`0` alone is fine, `-0` is not), no `+`,
/// no spaces, no overflow.
fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = i64::from(b - b'0');
        // Accumulate negatively so that i64::MIN parses.
        n = n.checked_mul(10)?.checked_sub(d)?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

impl StateMachine for KvStore {
    type Response = KvResponse;
    type Query = KvQuery;
    type QueryResponse = KvResponse;

    /// Decodes `command` as a [`KvRequest`] and applies it ([`KvStore::apply_request`]);
    /// undecodable bytes answer [`KvError::Malformed`] and change nothing.
    fn apply(&mut self, index: Index, command: &[u8]) -> KvResponse {
        match decode_request(command) {
            Ok(request) => self.apply_request(index, request),
            Err(e) => KvResponse::Error(e),
        }
    }

    fn query(&self, query: &KvQuery) -> KvResponse {
        let count = |n: usize| KvResponse::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        match query {
            KvQuery::Get { key } => KvResponse::Value(self.data.get(key).cloned()),
            KvQuery::MGet { keys } => {
                // Sized before anything is copied: naming one large value many times must not
                // make the node copy it many times.
                let bytes = keys.iter().try_fold(0_usize, |sum, k| {
                    let n = self.data.get(k).map_or(0, Vec::len);
                    sum.checked_add(n)
                        .filter(|&s| s <= self.config.max_response_bytes)
                });
                if bytes.is_none() {
                    return KvResponse::Error(KvError::ResponseTooLarge);
                }
                KvResponse::Values(keys.iter().map(|k| self.data.get(k).cloned()).collect())
            }
            KvQuery::Exists { keys } => {
                count(keys.iter().filter(|k| self.data.contains_key(*k)).count())
            }
            KvQuery::DbSize => count(self.data.len()),
        }
    }

    /// Streams the store in the format the [`kv`](crate::kv) module page describes.
    fn snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
        snapshot::write(&self.view(), out)
    }

    /// A copy of the store in O(1) (its maps are persistent), written out as
    /// [`Self::snapshot`] would now, off the node thread.
    fn snapshot_source(&self) -> Option<Box<dyn SnapshotSource>> {
        let view = self.view();
        Some(Box::new(move |out: &mut dyn io::Write| {
            snapshot::write(&view, out)
        }))
    }

    /// Reads a snapshot written by [`Self::snapshot`]. On error the store is left empty.
    fn restore(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
        // Drop the old state first: old and new are never in memory together.
        *self = Self::new(self.config);
        *self = snapshot::read(self.config, input)?;
        Ok(())
    }
}
