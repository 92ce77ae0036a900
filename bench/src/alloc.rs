//! The harness's global allocator: mimalloc (as the `booster` binary uses),
//! counting the bytes allocated and not yet freed once a scenario asks it
//! to (`start_counting`). The soak reports the count beside the resident
//! set: heap bytes that grow are a structure that grows; a resident set
//! that grows over a flat count is the allocator keeping freed memory.
//!
//! Off (every scenario but the soak), each call costs one relaxed load.
//! On, one relaxed add to one of `SHARDS` counters picked by thread, so
//! threads on different cores rarely share a cache line.
//!
//! With `BOOSTER_BENCH_SYSTEM_ALLOC` set in its environment, the process
//! uses the system's allocator instead, so a heap profiler that replaces
//! `malloc` (`heaptrack`, `valgrind --tool=massif`) sees every allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, AtomicUsize, Ordering};

const SHARDS: usize = 16;

#[repr(align(64))]
struct Shard(AtomicIsize);

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: [Shard; SHARDS] = [const { Shard(AtomicIsize::new(0)) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
/// 0: not decided yet; 1: mimalloc; 2: the system's allocator. Decided at
/// the first allocation and never changed, so every block is freed by the
/// allocator that gave it.
static BACKEND: AtomicU8 = AtomicU8::new(0);

fn system() -> bool {
    match BACKEND.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            // SAFETY: getenv reads the environment libc set up before any
            // Rust code ran, and allocates nothing; the name is a C string.
            let set = !unsafe { libc::getenv(c"BOOSTER_BENCH_SYSTEM_ALLOC".as_ptr()) }.is_null();
            BACKEND.store(if set { 2 } else { 1 }, Ordering::Relaxed);
            set
        }
    }
}

thread_local! {
    // const-initialised: no allocation, no lazy init inside the allocator.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn add(bytes: isize) {
    let shard = SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or(0);
    LIVE[shard].0.fetch_add(bytes, Ordering::Relaxed);
}

/// mimalloc (or the system's allocator, see above), counting live bytes
/// while `start_counting` is in force.
pub struct CountingMimalloc;

// SAFETY: every call is passed unchanged to one allocator, the same for
// the whole process; the counting beside it touches only atomics and a
// const thread-local, and never allocates.
unsafe impl GlobalAlloc for CountingMimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is mimalloc's.
        let p = unsafe {
            if system() {
                System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        };
        if COUNTING.load(Ordering::Relaxed) && !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            add(-(layout.size() as isize));
        }
        // SAFETY: as above.
        unsafe {
            if system() {
                System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe {
            if system() {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        };
        if COUNTING.load(Ordering::Relaxed) && !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe {
            if system() {
                System.realloc(ptr, layout, new_size)
            } else {
                mimalloc::MiMalloc.realloc(ptr, layout, new_size)
            }
        };
        if COUNTING.load(Ordering::Relaxed) && !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Counts from now on. Blocks freed later that were allocated before make
/// the count low by their size: start before the work to be measured.
pub fn start_counting() {
    COUNTING.store(true, Ordering::Relaxed);
}

/// Bytes allocated and not freed since `start_counting` (0 before).
pub fn live_bytes() -> i64 {
    LIVE.iter()
        .map(|s| s.0.load(Ordering::Relaxed) as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_held_counts_and_a_block_freed_does_not() {
        // The test binary's allocator is the system's: drive the wrapper
        // directly.
        start_counting();
        let layout = Layout::from_size_align(1 << 20, 8).unwrap();
        let before = live_bytes();
        // SAFETY: a non-zero layout; the block is freed with the same one.
        let p = unsafe { CountingMimalloc.alloc(layout) };
        assert!(!p.is_null());
        assert_eq!(live_bytes() - before, 1 << 20);
        // SAFETY: p came from this allocator with this layout.
        unsafe { CountingMimalloc.dealloc(p, layout) };
        assert_eq!(live_bytes(), before);
    }
}
