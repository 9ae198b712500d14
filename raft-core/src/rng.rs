//! [`SplitMix64`]: the one small seeded generator of the workspace.

use core::convert::Infallible;

/// SplitMix64 (Steele, Lea and Flood): a tiny, fast, seeded generator. Not cryptographic.
///
/// Good enough for what a node needs (election timeouts that differ between nodes: seed each
/// node differently, e.g. from its id and the clock) and for tests and simulations (one seed
/// decides everything, and replays it). It implements `rand_core` 0.10's `TryRng` (hence `Rng`),
/// so it can be the RNG a [`Node`](crate::Node) is built with.
///
/// ```
/// use raft_core::SplitMix64;
///
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64()); // same seed, same stream
/// assert!(a.below(10) < 10);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0), by multiply-shift (no modulo bias worth measuring).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi` (`lo` if `hi < lo`).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo.saturating_add(self.below(hi.saturating_sub(lo).saturating_add(1)))
    }

    /// An index in `0..n` (0 if `n` is 0).
    pub fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    /// True with probability `p` (in `0.0..=1.0`).
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits as a float in [0, 1).
        ((self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64) < p
    }

    /// An independent generator derived from this one's state and `stream`.
    #[must_use]
    pub fn fork(&self, stream: u64) -> Self {
        let mut r = Self::new(self.state ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }
}

impl rand_core::TryRng for SplitMix64 {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next_u64() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(v) {
                *d = s;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn the_stream_is_splitmix64() {
        // The reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn ranges_hold() {
        let mut r = SplitMix64::new(3);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
            assert!((5..=9).contains(&r.between(5, 9)));
            assert!(r.index(3) < 3);
        }
        assert_eq!(r.below(0), 0);
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
    }

    /// The state whose next draw is 0 (SplitMix64's output function maps 0 to 0).
    const DRAWS_ZERO: u64 = 0_u64.wrapping_sub(0x9E37_79B9_7F4A_7C15);

    /// `below(n)` is uniform on `0..n`: every value of the range is drawn, not just some.
    #[test]
    fn below_and_index_draw_every_value_of_the_range() {
        let mut r = SplitMix64::new(11);
        let mut seen = [0_u32; 10];
        for _ in 0..1000 {
            seen[r.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "below(10): {seen:?}");
        let mut seen = [0_u32; 3];
        for _ in 0..300 {
            seen[r.index(3)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "index(3): {seen:?}");
        // The top of the range too, where the multiply-shift must not overflow.
        let top = (0..64).map(|_| r.below(u64::MAX)).max().unwrap_or(0);
        assert!(top > u64::MAX / 2, "below(u64::MAX) reaches the upper half");
    }

    /// `chance(p)` is true with probability exactly `p`: never for 0, even on the lowest draw,
    /// and always for 1.
    #[test]
    fn chance_is_never_true_at_zero_and_always_at_one() {
        let mut r = SplitMix64::new(DRAWS_ZERO);
        assert_eq!(r.clone().next_u64(), 0, "this seed draws 0 first");
        assert!(!r.chance(0.0), "the draw 0 is not below 0");
        let mut r = SplitMix64::new(DRAWS_ZERO);
        assert!(r.chance(f64::MIN_POSITIVE), "the draw 0 is below any p > 0");
        let mut r = SplitMix64::new(u64::MAX);
        for _ in 0..1000 {
            assert!(r.chance(1.0));
        }
        let mut r = SplitMix64::new(5);
        let hits = (0..1000).filter(|_| r.chance(0.5)).count();
        assert!((400..600).contains(&hits), "chance(0.5): {hits} of 1000");
    }

    /// Forks are deterministic, and distinct streams of one parent (whatever its state, even all
    /// zeros or all ones) or one stream of distinct parents give distinct generators.
    #[test]
    fn forks_are_deterministic_and_distinct() {
        for seed in [0, u64::MAX, 42] {
            let parent = SplitMix64::new(seed);
            assert_eq!(parent.fork(3), parent.fork(3));
            let mut firsts: Vec<u64> = (0..16).map(|s| parent.fork(s).next_u64()).collect();
            firsts.sort_unstable();
            firsts.dedup();
            assert_eq!(firsts.len(), 16, "parent {seed}: streams collide");
        }
        for stream in [0, 1, u64::MAX] {
            let mut firsts: Vec<u64> = [0, 1, u64::MAX, 42]
                .iter()
                .map(|&seed| SplitMix64::new(seed).fork(stream).next_u64())
                .collect();
            firsts.sort_unstable();
            firsts.dedup();
            assert_eq!(firsts.len(), 4, "stream {stream}: parents collide");
        }
    }

    /// Through `rand_core::Rng`, `next_u32` yields all 32 bits (each bit is set and cleared
    /// across draws), and `fill_bytes` overwrites every byte, a trailing partial chunk included,
    /// from the stream (same seed, same bytes).
    #[test]
    fn rand_core_draws_fill_every_bit_and_byte() {
        use rand_core::Rng;
        let mut r = SplitMix64::new(9);
        let (mut any, mut all) = (0_u32, u32::MAX);
        for _ in 0..64 {
            let v = Rng::next_u32(&mut r);
            any |= v;
            all &= v;
        }
        assert_eq!((any, all), (u32::MAX, 0));
        let (mut zeros, mut ones) = ([0_u8; 21], [0xFF_u8; 21]);
        SplitMix64::new(9).fill_bytes(&mut zeros);
        SplitMix64::new(9).fill_bytes(&mut ones);
        assert_eq!(zeros, ones, "every byte is written");
        assert!(zeros.iter().any(|&b| b != 0) && zeros.iter().any(|&b| b != 0xFF));
    }
}
