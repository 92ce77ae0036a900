//! Kind ids (issue 12): a new kind's id is logged in a `kind_id` record in
//! the batch of its first `created` record, before it, once per kind.

use std::time::Duration;

use booster_runtime::*;
use booster_store::{Store, StoreOptions};

/// These tests examine or damage the meta log's own frames: no checkpoint
/// may cut the log under them.
fn opts(dir: &std::path::Path, workers: usize) -> RuntimeOptions {
    let mut o = crate::common::opts(dir, workers);
    o.auto_checkpoint = false;
    o
}

/// The record type (`"t"`) and the JSON of each meta record in the log.
fn log(dir: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let (store, _) = Store::open(dir, StoreOptions::default()).unwrap();
    let meta = store.meta_records().unwrap();
    store.close().unwrap();
    meta.iter()
        .map(|m| {
            assert_eq!(m[0], b'J', "a v1 meta record");
            let v: serde_json::Value = serde_json::from_slice(&m[1..]).unwrap();
            (v["t"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// (id, name) of each `kind_id` record, in log order.
fn kind_id_records(log: &[(String, serde_json::Value)]) -> Vec<(u64, String)> {
    log.iter()
        .filter(|(t, _)| t == "kind_id")
        .map(|(_, v)| {
            let name = v["name"].as_str().unwrap().to_string();
            (v["id"].as_u64().unwrap(), name)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kind_logs_its_id_once_just_before_its_first_created_record() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.submit(JobSpec::simple("a", serde_json::Value::Null))
        .await
        .unwrap();
    rt.submit(JobSpec::simple("a", serde_json::Value::Null))
        .await
        .unwrap();
    rt.submit_many(vec![
        JobSpec::simple("b", serde_json::Value::Null),
        JobSpec::simple("a", serde_json::Value::Null),
        JobSpec::sliced("c"),
        JobSpec::simple("b", serde_json::Value::Null),
    ])
    .await
    .unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();

    let log = log(dir.path());
    let kind_ids = kind_id_records(&log);
    assert_eq!(
        kind_ids,
        vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
    );
    // Each sits before the first created record that names its kind.
    for (id, name) in &kind_ids {
        let at = |pred: &dyn Fn(&(String, serde_json::Value)) -> bool| {
            log.iter().position(pred).unwrap()
        };
        let record = at(&|(t, v)| t == "kind_id" && v["id"].as_u64() == Some(*id));
        let first_created = at(&|(t, v)| {
            t == "created"
                && v["specs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["kind"] == name.as_str())
        });
        assert!(record < first_created, "kind {name}: {log:?}");
    }

    // Reopened, the same ids hold and a new kind takes the next one.
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.submit(JobSpec::simple("d", serde_json::Value::Null))
        .await
        .unwrap();
    rt.submit(JobSpec::simple("a", serde_json::Value::Null))
        .await
        .unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let names = kind_id_records(&self::log(dir.path()));
    assert_eq!(names.last(), Some(&(4, "d".into())));
    assert_eq!(names.len(), 4);
}
