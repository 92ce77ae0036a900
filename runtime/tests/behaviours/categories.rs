//! Output categories beyond `main` and `errors`: a handler sorts records
//! into the job's declared categories, every input record stays accounted
//! for, each category downloads on its own, and the counts survive reopen
//! and compaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;

use crate::common::*;

const CATEGORIES: [&str; 3] = ["valid", "review", "rejected"];

/// Record `rNNNNN` by `N % 6`: 0 a record error, 1 to `valid`, 2 twice to
/// `review`, 3 to `rejected` and to `main`, 4 to `main`, 5 nowhere (a
/// filter). A slice holding `r00035` fails whole.
struct Sorter;

fn number(record: &[u8]) -> u64 {
    std::str::from_utf8(&record[1..]).unwrap().parse().unwrap()
}

impl RecordHandler for Sorter {
    fn process_to(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Output,
    ) -> Result<(), HandlerError> {
        let r = record.to_vec();
        match number(record) % 6 {
            0 => {
                out.emit("valid", b"written before the error".to_vec())?;
                return Err(HandlerError("multiple of six".into()));
            }
            1 => out.emit("valid", r)?,
            2 => {
                out.emit("review", r.clone())?;
                out.emit("review", r)?;
            }
            3 => {
                out.emit("rejected", r.clone())?;
                out.push(r);
            }
            4 => out.push(r),
            _ => {}
        }
        Ok(())
    }

    /// Built on `Output` as an overriding handler would: the slice with
    /// `r00035` fails whole, the others go record by record.
    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        if records.iter().any(|r| r == b"r00035") {
            return SliceOutcome::Failed {
                message: "slice with r00035".into(),
            };
        }
        let mut output = Output::for_job(job);
        let mut record_errors = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let mut one = Output::for_job(job);
            match self.process_to(job, record, &mut one) {
                Ok(()) => output.append(one),
                Err(e) => record_errors.push((i, e.0)),
            }
        }
        SliceOutcome::Categorized {
            output,
            record_errors,
        }
    }
}

/// What each category must hold for `input`, in input order.
fn expected(input: &[Vec<u8>]) -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mut want: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for name in ["main", "valid", "review", "rejected"] {
        want.insert(name, Vec::new());
    }
    let failed_slice = 3; // r00030..r00039, slice size 10
    for r in input {
        let n = number(r);
        if n / 10 == failed_slice {
            continue;
        }
        match n % 6 {
            1 => want.get_mut("valid").unwrap().push(r.clone()),
            2 => {
                want.get_mut("review").unwrap().push(r.clone());
                want.get_mut("review").unwrap().push(r.clone());
            }
            3 => {
                want.get_mut("rejected").unwrap().push(r.clone());
                want.get_mut("main").unwrap().push(r.clone());
            }
            4 => want.get_mut("main").unwrap().push(r.clone()),
            _ => {}
        }
    }
    want
}

fn category(name: &str) -> Category {
    Category::parse(name).unwrap()
}

async fn assert_sorted(rt: &Runtime, job: JobId, input: &[Vec<u8>]) {
    let s = rt.job(job).await.unwrap();
    let want = expected(input);
    for (name, records) in &want {
        assert_eq!(
            download(rt, job, category(name)),
            *records,
            "category {name} holds what the handler wrote to it, in input order"
        );
        if *name != "main" {
            assert_eq!(
                s.records_out_by_category[*name],
                records.len() as u64,
                "{name}"
            );
        }
    }
    assert_eq!(s.records_out, want["main"].len() as u64);
    assert_eq!(
        s.records_out_by_category.keys().collect::<Vec<_>>(),
        vec!["rejected", "review", "valid"],
        "every declared category is listed, and only those"
    );
    // 60 records: slice 3 (10 records) failed; of the other 50, those with
    // n % 6 == 0 are record errors.
    let errors = input
        .iter()
        .filter(|r| number(r) / 10 != 3 && number(r).is_multiple_of(6))
        .count() as u64;
    assert_eq!(
        (
            s.records_errors,
            s.records_in_failed_slices,
            s.slices_failed
        ),
        (errors, 10, 1)
    );
    assert_eq!(
        s.records_in,
        s.records_processed + s.records_errors + s.records_in_failed_slices,
        "records in = processed (in any category) + errors + failed slices"
    );
    assert_eq!(s.records_processed, 50 - errors);
    let error_entries = download(rt, job, Category::Errors);
    assert_eq!(
        error_entries.len() as u64,
        errors + 10,
        "errors hold both kinds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_categories_download_apart_and_their_counts_reconcile_across_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let input = records(60);
    let job;
    {
        let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
        rt.register_sliced("sort", Arc::new(Sorter));
        let spec = sliced("sort", 10)
            .with_collect_errors(true)
            .with_categories(&CATEGORIES);
        job = rt.submit(spec).await.unwrap();
        upload_all(&rt, job, &input).await;
        let s = rt.wait(job).await.unwrap();
        assert_eq!(s.state, JobState::Failed, "one slice failed");
        assert_sorted(&rt, job, &input).await;
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    // Replayed from the meta log.
    {
        let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
        assert_sorted(&rt, job, &input).await;
        rt.compact().await.unwrap();
        assert_sorted(&rt, job, &input).await;
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    // Replayed from the compaction snapshot (`Restore` records).
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    assert_sorted(&rt, job, &input).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Writes every record to the category its first byte names.
struct ByName;

impl RecordHandler for ByName {
    fn process_to(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Output,
    ) -> Result<(), HandlerError> {
        let text = std::str::from_utf8(record).unwrap();
        let (name, rest) = text.split_once(':').unwrap();
        out.emit(name, rest.as_bytes().to_vec())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitting_to_a_category_the_job_did_not_declare_is_a_record_error() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("by-name", Arc::new(ByName));
    let spec = sliced("by-name", 10)
        .with_collect_errors(true)
        .with_categories(&["valid"]);
    let job = rt.submit(spec).await.unwrap();
    let input: Vec<Vec<u8>> = vec![b"valid:a".to_vec(), b"other:b".to_vec(), b"main:c".to_vec()];
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.records_errors, 1);
    assert_eq!(s.records_out_by_category["valid"], 1);
    assert_eq!(download(&rt, job, category("valid")), vec![b"a".to_vec()]);
    assert_eq!(download(&rt, job, Category::Main), vec![b"c".to_vec()]);
    let errors = download(&rt, job, Category::Errors);
    let text = String::from_utf8(errors[0].clone()).unwrap();
    assert!(
        text.contains("category \\\"other\\\" is not one of this job's categories (valid)"),
        "{text}"
    );
    // A library names no command-line flag: the CLI has its own words.
    assert!(!text.contains("--"), "{text}");
    let err = rt
        .download(job, category("review"))
        .err()
        .expect("an undeclared category is refused")
        .to_string();
    assert!(
        err.contains("has no category \"review\"") && err.contains("main, errors, valid"),
        "{err}"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_category_name_is_refused_at_submit_with_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    for (names, why) in [
        (vec!["Review"], "has the character 'R'"),
        (vec!["main"], "is taken by the runtime"),
        (vec![""], "is empty"),
        (vec!["ok", "ok"], "declared twice"),
    ] {
        let err = rt
            .submit(sliced("x", 10).with_categories(&names))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{names:?}: {err}");
    }
    let err = rt
        .submit(JobSpec::simple("x", serde_json::Value::Null).with_categories(&["ok"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("categories are for sliced jobs"), "{err}");
    assert!(
        rt.jobs(JobFilter::default()).await.unwrap().is_empty(),
        "nothing was created"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
