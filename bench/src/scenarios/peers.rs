//! `peers`: Sidekiq (Debian `ruby-sidekiq`) on Redis 7 (Debian
//! `redis-server`) running the same no-op burn-down as `jobs`: push N jobs
//! with `Sidekiq::Client.push_bulk` (bench/peers/push.rb), then drain them
//! with one Sidekiq process per core (bench/peers/worker.rb), timing the
//! drain from the moment the jobs are released to the ready processes to an
//! empty queue. Redis runs twice, with
//! persistence off and with `appendonly yes` + `appendfsync always`, each
//! time started here on a free 127.0.0.1 port in a temp dir and shut down
//! after. `redis-benchmark -t lpush,rpop` on the same server gives the
//! single-thread ceiling. Booster's burn-down from the same run is printed
//! beside each as a ratio.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use crate::report::Measurement;
use crate::resp::Redis;
use crate::scenarios::Ctx;

const QUEUE: &str = "queue:default";
/// push.rb fills this queue, which no Sidekiq process reads (see drain).
const STAGING: &str = "queue:staging";

#[derive(Clone, Copy)]
enum Persistence {
    Off,
    AofAlways,
}

impl Persistence {
    fn name(self) -> &'static str {
        match self {
            Persistence::Off => "redis_no_persistence",
            Persistence::AofAlways => "redis_aof_always",
        }
    }
    fn durability(self) -> &'static str {
        match self {
            Persistence::Off => "none (redis persistence off)",
            Persistence::AofAlways => "redis appendfsync always",
        }
    }
    fn args(self) -> &'static [&'static str] {
        match self {
            Persistence::Off => &["--save", "", "--appendonly", "no"],
            Persistence::AofAlways => &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        }
    }
}

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    for tool in ["redis-server", "redis-benchmark", "sidekiq", "ruby"] {
        if which(tool).is_none() {
            bail!("{tool} not found: install the Debian packages with `apt-get install redis-server redis-tools ruby-sidekiq`");
        }
    }
    let n = ctx
        .jobs
        .map_or(if ctx.quick { 20_000 } else { 100_000 }, |j| {
            j.min(1_000_000)
        });
    let booster = booster_burn_down(ctx)
        .map_err(|e| eprintln!("peers: no Booster figure, so no ratio: {e:#}"))
        .ok();
    let mut out = Vec::new();
    if let Some(b) = booster {
        out.push(
            Measurement::new("peers", "booster_burn_down", b, "jobs/s")
                .durability(crate::booster::DURABILITY)
                .params(json!({ "workers": ctx.workers })),
        );
    }
    for mode in [Persistence::Off, Persistence::AofAlways] {
        // Every Redis write waits for an fsync under appendfsync always (about
        // 1K jobs/s here): a quarter of the jobs keeps that run short.
        let jobs = match mode {
            Persistence::Off => n,
            Persistence::AofAlways => (n / 4).max(1_000),
        };
        out.extend(one_mode(ctx, mode, jobs, booster)?);
    }
    Ok(out)
}

/// Booster's `jobs` burn-down, in a child process like every scenario.
fn booster_burn_down(ctx: &Ctx) -> anyhow::Result<f64> {
    let mut jobs_ctx = ctx.clone();
    jobs_ctx.lean = true;
    let results = crate::child::run_scenario(&jobs_ctx, "jobs")?;
    results
        .iter()
        .find(|m| m.metric == "burn_down")
        .map(|m| m.value)
        .context("the jobs scenario gave no burn_down figure")
}

fn one_mode(
    ctx: &Ctx,
    mode: Persistence,
    n: u64,
    booster: Option<f64>,
) -> anyhow::Result<Vec<Measurement>> {
    let tmp = tempfile::tempdir_in(prepare(&ctx.dir)?)?;
    let server = RedisServer::start(tmp.path(), mode)?;
    let result = (|| {
        let push_s = push(&server, tmp.path(), n)?;
        let drain = drain(ctx, &server, tmp.path(), n)?;
        let (lpush, rpop) = redis_benchmark(&server, bench_requests(ctx))?;
        Ok::<_, anyhow::Error>((push_s, drain, lpush, rpop))
    })();
    server.stop();
    let (push_s, drain, lpush, rpop) = result?;
    let params = json!({
        "jobs": n, "sidekiq_processes": ctx.sidekiq_processes,
        "sidekiq_concurrency": ctx.sidekiq_concurrency, "push_batch": 10_000,
        "sidekiq": sidekiq_version(), "redis": redis_version(),
        "redis_benchmark": format!("-t lpush,rpop -n {} (50 clients, no pipelining)", bench_requests(ctx)),
    });
    let name = mode.name();
    let m = |metric: String, v: f64, unit: &str| {
        Measurement::new("peers", &metric, v, unit)
            .durability(mode.durability())
            .params(params.clone())
    };
    let sidekiq = n as f64 / drain.drain_s;
    let mut out = vec![
        m(format!("sidekiq_{name}_push"), n as f64 / push_s, "jobs/s"),
        m(format!("sidekiq_{name}_burn_down"), sidekiq, "jobs/s"),
        m(
            format!("sidekiq_{name}_burn_down_with_boot"),
            n as f64 / drain.with_boot_s,
            "jobs/s",
        ),
        m(format!("redis_benchmark_{name}_lpush"), lpush, "requests/s"),
        m(format!("redis_benchmark_{name}_rpop"), rpop, "requests/s"),
    ];
    if let Some(b) = booster {
        out.push(m(format!("booster_vs_sidekiq_{name}"), b / sidekiq, "x"));
    }
    Ok(out)
}

fn prepare(dir: &Path) -> anyhow::Result<&Path> {
    std::fs::create_dir_all(dir)?;
    Ok(dir)
}

struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(dir: &Path, mode: Persistence) -> anyhow::Result<RedisServer> {
        let port = free_loopback_port()?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
            ])
            .args(["--daemonize", "no", "--dir"])
            .arg(dir)
            .args(["--logfile"])
            .arg(dir.join("redis.log"))
            .args(mode.args())
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let mut server = RedisServer { child, port };
        let started = Instant::now();
        loop {
            if let Ok(mut r) = Redis::connect(port) {
                if r.command(&["PING"]).is_ok() {
                    return Ok(server);
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = server.child.kill();
                bail!(
                    "redis-server did not answer on 127.0.0.1:{port} within 10 s; see {}",
                    dir.join("redis.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn stop(mut self) {
        if let Ok(mut r) = Redis::connect(self.port) {
            let _ = r.command(&["SHUTDOWN", "NOSAVE"]);
        }
        if !wait_bounded(&mut self.child, Duration::from_secs(10)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// true if it exited within `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

fn push(server: &RedisServer, tmp: &Path, n: u64) -> anyhow::Result<f64> {
    let log = std::fs::File::create(tmp.join("push.log"))?;
    let mut child = Command::new("ruby")
        .arg(peers_dir().join("push.rb"))
        .arg(n.to_string())
        .env("REDIS_URL", server.url())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting ruby push.rb")?;
    if !wait_bounded(&mut child, Duration::from_secs(600)) {
        let _ = child.kill();
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
        queued as u64 == n,
        "push.rb queued {queued} jobs, expected {n}"
    );
    Ok(seconds)
}

struct Drain {
    /// Jobs released to the ready processes (RENAME) to empty queue.
    drain_s: f64,
    /// Sidekiq processes started to empty queue.
    with_boot_s: f64,
}

fn drain(ctx: &Ctx, server: &RedisServer, tmp: &Path, n: u64) -> anyhow::Result<Drain> {
    let mut redis = Redis::connect(server.port)?;
    let spawned = Instant::now();
    let mut workers = Vec::new();
    for i in 0..ctx.sidekiq_processes.max(1) {
        let log = std::fs::File::create(tmp.join(format!("sidekiq-{i}.log")))?;
        let child = Command::new("sidekiq")
            .arg("-r")
            .arg(peers_dir().join("worker.rb"))
            .args(["-c", &ctx.sidekiq_concurrency.to_string(), "-q", "default"])
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
    let limit = Duration::from_secs(if ctx.quick { 120 } else { 600 });
    let released = match release_when_ready(&mut redis, &mut workers, tmp) {
        Ok(at) => at,
        Err(e) => {
            stop_all(&mut workers);
            return Err(e);
        }
    };
    let result = loop {
        let left = redis.int(&["LLEN", QUEUE])? as u64;
        if left == 0 {
            let end = Instant::now();
            break Ok(Drain {
                drain_s: (end - released).as_secs_f64(),
                with_boot_s: (end - spawned).as_secs_f64(),
            });
        }
        if spawned.elapsed() > limit {
            break Err(anyhow::anyhow!(
                "sidekiq left {left} of {n} jobs after {limit:?}; see {}/sidekiq-*.log",
                tmp.display()
            ));
        }
        if workers
            .iter_mut()
            .all(|w| matches!(w.try_wait(), Ok(Some(_))))
        {
            break Err(anyhow::anyhow!(
                "every sidekiq process exited; see {}/sidekiq-*.log",
                tmp.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Let the last in-flight jobs finish before counting failures.
    std::thread::sleep(Duration::from_millis(200));
    let failed = redis.int(&["ZCARD", "retry"])? + redis.int(&["ZCARD", "dead"])?;
    stop_all(&mut workers);
    let drain = result?;
    anyhow::ensure!(
        failed == 0,
        "{failed} sidekiq jobs failed; see {}/sidekiq-*.log",
        tmp.display()
    );
    Ok(drain)
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
        .args([
            "120",
            "redis-benchmark",
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
        ])
        .args([
            "-t",
            "lpush,rpop",
            "-n",
            &requests.to_string(),
            "-q",
            "--csv",
        ])
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

fn bench_requests(ctx: &Ctx) -> u64 {
    if ctx.quick {
        50_000
    } else {
        200_000
    }
}

fn sidekiq_version() -> String {
    Command::new("ruby")
        .args(["-e", "require 'sidekiq'; print Sidekiq::VERSION"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}
