//! A Raft consensus core: `no_std`, sans-IO, deterministic.
//!
//! (Crate documentation is written below, after the module list.)
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
#[cfg(test)]
extern crate std;

mod config;
mod durability;
mod election;
mod error;
mod input;
#[cfg(any(test, feature = "sim"))]
mod invariants;
mod log;
mod membership;
mod message;
mod node;
mod output;
mod progress;
mod read_index;
mod replication;
mod restore;
#[cfg(feature = "sim")]
pub mod sim;
mod status;
mod types;
mod voting;

pub use config::{Config, ConfigError};
pub use error::{Misuse, Refusal, Reject, RestoreError, StepError};
pub use input::{Input, ReadId};
#[cfg(any(test, feature = "sim"))]
pub use invariants::InvariantViolation;
pub use membership::{MAX_MEMBERS, Members, Membership, MembershipError};
pub use message::{AppendOutcome, Message, MessageBody};
pub use node::Node;
pub use output::{Event, Outputs, ReadResult, Write, WriteId};
pub use restore::{Restored, SnapshotMeta};
pub use status::{PeerStatus, ReplicationState, Role, Stats, Status};
pub use types::{Entry, EntryKind, HardState, Index, LogId, NodeId, Payload, Term};
