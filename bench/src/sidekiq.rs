//! One Sidekiq burn-down: Sidekiq (Debian `ruby-sidekiq`) on a fresh Redis
//! (Debian `redis-server`) of the given persistence. `bench/peers/push.rb`
//! pushes N jobs to a staging queue with `push_bulk`; `processes` Sidekiq
//! processes of `threads` threads start; once all have registered, one
//! `RENAME` releases the jobs, and the clock runs until the `bench:done`
//! counter, which each job increments when it is done, reaches N.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::resp::Redis;
use crate::services::{wait_bounded, Persistence, RedisServer};

const QUEUE: &str = "queue:default";
/// push.rb fills this queue, which no Sidekiq process reads (see `drain`).
const STAGING: &str = "queue:staging";
/// Each job increments this once done (bench/peers/worker.rb).
const DONE: &str = "bench:done";

/// Processes x threads per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub processes: usize,
    pub threads: usize,
}

pub struct Run {
    pub push_s: f64,
    /// Jobs released (RENAME) until the N-th job counted itself done.
    pub drain_s: f64,
    /// Sidekiq processes started until the N-th job was done.
    pub with_boot_s: f64,
    /// (LPUSH/s, RPOP/s) from `redis-benchmark` on the same server, if asked.
    pub redis_benchmark: Option<(f64, f64)>,
}

/// What one run is asked to do.
pub struct Job {
    pub jobs: u64,
    /// CPU each job spins before it is done (0: a no-op).
    pub spin_us: u64,
    /// Run `redis-benchmark -n this` after the drain.
    pub redis_benchmark_requests: Option<u64>,
    /// The drain gives up after this.
    pub limit: Duration,
}

pub fn run(scratch: &Path, mode: Persistence, setting: Setting, job: &Job) -> anyhow::Result<Run> {
    std::fs::create_dir_all(scratch)?;
    let tmp = tempfile::tempdir_in(scratch)?;
    let server = RedisServer::start(tmp.path(), mode)?;
    let result = (|| {
        let push_s = push(&server, tmp.path(), job)?;
        let (drain_s, with_boot_s) = drain(&server, tmp.path(), setting, job)?;
        let redis_benchmark = match job.redis_benchmark_requests {
            Some(n) => Some(redis_benchmark(&server, n)?),
            None => None,
        };
        Ok(Run {
            push_s,
            drain_s,
            with_boot_s,
            redis_benchmark,
        })
    })();
    server.stop();
    result
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

fn push(server: &RedisServer, tmp: &Path, job: &Job) -> anyhow::Result<f64> {
    let log = std::fs::File::create(tmp.join("push.log"))?;
    let mut child = Command::new("ruby")
        .arg(peers_dir().join("push.rb"))
        .args([job.jobs.to_string(), job.spin_us.to_string()])
        .env("REDIS_URL", server.url())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting ruby push.rb")?;
    if !wait_bounded(&mut child, Duration::from_secs(600)) {
        let _ = child.kill();
        let _ = child.wait();
        bail!("push.rb did not finish within 600 s");
    }
    let output = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let seconds = text
        .split_whitespace()
        .last()
        .and_then(|s| s.parse::<f64>().ok())
        .with_context(|| {
            format!(
                "push.rb said {text:?}; see {}",
                tmp.join("push.log").display()
            )
        })?;
    let queued = Redis::connect(server.port)?.int(&["LLEN", STAGING])?;
    anyhow::ensure!(
        queued as u64 == job.jobs,
        "push.rb queued {queued} jobs, expected {}",
        job.jobs
    );
    Ok(seconds)
}

/// (release to N-th done, start to N-th done), in seconds.
fn drain(
    server: &RedisServer,
    tmp: &Path,
    setting: Setting,
    job: &Job,
) -> anyhow::Result<(f64, f64)> {
    let mut redis = Redis::connect(server.port)?;
    let spawned = Instant::now();
    let mut workers = Vec::new();
    for i in 0..setting.processes.max(1) {
        let log = std::fs::File::create(tmp.join(format!("sidekiq-{i}.log")))?;
        let child = Command::new("sidekiq")
            .arg("-r")
            .arg(peers_dir().join("worker.rb"))
            .args(["-c", &setting.threads.max(1).to_string(), "-q", "default"])
            .env("REDIS_URL", server.url())
            .current_dir(tmp)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn();
        match child {
            Ok(c) => workers.push(c),
            Err(e) => {
                stop_all(&mut workers);
                return Err(e).context("starting sidekiq");
            }
        }
    }
    let result = release_when_ready(&mut redis, &mut workers, tmp)
        .and_then(|released| wait_done(&mut redis, &mut workers, tmp, job, released, spawned));
    let failed =
        redis.int(&["ZCARD", "retry"]).unwrap_or(0) + redis.int(&["ZCARD", "dead"]).unwrap_or(0);
    stop_all(&mut workers);
    let times = result?;
    anyhow::ensure!(
        failed == 0,
        "{failed} sidekiq jobs failed; see {}/sidekiq-*.log",
        tmp.display()
    );
    Ok(times)
}

fn wait_done(
    redis: &mut Redis,
    workers: &mut [Child],
    tmp: &Path,
    job: &Job,
    released: Instant,
    spawned: Instant,
) -> anyhow::Result<(f64, f64)> {
    loop {
        let done = redis.counter(DONE)? as u64;
        if done >= job.jobs {
            let end = Instant::now();
            return Ok((
                (end - released).as_secs_f64(),
                (end - spawned).as_secs_f64(),
            ));
        }
        if released.elapsed() > job.limit {
            bail!(
                "sidekiq finished {done} of {} jobs in {:?}; see {}/sidekiq-*.log",
                job.jobs,
                job.limit,
                tmp.display()
            );
        }
        if workers
            .iter_mut()
            .all(|w| matches!(w.try_wait(), Ok(Some(_))))
        {
            bail!(
                "every sidekiq process exited; see {}/sidekiq-*.log",
                tmp.display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits (30 s at most) until every Sidekiq process has registered itself
/// (its first heartbeat adds it to the `processes` set), then moves the
/// staged jobs to queue:default in one RENAME, and returns when it did.
fn release_when_ready(
    redis: &mut Redis,
    workers: &mut [Child],
    tmp: &Path,
) -> anyhow::Result<Instant> {
    let started = Instant::now();
    while (redis.int(&["SCARD", "processes"])? as usize) < workers.len() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "sidekiq processes did not all start within 30 s; see {}/sidekiq-*.log",
                tmp.display()
            );
        }
        if workers
            .iter_mut()
            .any(|w| matches!(w.try_wait(), Ok(Some(_))))
        {
            bail!(
                "a sidekiq process exited while starting; see {}/sidekiq-*.log",
                tmp.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match redis.command(&["RENAME", STAGING, QUEUE])? {
        crate::resp::Reply::Status(_) => Ok(Instant::now()),
        other => bail!("RENAME {STAGING} {QUEUE}: {other:?}"),
    }
}

fn stop_all(workers: &mut [Child]) {
    for w in workers.iter_mut() {
        let _ = w.kill();
    }
    for w in workers.iter_mut() {
        let _ = w.wait();
    }
}

/// (LPUSH/s, RPOP/s) from `redis-benchmark --csv`.
fn redis_benchmark(server: &RedisServer, requests: u64) -> anyhow::Result<(f64, f64)> {
    let output = Command::new("timeout")
        .args(["120", "redis-benchmark", "-h", "127.0.0.1"])
        .args(["-p", &server.port.to_string(), "-t", "lpush,rpop"])
        .args(["-n", &requests.to_string(), "-q", "--csv"])
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = |test: &str| {
        text.lines()
            .map(|l| {
                l.split(',')
                    .map(|c| c.trim_matches('"'))
                    .collect::<Vec<_>>()
            })
            .find(|cols| cols.first() == Some(&test))
            .and_then(|cols| cols.get(1)?.parse::<f64>().ok())
            .with_context(|| format!("no {test} line in redis-benchmark output {text:?}"))
    };
    Ok((rate("LPUSH")?, rate("RPOP")?))
}

pub fn version() -> String {
    Command::new("ruby")
        .args(["-e", "require 'sidekiq'; print Sidekiq::VERSION"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
