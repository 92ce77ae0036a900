//! What the store holds in RAM for its active segment (issue 12, G10):
//! until a segment seals, each of its frames is in the writer's footer
//! directory and each of its keys in the index's map, so the segment size
//! bounds that memory. Measured here with a counting allocator (this test
//! binary's own; the process holds only this test, so the count is the
//! store's).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use booster_store::{Batch, SliceKey, Store, StoreOptions};

/// Bytes allocated and not yet freed, by every thread.
static HELD_BYTES: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; the count beside
// it is one atomic add and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: ptr came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: ptr came from System with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What the active segment's index may hold at its fullest.
const ACTIVE_SEGMENT_RAM_BUDGET_BYTES: u64 = 48 << 20;

/// A frame of one 100-byte record that does not compress: about the
/// average frame of the soak (a row page, a state mask, a meta frame).
fn record(seq: u64) -> Vec<u8> {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_keys(store: &Store, from: u64, to: u64) {
    for first in (from..to).step_by(1_000) {
        let mut batch = Batch::new();
        for seq in first..(first + 1_000).min(to) {
            let key = SliceKey {
                owner: u64::MAX,
                stream: 0,
                seq,
            };
            batch = batch.slice(key, &[record(seq)]);
        }
        store.append(batch).unwrap();
    }
}

/// At the default segment size, a segment full of the soak's frames keeps
/// its index within the budget until it seals. It did not at 64 MiB (the
/// soak's RSS rose about 60 MB before each seal, and the seal's sorted run
/// and footer doubled it for a moment).
#[test]
fn the_active_segment_s_index_fits_its_budget_at_the_default_segment_size() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::default();
    let segment_size_bytes = opts.segment_size_bytes;
    let (store, _) = Store::open(dir.path(), opts).unwrap();
    // The cost of a key is the difference between two fill levels, so the
    // writer's reused buffers (constant) are not counted as keys.
    let (small, large) = (10_000u64, 60_000u64);
    write_keys(&store, 0, small);
    let at_small = HELD_BYTES.load(Ordering::Relaxed);
    let disk_at_small = store.stats().live_bytes;
    write_keys(&store, small, large);
    let at_large = HELD_BYTES.load(Ordering::Relaxed);
    let disk_at_large = store.stats().live_bytes;
    assert_eq!(store.memory().segments, 1, "the test stays in one segment");
    assert_eq!(store.memory().keys_in_ram, large as usize);
    let ram_per_key = (at_large - at_small) as f64 / (large - small) as f64;
    let disk_per_key = (disk_at_large - disk_at_small) as f64 / (large - small) as f64;
    let keys_per_segment = segment_size_bytes as f64 / disk_per_key;
    let at_seal = keys_per_segment * ram_per_key;
    println!(
        "{ram_per_key:.0} bytes of RAM a key, {disk_per_key:.0} on disk: \
         {keys_per_segment:.0} keys and {:.1} MB in RAM when a segment seals",
        at_seal / 1e6
    );
    assert!(
        at_seal <= ACTIVE_SEGMENT_RAM_BUDGET_BYTES as f64,
        "{:.1} MB in RAM when a segment of {segment_size_bytes} bytes seals",
        at_seal / 1e6
    );
}
