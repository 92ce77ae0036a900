//! Latency percentiles (hdrhistogram, microseconds).

use std::time::Duration;

use hdrhistogram::Histogram;

pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// 1 us to 1 hour, 3 significant digits.
    pub fn new() -> Latencies {
        Latencies {
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        }
    }
    pub fn record(&mut self, d: Duration) {
        self.record_us(d.as_micros() as u64);
    }
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.max(1));
    }
    pub fn len(&self) -> u64 {
        self.hist.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }
    pub fn percentile_us(&self, p: f64) -> f64 {
        self.hist.value_at_quantile(p / 100.0) as f64
    }
    pub fn max_us(&self) -> f64 {
        self.hist.max() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_recorded_values() {
        let mut l = Latencies::new();
        for us in 1..=1000 {
            l.record_us(us);
        }
        assert!((l.percentile_us(50.0) - 500.0).abs() <= 1.0);
        assert!((l.percentile_us(99.0) - 990.0).abs() <= 1.0);
        assert_eq!(l.max_us(), 1000.0);
    }
}
