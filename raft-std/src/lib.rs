//! The std adapter for [`raft_core`]: a node runtime on threads, durable file storage and the
//! key-value state machine.
//!
//! - [`storage`]: the [`Storage`](storage::Storage) trait the runtime persists through, and its
//!   implementations.
//! - [`kv`]: the key-value state machine [`KvStore`](kv::KvStore) that `raft-kv` serves.
//! - [`state_machine`]: the [`StateMachine`](state_machine::StateMachine) trait users implement.

pub mod kv;
pub mod state_machine;
pub mod storage;
