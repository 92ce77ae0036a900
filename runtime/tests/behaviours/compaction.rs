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
    assert!(matches!(rt.job(gone).await, Err(RuntimeError::NotFound(_))));
    let next = rt
        .submit(JobSpec::simple("x", serde_json::Value::Null))
        .await
        .unwrap();
    assert!(next > gone, "job ids are never reused");
}
