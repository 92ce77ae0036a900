//! Counters and latency histograms (hdrhistogram, microseconds).

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::Metrics;

pub struct MetricsState {
    pub slices_processed: u64,
    pub records_processed: u64,
    pub lease_expiries: u64,
    pub commits_fenced: u64,
    pub worker_restarts: u64,
    /// Counted as they happen in this process (never on replay), so a
    /// rate over time is a difference of two snapshots.
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub records_failed: u64,
    /// Checkpoints tried and not written.
    pub checkpoint_failures: u64,
    pub checkpoint_times: crate::CheckpointTimes,
    commit_latency_us: Histogram<u64>,
    enqueue_to_start_us: Histogram<u64>,
    slice_processing_us: Histogram<u64>,
}

impl Default for MetricsState {
    fn default() -> Self {
        let h = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        MetricsState {
            slices_processed: 0,
            records_processed: 0,
            lease_expiries: 0,
            commits_fenced: 0,
            worker_restarts: 0,
            jobs_completed: 0,
            jobs_failed: 0,
            records_failed: 0,
            checkpoint_failures: 0,
            checkpoint_times: Default::default(),
            commit_latency_us: h(),
            enqueue_to_start_us: h(),
            slice_processing_us: h(),
        }
    }
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

const PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];

fn summary(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    PERCENTILES
        .iter()
        .map(|p| (*p, h.value_at_quantile(p / 100.0)))
        .collect()
}

impl MetricsState {
    pub fn record_commit(&mut self, d: Duration) {
        let _ = self.commit_latency_us.record(us(d));
    }
    pub fn record_enqueue_to_start(&mut self, d: Duration) {
        let _ = self.enqueue_to_start_us.record(us(d));
    }
    pub fn record_slice(&mut self, d: Duration, records: u64) {
        self.slices_processed += 1;
        self.records_processed += records;
        let _ = self.slice_processing_us.record(us(d));
    }

    pub fn snapshot(&self) -> Metrics {
        Metrics {
            jobs_by_state: Vec::new(),
            slices_processed: self.slices_processed,
            records_processed: self.records_processed,
            lease_expiries: self.lease_expiries,
            commits_fenced: self.commits_fenced,
            worker_restarts: self.worker_restarts,
            jobs_completed: self.jobs_completed,
            jobs_failed: self.jobs_failed,
            records_failed: self.records_failed,
            checkpoint_failures: self.checkpoint_failures,
            checkpoints_paused: None,
            auto_compact: false,
            auto_compactions: 0,
            auto_compaction_failures: 0,
            checkpoint_times: self.checkpoint_times.clone(),
            commit_latency_us: summary(&self.commit_latency_us),
            enqueue_to_start_us: summary(&self.enqueue_to_start_us),
            slice_processing_us: summary(&self.slice_processing_us),
        }
    }
}
