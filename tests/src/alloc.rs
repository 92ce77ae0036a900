//! A global allocator wrapper that remembers the largest single allocation
//! made by the current thread, so a decoder test can assert that hostile
//! length fields never drive a huge allocation; and the bytes the current
//! thread allocated and did not free, so a memory test can assert what a
//! structure holds (`held_bytes`).
//!
//! A test binary opts in with
//! `#[global_allocator] static ALLOC: PeakAlloc = PeakAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LARGEST_BYTES: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed by this thread.
    static NET_BYTES: Cell<isize> = const { Cell::new(0) };
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

fn net(bytes: isize) {
    let _ = NET_BYTES.try_with(|c| c.set(c.get() + bytes));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// GlobalAlloc contract; the bookkeeping touches only a const-initialised
// thread-local Cell and never allocates.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        net(layout.size() as isize);
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        net(layout.size() as isize);
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        net(-(layout.size() as isize));
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        net(new_size as isize - layout.size() as isize);
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

/// Runs `f` and returns its result with the bytes this thread allocated
/// while it ran and had not freed when it returned (the result's own heap
/// included): what a structure `f` fills holds, as requested of the
/// allocator (its own rounding not counted). Meaningful only when
/// `PeakAlloc` is the global allocator and `f` allocates and frees on this
/// thread.
pub fn held_bytes<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let before = NET_BYTES.with(Cell::get);
    let out = f();
    (out, NET_BYTES.with(Cell::get) - before)
}
