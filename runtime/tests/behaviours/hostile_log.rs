//! Meta records with values no run of the runtime writes (ids and counters
//! at their limits) are corruption or a clear refusal: never a wrap that
//! replaces a job, never a panic.

use std::path::Path;
use std::time::Duration;

use booster_runtime::*;
use booster_store::{Batch, Store, StoreOptions};
use serde_json::json;

/// These tests examine or damage the meta log's own frames: no checkpoint
/// may cut the log under them.
fn opts(dir: &std::path::Path, workers: usize) -> RuntimeOptions {
    let mut o = crate::common::opts(dir, workers);
    o.auto_checkpoint = false;
    o
}

/// Appends raw meta records (format byte `J` + JSON) to the store in `dir`.
fn append_meta(dir: &Path, records: &[serde_json::Value]) {
    let (store, _) = Store::open(dir, StoreOptions::default()).unwrap();
    for r in records {
        let mut bytes = b"J".to_vec();
        bytes.extend(serde_json::to_vec(r).unwrap());
        store.append(Batch::new().meta(bytes)).unwrap();
    }
    store.close().unwrap();
}

async fn one_job(dir: &Path) -> JobId {
    let rt = Runtime::open(opts(dir, 1)).await.unwrap();
    let id = rt
        .submit(JobSpec::simple("x", json!({"keep": true})))
        .await
        .unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    id
}

/// The first id the runtime keeps for its own keys (the job table).
const RESERVED_OWNER_BASE: u64 = 0xFFFF_FFFF_0000_0000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_id_counter_at_the_reserved_ids_refuses_to_submit_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let kept = one_job(dir.path()).await;
    append_meta(
        dir.path(),
        &[json!({"t": "next_id", "next": RESERVED_OWNER_BASE})],
    );
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let err = rt
        .submit(JobSpec::simple("x", json!(null)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("job id space exhausted"), "{err}");
    let jobs = rt.jobs(JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].id, &jobs[0].kind), (kept, &"x".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_reach_the_reserved_ones_are_corruption_named_by_open() {
    let spec = serde_json::to_value(JobSpec::simple("x", json!(null))).unwrap();
    for record in [
        json!({"t": "next_id", "next": RESERVED_OWNER_BASE + 1}),
        json!({"t": "created", "first_id": RESERVED_OWNER_BASE - 1, "at_ms": 0, "specs": [spec.clone(), spec.clone()]}),
    ] {
        let dir = tempfile::tempdir().unwrap();
        one_job(dir.path()).await;
        append_meta(dir.path(), std::slice::from_ref(&record));
        match Runtime::open(opts(dir.path(), 1)).await {
            // Records 1-3 are the first process's `opened`, `kind_id`
            // and `created`.
            Err(RuntimeError::Corrupt(what)) => assert!(what.contains("record 4"), "{what}"),
            Err(e) => panic!("{record}: {e:?}"),
            Ok(_) => panic!("{record} must not open"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_ids_that_would_wrap_are_corruption_named_by_open() {
    let dir = tempfile::tempdir().unwrap();
    one_job(dir.path()).await;
    let spec = serde_json::to_value(JobSpec::simple("x", json!(null))).unwrap();
    append_meta(
        dir.path(),
        &[json!({"t": "created", "first_id": u64::MAX, "at_ms": 0, "specs": [spec]})],
    );
    let err = match Runtime::open(opts(dir.path(), 1)).await {
        Err(e) => e,
        Ok(_) => panic!("a wrapping job id must not open"),
    };
    assert!(matches!(err, RuntimeError::Corrupt(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        // Record 1 is the first process's `opened`, 2 its `kind_id`, 3
        // its `created`.
        message.contains("record 4 of the meta log") && message.contains("job ids"),
        "{message}"
    );
}
