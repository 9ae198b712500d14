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
//! - [`cluster`]: [`Cluster`](cluster::Cluster), an in-process cluster for tests and examples.

#![deny(missing_docs)]

pub mod client;
pub mod cluster;
pub mod error;
pub mod kv;
mod rng;
pub mod runtime;
pub mod state_machine;
pub mod storage;
pub mod transport;
