//! A bounded cache of recent masks. Login data repeats (one device logs in many times), and a
//! cached mask costs a hash and a compare instead of AES-SIV. Direct-mapped: a fixed number of
//! slots, each holding the last value that hashed there, so memory is bounded and a lookup
//! never allocates once the slot buffers have grown.
//!
//! The slot of a value is computed with 64-bit arithmetic on every target, so the native
//! library and the wasm32 module place every value in the same slot: hit rates counted natively
//! (`Transformer::cache_stats`) are the module's too.

pub(crate) struct MaskCache {
    slots: Vec<Slot>,
    hits: u64,
    lookups: u64,
}

#[derive(Default)]
struct Slot {
    filled: bool,
    input: Vec<u8>,
    mask: String,
}

/// Hashes `bytes` 8 at a time (FxHash's multiply-rotate step, in `u64` everywhere).
fn slot_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        hash = (hash ^ word).wrapping_mul(K).rotate_left(26);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    // The high bits are the best mixed: fold them down onto the index bits.
    hash ^ (hash >> 32) ^ (hash >> 47)
}

impl MaskCache {
    /// `size` slots, rounded up to a power of two; 0 disables caching.
    pub(crate) fn new(size: usize) -> Self {
        let size = if size == 0 { 0 } else { size.next_power_of_two() };
        MaskCache { slots: (0..size).map(|_| Slot::default()).collect(), hits: 0, lookups: 0 }
    }

    fn index(&self, input: &[u8]) -> usize {
        slot_hash(input) as usize & (self.slots.len() - 1)
    }

    /// The cached mask of `input`, if its slot holds it (counted as a lookup). A disabled
    /// cache always misses, uncounted.
    pub(crate) fn get(&mut self, input: &[u8]) -> Option<&str> {
        if self.slots.is_empty() {
            return None;
        }
        self.lookups += 1;
        let index = self.index(input);
        let slot = &self.slots[index];
        if slot.filled && slot.input == input {
            self.hits += 1;
            Some(&slot.mask)
        } else {
            None
        }
    }

    /// Stores `mask` as the mask of `input` (after a miss), replacing its slot's last value.
    pub(crate) fn insert(&mut self, input: &[u8], mask: &str) {
        if self.slots.is_empty() {
            return;
        }
        let index = self.index(input);
        let slot = &mut self.slots[index];
        slot.input.clear();
        slot.input.extend_from_slice(input);
        slot.mask.clear();
        slot.mask.push_str(mask);
        slot.filled = true;
    }

    /// (hits, lookups) since the cache was made.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (self.hits, self.lookups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_repeat_values_and_counts_them() {
        let mut cache = MaskCache::new(8);
        let mut computed = 0;
        for value in ["a", "b", "a", "a", "b"] {
            if let Some(mask) = cache.get(value.as_bytes()) {
                assert_eq!(mask, value.repeat(2));
            } else {
                computed += 1;
                cache.insert(value.as_bytes(), &value.repeat(2));
            }
        }
        // "a" and "b" may share a slot; either way every lookup is counted, hits only on a match.
        let (hits, lookups) = cache.stats();
        assert_eq!(lookups, 5);
        assert_eq!(hits + computed, 5);
        assert!(hits >= 1, "the second \"a\" in a row must hit");
        assert_eq!(MaskCache::new(0).get(b"a"), None);
    }

    #[test]
    fn slots_spread_distinct_values() {
        let mut used = std::collections::HashSet::new();
        for i in 0..4096 {
            used.insert(slot_hash(format!("10.0.{}.{}", i / 256, i % 256).as_bytes()) & 4095);
        }
        // A uniform hash fills about 63% of 4096 slots with 4096 values.
        assert!(used.len() > 2400, "only {} slots used", used.len());
    }
}
