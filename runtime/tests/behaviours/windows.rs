//! Processing windows (issue 14) on a `ManualClock`: outside its window a
//! kind starts nothing, its jobs say why and leave the runtime idle; when
//! the window opens (the clock moves) the timer wakes a worker; at the
//! window's end a running slice finishes and no new one starts. The window
//! is stored with the kind's settings and survives compaction and restarts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;

use crate::common::*;

/// 2026-11-29 00:00:00 UTC (01:00 in Berlin, winter time).
const MIDNIGHT_MS: u64 = 1_795_910_400_000;
const HOUR_MS: u64 = 3_600_000;

fn nightly() -> KindSettings {
    KindSettings {
        window: Some(ProcessingWindow::parse("22:00-06:00", Some("Europe/Berlin")).unwrap()),
        ..KindSettings::default()
    }
}

async fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Runtime {
    let mut o = opts(dir, 1);
    o.clock = clock.clone();
    Runtime::open(o).await.unwrap()
}

async fn until_idle(rt: &Runtime) {
    tokio::time::timeout(Duration::from_secs(30), rt.wait_idle())
        .await
        .expect("work held back by a closed window leaves the runtime idle");
}

/// Copies records; holds in its first record while `hold` is set, and says
/// it has `started`.
#[derive(Default)]
struct HeldSlices {
    hold: AtomicBool,
    started: AtomicBool,
}

impl RecordHandler for HeldSlices {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        self.started.store(true, Ordering::SeqCst);
        while self.hold.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
            heartbeat();
        }
        out.push(record.to_vec());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_outside_its_window_waits_idle_then_runs_when_the_window_opens() {
    let dir = tempfile::tempdir().unwrap();
    // 12:00 UTC is 13:00 in Berlin: the window is closed.
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS + 12 * HOUR_MS));
    {
        let rt = open(dir.path(), &clock).await;
        rt.store_kind_settings("echo", Some(nightly()))
            .await
            .unwrap();
        rt.compact().await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    // A later process reads the stored window.
    let rt = open(dir.path(), &clock).await;
    rt.register_sliced("echo", echo());
    let job = rt.submit(sliced("echo", 5)).await.unwrap();
    upload_all(&rt, job, &records(10)).await;
    until_idle(&rt).await;
    let st = rt.job(job).await.unwrap();
    assert_eq!((st.state, st.slices_done), (JobState::Queued, 0));
    assert_eq!(
        st.waiting_reason.as_deref(),
        Some(
            "kind \"echo\" runs only 22:00-06:00 Europe/Berlin; \
             next opens at 2026-11-29 22:00 Europe/Berlin"
        )
    );
    let shown = rt.kinds_settings();
    assert_eq!(shown[0].effective.window, nightly().window);
    // 22:30 in Berlin: open. Nothing else moves; the timer wakes a worker.
    clock.set_ms(MIDNIGHT_MS + 21 * HOUR_MS + HOUR_MS / 2);
    assert_eq!(rt.wait(job).await.unwrap().state, JobState::Completed);
    assert_eq!(download(&rt, job, Category::Main), records(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_windows_end_a_running_slice_finishes_and_no_new_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    // 04:59:58 UTC is 05:59:58 in Berlin: two seconds before the end.
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS + 5 * HOUR_MS - 2_000));
    let rt = open(dir.path(), &clock).await;
    rt.store_kind_settings("held", Some(nightly()))
        .await
        .unwrap();
    let handler = Arc::new(HeldSlices::default());
    handler.hold.store(true, Ordering::SeqCst);
    rt.register_sliced("held", handler.clone());
    let job = rt.submit(sliced("held", 5)).await.unwrap();
    upload_all(&rt, job, &records(15)).await;
    until("the first slice runs", || {
        handler.started.load(Ordering::SeqCst)
    })
    .await;
    clock.advance_ms(5_000);
    handler.hold.store(false, Ordering::SeqCst);
    until_idle(&rt).await;
    let st = rt.job(job).await.unwrap();
    assert_eq!(st.state, JobState::Running);
    assert_eq!((st.slices_done, st.slices_queued), (1, 2), "{st:?}");
    assert!(
        st.waiting_reason
            .as_deref()
            .is_some_and(|r| r.contains("runs only 22:00-06:00")),
        "{:?}",
        st.waiting_reason
    );
    // It opens again at 22:00 Berlin, 21:00 UTC.
    clock.set_ms(MIDNIGHT_MS + 21 * HOUR_MS);
    assert_eq!(rt.wait(job).await.unwrap().state, JobState::Completed);
    assert_eq!(download(&rt, job, Category::Main), records(15));
}

fn nightly_job(rows: usize) -> JobSpec {
    sliced("echo", rows).with_window(nightly().window.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_outside_its_own_window_waits_while_its_kind_runs_and_runs_when_it_opens_after_a_restart(
) {
    let dir = tempfile::tempdir().unwrap();
    // 12:00 UTC is 13:00 in Berlin: the job's window is closed.
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS + 12 * HOUR_MS));
    let (windowed, plain) = {
        let rt = open(dir.path(), &clock).await;
        rt.register_sliced("echo", echo());
        let windowed = rt.submit(nightly_job(5)).await.unwrap();
        upload_all(&rt, windowed, &records(10)).await;
        let plain = rt.submit(sliced("echo", 5)).await.unwrap();
        upload_all(&rt, plain, &records(10)).await;
        // The other job of the same kind is not held back.
        assert_eq!(rt.wait(plain).await.unwrap().state, JobState::Completed);
        until_idle(&rt).await;
        let st = rt.job(windowed).await.unwrap();
        assert_eq!((st.state, st.slices_done), (JobState::Queued, 0));
        assert_eq!(st.window, nightly().window);
        assert_eq!(
            st.waiting_reason.as_deref(),
            Some(
                "this job runs only 22:00-06:00 Europe/Berlin; \
                 next opens at 2026-11-29 22:00 Europe/Berlin"
            )
        );
        rt.compact().await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
        (windowed, plain)
    };
    // The window is the job's own, kept through compaction and replay.
    let rt = open(dir.path(), &clock).await;
    rt.register_sliced("echo", echo());
    until_idle(&rt).await;
    let st = rt.job(windowed).await.unwrap();
    assert_eq!((st.state, st.slices_done), (JobState::Queued, 0));
    assert_eq!(st.window, nightly().window);
    assert!(rt.job(plain).await.unwrap().window.is_none());
    // 22:30 in Berlin: open. The timer wakes a worker.
    clock.set_ms(MIDNIGHT_MS + 21 * HOUR_MS + HOUR_MS / 2);
    assert_eq!(rt.wait(windowed).await.unwrap().state, JobState::Completed);
    assert_eq!(download(&rt, windowed, Category::Main), records(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_jobs_own_windows_end_its_running_slice_finishes_and_no_new_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    // 04:59:58 UTC is 05:59:58 in Berlin: two seconds before the end.
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS + 5 * HOUR_MS - 2_000));
    let rt = open(dir.path(), &clock).await;
    let handler = Arc::new(HeldSlices::default());
    handler.hold.store(true, Ordering::SeqCst);
    rt.register_sliced("held", handler.clone());
    let spec = sliced("held", 5).with_window(nightly().window.unwrap());
    let job = rt.submit(spec).await.unwrap();
    upload_all(&rt, job, &records(15)).await;
    until("the first slice runs", || {
        handler.started.load(Ordering::SeqCst)
    })
    .await;
    clock.advance_ms(5_000);
    // A job of the same kind without a window is not held by this one's.
    let plain = rt.submit(sliced("held", 5)).await.unwrap();
    upload_all(&rt, plain, &records(5)).await;
    handler.hold.store(false, Ordering::SeqCst);
    assert_eq!(rt.wait(plain).await.unwrap().state, JobState::Completed);
    until_idle(&rt).await;
    let st = rt.job(job).await.unwrap();
    assert_eq!(st.state, JobState::Running);
    assert_eq!((st.slices_done, st.slices_queued), (1, 2), "{st:?}");
    assert!(
        st.waiting_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("this job runs only 22:00-06:00")),
        "{:?}",
        st.waiting_reason
    );
    assert_eq!(
        st.eta_s, None,
        "no ETA while the window holds the job: it makes no progress"
    );
    clock.set_ms(MIDNIGHT_MS + 21 * HOUR_MS);
    assert_eq!(rt.wait(job).await.unwrap().state, JobState::Completed);
    assert_eq!(download(&rt, job, Category::Main), records(15));
}

/// Fails every record while `fail` is set.
#[derive(Default)]
struct Failing {
    fail: AtomicBool,
}

impl RecordHandler for Failing {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(HandlerError("not yet".into()));
        }
        out.push(record.to_vec());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_job_retried_while_its_window_is_closed_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    // 21:30 UTC is 22:30 in Berlin: open.
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS + 21 * HOUR_MS + HOUR_MS / 2));
    let rt = open(dir.path(), &clock).await;
    let handler = Arc::new(Failing::default());
    handler.fail.store(true, Ordering::SeqCst);
    rt.register_sliced("failing", handler.clone());
    let spec = sliced("failing", 5).with_window(nightly().window.unwrap());
    let job = rt.submit(spec).await.unwrap();
    upload_all(&rt, job, &records(10)).await;
    assert_eq!(rt.wait(job).await.unwrap().state, JobState::Failed);
    // Noon the next day: closed. The retry waits for the window.
    clock.set_ms(MIDNIGHT_MS + 36 * HOUR_MS);
    handler.fail.store(false, Ordering::SeqCst);
    rt.retry(job).await.unwrap();
    until_idle(&rt).await;
    let st = rt.job(job).await.unwrap();
    assert!(!st.state.is_finished(), "{st:?}");
    assert!(
        st.waiting_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("this job runs only 22:00-06:00")),
        "{:?}",
        st.waiting_reason
    );
    // 22:00 in Berlin that evening: it runs.
    clock.set_ms(MIDNIGHT_MS + 45 * HOUR_MS);
    assert_eq!(rt.wait(job).await.unwrap().state, JobState::Completed);
    assert_eq!(download(&rt, job, Category::Main), records(10));
}
