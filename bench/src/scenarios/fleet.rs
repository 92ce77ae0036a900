//! `fleet` (issue 13): remote workers against the node's own, on loopback,
//! with real processes of the `booster` binary built beside the harness.
//!
//! - **Copy.** One `copy` job of N records (2M; 200K with `--quick`), key
//!   on, slices of `--slice-size`. Local: `booster serve --workers W`, the
//!   kind held (`kind limit copy 0`) during the upload, then released and
//!   timed to the job's completion. Remote: `booster serve --workers 0`,
//!   then 1, 2 and 4 `booster --server URL work --workers W --until-idle`
//!   processes started and timed the same way (their start and `Hello` are
//!   counted). Local and the three remote runs alternate, `--repetitions`
//!   rounds; each `remote_vs_local` is taken round by round against that
//!   round's local run (issue 13: at least 0.7): `remote_vs_local` for one
//!   process, `remote_vs_local_processes_P` for P of them.
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
    for rep in 1..=ctx.repetitions {
        eprintln!(
            "booster-bench: fleet copy, local and remote (1, 2, 4 processes), repetition {rep} of {}",
            ctx.repetitions
        );
        let dir = scratch.path().join(format!("local-{rep}"));
        local.push(copy_local(&exe, &key, &dir, &input, n, ctx)?);
        for (rates, processes) in remote.iter_mut().zip(COPY_PROCESSES) {
            let dir = scratch.path().join(format!("remote-{processes}-{rep}"));
            rates.push(copy_remote(&exe, &key, &dir, &input, n, processes, ctx)?);
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
    for (rates, processes) in remote.iter().zip(COPY_PROCESSES) {
        let suffix = match processes {
            1 => String::new(),
            p => format!("_processes_{p}"),
        };
        let mut p = params.clone();
        p["processes"] = json!(processes);
        out.push(m(&format!("remote_copy_records_per_s{suffix}"), rates, &p));
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

/// Records/s of `processes` remote worker processes of `ctx.workers`
/// threads each.
fn copy_remote(
    exe: &Path,
    key: &Path,
    dir: &Path,
    input: &Path,
    n: u64,
    processes: usize,
    ctx: &Ctx,
) -> anyhow::Result<f64> {
    let node = Node::start(exe, key, dir, &["--workers", "0"])?;
    let job = node.submit_copy(input, ctx.slice_size)?;
    let started = Instant::now();
    let threads = ctx.workers.to_string();
    let workers = (0..processes)
        .map(|_| node.worker(&["--workers", &threads]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    node.wait_completed(job, n)?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for w in workers {
        finish(w)?;
    }
    Ok(rate)
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
    let workers = (0..processes)
        .map(|_| node.worker(&["--workers", &threads, "--exec-allow", WAITING_CMD]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    node.wait_completed(job, n)?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for w in workers {
        finish(w)?;
    }
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

    /// A `work --until-idle` process joined to this node. It holds no
    /// key: the node decrypts and encrypts.
    fn worker(&self, args: &[&str]) -> anyhow::Result<Child> {
        self.command(&[&["work", "--until-idle"], args].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting booster work")
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

/// Waits for a `work --until-idle` process to exit 0.
fn finish(mut worker: Child) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = worker.try_wait()? {
            ensure!(status.success(), "booster work exited {status}");
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = worker.kill();
            bail!("booster work --until-idle did not exit 2 minutes after its job ended");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
