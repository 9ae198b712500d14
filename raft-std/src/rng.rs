//! The runtime's election-timeout RNG: the workspace's one generator ([`SplitMix64`]), seeded
//! per node and per start.

use std::hash::{BuildHasher, Hasher};

use raft_core::{NodeId, SplitMix64};

/// A [`SplitMix64`] seeded from the node id, the clock and the process's random hasher keys. It
/// only picks election timeouts; all it needs is that nodes (and restarts) differ.
pub(crate) fn node_rng(id: NodeId) -> SplitMix64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(id.get());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    h.write_u32(nanos);
    SplitMix64::new(h.finish() ^ id.get().wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
