//! `fault-worker`: the Booster runtime embedded with test handlers, for the
//! fault tests that the `booster` command cannot express (simple jobs, a
//! short lease timeout, handlers that hang, panic or exit the process).
//!
//! ```text
//! fault-worker DATA enqueue FROM TO ACKED     simple "append" jobs n = FROM..TO; after each
//!                                             acknowledged submit, appends "n id" lines to ACKED
//! fault-worker DATA submit KIND INPUT SLICE [collect]   a sliced job of INPUT's lines; prints the id
//! fault-worker DATA work LOG [LEASE_MS]       runs until idle; handlers append what they run to LOG;
//!                                             prints {"lease_expiries": n} at the end
//! fault-worker DATA work-compacting LOG     as work, compacting in the background at any dead
//!                                            bytes past half the store; prints how many ran
//! fault-worker DATA jobs                      every job's status, as a JSON array
//! fault-worker DATA download JOB MAIN ERRORS  the job's output and errors, one record a line
//! fault-worker DATA cron CLOCK [settle]       runs a per-second cron entry (added if there is
//!                                             none) of `tick` jobs on a clock read from the file
//!                                             CLOCK (ms since the epoch); runs until killed, or
//!                                             with `settle` until every due run has completed
//! ```
//!
//! Kinds: `append` (simple: logs "n" and returns it), `echo` (sliced: copies),
//! `hang-once` (a record containing HANG sleeps 3 s, without heartbeats, the
//! first time it runs), `hang-always` (a record containing HANG sleeps for
//! an hour every time, without heartbeats), `panic-on` (a record containing PANIC panics),
//! `exit-once` (a record containing EXIT exits the process with code 17 the
//! first time it runs).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use booster_runtime::{
    Category, Clock, CronSpec, HandlerError, JobContext, JobFilter, JobSpec, RecordHandler,
    Runtime, RuntimeOptions, SimpleHandler,
};

/// Appends one line to a file with a single write (O_APPEND), so a line
/// is either whole or absent after a SIGKILL.
fn append_line(path: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(format!("{line}\n").as_bytes())
        .expect("append to log");
}

/// Creates `path` if absent; true if this call created it.
fn first_time(path: &Path) -> bool {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .is_ok()
}

struct Append {
    log: PathBuf,
}

impl SimpleHandler for Append {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        let n = args["n"].as_u64().ok_or("args.n is missing")?;
        append_line(&self.log, &n.to_string());
        Ok(Some(serde_json::json!(n)))
    }
}

#[derive(Clone, Copy)]
enum Behaviour {
    Echo,
    HangOnce,
    HangAlways,
    PanicOn,
    ExitOnce,
}

struct Sliced {
    behaviour: Behaviour,
    log: PathBuf,
    marker_dir: PathBuf,
}

impl RecordHandler for Sliced {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        let text = String::from_utf8_lossy(record).into_owned();
        match self.behaviour {
            Behaviour::HangOnce if text.contains("HANG") => {
                append_line(&self.log, &format!("run {text}"));
                if first_time(&self.marker_dir.join("hang.started")) {
                    // No heartbeat: the lease expires and another worker takes the slice.
                    std::thread::sleep(Duration::from_secs(3));
                    append_line(&self.log, &format!("woke {text}"));
                }
            }
            Behaviour::HangAlways if text.contains("HANG") => {
                append_line(&self.log, &format!("run {text}"));
                // The process exits long before this returns.
                std::thread::sleep(Duration::from_secs(3600));
            }
            Behaviour::PanicOn if text.contains("PANIC") => panic!("handler panic on {text}"),
            Behaviour::ExitOnce
                if text.contains("EXIT") && first_time(&self.marker_dir.join("exit.done")) =>
            {
                std::process::exit(17);
            }
            _ => {}
        }
        out.push(record.to_vec());
        Ok(())
    }
}

fn options(data: &Path, lease_ms: Option<u64>, workers: bool) -> RuntimeOptions {
    let mut opts = RuntimeOptions::new(data);
    opts.workers = 2;
    opts.start_workers = workers;
    if let Some(ms) = lease_ms {
        opts.lease_timeout = Duration::from_millis(ms);
    }
    opts
}

fn register(rt: &Runtime, log: &Path, marker_dir: &Path) {
    rt.register_simple("append", Arc::new(Append { log: log.into() }));
    for (kind, behaviour) in [
        ("echo", Behaviour::Echo),
        ("hang-once", Behaviour::HangOnce),
        ("hang-always", Behaviour::HangAlways),
        ("panic-on", Behaviour::PanicOn),
        ("exit-once", Behaviour::ExitOnce),
    ] {
        rt.register_sliced(
            kind,
            Arc::new(Sliced {
                behaviour,
                log: log.into(),
                marker_dir: marker_dir.into(),
            }),
        );
    }
}

async fn enqueue(data: &Path, from: u64, to: u64, acked: &Path) -> anyhow::Result<()> {
    let rt = Runtime::open(options(data, None, false)).await?;
    let mut n = from;
    while n < to {
        // Alternate single submits and small groups (one group commit each).
        let group = if n.is_multiple_of(2) { 1 } else { 5 };
        let ns: Vec<u64> = (n..(n + group).min(to)).collect();
        let specs = ns
            .iter()
            .map(|n| JobSpec::simple("append", serde_json::json!({ "n": n })))
            .collect();
        let ids = rt.submit_many(specs).await?;
        for (n, id) in ns.iter().zip(ids) {
            append_line(acked, &format!("{n} {id}"));
        }
        n += ns.len() as u64;
    }
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

async fn submit(
    data: &Path,
    kind: &str,
    input: &Path,
    slice: usize,
    collect: bool,
) -> anyhow::Result<()> {
    let rt = Runtime::open(options(data, None, false)).await?;
    let spec = JobSpec::sliced(kind)
        .with_slice_size(slice)
        .with_collect_errors(collect);
    let id = rt.submit(spec).await?;
    let mut up = rt.upload(id).await?;
    let text = std::fs::read_to_string(input).context("reading input")?;
    for line in text.lines() {
        up.push(line.as_bytes().to_vec()).await?;
    }
    up.finish().await?;
    println!("{id}");
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

async fn work(data: &Path, log: &Path, lease_ms: Option<u64>) -> anyhow::Result<()> {
    let marker_dir = data.parent().context("data has a parent")?.to_path_buf();
    let rt = Runtime::open(options(data, lease_ms, true)).await?;
    register(&rt, log, &marker_dir);
    rt.wait_idle().await;
    // A hung handler may still be asleep: let it wake and try its late commit.
    if marker_dir.join("hang.started").exists() {
        for _ in 0..100 {
            let logged = std::fs::read_to_string(log).unwrap_or_default();
            if logged.contains("woke") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        rt.wait_idle().await;
    }
    let m = rt.metrics();
    println!(
        "{}",
        serde_json::json!({ "lease_expiries": m.lease_expiries })
    );
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

/// `work` with background compaction at any dead bytes past half the
/// store, staying up to 3 s after idle so that the timer's checkpoints
/// and compactions run (and a kill may land in one); prints how many ran.
async fn work_compacting(data: &Path, log: &Path) -> anyhow::Result<()> {
    let marker_dir = data.parent().context("data has a parent")?.to_path_buf();
    let mut opts = options(data, None, true);
    opts.auto_compact_min_dead_bytes = 1;
    let rt = Runtime::open(opts).await?;
    register(&rt, log, &marker_dir);
    rt.wait_idle().await;
    for _ in 0..60 {
        if rt.metrics().auto_compactions > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = rt.metrics();
    println!(
        "{}",
        serde_json::json!({
            "auto_compactions": m.auto_compactions,
            "auto_compaction_failures": m.auto_compaction_failures,
        })
    );
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

async fn jobs(data: &Path) -> anyhow::Result<()> {
    let rt = Runtime::open(options(data, None, false)).await?;
    let all = rt.jobs(JobFilter::default()).await.unwrap();
    println!("{}", serde_json::to_string(&all)?);
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

async fn download(data: &Path, job: u64, main: &Path, errors: &Path) -> anyhow::Result<()> {
    let rt = Runtime::open(options(data, None, false)).await?;
    for (category, path) in [(Category::Main, main), (Category::Errors, errors)] {
        let mut out = Vec::new();
        for record in rt.download(job, category)? {
            out.extend_from_slice(&record?);
            out.push(b'\n');
        }
        std::fs::write(path, out)?;
    }
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

/// A clock the test sets: the milliseconds written in a file (replaced
/// whole by a rename, so a read never sees half a number).
#[derive(Debug)]
struct FileClock {
    path: PathBuf,
}

impl Clock for FileClock {
    fn now_us(&self) -> u64 {
        let text = std::fs::read_to_string(&self.path).expect("read the clock file");
        let ms: u64 = text
            .trim()
            .parse()
            .expect("the clock file holds milliseconds");
        ms * 1000
    }
}

/// Returns its arguments: a cron run that does nothing but complete.
struct Tick;

impl SimpleHandler for Tick {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        Ok(Some(args.clone()))
    }
}

async fn cron(data: &Path, clock: &Path, settle: bool) -> anyhow::Result<()> {
    let clock = Arc::new(FileClock { path: clock.into() });
    let mut opts = options(data, None, true);
    opts.clock = clock.clone();
    let rt = Runtime::open(opts).await?;
    rt.register_simple("tick", Arc::new(Tick));
    if rt.crons().is_empty() {
        let spec = CronSpec {
            expr: "* * * * * *".into(),
            tz: None,
            job: JobSpec::simple("tick", serde_json::json!(null)),
        };
        rt.add_cron(spec).await?;
    }
    // Settling is bounded: an entry that keeps finding a tick due (a run
    // made again and again for one tick) fails the test, never hangs it.
    let mut turns: u64 = 0;
    loop {
        let entry = rt.crons().pop().context("the cron entry")?;
        let due = entry.next_tick_ms.is_some_and(|t| t <= clock.now_ms());
        if settle && entry.running.is_none() && !due {
            break;
        }
        turns += 1;
        if settle && turns > 6_000 {
            bail!("the cron entry did not settle: {entry:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rt.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let num = |s: &str| -> anyhow::Result<u64> {
        s.parse().with_context(|| format!("{s:?} is not a number"))
    };
    match a.as_slice() {
        [data, "enqueue", from, to, acked] => {
            enqueue(Path::new(data), num(from)?, num(to)?, Path::new(acked)).await
        }
        [data, "submit", kind, input, slice, rest @ ..] => {
            let collect = rest.first() == Some(&"collect");
            submit(
                Path::new(data),
                kind,
                Path::new(input),
                num(slice)? as usize,
                collect,
            )
            .await
        }
        [data, "work", log] => work(Path::new(data), Path::new(log), None).await,
        [data, "work-compacting", log] => work_compacting(Path::new(data), Path::new(log)).await,
        [data, "work", log, lease_ms] => {
            work(Path::new(data), Path::new(log), Some(num(lease_ms)?)).await
        }
        [data, "jobs"] => jobs(Path::new(data)).await,
        [data, "cron", clock] => cron(Path::new(data), Path::new(clock), false).await,
        [data, "cron", clock, "settle"] => cron(Path::new(data), Path::new(clock), true).await,
        [data, "download", job, main, errors] => {
            download(
                Path::new(data),
                num(job)?,
                Path::new(main),
                Path::new(errors),
            )
            .await
        }
        _ => bail!("usage: see the doc comment of tests/src/bin/fault_worker.rs"),
    }
}
