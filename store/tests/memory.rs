//! What the store holds in RAM for its active segment (issue 12, G10):
//! until a segment seals, each of its frames is in the writer's footer
//! directory and each of its keys in the index's map, and the seal builds
//! the sorted run and the footer beside them, so the segment's frame count
//! bounds that memory (`SEGMENT_FRAMES_MAX`, and the segment size for
//! larger frames). Measured here with a counting allocator and its
//! high-water mark (this test binary's own; the tests take turns, so the
//! count is one store's).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;

use booster_store::{Batch, SliceKey, Store, StoreOptions, SEGMENT_FRAMES_MAX};

/// Bytes allocated and not yet freed, by every thread.
static HELD_BYTES: AtomicIsize = AtomicIsize::new(0);
/// The most `HELD_BYTES` reached since [`reset_peak`].
static PEAK_BYTES: AtomicIsize = AtomicIsize::new(0);

fn grew(by_bytes: isize) {
    let now = HELD_BYTES.fetch_add(by_bytes, Ordering::Relaxed) + by_bytes;
    PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
}

/// Starts a new high-water mark at what is held now; returns that.
fn reset_peak() -> isize {
    let now = HELD_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(now, Ordering::Relaxed);
    now
}

struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; the counts beside
// it are two atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as isize);
        // SAFETY: the caller's layout, unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: ptr came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size as isize - layout.size() as isize);
        // SAFETY: ptr came from System with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What the active segment may hold at its peak, through its seal: about
/// 430 bytes a frame at `SEGMENT_FRAMES_MAX` frames.
const ACTIVE_SEGMENT_PEAK_BUDGET_BYTES: u64 = 96 << 20;

/// One test at a time: the count is the whole process's.
static TURN: Mutex<()> = Mutex::new(());

/// A frame of one 100-byte record that does not compress: about the
/// average frame of the soak (a row page, a state mask, a meta frame).
fn soak_record(seq: u64) -> Vec<u8> {
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

/// The smallest slice frame: one one-byte record (about 60 bytes on disk,
/// as a tombstone is).
fn smallest_record(seq: u64) -> Vec<u8> {
    vec![seq as u8]
}

struct Filled {
    frames: u64,
    disk_bytes_per_frame: f64,
    peak_bytes: u64,
}

/// Appends fresh keys with `record` at the default options until the first
/// segment seals; the most the process held meanwhile, above what it held
/// before.
fn fill_through_the_first_seal(record: fn(u64) -> Vec<u8>) -> Filled {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let before = reset_peak();
    let mut frames = 0u64;
    while store.memory().run_blocks == 0 {
        let mut batch = Batch::new();
        for seq in frames..frames + 10_000 {
            let key = SliceKey {
                owner: u64::MAX,
                stream: 0,
                seq,
            };
            batch = batch.slice(key, &[record(seq)]);
        }
        store.append(batch).unwrap();
        frames += 10_000;
    }
    let peak_bytes = (PEAK_BYTES.load(Ordering::Relaxed) - before) as u64;
    let filled = Filled {
        frames,
        disk_bytes_per_frame: store.stats().live_bytes as f64 / frames as f64,
        peak_bytes,
    };
    println!(
        "sealed at {} frames of {:.0} bytes on disk; {:.1} MB at the peak, {:.0} bytes a frame",
        filled.frames,
        filled.disk_bytes_per_frame,
        peak_bytes as f64 / 1e6,
        peak_bytes as f64 / frames as f64
    );
    filled
}

/// A segment of the soak's frames seals at its size, about 210,000 frames
/// or the frame cap, and its peak in RAM stays within the budget. At 64 MiB
/// (the old default) it held twice the frames.
#[test]
fn a_segment_of_the_soak_s_frames_stays_within_the_budget_through_its_seal() {
    let filled = fill_through_the_first_seal(soak_record);
    assert!(filled.frames <= SEGMENT_FRAMES_MAX + 10_000);
    assert!(
        filled.peak_bytes <= ACTIVE_SEGMENT_PEAK_BUDGET_BYTES,
        "{:.1} MB held at the peak of a segment of {} frames",
        filled.peak_bytes as f64 / 1e6,
        filled.frames
    );
}

/// A segment of the smallest frames seals at the frame cap, not at its
/// size (by bytes alone, 32 MiB held about 550,000 of them and peaked at
/// 225 MB), and stays within the budget through its seal.
#[test]
fn a_segment_of_the_smallest_frames_stays_within_the_budget_through_its_seal() {
    let filled = fill_through_the_first_seal(smallest_record);
    assert!(
        filled.frames <= SEGMENT_FRAMES_MAX + 10_000,
        "sealed at {} frames, over the cap of {SEGMENT_FRAMES_MAX}",
        filled.frames
    );
    assert!(
        filled.peak_bytes <= ACTIVE_SEGMENT_PEAK_BUDGET_BYTES,
        "{:.1} MB held at the peak of a segment of {} frames",
        filled.peak_bytes as f64 / 1e6,
        filled.frames
    );
}
