//! A bounded cache of recent masks. Login data repeats (one device logs in many times), and a
//! cached mask costs a hash and a compare instead of AES-SIV. Direct-mapped: a fixed number of
//! slots, each holding the last value that hashed there, so memory is bounded and a lookup
//! never allocates once the slot buffers have grown.

use std::hash::BuildHasher;

pub(crate) struct MaskCache {
    slots: Vec<Slot>,
    hasher: rustc_hash::FxBuildHasher,
}

#[derive(Default)]
struct Slot {
    filled: bool,
    input: String,
    mask: String,
}

impl MaskCache {
    /// `size` slots, rounded up to a power of two; 0 disables caching.
    pub(crate) fn new(size: usize) -> Self {
        let size = if size == 0 { 0 } else { size.next_power_of_two() };
        MaskCache {
            slots: (0..size).map(|_| Slot::default()).collect(),
            hasher: rustc_hash::FxBuildHasher,
        }
    }

    /// The mask of `input`, computed by `compute` on a miss.
    pub(crate) fn get_or_insert<'a>(
        &'a mut self,
        input: &str,
        compute: impl FnOnce(&mut String),
    ) -> &'a str {
        if self.slots.is_empty() {
            return "";
        }
        let index = self.hasher.hash_one(input) as usize & (self.slots.len() - 1);
        let slot = &mut self.slots[index];
        if !(slot.filled && slot.input == input) {
            slot.input.clear();
            slot.input.push_str(input);
            slot.mask.clear();
            compute(&mut slot.mask);
            slot.filled = true;
        }
        &slot.mask
    }

    pub(crate) fn is_enabled(&self) -> bool {
        !self.slots.is_empty()
    }
}
