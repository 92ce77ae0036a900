//! Running a scenario in a child process of the harness, so each
//! scenario's peak RSS and its threads are its own, and a scenario that
//! fails or panics does not take the others with it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::report::Measurement;
use crate::scenarios::Ctx;

/// The arguments that reproduce `ctx` on a command line.
pub fn args(ctx: &Ctx) -> Vec<String> {
    let mut a = vec![
        "--workers".to_string(),
        ctx.workers.to_string(),
        "--dir".to_string(),
        ctx.dir.display().to_string(),
        "--slice-size".to_string(),
        ctx.slice_size.to_string(),
        "--zstd-level".to_string(),
        ctx.zstd_level.to_string(),
        "--repetitions".to_string(),
        ctx.repetitions.to_string(),
        "--spin-us".to_string(),
        ctx.spin_us.to_string(),
    ];
    if let Some(t) = ctx.codec_threads {
        a.extend(["--codec-threads".into(), t.to_string()]);
    }
    if let Some(p) = ctx.sidekiq_processes {
        a.extend(["--sidekiq-processes".into(), p.to_string()]);
    }
    if let Some(c) = ctx.sidekiq_concurrency {
        a.extend(["--sidekiq-concurrency".into(), c.to_string()]);
    }
    if let Some(b) = ctx.max_lease_batch {
        a.extend(["--max-lease-batch".into(), b.to_string()]);
    }
    if ctx.quick {
        a.push("--quick".into());
    }
    if ctx.no_checkpoints {
        a.push("--no-checkpoints".into());
    }
    if ctx.no_auto_compact {
        a.push("--no-auto-compact".into());
    }
    if let Some(mb) = ctx.auto_compact_min_dead_mb {
        a.extend(["--auto-compact-min-dead-mb".into(), mb.to_string()]);
    }
    if ctx.enqueue_only {
        a.push("--enqueue-only".into());
    }
    if ctx.lean {
        a.push("--lean".into());
    }
    if let Some(r) = ctx.records {
        a.extend(["--records".into(), r.to_string()]);
    }
    if let Some(j) = ctx.jobs {
        a.extend(["--jobs".into(), j.to_string()]);
    }
    a
}

/// Runs `booster-bench SCENARIO --child --json ...` and collects its results.
/// Lines that are not measurements are passed through to stderr.
pub fn run_scenario(ctx: &Ctx, scenario: &str) -> anyhow::Result<Vec<Measurement>> {
    let exe = std::env::current_exe().context("finding the harness's own executable")?;
    let mut child = Command::new(exe)
        .arg(scenario)
        .args(["--child", "--json"])
        .args(args(ctx))
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the {scenario} child process"))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut results = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match serde_json::from_str::<Measurement>(&line) {
            Ok(m) => results.push(m),
            Err(_) => eprintln!("{line}"),
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "scenario {scenario} failed ({status})");
    Ok(results)
}
