//! Job-table pages as each row format wrote them (issue 12): format `R`
//! v1 (step 1) and v2 (step 2: `waiting`, cron runs, dependencies, lease
//! expiries, microsecond times). The checked-in bytes must keep decoding
//! to the same rows, so the row format cannot drift.
//! `BOOSTER_WRITE_FIXTURES=1 cargo test -p booster-runtime --test
//! behaviours row_page -- --ignored` rewrites the v2 file, only when the
//! format deliberately changes (then it is v3, and v1 and v2 keep
//! decoding).

use booster_runtime::table_format::{page, row};
use booster_runtime::{CronRun, DependencyFailure};
use row::{Row, RowBody, SlicedRow};
use serde_json::{json, Value};

const FIXTURE_V1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/row-page-v1.bin"
);
const FIXTURE_V2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/row-page-v2.bin"
);

/// Page 2 (ids 128..=191) as v1 wrote it: a no-op completed simple job,
/// a failed sliced job with every optional part v1 had, a destroyed one,
/// and one too long for its page (a stub here). Times v1 kept in
/// milliseconds decode as microseconds.
fn rows_v1() -> Vec<Row> {
    let noop = Row {
        id: 128,
        state: 4,
        final_state: 0,
        priority: 50,
        destroy_on_complete: None,
        kind: 1,
        max_workers: None,
        attempts: 1,
        expiries: 0,
        created_ms: 1_795_000_000_000,
        completed_us: Some(1_795_000_000_007_000),
        started_us: Some(1_795_000_000_003_000),
        run_at_ms: None,
        expires_at_ms: None,
        destroyed_ms: None,
        description: String::new(),
        properties: Value::Null,
        failure_reason: None,
        singleton: None,
        cron: None,
        after: Vec::new(),
        on_dependency_failure: DependencyFailure::Fail,
        window: None,
        body: RowBody::Simple {
            args: Value::Null,
            result: Some(json!({"ok": true})),
        },
    };
    let sliced = Row {
        id: 130,
        state: 5,
        priority: 7,
        destroy_on_complete: Some(true),
        kind: 2,
        max_workers: Some(4),
        run_at_ms: Some(1_795_000_000_000),
        expires_at_ms: Some(1_795_900_000_000),
        description: "customers.csv ✓".into(),
        properties: json!({"team": "billing"}),
        failure_reason: Some("1 slice failed".into()),
        body: RowBody::Sliced(Box::new(SlicedRow {
            slice_size: 1000,
            collect_errors: true,
            upload: 1,
            before_done: true,
            records_in: 2500,
            records_rejected: 3,
            records_out: 2000,
            records_written: Some(1999),
            records_errors: 2,
            records_in_failed_slices: 498,
            slices_total: 3,
            slices_done: 2,
            slices_failed: 1,
            collected_errors: json!([{"message": "bad", "count": 2, "samples": []}]),
            failures: json!([[2, ["boom", null]]]),
            categories: Vec::new(),
        })),
        ..noop.clone()
    };
    let destroyed = Row {
        id: 131,
        ..sliced.clone()
    }
    .into_destroyed(1_795_000_000_100);
    let long = Row {
        id: 191,
        description: "x".repeat(5000),
        ..noop.clone()
    };
    vec![noop, sliced, destroyed, long]
}

/// Page 2 as v2 writes it: v1's rows, the sliced one with a cron run,
/// dependencies and hook expiries, plus a waiting job and a destroyed
/// waiting job (state 7 is `waiting` in v2, the destroyed byte is 8).
fn rows_v2() -> Vec<Row> {
    let mut rows = rows_v1();
    rows[0].completed_us = Some(1_795_000_000_007_123);
    rows[0].started_us = Some(1_795_000_000_003_456);
    rows[1].expiries = 2;
    rows[1].cron = Some(CronRun {
        cron: 4,
        tick_ms: 1_795_000_000_000,
    });
    rows[1].after = vec![100, 101];
    rows[1].on_dependency_failure = DependencyFailure::Run;
    let waiting = Row {
        id: 140,
        state: 7,
        completed_us: None,
        started_us: None,
        after: vec![128, 130],
        on_dependency_failure: DependencyFailure::Abort,
        expiries: 1,
        body: RowBody::Simple {
            args: json!({"n": 1}),
            result: None,
        },
        ..rows_v1()[0].clone()
    };
    let destroyed_waiting = Row {
        id: 141,
        ..waiting.clone()
    }
    .into_destroyed(1_795_000_000_200);
    rows.insert(3, waiting);
    rows.insert(4, destroyed_waiting);
    rows
}

fn read_fixture(path: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("the checked-in row page fixture");
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        records.push(bytes[at + 4..at + 4 + n].to_vec());
        at += 4 + n;
    }
    records
}

fn stubbed(mut rows: Vec<Row>) -> Vec<Row> {
    let last = rows.last_mut().expect("the long row");
    *last = last.stub();
    rows
}

#[test]
fn the_checked_in_v1_page_decodes_to_its_rows() {
    let records = read_fixture(FIXTURE_V1);
    assert!(records.iter().all(|r| r[0] == row::FORMAT_ROW_V1));
    let decoded = page::decode(2, &records).unwrap();
    assert_eq!(decoded, stubbed(rows_v1()));
    assert_eq!(decoded[2].state, row::STATE_DESTROYED);
    assert_eq!(decoded[2].job_state(), None);
    assert_heads_match(&records, &decoded);
}

/// A checkpoint's merge reads a stored page's heads only (`page::heads`):
/// they must say what the whole rows say, in both formats.
fn assert_heads_match(records: &[Vec<u8>], rows: &[row::Row]) {
    let heads = page::heads(2, records).unwrap();
    assert_eq!(heads.len(), rows.len());
    for (h, r) in heads.iter().zip(rows) {
        let got = (h.id, h.state, h.final_state, h.completed_us, h.destroyed_ms);
        let want = (r.id, r.state, r.final_state, r.completed_us, r.destroyed_ms);
        assert_eq!(got, want);
        assert_eq!(h.stub(), matches!(r.body, row::RowBody::Stub { .. }));
        let sliced = matches!(
            r.body,
            row::RowBody::Sliced(_) | row::RowBody::Stub { sliced: true }
        );
        assert_eq!(h.sliced(), sliced, "row {}", r.id);
    }
    // Each fixture holds a sliced row, so a head that never said sliced
    // (and so left a purged job's SLICE_MAP behind) fails here.
    assert!(heads.iter().any(|h| h.sliced()));
}

#[test]
fn the_checked_in_v2_page_decodes_to_its_rows_and_is_what_the_encoder_writes() {
    let records = read_fixture(FIXTURE_V2);
    assert!(records.iter().all(|r| r[0] == row::FORMAT_ROW_V2));
    let decoded = page::decode(2, &records).unwrap();
    assert_eq!(decoded, stubbed(rows_v2()));
    assert_heads_match(&records, &decoded);
    assert_eq!(
        decoded[3].job_state(),
        Some(booster_runtime::JobState::Waiting)
    );
    // And today's encoder still writes exactly those bytes.
    let written = page::encode(&rows_v2()).unwrap();
    assert_eq!(written.records, records);
    assert_eq!(written.large.len(), 1);
    assert_eq!(
        row::decode(&written.large[0].1, 2).unwrap(),
        *rows_v2().last().unwrap()
    );
}

#[test]
#[ignore = "writes the fixture; run only when the format deliberately changes"]
fn write_row_page_fixture() {
    if std::env::var_os("BOOSTER_WRITE_FIXTURES").is_none() {
        return;
    }
    let mut out = Vec::new();
    for r in page::encode(&rows_v2()).unwrap().records {
        out.extend((r.len() as u32).to_le_bytes());
        out.extend(r);
    }
    std::fs::write(FIXTURE_V2, out).unwrap();
}
