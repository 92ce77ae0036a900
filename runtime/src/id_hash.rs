//! `IdMap`: a `HashMap` keyed by job id whose hash keeps neighbouring ids
//! in neighbouring buckets. The scheduler looks its entries up in id order
//! (a burn-down leases, runs and completes jobs roughly in submission
//! order), and a million entries are tens of MB: with a hash that scatters
//! every id (SipHash, or any general-purpose hasher) each lookup is a cache
//! miss, and the `jobs` burn-down measured a third slower than with the
//! job table's id-ordered `BTreeMap` alone. Here the 64 ids of one page
//! (`id >> 6`) sit in one block of 64 buckets (in order, from a rotation
//! the page's hash picks), and the blocks are scattered by a full 64-bit
//! mixer: a page costs one miss, not 64. Because both the block and the
//! rotation come from the page's hash, ids that share a stride (every
//! 64th or 4096th job still waiting) spread over the table instead of
//! piling into one bucket. Ids are handed out by the runtime, never
//! chosen by a caller.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::JobId;

/// A `HashMap` keyed by job id (see the module doc).
pub type IdMap<V> = HashMap<JobId, V, BuildHasherDefault<IdHasher>>;

/// The hash of one job id; only `write_u64` is ever called.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

/// murmur3's 64-bit finalizer: every input bit flips each output bit with
/// probability about 1/2.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The hash of `id`: low bits (the bucket) the page's scattered block and
/// the slot rotated within it; top 7 bits (hashbrown's tag byte) differ
/// between the slots of a page, so a probe compares few keys.
fn hash_of(id: JobId) -> u64 {
    let slot = id & 63;
    let m = mix(id >> 6);
    ((m << 6) | (slot.wrapping_add(m >> 32) & 63)) ^ (slot << 57)
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `u64` keys; hash any other input correctly anyway.
        for b in bytes {
            self.0 = mix(self.0 ^ u64::from(*b));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = hash_of(id);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by a number the runtime hands out (a kind id, a
/// lease epoch), hashed by `mix` alone. The scheduler and the counts by
/// kind look such keys up several times a job; SipHash, which resists keys
/// a caller chooses, was about 4 % of a 1M burn-down's CPU (perf), for keys
/// no caller chooses.
pub type NumMap<K, V> = HashMap<K, V, BuildHasherDefault<NumHasher>>;

/// The hash of one kind id or epoch (`NumMap`).
#[derive(Default, Clone, Copy)]
pub struct NumHasher(u64);

impl Hasher for NumHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for integer keys; hash any other input correctly anyway.
        for b in bytes {
            self.0 = mix(self.0 ^ u64::from(*b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = mix(self.0 ^ u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0 ^ n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ids_of_one_page_take_one_block_of_buckets_in_order() {
        let low = |h: u64| h & ((1 << 57) - 1);
        let base = hash_of(64 * 1000);
        let mut tags = std::collections::HashSet::new();
        for slot in 0..64u64 {
            let h = hash_of(64 * 1000 + slot);
            assert_eq!(low(h) >> 6, low(base) >> 6, "one block");
            assert_eq!(h & 63, (base + slot) & 63, "in order, rotated");
            tags.insert(h >> 57);
        }
        assert_eq!(tags.len(), 64, "each slot has its own tag");
    }

    #[test]
    fn ids_with_a_power_of_two_stride_spread_over_the_buckets() {
        // 4096 ids 64 or 4096 apart, in a table of 8192 buckets: random
        // placement fills about 3200 distinct buckets.
        for stride in [64, 4096] {
            let buckets: std::collections::HashSet<u64> =
                (1..=4096u64).map(|i| hash_of(i * stride) & 8191).collect();
            assert!(
                buckets.len() > 3000,
                "stride {stride}: {} buckets",
                buckets.len()
            );
        }
    }
}
