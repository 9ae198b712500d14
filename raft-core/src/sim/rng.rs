//! The simulator's randomness: one seeded stream decides every fault and every delay.

use alloc::vec::Vec;
use core::convert::Infallible;

use crate::SplitMix64;

/// The workspace's [`SplitMix64`], with a fuzzer's bytes in front.
///
/// Built with [`SimRng::from_bytes`], it takes its decisions from a byte string first (one byte
/// for a small choice), so a coverage-guided fuzzer chooses the schedule; when the bytes run out
/// it continues as the PRNG.
#[derive(Clone, Debug)]
pub struct SimRng {
    prng: SplitMix64,
    bytes: Vec<u8>,
    pos: usize,
}

impl SimRng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            prng: SplitMix64::new(seed),
            bytes: Vec::new(),
            pos: 0,
        }
    }

    /// A generator that takes its decisions from `bytes`, then from a PRNG seeded with `seed`.
    #[must_use]
    pub fn from_bytes(bytes: &[u8], seed: u64) -> Self {
        Self {
            prng: SplitMix64::new(seed),
            bytes: bytes.to_vec(),
            pos: 0,
        }
    }

    fn take(&mut self, n: usize) -> Option<u64> {
        let chunk = self.bytes.get(self.pos..self.pos + n)?;
        self.pos += n;
        let mut v = 0u64;
        for &b in chunk {
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        if let Some(v) = self.take(8) {
            return v;
        }
        self.prng.next_u64()
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // From fuzzer bytes, a small choice costs one byte.
        if n <= 256 {
            if let Some(b) = self.take(1) {
                return (b * n) >> 8;
            }
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `per_million` / 1,000,000.
    pub fn chance(&mut self, per_million: u32) -> bool {
        if per_million == 0 {
            return false;
        }
        // From fuzzer bytes, one byte: the odds are rounded to 1/256 (and never to zero).
        if self.pos < self.bytes.len() {
            let threshold = (u64::from(per_million) * 256).div_ceil(1_000_000);
            return self.take(1).is_some_and(|b| b < threshold);
        }
        self.below(1_000_000) < u64::from(per_million)
    }

    /// An independent PRNG derived from this one's seed and `stream` (never from the bytes).
    #[must_use]
    pub fn fork(&self, stream: u64) -> Self {
        Self {
            prng: self.prng.fork(stream),
            bytes: Vec::new(),
            pos: 0,
        }
    }
}

impl rand_core::TryRng for SimRng {
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

/// Folds `value` into the running hash `h` (used for log-prefix fingerprints).
#[must_use]
pub fn mix(h: u64, value: u64) -> u64 {
    let mut z = (h ^ value.rotate_left(29)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31) ^ value
}

/// A fingerprint of a byte string.
#[must_use]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        for (d, s) in word.iter_mut().zip(chunk) {
            *d = *s;
        }
        h = mix(h, u64::from_le_bytes(word));
    }
    h
}
