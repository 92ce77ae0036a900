use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

/// Fails "bad" records while `failing`; counts runs per slice (by its first record).
struct Flaky {
    failing: AtomicBool,
    runs: Mutex<HashMap<Vec<u8>, u32>>,
}

impl RecordHandler for Flaky {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if self.failing.load(Ordering::SeqCst) && record.starts_with(b"bad") {
            return Err(HandlerError("flaky".into()));
        }
        out.push(record.to_vec());
        Ok(())
    }
    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        *self.runs.lock().entry(records[0].clone()).or_default() += 1;
        let mut output = Vec::new();
        let mut record_errors = Vec::new();
        for (i, r) in records.iter().enumerate() {
            if let Err(e) = self.process(job, r, &mut output) {
                record_errors.push((i, e.0));
            }
        }
        SliceOutcome::Done {
            output,
            record_errors,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_reruns_only_the_failed_slices() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    let flaky = Arc::new(Flaky {
        failing: AtomicBool::new(true),
        runs: Mutex::new(HashMap::new()),
    });
    rt.register_sliced("flaky", flaky.clone());
    let mut input = records(50);
    input[15] = b"bad-15".to_vec();
    input[37] = b"bad-37".to_vec();
    let job = rt.submit(sliced("flaky", 10)).await.unwrap();
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!((s.state, s.slices_failed), (JobState::Failed, 2));
    flaky.failing.store(false, Ordering::SeqCst);
    rt.retry(job).await.unwrap();
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Completed);
    assert_eq!((s.records_out, s.records_failed), (50, 0));
    let runs = flaky.runs.lock().clone();
    for (slice, first) in input.chunks(10).map(|c| c[0].clone()).enumerate() {
        let expected = if slice == 1 || slice == 3 { 2 } else { 1 };
        assert_eq!(runs[&first], expected, "slice {slice}");
    }
    assert_eq!(download(&rt, job, Category::Main), input);
}

/// Opens `dir` on `clock` with a `Flaky` handler for "flaky" that fails.
async fn open_flaky(
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    flaky: &Arc<Flaky>,
) -> Runtime {
    let mut o = opts(dir, 1);
    o.clock = clock.clone();
    let rt = Runtime::open(o).await.unwrap();
    rt.register_sliced("flaky", flaky.clone());
    rt
}

fn failing_flaky() -> Arc<Flaky> {
    Arc::new(Flaky {
        failing: AtomicBool::new(true),
        runs: Mutex::new(HashMap::new()),
    })
}

fn retries(max_retries: u32, backoff_base_ms: u64) -> KindSettings {
    KindSettings {
        retry: RetryPolicy {
            max_retries,
            backoff_base_ms,
            jitter_percent: 0,
        },
        ..KindSettings::default()
    }
}

/// A runtime on a fresh `ManualClock` whose "flaky" kind stores `policy`,
/// running a job of `n` records (slices of 10) whose record `bad` fails,
/// until it is idle (the slice failed once).
struct FailingJob {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    flaky: Arc<Flaky>,
    rt: Runtime,
    job: JobId,
    input: Vec<Vec<u8>>,
}

async fn start_failing(policy: KindSettings, n: usize, bad: usize) -> FailingJob {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(1_000_000));
    let flaky = failing_flaky();
    let rt = open_flaky(dir.path(), &clock, &flaky).await;
    rt.store_kind_settings("flaky", Some(policy)).await.unwrap();
    let mut input = records(n);
    input[bad] = format!("bad-{bad}").into_bytes();
    let job = rt.submit(sliced("flaky", 10)).await.unwrap();
    upload_all(&rt, job, &input).await;
    until_idle(&rt).await;
    FailingJob {
        dir,
        clock,
        flaky,
        rt,
        job,
        input,
    }
}

async fn until_idle(rt: &Runtime) {
    tokio::time::timeout(std::time::Duration::from_secs(30), rt.wait_idle())
        .await
        .expect("a slice waiting for its retry leaves the runtime idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_slice_runs_again_after_its_backoff_under_the_kinds_stored_policy() {
    let f = start_failing(retries(2, 1000), 20, 15).await;
    let (clock, flaky, rt, job) = (f.clock.clone(), f.flaky.clone(), f.rt.clone(), f.job);
    let second = records(20)[10].clone();
    let runs = |f: &Flaky| f.runs.lock().get(&second).copied().unwrap_or(0);
    assert_eq!(runs(&flaky), 1);
    let st = rt.job(job).await.unwrap();
    assert_eq!(
        (st.state, st.slices_done, st.slices_failed),
        (JobState::Running, 1, 0),
        "the failed slice waits for its retry"
    );
    assert_eq!(
        st.waiting_reason.as_deref(),
        Some("slice 1 failed; the kind's retry policy runs it again at 1970-01-01 00:16:41 UTC")
    );
    // The wait and the count are durable: through a compaction and a restart.
    rt.compact().await.unwrap();
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let rt = open_flaky(f.dir.path(), &clock, &flaky).await;
    until_idle(&rt).await;
    assert_eq!(runs(&flaky), 1, "not run again before its backoff");
    clock.advance_ms(1000);
    until("the first retry", || runs(&flaky) == 2).await;
    until_idle(&rt).await;
    assert_eq!(rt.job(job).await.unwrap().state, JobState::Running);
    // The second retry waits twice as long.
    flaky.failing.store(false, Ordering::SeqCst);
    clock.advance_ms(1999);
    until_idle(&rt).await;
    assert_eq!(runs(&flaky), 2, "not before twice the backoff");
    clock.advance_ms(1);
    let done = rt.wait(job).await.unwrap();
    assert_eq!((done.state, runs(&flaky)), (JobState::Completed, 3));
    assert_eq!(download(&rt, job, Category::Main), f.input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_fails_for_good_once_the_kinds_retries_are_spent() {
    let f = start_failing(retries(1, 10), 10, 3).await;
    let (clock, flaky, rt, job) = (&f.clock, &f.flaky, &f.rt, f.job);
    clock.advance_ms(10);
    let done = rt.wait(job).await.unwrap();
    assert_eq!((done.state, done.slices_failed), (JobState::Failed, 1));
    let first = records(10)[0].clone();
    assert_eq!(flaky.runs.lock().get(&first).copied(), Some(2));
    // A manual `retry` starts the count again: one more automatic retry.
    rt.retry(job).await.unwrap();
    until("the manual retry ran", || {
        flaky.runs.lock().get(&first).copied() == Some(3)
    })
    .await;
    until_idle(rt).await;
    clock.advance_ms(10);
    rt.wait(job).await.unwrap();
    assert_eq!(flaky.runs.lock().get(&first).copied(), Some(4));
}
