use booster_runtime::*;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_drops_destroyed_jobs_and_keeps_the_rest_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let input = records(40);
    let (keep, gone);
    {
        let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
        rt.register_sliced("echo", echo());
        keep = rt.submit(sliced("echo", 10)).await.unwrap();
        gone = rt.submit(sliced("echo", 10)).await.unwrap();
        upload_all(&rt, keep, &input).await;
        upload_all(&rt, gone, &input).await;
        rt.wait(keep).await.unwrap();
        rt.wait(gone).await.unwrap();
        rt.destroy(gone).await.unwrap();
        let report = rt.compact().await.unwrap();
        assert!(report.slices_dropped >= 8, "{report:?}");
        rt.shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    let s = rt.job(keep).await.unwrap();
    assert_eq!((s.state, s.records_out), (JobState::Completed, 40));
    assert_eq!(download(&rt, keep, Category::Main), input);
    assert!(matches!(
        rt.job(gone).await,
        Err(RuntimeError::NotFound(..))
    ));
    let next = rt
        .submit(JobSpec::simple("x", serde_json::Value::Null))
        .await
        .unwrap();
    assert!(next > gone, "job ids are never reused");
}

/// Compaction takes the append gate exclusively while workers commit slices
/// and uploads append: it must neither deadlock with a commit that is on its
/// way nor lose or duplicate a record. The workload runs on its own thread
/// and tokio runtime, so a deadlock (which blocks tokio's threads too)
/// becomes a failure here instead of a stuck test.
#[test]
fn compaction_while_workers_and_uploads_are_busy_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        tokio.block_on(compact_while_busy(&path));
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(300))
        .expect("compaction deadlocked with commits in flight");
}

async fn compact_while_busy(dir: &std::path::Path) {
    let rt = Runtime::open(opts(dir, 2)).await.unwrap();
    rt.register_sliced("echo", echo());
    let inputs: Vec<Vec<Vec<u8>>> = (0..6)
        .map(|j| {
            (0..400)
                .map(|i| format!("job{j}-r{i:05}").into_bytes())
                .collect()
        })
        .collect();
    let compactor = {
        let rt = rt.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                rt.compact().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut jobs = Vec::new();
    for input in &inputs {
        let job = rt.submit(sliced("echo", 2)).await.unwrap();
        upload_all(&rt, job, input).await;
        jobs.push(job);
    }
    compactor.await.unwrap();
    for (&job, input) in jobs.iter().zip(&inputs) {
        let s = rt.wait(job).await.unwrap();
        assert_eq!((s.state, s.records_out), (JobState::Completed, 400));
        assert_eq!(&download(&rt, job, Category::Main), input);
    }
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
