//! Quick throughput check of the runtime (the full harness is booster-bench).
//!
//! ```sh
//! cargo run --release -p booster-runtime --example throughput -- jobs 1000000
//! cargo run --release -p booster-runtime --example throughput -- sliced 10000000
//! ```
//!
//! `jobs N`: N no-op simple jobs, durable enqueue (submit_many of 1000) and
//! durable completion; reports enqueue, burn-down and end-to-end jobs/s.
//! `sliced N`: N ~100-byte records, slices of 1000, zstd + AES-GCM: upload,
//! process (copy), download; reports records/s end to end.
//! `priority N`: N priority-1 jobs submitted into a runtime saturated by a
//! CPU-bound batch; reports enqueue-to-start latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_runtime::*;

// Four allocations per record (input, decoded slice, output, download) cross
// threads; glibc malloc spends a third of the CPU on them, mimalloc little.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Noop;

impl SimpleHandler for Noop {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        Ok(None)
    }
}

struct Copy;

impl RecordHandler for Copy {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        out.push(record.to_vec());
        Ok(())
    }
}

fn options(dir: &std::path::Path) -> RuntimeOptions {
    let mut o = RuntimeOptions::new(dir);
    o.master_key = Some(MasterKey([42u8; 32]));
    o.slice_size = 1000;
    if let Ok(w) = std::env::var("WORKERS") {
        o.workers = w.parse().expect("WORKERS is a number");
    }
    o
}

async fn jobs(n: usize) -> Result<(), RuntimeError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Runtime::open(options(dir.path())).await?;
    let spec = JobSpec::simple("noop", serde_json::Value::Null);
    // Burn-down: enqueue everything, then process.
    let t = Instant::now();
    let mut submits = Vec::new();
    for _ in 0..n / 1000 {
        let rt = rt.clone();
        let specs = vec![spec.clone(); 1000];
        submits.push(tokio::spawn(async move { rt.submit_many(specs).await }));
    }
    for s in submits {
        s.await.expect("submit task")?;
    }
    let enqueue_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    rt.register_simple("noop", Arc::new(Noop));
    rt.wait_idle().await;
    let burn_s = t.elapsed().as_secs_f64();
    let m = rt.metrics();
    println!(
        "jobs: {n} no-op jobs; enqueue {:.0} jobs/s; burn-down {:.0} jobs/s; enqueue+burn-down {:.0} jobs/s",
        n as f64 / enqueue_s,
        n as f64 / burn_s,
        n as f64 / (enqueue_s + burn_s)
    );
    println!("  states: {:?}", m.jobs_by_state);
    println!(
        "  commit latency us (pct, value): {:?}",
        m.commit_latency_us
    );
    rt.shutdown(Duration::from_secs(5)).await
}

async fn sliced(n: usize) -> Result<(), RuntimeError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Runtime::open(options(dir.path())).await?;
    rt.register_sliced("copy", Arc::new(Copy));
    let t = Instant::now();
    let job = rt.submit(JobSpec::sliced("copy")).await?;
    let mut up = rt.upload(job).await?;
    // ~100-byte CSV records; only the leading id changes (cheap to make, so
    // the numbers measure the runtime, not the generator).
    let template = b"0000000000,customer-00000000,someone@example.com,2026-11-28,      1234.56,ACTIVE,some notes here";
    for i in 0..n {
        let mut rec = template.to_vec();
        let mut v = i;
        for d in rec[..10].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        up.push(rec).await?;
    }
    up.finish().await?;
    let upload_s = t.elapsed().as_secs_f64();
    let status = rt.wait(job).await?;
    let processed_s = t.elapsed().as_secs_f64();
    let mut count = 0usize;
    let mut bytes = 0usize;
    for r in rt.download(job, Category::Main)? {
        let r = r?;
        count += 1;
        bytes += r.len();
    }
    let total_s = t.elapsed().as_secs_f64();
    assert_eq!(count, n, "every record comes back");
    println!(
        "sliced: {n} records ({:.0} B avg), {:?}; upload done at {upload_s:.2}s, processing at {processed_s:.2}s, download at {total_s:.2}s",
        bytes as f64 / n as f64,
        status.state
    );
    println!("  end to end {:.0} records/s", n as f64 / total_s);
    println!(
        "  commit latency us (pct, value): {:?}",
        rt.metrics().commit_latency_us
    );
    let s = rt.store_stats().expect("store stats");
    println!(
        "  store: {} segments, raw {} B, stored {} B",
        s.segments, s.raw_bytes, s.stored_bytes
    );
    rt.shutdown(Duration::from_secs(5)).await
}

/// Spins about 2 us per record: a CPU-bound batch job.
struct Busy;

impl RecordHandler for Busy {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        let until = Instant::now() + Duration::from_micros(2);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        out.push(record.to_vec());
        Ok(())
    }
}

/// Priority-1 jobs submitted while every worker is busy with a big batch:
/// enqueue-to-start latency.
async fn priority(n: usize) -> Result<(), RuntimeError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Runtime::open(options(dir.path())).await?;
    rt.register_sliced("busy", Arc::new(Busy));
    rt.register_simple("urgent", Arc::new(Noop));
    let big = rt.submit(JobSpec::sliced("busy")).await?;
    let mut up = rt.upload(big).await?;
    for i in 0..4_000_000u64 {
        up.push(i.to_le_bytes().to_vec()).await?;
    }
    up.finish().await?;
    let mut urgent = Vec::new();
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let spec = JobSpec::simple("urgent", serde_json::Value::Null).with_priority(1);
        urgent.push(rt.submit(spec).await?);
    }
    for id in urgent {
        rt.wait(id).await?;
    }
    let running = rt.job(big).await?.state;
    let m = rt.metrics();
    println!(
        "priority: {n} priority-1 jobs into a saturated runtime (big job still {running:?}); enqueue-to-start us (pct, value): {:?}",
        m.enqueue_to_start_us
    );
    if running == JobState::Running {
        rt.abort(big).await?;
    }
    rt.shutdown(Duration::from_secs(5)).await
}

#[tokio::main]
async fn main() -> Result<(), RuntimeError> {
    let args: Vec<String> = std::env::args().collect();
    let n = |default: usize| {
        args.get(2)
            .map(|s| s.parse().expect("count is a number"))
            .unwrap_or(default)
    };
    match args.get(1).map(String::as_str) {
        Some("jobs") => jobs(n(200_000)).await,
        Some("sliced") => sliced(n(1_000_000)).await,
        Some("priority") => priority(n(200)).await,
        _ => {
            eprintln!("usage: throughput jobs [N] | sliced [N] | priority [N]");
            Ok(())
        }
    }
}
