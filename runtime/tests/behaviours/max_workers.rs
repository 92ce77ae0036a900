use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

/// Tracks how many slices of each job run at once.
#[derive(Default)]
struct Overlap {
    now: Mutex<HashMap<JobId, usize>>,
    max: Mutex<HashMap<JobId, usize>>,
}

impl RecordHandler for Overlap {
    fn process(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        {
            let mut now = self.now.lock();
            let n = now.entry(job.id).or_default();
            *n += 1;
            let mut max = self.max.lock();
            let m = max.entry(job.id).or_default();
            *m = (*m).max(*n);
        }
        std::thread::sleep(Duration::from_millis(15));
        *self.now.lock().get_mut(&job.id).unwrap() -= 1;
        out.push(record.to_vec());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_workers_caps_the_slices_of_a_job_running_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 4)).await.unwrap();
    let mut capped = sliced("overlap", 1);
    capped.max_workers = Some(2);
    let capped = rt.submit(capped).await.unwrap();
    let free = rt.submit(sliced("overlap", 1)).await.unwrap();
    upload_all(&rt, capped, &records(24)).await;
    upload_all(&rt, free, &records(24)).await;
    let overlap = Arc::new(Overlap::default());
    rt.register_sliced("overlap", overlap.clone());
    rt.wait(capped).await.unwrap();
    rt.wait(free).await.unwrap();
    let max = overlap.max.lock().clone();
    assert_eq!(
        max[&capped], 2,
        "capped job ran {} slices at once",
        max[&capped]
    );
    assert!(max[&free] > 2, "the uncapped job used more workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_workers_changed_at_runtime_applies_to_the_next_lease() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 4)).await.unwrap();
    let job = rt.submit(sliced("overlap", 1)).await.unwrap();
    rt.set_max_workers(job, Some(1)).await.unwrap();
    upload_all(&rt, job, &records(12)).await;
    let overlap = Arc::new(Overlap::default());
    rt.register_sliced("overlap", overlap.clone());
    rt.wait(job).await.unwrap();
    assert_eq!(overlap.max.lock()[&job], 1);
    assert_eq!(rt.job(job).await.unwrap().max_workers, Some(1));
}

/// Kind settings stored through the runtime outlive the process and win
/// over what a process sets in code (issue 14: throttles that persist).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_kind_limit_outlives_the_process_and_wins_over_the_code_s() {
    let dir = tempfile::tempdir().unwrap();
    let paused = KindSettings {
        max_running: Some(0),
        ..KindSettings::default()
    };
    {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        rt.store_kind_settings("echo", Some(paused)).await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("echo", Arc::new(Echo));
    // The code says "no limit"; the stored setting says paused.
    rt.set_kind_limit("echo", None).await;
    let job = rt.submit(sliced("echo", 5)).await.unwrap();
    upload_all(&rt, job, &records(10)).await;
    let st = rt.job(job).await.unwrap();
    assert_eq!(st.state, JobState::Queued);
    let reason = st.waiting_reason.unwrap_or_default();
    assert!(reason.contains("paused"), "{reason}");
    // Nothing can run: idle, so `work --until-idle` ends and says why.
    tokio::time::timeout(Duration::from_secs(30), rt.wait_idle())
        .await
        .expect("a paused kind's queued job leaves the runtime idle");
    let view = rt.kinds_settings();
    let echo = view.iter().find(|k| k.kind == "echo").unwrap();
    assert_eq!(echo.stored, Some(paused));
    assert_eq!(echo.effective.max_running, Some(0));
    // Compaction keeps it.
    rt.compact().await.unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("echo", Arc::new(Echo));
    let kept = rt.kinds_settings();
    assert_eq!(
        kept.iter().find(|k| k.kind == "echo").unwrap().stored,
        Some(paused)
    );
    // Cleared, the process's own setting (none) applies and the job runs.
    rt.store_kind_settings("echo", None).await.unwrap();
    assert_eq!(rt.wait(job).await.unwrap().state, JobState::Completed);
    assert_eq!(download(&rt, job, Category::Main), records(10));
}
