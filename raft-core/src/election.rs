//! Randomized election timeouts: the only use of the RNG.

use rand_core::Rng;

/// Draws an election timeout uniformly from `[min, max)`.
///
/// Exactly one `next_u64` is drawn per call, so a test that controls the RNG can predict every
/// timeout. Multiply-shift maps the draw to the range without modulo bias worth measuring (the
/// range is far below 2^32).
pub(crate) fn random_timeout<R: Rng>(rng: &mut R, min: u32, max: u32) -> u32 {
    let span = u64::from(max.saturating_sub(min).max(1));
    let draw = rng.next_u64() >> 32;
    // (draw * span) >> 32 < span <= u32::MAX, so the cast is lossless.
    let offset = ((draw * span) >> 32) as u32;
    min.saturating_add(offset)
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
        assert_eq!(random_timeout(&mut Fixed(0), 10, 20), 10);
        assert_eq!(random_timeout(&mut Fixed(u64::MAX), 10, 20), 19);
        assert_eq!(random_timeout(&mut Fixed(1 << 63), 10, 20), 15);
    }
}
