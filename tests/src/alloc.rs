//! A global allocator wrapper that remembers the largest single allocation
//! made by the current thread, so a decoder test can assert that hostile
//! length fields never drive a huge allocation.
//!
//! A test binary opts in with
//! `#[global_allocator] static ALLOC: PeakAlloc = PeakAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LARGEST_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// Forwards to the system allocator and records the largest request per thread.
pub struct PeakAlloc;

fn note(size: usize) {
    // try_with: the thread-local may already be gone while a thread exits.
    let _ = LARGEST_BYTES.try_with(|c| {
        if size > c.get() {
            c.set(size);
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// GlobalAlloc contract; the bookkeeping touches only a const-initialised
// thread-local Cell and never allocates.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: ptr was allocated by System with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the largest single allocation (bytes)
/// this thread made while it ran. Meaningful only when `PeakAlloc` is the
/// global allocator of the test binary.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LARGEST_BYTES.with(|c| c.replace(0));
    let out = f();
    let peak = LARGEST_BYTES.with(|c| c.replace(before.max(c.get())));
    (out, peak)
}
