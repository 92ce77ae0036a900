//! `recovery`: a child process uploads N records (10M) into a sliced `copy`
//! job and starts processing it; once it is mid-run the harness kills it with
//! SIGKILL, then times `Runtime::open` on the same data directory (reopen),
//! the first slice completed after it (resume), and the rest of the job,
//! and checks every record is accounted for (G1, G2).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use booster_runtime::{JobShape, JobSpec, JobState};
use serde_json::json;

use crate::booster::{self, CodecMode, RecordPool, DURABILITY};
use crate::handlers::COPY;
use crate::report::Measurement;
use crate::scenarios::Ctx;

const READY: &str = "RECOVERY-READY";
/// Slices the child must have completed before it is killed.
const KILL_AFTER_SLICES: u64 = 20;

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let n = ctx.records(10_000_000, 1_000_000);
    std::fs::create_dir_all(&ctx.dir)?;
    let dir = tempfile::tempdir_in(&ctx.dir)?;
    let (job, killed_at_slices) = run_child_and_kill(ctx, dir.path(), n)?;
    let tokio = booster::tokio()?;
    tokio.block_on(async {
        let reopening = Instant::now();
        let rt = booster::open(ctx, dir.path(), CodecMode::On, ctx.workers).await?;
        let reopen_s = reopening.elapsed().as_secs_f64();
        let at_open = rt.job(job).await?;
        let resuming = Instant::now();
        let mut resume_s = None;
        while resuming.elapsed() < Duration::from_secs(60) {
            let s = rt.job(job).await?;
            if s.slices_done > at_open.slices_done || s.state == JobState::Completed {
                resume_s = Some(resuming.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let resume_s = resume_s.context("no slice completed within 60 s of reopening")?;
        let status = tokio::time::timeout(Duration::from_secs(1800), rt.wait(job)).await??;
        let finish_s = resuming.elapsed().as_secs_f64();
        rt.shutdown(Duration::from_secs(5)).await?;
        anyhow::ensure!(
            status.records_in == n && status.records_out + status.records_failed == n,
            "after kill -9: records in {} out {} failed {}, uploaded {n}: records were lost",
            status.records_in, status.records_out, status.records_failed
        );
        let params = json!({
            "records": n, "slice_size": ctx.slice_size, "workers": ctx.workers,
            "slices_done_before_kill": killed_at_slices, "slices_done_at_reopen": at_open.slices_done,
            "codec": CodecMode::On.name(),
        });
        let m = |metric: &str, v: f64, unit: &str| {
            Measurement::new("recovery", metric, v, unit)
                .durability(DURABILITY)
                .params(params.clone())
        };
        Ok(vec![
            m("reopen", reopen_s * 1e3, "ms"),
            m("first_slice_after_reopen", resume_s * 1e3, "ms"),
            m("rest_of_job", finish_s, "s"),
        ])
    })
}

/// Starts `recovery-child`, waits for it to be mid-run, kills it (SIGKILL).
fn run_child_and_kill(ctx: &Ctx, dir: &std::path::Path, n: u64) -> anyhow::Result<(u64, u64)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["recovery-child", "--child", "--dir"])
        .arg(dir)
        .args([
            "--records",
            &n.to_string(),
            "--workers",
            &ctx.workers.to_string(),
        ])
        .args(["--slice-size", &ctx.slice_size.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the recovery child process")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with(READY));
    // std's Child::kill is SIGKILL on Unix: no chance to flush or close.
    let killed = child.kill();
    let _ = child.wait();
    let line = line.context("the recovery child exited before it was ready")?;
    killed.context("could not SIGKILL the recovery child")?;
    let mut parts = line.split_whitespace().skip(1);
    let job = parts.next().context("job id")?.parse()?;
    let slices = parts.next().context("slices")?.parse()?;
    Ok((job, slices))
}

/// The child: upload, then announce once some slices are done, then keep
/// processing until killed.
pub fn child(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let n = ctx.records(10_000_000, 1_000_000);
    booster::tokio()?.block_on(async {
        let rt = booster::open(ctx, &ctx.dir, CodecMode::On, ctx.workers).await?;
        let pool = RecordPool::new();
        let mut spec = JobSpec::sliced(COPY);
        spec.shape = JobShape::Sliced {
            slice_size: Some(ctx.slice_size),
            collect_errors: true,
        };
        // Held while uploading, so the kill lands with most of the job ahead.
        rt.set_kind_limit(COPY, Some(0)).await;
        let job = rt.submit(spec).await?;
        let mut up = rt.upload(job).await?;
        for i in 0..n {
            up.push_bytes(pool.get(i)).await?;
        }
        up.finish().await?;
        rt.set_kind_limit(COPY, None).await;
        let started = Instant::now();
        loop {
            let s = rt.job(job).await?;
            if s.slices_done >= KILL_AFTER_SLICES || started.elapsed() > Duration::from_secs(60) {
                println!("{READY} {job} {}", s.slices_done);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Bounded: the parent kills us long before this.
        tokio::time::sleep(Duration::from_secs(600)).await;
        Ok(Vec::new())
    })
}
