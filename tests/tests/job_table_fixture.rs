//! The job table of a data directory written by an earlier version of the
//! runtime (tests/fixtures/jobs-v1 and jobs-v1-encrypted, written by the
//! meta format `J` + JSON of 2026-11) must keep replaying to the same table:
//! every job's state, counts and timestamps, the destroyed job gone, the next
//! id after it, the output still downloadable.
//!
//! Job 11's `UploadFailed` was written before records carried their time:
//! its `completed_ms` is the latest time logged before it (the last slice
//! of job 10), the same at every open.
//!
//! Regenerate only on purpose (the point is old data):
//! `cargo test -p booster-tests --test job_table_fixture -- --ignored --test-threads 1`
//! then check the `jobs` arrays in `expected.json` by hand.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use booster_runtime::*;
use serde_json::{json, Value};

const FIXTURE_KEY: [u8; 32] = [0x42; 32];

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// What the fixture pins of a job: everything replayed from the meta log.
fn projection(s: &JobStatus) -> Value {
    json!({
        "id": s.id,
        "kind": s.kind,
        "description": s.description,
        "state": format!("{:?}", s.state),
        "priority": s.priority,
        "max_workers": s.max_workers,
        "created_ms": ms(s.created_at),
        "started_ms": s.started_at.map(ms),
        "completed_ms": s.completed_at.map(ms),
        "run_at_ms": s.run_at.map(ms),
        "upload_complete": s.upload_complete,
        "slices_total": s.slices_total,
        "slices_queued": s.slices_queued,
        "slices_done": s.slices_done,
        "slices_failed": s.slices_failed,
        "records_in": s.records_in,
        "records_out": s.records_out,
        "records_errors": s.records_errors,
        "records_in_failed_slices": s.records_in_failed_slices,
        "failure_reason": s.failure_reason,
        "result": s.result,
        "attempts": s.attempts,
        "errors": s.errors.iter().map(|g| json!([g.message, g.count])).collect::<Vec<_>>(),
        "properties": s.properties,
    })
}

fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    tmp
}

fn read_only(dir: &Path, key: bool) -> RuntimeOptions {
    let mut o = RuntimeOptions::new(dir);
    o.workers = 1;
    o.start_workers = false;
    o.master_key = key.then_some(MasterKey(FIXTURE_KEY));
    o
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn replayed(dir: &Path, key: bool) -> (Runtime, Vec<Value>) {
    let rt = Runtime::open(read_only(dir, key)).await.unwrap();
    let jobs = rt.jobs(JobFilter::default()).await.unwrap();
    let table = jobs.iter().map(projection).collect();
    (rt, table)
}

fn assert_same_table(name: &str, got: &[Value], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{name}: jobs in the table");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{name}: job {} replays differently", w["id"]);
    }
}

/// The completed sliced job's (3) output reads back.
fn assert_sliced_output_reads_back(rt: &Runtime) {
    let out: Vec<Vec<u8>> = rt
        .download(3, Category::Main)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        out,
        ["a1", "a2", "a3", "a5", "a6", "a7", "a8"].map(|s| s.as_bytes().to_vec())
    );
}

/// One line per job: the shape the fixture was written to hold.
const STATES: [(JobId, &str); 11] = [
    (1, "Completed"),
    (2, "Failed"),
    (3, "Completed"),
    (4, "Failed"),
    (6, "Queued"),
    (7, "Scheduled"),
    (8, "Paused"),
    (9, "Aborted"),
    (10, "Running"),
    (11, "Failed"),
    (12, "Failed"),
];

#[tokio::test]
async fn fixture_of_every_job_shape_replays_to_its_table() {
    let tmp = copy_fixture("jobs-v1");
    let (rt, table) = replayed(tmp.path(), false).await;
    let states: Vec<(JobId, String)> = table
        .iter()
        .map(|j| {
            (
                j["id"].as_u64().unwrap(),
                j["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(JobId, String)> = STATES.iter().map(|(i, s)| (*i, s.to_string())).collect();
    assert_eq!(states, want);
    assert_same_table("jobs-v1", &table, &expected()["plain"]);

    // The destroyed job stays gone and its id is never reused. It was
    // destroyed before tombstones were kept, then compacted away: below
    // the next id with no row, so "removed".
    assert!(matches!(
        rt.job(5).await,
        Err(RuntimeError::NotFound(5, booster_runtime::Missing::Removed))
    ));
    let next = rt
        .submit(JobSpec::simple("noop", Value::Null))
        .await
        .unwrap();
    assert_eq!(next, 13);

    // The completed sliced job's output and errors read back.
    assert_sliced_output_reads_back(&rt);
    let errors = rt.download(3, Category::Errors).unwrap().count();
    assert_eq!(errors, 2, "one handler error and one rejected record");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn encrypted_fixture_replays_to_its_table() {
    let tmp = copy_fixture("jobs-v1-encrypted");
    let (rt, table) = replayed(tmp.path(), true).await;
    assert_same_table("jobs-v1-encrypted", &table, &expected()["encrypted"]);
    let out: Vec<Vec<u8>> = rt
        .download(2, Category::Main)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, [b"secret-1".to_vec(), b"secret-2".to_vec()]);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Each kind's listing is exactly the table's jobs of that kind, and its
/// first page counts them.
async fn assert_kinds_list_as_the_table(rt: &Runtime, what: &str) {
    let table = rt.jobs(JobFilter::default()).await.unwrap();
    let kinds = [
        "echo",
        "fail-simple",
        "gate",
        "idle-simple",
        "idle-sliced",
        "ok-simple",
    ];
    for kind in kinds {
        let filter = JobFilter {
            kind: Some(kind.into()),
            ..JobFilter::default()
        };
        let want: Vec<JobId> = (table.iter())
            .filter(|j| j.kind == kind)
            .map(|j| j.id)
            .collect();
        assert!(!want.is_empty(), "{what}: the fixture holds {kind} jobs");
        let listed: Vec<JobId> = rt
            .jobs(filter.clone())
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(listed, want, "{what}: kind {kind}");
        let query = JobQuery {
            filter,
            before: None,
            limit: 1,
        };
        let page = rt.jobs_page(query).await.unwrap();
        assert_eq!(page.total, Some(want.len() as u64), "{what}: kind {kind}");
    }
}

/// The fixture (a log from before the table was on disk) lists each kind
/// as its table holds it: replayed, after the first checkpoint writes its
/// whole image with the kind index, and reopened from that image.
#[tokio::test]
async fn fixture_lists_each_kind_before_and_after_its_first_checkpoint() {
    let tmp = copy_fixture("jobs-v1");
    let (rt, _) = replayed(tmp.path(), false).await;
    assert_kinds_list_as_the_table(&rt, "replayed").await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let mut o = generator_opts(tmp.path(), false, true);
    o.auto_checkpoint = false;
    let rt = Runtime::open(o).await.unwrap();
    rt.checkpoint().await.unwrap();
    assert_kinds_list_as_the_table(&rt, "checkpointed").await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let (rt, _) = replayed(tmp.path(), false).await;
    assert_kinds_list_as_the_table(&rt, "reopened from the image").await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Issue 16: replay takes every time from the log, never from the clock.
#[tokio::test]
async fn fixture_replays_the_same_table_at_every_open() {
    let tmp = copy_fixture("jobs-v1");
    let (rt, first) = replayed(tmp.path(), false).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let (rt, second) = replayed(tmp.path(), false).await;
    assert_eq!(first, second);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

// ---------------------------------------------------------------------------
// tests/fixtures/jobs-image-v1: the same jobs as jobs-v1 (its log copied),
// finished jobs kept for a thousand years (so no test's checkpoint ever
// removes one), checkpointed by the code of 2026-12 (row pages, slice maps, the state and
// kind indexes, expiry filing), then records after the image: job 1
// destroyed (a tombstone), job 13 submitted. It must keep opening to its
// table (expected-image.json) as the page, row and index formats move on.
//
// Regenerate only on purpose (the point is old data):
// `cargo test -p booster-tests --test job_table_fixture write_image_fixture -- --ignored`

fn expected_image() -> Value {
    let text = std::fs::read_to_string(fixture_dir("expected-image.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The meta records of the store in `dir` (a copy: the store's open takes
/// its lock and reserve) as the store hands them to an open: from the
/// newest checkpoint on.
fn meta_log(dir: &Path) -> Vec<String> {
    let opts = booster_store::StoreOptions::default();
    let (store, _) = booster_store::Store::open(dir, opts).unwrap();
    let records = store.meta_records().unwrap();
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

#[tokio::test]
async fn image_fixture_opens_to_its_table() {
    let tmp = copy_fixture("jobs-image-v1");
    let log = meta_log(tmp.path());
    assert!(
        log[0].contains(r#""t":"checkpoint""#),
        "the fixture's log starts at its checkpoint: {}",
        log[0]
    );
    let (rt, table) = replayed(tmp.path(), false).await;
    assert_same_table("jobs-image-v1", &table, &expected_image()["jobs"]);
    assert!(
        matches!(
            rt.job(1).await,
            Err(RuntimeError::NotFound(
                1,
                booster_runtime::Missing::Destroyed { .. }
            ))
        ),
        "job 1 was destroyed after the image: {:?}",
        rt.job(1).await.map(|s| s.state)
    );
    assert!(matches!(
        rt.job(5).await,
        Err(RuntimeError::NotFound(5, booster_runtime::Missing::Removed))
    ));
    assert_kinds_list_as_the_table(&rt, "the image fixture").await;
    assert_sliced_output_reads_back(&rt);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Today's code checkpoints over the fixture's image (its pages merged,
/// not rewritten whole) and the reopen lists the same table; the next id
/// follows the fixture's.
#[tokio::test]
async fn image_fixture_checkpointed_again_lists_the_same_table() {
    let tmp = copy_fixture("jobs-image-v1");
    let mut o = generator_opts(tmp.path(), false, true);
    o.auto_checkpoint = false;
    let rt = Runtime::open(o).await.unwrap();
    rt.checkpoint().await.unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let (rt, table) = replayed(tmp.path(), false).await;
    assert_same_table(
        "jobs-image-v1 checkpointed",
        &table,
        &expected_image()["jobs"],
    );
    assert_kinds_list_as_the_table(&rt, "checkpointed again").await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let mut o = generator_opts(tmp.path(), false, false);
    o.auto_checkpoint = false;
    let rt = Runtime::open(o).await.unwrap();
    let next = rt
        .submit(JobSpec::simple("noop", Value::Null))
        .await
        .unwrap();
    assert_eq!(next, 14, "ids go on after the fixture's job 13");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the image fixture; run on purpose only"]
async fn write_image_fixture() {
    let dir = fixture_dir("jobs-image-v1");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture_dir("jobs-v1")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let mut o = generator_opts(&dir, false, true);
    o.auto_checkpoint = false;
    let rt = Runtime::open(o).await.unwrap();
    // Kept for a thousand years, so no checkpoint a test takes, whenever it
    // runs, removes a row or a tombstone the fixture pins.
    let forever = 1000 * 365 * 24 * 3600 * 1000;
    rt.set_retention(Retention {
        completed_ms: forever,
        aborted_ms: forever,
        failed_ms: forever,
    })
    .await
    .unwrap();
    rt.checkpoint().await.unwrap();
    rt.destroy(1).await.unwrap();
    let next = rt
        .submit(described(
            JobSpec::simple("ok-simple", json!({"after": "the image"})),
            "submitted after the checkpoint",
        ))
        .await
        .unwrap();
    assert_eq!(next, 13);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    strip(&dir);
    let (rt, table) = replayed(&dir, false).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    strip(&dir);
    std::fs::write(
        fixture_dir("expected-image.json"),
        serde_json::to_string_pretty(&json!({ "jobs": table })).unwrap() + "\n",
    )
    .unwrap();
}

// ---------------------------------------------------------------------------
// The generator: how the fixture was written (by the code of its day).

struct OkSimple;
impl SimpleHandler for OkSimple {
    fn perform(&self, _: &JobContext<'_>, args: &Value) -> Result<Option<Value>, HandlerError> {
        Ok(Some(json!({ "echo": args })))
    }
}

struct FailSimple;
impl SimpleHandler for FailSimple {
    fn perform(&self, _: &JobContext<'_>, _: &Value) -> Result<Option<Value>, HandlerError> {
        Err(HandlerError("boom".into()))
    }
}

/// Copies records; a record starting `bad` fails.
struct Echo;
impl RecordHandler for Echo {
    fn process(
        &self,
        _: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if record.starts_with(b"bad") {
            return Err(HandlerError("bad record".into()));
        }
        out.push(record.to_vec());
        Ok(())
    }
}

static GATE_OPEN: AtomicBool = AtomicBool::new(false);

/// Copies records; a record starting `wait` blocks until `GATE_OPEN`.
struct Gate;
impl RecordHandler for Gate {
    fn process(
        &self,
        _: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        while record.starts_with(b"wait") && !GATE_OPEN.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        out.push(record.to_vec());
        Ok(())
    }
}

async fn until(rt: &Runtime, what: &str, cond: impl Fn(&[JobStatus]) -> bool) {
    for _ in 0..2000 {
        if cond(&rt.jobs(JobFilter::default()).await.unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("gave up waiting for {what}");
}

async fn upload(rt: &Runtime, job: JobId, records: &[&str]) -> Uploader {
    let mut up = rt.upload(job).await.unwrap();
    for r in records {
        up.push(r.as_bytes().to_vec()).await.unwrap();
    }
    up
}

fn described(mut spec: JobSpec, description: &str) -> JobSpec {
    spec.description = description.into();
    spec
}

fn generator_opts(dir: &Path, key: bool, workers: bool) -> RuntimeOptions {
    let mut o = read_only(dir, key);
    o.workers = 2;
    o.start_workers = workers;
    o
}

/// Leaves only the files a data directory must hold (no LOCK, no RESERVE).
fn strip(dir: &Path) {
    for name in ["LOCK", "RESERVE"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

async fn write_plain(dir: &Path) -> Vec<Value> {
    let rt = Runtime::open(generator_opts(dir, false, true))
        .await
        .unwrap();
    // Jobs are submitted and uploaded before any handler is registered, so
    // no slice finishes before its upload does.
    let j1 = rt
        .submit(described(
            JobSpec::simple("ok-simple", json!({"n": 1})),
            "simple completed",
        ))
        .await
        .unwrap();
    let j2 = rt
        .submit(described(
            JobSpec::simple("fail-simple", json!({"n": 2})),
            "simple failed",
        ))
        .await
        .unwrap();
    let mut spec = described(
        JobSpec::sliced("echo")
            .with_slice_size(3)
            .with_collect_errors(true),
        "sliced completed with errors",
    );
    spec.priority = 20;
    spec.properties = json!({"format": "lines"});
    let j3 = rt.submit(spec).await.unwrap();
    let mut up = upload(&rt, j3, &["a1", "a2", "a3", "bad-4", "a5", "a6"]).await;
    up.push_rejected(b"not a record".to_vec(), 7, "malformed".into())
        .await
        .unwrap();
    for r in ["a7", "a8"] {
        up.push(r.as_bytes().to_vec()).await.unwrap();
    }
    up.finish().await.unwrap();
    let spec = described(
        JobSpec::sliced("echo").with_slice_size(2),
        "sliced failed slice",
    );
    let j4 = rt.submit(spec).await.unwrap();
    upload(&rt, j4, &["b1", "b2", "bad-3", "b4", "b5", "b6"])
        .await
        .finish()
        .await
        .unwrap();
    let j5 = rt
        .submit(described(JobSpec::sliced("echo"), "destroyed"))
        .await
        .unwrap();
    upload(&rt, j5, &["c1", "c2"]).await.finish().await.unwrap();
    rt.register_simple("ok-simple", Arc::new(OkSimple));
    rt.register_simple("fail-simple", Arc::new(FailSimple));
    rt.register_sliced("echo", Arc::new(Echo));
    for j in [j1, j2, j3, j4, j5] {
        rt.wait(j).await.unwrap();
    }
    rt.destroy(j5).await.unwrap();
    // Jobs 1-4 now live in `Restore` records, the next id in `NextId`.
    rt.compact().await.unwrap();
    rt.retry(j4).await.unwrap();
    rt.wait(j4).await.unwrap();

    let j6 = rt
        .submit(described(
            JobSpec::simple("idle-simple", json!([6])),
            "simple queued",
        ))
        .await
        .unwrap();
    rt.set_priority(j6, 7).await.unwrap();
    let mut spec = described(JobSpec::simple("ok-simple", json!(7)), "simple scheduled");
    spec.run_at = Some(UNIX_EPOCH + Duration::from_secs(4_102_444_800)); // 2100-01-01
    let j7 = rt.submit(spec).await.unwrap();
    let j8 = rt
        .submit(described(
            JobSpec::simple("idle-simple", Value::Null),
            "simple paused",
        ))
        .await
        .unwrap();
    rt.pause(j8).await.unwrap();
    let j9 = rt
        .submit(described(
            JobSpec::simple("idle-simple", Value::Null),
            "simple aborted",
        ))
        .await
        .unwrap();
    rt.abort(j9).await.unwrap();
    assert_eq!((j6, j7, j8, j9), (6, 7, 8, 9));

    // Running: slices 0-2 done, slice 3 blocked in its handler when the
    // process stops.
    let spec = described(JobSpec::sliced("gate").with_slice_size(2), "sliced running");
    let j10 = rt.submit(spec).await.unwrap();
    rt.set_max_workers(j10, Some(1)).await.unwrap();
    let records = [
        "d1", "d2", "d3", "d4", "d5", "d6", "wait-7", "d8", "d9", "d10",
    ];
    upload(&rt, j10, &records).await.finish().await.unwrap();
    // Failed, upload interrupted: three slices durable, no `UploadComplete`
    // (the uploader is forgotten, as a kill would), then the next process
    // that runs work writes `UploadFailed`.
    let j11 = rt
        .submit(described(
            JobSpec::sliced("idle-sliced").with_slice_size(2),
            "interrupted upload",
        ))
        .await
        .unwrap();
    let up = upload(&rt, j11, &["e1", "e2", "e3", "e4", "e5", "e6"]).await;
    until(&rt, "three slices of job 11", |js| {
        js.iter().any(|j| j.id == j11 && j.slices_total == 3)
    })
    .await;
    std::mem::forget(up);
    // Failed, aborted while running would be Aborted; this one is failed by
    // its caller with a reason.
    let j12 = rt
        .submit(described(
            JobSpec::sliced("idle-sliced"),
            "failed by its caller",
        ))
        .await
        .unwrap();
    upload(&rt, j12, &["f1"]).await.finish().await.unwrap();
    rt.fail(j12, "stale feed".into()).await.unwrap();

    rt.register_sliced("gate", Arc::new(Gate));
    until(&rt, "three slices of job 10 done", |js| {
        js.iter().any(|j| j.id == j10 && j.slices_done == 3)
    })
    .await;
    rt.shutdown(Duration::ZERO).await.unwrap();
    GATE_OPEN.store(true, Ordering::Release);

    // The next process that runs work fails the interrupted upload.
    let rt = Runtime::open(generator_opts(dir, false, true))
        .await
        .unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    strip(dir);
    let (rt, table) = replayed(dir, false).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    strip(dir);
    table
}

async fn write_encrypted(dir: &Path) -> Vec<Value> {
    let rt = Runtime::open(generator_opts(dir, true, true))
        .await
        .unwrap();
    let j1 = rt
        .submit(JobSpec::simple("ok-simple", json!("secret-args")))
        .await
        .unwrap();
    let j2 = rt.submit(JobSpec::sliced("echo")).await.unwrap();
    upload(&rt, j2, &["secret-1", "secret-2"])
        .await
        .finish()
        .await
        .unwrap();
    rt.register_simple("ok-simple", Arc::new(OkSimple));
    rt.register_sliced("echo", Arc::new(Echo));
    rt.wait(j1).await.unwrap();
    rt.wait(j2).await.unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    strip(dir);
    let (rt, table) = replayed(dir, true).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    strip(dir);
    table
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture; run on purpose only"]
async fn write_fixture() {
    let plain_dir = fixture_dir("jobs-v1");
    let encrypted_dir = fixture_dir("jobs-v1-encrypted");
    for d in [&plain_dir, &encrypted_dir] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).unwrap();
    }
    let plain = write_plain(&plain_dir).await;
    let encrypted = write_encrypted(&encrypted_dir).await;
    let expected = json!({ "plain": plain, "encrypted": encrypted });
    std::fs::write(
        fixture_dir("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
}
