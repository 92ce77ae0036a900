//! `fleet` (issue 13): remote workers against the node's own, on loopback,
//! with real processes of the `booster` binary built beside the harness.
//!
//! - **Copy.** One `copy` job of N records (2M; 200K with `--quick`), key
//!   on, slices of `--slice-size`. Local: `booster serve --workers W`, the
//!   kind held (`kind limit copy 0`) during the upload, then released and
//!   timed to the job's completion. Remote: `booster serve --workers 0`,
//!   then 1, 2 and 4 `booster --server URL work --workers W` processes
//!   started while the kind is held, as the node's own workers are: once
//!   every one of them has joined (listed with its W threads by `GET
//!   /api/workers`), the kind is released and the job timed to its
//!   completion the same way. How long the processes took from their spawn
//!   to joined is `remote_join_ms` (`_processes_P`), apart: a fleet pays it
//!   once per worker process, not once per job. Local and the three remote
//!   runs alternate, `--repetitions` rounds; each `remote_vs_local` is taken
//!   round by round against that round's local run (issue 13: at least
//!   0.7): `remote_vs_local` for one process, `remote_vs_local_processes_P`
//!   for P of them. Until session 17 the remote runs were timed from the
//!   processes' spawn, their start and `Hello` counted in the job's time.
//! - **Handlers that wait.** An `exec` job whose command sleeps 100 ms a
//!   slice (`sleep 0.1; cat`), slices of 50 records, worked by 1, 2 and 4
//!   remote worker processes of 2 threads each: records/s per process count,
//!   `waiting_2_vs_1` and `waiting_4_vs_2` (issue 13: at least 1.8 per
//!   doubling) and `waiting_4_vs_1` (where handlers wait, throughput follows
//!   the processes, not the node's cores).
//!
//! Every job ends checked: completed, records out = records in, none
//! failed. Leaves out TLS (loopback needs none) and a network between
//! hosts.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};

use crate::booster::DURABILITY;
use crate::compare;
use crate::records;
use crate::report::Measurement;
use crate::scenarios::Ctx;

/// exec's command in the waiting variant, allowed on the node and workers.
const WAITING_CMD: &str = "sleep 0.1; cat";
const WAITING_SLICE: usize = 50;
const WAITING_SLICES: u64 = 96;
const WAITING_THREADS: usize = 2;
const WAITING_PROCESSES: [usize; 3] = [1, 2, 4];
/// Remote worker processes on the copy job, each of `--workers` threads.
const COPY_PROCESSES: [usize; 3] = [1, 2, 4];
/// Bounds a hang (a job that never finishes); it measures nothing.
const JOB_LIMIT: Duration = Duration::from_secs(1800);

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let exe = booster_exe()?;
    std::fs::create_dir_all(&ctx.dir)?;
    let scratch = tempfile::tempdir_in(&ctx.dir)?;
    let key = scratch.path().join("master.key");
    ok(Command::new(&exe).arg("keygen").arg("--out").arg(&key))?;
    let n = ctx.records(2_000_000, 200_000);
    let input = scratch.path().join("copy.txt");
    write_records(&input, n)?;
    let record_bytes = std::fs::metadata(&input)?.len() as f64 / n as f64;

    let mut local = Vec::new();
    let mut remote = vec![Vec::new(); COPY_PROCESSES.len()];
    let mut joins = vec![Vec::new(); COPY_PROCESSES.len()];
    for rep in 1..=ctx.repetitions {
        eprintln!(
            "booster-bench: fleet copy, local and remote (1, 2, 4 processes), repetition {rep} of {}",
            ctx.repetitions
        );
        let dir = scratch.path().join(format!("local-{rep}"));
        local.push(copy_local(&exe, &key, &dir, &input, n, ctx)?);
        for ((rates, joined), processes) in remote.iter_mut().zip(&mut joins).zip(COPY_PROCESSES) {
            let dir = scratch.path().join(format!("remote-{processes}-{rep}"));
            let run = copy_remote(&exe, &key, &dir, &input, n, processes, ctx)?;
            rates.push(run.records_per_s);
            joined.push(run.join_ms);
        }
    }
    let params = json!({
        "records": n, "slice_size": ctx.slice_size, "workers": ctx.workers,
        "codec": "zstd+aes", "transport": "grpc over loopback, no tls",
    });
    let m = |metric: &str, values: &[f64], params: &Value| {
        Measurement::new("fleet", metric, compare::median(values), "records/s")
            .durability(DURABILITY)
            .record_size(record_bytes)
            .params(compare::with_spread(params, values))
    };
    let mut out = vec![m("local_copy_records_per_s", &local, &params)];
    for ((rates, joined), processes) in remote.iter().zip(&joins).zip(COPY_PROCESSES) {
        let suffix = match processes {
            1 => String::new(),
            p => format!("_processes_{p}"),
        };
        let mut p = params.clone();
        p["processes"] = json!(processes);
        p["timed"] = json!("from the kind's release, every worker process joined");
        out.push(m(&format!("remote_copy_records_per_s{suffix}"), rates, &p));
        out.push(
            Measurement::new(
                "fleet",
                &format!("remote_join_ms{suffix}"),
                compare::median(joined),
                "ms",
            )
            .params(compare::with_spread(
                &json!({"processes": processes, "workers": ctx.workers,
                        "timed": "from spawn until GET /api/workers lists every process with its threads"}),
                joined,
            )),
        );
        out.push(compare::ratio(
            "fleet",
            &format!("remote_vs_local{suffix}"),
            rates,
            &local,
            p,
        ));
    }

    let wait_input = scratch.path().join("waiting.txt");
    let wait_n = WAITING_SLICES * WAITING_SLICE as u64;
    write_records(&wait_input, wait_n)?;
    let mut by_processes = Vec::new();
    for processes in WAITING_PROCESSES {
        eprintln!("booster-bench: fleet, handlers that wait, {processes} worker process(es)");
        let dir = scratch.path().join(format!("waiting-{processes}"));
        let rate = waiting(&exe, &key, &dir, &wait_input, wait_n, processes)?;
        by_processes.push(rate);
        let p = json!({
            "records": wait_n, "slice_size": WAITING_SLICE, "command": WAITING_CMD,
            "processes": processes, "threads_per_process": WAITING_THREADS,
        });
        out.push(
            Measurement::new(
                "fleet",
                &format!("waiting_records_per_s_processes_{processes}"),
                rate,
                "records/s",
            )
            .durability(DURABILITY)
            .params(p),
        );
    }
    for (name, more, fewer) in [
        ("waiting_2_vs_1", 1, 0),
        ("waiting_4_vs_2", 2, 1),
        ("waiting_4_vs_1", 2, 0),
    ] {
        out.push(
            Measurement::new("fleet", name, by_processes[more] / by_processes[fewer], "x").params(
                json!({
                    "records": wait_n, "slice_size": WAITING_SLICE, "command": WAITING_CMD,
                    "threads_per_process": WAITING_THREADS,
                    "processes": [WAITING_PROCESSES[fewer], WAITING_PROCESSES[more]],
                }),
            ),
        );
    }
    Ok(out)
}

/// The `booster` binary of the same build, beside this harness.
fn booster_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("booster");
    ensure!(
        exe.exists(),
        "{} is missing: the fleet scenario runs real `booster` processes; build it with \
         `cargo build --release -p booster-tools` (the same profile as the harness)",
        exe.display()
    );
    Ok(exe)
}

fn write_records(path: &Path, n: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        f.write_all(&records::record(i))?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

/// Records/s of the node's own `ctx.workers` workers on the copy job.
fn copy_local(
    exe: &Path,
    key: &Path,
    dir: &Path,
    input: &Path,
    n: u64,
    ctx: &Ctx,
) -> anyhow::Result<f64> {
    let workers = ctx.workers.to_string();
    let node = Node::start(exe, key, dir, &["--workers", &workers])?;
    node.cli(&["kind", "limit", "copy", "0"])?;
    let job = node.submit_copy(input, ctx.slice_size)?;
    let started = Instant::now();
    node.cli(&["kind", "limit", "copy", "none"])?;
    node.wait_completed(job, n)?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// One remote copy run: the job's records/s from the kind's release, and
/// how long the worker processes took from spawn to joined.
struct RemoteRun {
    records_per_s: f64,
    join_ms: f64,
}

/// `processes` remote worker processes of `ctx.workers` threads each,
/// started while the kind is held and timed from its release once every
/// one has joined, as [`copy_local`] times the node's own workers.
fn copy_remote(
    exe: &Path,
    key: &Path,
    dir: &Path,
    input: &Path,
    n: u64,
    processes: usize,
    ctx: &Ctx,
) -> anyhow::Result<RemoteRun> {
    let node = Node::start(exe, key, dir, &["--workers", "0"])?;
    node.cli(&["kind", "limit", "copy", "0"])?;
    let job = node.submit_copy(input, ctx.slice_size)?;
    let spawned = Instant::now();
    let threads = ctx.workers.to_string();
    // Not `--until-idle`: a held kind leaves nothing leasable, which a
    // worker told to stop when idle takes for the end of the work.
    let workers = Workers::start(processes, || node.worker(&["--workers", &threads], false))?;
    node.wait_joined(&workers.0, ctx.workers)?;
    let join_ms = spawned.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    node.cli(&["kind", "limit", "copy", "none"])?;
    node.wait_completed(job, n)?;
    let records_per_s = n as f64 / started.elapsed().as_secs_f64();
    workers.stop()?;
    Ok(RemoteRun {
        records_per_s,
        join_ms,
    })
}

/// Records/s of `processes` remote workers on the exec job that sleeps.
fn waiting(
    exe: &Path,
    key: &Path,
    dir: &Path,
    input: &Path,
    n: u64,
    processes: usize,
) -> anyhow::Result<f64> {
    let node = Node::start(
        exe,
        key,
        dir,
        &["--workers", "0", "--exec-allow", WAITING_CMD],
    )?;
    let slice = WAITING_SLICE.to_string();
    let out = node.cli_json(&[
        "submit",
        "--kind",
        "exec",
        "--cmd",
        WAITING_CMD,
        "--slice-size",
        &slice,
        "--input",
        &input.display().to_string(),
    ])?;
    let job = out["id"].as_u64().context("submit printed no id")?;
    let started = Instant::now();
    let threads = WAITING_THREADS.to_string();
    let workers = Workers::start(processes, || {
        node.worker(&["--workers", &threads, "--exec-allow", WAITING_CMD], true)
    })?;
    node.wait_completed(job, n)?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    workers.finish()?;
    Ok(rate)
}

/// A `booster serve` on loopback, stopped (SIGTERM, then SIGKILL) on drop.
struct Node {
    exe: PathBuf,
    child: Child,
    url: String,
}

impl Node {
    fn start(exe: &Path, key: &Path, dir: &Path, extra: &[&str]) -> anyhow::Result<Node> {
        let mut child = Command::new(exe)
            .arg("--data")
            .arg(dir)
            .arg("--key-file")
            .arg(key)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting booster serve")?;
        let mut lines = BufReader::new(child.stderr.take().context("serve's stderr")?).lines();
        let mut seen = Vec::new();
        let url = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let url = line.find("http://").map(|at| {
                line[at..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string()
            });
            seen.push(line);
            url
        });
        // Keep reading, so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let Some(url) = url else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("booster serve printed no URL: {seen:?}");
        };
        Ok(Node {
            exe: exe.to_path_buf(),
            child,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(["--server", &self.url])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn cli(&self, args: &[&str]) -> anyhow::Result<()> {
        ok(self
            .command(&[&["-q"], args].concat())
            .stdout(Stdio::null()))
    }

    fn cli_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = self.command(&[&["--json"], args].concat()).output()?;
        ensure!(
            out.status.success(),
            "booster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn submit_copy(&self, input: &Path, slice_size: usize) -> anyhow::Result<u64> {
        let slice = slice_size.to_string();
        let out = self.cli_json(&[
            "submit",
            "--kind",
            "copy",
            "--slice-size",
            &slice,
            "--input",
            &input.display().to_string(),
        ])?;
        out["id"].as_u64().context("submit printed no id")
    }

    /// A `work` process joined to this node, with `--until-idle` when
    /// `until_idle`. It holds no key: the node decrypts and encrypts.
    fn worker(&self, args: &[&str], until_idle: bool) -> anyhow::Result<Child> {
        let work: &[&str] = if until_idle {
            &["work", "--until-idle"]
        } else {
            &["work"]
        };
        self.command(&[work, args].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting booster work")
    }

    /// Polls `GET /api/workers` (every 5 ms) until each of `workers` is
    /// listed as a process of this node with its `threads` threads; an
    /// error if one exits first or none is within a minute.
    fn wait_joined(&self, workers: &[Child], threads: usize) -> anyhow::Result<()> {
        let url = format!("{}/api/workers", self.url);
        let started = Instant::now();
        loop {
            let body = ureq::get(&url).call()?.into_body().read_to_string()?;
            let listed: Value = serde_json::from_str(&body)?;
            let joined = |pid: u32| {
                listed["processes"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        !p["worker"].is_null()
                            && p["pid"].as_u64() == Some(u64::from(pid))
                            && p["threads"].as_u64() == Some(threads as u64)
                    })
                })
            };
            if workers.iter().all(|w| joined(w.id())) {
                return Ok(());
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the worker processes did not all join within a minute: {listed}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls the job (HTTP, every 5 ms) until it is completed with every
    /// record out; an error if it ends otherwise.
    fn wait_completed(&self, job: u64, n: u64) -> anyhow::Result<()> {
        let url = format!("{}/api/jobs/{job}", self.url);
        let started = Instant::now();
        loop {
            let body = ureq::get(&url).call()?.into_body().read_to_string()?;
            let j: Value = serde_json::from_str(&body)?;
            match j["state"].as_str() {
                Some("completed") => {
                    ensure!(
                        j["records_in"].as_u64() == Some(n)
                            && j["records_out"].as_u64() == Some(n)
                            && j["records_failed"].as_u64().unwrap_or(0) == 0,
                        "job {job} completed with {} of {n} records in and {} out: records were lost or failed",
                        j["records_in"],
                        j["records_out"]
                    );
                    return Ok(());
                }
                Some("failed" | "aborted") => bail!("job {job} ended {}: {j}", j["state"]),
                _ => {}
            }
            ensure!(
                started.elapsed() < JOB_LIMIT,
                "job {job} did not finish in {JOB_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let stopping = Instant::now();
        while stopping.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The `work` processes of one run, killed (SIGKILL) if the run ends
/// early with an error, so none outlives the harness.
struct Workers(Vec<Child>);

impl Workers {
    fn start(
        processes: usize,
        mut spawn: impl FnMut() -> anyhow::Result<Child>,
    ) -> anyhow::Result<Workers> {
        let mut workers = Workers(Vec::with_capacity(processes));
        for _ in 0..processes {
            workers.0.push(spawn()?);
        }
        Ok(workers)
    }

    /// Stops each process (SIGTERM, as an operator's stop) and waits for
    /// it to exit 0.
    fn stop(mut self) -> anyhow::Result<()> {
        for worker in &self.0 {
            let pid = i32::try_from(worker.id())?;
            // SAFETY: `kill` takes any pid and signal; `pid` is our own
            // child, not yet waited for, so the id is still its own.
            let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
            ensure!(
                sent == 0,
                "SIGTERM to booster work {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
        self.wait_all()
    }

    /// Waits for each `work --until-idle` process to exit 0 once its node
    /// is idle.
    fn finish(mut self) -> anyhow::Result<()> {
        self.wait_all()
    }

    fn wait_all(&mut self) -> anyhow::Result<()> {
        while let Some(mut worker) = self.0.pop() {
            let started = Instant::now();
            loop {
                if let Some(status) = worker.try_wait()? {
                    ensure!(status.success(), "booster work exited {status}");
                    break;
                }
                if started.elapsed() > Duration::from_secs(120) {
                    let _ = worker.kill();
                    let _ = worker.wait();
                    bail!("booster work did not exit 2 minutes after its job ended");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}
