//! A bounded cache of recent masks. Login data repeats (one device logs in many times), and a
//! cached mask costs a hash and a compare instead of AES-SIV. Direct-mapped: a fixed number of
//! slots, each holding the last value that hashed there, so memory is bounded and a lookup
//! never allocates once the slot buffers have grown.
//!
//! The slot of a value is computed with 64-bit arithmetic on every target, so the native
//! library and the wasm32 module place every value in the same slot: hit rates counted natively
//! with the cache always on (`Transformer::cache_stats`) are the module's too. (The threshold
//! below differs by target, so the lookups an adaptive cache makes natively may not be.)
//!
//! # Switching itself off
//!
//! The cache only pays above a break-even hit rate: a lookup that misses costs a hash, a
//! random access into the slots and a copy of the value and its mask into the slot, and since
//! two masks share their AES calls (`mask_pending`) a hit on one column saves less than a whole
//! mask. Measured on one cold pass over 200,000 events (docs/benchmarks.md, "Levers"), the
//! cache on is 0.83x of cache off natively and 0.96x in wasm at an 8% hit rate, 0.82x / 0.86x
//! at 0%; over events that repeat a recent one with a given probability (`maskflow-bench
//! profile --data repeat:P`) it breaks even near a 45% hit rate natively and 20-30% in wasm
//! (noisy, shared 2-core machines). So:
//!
//! - The cache counts its hits over windows of [`WINDOW`] lookups (at least as many as it has
//!   slots, so that a cold cache can fill within its first window).
//! - A window under [`MIN_HIT_RATE_PER_64`]/64 (37.5% natively, 25% in wasm: the module is
//!   what the host runs; near break-even either choice costs little) switches it off for [`OFF_WINDOWS`] windows' worth of values: `get`
//!   then returns `None` after one decrement, and `insert` returns at once (no hash, no copy).
//!   The slots keep what they held.
//! - Then it looks up (and inserts) again for one window, a probe, and stays on if that window
//!   reaches the threshold. Data whose hit rate rises later (a burst of redeliveries, a replay)
//!   gets the cache back within 16 windows; on data that never repeats the cache costs the
//!   probes, 1 value in 16. A probe starts from the slots as they were, so a working set
//!   that needs more than a window to fill the cache may take a few probes to win it back.
//!
//! Deliberately simple: no allocation, one predictable branch per lookup while off, and the
//! arithmetic once per window. The masks are deterministic, so whether a value was looked up,
//! bypassed or computed never changes the output: only the time it takes.

/// Lookups per window, at the least (a cache with more slots uses its slot count).
pub(crate) const WINDOW: u64 = 4096;
/// A window with fewer hits than this many 64ths of its lookups switches the cache off.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const MIN_HIT_RATE_PER_64: u64 = 24;
#[cfg(target_arch = "wasm32")]
pub(crate) const MIN_HIT_RATE_PER_64: u64 = 16;
/// How long the cache stays off, in windows' worth of values, before it probes again.
pub(crate) const OFF_WINDOWS: u64 = 15;

pub(crate) struct MaskCache {
    slots: Vec<Slot>,
    hits: u64,
    lookups: u64,
    bypassed: u64,
    /// Values still to let through without a lookup (0: the cache is on).
    off_for: u64,
    /// Lookups per window, lookups left in the current one, and `hits` when it began.
    window: u64,
    window_left: u64,
    window_hits: u64,
    /// Whether a window under the threshold switches the cache off (tests and benchmarks
    /// compare with a cache that is always on).
    adaptive: bool,
}

/// What the mask caches did, summed over the masked columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found the value's mask.
    pub hits: u64,
    /// Lookups made (hits included).
    pub lookups: u64,
    /// Values masked without a lookup while the cache had switched itself off.
    pub bypassed: u64,
}

impl CacheStats {
    /// Hits per lookup made (0 with no lookups).
    pub fn hit_rate(&self) -> f64 {
        self.hits as f64 / self.lookups.max(1) as f64
    }
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
        MaskCache {
            slots: (0..size).map(|_| Slot::default()).collect(),
            hits: 0,
            lookups: 0,
            bypassed: 0,
            off_for: 0,
            window: (size as u64).max(WINDOW),
            window_left: (size as u64).max(WINDOW),
            window_hits: 0,
            adaptive: true,
        }
    }

    /// `false`: never switch off (the cache before it learnt to); `true` is the default.
    pub(crate) fn set_adaptive(&mut self, adaptive: bool) {
        self.adaptive = adaptive;
        if !adaptive {
            self.off_for = 0;
        }
    }

    fn index(&self, input: &[u8]) -> usize {
        slot_hash(input) as usize & (self.slots.len() - 1)
    }

    /// The cached mask of `input`, if its slot holds it (counted as a lookup). A disabled
    /// cache always misses, uncounted; a cache that has switched itself off misses without
    /// looking, counted as bypassed.
    pub(crate) fn get(&mut self, input: &[u8]) -> Option<&str> {
        if self.slots.is_empty() {
            return None;
        }
        if self.off_for != 0 {
            self.off_for -= 1;
            self.bypassed += 1;
            return None;
        }
        self.lookups += 1;
        self.window_left -= 1;
        if self.window_left == 0 {
            self.end_window();
        }
        let index = self.index(input);
        let slot = &self.slots[index];
        if slot.filled && slot.input == input {
            self.hits += 1;
            Some(&slot.mask)
        } else {
            None
        }
    }

    /// Called on the last lookup of a window (before its outcome is counted: one lookup in
    /// thousands, it does not move the rate): off for a while if the window hit too rarely.
    #[cold]
    fn end_window(&mut self) {
        let hits = self.hits - self.window_hits;
        self.window_hits = self.hits;
        self.window_left = self.window;
        if self.adaptive && hits * 64 < self.window * MIN_HIT_RATE_PER_64 {
            self.off_for = OFF_WINDOWS * self.window;
        }
    }

    /// Stores `mask` as the mask of `input` (after a miss), replacing its slot's last value.
    /// Nothing while the cache is off.
    pub(crate) fn insert(&mut self, input: &[u8], mask: &str) {
        if self.slots.is_empty() || self.off_for != 0 {
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

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats { hits: self.hits, lookups: self.lookups, bypassed: self.bypassed }
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
        let CacheStats { hits, lookups, bypassed } = cache.stats();
        assert_eq!((lookups, bypassed), (5, 0));
        assert_eq!(hits + computed, 5);
        assert!(hits >= 1, "the second \"a\" in a row must hit");
        assert_eq!(MaskCache::new(0).get(b"a"), None);
    }

    /// Looks up (and after a miss inserts) each value; returns the hits.
    fn feed(cache: &mut MaskCache, values: impl Iterator<Item = u64>) -> u64 {
        let mut hits = 0;
        for v in values {
            let value = v.to_string();
            if cache.get(value.as_bytes()).is_some() {
                hits += 1;
            } else {
                cache.insert(value.as_bytes(), "mask");
            }
        }
        hits
    }

    #[test]
    fn switches_off_below_break_even_and_probes_again() {
        let period = (OFF_WINDOWS + 1) * WINDOW;
        let mut cache = MaskCache::new(64);
        feed(&mut cache, 0..2 * period + WINDOW);
        // One window on, then off for OFF_WINDOWS windows' worth: one probe window per period.
        let s = cache.stats();
        assert_eq!((s.lookups, s.bypassed, s.hits), (3 * WINDOW, 2 * (period - WINDOW), 0));
        // Values that start repeating while it is off: the next probe finds them and the cache
        // stays on.
        let hits = feed(&mut cache, (0..2 * period).map(|i| i % 8));
        let s = cache.stats();
        assert_eq!((s.lookups, s.bypassed), (4 * WINDOW + period, 3 * (period - WINDOW)), "{s:?}");
        assert!(hits > (period + WINDOW) / 2, "{hits} hits");
        // Always on: never bypasses.
        let mut always = MaskCache::new(64);
        always.set_adaptive(false);
        feed(&mut always, 0..period);
        assert_eq!((always.stats().lookups, always.stats().bypassed), (period, 0));
        // A cache larger than a window decides over as many lookups as it has slots.
        let mut big = MaskCache::new(2 * WINDOW as usize);
        feed(&mut big, 0..2 * WINDOW);
        assert_eq!((big.stats().lookups, big.stats().bypassed), (2 * WINDOW, 0));
        feed(&mut big, 0..1);
        assert_eq!(big.stats().bypassed, 1);
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
