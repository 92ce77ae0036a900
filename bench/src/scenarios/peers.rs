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
//! 3. In the same rounds, the Rust peers (`rust_peers.rs`): apalis on SQLite
//!    and on PostgreSQL (graphile_worker is built but left out of the
//!    rounds: it all but stalls here, see `rust_peers::PEERS`), the same N jobs,
//!    each timed to its N-th finished job; `booster_vs_best_rust_peer` is
//!    Booster over the fastest of them, round by round.
//!
//! The harness installs the Debian packages it needs (`apt-get`) and starts
//! and stops every Redis itself, on loopback.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::compare;
use crate::report::Measurement;
use crate::rust_peers::{self, Backend, PEERS};
use crate::scenarios::Ctx;
use crate::services::{self, Persistence, PostgresServer};
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
    let rust = RustPeers::start(ctx);
    let compared = compare_rounds(ctx, n, best, swept, rust.as_ref())
        .and_then(|r| Ok((r, spin_rounds(ctx, n, best, rust.as_ref())?)));
    if let Some(rust) = rust {
        rust.stop();
    }
    let (no_op, spinning) = compared?;
    out.extend(no_op);
    out.extend(spinning);
    Ok(out)
}

/// CPU each job of the spin comparison does.
const SPIN_US: u64 = 1_000;

/// Jobs of 1 ms of CPU each: Booster (`jobs --spin-us 1000`), Booster with
/// one job per lease (`--max-lease-batch 1`: batching off, so what is left
/// is the architecture), Sidekiq at
/// its best setting with at least a process per core (Redis persistence
/// off) and the Rust peers, alternating,
/// a tenth as many jobs as the no-op comparison (at least 5,000) on every side.
fn spin_rounds(
    ctx: &Ctx,
    n: u64,
    best: Setting,
    rust: Option<&RustPeers>,
) -> anyhow::Result<Vec<Measurement>> {
    let n = (n / 10).max(5_000);
    // Ruby threads share one interpreter lock: CPU work needs a process per core.
    let best = Setting {
        processes: best.processes.max(crate::report::cores()),
        threads: best.threads,
    };
    let mut spin_ctx = ctx.clone();
    spin_ctx.spin_us = SPIN_US;
    let mut unbatched_ctx = spin_ctx.clone();
    unbatched_ctx.max_lease_batch = Some(1);
    let (mut booster, mut sidekiq_rates) = (Vec::new(), Vec::new());
    let mut unbatched = Vec::new();
    let mut by_peer: Vec<Vec<f64>> = vec![Vec::new(); PEERS.len()];
    for round in 0..ctx.repetitions {
        eprintln!(
            "peers: spin round {} of {}: {n} jobs of {SPIN_US} us CPU each",
            round + 1,
            ctx.repetitions
        );
        booster.push(booster_burn_down(&spin_ctx, n)?);
        unbatched.push(booster_burn_down(&unbatched_ctx, n)?);
        let job = sidekiq::Job {
            jobs: n,
            spin_us: SPIN_US,
            redis_benchmark_requests: None,
            limit: drain_limit(ctx),
        };
        let run = sidekiq::run(&ctx.dir, Persistence::Off, best, &job)?;
        sidekiq_rates.push(n as f64 / run.drain_s);
        if let Some(rust) = rust {
            for (i, _) in PEERS.iter().enumerate() {
                rust.note(&mut by_peer[i], rust.burn_down(i, 1000 + round, n, SPIN_US));
            }
        }
    }
    let params = json!({
        "jobs": n, "spin_us": SPIN_US, "same_jobs_both_sides": true, "workers": ctx.workers,
        "sidekiq_processes": best.processes, "sidekiq_threads": best.threads,
        "lease_batch": "Booster sizes simple-job lease batches to about 1 ms of work, so 1 ms jobs go one per lease",
    });
    let off = Persistence::Off;
    let mut out = vec![
        Measurement::new(
            "peers",
            "booster_spin_burn_down",
            compare::median(&booster),
            "jobs/s",
        )
        .durability(crate::booster::DURABILITY)
        .params(compare::with_spread(&params, &booster)),
        Measurement::new(
            "peers",
            "booster_lease_batch_1_spin_burn_down",
            compare::median(&unbatched),
            "jobs/s",
        )
        .durability(crate::booster::DURABILITY)
        .params(compare::with_spread(
            &json!({ "jobs": n, "spin_us": SPIN_US, "workers": ctx.workers, "max_lease_batch": 1 }),
            &unbatched,
        )),
        compare::ratio(
            "peers",
            "booster_lease_batch_1_vs_sidekiq_off_spin",
            &unbatched,
            &sidekiq_rates,
            json!({ "jobs": n, "spin_us": SPIN_US, "max_lease_batch": 1 }),
        )
        .durability(off.durability()),
        Measurement::new(
            "peers",
            &format!("sidekiq_{}_spin_burn_down", off.name()),
            compare::median(&sidekiq_rates),
            "jobs/s",
        )
        .durability(off.durability())
        .params(compare::with_spread(&params, &sidekiq_rates)),
        compare::ratio(
            "peers",
            &format!("booster_vs_sidekiq_{}_spin", off.name()),
            &booster,
            &sidekiq_rates,
            params,
        )
        .durability(off.durability()),
    ];
    if let Some(rust) = rust {
        out.extend(rust.report(n, SPIN_US, &booster, &by_peer));
    }
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
    rust: Option<&RustPeers>,
) -> anyhow::Result<Vec<Measurement>> {
    let mut booster = Vec::new();
    let mut by_mode: Vec<Vec<f64>> = vec![Vec::new(); Persistence::ALL.len()];
    let mut out = Vec::new();
    let mut by_peer: Vec<Vec<f64>> = vec![Vec::new(); PEERS.len()];
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
        if let Some(rust) = rust {
            for (i, (name, _, _)) in PEERS.iter().enumerate() {
                eprintln!("peers: round {}: {name}, {n} jobs", round + 1);
                rust.note(&mut by_peer[i], rust.burn_down(i, round, n, 0));
            }
        }
    }
    if let Some(rust) = rust {
        out.extend(rust.report(n, 0, &booster, &by_peer));
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

/// The Rust peers' binary, a PostgreSQL server, a scratch dir for SQLite.
struct RustPeers {
    bin: std::path::PathBuf,
    postgres: PostgresServer,
    scratch: tempfile::TempDir,
}

impl RustPeers {
    /// None (and says why) where the peers cannot run here.
    fn start(ctx: &Ctx) -> Option<RustPeers> {
        let started = (|| {
            let bin = rust_peers::binary()?;
            std::fs::create_dir_all(&ctx.dir)?;
            let scratch = tempfile::tempdir_in(&ctx.dir)?;
            let postgres = PostgresServer::start(&ctx.dir)?;
            Ok::<_, anyhow::Error>(RustPeers {
                bin,
                postgres,
                scratch,
            })
        })();
        started
            .map_err(|e| eprintln!("peers: no Rust peers in this run: {e:#}"))
            .ok()
    }

    /// One burn-down of peer number `peer` on a fresh database (`run`
    /// names it), jobs/s.
    fn burn_down(&self, peer: usize, run: usize, n: u64, spin_us: u64) -> anyhow::Result<f64> {
        let (name, arg, backend) = PEERS[peer];
        let target = rust_peers::fresh_target(
            backend,
            self.scratch.path(),
            Some(&self.postgres),
            run * PEERS.len() + peer,
        )?;
        rust_peers::burn_down(&self.bin, arg, &target, n, spin_us).context(name)
    }

    /// Keeps a peer's figure; a peer that failed is named and left out (the
    /// rounds of the others, and of Sidekiq, go on).
    fn note(&self, series: &mut Vec<f64>, run: anyhow::Result<f64>) {
        match run {
            Ok(rate) => series.push(rate),
            Err(e) => eprintln!("peers: {e:#}; left out of this round"),
        }
    }

    fn stop(self) {
        self.postgres.stop();
    }

    /// `<peer>_burn_down` per peer and `booster_vs_best_rust_peer` (with
    /// `_spin` after `<peer>` and the ratio when the jobs spin).
    fn report(
        &self,
        n: u64,
        spin_us: u64,
        booster: &[f64],
        by_peer: &[Vec<f64>],
    ) -> Vec<Measurement> {
        let suffix = if spin_us > 0 { "_spin" } else { "" };
        let params = json!({
            "jobs": n, "spin_us": spin_us, "same_jobs_both_sides": true, "concurrency": rust_peers::CONCURRENCY,
            "timed_to": "the N-th finished job (a counter each job increments)",
            "peers": "apalis 1.0 (apalis-sqlite, apalis-postgres); graphile_worker 0.14 left out (it all but stalls here: rust_peers::PEERS)",
        });
        let mut out = Vec::new();
        // A peer that failed in any round is left out of the comparison.
        let complete = |i: usize| by_peer[i].len() == booster.len();
        for (i, (name, _, backend)) in PEERS.iter().enumerate() {
            if !complete(i) {
                eprintln!("peers: {name} did not finish every round; no figure");
                continue;
            }
            out.push(
                Measurement::new(
                    "peers",
                    &format!("{name}{suffix}_burn_down"),
                    compare::median(&by_peer[i]),
                    "jobs/s",
                )
                .durability(backend.durability())
                .params(compare::with_spread(&params, &by_peer[i])),
            );
        }
        // Only durable peers count as Booster's rivals on durable work.
        let best: Vec<f64> = (0..booster.len())
            .map(|round| {
                PEERS
                    .iter()
                    .enumerate()
                    .filter(|(i, (_, _, b))| *b == Backend::Postgres && complete(*i))
                    .filter_map(|(i, _)| by_peer[i].get(round).copied())
                    .fold(0.0, f64::max)
            })
            .collect();
        if best.iter().all(|b| *b > 0.0) {
            out.push(
                compare::ratio(
                    "peers",
                    &format!("booster_vs_best_rust_peer{suffix}"),
                    booster,
                    &best,
                    params,
                )
                .durability("durable on both sides (fdatasync / postgresql commit)"),
            );
        }
        out
    }
}

fn bench_requests(ctx: &Ctx) -> u64 {
    if ctx.quick {
        50_000
    } else {
        200_000
    }
}
