//! Dirmon's runtime half (issue 14): entries survive restarts and
//! compaction; nothing of a dirmon job runs until its file is wholly
//! uploaded (so a job whose upload a crash cut has run none of its records
//! and may be made again); the file a job was made of stays known after
//! the job is destroyed, until archived.

use std::time::Duration;

use booster_runtime::*;
use serde_json::json;

use crate::common::*;

fn dirmon_job(file: &str) -> JobSpec {
    let mut spec = sliced("echo", 2);
    spec.properties =
        json!({ DIRMON_PROPERTY: { "entry": 1, "file": file, "source": "/in/a.csv" } });
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dirmon_job_runs_nothing_until_its_file_is_in() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("echo", echo());
    let id = rt.submit(dirmon_job("1-1-0-a.csv")).await.unwrap();
    let mut up = rt.upload(id).await.unwrap();
    for r in records(5) {
        up.push(r).await.unwrap();
    }
    // Two whole slices are stored; an ordinary job would have run them
    // within milliseconds (the same handler finishes the job below).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = rt.job(id).await.unwrap();
    assert_eq!(status.slices_done, 0, "a slice ran before the file was in");
    assert!(status.started_at.is_none(), "its before-hook ran");
    let why = status.waiting_reason.unwrap_or_default();
    assert!(why.contains("dirmon"), "{why}");
    // A user's pause and resume change nothing about the hold.
    rt.pause(id).await.unwrap();
    rt.resume(id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rt.job(id).await.unwrap().slices_done, 0);
    up.finish().await.unwrap();
    assert_eq!(rt.wait(id).await.unwrap().state, JobState::Completed);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_of_a_destroyed_job_stays_taken_through_restart_and_compaction_until_archived() {
    let dir = tempfile::tempdir().unwrap();
    let name = "1795932425572-1-0-a.csv";
    let id = {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        rt.register_sliced("echo", echo());
        let id = rt.submit(dirmon_job(name)).await.unwrap();
        upload_all(&rt, id, &records(3)).await;
        rt.wait(id).await.unwrap();
        rt.destroy(id).await.unwrap();
        rt.compact().await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
        id
    };
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert!(matches!(rt.job(id).await, Err(RuntimeError::NotFound(..))));
    assert_eq!(rt.dirmon_file_job(name), Some(id));
    assert_eq!(rt.dirmon_taken(1), vec![(name.to_string(), id)]);
    rt.dirmon_archived(1, name).await.unwrap();
    assert_eq!(rt.dirmon_file_job(name), None);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert_eq!(
        rt.dirmon_file_job(name),
        None,
        "the archived note is durable"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
