//! The std adapter for [`raft_core`]: a Raft node on a thread of its own, durable file storage,
//! and the state machine it replicates.
//!
//! `raft-core` is the consensus algorithm and nothing else; this crate runs it. A [`RaftNode`] is
//! one member of a cluster. It persists through a [`Storage`] ([`FileStorage`], a write-ahead log
//! and snapshot store in one directory, or your own), talks to its peers through a [`Transport`]
//! (`raft-mio`'s TCP transport, or [`ChannelNetwork`](transport::ChannelNetwork) in one process),
//! applies what commits to a [`StateMachine`] (yours, or the key-value store [`KvStore`]), and
//! serves proposals and linearizable reads to any thread that holds a handle.
//!
//! # Run a node
//!
//! 1. **Open its storage.** [`FileStorage::open`] on the node's data directory, with the
//!    [`Identity`] it belongs to (cluster id, node id) and the [`Membership`] to start from,
//!    returns the storage and what it durably holds ([`Recovered`]). A new directory starts with
//!    that membership (a new cluster's voters; for a node that joins a running cluster, the
//!    current voters with itself as a learner); an existing one recovers its log and snapshot,
//!    cuts a torn tail, and refuses to open on damaged data ([`StorageError::Corrupt`], naming
//!    the file and offset) or on another node's directory ([`StorageError::WrongIdentity`]).
//!    [`FileStorage::open_with`] takes [`FileStorageOptions`] (segment size, write buffer).
//! 2. **Configure it.** [`RuntimeConfig::new`] with the node's id: the core's [`Config`]
//!    (timeouts in ticks), the length of a tick (10 ms), how long a request may wait (5 s), and
//!    whether syncs run on a storage thread of their own (yes).
//! 3. **Connect it.** An [`Inbox`] receives the node's messages; a [`Transport`] sends its
//!    messages to the peers, and delivers what arrives for the node into that inbox (through an
//!    [`InboxSender`](transport::InboxSender)).
//! 4. **Start it.** [`RaftNode::start`] restores the state machine from the latest snapshot and
//!    starts the node thread; the log after the snapshot is applied again as it commits. The
//!    handle it returns is cheap to clone: give one to every thread that makes requests.
//! 5. **Serve.** [`RaftNode::propose`] returns what the state machine answered once the command
//!    is committed and applied on this node; [`RaftNode::read`] is a linearizable read
//!    (ReadIndex) at the leader. A follower answers [`RequestError::NotLeader`], naming the
//!    leader it knows of: [`RequestError::retry`] says where to go next, and
//!    [`client::Router`] follows it for you. Each `*_with` form (e.g. [`RaftNode::propose_with`])
//!    returns at once and calls a [`Completion`](client::Completion) instead, for event loops.
//!    Every request completes exactly once, by its deadline at the latest.
//! 6. **Stop.** [`RaftNode::shutdown`] stops the thread; it returns the error that had stopped
//!    the node, if one did. To restart, open the storage again: what was synced is there, and
//!    nothing was acknowledged that was not synced.
//!
//! A node of a single-node cluster, on real files (`raft-mio`'s `PeerNet` gives the transport for
//! peers on other machines):
//!
//! ```no_run
//! use std::thread;
//!
//! use raft_std::kv::{KvCommand, KvQuery, KvRequest, KvResponse};
//! use raft_std::transport::ChannelNetwork;
//! use raft_std::{
//!     FileStorage, Identity, KvStore, Membership, NodeId, RaftNode, Role, RuntimeConfig, StdFs,
//! };
//!
//! // 1. Open the storage (created on first use).
//! let id = NodeId::MIN;
//! let identity = Identity { cluster_id: 7, node_id: id };
//! let membership = Membership::new(&[id])?;
//! let (storage, recovered) =
//!     FileStorage::open(StdFs, "/var/lib/raft/node-1", identity, membership)?;
//! // 2. Configure.
//! let config = RuntimeConfig::new(id);
//! let tick = config.tick;
//! // 3. Connect: here a network in this process, which has no other node on it.
//! let network = ChannelNetwork::new();
//! let (transport, inbox) = network.register(id);
//! // 4. Start.
//! let node = RaftNode::start(config, storage, recovered, KvStore::default(), transport, inbox)?;
//! // 5. Serve, once it has elected itself.
//! while node.observed().role != Role::Leader {
//!     thread::sleep(tick);
//! }
//! let set = KvRequest::unsessioned(KvCommand::set("greeting", "hello")).encode();
//! assert_eq!(node.propose(set)?, KvResponse::Ok);
//! let value = node.read(KvQuery::get("greeting"))?;
//! assert_eq!(value, KvResponse::Value(Some(b"hello".to_vec())));
//! // 6. Stop.
//! node.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Threads
//!
//! Each node has:
//!
//! - **the node thread** (`raft-node-<id>`), which owns the core and the state machine. It waits
//!   on its inbox for the next message, request or timer (it never polls), steps them, sends,
//!   hands the writes to the storage stage, applies what committed, completes the requests this
//!   made ready, answers followers' snapshot chunk requests, and takes snapshots when the core
//!   suggests one, synchronously: a large state machine holds the node up meanwhile (see
//!   [`RuntimeConfig`]).
//! - **the storage stage** (`raft-storage-<id>`), which appends the writes queued since its last
//!   sync and syncs once for all of them (group commit), then tells the node thread what is
//!   durable. The node thread goes on stepping meanwhile; nothing is acknowledged before it is
//!   durable. With [`RuntimeConfig::storage_stage`] `false` the node thread appends and syncs
//!   itself.
//! - **the transport's threads**, which are the transport's own. The node thread calls
//!   [`Transport::send`], which must not block; whatever receives from the network delivers into
//!   the inbox from any thread. (`raft-mio` runs one event loop per node;
//!   [`ChannelNetwork`](transport::ChannelNetwork) delivers on the sender's thread.)
//! - **clients**: any number of threads, each with a clone of the [`RaftNode`]. A blocking call
//!   waits on a channel; a completion is called on the node thread, so it must be quick and never
//!   block.
//!
//! # Failures
//!
//! **A storage error stops the node.** A failed append or sync (on either thread), a snapshot
//! that cannot be stored or loaded: the node does not retry (after a failed fsync the kernel may
//! have dropped the dirty pages, so a retry that succeeds proves nothing). The node thread exits
//! with [`NodeError::Storage`]; every request waiting is completed (a proposal already in the log
//! with [`RequestError::Uncertain`], since it may still commit through the other nodes; anything
//! else with [`RequestError::Stopped`]); every later call gets [`RequestError::Stopped`], whose
//! [`NodeStopped`] names the cause; [`RaftNode::shutdown`] returns it. The storage refuses
//! everything from then on. Restart the node from its directory once the cause is fixed.
//!
//! A panic in the state machine or in a completion stops the node the same way
//! ([`NodeError::Panicked`]), as does a state machine that cannot snapshot or restore
//! ([`NodeError::StateMachine`]). Nonsense from the network does not: the core rejects it, counts
//! it ([`Stats`]) and carries on. A peer the transport cannot reach is reported to the core,
//! which stops pipelining to it and probes until it answers.
//!
//! # Your own state machine
//!
//! A state machine that sums the bytes of every command, replicated on three nodes in this
//! process, each on its own thread, on in-memory storage. The in-process cluster is test support
//! (module `test_util`, behind the feature `test-util`, for dev-dependencies only);
//! `examples/custom_state_machine.rs` runs a longer scenario on it, with a leader failure.
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//!
//! use raft_std::test_util::cluster::Cluster;
//! use raft_std::{Index, Role, StateMachine};
//!
//! /// Sums the bytes of the commands applied.
//! #[derive(Default)]
//! struct Sum(u64);
//!
//! impl StateMachine for Sum {
//!     type Response = u64; // what a proposal returns: the sum after it
//!     type Query = ();
//!     type QueryResponse = u64;
//!
//!     fn apply(&mut self, _index: Index, command: &[u8]) -> u64 {
//!         self.0 += command.iter().map(|&b| u64::from(b)).sum::<u64>();
//!         self.0
//!     }
//!     fn query(&self, _: &()) -> u64 {
//!         self.0
//!     }
//!     fn snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
//!         out.write_all(&self.0.to_le_bytes())
//!     }
//!     fn restore(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
//!         let mut b = [0; 8];
//!         input.read_exact(&mut b)?;
//!         self.0 = u64::from_le_bytes(b);
//!         Ok(())
//!     }
//! }
//!
//! let cluster = Cluster::start(3, |_| Sum::default())?;
//! let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
//! assert_eq!(cluster.propose(vec![2])?, 2); // sent to the leader, applied on every node
//! assert_eq!(cluster.propose(vec![3])?, 5);
//! assert_eq!(cluster.read(())?, 5); // a linearizable read (ReadIndex) at the leader
//! let status = cluster.node(leader).expect("a member").status()?;
//! assert_eq!(status.role, Role::Leader);
//! cluster.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! - [`storage`]: the [`Storage`] trait the runtime persists through, [`FileStorage`], and the
//!   file system it is written against ([`storage::fs`]).
//! - [`kv`]: the key-value state machine [`KvStore`] that `raft-kv` serves.
//! - [`state_machine`]: the [`StateMachine`] trait you implement.
//! - [`transport`]: the [`Transport`] trait a node sends through, its [`Inbox`], and an
//!   in-process channel network.
//! - [`runtime`]: [`RaftNode`], a node on its own thread, and its [`RuntimeConfig`].
//! - [`client`]: what sends requests to a cluster needs: completions, the one request error
//!   ([`RequestError`]), a router and exactly-once sessions.
//! - [`error`]: why a node stopped ([`NodeError`], [`NodeStopped`]).
//! - `test_util` (only with the feature `test-util`; not semver-stable, never for production):
//!   test doubles (a fault-injecting file system, in-memory storage) and `Cluster`, an
//!   in-process cluster for tests and examples.
//!
//! What starting and serving a node needs is re-exported here, and so are the core's types that a
//! state machine and a runtime user meet ([`Index`], [`NodeId`], [`LogId`], [`Membership`],
//! [`Payload`], [`Config`], [`Role`], [`Status`], ...), and the whole core as [`raft_core`], so
//! `raft-std` is the only dependency you need (and always the `raft-core` version it was built
//! with).

#![deny(missing_docs)]
// Nothing reachable from the network or the disk may panic: the lints raft-core uses (tests
// may unwrap).
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

pub mod client;
pub mod error;
pub mod kv;
mod rng;
pub mod runtime;
pub mod state_machine;
pub mod storage;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod transport;

pub use client::RequestError;
pub use error::{NodeError, NodeStopped};
pub use kv::KvStore;
pub use raft_core;
pub use raft_core::{
    Change, Config, Index, LogId, Membership, NodeId, Payload, Refusal, Role, Stats, Status, Term,
};
pub use runtime::{RaftNode, RuntimeConfig};
pub use state_machine::StateMachine;
pub use storage::file::{FileStorage, FileStorageOptions, Identity};
pub use storage::fs::StdFs;
pub use storage::{Recovered, Storage, StorageError};
pub use transport::{Inbox, Transport};
