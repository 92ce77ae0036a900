//! The runtime's meta records (its durable log of job-state changes) made
//! hostile: real records written by a real runtime, mutated byte-wise and
//! field-wise (numbers at their limits, strings emptied, fields dropped,
//! tags swapped), are appended to a copy of the data directory or replace
//! a record of it. `Runtime::open` and every read after it must return
//! values or errors: no panic on any thread (checked with a panic hook,
//! since a panic inside the runtime's blocking tasks would otherwise come
//! back as an ordinary error), and no hang.
//!
//! Short by default; `BOOSTER_LONG=1` runs many more cases.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use booster_runtime::{
    Category, HandlerError, JobContext, JobFilter, JobSpec, RecordHandler, Runtime, RuntimeOptions,
    SimpleHandler,
};
use booster_store::{Batch, Store, StoreOptions};
use booster_tests::rng::proptest_config;
use proptest::prelude::*;
use serde_json::Value;

static PANICS: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn install_panic_counter() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            *LAST_PANIC.lock().unwrap() = info.to_string();
            default(info);
        }));
    });
}

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
struct Nothing;
impl SimpleHandler for Nothing {
    fn perform(&self, _: &JobContext<'_>, args: &Value) -> Result<Option<Value>, HandlerError> {
        Ok(Some(args.clone()))
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options(dir: &Path, workers: bool) -> RuntimeOptions {
    let mut o = RuntimeOptions::new(dir);
    o.workers = 2;
    o.start_workers = workers;
    o
}

/// A data directory written by a real runtime: simple jobs, a sliced job
/// with record errors, a paused and resumed job, a priority change, a
/// destroyed job and a compaction. Returns its segment files.
/// (segment files by name, the meta records in order).
type Original = (Vec<(String, Vec<u8>)>, Vec<Vec<u8>>);

fn original() -> &'static Original {
    static ORIGINAL: OnceLock<Original> = OnceLock::new();
    ORIGINAL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        tokio_rt().block_on(async {
            let rt = Runtime::open(options(dir.path(), true)).await.unwrap();
            rt.register_sliced("echo", Arc::new(Echo));
            rt.register_simple("nothing", Arc::new(Nothing));
            let specs = (0..5)
                .map(|i| JobSpec::simple("nothing", serde_json::json!({ "i": i })))
                .collect();
            rt.submit_many(specs).await.unwrap();
            for round in 0..2 {
                let id = rt
                    .submit(
                        JobSpec::sliced("echo")
                            .with_slice_size(3)
                            .with_collect_errors(true),
                    )
                    .await
                    .unwrap();
                let mut up = rt.upload(id).await.unwrap();
                for i in 0..10 {
                    let rec = if i % 4 == 1 {
                        format!("bad-{i}")
                    } else {
                        format!("rec-{round}-{i}")
                    };
                    up.push(rec.into_bytes()).await.unwrap();
                }
                up.finish().await.unwrap();
                let _ = rt.set_priority(id, 7).await;
                rt.wait(id).await.unwrap();
                if round == 0 {
                    rt.destroy(id).await.unwrap();
                }
            }
            let paused = rt.submit(JobSpec::sliced("echo")).await.unwrap();
            let mut up = rt.upload(paused).await.unwrap();
            up.push(b"x".to_vec()).await.unwrap();
            up.finish().await.unwrap();
            let _ = rt.pause(paused).await;
            rt.wait_idle().await;
            rt.compact().await.unwrap();
            let failed = rt.submit(JobSpec::sliced("echo")).await.unwrap();
            let up = rt.upload(failed).await.unwrap();
            up.fail("test upload failure".into()).await.unwrap();
            rt.shutdown(Duration::from_secs(5)).await.unwrap();
        });
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let meta = store.meta_records().unwrap();
        store.close().unwrap();
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // The segments and the MANIFEST that lists them: a store
            // refuses segments it cannot account for (G11).
            if name.ends_with(".bseg") || name == "MANIFEST" {
                files.push((name, std::fs::read(&p).unwrap()));
            }
        }
        (files, meta)
    })
}

/// One field-wise or byte-wise change to a meta record.
#[derive(Clone, Debug)]
enum Edit {
    /// Replace the k-th number in the JSON with a hostile one.
    Number(usize, u8),
    /// Replace the k-th string with a hostile one.
    Text(usize, u8),
    /// Drop the k-th field of the k-th object.
    DropField(usize),
    /// Change the record's tag to another known one.
    Tag(u8),
    /// Flip a byte of the encoded record.
    Byte(usize, u8),
}

const HOSTILE_NUMBERS: [&str; 8] = [
    "0",
    "-1",
    "18446744073709551615",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "1e308",
    "255",
];
const TAGS: [&str; 14] = [
    "created",
    "uploaded",
    "upload_complete",
    "upload_failed",
    "before_done",
    "slice_done",
    "slice_failed",
    "after_done",
    "hook_failed",
    "simple_done",
    "control",
    "priority",
    "max_workers",
    "next_id",
];

fn visit<'a>(v: &'a mut Value, numbers: &mut Vec<&'a mut Value>, strings: &mut Vec<&'a mut Value>) {
    match v {
        Value::Number(_) => numbers.push(v),
        Value::String(_) => strings.push(v),
        Value::Array(a) => a.iter_mut().for_each(|x| visit(x, numbers, strings)),
        Value::Object(m) => m.values_mut().for_each(|x| visit(x, numbers, strings)),
        _ => {}
    }
}

/// Removes one field of the `*left`-th object (depth first); true once done.
fn drop_field(v: &mut Value, left: &mut usize, pick: usize) -> bool {
    match v {
        Value::Object(m) => {
            if *left == 0 && !m.is_empty() {
                let key = m.keys().nth(pick % m.len()).cloned().unwrap();
                m.remove(&key);
                return true;
            }
            *left = left.saturating_sub(1);
            m.values_mut().any(|x| drop_field(x, left, pick))
        }
        Value::Array(a) => a.iter_mut().any(|x| drop_field(x, left, pick)),
        _ => false,
    }
}

fn apply(record: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = record.to_vec();
    for edit in edits {
        if let Edit::Byte(at, x) = edit {
            if !bytes.is_empty() {
                let n = bytes.len();
                bytes[at % n] ^= x | 1;
            }
            continue;
        }
        let Some((&tag, body)) = bytes.split_first() else {
            continue;
        };
        let Ok(mut json) = serde_json::from_slice::<Value>(body) else {
            continue;
        };
        match edit {
            Edit::Tag(t) => {
                if let Some(m) = json.as_object_mut() {
                    m.insert(
                        "t".into(),
                        Value::String(TAGS[*t as usize % TAGS.len()].into()),
                    );
                }
            }
            Edit::Number(k, h) | Edit::Text(k, h) => {
                let (mut numbers, mut strings) = (Vec::new(), Vec::new());
                visit(&mut json, &mut numbers, &mut strings);
                if let Edit::Number(..) = edit {
                    if !numbers.is_empty() {
                        let n = numbers.len();
                        let text = HOSTILE_NUMBERS[*h as usize % HOSTILE_NUMBERS.len()];
                        *numbers[k % n] = serde_json::from_str(text).unwrap();
                    }
                } else if !strings.is_empty() {
                    let n = strings.len();
                    let s = match h % 3 {
                        0 => String::new(),
                        1 => "\u{0}\u{fffd}".repeat(3),
                        _ => "x".repeat(70_000),
                    };
                    *strings[k % n] = Value::String(s);
                }
            }
            Edit::DropField(k) => {
                let mut left = k % 8;
                drop_field(&mut json, &mut left, *k);
            }
            Edit::Byte(..) => unreachable!(),
        }
        bytes = std::iter::once(tag)
            .chain(serde_json::to_vec(&json).unwrap())
            .collect();
    }
    bytes
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(k, h)| Edit::Number(k, h)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(k, h)| Edit::Text(k, h)),
        2 => any::<usize>().prop_map(Edit::DropField),
        1 => any::<u8>().prop_map(Edit::Tag),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(k, x)| Edit::Byte(k, x)),
    ]
}

/// Opens the directory and reads everything it can; fails on a panic or a hang.
fn open_and_read(dir: &Path) {
    let before = PANICS.load(Ordering::SeqCst);
    let rt = tokio_rt();
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            let Ok(runtime) = Runtime::open(options(dir, false)).await else {
                return;
            };
            for job in runtime.jobs(JobFilter::default()).await.unwrap() {
                let _ = runtime.job(job.id).await;
                for c in [Category::Input, Category::Main, Category::Errors] {
                    if let Ok(d) = runtime.download(job.id, c) {
                        for r in d.take(100) {
                            let _ = r;
                        }
                    }
                }
            }
            let _ = runtime.shutdown(Duration::from_secs(2)).await;
        })
        .await
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    assert!(
        outcome.is_ok(),
        "Runtime::open or a read hung on hostile meta records"
    );
    let after = PANICS.load(Ordering::SeqCst);
    // Copied out first: the panic hook takes this lock too, so holding it
    // while the assertion panics would deadlock the test.
    let last = LAST_PANIC.lock().unwrap().clone();
    assert_eq!(before, after, "a panic on hostile meta records: {last}");
}

proptest! {
    #![proptest_config(proptest_config("hostile_meta", 40, 3_000))]

    #[test]
    fn hostile_meta_records_never_panic_or_hang_the_runtime(
        pick in any::<usize>(),
        replace in any::<bool>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        install_panic_counter();
        let (files, meta) = original();
        let k = pick % meta.len();
        let hostile = apply(&meta[k], &edits);
        let dir = tempfile::tempdir().unwrap();
        if replace {
            // The same log with record k replaced (no slices).
            let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
            for (i, m) in meta.iter().enumerate() {
                let m = if i == k { hostile.clone() } else { m.clone() };
                store.append(Batch::new().meta(m)).unwrap();
            }
            store.close().unwrap();
        } else {
            // The real directory with the hostile record appended.
            for (name, bytes) in files {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
            store.append(Batch::new().meta(hostile)).unwrap();
            store.close().unwrap();
        }
        open_and_read(dir.path());
    }
}

/// The untouched log opens and lists its jobs (so the cases above start
/// from a log the runtime accepts).
#[test]
fn the_original_meta_log_opens() {
    let (files, meta) = original();
    assert!(
        meta.len() >= 5,
        "expected a real log, got {} records",
        meta.len()
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    tokio_rt().block_on(async {
        let rt = Runtime::open(options(dir.path(), false)).await.unwrap();
        assert!(rt.jobs(JobFilter::default()).await.unwrap().len() >= 7);
        rt.shutdown(Duration::from_secs(2)).await.unwrap();
    });
}
