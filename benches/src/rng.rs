//! The RNG the benchmark nodes draw election timeouts from: the simulator's seeded SplitMix64.
//! Any `rand_core::Rng` would do: the core draws from it only when it resets an election timer.

pub use raft_core::sim::SimRng as SplitMix;
