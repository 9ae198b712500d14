//! A Raft consensus core: `no_std`, sans-IO, deterministic.
//!
//! `raft-core` is the consensus algorithm and nothing else. It holds one member's Raft state in
//! a [`Node`] value and changes it only in [`Node::step`]: inputs go in (a tick, a message, a
//! proposal, a read, an acknowledgement from the adapter), and what the node wants done comes
//! out in a caller-owned [`Outputs`] (messages to send, writes to make durable, committed
//! entries to apply, reads that are ready, events). It reads no clock, opens no file or socket,
//! starts no thread, and draws randomness only from the RNG it was built with, only to pick
//! election timeouts. The same inputs in the same order give the same outputs, which is what
//! makes the deterministic simulator (module `sim`, behind the feature `sim`) and the fuzzers
//! possible.
//!
//! It implements Raft as in the paper and Ongaro's thesis: randomized election timeouts,
//! pre-vote (§9.6), CheckQuorum (§6.2), the election restriction (§5.4.1), log replication with
//! batching, pipelining, per-follower flow control (messages and bytes in flight) and fast
//! backtracking by conflict term (§5.3), commitment of current-term entries only (§5.4.2),
//! linearizable reads by ReadIndex (§6.4), leadership transfer (§3.10), membership changes by
//! joint consensus with learners (§4.3), and log compaction with snapshots sent to lagging
//! followers in chunks (§7; the node never holds a snapshot's bytes).
//!
//! # Run loop
//!
//! An adapter (threads, async tasks, an RTOS loop, a simulator) drives each node like this:
//!
//! 1. **Build** the node with [`Node::restore`] from what it persisted: hard state, snapshot
//!    metadata, log entries, applied index. A brand-new cluster passes
//!    [`Restored::initial`] with its membership.
//! 2. **Step inputs** into it as they happen: [`Input::Tick`] every tick (you choose the tick
//!    length; timeouts in [`Config`] are in ticks), [`Input::Message`] for every message
//!    received, [`Node::propose`] / [`Input::Read`] for client requests.
//! 3. **Send** every message in [`Outputs::drain_sends`]. Everything there is safe to send at
//!    once, even before the writes below are durable: responses that depend on durable state are
//!    held inside the node until step 4 reports it.
//! 4. **Persist** every [`Write`] in [`Outputs::drain_writes`], in order (hard state, then
//!    truncation, then entries). One fsync may cover many writes. Then step
//!    [`Input::Persisted`] with the id of the last write made durable: acknowledgements are
//!    cumulative.
//! 5. **Apply** what [`Outputs::drain_apply`] holds to the state machine, in order: committed,
//!    durable entries, and (on a follower that fell far behind) a snapshot from the leader to
//!    load. Then step [`Input::Applied`] with the last index.
//! 6. **Snapshots**: when [`Event::SnapshotSuggested`] appears (or whenever you like), snapshot
//!    the state machine at its applied index, store it with [`Node::snapshot_meta`], and step
//!    [`Input::SnapshotTaken`]: the node drops the log behind it. Answer each
//!    [`ChunkRequest`] in [`Outputs::drain_chunk_requests`] with the bytes, as
//!    [`Input::SnapshotChunk`]; store each [`SnapshotPart`] a follower's writes carry.
//! 7. **Serve reads**: a [`ReadResult::Ready`] may be answered from the state machine once it has
//!    applied the read's index. [`ReadResult::Aborted`] means leadership was lost: retry.
//! 8. **Wait** for the next input, for at most [`Node::ticks_until_timer`] ticks, and go to 2.
//!
//! The outputs value is appended to and never cleared by the node: drain it and reuse it, and the
//! steady state allocates nothing but the entries' payloads.
//!
//! # The persistence contract
//!
//! A node never emits a message that depends on state the adapter has not confirmed durable. A
//! vote is granted, and an append acknowledged, only after the [`Input::Persisted`] that covers
//! the write recording it. A leader counts itself towards a commit only up to what its own
//! disk holds, though it replicates to followers before its own write completes (thesis
//! §10.2.1). Entries reach the apply lane only when committed and durable locally. Write ids are
//! minted by the node; acknowledging an id it never issued is [`Misuse::UnknownWrite`].
//!
//! # Storing writes: the write contract
//!
//! What a [`Write`] may do to the durable state, and what it changes there, is executable:
//! [`DurableShape`] (module [`write_contract`]) holds the shape of a node's durable state (term
//! and vote, the snapshot's id, the log's last index and its terms, the snapshot being received)
//! and [`DurableShape::apply`] checks each write against it. It returns the [`WriteEffect`] to
//! carry out (what to truncate, which snapshot becomes the latest, the new last index) or a
//! [`WriteViolation`] for a write the contract forbids (a term going backwards, a vote changed
//! within a term, a truncation into the snapshot, a chunk out of order, an older snapshot,
//! entries that do not continue the log, ...), changing nothing. The core never emits a write
//! it refuses; a refusal is a bug in whoever built the write. Store every write through it and
//! your storage agrees with every other store on what a write means (`raft-std`'s stores and the
//! simulator's disk all use it).
//!
//! Your own storage over a key-value store, say (a map here), and a write it refuses:
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use raft_core::{
//!     Config, DurableShape, HardState, Index, Input, LogId, Membership, Node, NodeId, Outputs,
//!     Restored, Write, WriteViolation,
//! };
//!
//! /// A node's durable state in a key-value store: `"term"`, `"vote"`, `"snapshot"` and one key
//! /// per log entry, `"log/<index>"` (zero-padded, so the keys sort by index) holding its term and
//! /// payload.
//! #[derive(Default)]
//! struct KvStorage {
//!     kv: BTreeMap<String, Vec<u8>>,
//!     /// The shape of what `kv` holds; rebuilt with `DurableShape::restored` when reopened.
//!     shape: DurableShape,
//!     /// A snapshot being received (process memory: lost in a crash, like the shape's record of
//!     /// it).
//!     staged: Vec<u8>,
//! }
//!
//! fn log_key(index: Index) -> String {
//!     format!("log/{:020}", index.0)
//! }
//!
//! impl KvStorage {
//!     fn persist(&mut self, w: &Write) -> Result<(), WriteViolation> {
//!         // Checked before anything is stored: a refused write changes nothing.
//!         let effect = self.shape.apply(w)?;
//!         if let Some(hs) = effect.hard_state {
//!             self.kv.insert("term".into(), hs.term.0.to_le_bytes().to_vec());
//!             let vote = hs.vote.map_or(0, NodeId::get);
//!             self.kv.insert("vote".into(), vote.to_le_bytes().to_vec());
//!         }
//!         if let Some(from) = effect.truncate_from {
//!             let doomed: Vec<String> =
//!                 self.kv.range(log_key(from)..).map(|(k, _)| k.clone()).collect();
//!             doomed.iter().for_each(|k| drop(self.kv.remove(k)));
//!         }
//!         if let Some(part) = &w.snapshot {
//!             if part.offset == 0 {
//!                 self.staged.clear();
//!             }
//!             self.staged.extend_from_slice(&part.data);
//!         }
//!         if let Some(snapshot) = effect.installs {
//!             self.kv.insert("snapshot".into(), std::mem::take(&mut self.staged));
//!             let covered: Vec<String> = self
//!                 .kv
//!                 .range(log_key(Index(1))..=log_key(snapshot.index))
//!                 .map(|(k, _)| k.clone())
//!                 .collect();
//!             covered.iter().for_each(|k| drop(self.kv.remove(k)));
//!         }
//!         for e in &w.entries {
//!             let mut value = e.id.term.0.to_le_bytes().to_vec(); // the term, then the payload
//!             value.extend_from_slice(&e.data);
//!             self.kv.insert(log_key(e.id.index), value);
//!         }
//!         // (A real store would make all of this durable in one batch, then acknowledge.)
//!         Ok(())
//!     }
//! }
//!
//! # struct Rng(u64);
//! # impl rand_core::TryRng for Rng {
//! #     type Error = core::convert::Infallible;
//! #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(self.try_next_u64()? as u32) }
//! #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
//! #         self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
//! #         Ok(self.0)
//! #     }
//! #     fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
//! #         dst.fill(self.try_next_u64()? as u8);
//! #         Ok(())
//! #     }
//! # }
//! // A single-node cluster elects itself: its writes record the vote and a no-op entry.
//! let id = NodeId::MIN;
//! let restored = Restored::initial(Membership::new(&[id])?);
//! let mut node = Node::restore(Config::new(id), Rng(1), restored)?;
//! let mut out = Outputs::new();
//! node.step(Input::Campaign, &mut out)?;
//! let mut store = KvStorage::default();
//! let mut sample = None;
//! while !out.writes().is_empty() {
//!     let writes: Vec<Write> = out.drain_writes().collect();
//!     for w in &writes {
//!         store.persist(w)?;
//!         if !w.entries.is_empty() {
//!             sample.get_or_insert_with(|| w.clone());
//!         }
//!     }
//!     let last = writes.last().map(|w| w.id).expect("writes");
//!     node.step(Input::Persisted(last), &mut out)?;
//! }
//! assert_eq!(store.shape.hard_state(), HardState { term: node.term(), vote: Some(id) });
//! assert_eq!(store.shape.last_index(), Index(1));
//! assert!(store.kv.contains_key(&log_key(Index(1))));
//!
//! // A write built by hand that does not continue the log is refused, and nothing is stored.
//! let mut bad = sample.expect("a write with the no-op");
//! bad.hard_state = None;
//! bad.entries.truncate(1);
//! bad.entries[0].id.index = Index(5);
//! let before = store.kv.clone();
//! assert_eq!(
//!     store.persist(&bad),
//!     Err(WriteViolation::EntriesNotContiguous { last: Index(1), found: Index(5) })
//! );
//! assert_eq!(store.kv, before);
//!
//! // Reopened, the store rebuilds its shape from what it holds (and refuses a damaged log).
//! let ids = store.kv.iter().filter_map(|(k, v)| {
//!     let index = Index(k.strip_prefix("log/")?.parse().ok()?);
//!     let term = raft_core::Term(u64::from_le_bytes(v.get(..8)?.try_into().ok()?));
//!     Some(LogId { term, index })
//! });
//! let reopened = DurableShape::restored(store.shape.hard_state(), LogId::ZERO, ids)?;
//! assert_eq!(reopened.last_index(), Index(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Membership changes
//!
//! [`Node::change_membership`] (or [`Input::ChangeMembership`]) asks the leader for a new
//! configuration, built with [`Membership::with_changes`]: add and remove voters and learners,
//! several at once, promote a learner, demote a voter. When the voters change, the leader first
//! appends a joint configuration (the new voters, with the old ones as outgoing voters: every
//! election and every commit then needs a majority of both), and once that entry is committed it
//! appends the new configuration by itself. Learners receive the log but neither vote nor count
//! towards a commit. A leader that is not a voter of the new configuration keeps leading, without
//! counting itself, until the new configuration is committed, then hands over to a caught-up voter
//! (TimeoutNow) and steps down. A second change while one is in progress is refused with
//! [`Refusal::ChangePending`]. A change is refused with [`Refusal::NotCaughtUp`] unless a
//! majority of its new voters can be brought up to date from the leader's log (thesis §4.2.1):
//! new nodes join as learners, and are promoted once they have caught up.
//!
//! **A configuration takes effect on each node when it is appended to that node's log, not when it
//! is committed or applied** (thesis §4.1), and a node falls back to the previous one if the entry
//! is truncated. The leader must count votes and matches by the configuration it is replicating:
//! counting by the old one until the joint entry commits would let the old majority alone commit
//! the joint entry, which is exactly the split joint consensus exists to prevent; and the state
//! machine may lag the log by any amount. Configuration entries reach the apply lane with
//! [`EntryKind::Config`]; the state machine skips them.
//!
//! The configuration is part of every snapshot's metadata ([`SnapshotMeta::membership`]), so it
//! survives log compaction and restarts. A node that joins a running cluster starts from
//! [`Restored::initial`] with a membership naming the current voters and itself as a learner; it
//! adopts the cluster's real configuration as soon as the leader's log reaches it. Requests
//! (appends, heartbeats, snapshots, vote requests) are heard from nodes outside the
//! configuration, since a leader of a configuration this node has not yet received must be heard;
//! responses from non-members are rejected with [`Reject::UnknownSender`].
//!
//! # Errors
//!
//! [`StepError`] has three kinds. [`StepError::Rejected`]: the input came from the network and
//! cannot be valid (a response from a node outside the configuration, a commit index past the
//! log, entries that are not contiguous); the node's state is unchanged, the rejection is counted
//! in [`Stats`], and the node keeps serving. [`StepError::Misuse`]: the adapter broke the
//! contract. [`StepError::Refused`]: a valid request that cannot be served here or now (not the
//! leader, a transfer in progress). A message from an older term is not an error: it is normal
//! Raft traffic. Nothing that arrives from the network can make the node panic.
//!
//! # Randomness
//!
//! A [`Node`] is built with an RNG, `Node<R: rand_core::Rng>`, and draws from it only to pick
//! election timeouts. The trait is **`rand_core` 0.10's** (`rand_core = "0.10"`, the version in
//! this crate's dependencies): a generator must implement that version's `TryRng` with
//! `Error = Infallible` (which gives `Rng`). Three ways to get one:
//!
//! - [`SplitMix64`], the small seeded generator this crate ships (not cryptographic; it need not
//!   be, only differ between nodes: seed each from its id and, across restarts, the clock);
//! - write one of your own (a few lines);
//! - take one from `rand` **0.10** (built on `rand_core` 0.10), e.g.
//!   `rand::rngs::SmallRng::seed_from_u64(n)` (with `use rand::SeedableRng`), or
//!   `rand::make_rng::<SmallRng>()` for one seeded by the operating system (feature
//!   `sys_rng`, on by default).
//!
//! `rand` 0.9 and older implement the traits of `rand_core` 0.9 (or older), which to the
//! compiler is another crate: their generators are refused with "the trait bound `SmallRng:
//! rand_core::Rng` is not satisfied" and a confusing "the trait `DerefMut` is not implemented"
//! (from rand_core 0.10's blanket impl for `DerefMut` types), although the names match.
//! `cargo tree -i rand_core` shows which versions you have.
//!
//! # Example
//!
//! Three nodes in one process, a perfect network and instant disks: elect a leader and commit a
//! command on every node.
//!
//! ```
//! use raft_core::{
//!     Apply, Config, Input, Membership, Node, NodeId, Outputs, Payload, Restored, Role, SplitMix64,
//! };
//!
//! let ids: Vec<NodeId> = (1..=3).filter_map(NodeId::new).collect();
//! let membership = Membership::new(&ids)?;
//! let mut nodes = Vec::new();
//! for &id in &ids {
//!     // 1. Build each node, its RNG seeded differently per node (see "Randomness" above).
//!     let rng = SplitMix64::new(id.get());
//!     let node = Node::restore(Config::new(id), rng, Restored::initial(membership.clone()))?;
//!     nodes.push((node, Outputs::new()));
//! }
//!
//! let mut applied: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
//! let mut proposed = false;
//! for _tick in 0..200 {
//!     // 2. Time passes for everyone.
//!     for (node, out) in &mut nodes {
//!         node.step(Input::Tick, out)?;
//!     }
//!     if !proposed {
//!         if let Some((leader, out)) = nodes.iter_mut().find(|(n, _)| n.role() == Role::Leader) {
//!             leader.propose(Payload::new(b"set x 1"), out)?;
//!             proposed = true;
//!         }
//!     }
//!     // 3-6. Drain every node's outputs until the cluster is quiet.
//!     loop {
//!         let mut inbox = Vec::new();
//!         for (i, (node, out)) in nodes.iter_mut().enumerate() {
//!             inbox.extend(out.drain_sends()); // 3. send
//!             let durable = out.drain_writes().map(|w| w.id).last(); // 4. persist (in memory)
//!             if let Some(id) = durable {
//!                 node.step(Input::Persisted(id), out)?;
//!             }
//!             let mut last = None; // 5. apply
//!             for item in out.drain_apply() {
//!                 if let Apply::Entry(entry) = &item {
//!                     if entry.kind == raft_core::EntryKind::Normal {
//!                         applied[i].push(entry.data.to_vec());
//!                     }
//!                 }
//!                 last = Some(item.index());
//!             }
//!             if let Some(index) = last {
//!                 node.step(Input::Applied(index), out)?;
//!             }
//!             out.drain_events().for_each(drop);
//!         }
//!         if inbox.is_empty() && nodes.iter().all(|(_, out)| out.is_empty()) {
//!             break;
//!         }
//!         for msg in inbox {
//!             let (node, out) = &mut nodes[(msg.to.get() - 1) as usize];
//!             node.step(Input::Message(msg), out)?;
//!         }
//!     }
//! }
//! assert!(applied.iter().all(|a| a == &[b"set x 1".to_vec()]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/cluster.rs` runs a longer scenario with a leader failure.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

extern crate alloc;
// Tests use std; so does `arbitrary` (fuzzing only, off by default: the default build is no_std,
// which `.ci/no-std-check` proves).
#[cfg(any(test, feature = "arbitrary"))]
extern crate std;

// The public vocabulary: what an adapter names (the types re-exported below). These modules
// import only each other, never the machinery.
mod config;
mod error;
mod input;
mod membership;
mod message;
mod output;
mod restore;
mod rng;
mod status;
mod types;
pub mod write_contract;

// The node and its machinery (ARCHITECTURE.md, "Code layout"): `node` holds the API, the
// dispatcher and the role changes; `shared` what every role has, `role` what one role has.
mod check_quorum;
mod durability;
mod election;
mod follower;
mod follower_read;
#[cfg(any(test, feature = "sim"))]
mod invariants;
mod leader;
mod lease;
mod log;
mod node;
mod progress;
mod read_index;
mod reconfiguration;
mod replication;
mod role;
mod shared;
mod snapshot;
mod transfer;
mod validate;

// Deliberately broken variants of the protocol's rules, for measuring the tests' teeth: only
// with `RUSTFLAGS="--cfg raft_planted"`, never in a normal build (raft-core/PLANTED-BUGS.md).
#[cfg(raft_planted)]
pub mod planted;

// Test support (not semver-stable): the deterministic simulator.
#[cfg(feature = "sim")]
pub mod sim;

pub use config::{Config, ConfigError};
pub use error::{Misuse, Refusal, Reject, RestoreError, StepError};
pub use input::{Input, SnapshotChunk};
#[cfg(any(test, feature = "sim"))]
pub use invariants::InvariantViolation;
pub use membership::{Change, MAX_MEMBERS, Members, Membership, MembershipError};
pub use message::{AppendOutcome, Message, MessageBody};
pub use node::Node;
pub use output::{Apply, ChunkRequest, Event, Outputs, ReadResult, SnapshotPart, Write};
pub use restore::{Restored, SnapshotMeta};
pub use rng::SplitMix64;
pub use status::{PeerStatus, ReplicationState, Role, Stats, Status};
pub use types::{
    Entries, Entry, EntryKind, HardState, Index, LogId, NodeId, Payload, ReadId, Term, WriteId,
};
pub use write_contract::{DurableShape, WriteEffect, WriteParts, WriteViolation};
