//! The memoization of the search: the configurations seen, with dominance, and the bitsets
//! they are made of.

use core::hash::{BuildHasherDefault, Hasher};
use std::collections::HashMap;

use super::model::StateId;

/// The operations linearized so far, with the first unset and one past the last set index kept
/// up to date so that a configuration's key covers only the bits that can still differ.
pub(super) struct LinSet {
    words: Vec<u64>,
    /// Every index below this is set.
    low: usize,
    /// No index at or above this is set.
    high: usize,
}

impl LinSet {
    pub(super) fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            low: 0,
            high: 0,
        }
    }

    pub(super) fn set(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
        self.high = self.high.max(i + 1);
        if i == self.low {
            while let Some(&word) = self.words.get(self.low / 64) {
                let off = self.low % 64;
                let ones = (!(word >> off)).trailing_zeros() as usize;
                self.low += ones;
                if ones < 64 - off {
                    break;
                }
            }
        }
    }

    pub(super) fn clear(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
        self.low = self.low.min(i);
        if i + 1 == self.high {
            self.high = 0;
            for w in (0..=i / 64).rev() {
                let word = self.words.get(w).copied().unwrap_or(0);
                if word != 0 {
                    self.high = w * 64 + 64 - word.leading_zeros() as usize;
                    break;
                }
            }
        }
    }

    /// Writes the memo key of this set with `state` into `out`: the state, the first word not
    /// all ones, and the words from there to the last set bit. Every word below is all ones and
    /// every word above is zero, so equal keys mean equal sets.
    pub(super) fn key(&self, state: StateId, out: &mut Vec<u64>) {
        let start = self.low / 64;
        let end = self.high.div_ceil(64).max(start);
        out.clear();
        out.push(u64::from(state));
        out.push(start as u64);
        out.extend_from_slice(self.words.get(start..end).unwrap_or_default());
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The configurations seen, with dominance: a configuration is the completed operations
/// linearized with the state after them ([`LinSet::key`]), plus the set of unknown-outcome
/// operations that took effect. Having more unknown operations behind it never helps (one that
/// has not taken effect still may, or may never), so a configuration is not explored again if
/// one with the same key and a subset of its unknown operations was.
///
/// Entries are stored end to end in one arena (the key, then the unknown set) and found through
/// a table from the key's hash to a chain of entries.
pub(super) struct Cache {
    table: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    /// Per entry: where it starts in `arena`, its key's length, and the next entry with the same
    /// hash (`u32::MAX`: none).
    entries: Vec<(usize, u32, u32)>,
    arena: Vec<u64>,
    /// Words of every entry's unknown set.
    pub(super) unknown_words: usize,
}

impl Cache {
    pub(super) fn new(unknown_words: usize) -> Self {
        Self {
            table: HashMap::default(),
            entries: Vec::new(),
            arena: Vec::new(),
            unknown_words,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Roughly the bytes used.
    pub(super) fn memory(&self) -> usize {
        self.arena.capacity() * 8 + self.entries.capacity() * 16 + self.table.capacity() * 16
    }

    /// Adds the configuration `key` with `unknown` unless one with that key and a subset of
    /// `unknown` is there; whether it was added.
    pub(super) fn insert(&mut self, key: &[u64], unknown: &[u64]) -> bool {
        let hash = hash_words(key);
        let new = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let slot = self.table.entry(hash).or_insert(u32::MAX);
        let head = *slot;
        let mut at = head;
        while let Some(&(start, len, next)) = self.entries.get(at as usize) {
            let end = start + len as usize;
            let seen_key = self.arena.get(start..end).unwrap_or_default();
            let seen_unknown = self
                .arena
                .get(end..end + self.unknown_words)
                .unwrap_or_default();
            if seen_key == key && is_subset(seen_unknown, unknown) {
                return false;
            }
            at = next;
        }
        *slot = new;
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        self.entries.push((self.arena.len(), len, head));
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(unknown);
        true
    }
}

/// Whether every bit of `a` is in `b`.
fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(a, b)| a & !b == 0)
}

/// FxHash's word step with a murmur3 finish, so that both the low and the high bits (which the
/// table uses) are mixed.
fn hash_words(words: &[u64]) -> u64 {
    let mut h: u64 = 0;
    for &w in words {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Whether bit `i` is set.
pub(super) fn bit(words: &[u64], i: usize) -> bool {
    words.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
}

/// Sets or clears bit `i`.
pub(super) fn set_bit(words: &mut [u64], i: usize, on: bool) {
    if let Some(w) = words.get_mut(i / 64) {
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linset_tracks_low_and_high() {
        let mut s = LinSet::new(200);
        let mut key = Vec::new();
        s.key(0, &mut key);
        assert_eq!(key, [0, 0]);
        for i in 0..70 {
            s.set(i);
        }
        assert_eq!((s.low, s.high), (70, 70));
        s.key(3, &mut key);
        assert_eq!(key, [3, 1, (1 << 6) - 1]);
        s.set(130);
        assert_eq!((s.low, s.high), (70, 131));
        s.clear(130);
        assert_eq!((s.low, s.high), (70, 70));
        s.clear(5);
        assert_eq!((s.low, s.high), (5, 70));
        s.set(5);
        assert_eq!((s.low, s.high), (70, 70));
        for i in 0..128 {
            s.set(i);
        }
        assert_eq!((s.low, s.high), (128, 128));
        s.key(1, &mut key);
        assert_eq!(key, [1, 2]);
        for i in (0..128).rev() {
            s.clear(i);
        }
        assert_eq!((s.low, s.high), (0, 0));
    }

    #[test]
    fn equal_sets_give_equal_keys() {
        // Built in different orders, the same set gives the same key; different sets differ.
        let mut a = LinSet::new(150);
        let mut b = LinSet::new(150);
        for i in [3, 0, 1, 2, 64, 100] {
            a.set(i);
        }
        for i in [100, 64, 2, 1, 0, 3, 7] {
            b.set(i);
        }
        b.clear(7);
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        a.key(1, &mut ka);
        b.key(1, &mut kb);
        assert_eq!(ka, kb);
        b.clear(64);
        b.key(1, &mut kb);
        assert_ne!(ka, kb);
    }

    #[test]
    fn cache_remembers_keys_and_dominance() {
        let mut cache = Cache::new(1);
        assert!(cache.insert(&[1, 2, 3], &[0b01]));
        assert!(!cache.insert(&[1, 2, 3], &[0b01]));
        // More unknown operations behind the same key: dominated.
        assert!(!cache.insert(&[1, 2, 3], &[0b11]));
        // Fewer, or others: not.
        assert!(cache.insert(&[1, 2, 3], &[0b10]));
        assert!(cache.insert(&[1, 2, 3], &[0b00]));
        assert!(!cache.insert(&[1, 2, 3], &[0b10]));
        assert!(cache.insert(&[1, 2], &[0b11]));
        assert!(cache.insert(&[], &[0]));
        assert!(!cache.insert(&[], &[0]));
        assert_eq!(cache.len(), 5);
        let mut none = Cache::new(0);
        assert!(none.insert(&[7], &[]));
        assert!(!none.insert(&[7], &[]));
    }
}
