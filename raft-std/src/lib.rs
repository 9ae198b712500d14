//! The std adapter for [`raft_core`]: a node runtime on threads, durable file storage and the
//! key-value state machine.
//!
//! - [`storage`]: the [`Storage`](storage::Storage) trait the runtime persists through, and its
//!   implementations.
//! - [`kv`]: the key-value state machine [`KvStore`](kv::KvStore) that `raft-kv` serves.
//! - [`state_machine`]: the [`StateMachine`](state_machine::StateMachine) trait users implement.
//! - [`transport`]: the [`Transport`](transport::Transport) trait a node sends through, and an
//!   in-process channel network.
//! - [`runtime`]: [`RaftNode`](runtime::RaftNode), a node on its own thread.
//! - [`client`]: what sends requests to a cluster needs: completions, the one request error,
//!   a router and exactly-once sessions.
//! - [`error`]: why a node stopped.
//! - `test_util` (only with the feature `test-util`; not for production): test doubles (a
//!   fault-injecting file system, in-memory storage) and `Cluster`, an in-process cluster for
//!   tests and examples.
//!
//! The core's types that a state machine and a runtime user meet ([`Index`], [`NodeId`],
//! [`LogId`], [`Membership`], [`Payload`], [`Config`], [`Role`], [`Status`], ...) are re-exported
//! here, and the whole core as [`raft_core`], so `raft-std` is the only dependency you need
//! (and always the `raft-core` version it was built with).
//!
//! # Example
//!
//! Your own state machine, replicated on three nodes in this process (each on its own thread, on
//! in-memory storage): it sums the bytes of every command.
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//!
//! use raft_std::test_util::cluster::Cluster;
//! use raft_std::state_machine::StateMachine;
//! use raft_std::{Index, Role};
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

#![deny(missing_docs)]

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

pub use raft_core;
pub use raft_core::{
    Change, Config, Index, LogId, Membership, NodeId, Payload, Refusal, Role, Stats, Status, Term,
};
