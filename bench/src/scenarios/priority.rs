//! `priority`: every worker busy with a big sliced job (priority 50, handler
//! `spin-copy`), then priority-1 `probe` jobs submitted at intervals. The
//! big job must still have queued slices when the last probe started, else
//! the run says it was not saturated.
//!
//! Nothing preempts a running slice, so a probe first waits for a worker to
//! finish its slice; the figures split that from Booster's own part, in
//! microseconds, from instants the harness's handlers note (`handlers.rs`):
//! - `submit_to_start`: the submit call until the probe's handler started
//!   (with the lane off, this includes the durable enqueue's fdatasync);
//! - `priority_wait`: the submit call until the first `spin-copy` slice
//!   ended after it (a worker became free), 0 when the probe started first;
//! - `priority_overhead`: from that moment (or the submit call) until the
//!   probe's handler started.
//!
//! The run is made three times in one process: with the store's urgent
//! lane off (`urgent_priority` 0: the probe's `Created` record waits
//! behind the big job's queued slice commits; figures suffixed
//! `_lane_off`), on (it joins the next group commit, and the probe may
//! start once it is placed, before it is durable: ARCHITECTURE.md, "Start
//! at placement"; no suffix), and on
//! with one worker slot reserved for priority 10 and above
//! (`reserved_workers` 1, suffix `_reserved`; needs 2 workers or more: the
//! big job then runs on one fewer, and a probe should not wait for a
//! slice to end at all).
//!
//! These are upper bounds on Booster's part (the lease is taken a little
//! before the handler starts). `submit_to_started_at` is the runtime's own
//! view: the wall clock when the submit call began to the job's
//! `started_at` (the worker's instant just before the handler, from the
//! job's outcome record), both in microseconds. Nothing is clamped: a
//! `started_at` before its submit call (the wall clock stepped back) fails
//! the run.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use booster_runtime::{JobShape, JobSpec, JobState, Runtime};
use serde_json::json;

use crate::booster::{self, CodecMode, RecordPool, DURABILITY};
use crate::handlers::{PROBE, PROBE_STARTS, SLICE_ENDS, SPIN_COPY, SPIN_PER_RECORD};
use crate::report::Measurement;
use crate::scenarios::{priority_trace, Ctx};
use crate::stats::Latencies;

const PROBE_INTERVAL: Duration = Duration::from_millis(5);

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let tokio = booster::tokio()?;
    let mut out = tokio.block_on(run_async(ctx, Variant::LaneOff))?;
    out.extend(tokio.block_on(run_async(ctx, Variant::Lane))?);
    if ctx.workers >= 2 {
        out.extend(tokio.block_on(run_async(ctx, Variant::Reserved))?);
    }
    Ok(out)
}

/// How a run is configured.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    LaneOff,
    Lane,
    Reserved,
}

async fn run_async(ctx: &Ctx, variant: Variant) -> anyhow::Result<Vec<Measurement>> {
    let urgent_lane = variant != Variant::LaneOff;
    let reserved = usize::from(variant == Variant::Reserved);
    let big_records = ctx.records(5_000_000, 1_500_000);
    let probes = ctx.jobs(500, 100);
    std::fs::create_dir_all(&ctx.dir)?;
    let dir = tempfile::tempdir_in(&ctx.dir)?;
    let mut opts = booster::options(ctx, dir.path(), CodecMode::On, ctx.workers);
    opts.urgent_priority = if urgent_lane { 10 } else { 0 };
    opts.reserved_workers = reserved;
    opts.reserved_priority = 10;
    let rt = booster_runtime::Runtime::open(opts).await?;
    crate::handlers::register_all(&rt);
    crate::handlers::clear_probe_notes();
    let big = start_big_job(&rt, big_records, ctx.slice_size).await?;
    wait_saturated(&rt, big, ctx.workers - reserved).await?;
    let traced = priority_trace::wanted();
    booster_runtime::start_trace::enable(traced);
    let mut submitted = Vec::with_capacity(probes as usize);
    for probe in 0..probes {
        let mut spec = JobSpec::simple(PROBE, json!({ "probe": probe }));
        spec.priority = 1;
        let (at, wall) = (Instant::now(), SystemTime::now());
        let id = rt.submit(spec).await?;
        submitted.push((id, at, wall));
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    let mut from_submit = Latencies::new();
    for (id, _, wall) in &submitted {
        let status = tokio::time::timeout(Duration::from_secs(60), rt.wait(*id))
            .await
            .context("a priority-1 job did not finish within 60 s")??;
        let started = status
            .started_at
            .context("completed job without started_at")?;
        let latency = started.duration_since(*wall).map_err(|e| {
            anyhow::anyhow!(
                "job {id} started {:?} before its submit call: the wall clock stepped back; rerun",
                e.duration()
            )
        })?;
        from_submit.record(latency);
    }
    let submits: Vec<Instant> = submitted.iter().map(|(_, at, _)| *at).collect();
    let split = split_waits(&submits)?;
    if traced {
        booster_runtime::start_trace::enable(false);
        let probes: Vec<priority_trace::Probe> = submitted
            .iter()
            .zip(&split.probes)
            .map(|((job, submitted, _), p)| priority_trace::Probe {
                job: *job,
                submitted: *submitted,
                started: p.0,
                first_free: p.1,
                overhead: p.2,
            })
            .collect();
        priority_trace::report(suffix_of(variant), &probes);
    }
    let after = rt.job(big).await?;
    let saturated = after.state == JobState::Running && after.slices_queued > 0;
    if !saturated {
        eprintln!("priority: the big job ran out of slices before the last probe; raise --records");
    }
    rt.abort(big).await.ok();
    rt.shutdown(Duration::from_secs(5)).await?;
    let params = json!({
        "probes": probes, "probe_interval_ms": PROBE_INTERVAL.as_millis() as u64,
        "big_job_records": big_records, "slice_size": ctx.slice_size, "workers": ctx.workers,
        "spin_per_record_us": SPIN_PER_RECORD.as_micros() as u64, "saturated_throughout": saturated,
        "urgent_lane": urgent_lane, "reserved_workers": reserved,
    });
    let suffix = suffix_of(variant);
    let m = |metric: &str, v: f64| {
        Measurement::new("priority", &format!("{metric}{suffix}"), v / 1e3, "ms")
            .durability(DURABILITY)
            .params(params.clone())
    };
    Ok(vec![
        m("submit_to_start_p50", split.total.percentile_us(50.0)),
        m("submit_to_start_p99", split.total.percentile_us(99.0)),
        m("submit_to_start_max", split.total.max_us()),
        m("priority_wait_p50", split.wait.percentile_us(50.0)),
        m("priority_wait_p99", split.wait.percentile_us(99.0)),
        m("priority_overhead_p50", split.overhead.percentile_us(50.0)),
        m("priority_overhead_p99", split.overhead.percentile_us(99.0)),
        m("priority_overhead_max", split.overhead.max_us()),
        m("submit_to_started_at_p50", from_submit.percentile_us(50.0)),
        m("submit_to_started_at_p99", from_submit.percentile_us(99.0)),
        m("submit_to_started_at_max", from_submit.max_us()),
    ])
}

fn suffix_of(variant: Variant) -> &'static str {
    match variant {
        Variant::LaneOff => "_lane_off",
        Variant::Lane => "",
        Variant::Reserved => "_reserved",
    }
}

/// A probe's time to start, split at the first worker becoming free.
struct Split {
    total: Latencies,
    wait: Latencies,
    overhead: Latencies,
    /// Per probe: its start, the first worker free before it, its overhead.
    probes: Vec<(Instant, Option<Instant>, Duration)>,
}

/// From the submit instants (probe i submitted at `submits[i]`), the
/// probes' handler starts and the slice ends the handlers noted.
fn split_waits(submits: &[Instant]) -> anyhow::Result<Split> {
    let starts = PROBE_STARTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut ends = SLICE_ENDS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    ends.sort();
    let mut split = Split {
        total: Latencies::new(),
        wait: Latencies::new(),
        overhead: Latencies::new(),
        probes: Vec::with_capacity(submits.len()),
    };
    for (probe, at) in submits.iter().enumerate() {
        let started = starts
            .iter()
            .find(|(p, _)| *p == probe as u64)
            .map(|(_, s)| *s)
            .with_context(|| format!("probe {probe} finished but its start was not noted"))?;
        let (wait, overhead) = wait_and_overhead(*at, started, &ends);
        let first_free = (wait > Duration::ZERO).then_some(*at + wait);
        split.probes.push((started, first_free, overhead));
        split.total.record(started.saturating_duration_since(*at));
        split.wait.record(wait);
        split.overhead.record(overhead);
    }
    Ok(split)
}

/// (wait for a free worker, Booster's own part) of a job submitted at `at`
/// that started at `started`, given the sorted instants workers became free.
pub fn wait_and_overhead(
    at: Instant,
    started: Instant,
    free_at: &[Instant],
) -> (Duration, Duration) {
    let first_free = free_at[free_at.partition_point(|e| *e < at)..]
        .first()
        .filter(|e| **e <= started);
    match first_free {
        Some(free) => (*free - at, started.saturating_duration_since(*free)),
        None => (Duration::ZERO, started.saturating_duration_since(at)),
    }
}

async fn start_big_job(rt: &Runtime, n: u64, slice_size: usize) -> anyhow::Result<u64> {
    let pool = RecordPool::new();
    let mut spec = JobSpec::sliced(SPIN_COPY);
    spec.shape = JobShape::Sliced {
        slice_size: Some(slice_size),
        collect_errors: true,
    };
    // Held while uploading, so the whole job is still ahead when probes start.
    rt.set_kind_limit(SPIN_COPY, Some(0)).await;
    let job = rt.submit(spec).await?;
    let mut up = rt.upload(job).await?;
    for i in 0..n {
        up.push_bytes(pool.get(i)).await?;
    }
    up.finish().await?;
    rt.set_kind_limit(SPIN_COPY, None).await;
    Ok(job)
}

/// Until every worker holds a lease on the big job (bounded: 30 s).
async fn wait_saturated(rt: &Runtime, job: u64, workers: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let status = rt.job(job).await?;
        if status.slices_running as usize >= workers {
            return Ok(());
        }
        anyhow::ensure!(
            status.slices_queued > 0 && started.elapsed() < Duration::from_secs(30),
            "the big job never held all {workers} workers (running {}, queued {})",
            status.slices_running,
            status.slices_queued
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_ends_when_the_first_worker_becomes_free_after_the_submit() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let free_at = [ms(1), ms(5), ms(9)];
        let (wait, overhead) = wait_and_overhead(ms(2), ms(7), &free_at);
        assert_eq!(wait, Duration::from_millis(3));
        assert_eq!(overhead, Duration::from_millis(2));
    }

    #[test]
    fn a_job_that_started_before_any_worker_freed_up_waited_for_none() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let (wait, overhead) = wait_and_overhead(ms(2), ms(3), &[ms(1), ms(5)]);
        assert_eq!(wait, Duration::ZERO);
        assert_eq!(overhead, Duration::from_millis(1));
    }
}
