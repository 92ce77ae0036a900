//! `peers`: Booster's durable no-op burn-down beside Sidekiq's (see
//! `sidekiq.rs`), the same job count on both sides (at least 100K, 50K with
//! `--quick`), each side timed to its N-th finished job.
//!
//! 1. The sweep: Sidekiq at 1-4 processes x 5-25 threads on Redis without
//!    persistence, once each; the fastest setting is Sidekiq's best.
//!    `--sidekiq-processes` and `--sidekiq-concurrency` together skip it.
//! 2. The comparison: `--repetitions` rounds of Booster (`jobs`, in its own
//!    child process) then Sidekiq at its best setting on Redis with
//!    persistence off, `appendfsync everysec` and `appendfsync always`, in
//!    that order (A B C D A B C D). Each ratio is taken round by round;
//!    every figure is the median with its min-max spread.
//!
//! The harness installs the Debian packages it needs (`apt-get`) and starts
//! and stops every Redis itself, on loopback.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::compare;
use crate::report::Measurement;
use crate::scenarios::Ctx;
use crate::services::{self, Persistence};
use crate::sidekiq::{self, Setting};

/// The sweep: processes x threads per process.
const SWEEP_PROCESSES: &[usize] = &[1, 2, 3, 4];
const SWEEP_THREADS: &[usize] = &[5, 10, 25];
const SWEEP_PROCESSES_QUICK: &[usize] = &[1, 2, 4];
const SWEEP_THREADS_QUICK: &[usize] = &[5, 25];

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    services::ensure_installed(
        &["redis-server", "redis-benchmark", "sidekiq", "ruby"],
        &["redis-server", "redis-tools", "ruby-sidekiq"],
    )?;
    let n = ctx.jobs(100_000, 50_000);
    let mut out = Vec::new();
    let (best, swept) = match (ctx.sidekiq_processes, ctx.sidekiq_concurrency) {
        (Some(processes), Some(threads)) => (Setting { processes, threads }, false),
        _ => (sweep(ctx, n, &mut out)?, true),
    };
    out.extend(compare_rounds(ctx, n, best, swept)?);
    Ok(out)
}

fn drain_limit(ctx: &Ctx) -> Duration {
    Duration::from_secs(if ctx.quick { 300 } else { 900 })
}

/// Sidekiq at every setting of the grid, persistence off; the fastest.
fn sweep(ctx: &Ctx, n: u64, out: &mut Vec<Measurement>) -> anyhow::Result<Setting> {
    let (processes, threads) = if ctx.quick {
        (SWEEP_PROCESSES_QUICK, SWEEP_THREADS_QUICK)
    } else {
        (SWEEP_PROCESSES, SWEEP_THREADS)
    };
    let mut best: Option<(Setting, f64)> = None;
    for &p in processes {
        for &t in threads {
            let setting = Setting {
                processes: p,
                threads: t,
            };
            eprintln!("peers: sidekiq sweep, {p} processes x {t} threads, {n} jobs");
            let job = sidekiq::Job {
                jobs: n,
                spin_us: 0,
                redis_benchmark_requests: None,
                limit: drain_limit(ctx),
            };
            let run = sidekiq::run(&ctx.dir, Persistence::Off, setting, &job)?;
            let rate = n as f64 / run.drain_s;
            out.push(
                Measurement::new(
                    "peers",
                    &format!("sidekiq_sweep_{p}x{t}_burn_down"),
                    rate,
                    "jobs/s",
                )
                .durability(Persistence::Off.durability())
                .params(json!({ "jobs": n, "sidekiq_processes": p, "sidekiq_threads": t })),
            );
            if best.is_none_or(|(_, b)| rate > b) {
                best = Some((setting, rate));
            }
        }
    }
    best.map(|(s, _)| s).context("the sweep grid is empty")
}

/// Booster's burn-down of `n` no-op jobs, in a child process like every scenario.
fn booster_burn_down(ctx: &Ctx, n: u64) -> anyhow::Result<f64> {
    let mut jobs_ctx = ctx.clone();
    jobs_ctx.lean = true;
    jobs_ctx.jobs = Some(n);
    let results = crate::child::run_scenario(&jobs_ctx, "jobs")?;
    results
        .iter()
        .find(|m| m.metric == "burn_down")
        .map(|m| m.value)
        .context("the jobs scenario gave no burn_down figure")
}

fn compare_rounds(
    ctx: &Ctx,
    n: u64,
    best: Setting,
    swept: bool,
) -> anyhow::Result<Vec<Measurement>> {
    let mut booster = Vec::new();
    let mut by_mode: Vec<Vec<f64>> = vec![Vec::new(); Persistence::ALL.len()];
    let mut out = Vec::new();
    for round in 0..ctx.repetitions {
        eprintln!(
            "peers: round {} of {}: booster, then sidekiq {}x{} x3 persistence modes, {n} jobs each",
            round + 1,
            ctx.repetitions,
            best.processes,
            best.threads
        );
        booster.push(booster_burn_down(ctx, n)?);
        for (i, mode) in Persistence::ALL.into_iter().enumerate() {
            let job = sidekiq::Job {
                jobs: n,
                spin_us: 0,
                redis_benchmark_requests: (round == 0).then_some(bench_requests(ctx)),
                limit: drain_limit(ctx),
            };
            let run = sidekiq::run(&ctx.dir, mode, best, &job)?;
            by_mode[i].push(n as f64 / run.drain_s);
            if let Some((lpush, rpop)) = run.redis_benchmark {
                let params = json!({
                    "redis_benchmark": format!("-t lpush,rpop -n {} (50 clients, no pipelining)", bench_requests(ctx)),
                    "redis": services::redis_version(),
                });
                for (what, v) in [("lpush", lpush), ("rpop", rpop)] {
                    out.push(
                        Measurement::new(
                            "peers",
                            &format!("redis_benchmark_{}_{what}", mode.name()),
                            v,
                            "requests/s",
                        )
                        .durability(mode.durability())
                        .params(params.clone()),
                    );
                }
            }
        }
    }
    let params = json!({
        "jobs": n, "same_jobs_both_sides": true, "workers": ctx.workers,
        "sidekiq_processes": best.processes, "sidekiq_threads": best.threads,
        "sidekiq_best_of_sweep": swept, "sidekiq": sidekiq::version(),
        "redis": services::redis_version(), "push_batch": 10_000,
        "timed_to": "the N-th finished job (Booster: wait_idle; Sidekiq: INCR bench:done)",
    });
    out.push(
        Measurement::new(
            "peers",
            "booster_burn_down",
            compare::median(&booster),
            "jobs/s",
        )
        .durability(crate::booster::DURABILITY)
        .params(compare::with_spread(&params, &booster)),
    );
    for (i, mode) in Persistence::ALL.into_iter().enumerate() {
        let name = mode.name();
        out.push(
            Measurement::new(
                "peers",
                &format!("sidekiq_{name}_burn_down"),
                compare::median(&by_mode[i]),
                "jobs/s",
            )
            .durability(mode.durability())
            .params(compare::with_spread(&params, &by_mode[i])),
        );
        out.push(
            compare::ratio(
                "peers",
                &format!("booster_vs_sidekiq_{name}"),
                &booster,
                &by_mode[i],
                params.clone(),
            )
            .durability(mode.durability()),
        );
    }
    Ok(out)
}

fn bench_requests(ctx: &Ctx) -> u64 {
    if ctx.quick {
        50_000
    } else {
        200_000
    }
}
