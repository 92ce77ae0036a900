//! Each running job's throughput, for the job page's chart: the records it
//! has finished (processed + failed), sampled by the history sampler every
//! second while it runs (from its first finished slice on), as records per
//! second between samples.
//!
//! In memory only, bounded: the last [`SAMPLES_KEPT`] samples of at most
//! [`JOBS_SAMPLED`] jobs followed at once, and a job's series is dropped
//! [`KEPT_AFTER_MS`] after its last sample. A restarted server starts with
//! none.

use std::collections::{HashMap, VecDeque};

use axum::extract::State;
use axum::Json;
use booster_runtime::JobId;
use parking_lot::Mutex;

use super::api::JobIdParam;
use super::error::ApiResult;
use super::AppState;

/// Samples kept per job: 15 minutes at one a second.
pub const SAMPLES_KEPT: usize = 900;
/// Jobs followed at once.
pub const JOBS_SAMPLED: usize = 100;
/// How long a job's series outlives its run.
pub const KEPT_AFTER_MS: u64 = 15 * 60_000;
/// Series kept in all (many short jobs in 15 minutes): past it, those
/// sampled longest ago go first.
pub const SERIES_KEPT: usize = 1000;

#[derive(Default)]
pub struct Throughput {
    jobs: Mutex<HashMap<JobId, VecDeque<(u64, u64)>>>,
}

impl Throughput {
    /// Adds a sample of every job in `running` (its id and the records it
    /// has finished so far) at `now_ms`, and drops the
    /// series of jobs that last ran longer than [`KEPT_AFTER_MS`] ago.
    pub fn sample(&self, now_ms: u64, running: &[(JobId, u64)]) {
        let mut jobs = self.jobs.lock();
        for &(id, records_finished) in running {
            let series = jobs.entry(id).or_default();
            series.push_back((now_ms, records_finished));
            while series.len() > SAMPLES_KEPT {
                series.pop_front();
            }
        }
        jobs.retain(|_, series| {
            series
                .back()
                .is_some_and(|(t, _)| now_ms.saturating_sub(*t) <= KEPT_AFTER_MS)
        });
        if jobs.len() > SERIES_KEPT {
            let mut last: Vec<(u64, JobId)> = jobs
                .iter()
                .map(|(id, series)| (series.back().map_or(0, |(t, _)| *t), *id))
                .collect();
            last.sort_unstable();
            for (_, id) in &last[..jobs.len() - SERIES_KEPT] {
                jobs.remove(id);
            }
        }
    }

    /// (time in ms, records per second since the sample before), oldest first.
    pub fn rates(&self, job: JobId) -> Vec<(u64, f64)> {
        let jobs = self.jobs.lock();
        let Some(series) = jobs.get(&job) else {
            return Vec::new();
        };
        series
            .iter()
            .zip(series.iter().skip(1))
            .filter(|((t0, _), (t1, _))| t1 > t0)
            .map(|((t0, r0), (t1, r1))| {
                let per_s = r1.saturating_sub(*r0) as f64 * 1000.0 / (t1 - t0) as f64;
                (*t1, per_s)
            })
            .collect()
    }
}

/// `GET /api/jobs/{id}/throughput`: `{"t_ms": [...], "records_per_s":
/// [...]}`, one entry per second the job ran while this server watched.
pub async fn get_throughput(
    State(app): State<AppState>,
    JobIdParam(id): JobIdParam,
) -> ApiResult<Json<serde_json::Value>> {
    app.runtime.job(id).await?;
    let rates = app.throughput.rates(id);
    Ok(Json(serde_json::json!({
        "t_ms": rates.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        "records_per_s": rates.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_records_per_second_between_samples() {
        let t = Throughput::default();
        t.sample(1_000, &[(1, 0)]);
        t.sample(2_000, &[(1, 300)]);
        t.sample(4_000, &[(1, 500)]);
        assert_eq!(t.rates(1), vec![(2_000, 300.0), (4_000, 100.0)]);
        assert!(t.rates(2).is_empty());
    }

    #[test]
    fn past_the_series_limit_the_longest_quiet_go_first() {
        let t = Throughput::default();
        for id in 0..(SERIES_KEPT as u64 + 3) {
            t.sample(id, &[(id, 0)]);
            t.sample(id + 1, &[(id, 10)]);
        }
        assert_eq!(t.jobs.lock().len(), SERIES_KEPT);
        assert!(t.rates(0).is_empty() && t.rates(2).is_empty());
        assert_eq!(t.rates(3).len(), 1);
    }

    #[test]
    fn a_finished_jobs_series_is_dropped_after_a_while_and_each_is_bounded() {
        let t = Throughput::default();
        for i in 0..(SAMPLES_KEPT as u64 + 5) {
            t.sample(i * 1_000, &[(1, i)]);
        }
        assert_eq!(t.rates(1).len(), SAMPLES_KEPT - 1);
        t.sample(SAMPLES_KEPT as u64 * 1_000 + KEPT_AFTER_MS + 10_000, &[]);
        assert!(t.rates(1).is_empty());
    }
}
