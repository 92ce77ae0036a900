//! Peak resident memory of this process (VmHWM), and resetting it so each
//! scenario's peak is its own.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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

/// Per phase, the most anonymous resident bytes and the most live heap
/// bytes (the harness's allocator's count; 0 unless it counts) seen by a
/// thread that samples every few milliseconds: where in a run a peak is
/// reached, and whether it is live data or memory the allocator keeps.
pub struct PhasePeaks {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(u64, i64)>>>,
}

impl PhasePeaks {
    /// Starts sampling phase 0 of `phases`.
    pub fn start(phases: usize) -> PhasePeaks {
        let phase = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (phase.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("bench-rss-sampler".into())
            .spawn(move || {
                let mut peaks = vec![(0u64, 0i64); phases];
                while !s.load(Ordering::Acquire) {
                    let at = p.load(Ordering::Acquire).min(phases - 1);
                    if let Some((anon, _)) = rss_split_bytes() {
                        peaks[at].0 = peaks[at].0.max(anon);
                    }
                    peaks[at].1 = peaks[at].1.max(crate::alloc::live_bytes());
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                peaks
            })
            .ok();
        PhasePeaks {
            phase,
            stop,
            thread,
        }
    }

    /// Samples from now on count for phase `i`.
    pub fn enter(&self, i: usize) {
        self.phase.store(i, Ordering::Release);
    }

    /// Per phase: (anonymous resident bytes, live heap bytes) at most.
    pub fn finish(mut self) -> Vec<(u64, i64)> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
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
