//! A deterministic cluster simulator: test support, not part of the stable API (feature `sim`).
//!
//! Many nodes run in one thread under one seed. The network drops, duplicates, delays and
//! reorders messages and makes partitions (symmetric, one-way, leader isolated,
//! minority/majority splits); nodes crash, losing writes not acknowledged as durable (and
//! sometimes tearing the last one), and restart from their disks; disks are slow. After every
//! step the simulator checks Election Safety, Log Matching, Leader Completeness, State Machine
//! Safety, the persistence contract (no vote or append acknowledgement leaves a node before its
//! write is durable), monotonic commit indexes, linearizable ReadIndex results and the node's own
//! invariants. A run has a fault phase, then a healed phase in which a proposal must commit
//! within a bound.
//!
//! The same seed always produces the same run, byte for byte: a failing seed is a reproducible
//! bug.
//!
//! # Where things are
//!
//! - `options`: [`SimOptions`] (a run's fault mix, drawn from its seed), [`SimFailure`],
//!   [`Summary`].
//! - `adapter`: [`Simulation`] and its adapter loop: step a node, drain its lanes into the
//!   simulated disk, network and state machine, settle a tick, crash and restart nodes.
//! - `faults`: a random run ([`Simulation::run`]: the fault phase, then the healed phase) and the
//!   entry points [`run_seed`], [`run_options`], [`trace_seed`], [`trace_options`].
//! - `checks`: what is checked after every step (the node's state, the persistence contract,
//!   State Machine Safety, linearizable reads); `checker`: the cluster-wide history they check
//!   against ([`Checker`]).
//! - `scripted`: the API scenario tests drive ([`Simulation::scripted`], [`Simulation::run_until`],
//!   ...).
//! - `trace`: the trace's wording ([`Simulation::trace`], the golden transcripts in
//!   `raft-core/tests/golden/`).
//! - `network` ([`Network`]), `disk` ([`SimDisk`]), `rng` ([`SimRng`]), and `fuzz`, the fuzz
//!   targets' entry points (feature `arbitrary`).

#![allow(
    clippy::indexing_slicing,
    reason = "test support: node numbers index vectors sized to the cluster at construction"
)]
#![allow(
    clippy::cast_possible_truncation,
    reason = "test support: counts and node numbers are small"
)]

mod adapter;
mod checker;
mod checks;
mod disk;
mod faults;
#[cfg(feature = "arbitrary")]
pub mod fuzz;
mod network;
mod options;
mod pause;
mod rng;
mod scripted;
mod trace;

pub use adapter::Simulation;
pub use checker::Checker;
pub use disk::{SimDisk, blob_prefix, snapshot_blob};
pub use faults::{run_options, run_seed, trace_options, trace_seed};
pub use network::{Network, NetworkFaults, PartitionKind};
pub use options::{ClockDrift, SimFailure, SimOptions, Summary};
pub use rng::{SimRng, hash_bytes, mix};
