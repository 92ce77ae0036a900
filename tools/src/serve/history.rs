//! Per-minute history for the dashboard's charts: records and jobs
//! processed and failed in each minute of the last day.
//!
//! A bounded ring of [`MINUTES_KEPT`] minutes in this process, fed by a
//! sampler that reads the runtime's counters (`Metrics`: counted live,
//! never on replay) every [`SAMPLE_EVERY`] and adds what moved since the
//! last sample to the current minute. Nothing is stored: a restarted
//! server starts with an empty history, and minutes before it started
//! are absent (`null` in the answer), not zero. The same sampler feeds
//! each running job's throughput (`throughput.rs`).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::Json;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::throughput::{self, Throughput};
use super::AppState;
use booster_runtime::{JobId, JobState, Runtime};
use tokio::sync::broadcast::error::RecvError;

/// One day of minutes.
pub const MINUTES_KEPT: usize = 1440;

/// How often the sampler reads the counters.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

const MINUTE_MS: u64 = 60_000;

/// The counters a minute adds up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub records_processed: u64,
    pub records_failed: u64,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
}

impl Counts {
    fn of(m: &booster_runtime::Metrics) -> Counts {
        Counts {
            records_processed: m.records_processed,
            records_failed: m.records_failed,
            jobs_completed: m.jobs_completed,
            jobs_failed: m.jobs_failed,
        }
    }

    /// What moved from `before` to `self` (a counter never goes back; if
    /// one did, the minute gains nothing rather than wrapping).
    fn since(self, before: Counts) -> Counts {
        Counts {
            records_processed: self
                .records_processed
                .saturating_sub(before.records_processed),
            records_failed: self.records_failed.saturating_sub(before.records_failed),
            jobs_completed: self.jobs_completed.saturating_sub(before.jobs_completed),
            jobs_failed: self.jobs_failed.saturating_sub(before.jobs_failed),
        }
    }

    fn add(&mut self, d: Counts) {
        self.records_processed += d.records_processed;
        self.records_failed += d.records_failed;
        self.jobs_completed += d.jobs_completed;
        self.jobs_failed += d.jobs_failed;
    }
}

/// The ring: minute start (ms since the epoch) and what it counted, oldest
/// first, at most [`MINUTES_KEPT`] entries, newest minute last.
pub struct History {
    inner: Mutex<Ring>,
}

struct Ring {
    minutes: VecDeque<(u64, Counts)>,
    last: Option<Counts>,
    started_minute_ms: u64,
}

impl History {
    pub fn new(now_ms: u64) -> History {
        History {
            inner: Mutex::new(Ring {
                minutes: VecDeque::new(),
                last: None,
                started_minute_ms: minute_of(now_ms),
            }),
        }
    }

    /// Adds what the counters moved since the previous sample to the
    /// minute holding `now_ms`. The first sample only sets the baseline:
    /// work done before the server started is not history it saw.
    pub fn sample(&self, now_ms: u64, counters: Counts) {
        let mut ring = self.inner.lock();
        let Some(last) = ring.last.replace(counters) else {
            return;
        };
        let moved = counters.since(last);
        let minute = minute_of(now_ms);
        match ring.minutes.back_mut() {
            Some((m, counts)) if *m == minute => counts.add(moved),
            _ => {
                ring.minutes.push_back((minute, moved));
                while ring.minutes.len() > MINUTES_KEPT {
                    ring.minutes.pop_front();
                }
            }
        }
    }

    /// The last `minutes` minutes up to the one holding `now_ms`, oldest
    /// first: a minute the server saw and counted nothing in is zero, a
    /// minute before it started is None.
    pub fn window(&self, now_ms: u64, minutes: usize) -> Vec<(u64, Option<Counts>)> {
        let ring = self.inner.lock();
        let newest = minute_of(now_ms);
        (0..minutes as u64)
            .rev()
            .map(|back| {
                let minute = newest.saturating_sub(back * MINUTE_MS);
                let counted = ring
                    .minutes
                    .binary_search_by_key(&minute, |(m, _)| *m)
                    .ok()
                    .map(|i| ring.minutes[i].1);
                let seen = minute >= ring.started_minute_ms;
                (minute, counted.or(seen.then(Counts::default)))
            })
            .collect()
    }
}

fn minute_of(ms: u64) -> u64 {
    ms - ms % MINUTE_MS
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Samples the runtime's counters into `history`, and the progress of jobs
/// that are finishing slices into `throughput`, until the server stops.
///
/// Which jobs to sample comes from the event stream (`slice_done`,
/// `slice_failed`), not from a scan of the job table, so a table of
/// millions costs the sampler nothing: each second it looks up the jobs
/// that finished a slice since it last looked (`Runtime::job`), plus
/// those it followed before, until they stop running.
pub fn spawn_sampler(
    runtime: Runtime,
    history: Arc<History>,
    throughput: Arc<Throughput>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    // The baseline now, not at the task's first poll: work that starts as
    // soon as the server is up is history this server saw.
    history.sample(now_ms(), Counts::of(&runtime.metrics()));
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut events = runtime.subscribe();
    handle.spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut followed: BTreeSet<JobId> = BTreeSet::new();
        let mut events_open = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    history.sample(now_ms(), Counts::of(&runtime.metrics()));
                    sample_jobs(&runtime, &throughput, &mut followed).await;
                }
                event = events.recv(), if events_open => match event {
                    Ok(e) if e.what == "slice_done" || e.what == "slice_failed" => {
                        if followed.len() < throughput::JOBS_SAMPLED {
                            followed.insert(e.job);
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => events_open = false,
                },
                _ = stopping.changed() => return,
            }
            if *stopping.borrow() {
                return;
            }
        }
    });
}

/// One throughput sample of every followed job; a job no longer running
/// is sampled one last time and followed no more.
async fn sample_jobs(runtime: &Runtime, throughput: &Throughput, followed: &mut BTreeSet<JobId>) {
    let mut running = Vec::with_capacity(followed.len());
    let mut done = Vec::new();
    for id in followed.iter() {
        match runtime.job(*id).await {
            Ok(job) => {
                if job.state != JobState::Running {
                    done.push(*id);
                }
                running.push((job.id, job.records_processed + job.records_failed));
            }
            Err(_) => done.push(*id),
        }
    }
    for id in done {
        followed.remove(&id);
    }
    throughput.sample(now_ms(), &running);
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    /// `hour` (60 minutes, the default) or `day` (1440).
    pub range: Option<String>,
}

/// `GET /api/history?range=hour|day`: one entry per minute, oldest first,
/// as parallel arrays (what a chart takes): `minute_ms`, and per counter
/// the count of that minute, `null` before the server started.
pub async fn get_history(
    State(app): State<AppState>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query?;
    let minutes = match query.range.as_deref().unwrap_or("hour") {
        "hour" => 60,
        "day" => MINUTES_KEPT,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown range {other:?}: use hour or day"
            )))
        }
    };
    let window = app.history.window(now_ms(), minutes);
    let column = |f: fn(&Counts) -> u64| -> Vec<Option<u64>> {
        window.iter().map(|(_, c)| c.as_ref().map(f)).collect()
    };
    Ok(Json(serde_json::json!({
        "minute_ms": window.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        "records_processed": column(|c| c.records_processed),
        "records_failed": column(|c| c.records_failed),
        "jobs_completed": column(|c| c.jobs_completed),
        "jobs_failed": column(|c| c.jobs_failed),
        "sample_every_ms": SAMPLE_EVERY.as_millis() as u64,
        "restarts_empty": true,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(records: u64, failed: u64, jobs: u64, jobs_failed: u64) -> Counts {
        Counts {
            records_processed: records,
            records_failed: failed,
            jobs_completed: jobs,
            jobs_failed,
        }
    }

    const T0: u64 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS;

    #[test]
    fn each_minute_counts_what_the_counters_moved_in_it() {
        let h = History::new(T0);
        h.sample(T0 + 1_000, counts(500, 5, 2, 0)); // baseline: before we looked
        h.sample(T0 + 2_000, counts(600, 7, 3, 0));
        h.sample(T0 + 59_000, counts(700, 7, 3, 1));
        h.sample(T0 + MINUTE_MS + 1_000, counts(1_000, 10, 5, 1));
        let w = h.window(T0 + MINUTE_MS + 5_000, 3);
        assert_eq!(w[0], (T0 - MINUTE_MS, None), "before the server started");
        assert_eq!(w[1], (T0, Some(counts(200, 2, 1, 1))));
        assert_eq!(w[2], (T0 + MINUTE_MS, Some(counts(300, 3, 2, 0))));
    }

    #[test]
    fn a_quiet_minute_is_zero_and_the_ring_keeps_one_day() {
        let h = History::new(T0);
        h.sample(T0, counts(0, 0, 0, 0));
        for m in 0..(MINUTES_KEPT as u64 + 10) {
            h.sample(T0 + m * MINUTE_MS, counts(m + 1, 0, 0, 0));
        }
        assert_eq!(h.inner.lock().minutes.len(), MINUTES_KEPT);
        let end = T0 + (MINUTES_KEPT as u64 + 12) * MINUTE_MS;
        let w = h.window(end, 3);
        assert_eq!(
            w[2].1,
            Some(Counts::default()),
            "no sample: zero, not absent"
        );
        assert_eq!(h.window(end, MINUTES_KEPT).len(), MINUTES_KEPT);
    }
}
