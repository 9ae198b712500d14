//! Randomized election timeouts: the only use of the RNG.

use rand_core::Rng;

/// Draws an election timeout uniformly from `[min, max)`.
///
/// Exactly one `next_u64` is drawn per call, so a test that controls the RNG can predict every
/// timeout. The draw goes through a bijective mixer first, so an RNG whose high bits are weak
/// (one that yields 53-bit values, say) still spreads timeouts over the whole range: identical
/// timeouts on every node would split every vote forever. Multiply-shift then maps it to the
/// range without modulo bias worth measuring (the range is far below 2^32).
pub(crate) fn random_timeout<R: Rng>(rng: &mut R, min: u32, max: u32) -> u32 {
    let span = u64::from(max.saturating_sub(min).max(1));
    let draw = mix(rng.next_u64()) >> 32;
    // (draw * span) >> 32 < span <= u32::MAX, so the cast is lossless.
    let offset = ((draw * span) >> 32) as u32;
    min.saturating_add(offset)
}

/// The SplitMix64 finalizer: a bijection on u64 that spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::convert::Infallible;

    struct Fixed(u64);
    impl rand_core::TryRng for Fixed {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            Ok(self.0 as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            Ok(self.0)
        }
        fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Infallible> {
            Ok(())
        }
    }

    #[test]
    fn timeouts_span_the_whole_range() {
        let mut seen = [false; 10];
        for v in 0..1000u64 {
            let t = random_timeout(&mut Fixed(v), 10, 20);
            assert!((10..20).contains(&t));
            seen[(t - 10) as usize] = true;
        }
        assert!(
            seen.iter().all(|&s| s),
            "every timeout in range is drawn: {seen:?}"
        );
    }

    #[test]
    fn small_draws_still_spread() {
        // An RNG that only ever yields small numbers must not give every node the same timeout.
        let a = random_timeout(&mut Fixed(1), 10, 20);
        let b = (2..50u64).map(|v| random_timeout(&mut Fixed(v), 10, 20));
        assert!(b.into_iter().any(|t| t != a));
    }
}
