//! A job-table page as format `R` v1 wrote it (issue 12, step 1): the
//! checked-in bytes must keep decoding to the same rows, so the row format
//! cannot drift. `BOOSTER_WRITE_FIXTURES=1 cargo test -p booster-runtime
//! --test behaviours row_page -- --ignored` rewrites the file, only when
//! the format deliberately changes (then it is v2, and v1 keeps decoding).

use booster_runtime::table_format::{page, row};
use row::{Row, RowBody, SlicedRow};
use serde_json::{json, Value};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/row-page-v1.bin"
);

/// Page 2 (ids 128..=191): a no-op completed simple job, a failed sliced
/// job with every optional part, a destroyed one, and one too long for
/// its page (a stub here).
fn rows() -> Vec<Row> {
    let noop = Row {
        id: 128,
        state: 4,
        final_state: 0,
        priority: 50,
        destroy_on_complete: false,
        kind: 1,
        max_workers: None,
        attempts: 1,
        created_ms: 1_795_000_000_000,
        completed_ms: Some(1_795_000_000_007),
        started_ms: Some(1_795_000_000_003),
        run_at_ms: None,
        expires_at_ms: None,
        destroyed_ms: None,
        description: String::new(),
        properties: Value::Null,
        failure_reason: None,
        singleton: None,
        body: RowBody::Simple {
            args: Value::Null,
            result: Some(json!({"ok": true})),
        },
    };
    let sliced = Row {
        id: 130,
        state: 5,
        priority: 7,
        destroy_on_complete: true,
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

fn read_fixture() -> Vec<Vec<u8>> {
    let bytes = std::fs::read(FIXTURE).expect("the checked-in row page fixture");
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        records.push(bytes[at + 4..at + 4 + n].to_vec());
        at += 4 + n;
    }
    records
}

#[test]
fn the_checked_in_v1_page_decodes_to_its_rows() {
    let decoded = page::decode(2, &read_fixture()).unwrap();
    let mut expected = rows();
    expected[3] = expected[3].stub();
    assert_eq!(decoded, expected);
    // And today's encoder still writes exactly those bytes.
    let written = page::encode(&rows()).unwrap();
    assert_eq!(written.records, read_fixture());
    assert_eq!(written.large.len(), 1);
    assert_eq!(row::decode(&written.large[0].1, 2).unwrap(), rows()[3]);
}

#[test]
#[ignore = "writes the fixture; run only when the format deliberately changes"]
fn write_row_page_fixture() {
    if std::env::var_os("BOOSTER_WRITE_FIXTURES").is_none() {
        return;
    }
    let mut out = Vec::new();
    for r in page::encode(&rows()).unwrap().records {
        out.extend((r.len() as u32).to_le_bytes());
        out.extend(r);
    }
    std::fs::write(FIXTURE, out).unwrap();
}
