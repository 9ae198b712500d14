//! Benchmarks for the workspace: the shared drivers behind the criterion suites in `benches/` and
//! the side-by-side runners `src/bin/compare.rs` (throughput, allocations) and
//! `src/bin/messages.rs` (messages per committed entry).
//!
//! - [`ours`]: an in-memory cluster of `raft-core` nodes. Messages go straight from one node's
//!   sends lane to the addressee's `step`; writes are "made durable" by moving them into a `Vec`
//!   and acknowledged at once.
//! - `raftrs` (feature `raft-rs`, off by default): the same cluster on tikv's raft-rs (`raft`
//!   0.7, `RawNode` over `MemStorage`, protobuf codec, `batch_append` on).
//! - [`workload`]: the one loop that drives either cluster, so both sides see the same
//!   proposals in the same rhythm.
//! - [`messages`]: small scenarios (a shuffled burst, a slow leader disk) run the same way on
//!   either cluster, counting every message sent per committed entry.
//! - [`counting_alloc`]: a counting global allocator, for allocations per committed entry.
//!
//! Run the suites with `cargo bench -p benches`, the comparisons with
//! `cargo run --release -p benches --features raft-rs --bin compare` and
//! `cargo run --release -p benches --features raft-rs --bin messages`.

pub mod counting_alloc;
pub mod messages;
pub mod ours;
#[cfg(feature = "raft-rs")]
pub mod raftrs;
pub mod rng;
pub mod workload;

pub use counting_alloc::{AllocCounts, CountingAlloc};
pub use workload::{Cluster, RunStats, Traffic, Workload, run};

// The library's own tests count allocations too.
#[cfg(test)]
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;
