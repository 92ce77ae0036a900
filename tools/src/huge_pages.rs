//! Transparent huge pages off for this process (issues 12 and 17).
//!
//! The binaries allocate with mimalloc, which gives every thread pages of
//! its own in large address ranges and asks the kernel to back them with
//! transparent huge pages (`madvise(MADV_HUGEPAGE)`), so on a system whose
//! THP setting is `madvise` (the usual default) a thread's few live blocks
//! keep a whole 2 MiB page resident. A sliced job runs a worker, a commit
//! thread, an upload thread and a reader per core: at 16 of each the 10M
//! record copy peaked at 304-333 MB (live heap at most 66 MB), and 159 MB
//! with huge pages off (bench/RESULTS.md, session 17). The store's
//! segments are file mappings, which this does not touch.

use std::sync::atomic::{AtomicU8, Ordering};

/// The setting before `turn_off`: 0 on, 1 off, `UNKNOWN` when `turn_off`
/// was not called (or the kernel could not say).
static OFF_BEFORE: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 2;

/// Turns transparent huge pages off for this process and the threads it
/// starts (`prctl(PR_SET_THP_DISABLE)`, Linux 3.15+). Call it first thing
/// in `main`: it applies to every later page fault, including in ranges
/// the allocator set up before. The setting is inherited across fork and
/// exec: a command the process starts puts back the one it had before
/// (`restore_for_exec`). An error (another kernel) is only a larger
/// resident set: the caller may ignore it.
pub fn turn_off() -> std::io::Result<()> {
    if let Ok(off) = rustix::thread::transparent_huge_pages_are_disabled() {
        let _ =
            OFF_BEFORE.compare_exchange(UNKNOWN, off as u8, Ordering::AcqRel, Ordering::Acquire);
    }
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

/// Whether transparent huge pages are off for this process (None where
/// the kernel cannot say): runs state it beside their memory figures.
pub fn are_off() -> Option<bool> {
    rustix::thread::transparent_huge_pages_are_disabled().ok()
}

/// What `turn_off` found, if it was called: a command started by this
/// process runs with that, not with this process's choice.
pub fn off_before() -> Option<bool> {
    match OFF_BEFORE.load(Ordering::Acquire) {
        UNKNOWN => None,
        off => Some(off == 1),
    }
}

/// In a child between fork and exec: the setting this process had before
/// `turn_off` (nothing if it was not called). One `prctl`, no allocation,
/// so it is async-signal-safe, as `pre_exec` requires.
pub fn restore_for_exec() -> std::io::Result<()> {
    match off_before() {
        None => Ok(()),
        Some(off) => Ok(rustix::thread::disable_transparent_huge_pages(off)?),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_that_turned_huge_pages_off_reads_them_off() {
        super::turn_off().expect("prctl(PR_SET_THP_DISABLE) on Linux");
        assert_eq!(super::are_off(), Some(true));
        assert!(super::off_before().is_some(), "the setting before is kept");
    }
}
