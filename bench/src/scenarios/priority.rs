//! `priority`: every worker busy with a big sliced job (priority 50, handler
//! `spin-copy`), then priority-1 no-op jobs submitted at intervals; time from
//! the submit call to the job's `started_at`, p50/p99/max (this includes the
//! durable enqueue's fdatasync), and from the acknowledged submit to
//! `started_at` (dispatch alone). The big job must
//! still have queued slices when the last probe started, else the run says
//! it was not saturated.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use booster_runtime::{JobShape, JobSpec, JobState, Runtime};
use serde_json::json;

use crate::booster::{self, CodecMode, RecordPool, DURABILITY};
use crate::handlers::{NOOP, SPIN_COPY, SPIN_PER_RECORD};
use crate::report::Measurement;
use crate::scenarios::jobs::since;
use crate::scenarios::Ctx;
use crate::stats::Latencies;

const PROBE_INTERVAL: Duration = Duration::from_millis(5);

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    booster::tokio()?.block_on(run_async(ctx))
}

async fn run_async(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let big_records = ctx.records(5_000_000, 1_500_000);
    let probes = ctx.jobs(500, 100);
    std::fs::create_dir_all(&ctx.dir)?;
    let dir = tempfile::tempdir_in(&ctx.dir)?;
    let rt = booster::open(ctx, dir.path(), CodecMode::On, ctx.workers).await?;
    let big = start_big_job(&rt, big_records, ctx.slice_size).await?;
    wait_saturated(&rt, big, ctx.workers).await?;
    let mut submitted = Vec::with_capacity(probes as usize);
    for _ in 0..probes {
        let mut spec = JobSpec::simple(NOOP, json!(null));
        spec.priority = 1;
        let at = SystemTime::now();
        let id = rt.submit(spec).await?;
        submitted.push((id, at, SystemTime::now()));
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    let mut lat = Latencies::new();
    let mut from_ack = Latencies::new();
    for (id, at, acked) in &submitted {
        let status = tokio::time::timeout(Duration::from_secs(60), rt.wait(*id))
            .await
            .context("a priority-1 job did not finish within 60 s")??;
        let started = status
            .started_at
            .context("completed job without started_at")?;
        lat.record(since(*at, started));
        from_ack.record(since(*acked, started));
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
    });
    let m = |metric: &str, v: f64| {
        Measurement::new("priority", metric, v / 1e3, "ms")
            .durability(DURABILITY)
            .params(params.clone())
    };
    Ok(vec![
        m("submit_to_start_p50", lat.percentile_us(50.0)),
        m("submit_to_start_p99", lat.percentile_us(99.0)),
        m("submit_to_start_max", lat.max_us()),
        m("ack_to_start_p50", from_ack.percentile_us(50.0)),
        m("ack_to_start_p99", from_ack.percentile_us(99.0)),
        m("ack_to_start_max", from_ack.max_us()),
    ])
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
        up.push(pool.get(i).to_vec()).await?;
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
