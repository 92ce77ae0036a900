//! What the soak child samples every second: the resident set, the heap
//! bytes live (`alloc.rs`), the jobs completed, and the runtime's memory
//! census (`Runtime::memory_census`). From them, the diagnostic lines: what
//! each structure holds at the end and how fast it grows through the
//! second half, per minute and per million jobs, so what follows the
//! history shows by name (issue 12).

use booster_runtime::{JobState, MemoryCensus, Runtime};
use serde::{Deserialize, Serialize};

/// One second's sample.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub seconds: f64,
    pub rss_mb: f64,
    pub heap_mb: f64,
    pub completed: u64,
    pub census: MemoryCensus,
}

impl Sample {
    pub fn take(rt: &Runtime, seconds: f64) -> Option<Sample> {
        let rss_mb = crate::rss::rss_bytes()? as f64 / 1e6;
        let completed = rt
            .metrics()
            .jobs_by_state
            .iter()
            .filter(|(s, _)| *s == JobState::Completed)
            .map(|(_, n)| n)
            .sum();
        Some(Sample {
            seconds,
            rss_mb,
            heap_mb: crate::alloc::live_bytes() as f64 / 1e6,
            completed,
            census: rt.memory_census(),
        })
    }
}

/// The census's fields by name.
fn fields(c: &MemoryCensus) -> [(&'static str, usize); 22] {
    [
        ("overlay_entries", c.overlay_entries),
        ("overlay_rows", c.overlay_rows),
        ("pins", c.pins),
        ("active", c.active),
        ("active_capacity", c.active_capacity),
        ("sliced_live", c.sliced_live),
        ("ready_id_bytes", c.ready_id_bytes),
        ("leases", c.leases),
        ("accepted", c.accepted),
        ("refused", c.refused),
        ("waiters", c.waiters),
        ("dependents", c.dependents),
        ("waits", c.waits),
        ("scheduled", c.scheduled),
        ("expiring", c.expiring),
        ("slice_retries", c.slice_retries),
        ("lost", c.lost),
        ("store_segments", c.store.segments),
        ("store_keys_in_ram", c.store.keys_in_ram),
        ("store_run_blocks", c.store.run_blocks),
        ("store_meta_frames", c.store.meta_frames),
        ("store_damaged_keys", c.store.damaged_keys),
    ]
}

/// Writes every sample to `path`, one JSON line each (seconds, rss_mb,
/// heap_mb, completed, then the census's fields by name).
pub fn write(samples: &[Sample], path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for s in samples {
        let mut line = serde_json::json!({
            "seconds": s.seconds,
            "rss_mb": s.rss_mb,
            "heap_mb": s.heap_mb,
            "completed": s.completed,
        });
        for (name, v) in fields(&s.census) {
            line[name] = serde_json::json!(v);
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// A diagnostic line: a figure at the end of the run and its growth
/// through the second half.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Diagnostic {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub per_minute: f64,
    pub per_million_jobs: f64,
}

/// The diagnostic lines of a run's samples.
pub fn diagnostics(samples: &[Sample]) -> Vec<Diagnostic> {
    let Some(last) = samples.last() else {
        return Vec::new();
    };
    let line = |metric: &str, unit: &str, y: &dyn Fn(&Sample) -> f64| {
        let by_time: Vec<(f64, f64)> = samples.iter().map(|s| (s.seconds, y(s))).collect();
        let by_jobs: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| (s.completed as f64 / 1e6, y(s)))
            .collect();
        Diagnostic {
            metric: metric.to_string(),
            value: y(last),
            unit: unit.to_string(),
            per_minute: second_half_slope(&by_time) * 60.0,
            per_million_jobs: second_half_slope(&by_jobs),
        }
    };
    let mut out = vec![
        line("diag_rss", "MB", &|s| s.rss_mb),
        line("diag_heap_live", "MB", &|s| s.heap_mb),
    ];
    for (i, (name, _)) in fields(&last.census).iter().enumerate() {
        let metric = format!("diag_{name}");
        // The census counts entries, but for the fields named in bytes.
        let unit = if name.ends_with("_bytes") {
            "bytes"
        } else {
            "entries"
        };
        out.push(line(&metric, unit, &|s| fields(&s.census)[i].1 as f64));
    }
    out
}

/// Least-squares slope of (x, y) over the second half of the points; 0
/// with fewer than two there, or when x does not move.
pub fn second_half_slope(points: &[(f64, f64)]) -> f64 {
    let half = &points[points.len() / 2..];
    if half.len() < 2 {
        return 0.0;
    }
    let k = half.len() as f64;
    let (mx, my) = (
        half.iter().map(|s| s.0).sum::<f64>() / k,
        half.iter().map(|s| s.1).sum::<f64>() / k,
    );
    let cov: f64 = half.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = half.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_structure_growing_with_the_jobs_shows_its_growth_per_million() {
        // 1 000 overlay rows per 100 000 jobs, one sample a second.
        let samples: Vec<Sample> = (0..10u64)
            .map(|i| {
                let mut s = Sample {
                    seconds: i as f64,
                    rss_mb: 100.0,
                    heap_mb: 50.0,
                    completed: i * 100_000,
                    ..Sample::default()
                };
                s.census.overlay_rows = (i * 1_000) as usize;
                s
            })
            .collect();
        let lines = diagnostics(&samples);
        let rows = lines
            .iter()
            .find(|d| d.metric == "diag_overlay_rows")
            .unwrap();
        assert_eq!(rows.value, 9_000.0);
        assert!((rows.per_million_jobs - 10_000.0).abs() < 1e-6);
        assert!((rows.per_minute - 60_000.0).abs() < 1e-6);
        let rss = lines.iter().find(|d| d.metric == "diag_rss").unwrap();
        assert_eq!(rss.per_minute, 0.0);
    }

    #[test]
    fn a_census_field_of_bytes_is_labelled_bytes_and_the_others_entries() {
        let lines = diagnostics(&[Sample::default()]);
        let unit = |metric: &str| {
            let line = lines.iter().find(|d| d.metric == metric).unwrap();
            line.unit.clone()
        };
        assert_eq!(unit("diag_ready_id_bytes"), "bytes");
        assert_eq!(unit("diag_overlay_rows"), "entries");
    }
}
