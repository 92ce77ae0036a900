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

/// Turns transparent huge pages off for this process and the threads and
/// children it starts (`prctl(PR_SET_THP_DISABLE)`, Linux 3.15+). Call it
/// first thing in `main`: it applies to every later page fault, including
/// in ranges the allocator set up before. An error (another kernel) is
/// only a larger resident set: the caller may ignore it.
pub fn turn_off() -> std::io::Result<()> {
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

/// Whether transparent huge pages are off for this process (None where
/// the kernel cannot say): runs state it beside their memory figures.
pub fn are_off() -> Option<bool> {
    rustix::thread::transparent_huge_pages_are_disabled().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_that_turned_huge_pages_off_reads_them_off() {
        super::turn_off().expect("prctl(PR_SET_THP_DISABLE) on Linux");
        assert_eq!(super::are_off(), Some(true));
    }
}
