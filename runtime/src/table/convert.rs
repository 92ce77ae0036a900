//! A job in RAM (`Job`) and its durable form in the table (`Row`, plus a
//! sliced job's `SliceMap`): every durable field goes both ways, the live
//! marks (`ready`, `accepted`, `refused`, leases, panics) do not. The
//! row names its kind by id (`KindIds`); error groups and slice failures
//! go through the meta wire's spelling, so renaming a field of the
//! embedding API's types cannot change the row format.

use std::sync::Arc;

use super::row::{Row, RowBody, SlicedRow};
use super::slice_map::SliceMap;
use super::{Body, Job, SimpleBody, SlicedBody, UploadState};
use crate::meta::{failures_from_json, failures_to_json, groups_from_json, groups_to_json};

fn upload_byte(u: UploadState) -> u8 {
    match u {
        UploadState::Open => 0,
        UploadState::Complete => 1,
        UploadState::Failed => 2,
    }
}

fn upload_of(b: u8) -> Result<UploadState, String> {
    match b {
        0 => Ok(UploadState::Open),
        1 => Ok(UploadState::Complete),
        2 => Ok(UploadState::Failed),
        _ => Err(format!("upload state {b}")),
    }
}

/// `job`'s row and, for a sliced job, its slice map.
pub fn row_of(job: &Job) -> (Row, Option<SliceMap>) {
    let (body, expiries, map) = match &job.body {
        Body::Simple(s) => (
            RowBody::Simple {
                args: (*s.args).clone(),
                result: s.result.clone(),
            },
            s.expiries,
            None,
        ),
        Body::Sliced(s) => {
            let row = SlicedRow {
                slice_size: s.slice_size,
                collect_errors: s.collect_errors,
                upload: upload_byte(s.upload),
                before_done: s.before_done,
                records_in: s.records_in,
                records_rejected: s.records_rejected,
                records_out: s.records_out,
                records_written: s.records_written,
                records_errors: s.records_errors,
                records_in_failed_slices: s.records_in_failed_slices,
                slices_total: s.slices.count(),
                slices_done: s.slices_done,
                slices_failed: s.slices_failed,
                collected_errors: groups_to_json(&s.collected_errors),
                failures: failures_to_json(&s.failures),
                categories: s
                    .categories
                    .iter()
                    .cloned()
                    .zip(s.records_by_category.iter().copied())
                    .collect(),
            };
            let map = s.slices.clone();
            (RowBody::Sliced(Box::new(row)), s.hook_expiries, Some(map))
        }
    };
    let row = Row {
        id: job.id,
        state: job.state.index() as u8,
        final_state: 0,
        priority: job.priority,
        destroy_on_complete: job.destroy_on_complete,
        kind: job.kind_id,
        max_workers: job.max_workers,
        attempts: job.attempts,
        expiries,
        created_ms: job.created_ms,
        completed_us: job.completed_us,
        started_us: job.started_us,
        run_at_ms: job.run_at_ms,
        expires_at_ms: job.expires_at_ms,
        destroyed_ms: None,
        description: job.description.clone(),
        properties: (*job.properties).clone(),
        failure_reason: job.failure_reason.clone(),
        singleton: job.singleton.as_deref().map(str::to_string),
        cron: job.cron,
        after: job.after.clone(),
        on_dependency_failure: job.on_dependency_failure,
        window: job.window,
        body,
    };
    match job.destroyed_ms {
        Some(at_ms) => (row.into_destroyed(at_ms), None),
        None => (row, map),
    }
}

/// The job a row (and a sliced job's slice map) holds, of kind `kind`
/// (the name of the row's kind id), with no live marks. A destroyed row
/// is a tombstone (`Job::into_destroyed`); a stub is not a job.
pub fn job_of(row: Row, map: Option<SliceMap>, kind: Arc<str>) -> Result<Job, String> {
    let destroyed_ms = row.destroyed_ms;
    let state = match destroyed_ms {
        Some(_) => crate::JobState::ALL
            .get(usize::from(row.final_state))
            .copied(),
        None => row.job_state(),
    }
    .ok_or_else(|| format!("row {}: state {}", row.id, row.state))?;
    let body = match (row.body, map) {
        (RowBody::Gone, None) => Body::Simple(SimpleBody {
            args: Arc::new(serde_json::Value::Null),
            result: None,
            expiries: 0,
        }),
        (RowBody::Simple { args, result }, None) => Body::Simple(SimpleBody {
            args: Arc::new(args),
            result,
            expiries: row.expiries,
        }),
        (RowBody::Sliced(s), Some(map)) => {
            let mut body = sliced_of(*s, &map)?;
            body.hook_expiries = row.expiries;
            Body::Sliced(Box::new(body))
        }
        (RowBody::Sliced(_), None) => {
            return Err(format!(
                "row {}: a sliced job without its slice map",
                row.id
            ))
        }
        (_, _) => return Err(format!("row {}: not a whole row of a job", row.id)),
    };
    Ok(Job {
        id: row.id,
        kind,
        kind_id: row.kind,
        description: row.description,
        priority: row.priority,
        max_workers: row.max_workers,
        run_at_ms: row.run_at_ms,
        expires_at_ms: row.expires_at_ms,
        created_ms: row.created_ms,
        started_us: row.started_us,
        completed_us: row.completed_us,
        state,
        properties: Arc::new(row.properties),
        failure_reason: row.failure_reason,
        attempts: row.attempts,
        body,
        singleton: row.singleton.map(Arc::from),
        cron: row.cron,
        after: row.after,
        on_dependency_failure: row.on_dependency_failure,
        window: row.window,
        destroy_on_complete: row.destroy_on_complete,
        destroyed_ms,
    })
}

fn sliced_of(s: SlicedRow, map: &SliceMap) -> Result<SlicedBody, String> {
    let (names, counts): (Vec<String>, Vec<u64>) = s.categories.into_iter().unzip();
    let mut body = SlicedBody::new(s.slice_size, s.collect_errors).with_categories(names);
    body.records_by_category = counts;
    body.upload = upload_of(s.upload)?;
    body.before_done = s.before_done;
    body.records_in = s.records_in;
    body.records_rejected = s.records_rejected;
    body.records_out = s.records_out;
    body.records_written = s.records_written;
    body.records_errors = s.records_errors;
    body.records_in_failed_slices = s.records_in_failed_slices;
    body.slices_done = s.slices_done;
    body.slices_failed = s.slices_failed;
    body.collected_errors = groups_from_json(s.collected_errors)?;
    body.failures = failures_from_json(s.failures)?;
    body.slices = map.clone();
    if body.slices.count() != s.slices_total {
        return Err(format!(
            "the row counts {} slices, its map {}",
            s.slices_total,
            body.slices.count()
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::table::slice_map::{SliceDetail, SlicePlace};
    use crate::table::{page, row, SliceState};
    use crate::{CronRun, DependencyFailure, ErrorGroup, JobState, RecordErrorSample};

    /// The durable fields of a job: exactly what a compaction snapshot's
    /// `restore` record holds.
    fn durable(job: &Job) -> Vec<u8> {
        crate::meta::encode(&crate::meta::Meta::Restore {
            job: Box::new(job.clone()),
        })
    }

    fn text() -> impl Strategy<Value = String> {
        "\\PC{0,12}"
    }

    fn json_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(|n| json!({ "n": n })),
            text().prop_map(Value::String),
        ]
    }

    fn sample() -> impl Strategy<Value = RecordErrorSample> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<Option<u64>>(),
            text(),
            text(),
        )
            .prop_map(
                |(slice, record_number, line, record, message)| RecordErrorSample {
                    slice,
                    record_number,
                    line,
                    record,
                    message,
                },
            )
    }

    /// One uploaded slice: its place, state and detail.
    type Slice = (SlicePlace, SliceState, SliceDetail);

    fn slice() -> impl Strategy<Value = Slice> {
        let small = 0..(1u64 << 40);
        let vec =
            || proptest::option::of(prop::collection::vec(any::<u64>(), 0..4).prop_map(Arc::new));
        (
            (small.clone(), 0..3u32, proptest::option::of(small)),
            prop_oneof![
                Just(SliceState::Pending),
                Just(SliceState::Done),
                Just(SliceState::Failed)
            ],
            (
                0..3u32,
                0..3u32,
                0..3u32,
                any::<Option<u64>>(),
                vec(),
                vec(),
            ),
        )
            .prop_map(
                |(
                    (first_record, records, line_first),
                    state,
                    (errors, expiries, retries, retry_at_ms, lines, numbers),
                )| {
                    let place = SlicePlace {
                        first_record,
                        records,
                        line_first,
                    };
                    let detail = SliceDetail {
                        expiries,
                        panics: 0,
                        retries,
                        retry_at_ms,
                        errors,
                        lines,
                        numbers,
                    };
                    (place, state, detail)
                },
            )
    }

    fn slice_map(slices: BTreeMap<u64, Slice>) -> SliceMap {
        let mut map = SliceMap::default();
        for (seq, (place, state, detail)) in slices {
            map.upload(seq, place, detail.lines.clone(), detail.numbers.clone());
            map.set_state(seq, state);
            map.with_detail(seq, |d| *d = detail);
        }
        map
    }

    fn sliced_body() -> impl Strategy<Value = SlicedBody> {
        (
            (1..100_000u32, any::<bool>(), 0..3u8, any::<bool>()),
            prop::array::uniform6(any::<u64>()),
            (proptest::option::of(0..u64::MAX), any::<u32>()),
            prop::collection::vec((text(), any::<u64>()), 0..3),
            prop::collection::vec(
                (text(), any::<u64>(), prop::collection::vec(sample(), 0..2)),
                0..3,
            ),
            prop::collection::btree_map(
                any::<u64>(),
                (text(), proptest::option::of(sample())),
                0..3,
            ),
            prop::collection::btree_map(0..40u64, slice(), 0..12),
        )
            .prop_map(
                |(head, n, (written, hook_expiries), categories, groups, failures, slices)| {
                    let (slice_size, collect_errors, upload, before_done) = head;
                    let (names, counts): (Vec<String>, Vec<u64>) = categories.into_iter().unzip();
                    let mut s = SlicedBody::new(slice_size, collect_errors).with_categories(names);
                    s.records_by_category = counts;
                    s.upload = upload_of(upload).unwrap();
                    s.before_done = before_done;
                    s.records_in = n[0];
                    s.records_rejected = n[1];
                    s.records_out = n[2];
                    s.records_written = written;
                    s.records_errors = n[3];
                    s.records_in_failed_slices = n[4];
                    s.slices_done = n[5];
                    s.slices_failed = n[5] / 3;
                    s.hook_expiries = hook_expiries;
                    s.collected_errors = groups
                        .into_iter()
                        .map(|(message, count, samples)| ErrorGroup {
                            message,
                            count,
                            samples,
                        })
                        .collect();
                    s.failures = failures;
                    s.slices = slice_map(slices);
                    s
                },
            )
    }

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (
                json_value(),
                proptest::option::of(json_value()),
                any::<u32>()
            )
                .prop_map(|(args, result, expiries)| Body::Simple(SimpleBody {
                    args: Arc::new(args),
                    result,
                    expiries,
                })),
            sliced_body().prop_map(|s| Body::Sliced(Box::new(s))),
        ]
    }

    fn job() -> impl Strategy<Value = Job> {
        let time = || proptest::option::of(1..u64::MAX);
        (
            (
                1..(1u64 << 50),
                prop::sample::select(vec!["copy", "a", "é"]),
                text(),
                1..=100u8,
            ),
            (
                proptest::option::of(1..1000u32),
                time(),
                time(),
                any::<u64>(),
                time(),
                time(),
            ),
            (
                prop::sample::select(JobState::ALL.to_vec()),
                json_value(),
                proptest::option::of(text()),
                any::<u32>(),
                proptest::option::of(any::<bool>()),
            ),
            body(),
            (
                proptest::option::of(text()),
                proptest::option::of((any::<u64>(), any::<u64>())),
                prop::collection::vec(any::<u64>(), 0..3),
                prop::sample::select(vec![
                    DependencyFailure::Fail,
                    DependencyFailure::Abort,
                    DependencyFailure::Run,
                ]),
                proptest::option::of((
                    0u16..1440,
                    0u16..1440,
                    prop::sample::select(vec!["UTC", "Europe/Berlin", "Asia/Kolkata"]),
                ))
                .prop_map(|w| {
                    w.and_then(|(s, e, tz)| crate::ProcessingWindow::new(s, e, Some(tz)).ok())
                }),
            ),
        )
            .prop_map(|(a, b, c, body, d)| {
                let (id, kind, description, priority) = a;
                let (max_workers, run_at_ms, expires_at_ms, created_ms, started_us, completed_us) =
                    b;
                let (state, properties, failure_reason, attempts, destroy_on_complete) = c;
                let (singleton, cron, after, on_dependency_failure, window) = d;
                Job {
                    id,
                    kind: Arc::from(kind),
                    kind_id: 7,
                    description,
                    priority,
                    max_workers,
                    run_at_ms,
                    expires_at_ms,
                    created_ms,
                    started_us,
                    completed_us,
                    state,
                    properties: Arc::new(properties),
                    failure_reason,
                    attempts,
                    body,
                    singleton: singleton.map(Arc::from),
                    cron: cron.map(|(cron, tick_ms)| CronRun { cron, tick_ms }),
                    after,
                    on_dependency_failure,
                    window,
                    destroy_on_complete,
                    destroyed_ms: None,
                }
            })
    }

    /// `row` encoded into its page (or as a large row) and decoded back.
    fn through_a_page(row: &row::Row, id: crate::JobId) -> row::Row {
        let (page_no, _) = crate::table::keys::page_of(id);
        let encoded = page::encode(std::slice::from_ref(row)).unwrap();
        match encoded.large.first() {
            Some((_, whole)) => row::decode(whole, page_no).unwrap(),
            None => page::decode(page_no, &encoded.records).unwrap().remove(0),
        }
    }

    fn config() -> proptest::test_runner::Config {
        booster_tests::rng::proptest_config("job_to_row_and_back", 256, 20_000)
    }

    proptest! {
        #![proptest_config(config())]

        /// Job -> row (+ slice map) -> bytes -> row -> job keeps every
        /// durable field.
        #[test]
        fn a_job_survives_its_row_and_slice_map(job in job()) {
            let (row, map) = row_of(&job);
            let decoded = through_a_page(&row, job.id);
            prop_assert_eq!(&decoded, &row);
            let map = map.map(|m| crate::table::slice_map::decode(&crate::table::slice_map::encode(&m)).unwrap());
            let back = job_of(decoded, map, job.kind.clone()).unwrap();
            prop_assert_eq!(durable(&back), durable(&job));
        }

        /// A destroyed job's row is a tombstone: its state, times, kind,
        /// description and failure reason come back, its body does not.
        #[test]
        fn a_destroyed_job_survives_its_row_as_a_tombstone(job in job(), at_ms in 1..u64::MAX) {
            let gone = job.clone().into_destroyed(at_ms);
            let (row, map) = row_of(&gone);
            prop_assert!(map.is_none());
            prop_assert_eq!(row.state, row::STATE_DESTROYED);
            let decoded = through_a_page(&row, job.id);
            let back = job_of(decoded, None, job.kind.clone()).unwrap();
            prop_assert_eq!(back.destroyed_ms, Some(at_ms));
            prop_assert_eq!(back.state, job.state);
            prop_assert_eq!(&back.description, &job.description);
            prop_assert_eq!(&back.failure_reason, &job.failure_reason);
            prop_assert_eq!(back.completed_us, job.completed_us);
            prop_assert_eq!(back.destroy_on_complete, job.destroy_on_complete);
            prop_assert_eq!(durable(&back), durable(&gone));
        }
    }
}
