//! `booster demo`: the tour. Generates 1M customer records (gzip CSV, some
//! deliberately bad), uploads them into an encrypted, compressed sliced job
//! at priority 50, processes it on every core with live progress, cuts in
//! with a priority-1 job once a quarter is uploaded (the rest of the upload
//! waits until it is queued) and checks that it takes the next lease
//! (`priority.rs`), downloads output and errors, then reconciles every
//! count and checks that no record text sits in clear under the data
//! directory.

mod checks;
mod generate;
pub mod priority;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_runtime::{JobId, JobStatus, MasterKey, Runtime, RuntimeOptions};
use indicatif::MultiProgress;

pub use generate::{generate, Generated, HEADER};

use crate::cli::{DemoArgs, JobInputArgs};
use crate::commands::{
    create_job, download_job, upload_input, with_runtime, write_key, Ctx, Destinations,
};
use crate::exit;
use crate::formats::{Format, Item, RecordSource};
use crate::kinds;
use crate::progress::{Mode, Progress, Unit};
use crate::report::{self, bytes, count};

const BIG_PRIORITY: u8 = 50;
const URGENT_PRIORITY: u8 = 1;
const URGENT_RECORDS: u64 = 2000;
const URGENT_SLICE_RECORDS: u64 = 1000;

pub async fn demo(ctx: &Ctx, args: DemoArgs) -> anyhow::Result<i32> {
    let (dir, temp) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            (dir.clone(), None)
        }
        None => {
            let temp = tempfile::Builder::new().prefix("booster-demo-").tempdir()?;
            (temp.path().to_path_buf(), (!args.keep).then_some(temp))
        }
    };
    let kept = if temp.is_some() {
        "removed at exit; pass --keep to keep it"
    } else {
        "kept"
    };
    ctx.say(format!("booster demo in {} ({kept})", dir.display()));
    let started = Instant::now();

    let input = dir.join("customers.csv.gz");
    let urgent_input = dir.join("urgent.csv");
    let records = args.records;
    let (gen, input_for_gen, urgent_for_gen) = (records, input.clone(), urgent_input.clone());
    let generated = tokio::task::spawn_blocking(move || {
        generate::generate(&urgent_for_gen, URGENT_RECORDS, 99, false)?;
        generate::generate(&input_for_gen, gen, 42, true)
    })
    .await??;
    ctx.say(format!(
        "1. generated {} ({} CSV, {} gzip) in {}, with {}",
        report::plural(generated.records, "customer record"),
        bytes(generated.raw_bytes),
        bytes(std::fs::metadata(&input)?.len()),
        report::duration(started.elapsed()),
        generated.planted_text()
    ));

    let key_path = dir.join("demo.key");
    let key = MasterKey::generate();
    write_key(&key_path, &key)?;
    ctx.say(format!(
        "2. created a 256-bit key at {} (mode 0600); the store encrypts every slice with it",
        key_path.display()
    ));

    let data_dir = dir.join("data");
    let mut opts = RuntimeOptions::new(&data_dir);
    if let Some(workers) = args.workers {
        opts.workers = workers;
    }
    let workers = opts.workers;
    opts.master_key = Some(key);
    let runtime = Runtime::open(opts).await?;
    kinds::register_builtin(&runtime);
    let gate = Arc::new(priority::Gate::default());
    runtime.register_sliced(
        kinds::VALIDATE_CUSTOMERS,
        Arc::new(priority::Gated {
            inner: Arc::new(kinds::ValidateCustomers),
            gate: gate.clone(),
        }),
    );
    let paths = Paths {
        dir: dir.clone(),
        input,
        urgent_input,
        data_dir,
        key_path,
    };
    let outcome = with_runtime(
        runtime.clone(),
        tour(ctx, &runtime, &paths, &generated, workers, gate),
    )
    .await?;
    let code = checks::report(ctx, &paths, &generated, &outcome, started.elapsed())?;
    if temp.is_none() {
        ctx.say(format!(
            "   look around: booster --data {} --key-file {} jobs",
            paths.data_dir.display(),
            paths.key_path.display()
        ));
    }
    drop(temp);
    Ok(code)
}

pub struct Paths {
    pub dir: PathBuf,
    pub input: PathBuf,
    pub urgent_input: PathBuf,
    pub data_dir: PathBuf,
    pub key_path: PathBuf,
}

/// What the tour saw, for the summary.
pub struct Outcome {
    pub big: JobStatus,
    pub urgent: JobStatus,
    pub workers: usize,
    pub upload_time: Duration,
    pub process_time: Duration,
    pub download_time: Duration,
    pub slice_records: u64,
    pub priority: priority::Verdict,
    pub urgent_time: Duration,
    pub output_records: u64,
    pub error_records: u64,
    pub output_path: PathBuf,
    pub errors_path: PathBuf,
    pub store: booster_runtime::StoreStats,
}

fn job_args(input: &Path, priority: u8, slice_records: u64, description: &str) -> JobInputArgs {
    JobInputArgs {
        kind: kinds::VALIDATE_CUSTOMERS.into(),
        input: Some(input.to_path_buf()),
        args: None,
        after: Vec::new(),
        on_dependency_failure: Default::default(),
        window: None,
        destroy_on_complete: false,
        format: Some(Format::Csv),
        slice_size: Some(slice_records),
        priority,
        collect_errors: true,
        cmd: None,
        exec_one_to_one: false,
        description: Some(description.into()),
        max_workers: None,
        max_record_bytes: crate::formats::DEFAULT_MAX_RECORD_BYTES,
        categories: Vec::new(),
        singleton: None,
        tabular: Default::default(),
    }
}

async fn tour(
    ctx: &Ctx,
    runtime: &Runtime,
    paths: &Paths,
    generated: &Generated,
    workers: usize,
    gate: Arc<priority::Gate>,
) -> anyhow::Result<Outcome> {
    // However the tour ends, no worker is left waiting at the gate.
    let _open = priority::OpenOnDrop(gate.clone());
    let plan = priority::plan(generated.records, workers);
    let mode = Mode::pick(ctx.json, ctx.quiet, true);
    let multi = MultiProgress::new();
    let big_args = job_args(
        &paths.input,
        BIG_PRIORITY,
        plan.slice_records,
        "demo: validate customers",
    );
    let (big_id, mut big_input) = create_job(runtime, &big_args).await?;
    gate.hold(big_id);
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    big_input.records = Box::new(HoldAt {
        inner: big_input.records,
        left: plan.hold_records,
        reached: Some(reached_tx),
        release: release_rx,
    });
    ctx.say(format!(
        "3. job {big_id}: validate-customers at priority {BIG_PRIORITY}, slices of {}, on {}",
        count(plan.slice_records),
        report::plural(workers as u64, "worker")
    ));
    let upload_bar = Progress::new(mode, Some(&multi), "upload", Unit::Bytes);
    let process_bar = Progress::new(mode, Some(&multi), "process", Unit::Records);
    process_bar.set_length(generated.records);
    let started = Instant::now();
    let upload = {
        let (runtime, interrupt) = (runtime.clone(), ctx.interrupt.clone());
        tokio::spawn(async move {
            let status = upload_input(&runtime, big_id, big_input, &interrupt, &upload_bar).await;
            upload_bar.finish("uploaded");
            status.map(|s| (s, started.elapsed()))
        })
    };
    // A failed upload drops the gate's sender: the tour goes on and reports it.
    tokio::select! {
        _ = reached_rx => {}
        _ = ctx.interrupt.wait() => return Err(anyhow::Error::new(exit::Interrupted)),
    }
    let mut witness = priority::wait_busy(
        runtime,
        big_id,
        &gate,
        plan.slices_before_hold(),
        workers,
        &ctx.interrupt,
        || upload.is_finished(),
    )
    .await?;

    let urgent_started = Instant::now();
    let urgent_args = job_args(
        &paths.urgent_input,
        URGENT_PRIORITY,
        URGENT_SLICE_RECORDS,
        "demo: urgent customers",
    );
    let urgent = submit_urgent(ctx, runtime, &urgent_args, release_tx).await?;
    priority::watch_next_lease(runtime, urgent, &gate, &mut witness, &ctx.interrupt).await?;
    gate.open();
    let verdict = priority::judge(&witness);

    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let big = loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.interrupt.wait() => return Err(anyhow::Error::new(exit::Interrupted)),
        }
        let job = runtime.job(big_id).await?;
        process_bar.set_position(job.records_processed + job.records_failed);
        if job.state.is_finished() && upload.is_finished() {
            break job;
        }
    };
    process_bar.finish(big.state.as_str());
    let process_time = started.elapsed();
    let (_, upload_time) = upload.await??;
    let urgent_status = runtime.wait(urgent).await?;
    let urgent_time = match (urgent_status.completed_at, urgent_status.created_at) {
        (Some(done), created) => done.duration_since(created).unwrap_or_default(),
        (None, _) => urgent_started.elapsed(),
    };
    ctx.say(format!(
        "4. urgent job {urgent} (priority {URGENT_PRIORITY}, {} records) submitted with {:.0}% of the big job uploaded: {}; done in {}",
        count(URGENT_RECORDS),
        100.0 * plan.hold_records as f64 / generated.records.max(1) as f64,
        verdict.detail(),
        report::duration(urgent_time)
    ));

    let download_started = Instant::now();
    let output_path = paths.dir.join("customers-clean.csv.zst");
    let errors_path = paths.dir.join("customers-errors.jsonl");
    let to = Destinations::files(Some(&output_path), Some(&errors_path));
    let counts = download_job(runtime, &big, &to, false, None).await?;
    Ok(Outcome {
        big,
        urgent: urgent_status,
        workers,
        upload_time,
        process_time,
        download_time: download_started.elapsed(),
        slice_records: plan.slice_records,
        priority: verdict,
        urgent_time,
        output_records: counts.main.unwrap_or(0),
        error_records: counts.errors.unwrap_or(0),
        output_path,
        errors_path,
        store: runtime.store_stats()?,
    })
}

/// Submits and uploads the urgent job, then lets the big upload go on
/// (`release`, also when the urgent upload failed).
async fn submit_urgent(
    ctx: &Ctx,
    runtime: &Runtime,
    args: &JobInputArgs,
    release: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<JobId> {
    let created = create_job(runtime, args).await;
    let uploaded = match created {
        Ok((id, input)) => {
            let quiet = Progress::new(Mode::Off, None, "urgent", Unit::Bytes);
            upload_input(runtime, id, input, &ctx.interrupt, &quiet)
                .await
                .map(|_| id)
        }
        Err(e) => Err(e),
    };
    let _ = release.send(());
    uploaded
}

/// The big job's records, held after `left` of them until `release`.
struct HoldAt {
    inner: Box<dyn RecordSource>,
    left: u64,
    reached: Option<tokio::sync::oneshot::Sender<()>>,
    release: std::sync::mpsc::Receiver<()>,
}

impl RecordSource for HoldAt {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> std::io::Result<()> {
        if self.left == 0 {
            if let Some(reached) = self.reached.take() {
                let _ = reached.send(());
                // The urgent job is queued (or could not be): go on.
                let _ = self.release.recv();
            }
            return self.inner.next_batch(max, out);
        }
        let before = out.len();
        let max = max.min(usize::try_from(self.left).unwrap_or(usize::MAX));
        self.inner.next_batch(max, out)?;
        let read = (out.len() - before) as u64;
        // The input ended before the mark: hold at its end instead.
        self.left = if read == 0 {
            0
        } else {
            self.left - read.min(self.left)
        };
        if read == 0 {
            return self.next_batch(max, out);
        }
        Ok(())
    }
}
