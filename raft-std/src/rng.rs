//! The small generators the crate uses: SplitMix64 steps, and the runtime's election-timeout
//! RNG seeded per node.

use std::hash::{BuildHasher, Hasher};

use raft_core::NodeId;

/// SplitMix64: a tiny deterministic generator. Advances `state` and returns the next value.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 seeded from the node id, the clock and the process's random hasher keys. It only
/// picks election timeouts; all it needs is that nodes (and restarts) differ.
pub(crate) struct SeedRng(u64);

impl SeedRng {
    pub(crate) fn new(id: NodeId) -> Self {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(id.get());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        h.write_u32(nanos);
        Self(h.finish() ^ id.get().wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

impl rand_core::TryRng for SeedRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.try_next_u64().map(|v| (v >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(splitmix(&mut self.0))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or_default());
        }
        Ok(())
    }
}
