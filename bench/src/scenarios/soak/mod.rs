//! `soak`: no-op simple jobs enqueued and drained continuously, finished
//! jobs retained (never destroyed), with the resident set sampled every
//! second; then a SIGKILL, a timed reopen and a timed first page of the
//! newest 100 finished jobs. Issue 12's measure of whether memory follows
//! the work in progress (G10) or the history.
//!
//! A child process (`soak-child`) does the enqueue and drain and reports
//! its own RSS figures, then waits to be killed; this process reopens.
//!
//! Metrics: `peak_rss` (MB, the child's VmHWM), `rss_slope` (MB per minute,
//! least squares over the second half of the samples), `jobs_per_s`,
//! `retained_finished_jobs` (completed jobs the reopened table holds),
//! `reopen` (ms, `Runtime::open` after the SIGKILL), `page_100` (ms),
//! `store_size` (MB, the data directory as the kill left it); and
//! diagnostic lines `diag_*` (`samples.rs`): the heap bytes live and each
//! in-RAM structure's entries at the end, with their growth through the
//! second half per minute and per million jobs.

mod samples;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use booster_runtime::{JobFilter, JobQuery, JobSpec, JobState, Runtime};
use serde::{Deserialize, Serialize};
use serde_json::json;

use samples::{Diagnostic, Sample};

use crate::booster::{self, CodecMode, DURABILITY};
use crate::handlers::NOOP;
use crate::report::Measurement;
use crate::scenarios::jobs::wait_idle_bounded;
use crate::scenarios::Ctx;

const DONE: &str = "SOAK-DONE";
/// Where the child writes every sample, one JSON line each, when set.
const SAMPLES_ENV: &str = "BOOSTER_SOAK_SAMPLES";
/// Where to copy the data directory as the SIGKILL left it, before the
/// timed reopen, when set: to profile or repeat that reopen by hand
/// (`booster --data PATH --key-file K jobs`, K holding the bench's key,
/// `42` 32 times in hex).
const KEEP_ENV: &str = "BOOSTER_SOAK_KEEP";
const SUBMIT_BATCH: usize = 1_000;
/// Queued jobs the producer lets pile up before it waits for the workers.
const MAX_BACKLOG: u64 = 100_000;

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let n = ctx.jobs(1_000_000, 100_000);
    std::fs::create_dir_all(&ctx.dir)?;
    let dir = tempfile::tempdir_in(&ctx.dir)?;
    let mut out = run_child_and_kill(ctx, dir.path(), n)?;
    if let Some(keep) = std::env::var_os(KEEP_ENV) {
        copy_dir(dir.path(), std::path::Path::new(&keep)).with_context(|| {
            format!("copying the killed data directory to {keep:?} ({KEEP_ENV})")
        })?;
    }
    let tokio = booster::tokio()?;
    out.extend(tokio.block_on(reopen(ctx, dir.path(), n))?);
    Ok(out)
}

async fn reopen(ctx: &Ctx, dir: &std::path::Path, n: u64) -> anyhow::Result<Vec<Measurement>> {
    // The data directory as the kill left it: what background compaction
    // (or its absence, `--no-auto-compact`) made of the dead row pages.
    let store_mb = dir_bytes(dir)? as f64 / 1e6;
    let reopening = Instant::now();
    let rt = booster::open(ctx, dir, CodecMode::On, ctx.workers).await?;
    let reopen_ms = reopening.elapsed().as_secs_f64() * 1e3;
    let paging = Instant::now();
    let filter = JobFilter {
        state: Some(JobState::Completed),
        ..JobFilter::default()
    };
    let page = rt.jobs_page(JobQuery::newest(filter)).await?.jobs;
    let page_ms = paging.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        page.len() == 100.min(n as usize),
        "the first page holds {} jobs",
        page.len()
    );
    let retained = completed(&rt);
    rt.shutdown(Duration::from_secs(5)).await?;
    anyhow::ensure!(
        retained >= n,
        "only {retained} of {n} finished jobs after the reopen: jobs were lost"
    );
    Ok(vec![
        measurement(ctx, n, "retained_finished_jobs", retained as f64, "jobs"),
        measurement(ctx, n, "reopen", reopen_ms, "ms"),
        measurement(ctx, n, "page_100", page_ms, "ms"),
        measurement(ctx, n, "store_size", store_mb, "MB"),
    ])
}

/// Bytes of the files directly in `dir`.
fn dir_bytes(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

fn measurement(ctx: &Ctx, n: u64, metric: &str, v: f64, unit: &str) -> Measurement {
    Measurement::new("soak", metric, v, unit)
        .durability(DURABILITY)
        .params(json!({
            "jobs": n,
            "workers": ctx.workers,
            "submit_batch": SUBMIT_BATCH,
            "checkpoints": !ctx.no_checkpoints,
            "auto_compact": !ctx.no_auto_compact,
            "auto_compact_min_dead_mb": ctx.auto_compact_min_dead_mb,
        }))
}

fn completed(rt: &Runtime) -> u64 {
    let by_state = rt.metrics().jobs_by_state;
    by_state
        .iter()
        .filter(|(s, _)| *s == JobState::Completed)
        .map(|(_, n)| n)
        .sum()
}

/// What the child reports on its `SOAK-DONE` line (JSON).
#[derive(Serialize, Deserialize)]
struct ChildFigures {
    peak_mb: f64,
    slope_mb_per_min: f64,
    jobs_per_s: f64,
    /// Background compactions finished, and failed, in the run
    /// (`Metrics::auto_compactions`).
    auto_compactions: u64,
    auto_compaction_failures: u64,
    diagnostics: Vec<Diagnostic>,
}

/// Starts `soak-child`, reads its figures, kills it (SIGKILL).
fn run_child_and_kill(
    ctx: &Ctx,
    dir: &std::path::Path,
    n: u64,
) -> anyhow::Result<Vec<Measurement>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(child_args(ctx, dir, n))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the soak child process")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with(DONE));
    // std's Child::kill is SIGKILL on Unix: no chance to flush or close.
    let killed = child.kill();
    let _ = child.wait();
    let line = line.context("the soak child exited before it was done")?;
    killed.context("could not SIGKILL the soak child")?;
    let figures: ChildFigures = serde_json::from_str(line[DONE.len()..].trim())
        .with_context(|| format!("the soak child reported {line:?}"))?;
    let mut out = vec![
        measurement(ctx, n, "peak_rss", figures.peak_mb, "MB"),
        measurement(ctx, n, "rss_slope", figures.slope_mb_per_min, "MB/min"),
        measurement(ctx, n, "jobs_per_s", figures.jobs_per_s, "jobs/s"),
        measurement(
            ctx,
            n,
            "auto_compactions",
            figures.auto_compactions as f64,
            "runs",
        ),
        measurement(
            ctx,
            n,
            "auto_compaction_failures",
            figures.auto_compaction_failures as f64,
            "runs",
        ),
    ];
    for d in figures.diagnostics {
        let mut m = measurement(ctx, n, &d.metric, d.value, &d.unit);
        m.params["per_minute"] = json!(d.per_minute);
        m.params["per_million_jobs"] = json!(d.per_million_jobs);
        out.push(m);
    }
    Ok(out)
}

/// The soak child's command line: every setting of `ctx` (checkpoints,
/// background compaction and its floor, ...), with its own data
/// directory and job count. It used to pass only the directory, the
/// jobs and the workers, so `soak --no-auto-compact` (or
/// `--no-checkpoints`) measured the runtime's defaults.
fn child_args(ctx: &Ctx, dir: &std::path::Path, n: u64) -> Vec<String> {
    let child = Ctx {
        dir: dir.to_path_buf(),
        jobs: Some(n),
        ..ctx.clone()
    };
    let mut args = vec!["soak-child".to_string(), "--child".to_string()];
    args.extend(crate::child::args(&child));
    args
}

/// The child: enqueue and drain `n` no-op jobs, sampling every second;
/// print `SOAK-DONE {figures as JSON}`; wait to be killed.
pub fn child(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let n = ctx.jobs(1_000_000, 100_000);
    crate::alloc::start_counting();
    let samples = Arc::new(std::sync::Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (jobs_per_s, compactions, sampler) = booster::tokio()?.block_on(async {
        let rt = booster::open(ctx, &ctx.dir, CodecMode::On, ctx.workers).await?;
        let sampler = {
            let (samples, stop, rt) = (samples.clone(), stop.clone(), rt.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(s) = Sample::take(&rt, started.elapsed().as_secs_f64()) {
                        samples.lock().unwrap().push(s);
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        let started = Instant::now();
        let mut left = n as usize;
        while left > 0 {
            while backlog(&rt) > MAX_BACKLOG {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let batch = left.min(SUBMIT_BATCH);
            let specs = (0..batch)
                .map(|_| JobSpec::simple(NOOP, json!(null)))
                .collect();
            rt.submit_many(specs).await?;
            left -= batch;
        }
        wait_idle_bounded(&rt, Duration::from_secs(3600)).await?;
        let jobs_per_s = n as f64 / started.elapsed().as_secs_f64();
        let metrics = rt.metrics();
        let compactions = (metrics.auto_compactions, metrics.auto_compaction_failures);
        // The runtime stays open (holding what it holds) until the kill.
        std::mem::forget(rt);
        anyhow::Ok((jobs_per_s, compactions, sampler))
    })?;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let peak_mb = crate::rss::peak_rss_bytes().unwrap_or(0) as f64 / 1e6;
    let samples = samples.lock().unwrap();
    let rss: Vec<(f64, f64)> = samples.iter().map(|s| (s.seconds, s.rss_mb)).collect();
    let figures = ChildFigures {
        peak_mb,
        slope_mb_per_min: second_half_slope_mb_per_min(&rss),
        jobs_per_s,
        auto_compactions: compactions.0,
        auto_compaction_failures: compactions.1,
        diagnostics: samples::diagnostics(&samples),
    };
    if let Some(path) = std::env::var_os(SAMPLES_ENV) {
        samples::write(&samples, std::path::Path::new(&path))?;
    }
    println!("{DONE} {}", serde_json::to_string(&figures)?);
    // Bounded: the parent kills us long before this.
    std::thread::sleep(Duration::from_secs(600));
    Ok(Vec::new())
}

fn backlog(rt: &Runtime) -> u64 {
    let by_state = rt.metrics().jobs_by_state;
    by_state
        .iter()
        .filter(|(s, _)| matches!(s, JobState::Queued | JobState::Running))
        .map(|(_, n)| n)
        .sum()
}

/// Least-squares slope of (seconds, MB) over the second half, in MB/min;
/// 0 with fewer than two samples there.
pub fn second_half_slope_mb_per_min(samples: &[(f64, f64)]) -> f64 {
    samples::second_half_slope(samples) * 60.0
}

/// `from`'s files and folders, copied into `to` (made if missing).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_child_runs_with_the_settings_it_was_given() {
        let ctx = Ctx {
            quick: false,
            workers: 3,
            codec_threads: None,
            dir: "/elsewhere".into(),
            records: None,
            jobs: None,
            slice_size: 1000,
            zstd_level: 1,
            lean: false,
            spin_us: 0,
            max_lease_batch: None,
            no_checkpoints: true,
            no_auto_compact: true,
            auto_compact_min_dead_mb: Some(64),
            enqueue_only: false,
            repetitions: 5,
            sidekiq_processes: None,
            sidekiq_concurrency: None,
        };
        let args = child_args(&ctx, std::path::Path::new("/data/soak"), 20);
        let after = |flag: &str| {
            let at = args.iter().position(|a| a == flag);
            at.and_then(|i| args.get(i + 1)).map(String::as_str)
        };
        assert_eq!(&args[..2], ["soak-child", "--child"]);
        assert!(args.iter().any(|a| a == "--no-checkpoints"), "{args:?}");
        assert!(args.iter().any(|a| a == "--no-auto-compact"), "{args:?}");
        assert_eq!(after("--auto-compact-min-dead-mb"), Some("64"));
        assert_eq!(after("--dir"), Some("/data/soak"));
        assert_eq!(after("--jobs"), Some("20"));
        assert_eq!(after("--workers"), Some("3"));
    }

    #[test]
    fn slope_is_taken_over_the_second_half_only() {
        // Grows 10 MB/s in the first half, flat in the second.
        let samples: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64, if i < 5 { 10.0 * i as f64 } else { 50.0 }))
            .collect();
        assert_eq!(second_half_slope_mb_per_min(&samples), 0.0);
        let growing: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64)).collect();
        assert!((second_half_slope_mb_per_min(&growing) - 60.0).abs() < 1e-9);
    }
}
