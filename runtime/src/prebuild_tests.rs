//! Unit tests of the checkpoint built off the state lock (ARCHITECTURE.md,
//! "3.4 The checkpoint off the state lock"): rows changed between the
//! snapshot and the seal are written in their newest state, commits go on
//! while the pages are built, and a reopen from the checkpoint finds every
//! record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::logged_tests::{all_rows, Logged};
use crate::meta::{Control, Meta, SimpleOutcome};
use crate::retention_tests::book;
use crate::shared::{Limits, Shared};
use crate::state::State;
use crate::table::image::RowSnapshot;
use crate::table::keys::{ROW_PAGE, TABLE_OWNER};
use crate::{JobId, JobSpec, JobState};

fn reopen(l: &mut Logged) {
    l.reopen(book());
    l.st.book.live = true;
}

pub(crate) fn created(first_id: JobId, n: usize) -> Meta {
    Meta::Created {
        first_id,
        at_ms: 1,
        specs: vec![JobSpec::simple("k", serde_json::Value::Null); n],
    }
}

fn done(ids: std::ops::RangeInclusive<JobId>) -> Meta {
    finished(ids, |job| Ok(Some(serde_json::json!(job))))
}

/// Jobs `ids` finished, each with `result(id)`.
pub(crate) fn finished(
    ids: impl Iterator<Item = JobId>,
    result: impl Fn(JobId) -> Result<Option<serde_json::Value>, String>,
) -> Meta {
    let outcomes = ids
        .map(|job| SimpleOutcome {
            job,
            started_us: 1_000,
            result: result(job),
            retry_at_ms: None,
        })
        .collect();
    Meta::SimpleDone {
        at_ms: 2,
        at_us: None,
        outcomes,
    }
}

/// 200 queued jobs (row pages 0 to 3) in a checkpoint's image, then
/// jobs 1 to 130 done: pages 0, 1 and 2 changed since the image.
fn three_pages_changed() -> Logged {
    let mut st = State::new(book());
    st.book.live = true;
    let mut l = Logged::new(st);
    l.apply(&created(1, 200)).unwrap();
    l.checkpoint();
    l.apply(&done(1..=130)).unwrap();
    l
}

/// Every row of the table as written (its debug form: every field).
fn rows(st: &State) -> Vec<String> {
    all_rows(st).iter().map(|j| format!("{j:?}")).collect()
}

fn state_of(st: &State, id: JobId) -> JobState {
    st.table.get(&id).expect("the row").state
}

/// Rows changed after the snapshot make the seal build their pages
/// again: job 5, in the snapshot, destroyed since (page 0); jobs 131 to
/// 140 done since (page 2); jobs 201 to 210 new (page 3). Page 1 is taken
/// as built from the snapshot. A reopen from the checkpoint finds the
/// table as it was, each row in its newest state.
#[test]
fn a_row_changed_after_the_snapshot_is_written_in_its_newest_state() {
    let mut l = three_pages_changed();
    let snapshot = RowSnapshot::take(&mut l.st).expect("a snapshot over an image");
    let prebuilt = snapshot.build(&*l.store);
    assert_eq!(prebuilt.pages(), 3);
    let destroy = Meta::Control {
        job: 5,
        at_ms: 3,
        action: Control::Destroy,
    };
    l.apply(&destroy).unwrap();
    l.apply(&done(131..=140)).unwrap();
    l.apply(&created(201, 10)).unwrap();
    let built_at_seal = l.checkpoint_prebuilt(prebuilt);
    assert_eq!(
        built_at_seal, 3,
        "pages 0, 2 and 3 are built again at the seal"
    );
    let before = rows(&l.st);
    reopen(&mut l);
    assert_eq!(rows(&l.st), before);
    assert!(l.st.table.get(&5).is_none(), "job 5 is destroyed");
    assert!(l.st.table.tombstone(&5).is_some(), "job 5 is destroyed");
    assert_eq!(state_of(&l.st, 140), JobState::Completed);
    assert_eq!(state_of(&l.st, 141), JobState::Queued);
    assert_eq!(state_of(&l.st, 210), JobState::Queued);
}

/// While a checkpoint reads the row pages it pre-builds, it holds neither
/// the state lock nor the append gate, so a commit goes through then:
/// the first page read commits jobs 131 to 140's completion (page 2) and
/// ten new jobs (page 3). On main every page was read holding both, and
/// no commit could go through. The checkpoint then builds pages 2 and 3
/// under the gate, page 2 over its pre-built merge (read no more), page 3
/// read; the reopen from it finds every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_go_on_while_a_checkpoint_builds_its_pages() {
    let mut l = three_pages_changed();
    let st = std::mem::replace(&mut l.st, State::new(book()));
    let limits = Limits {
        max_slice_records: 1000,
        max_slice_bytes: 1 << 20,
        listing_rows_per_call: 100_000,
    };
    let shared = Arc::new(Shared::new(st, limits));
    let store = l.store.clone();
    let locked_reads = Arc::new(AtomicU64::new(0));
    let committed = Arc::new(Mutex::new(None));
    {
        let (shared, store) = (shared.clone(), store.clone());
        let (locked_reads, committed) = (locked_reads.clone(), committed.clone());
        l.watch_reads(move |key| {
            if key.owner != TABLE_OWNER || key.stream != ROW_PAGE {
                return;
            }
            if shared.state.is_locked() || shared.append_gate.is_locked() {
                locked_reads.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut committed = committed.lock().unwrap();
            if committed.is_some() {
                return;
            }
            let metas = vec![done(131..=140), created(201, 10)];
            let batch = crate::shared::batch_of(&metas);
            let (tx, rx) = std::sync::mpsc::channel();
            crate::shared::commit(&shared, &store, batch, metas, move |_, applied| {
                let _ = tx.send(applied.map(|r| r.iter().all(Result::is_ok)));
            });
            *committed = Some((key.seq, rx.recv().expect("the store answers")));
            // The answer is sent from inside the writer thread's hold of
            // the state lock: wait for it to let go, so the next page read
            // is not counted as one under the lock.
            drop(shared.state.lock());
        });
    }
    crate::runtime::take_checkpoint(shared.clone(), store.clone())
        .await
        .expect("the checkpoint");
    let committed = committed.lock().unwrap().take();
    assert!(
        matches!(committed, Some((0, Ok(true)))),
        "a commit went through while page 0 was read for the checkpoint: {committed:?}"
    );
    assert_eq!(
        locked_reads.load(Ordering::Relaxed),
        1,
        "page 3 is read at the seal (page 2 is merged over its pre-built \
         merge), none other under the lock"
    );
    let times = shared.state.lock().book.metrics.checkpoint_times.clone();
    let pages = (
        times.pages_prebuilt,
        times.pages_sealed,
        times.pages_sealed_read,
    );
    assert_eq!(pages, (3, 2, 1));
    let before = rows(&shared.state.lock());
    reopen(&mut l);
    assert_eq!(rows(&l.st), before);
    assert_eq!(state_of(&l.st, 140), JobState::Completed);
    assert_eq!(state_of(&l.st, 210), JobState::Queued);
}

/// Jobs 1 to `n` queued in a checkpoint's image, done since.
fn done_since_image(n: usize) -> Logged {
    let mut st = State::new(book());
    st.book.live = true;
    let mut l = Logged::new(st);
    l.apply(&created(1, n)).unwrap();
    l.checkpoint();
    l.apply(&done(1..=n as JobId)).unwrap();
    l
}

/// Taking a snapshot shares the changed rows with the table instead of
/// copying each under the state lock: it holds at most 32 bytes a row
/// (its entry: the id and the shared row), where a copy of each `Job`
/// held 400 bytes and more.
#[test]
fn a_snapshot_shares_the_changed_rows_with_the_table() {
    let n = 1_000;
    let mut l = done_since_image(n);
    assert_eq!(l.st.table.changed(), n);
    let (snapshot, held) = booster_tests::alloc::held_bytes(|| RowSnapshot::take(&mut l.st));
    let snapshot = snapshot.expect("a snapshot over an image");
    let per_row = held as f64 / n as f64;
    assert!(per_row <= 32.0, "{per_row:.1} bytes a row");
    let prebuilt = snapshot.build(&*l.store);
    assert_eq!(prebuilt.pages(), 16, "pages 0 to 15");
    assert_eq!(l.checkpoint_prebuilt(prebuilt), 0, "every page taken");
    let before = rows(&l.st);
    reopen(&mut l);
    assert_eq!(rows(&l.st), before);
}

/// A row the snapshot shares and a record changes after it is copied by
/// the change: the snapshot keeps the row as it was at the seal (job 150
/// paused), the table has it newest (queued again), and the seal builds
/// its page again from the newest.
#[test]
fn a_row_changed_while_a_snapshot_holds_it_stays_in_the_snapshot_as_it_was() {
    let mut l = three_pages_changed();
    let control = |action| Meta::Control {
        job: 150,
        at_ms: 3,
        action,
    };
    l.apply(&control(Control::Pause)).unwrap();
    let snapshot = RowSnapshot::take(&mut l.st).expect("a snapshot over an image");
    l.apply(&control(Control::Resume)).unwrap();
    assert_eq!(
        snapshot.row(150).map(|j| j.state),
        Some(JobState::Paused),
        "the snapshot's row as it was"
    );
    assert_eq!(state_of(&l.st, 150), JobState::Queued);
    let prebuilt = snapshot.build(&*l.store);
    assert_eq!(prebuilt.pages(), 3);
    assert_eq!(l.checkpoint_prebuilt(prebuilt), 1, "page 2 built again");
    let before = rows(&l.st);
    reopen(&mut l);
    assert_eq!(rows(&l.st), before);
    assert_eq!(state_of(&l.st, 150), JobState::Queued);
}

/// A pre-built page whose rows changed again before the seal is merged
/// over its pre-built merge, only the rows changed since merged again: the
/// seal reads no page the pre-build read (before, it read page 2 and
/// merged its 64 rows again). The reopen finds every row newest.
#[test]
fn a_page_changed_since_the_prebuild_is_not_read_again_at_the_seal() {
    let mut l = three_pages_changed();
    let snapshot = RowSnapshot::take(&mut l.st).expect("a snapshot over an image");
    let prebuilt = snapshot.build(&*l.store);
    assert_eq!(prebuilt.pages(), 3);
    l.apply(&done(131..=140)).unwrap();
    let reads = l.page_reads();
    assert_eq!(l.checkpoint_prebuilt(prebuilt), 1, "page 2 built again");
    assert_eq!(l.page_reads() - reads, 0, "no page read at the seal");
    let before = rows(&l.st);
    reopen(&mut l);
    assert_eq!(rows(&l.st), before);
    assert_eq!(state_of(&l.st, 140), JobState::Completed);
    assert_eq!(state_of(&l.st, 141), JobState::Queued);
}

/// The pages a snapshot pre-builds are kept unfinished until the seal
/// (`image::merge::PageMerge`), about a thousand of them a checkpoint, so
/// each is kept compact: 16 pages of 64 rows done since the image hold
/// at most 16 KB a page with their records (14.4 KB by the tests'
/// allocator; maps and trees of the same held 29.2 KB).
#[test]
fn a_prebuilt_page_is_held_in_at_most_16_kb() {
    let n = 16 * 64 - 1;
    let mut l = done_since_image(n);
    // The build frees the snapshot it consumes: what it held is added back.
    let (snapshot, snapshot_held) =
        booster_tests::alloc::held_bytes(|| RowSnapshot::take(&mut l.st));
    let snapshot = snapshot.expect("a snapshot over an image");
    let (prebuilt, held) = booster_tests::alloc::held_bytes(|| snapshot.build(&*l.store));
    assert_eq!(prebuilt.pages(), 16, "pages 0 to 15");
    let per_page = (held + snapshot_held) / 16;
    assert!(per_page <= 16 * 1024, "{per_page} bytes a page");
    assert_eq!(l.checkpoint_prebuilt(prebuilt), 0, "every page taken");
}
