//! Checking histories of the replicated key-value store.
//!
//! [`history`] is the format a recorder writes: one JSON line per client operation.
#![deny(missing_docs)]

pub mod generate;
pub mod history;
pub mod linearizability;
