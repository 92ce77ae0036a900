//! Singletons (issue 14): at most one unfinished job holds a key. The
//! check is atomic with the submit, survives a restart, and a key is free
//! again once its job finishes.

use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;
use serde_json::json;

use crate::common::*;

fn nightly() -> JobSpec {
    JobSpec::simple("nightly", json!(null)).with_singleton("nightly-report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_concurrent_submits_of_one_key_exactly_one_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let tries: Vec<_> = (0..32)
        .map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move { rt.submit(nightly()).await })
        })
        .collect();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for t in tries {
        match t.await.unwrap() {
            Ok(id) => accepted.push(id),
            Err(RuntimeError::SingletonHeld { key, .. }) => {
                assert_eq!(key, "nightly-report");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((accepted.len(), refused), (1, 31), "{accepted:?}");
    // Other keys (and no key) are not held back.
    rt.submit(JobSpec::simple("nightly", json!(null)).with_singleton("other"))
        .await
        .unwrap();
    rt.submit(JobSpec::simple("nightly", json!(null)))
        .await
        .unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_held_across_a_restart_and_freed_when_the_job_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        let id = rt.submit(nightly()).await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
        id
    };
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    match rt.submit(nightly()).await {
        Err(RuntimeError::SingletonHeld { job, .. }) => assert_eq!(job, first),
        other => panic!("the key must still be held: {other:?}"),
    }
    rt.register_simple("nightly", Arc::new(Fails));
    assert_eq!(rt.wait(first).await.unwrap().state, JobState::Failed);
    // Finished: the key is free, and the failed job cannot take it back
    // by a retry while the new one holds it. The new one is scheduled an
    // hour ahead, so no worker runs (and fails) it before the retry: an
    // immediate one could finish first and free the key (a CI flake).
    let mut later = nightly();
    later.run_at = Some(std::time::SystemTime::now() + Duration::from_secs(3600));
    let second = rt.submit(later).await.unwrap();
    match rt.retry(first).await {
        Err(RuntimeError::SingletonHeld { job, .. }) => assert_eq!(job, second),
        other => panic!("retry must be refused: {other:?}"),
    }
    rt.abort(second).await.unwrap();
    rt.retry(first).await.unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Fails every job.
struct Fails;

impl SimpleHandler for Fails {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        Err(HandlerError("nope".into()))
    }
}
