//! `jobs`: no-op simple jobs, durable enqueue and durable completion.
//! - burn-down: enqueue N while the kind is held (kind limit 0), then release
//!   it and time the drain, as Sidekiq's load test pushes then drains.
//! - continuous: one producer submits batches while the workers drain.
//!
//! With `--spin-us N` the jobs are `spin` jobs that keep their worker's CPU
//! busy for N us each instead of no-ops. The dispatcher sizes a lease batch
//! of simple jobs to about 1 ms of work, so 1 ms jobs are leased one at a
//! time: that run shows Booster without the batching that no-ops enjoy.
//!
//! Latency is enqueue-to-complete from the runtime's own timestamps
//! (created_at -> completed_at) on an even sample of the jobs.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use booster_runtime::{JobId, JobSpec, JobState, Runtime};
use serde_json::json;

use crate::booster::{self, CodecMode, DURABILITY};
use crate::handlers::{NOOP, SPIN};
use crate::report::Measurement;
use crate::scenarios::Ctx;
use crate::stats::Latencies;

const SUBMIT_BATCH: usize = 10_000;
const CONTINUOUS_BATCH: usize = 1_000;
const LATENCY_SAMPLE: usize = 10_000;

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let n = ctx.jobs(1_000_000, 100_000);
    let tokio = booster::tokio()?;
    let mut out = Vec::new();
    if ctx.enqueue_only {
        out.extend(tokio.block_on(enqueue_only(ctx, n))?);
    } else {
        out.extend(tokio.block_on(burn_down(ctx, n))?);
        if !ctx.lean {
            out.extend(tokio.block_on(continuous(ctx, n))?);
        }
    }
    if let Some(peak) = crate::rss::peak_rss_bytes() {
        let params = json!({ "jobs": n, "workers": ctx.workers, "enqueue_only": ctx.enqueue_only });
        out.push(Measurement::new("jobs", "peak_rss", peak as f64 / 1e6, "MB").params(params));
    }
    Ok(out)
}

/// `--enqueue-only`: N no-op jobs enqueued while their kind is held, then
/// a checkpoint, so the peak RSS is that of N queued jobs (a queued row
/// leaves RAM once a checkpoint wrote it). The memory census goes to
/// stderr: what holds the RAM, by structure.
async fn enqueue_only(ctx: &Ctx, n: u64) -> anyhow::Result<Vec<Measurement>> {
    std::fs::create_dir_all(&ctx.dir)?;
    let dir = tempfile::tempdir_in(&ctx.dir)?;
    let rt = booster::open(ctx, dir.path(), CodecMode::On, ctx.workers).await?;
    rt.set_kind_limit(kind(ctx), Some(0)).await;
    let started = Instant::now();
    let mut left = n as usize;
    while left > 0 {
        let batch = left.min(SUBMIT_BATCH);
        rt.submit_many(job_specs(ctx, batch)).await?;
        left -= batch;
    }
    let enqueue_s = started.elapsed().as_secs_f64();
    let rss_mb = || crate::rss::rss_bytes().map_or(0.0, |b| b as f64 / 1e6);
    eprintln!(
        "diag_before_checkpoint rss {:.0} MB {:?}",
        rss_mb(),
        rt.memory_census()
    );
    rt.checkpoint().await?;
    eprintln!(
        "diag_after_checkpoint rss {:.0} MB {:?}",
        rss_mb(),
        rt.memory_census()
    );
    let queued: u64 = rt
        .metrics()
        .jobs_by_state
        .iter()
        .filter(|(state, _)| *state == JobState::Queued)
        .map(|(_, n)| *n)
        .sum();
    anyhow::ensure!(queued == n, "{queued} of {n} jobs queued: jobs were lost");
    rt.shutdown(Duration::from_secs(5)).await?;
    let params = json!({
        "jobs": n, "workers": ctx.workers, "submit_batch": SUBMIT_BATCH,
        "codec": CodecMode::On.name(), "enqueue_only": true,
        "checkpoints": !ctx.no_checkpoints,
    });
    let reopened = reopen_queued(ctx, dir.path(), n).await?;
    let mut out = vec![
        Measurement::new("jobs", "queued_enqueue", n as f64 / enqueue_s, "jobs/s")
            .durability(DURABILITY)
            .params(params.clone()),
    ];
    out.push(Measurement::new("jobs", "queued_reopen", reopened.ms, "ms").params(params.clone()));
    let mb = |b: i64| b as f64 / 1e6;
    out.push(
        Measurement::new(
            "jobs",
            "queued_reopen_peak_heap",
            mb(reopened.peak_heap),
            "MB",
        )
        .params(params.clone()),
    );
    out.push(
        Measurement::new("jobs", "queued_reopen_heap", mb(reopened.heap), "MB").params(params),
    );
    Ok(out)
}

/// What an open over N queued jobs (a restart with a backlog) costs.
struct Reopened {
    ms: f64,
    /// Heap bytes allocated and not freed since just before the open, at
    /// most while it ran (sampled), and once it returned.
    peak_heap: i64,
    heap: i64,
}

/// Opens `dir` again over its `n` queued jobs with no handler registered
/// (so none runs while it is measured) and measures the open's time and
/// heap: the queued rows a checkpoint wrote are read back when leased, so
/// neither the open nor the runtime after it should hold them whole.
async fn reopen_queued(ctx: &Ctx, dir: &std::path::Path, n: u64) -> anyhow::Result<Reopened> {
    crate::alloc::start_counting();
    let base = crate::alloc::live_bytes();
    let peaks = crate::rss::PhasePeaks::start(1);
    let opening = Instant::now();
    let opts = booster::options(ctx, dir, CodecMode::On, ctx.workers);
    let rt = Runtime::open(opts).await?;
    let ms = opening.elapsed().as_secs_f64() * 1e3;
    let heap = crate::alloc::live_bytes() - base;
    let peak_heap = peaks
        .finish()
        .first()
        .map_or(heap, |p| p.1 - base)
        .max(heap);
    eprintln!(
        "diag_after_reopen heap {:.0} MB {:?}",
        heap as f64 / 1e6,
        rt.memory_census()
    );
    let by_state = rt.metrics().jobs_by_state;
    let queued = by_state.iter().find(|(s, _)| *s == JobState::Queued);
    let queued = queued.map_or(0, |(_, n)| *n);
    rt.shutdown(Duration::from_secs(5)).await?;
    anyhow::ensure!(
        queued == n,
        "{queued} of {n} jobs queued after the reopen: jobs were lost"
    );
    Ok(Reopened {
        ms,
        peak_heap,
        heap,
    })
}

/// No-op jobs, or with `--spin-us` jobs that spin their worker that long.
fn job_specs(ctx: &Ctx, n: usize) -> Vec<JobSpec> {
    (0..n)
        .map(|_| match ctx.spin_us {
            0 => JobSpec::simple(NOOP, json!(null)),
            us => JobSpec::simple(SPIN, json!({ "spin_us": us })),
        })
        .collect()
}

fn kind(ctx: &Ctx) -> &'static str {
    if ctx.spin_us == 0 {
        NOOP
    } else {
        SPIN
    }
}

async fn burn_down(ctx: &Ctx, n: u64) -> anyhow::Result<Vec<Measurement>> {
    std::fs::create_dir_all(&ctx.dir)?;
    let dir = tempfile::tempdir_in(&ctx.dir)?;
    let rt = booster::open(ctx, dir.path(), CodecMode::On, ctx.workers).await?;
    rt.set_kind_limit(kind(ctx), Some(0)).await;
    let mut ids: Vec<JobId> = Vec::with_capacity(n as usize);
    let started = Instant::now();
    let mut left = n as usize;
    while left > 0 {
        let batch = left.min(SUBMIT_BATCH);
        ids.extend(rt.submit_many(job_specs(ctx, batch)).await?);
        left -= batch;
    }
    let enqueue_s = started.elapsed().as_secs_f64();
    let early = count_completed(&rt).await;
    let drain_start = Instant::now();
    rt.set_kind_limit(kind(ctx), None).await;
    wait_idle_bounded(&rt, Duration::from_secs(600)).await?;
    let drain_s = drain_start.elapsed().as_secs_f64();
    let latency = sample_latency(&rt, &ids).await?;
    check_all_completed(&rt, n).await?;
    print_checkpoint_times(&rt);
    rt.shutdown(Duration::from_secs(5)).await?;
    let params = json!({
        "jobs": n, "workers": ctx.workers, "submit_batch": SUBMIT_BATCH,
        "codec": CodecMode::On.name(), "completed_during_enqueue": early,
        "spin_us": ctx.spin_us, "max_lease_batch": ctx.max_lease_batch,
        "checkpoints": !ctx.no_checkpoints,
    });
    let m = |metric: &str, v: f64, unit: &str| {
        Measurement::new("jobs", metric, v, unit)
            .durability(DURABILITY)
            .params(params.clone())
    };
    Ok(vec![
        m("burn_down_enqueue", n as f64 / enqueue_s, "jobs/s"),
        m("burn_down", n as f64 / drain_s, "jobs/s"),
        m(
            "burn_down_total",
            n as f64 / (enqueue_s + drain_s),
            "jobs/s",
        ),
        m(
            "burn_down_latency_p50",
            latency.percentile_us(50.0) / 1e3,
            "ms",
        ),
        m(
            "burn_down_latency_p99",
            latency.percentile_us(99.0) / 1e3,
            "ms",
        ),
    ])
}

async fn continuous(ctx: &Ctx, n: u64) -> anyhow::Result<Vec<Measurement>> {
    let dir = tempfile::tempdir_in(&ctx.dir)?;
    let rt = booster::open(ctx, dir.path(), CodecMode::On, ctx.workers).await?;
    let mut ids: Vec<JobId> = Vec::with_capacity(n as usize);
    let started = Instant::now();
    let mut left = n as usize;
    while left > 0 {
        let batch = left.min(CONTINUOUS_BATCH);
        ids.extend(rt.submit_many(job_specs(ctx, batch)).await?);
        left -= batch;
    }
    wait_idle_bounded(&rt, Duration::from_secs(600)).await?;
    let total_s = started.elapsed().as_secs_f64();
    let latency = sample_latency(&rt, &ids).await?;
    check_all_completed(&rt, n).await?;
    print_checkpoint_times(&rt);
    rt.shutdown(Duration::from_secs(5)).await?;
    let params = json!({
        "jobs": n, "workers": ctx.workers, "submit_batch": CONTINUOUS_BATCH,
        "codec": CodecMode::On.name(), "spin_us": ctx.spin_us,
        "checkpoints": !ctx.no_checkpoints,
    });
    let m = |metric: &str, v: f64, unit: &str| {
        Measurement::new("jobs", metric, v, unit)
            .durability(DURABILITY)
            .params(params.clone())
    };
    Ok(vec![
        m("continuous", n as f64 / total_s, "jobs/s"),
        m(
            "continuous_latency_p50",
            latency.percentile_us(50.0) / 1e3,
            "ms",
        ),
        m(
            "continuous_latency_p99",
            latency.percentile_us(99.0) / 1e3,
            "ms",
        ),
    ])
}

pub async fn wait_idle_bounded(rt: &Runtime, limit: Duration) -> anyhow::Result<()> {
    tokio::time::timeout(limit, rt.wait_idle())
        .await
        .with_context(|| format!("jobs still running after {limit:?}: the runtime stalled"))
}

/// Where this run's checkpoints spent their time (ARCHITECTURE.md, "3.4
/// The checkpoint off the state lock"), on stderr: counters, not a
/// measurement of the run.
fn print_checkpoint_times(rt: &Runtime) {
    let t = rt.metrics().checkpoint_times;
    let ms = |us: u64| us as f64 / 1e3;
    eprintln!(
        "checkpoints: {} taken; ms in all: prebuild {:.0}, gate {:.0} (drain {:.0}, enqueue {:.0}), \
         state lock {:.0}; pages prebuilt {}, built under the gate {} (read there {})",
        t.taken,
        ms(t.prebuild_us),
        ms(t.gate_us),
        ms(t.drain_us),
        ms(t.enqueue_us),
        ms(t.lock_us),
        t.pages_prebuilt,
        t.pages_sealed,
        t.pages_sealed_read
    );
}

/// From the runtime's counters, not by listing a million statuses.
async fn count_completed(rt: &Runtime) -> u64 {
    rt.metrics()
        .jobs_by_state
        .iter()
        .filter(|(state, _)| *state == JobState::Completed)
        .map(|(_, n)| *n)
        .sum()
}

async fn check_all_completed(rt: &Runtime, n: u64) -> anyhow::Result<()> {
    let done = count_completed(rt).await;
    anyhow::ensure!(
        done >= n,
        "only {done} of {n} jobs completed: jobs were lost"
    );
    Ok(())
}

/// created_at -> completed_at of an even sample of `ids`.
async fn sample_latency(rt: &Runtime, ids: &[JobId]) -> anyhow::Result<Latencies> {
    let mut lat = Latencies::new();
    let step = (ids.len() / LATENCY_SAMPLE).max(1);
    for id in ids.iter().step_by(step) {
        let status = rt.job(*id).await?;
        if let Some(done) = status.completed_at {
            lat.record(since(status.created_at, done));
        }
    }
    Ok(lat)
}

/// `later - earlier`, zero where the wall clock went backwards.
pub fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}
