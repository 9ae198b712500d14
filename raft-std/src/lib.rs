//! The std adapter for [`raft_core`]: a node runtime on threads, durable file storage and the
//! key-value state machine.
//!
//! Not built yet: this crate is a placeholder until its issue is taken.
