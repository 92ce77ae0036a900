//! `booster-peers PEER JOBS CONCURRENCY [URL|PATH] [SPIN_US]`: one burn-down
//! of a Rust job queue, for booster-bench's `peers` scenario. Pushes JOBS
//! jobs, then starts the worker and times it until the JOBS-th job has
//! counted itself done (a counter each job increments as its last step).
//! Prints one JSON line: `{"peer":..,"jobs":..,"push_s":..,"drain_s":..}`.
//!
//! Peers: `apalis-sqlite PATH` (apalis 1.0 with its SQLite backend, a file
//! database), `apalis-postgres URL` and `graphile-worker URL` (the Rust
//! port of Graphile Worker), both on the PostgreSQL server the harness
//! started on loopback.
//!
//! Known here: graphile_worker 0.14.1 all but stalls on this machine: its
//! worker finishes some hundreds of jobs, then about 7 a second although the
//! rest sit available and unlocked in `_private_jobs` (1,720 of 50,000 after
//! 4 minutes). booster-bench leaves it out of its rounds for that reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Jobs done; each job's last step.
static DONE: AtomicU64 = AtomicU64::new(0);
/// CPU each job spins before it is done (0: a no-op).
static SPIN_US: AtomicU64 = AtomicU64::new(0);
/// Jobs per push call.
const PUSH_BATCH: u64 = 1_000;
/// The drain gives up after this.
const DRAIN_LIMIT: Duration = Duration::from_secs(900);
/// A drain with no job done for this long has stalled.
const STALL_LIMIT: Duration = Duration::from_secs(30);

fn job_body() {
    let spin = SPIN_US.load(Ordering::Relaxed);
    if spin > 0 {
        let until = Instant::now() + Duration::from_micros(spin);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
    DONE.fetch_add(1, Ordering::Relaxed);
}

struct Timing {
    push_s: f64,
    drain_s: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: booster-peers apalis-sqlite|apalis-postgres|graphile-worker JOBS CONCURRENCY PATH_OR_URL [SPIN_US]";
    let [peer, jobs, concurrency, target, rest @ ..] = args.as_slice() else {
        bail!("{usage}");
    };
    let jobs: u64 = jobs.parse().context(usage)?;
    let concurrency: usize = concurrency.parse().context(usage)?;
    if let Some(spin) = rest.first() {
        SPIN_US.store(spin.parse().context(usage)?, Ordering::Relaxed);
    }
    let timing = match peer.as_str() {
        "apalis-sqlite" => apalis_sqlite(target, jobs, concurrency).await?,
        "apalis-postgres" => apalis_postgres(target, jobs, concurrency).await?,
        "graphile-worker" => graphile(target, jobs, concurrency).await?,
        other => bail!("unknown peer {other:?}; {usage}"),
    };
    println!(
        "{}",
        serde_json::json!({
            "peer": peer, "jobs": jobs, "concurrency": concurrency,
            "push_s": timing.push_s, "drain_s": timing.drain_s,
        })
    );
    // The workers run until the process ends: no graceful shutdown to time.
    std::process::exit(0);
}

/// Waits until `jobs` jobs are done; seconds since `started`. A peer that
/// finishes no job for `STALL_LIMIT` has stalled: an error, not a wait.
async fn until_done(jobs: u64, started: Instant) -> anyhow::Result<f64> {
    let mut last = (0, Instant::now());
    loop {
        let done = DONE.load(Ordering::Relaxed);
        if done >= jobs {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > DRAIN_LIMIT {
            bail!("{done} of {jobs} jobs done after {DRAIN_LIMIT:?}");
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > STALL_LIMIT {
            bail!("stalled: {done} of {jobs} jobs done, none in the last {STALL_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

mod apalis_peers {
    use apalis::prelude::*;

    pub async fn noop(_item: u64, _worker: WorkerContext) -> Result<(), BoxDynError> {
        super::job_body();
        Ok(())
    }
}

async fn apalis_sqlite(path: &str, jobs: u64, concurrency: usize) -> anyhow::Result<Timing> {
    use apalis::prelude::*;
    use apalis_sqlite::SqliteStorage;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    SqliteStorage::setup(&pool).await?;
    let mut backend: SqliteStorage<u64> = SqliteStorage::new(&pool);
    let pushing = Instant::now();
    let mut next = 0u64;
    while next < jobs {
        let end = (next + PUSH_BATCH).min(jobs);
        backend
            .push_bulk((next..end).collect())
            .await
            .map_err(|e| anyhow::anyhow!("apalis push_bulk: {e:?}"))?;
        next = end;
    }
    let push_s = pushing.elapsed().as_secs_f64();
    // apalis-sqlite's ack (`UPDATE Jobs .. FROM json_each(?1) WHERE
    // Jobs.id = j.task_id AND Jobs.lock_by = ?2`) is planned, on tables
    // without statistics, through the `lock_by` index, and every finished
    // job keeps its `lock_by`: each ack scans all the worker's finished
    // jobs, and a burn-down grows quadratic (10K jobs: 117 jobs/s).
    // Statistics taken once the jobs are in make SQLite look rows up by
    // their primary key instead; a user tuning the queue would do the same,
    // and the peer gets its best showing.
    sqlx::query("ANALYZE").execute(&pool).await?;
    let worker = WorkerBuilder::new("booster-bench-apalis-sqlite")
        .backend(backend)
        .concurrency(concurrency)
        .parallelize(tokio::spawn)
        .build(apalis_peers::noop);
    let started = Instant::now();
    // Polled in this task rather than spawned: the worker's future, with
    // `tokio::spawn` as its executor inside, is not provably `Send` for
    // every lifetime (rustc's higher-ranked inference), so spawning it
    // fails to compile.
    let drain_s = tokio::select! {
        ran = worker.run() => bail!("the apalis worker stopped early: {ran:?}"),
        done = until_done(jobs, started) => done?,
    };
    Ok(Timing { push_s, drain_s })
}

async fn apalis_postgres(url: &str, jobs: u64, concurrency: usize) -> anyhow::Result<Timing> {
    use apalis::prelude::*;
    use apalis_postgres::PostgresStorage;
    use sqlx::postgres::PgPoolOptions;

    let pool = PgPoolOptions::new().connect(url).await?;
    PostgresStorage::setup(&pool).await?;
    let mut backend: PostgresStorage<u64> = PostgresStorage::new(&pool);
    let pushing = Instant::now();
    let mut next = 0u64;
    while next < jobs {
        let end = (next + PUSH_BATCH).min(jobs);
        backend
            .push_bulk((next..end).collect())
            .await
            .map_err(|e| anyhow::anyhow!("apalis push_bulk: {e:?}"))?;
        next = end;
    }
    let push_s = pushing.elapsed().as_secs_f64();
    let worker = WorkerBuilder::new("booster-bench-apalis-postgres")
        .backend(backend)
        .concurrency(concurrency)
        .parallelize(tokio::spawn)
        .build(apalis_peers::noop);
    let started = Instant::now();
    // Polled in this task, as in `apalis_sqlite`.
    let drain_s = tokio::select! {
        ran = worker.run() => bail!("the apalis worker stopped early: {ran:?}"),
        done = until_done(jobs, started) => done?,
    };
    Ok(Timing { push_s, drain_s })
}

mod graphile_peer {
    use graphile_worker::{IntoTaskHandlerResult, TaskHandler, WorkerContext};
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Deserialize, Serialize)]
    pub struct Noop {
        pub i: u64,
    }

    impl TaskHandler for Noop {
        const IDENTIFIER: &'static str = "noop";

        async fn run(self, _ctx: WorkerContext) -> impl IntoTaskHandlerResult {
            super::job_body();
        }
    }
}

async fn graphile(url: &str, jobs: u64, concurrency: usize) -> anyhow::Result<Timing> {
    use graphile_worker::{JobSpec, WorkerOptions};
    use sqlx::postgres::PgPoolOptions;

    let pool = PgPoolOptions::new()
        .max_connections(concurrency as u32 * 2 + 10)
        .connect(url)
        .await?;
    let worker = WorkerOptions::default()
        .concurrency(concurrency)
        .schema("graphile_worker")
        .define_job::<graphile_peer::Noop>()
        .listen_os_shutdown_signals(false)
        .pg_pool(pool)
        .init()
        .await
        .map_err(|e| anyhow::anyhow!("graphile_worker init: {e:?}"))?;
    let utils = worker.create_utils();
    let spec = JobSpec::default();
    let pushing = Instant::now();
    let mut next = 0u64;
    while next < jobs {
        let end = (next + PUSH_BATCH).min(jobs);
        let batch: Vec<(graphile_peer::Noop, &JobSpec)> = (next..end)
            .map(|i| (graphile_peer::Noop { i }, &spec))
            .collect();
        utils
            .add_jobs(&batch)
            .await
            .map_err(|e| anyhow::anyhow!("graphile_worker add_jobs: {e:?}"))?;
        next = end;
    }
    let push_s = pushing.elapsed().as_secs_f64();
    let started = Instant::now();
    let drain_s = tokio::select! {
        ran = worker.run() => bail!("the graphile_worker worker stopped early: {ran:?}"),
        done = until_done(jobs, started) => done?,
    };
    Ok(Timing { push_s, drain_s })
}
