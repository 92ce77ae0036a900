//! A runtime opened without workers (`jobs`, `verify`, `inspect`) reads
//! and changes nothing on its own: no meta record, no byte of any file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use booster_runtime::*;

use crate::common::*;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn read_only(dir: &Path) -> RuntimeOptions {
    let mut o = opts(dir, 1);
    o.start_workers = false;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_open_leaves_every_file_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (waiting, expired);
    {
        // Without workers, so its own timer cannot expire the job below
        // before it shuts down (with them the test raced that timer).
        let rt = Runtime::open(read_only(dir.path())).await.unwrap();
        // An upload left waiting: the process "stopped" before finish.
        waiting = rt.submit(sliced("echo", 10)).await.unwrap();
        let mut up = rt.upload(waiting).await.unwrap();
        for r in records(25) {
            up.push(r).await.unwrap();
        }
        std::mem::forget(up);
        // A job past its expires_at that nothing has run.
        let mut spec = JobSpec::simple("nobody", serde_json::Value::Null);
        spec.expires_at = Some(SystemTime::now() + Duration::from_millis(1));
        expired = rt.submit(spec).await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = files(dir.path());
    {
        let rt = Runtime::open(read_only(dir.path())).await.unwrap();
        for job in rt.jobs(JobFilter::default()).await.unwrap() {
            rt.job(job.id).await.unwrap();
        }
        let _ = rt.verify();
        let _ = rt.store_stats().unwrap();
        let s = rt.job(waiting).await.unwrap();
        assert!(!s.upload_complete && s.state != JobState::Failed, "{s:?}");
        // Give the timer ticks in which it could (wrongly) expire a job.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(rt.job(expired).await.unwrap().state, JobState::Queued);
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    assert_eq!(
        files(dir.path()),
        before,
        "a read-only open changed the data directory"
    );
    // A process that runs work settles both.
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let s = rt.wait(waiting).await.unwrap();
    assert_eq!(s.state, JobState::Failed);
    assert!(
        s.failure_reason.unwrap().contains("upload interrupted"),
        "the next working process marks the upload failed"
    );
    assert_eq!(rt.wait(expired).await.unwrap().state, JobState::Aborted);
}
