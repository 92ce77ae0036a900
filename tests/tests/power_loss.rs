//! Power loss for the runtime: the whole runtime (submit, upload, workers,
//! compaction) runs on the store's simulated file system, which crashes at
//! a chosen I/O operation; the machine then "loses power" (unsynced writes
//! dropped, or torn). After reopening, every acknowledged job and upload is
//! there whole, and every job seen completed is still completed with its
//! output. SIGKILL tests (`crash_loops.rs`) keep the page cache; this drops it.
//!
//! It crashes at every mutating operation of the workload, each with the
//! unsynced writes dropped and torn (seconds in all). Every other crash
//! point runs with a key (encrypted segments). Seeded: `BOOSTER_SEED`
//! replays the torn bytes. The workload takes checkpoints (issue 12,
//! step 3), and a second test crashes at every operation of one and
//! compares the whole reopened table.

use std::sync::Arc;
use std::time::Duration;

use booster_runtime::{
    Category, HandlerError, JobContext, JobId, JobSpec, JobState, ManualClock, RecordHandler,
    Retention, Runtime, RuntimeError, RuntimeOptions, SimpleHandler,
};
use booster_store::fs::sim::{CrashMode, SimFileLayer};
use booster_store::{MasterKey, Store, StoreOptions};
use booster_tests::rng::{seed, Rng};
use booster_tests::table::table_of;

const DIR: &str = "/sim/data";

struct Echo;
impl RecordHandler for Echo {
    fn process(
        &self,
        _: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        out.push(record.to_vec());
        Ok(())
    }
}
struct Noop;
impl SimpleHandler for Noop {
    fn perform(
        &self,
        _: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        Ok(Some(args.clone()))
    }
}

/// What the workload was told is durable.
#[derive(Default, Debug)]
struct Acked {
    /// Simple jobs whose submit returned Ok.
    simple: Vec<JobId>,
    /// Sliced jobs whose upload `finish` returned Ok, with their records.
    uploads: Vec<(JobId, Vec<Vec<u8>>)>,
    /// Jobs seen completed (applied only after their commit was durable).
    completed: Vec<JobId>,
}

fn options(workers: bool) -> RuntimeOptions {
    let mut o = RuntimeOptions::new(DIR);
    o.workers = 2;
    o.start_workers = workers;
    o.slice_size = 4;
    o
}

async fn open(
    fs: &SimFileLayer,
    key: &Option<MasterKey>,
    workers: bool,
) -> Result<Runtime, RuntimeError> {
    open_as(fs, key, options(workers)).await
}

async fn open_as(
    fs: &SimFileLayer,
    key: &Option<MasterKey>,
    opts: RuntimeOptions,
) -> Result<Runtime, RuntimeError> {
    let fs = fs.clone();
    let store_opts = StoreOptions {
        master_key: key.clone(),
        ..StoreOptions::default()
    };
    let rt = Runtime::open_on(opts, move || Store::open_with(fs, DIR, store_opts)).await?;
    rt.register_sliced("echo", Arc::new(Echo));
    rt.register_simple("noop", Arc::new(Noop));
    Ok(rt)
}

fn records(job: usize, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("j{job}-r{i:03}").into_bytes())
        .collect()
}

/// Submits, uploads, works and compacts until done or the first error.
async fn workload(rt: &Runtime, acked: &mut Acked) -> Result<(), RuntimeError> {
    let specs = (0..4)
        .map(|i| JobSpec::simple("noop", serde_json::json!(i)))
        .collect();
    acked.simple.extend(rt.submit_many(specs).await?);
    for round in 0..3 {
        let id = rt.submit(JobSpec::sliced("echo")).await?;
        let input = records(round, 10);
        let mut up = rt.upload(id).await?;
        for r in &input {
            up.push(r.clone()).await?;
        }
        up.finish().await?;
        acked.uploads.push((id, input));
        rt.wait_idle().await;
        note_completed(rt, acked).await;
        if round == 1 {
            rt.compact().await?;
        } else {
            rt.checkpoint().await?;
        }
    }
    acked.simple.push(
        rt.submit(JobSpec::simple("noop", serde_json::json!(9)))
            .await?,
    );
    rt.wait_idle().await;
    note_completed(rt, acked).await;
    Ok(())
}

async fn note_completed(rt: &Runtime, acked: &mut Acked) {
    let ids = acked
        .simple
        .iter()
        .copied()
        .chain(acked.uploads.iter().map(|(id, _)| *id));
    for id in ids.collect::<Vec<_>>() {
        if rt
            .job(id)
            .await
            .is_ok_and(|s| s.state == JobState::Completed)
            && !acked.completed.contains(&id)
        {
            acked.completed.push(id);
        }
    }
}

/// Runs the workload crashing at operation `k` (None: never); returns
/// the file system and what was acknowledged.
fn run(k: Option<u64>, key: &Option<MasterKey>) -> (SimFileLayer, Acked) {
    let fs = SimFileLayer::new();
    fs.crash_at(k);
    let mut acked = Acked::default();
    tokio_rt().block_on(async {
        if let Ok(rt) = open(&fs, key, true).await {
            let _ = workload(&rt, &mut acked).await;
            let _ = rt.shutdown(Duration::from_secs(2)).await;
        }
    });
    (fs, acked)
}

fn check(image: &SimFileLayer, key: &Option<MasterKey>, acked: &Acked, what: &str) {
    tokio_rt().block_on(async {
        let rt = open(image, key, false)
            .await
            .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
        for id in &acked.simple {
            rt.job(*id)
                .await
                .unwrap_or_else(|e| panic!("{what}: acknowledged job {id} lost: {e}"));
        }
        for (id, input) in &acked.uploads {
            let s = rt.job(*id).await.unwrap();
            assert!(s.upload_complete, "{what}: acknowledged upload {id}: {s:?}");
            let stored: Vec<Vec<u8>> = rt
                .download(*id, Category::Input)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(&stored, input, "{what}: records of upload {id}");
        }
        for id in &acked.completed {
            let s = rt.job(*id).await.unwrap();
            assert_eq!(s.state, JobState::Completed, "{what}: job {id}: {s:?}");
            if let Some((_, input)) = acked.uploads.iter().find(|(j, _)| j == id) {
                let out: Vec<Vec<u8>> = rt
                    .download(*id, Category::Main)
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(&out, input, "{what}: output of job {id}");
            }
        }
        rt.shutdown(Duration::from_secs(2)).await.unwrap();
        // Work resumes: every acknowledged upload completes with its output.
        let rt = open(image, key, true).await.unwrap();
        for (id, input) in &acked.uploads {
            let s = rt.wait(*id).await.unwrap();
            assert_eq!(s.state, JobState::Completed, "{what}: job {id}: {s:?}");
            assert_eq!(
                s.records_in,
                s.records_out + s.records_failed,
                "{what}: {s:?}"
            );
            let out: Vec<Vec<u8>> = rt
                .download(*id, Category::Main)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(&out, input, "{what}: output of job {id} after reopening");
        }
        for id in &acked.simple {
            let s = rt.wait(*id).await.unwrap();
            assert_eq!(s.state, JobState::Completed, "{what}: job {id}: {s:?}");
        }
        rt.shutdown(Duration::from_secs(2)).await.unwrap();
    });
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn acknowledged_jobs_and_records_survive_power_loss_at_every_io_step() {
    let (fs, acked) = run(None, &None);
    assert_eq!(
        acked.completed.len(),
        8,
        "the uncrashed workload completes: {acked:?}"
    );
    check(
        &fs.crash_image(CrashMode::DropUnsynced),
        &None,
        &acked,
        "no crash",
    );
    let ops = fs.mutating_ops();
    let mut rng = Rng::new(seed("power_loss"));
    for k in 1..=ops {
        // Every other crash point runs encrypted (AES-GCM per segment).
        let key = (k % 2 == 0).then(MasterKey::generate);
        let (fs, acked) = run(Some(k), &key);
        eprintln!(
            "crash at op {k} of {ops}: {} jobs, {} uploads, {} completed acknowledged",
            acked.simple.len(),
            acked.uploads.len(),
            acked.completed.len()
        );
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::TornUnsynced {
                seed: rng.next_u64(),
            },
        ] {
            let what = format!("crash at op {k} of {ops}, {mode:?}, key: {}", key.is_some());
            check(&fs.crash_image(mode), &key, &acked, &what);
        }
    }
}

/// What one run of `crash_in_checkpoint` left.
struct CheckpointRun {
    /// The file system after the crash (or the shutdown).
    fs: SimFileLayer,
    /// The store as power loss just before the checkpoint leaves it.
    before: SimFileLayer,
    /// The table the live process listed before the checkpoint.
    live: Vec<serde_json::Value>,
    /// The table it listed after the checkpoint, when it was written (its
    /// sweep removed rows past their retention): what it writes.
    after: Vec<serde_json::Value>,
    /// Mutating operations the checkpoint took.
    span: u64,
    /// The checkpoint's number (`before` opens from the one before it).
    seq: u64,
}

/// Runs a small workload to idle and notes the table, then checkpoints,
/// crashing at the checkpoint's `j`th mutating operation (None: never).
/// With `sweeping`, on a clock that stands, finished jobs are kept a
/// minute, a first checkpoint files them, and the clock moves past their
/// minute before the checkpoint under test, whose sweep removes them.
fn crash_in_checkpoint(j: Option<u64>, sweeping: bool) -> CheckpointRun {
    let fs = SimFileLayer::new();
    let (live, after, before, span, seq) = tokio_rt().block_on(async {
        // Only the checkpoint under test: none of the timer's before it.
        let mut o = options(true);
        o.auto_checkpoint = false;
        let clock = Arc::new(ManualClock::at_ms(1_800_000_000_000));
        if sweeping {
            o.clock = clock.clone();
            o.retention = Some(Retention {
                completed_ms: 60_000,
                failed_ms: 60_000,
                aborted_ms: 60_000,
            });
        }
        let rt = open_as(&fs, &None, o).await.unwrap();
        let specs = (0..4)
            .map(|i| JobSpec::simple("noop", serde_json::json!(i)))
            .collect();
        rt.submit_many(specs).await.unwrap();
        let id = rt.submit(JobSpec::sliced("echo")).await.unwrap();
        let mut up = rt.upload(id).await.unwrap();
        for r in records(0, 10) {
            up.push(r).await.unwrap();
        }
        up.finish().await.unwrap();
        // A job no process here runs stays queued in the image.
        let nobody = JobSpec::simple("nobody", serde_json::Value::Null);
        rt.submit(nobody).await.unwrap();
        rt.wait_idle().await;
        if sweeping {
            rt.checkpoint().await.unwrap();
            clock.advance_ms(3 * 60_000);
        }
        let live = table_of(&rt).await;
        let before = fs.crash_image(CrashMode::DropUnsynced);
        let ops = fs.mutating_ops();
        fs.crash_at(j.map(|j| ops + j));
        let seq = rt.checkpoint_seq() + 1;
        let checkpointed = rt.checkpoint().await;
        assert!(j.is_some() || checkpointed.is_ok(), "{checkpointed:?}");
        let mut after = Vec::new();
        if let Ok(written) = checkpointed {
            assert_eq!(written, seq);
            after = table_of(&rt).await;
        }
        let span = fs.mutating_ops() - ops;
        let _ = rt.shutdown(Duration::from_secs(2)).await;
        (live, after, before, span, seq)
    });
    CheckpointRun {
        fs,
        before,
        live,
        after,
        span,
        seq,
    }
}

/// The table a read-only runtime opened on `image` lists, and the number
/// of the checkpoint the open started from. Each kind's listing (from the
/// kind index the checkpoint wrote, when it was written) is exactly the
/// table's jobs of that kind.
fn reopened_table(image: &SimFileLayer, what: &str) -> (Vec<serde_json::Value>, u64) {
    tokio_rt().block_on(async {
        let rt = open(image, &None, false)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let table = table_of(&rt).await;
        for kind in ["noop", "echo", "nobody"] {
            let filter = booster_runtime::JobFilter {
                kind: Some(kind.into()),
                ..Default::default()
            };
            let listed: Vec<u64> = rt
                .jobs(filter)
                .await
                .unwrap()
                .iter()
                .map(|j| j.id)
                .collect();
            let want: Vec<u64> = (table.iter())
                .filter(|j| j["kind"] == kind)
                .map(|j| j["id"].as_u64().expect("an id"))
                .collect();
            assert_eq!(listed, want, "{what}: kind {kind}");
        }
        let seq = rt.checkpoint_seq();
        rt.shutdown(Duration::from_secs(2)).await.unwrap();
        (table, seq)
    })
}

/// "Before" is what the log replays to; "after" is the checkpoint's image,
/// the live table. They are equal (live and replay agree: a lease writes
/// nothing into a row), so a reopen must give exactly that table, and
/// start from the checkpoint before or from this one (a table equal to
/// both cannot tell a torn mix of the two; the checkpoint the open
/// started from can).
#[test]
fn a_crash_at_every_io_step_of_a_checkpoint_reopens_to_the_table_before_or_after() {
    let clean = crash_in_checkpoint(None, false);
    assert_eq!(clean.after, clean.live, "a lease writes nothing into a row");
    crash_at_every_io_step_of(clean, false);
}

/// The same for a checkpoint whose retention sweep removes rows (their
/// pages rewritten, their expiry frames deleted, in its batch): a crash
/// at any of its operations reopens to the table before it (the rows
/// still there) or after it (gone), never a mix ("Left from the review
/// of step 6").
#[test]
fn a_crash_at_every_io_step_of_a_sweeping_checkpoint_reopens_to_the_table_before_or_after() {
    let clean = crash_in_checkpoint(None, true);
    assert!(
        clean.after.len() < clean.live.len(),
        "the sweep removes rows: {} of {}",
        clean.after.len(),
        clean.live.len()
    );
    crash_at_every_io_step_of(clean, true);
}

/// Crashes the checkpoint of `clean`'s workload at each of its mutating
/// operations: each reopen starts from the checkpoint before with the
/// table before it, or from this one with the table it wrote.
fn crash_at_every_io_step_of(clean: CheckpointRun, sweeping: bool) {
    assert!(clean.span > 0, "a checkpoint writes");
    let (after, seq) = reopened_table(&clean.fs.crash_image(CrashMode::DropUnsynced), "no crash");
    assert_eq!(
        (&after, seq),
        (&clean.after, clean.seq),
        "an uncrashed checkpoint reopens to the live table, from itself"
    );
    let mut rng = Rng::new(seed("checkpoint_power_loss"));
    for j in 1..=clean.span {
        let run = crash_in_checkpoint(Some(j), sweeping);
        // What the checkpoint writes: the run's own table (it changes
        // none, and times differ from run to run), or on the sweeping
        // run's clock that stands, the clean run's table after it.
        let image = if sweeping { &clean.after } else { &run.live };
        let (before, before_seq) = reopened_table(&run.before, "before the checkpoint");
        assert_eq!(
            before_seq + 1,
            run.seq,
            "the checkpoint follows the one before"
        );
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::TornUnsynced {
                seed: rng.next_u64(),
            },
        ] {
            let what = format!("crash at op {j} of {}, {mode:?}", clean.span);
            let (reopened, seq) = reopened_table(&run.fs.crash_image(mode), &what);
            assert!(
                (seq == before_seq && reopened == before) || (seq == run.seq && &reopened == image),
                "{what}: the open started from checkpoint {seq} (before: {before_seq}, this one: \
                 {}) and its table is neither the one before the checkpoint nor its image",
                run.seq
            );
        }
    }
}

/// A caller waiting on a job must not hang once the store refuses writes
/// (G9): the job can never finish, so `wait` ends with the store's error.
/// The harness (`booster-bench`) and `booster run` wait this way.
#[test]
fn a_wait_on_an_unfinished_job_ends_with_the_storage_error_once_the_store_is_poisoned() {
    tokio_rt().block_on(async {
        let fs = SimFileLayer::new();
        let rt = open(&fs, &None, true).await.expect("open");
        // An upload that is never finished: the job cannot end by itself.
        let job = rt.submit(JobSpec::sliced("echo")).await.expect("submit");
        let waiting = {
            let rt = rt.clone();
            tokio::spawn(async move { rt.wait(job).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the job is not finished yet");
        fs.crash_at(Some(fs.mutating_ops() + 1));
        let refused = rt
            .submit(JobSpec::simple("noop", serde_json::json!(1)))
            .await;
        assert!(refused.is_err(), "the failed append is not acknowledged");
        let waited = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("wait still hangs 30 s after the store was poisoned")
            .expect("the waiting task");
        match waited {
            Err(RuntimeError::Store(e)) => assert!(
                e.to_string().contains("reopen") || e.to_string().contains("poison"),
                "the error says what to do: {e}"
            ),
            other => panic!("wait ended with {other:?}, not the storage error"),
        }
        let _ = rt.shutdown(Duration::from_secs(2)).await;
    });
}
