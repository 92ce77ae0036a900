//! Peak resident memory of this process (VmHWM), and resetting it so each
//! scenario's peak is its own.

/// Peak resident set size in bytes, from /proc/self/status VmHWM.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// Current resident set size in bytes (VmRSS).
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

/// Resident bytes now, split: (anonymous memory, file pages mapped in, e.g.
/// the store's memory-mapped segments). Shows which kind a peak is made of.
pub fn rss_split_bytes() -> Option<(u64, u64)> {
    Some((
        status_kib("RssAnon:")? * 1024,
        status_kib("RssFile:")? * 1024,
    ))
}

/// Resets VmHWM to the current RSS (writing 5 to /proc/self/clear_refs,
/// Linux >= 4.0). Returns false where that is not allowed; the harness then
/// still isolates scenarios by running each in its own child process.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_grows_when_memory_is_touched() {
        reset_peak_rss();
        let before = peak_rss_bytes().expect("VmHWM readable on Linux");
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let after = peak_rss_bytes().unwrap();
        assert!(
            after >= before + (60 << 20),
            "before {before} after {after}"
        );
    }
}
