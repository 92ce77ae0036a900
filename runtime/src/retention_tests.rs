//! Unit tests of destroy, `destroy_on_complete` and the retention sweep
//! (issue 12, step 6), on a `State` over a store (`logged_tests.rs`):
//! what a destroy leaves, what the sweep removes, and that both survive
//! checkpoints and reopens.

use std::sync::Arc;

use crate::logged_tests::Logged;
use crate::meta::{Control, Meta, SimpleOutcome};
use crate::state::{Book, HandlerShape, KindConf, State};
use crate::{JobSpec, JobState, KindSettings, Missing, Retention, RuntimeError};

const MINUTE_MS: u64 = 60_000;

/// A book with kind `k`, simple (also `prebuild_tests.rs`'s).
pub(crate) fn book() -> Book {
    let mut book = Book::new(2, 1000, 100);
    book.kinds.insert(
        Arc::from("k"),
        KindConf {
            handler: Some(HandlerShape::Simple),
            ..KindConf::default()
        },
    );
    book
}

fn logged() -> Logged {
    let mut st = State::new(book());
    st.book.live = true;
    Logged::new(st)
}

fn reopen(l: &mut Logged) {
    l.reopen(book());
    l.st.book.live = true;
}

fn created(first_id: u64, at_ms: u64, specs: Vec<JobSpec>) -> Meta {
    Meta::Created {
        first_id,
        at_ms,
        specs,
    }
}

fn control(job: u64, at_ms: u64, action: Control) -> Meta {
    Meta::Control { job, at_ms, action }
}

fn noop() -> JobSpec {
    JobSpec::simple("k", serde_json::Value::Null)
}

/// Leases every queued job of `l` on worker 0 and completes (or fails)
/// them with one `simple_done` at `at_ms`.
fn run_all(l: &mut Logged, at_ms: u64, ok: bool) {
    while let Some(task) = l.st.lease(0, at_ms) {
        let crate::dispatch::TaskWork::Simple(items) = &task.work else {
            panic!("a simple lease");
        };
        let outcomes = items
            .iter()
            .map(|i| SimpleOutcome {
                job: i.job,
                started_us: at_ms * 1000,
                result: if ok { Ok(None) } else { Err("no".into()) },
                retry_at_ms: None,
            })
            .collect();
        let claim = crate::state::LeaseWork::Simple(items.iter().map(|i| i.job).collect());
        assert!(l.st.begin_commit(task.epoch, &claim).is_some());
        l.apply(&Meta::SimpleDone {
            at_ms,
            at_us: None,
            outcomes,
        })
        .unwrap();
        l.st.release(task.epoch);
    }
}

fn why(st: &State, id: u64) -> Missing {
    match st.job_row(id) {
        Err(RuntimeError::NotFound(_, why)) => why,
        other => panic!("job {id}: {:?}", other.map(|j| j.state)),
    }
}

fn destroyed(state: JobState, at_ms: u64) -> Missing {
    Missing::Destroyed {
        state,
        at: crate::clock::from_ms(at_ms),
    }
}

/// Stores a retention of one minute for failed jobs (the others keep
/// their defaults).
fn keep_failed_for_a_minute(l: &mut Logged) {
    l.apply(&Meta::Retention {
        at_ms: 1,
        retention: Retention {
            failed_ms: MINUTE_MS,
            ..Retention::default()
        },
    })
    .unwrap();
}

#[test]
fn a_destroyed_job_leaves_a_tombstone_with_its_state_and_time_through_checkpoint_and_reopen() {
    let mut l = logged();
    l.apply(&created(1, 5, vec![noop(), noop()])).unwrap();
    l.apply(&control(1, 7, Control::Abort)).unwrap();
    l.apply(&control(1, 9, Control::Destroy)).unwrap();
    for _ in 0..2 {
        assert_eq!(why(&l.st, 1), destroyed(JobState::Aborted, 9));
        assert_eq!(why(&l.st, 3), Missing::Never);
        assert!(l.st.job_row(2).is_ok());
        assert_eq!(l.st.book.destroyed, 1);
        assert_eq!(l.st.book.by_state.iter().sum::<u64>(), 1);
        // A tombstone takes no control, and is not listed.
        assert!(matches!(
            l.st.apply(&control(1, 10, Control::Retry)),
            Err(RuntimeError::NotFound(1, _))
        ));
        assert_eq!(crate::logged_tests::all_rows(&l.st).len(), 1);
        l.checkpoint();
        reopen(&mut l);
    }
    // A queued job destroyed keeps its state too.
    l.apply(&control(2, 11, Control::Destroy)).unwrap();
    assert_eq!(why(&l.st, 2), destroyed(JobState::Queued, 11));
    assert!(l.st.book.active.is_empty());
}

#[test]
fn destroy_on_complete_destroys_a_job_with_the_record_that_completes_it_and_the_job_s_choice_wins()
{
    let mut l = logged();
    let settings = KindSettings {
        destroy_on_complete: true,
        ..KindSettings::default()
    };
    l.apply(&Meta::KindSettings {
        kind: "k".into(),
        at_ms: 1,
        settings: Some(settings),
    })
    .unwrap();
    let keep = JobSpec {
        destroy_on_complete: Some(false),
        ..noop()
    };
    l.apply(&created(1, 2, vec![noop(), keep])).unwrap();
    run_all(&mut l, 40, true);
    // A job that fails is kept whatever the kind says.
    l.apply(&created(3, 41, vec![noop()])).unwrap();
    run_all(&mut l, 42, false);
    let check = |st: &State| {
        assert_eq!(why(st, 1), destroyed(JobState::Completed, 40));
        assert_eq!(st.job_row(2).unwrap().state, JobState::Completed);
        assert_eq!(st.job_row(3).unwrap().state, JobState::Failed);
        assert_eq!(st.book.destroyed, 1);
        assert_eq!(st.book.by_state[JobState::Completed.index()], 1);
    };
    check(&l.st);
    // Replay of the log agrees: no second record made the destroy.
    reopen(&mut l);
    check(&l.st);
    // The job's own Some(true) wins over a kind that says nothing.
    let gone = JobSpec {
        destroy_on_complete: Some(true),
        kind: "other".into(),
        ..noop()
    };
    l.st.book.kinds.insert(
        Arc::from("other"),
        KindConf {
            handler: Some(HandlerShape::Simple),
            ..KindConf::default()
        },
    );
    l.apply(&created(4, 50, vec![gone])).unwrap();
    run_all(&mut l, 51, true);
    assert_eq!(why(&l.st, 4), destroyed(JobState::Completed, 51));
    l.checkpoint();
    reopen(&mut l);
    assert_eq!(why(&l.st, 4), destroyed(JobState::Completed, 51));
}

/// The status a waiter gets (`Runtime::wait`, an upload's `finish`): a job
/// destroyed by the record that completed it answers completed from its
/// tombstone, live and after a checkpoint and reopen; one destroyed before
/// it finished, and one that never existed, are `NotFound` saying why.
/// (A server's upload reply used to read the row after `UploadComplete` and
/// answer 404 when workers had completed and destroyed the job meanwhile.)
#[test]
fn a_waiter_gets_the_kept_state_of_a_job_destroyed_as_it_completed() {
    use crate::status::kept_status;
    let mut l = logged();
    let gone = JobSpec {
        destroy_on_complete: Some(true),
        ..noop()
    };
    l.apply(&created(1, 2, vec![gone])).unwrap();
    run_all(&mut l, 40, true);
    l.apply(&created(2, 41, vec![noop()])).unwrap();
    l.apply(&control(2, 42, Control::Destroy)).unwrap();
    for _ in 0..2 {
        assert_eq!(kept_status(&l.st, 1).unwrap().state, JobState::Completed);
        assert!(matches!(
            kept_status(&l.st, 2),
            Err(RuntimeError::NotFound(
                2,
                Missing::Destroyed {
                    state: JobState::Queued,
                    ..
                }
            ))
        ));
        assert!(matches!(
            kept_status(&l.st, 3),
            Err(RuntimeError::NotFound(3, Missing::Never))
        ));
        l.checkpoint();
        reopen(&mut l);
    }
}

#[test]
fn the_sweep_removes_rows_past_retention_and_skips_a_retried_job_s_stale_entry() {
    let mut l = logged();
    let retention = Retention {
        completed_ms: 3 * MINUTE_MS,
        aborted_ms: 10 * MINUTE_MS,
        failed_ms: 2 * MINUTE_MS,
    };
    l.apply(&Meta::Retention {
        at_ms: 1,
        retention,
    })
    .unwrap();
    l.apply(&created(1, 2, vec![noop(), noop(), noop()]))
        .unwrap();
    // All three fail in minute 0 (their entries due at minute 3); job 2
    // is destroyed and job 3 aborted in it too.
    run_all(&mut l, 3, false);
    l.apply(&control(2, 4, Control::Destroy)).unwrap();
    l.apply(&control(3, 4, Control::Abort)).unwrap();
    l.checkpoint_at(10);
    // Job 1 is retried and completes in minute 1 (due at minute 5).
    l.apply(&control(1, MINUTE_MS, Control::Retry)).unwrap();
    run_all(&mut l, MINUTE_MS, true);
    l.checkpoint_at(MINUTE_MS + 1);
    l.checkpoint_at(3 * MINUTE_MS - 1);
    assert_eq!(why(&l.st, 2), destroyed(JobState::Failed, 4));
    // Minute 0's failed entries: job 1's is stale (it completed since),
    // job 2's tombstone goes.
    l.checkpoint_at(3 * MINUTE_MS);
    assert_eq!(l.st.job_row(1).unwrap().state, JobState::Completed);
    assert_eq!(why(&l.st, 2), Missing::Removed);
    assert_eq!(l.st.book.destroyed, 0);
    l.checkpoint_at(5 * MINUTE_MS - 1);
    assert!(l.st.job_row(1).is_ok());
    l.checkpoint_at(5 * MINUTE_MS);
    assert_eq!(why(&l.st, 1), Missing::Removed);
    assert_eq!(l.st.job_row(3).unwrap().state, JobState::Aborted);
    reopen(&mut l);
    assert_eq!(why(&l.st, 1), Missing::Removed);
    assert_eq!(why(&l.st, 2), Missing::Removed);
    assert_eq!(l.st.book.by_state[JobState::Aborted.index()], 1);
    assert_eq!(l.st.book.by_state.iter().sum::<u64>(), 1);
    assert_eq!(l.st.book.retention, retention);
    // A shorter period applies at the next sweep.
    let shorter = Retention {
        aborted_ms: MINUTE_MS,
        ..retention
    };
    l.apply(&Meta::Retention {
        at_ms: 6 * MINUTE_MS,
        retention: shorter,
    })
    .unwrap();
    l.checkpoint_at(6 * MINUTE_MS);
    assert_eq!(why(&l.st, 3), Missing::Removed);
    assert_eq!(l.st.book.by_state.iter().sum::<u64>(), 0);
}

#[test]
fn one_sweep_removes_at_most_its_limit_of_rows_and_the_next_takes_the_rest() {
    let mut l = logged();
    assert_eq!(l.st.book.sweep_max_entries, 65_536);
    let limit = 100;
    // One created record: the first job holds the singleton, the other
    // 250 are created failed (in minute 0).
    let n = 251;
    let specs = (0..n).map(|_| noop().with_singleton("one")).collect();
    l.apply(&created(1, 1, specs)).unwrap();
    assert_eq!(l.st.book.by_state[JobState::Failed.index()], n - 1);
    l.checkpoint_at(2);
    let month = 31 * 24 * 60 * MINUTE_MS;
    let failed = |l: &Logged| l.st.book.by_state[JobState::Failed.index()];
    for left in [n - 1 - limit, n - 1 - 2 * limit, 0] {
        l.st.book.sweep_max_entries = limit as usize;
        l.checkpoint_at(month);
        assert_eq!(failed(&l), left);
        reopen(&mut l);
        assert_eq!(failed(&l), left);
    }
    assert_eq!(why(&l.st, n), Missing::Removed);
    assert!(l.st.job_row(1).is_ok());
}

/// An expiry frame that cannot be decoded (rot `verify` would name, or a
/// foreign write) is passed over, never a checkpoint's failure: the
/// frames after it are swept, and every later checkpoint still writes.
#[test]
fn an_undecodable_expiry_frame_is_passed_over_and_blocks_no_checkpoint() {
    let mut l = logged();
    keep_failed_for_a_minute(&mut l);
    // A frame of minute 0 holding a 3-byte record, before the real ones.
    let bad = crate::table::keys::expiry(1, 0, 0).unwrap();
    let batch = booster_store::Batch::new().slice(bad, &[vec![1, 2, 3]]);
    crate::logged_tests::append(&*l.store, batch);
    l.apply(&created(1, 2, vec![noop()])).unwrap();
    run_all(&mut l, 3, false);
    l.checkpoint_at(10);
    l.checkpoint_at(2 * MINUTE_MS);
    assert_eq!(why(&l.st, 1), Missing::Removed);
    l.apply(&created(2, 3 * MINUTE_MS, vec![noop()])).unwrap();
    l.checkpoint_at(3 * MINUTE_MS);
    reopen(&mut l);
    assert!(l.st.job_row(2).is_ok());
}

/// A job waiting on a dependency that completed and was destroyed since
/// (by `destroy_on_complete` or by hand) counts it completed, as its
/// tombstone says, live and after a reopen alike; one destroyed before it
/// completed breaks the wait.
#[test]
fn a_completed_dependency_destroyed_since_still_counts_completed_live_and_after_a_reopen() {
    for by_hand in [false, true] {
        let mut l = logged();
        let a = JobSpec {
            destroy_on_complete: Some(!by_hand),
            ..noop()
        };
        l.apply(&created(1, 2, vec![a, noop()])).unwrap();
        let waits = noop().with_after(&[1, 2], crate::DependencyFailure::Fail);
        l.apply(&created(3, 3, vec![waits])).unwrap();
        // Job 1 completes (job 2 is held back by a pause).
        l.apply(&control(2, 4, Control::Pause)).unwrap();
        run_all(&mut l, 5, true);
        if by_hand {
            l.apply(&control(1, 6, Control::Destroy)).unwrap();
        }
        assert_eq!(
            why(&l.st, 1),
            destroyed(JobState::Completed, 5 + u64::from(by_hand))
        );
        assert_eq!(l.st.job_row(3).unwrap().state, JobState::Waiting);
        l.checkpoint();
        reopen(&mut l);
        l.apply(&control(2, 7, Control::Resume)).unwrap();
        run_all(&mut l, 8, true);
        // Job 3 ran once job 2 completed: job 1 counted as completed.
        assert_eq!(
            l.st.job_row(3).unwrap().state,
            JobState::Completed,
            "by hand: {by_hand}"
        );
    }
    // Destroyed while still queued: the wait breaks.
    let mut l = logged();
    l.apply(&created(1, 2, vec![noop()])).unwrap();
    let waits = noop().with_after(&[1], crate::DependencyFailure::Fail);
    l.apply(&created(2, 3, vec![waits])).unwrap();
    l.apply(&control(1, 4, Control::Destroy)).unwrap();
    let job = l.st.job_row(2).unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.failure_reason.as_deref().unwrap().contains("destroyed"));
}

/// A row the sweep cannot read (its page rotted, `verify` names it) keeps
/// its expiry entry: once the segment is restored the row still expires,
/// instead of staying for ever.
#[test]
fn the_sweep_keeps_the_entry_of_a_row_whose_page_it_cannot_read() {
    let mut l = logged();
    keep_failed_for_a_minute(&mut l);
    l.apply(&created(1, 2, vec![noop(), noop()])).unwrap();
    run_all(&mut l, 3, false);
    // Filed in minute 0 and out of RAM.
    l.checkpoint_at(10);
    let page = crate::table::keys::row_page(0);
    l.fail_reads_of(page);
    l.checkpoint_at(2 * MINUTE_MS);
    l.fail_reads(|_| false);
    assert_eq!(l.st.job_row(1).unwrap().state, JobState::Failed);
    // Restored: the next sweep removes both.
    l.checkpoint_at(2 * MINUTE_MS + 1);
    assert_eq!(why(&l.st, 1), Missing::Removed);
    assert_eq!(why(&l.st, 2), Missing::Removed);
    assert_eq!(l.st.book.by_state.iter().sum::<u64>(), 0);
    reopen(&mut l);
    assert_eq!(why(&l.st, 2), Missing::Removed);
}

/// 640 failed jobs expire (the first of 641 holds the singleton) over
/// 11 row pages.
fn six_hundred_forty_failed_jobs_filed_in_minute_0() -> Logged {
    let mut l = logged();
    keep_failed_for_a_minute(&mut l);
    let specs = (0..641).map(|_| noop().with_singleton("one")).collect();
    l.apply(&created(1, 2, specs)).unwrap();
    l.checkpoint_at(3);
    l
}

/// The sweep reads each row page once, however many of its rows expire
/// (before: two or three page reads and decodes per row, under the state
/// lock), and stops at its cap of pages touched: the rest of the frame
/// is put back for the next sweep.
#[test]
fn a_sweep_reads_each_row_page_once_and_touches_at_most_its_limit_of_pages() {
    let mut l = six_hundred_forty_failed_jobs_filed_in_minute_0();
    let before = l.page_reads();
    let swept = crate::table::expiry::sweep(&mut l.st, &*l.store, 2 * MINUTE_MS).unwrap();
    assert_eq!(swept.removed.len(), 640);
    let reads = l.page_reads() - before;
    assert!(reads <= 640 / 64 + 1, "{reads} page reads for 640 rows");

    let mut l = six_hundred_forty_failed_jobs_filed_in_minute_0();
    l.st.book.sweep_max_pages = 3;
    let before = l.page_reads();
    let swept = crate::table::expiry::sweep(&mut l.st, &*l.store, 2 * MINUTE_MS).unwrap();
    assert_eq!(l.page_reads() - before, 3);
    // Pages 0, 1 and 2 hold ids 2..=191.
    assert_eq!(swept.removed.len(), 190);
    assert_eq!(swept.puts.len(), 1);
    assert_eq!(swept.puts[0].1.len(), 640 - 190);
}

/// Stale entries (a mass retry) count toward the sweep's cap like rows
/// removed: one sweep examines at most its limit, the rest of the frame
/// is put back.
#[test]
fn stale_entries_count_toward_the_sweep_s_limit() {
    let mut l = logged();
    keep_failed_for_a_minute(&mut l);
    l.apply(&created(1, 2, vec![noop(); 30])).unwrap();
    run_all(&mut l, 3, false);
    l.checkpoint_at(4);
    // Every failed job is retried: its minute-0 entry is stale.
    for id in 1..=30 {
        l.apply(&control(id, 4, Control::Retry)).unwrap();
    }
    l.st.book.sweep_max_entries = 10;
    let swept = crate::table::expiry::sweep(&mut l.st, &*l.store, 2 * MINUTE_MS).unwrap();
    assert_eq!(swept.removed.len(), 0);
    assert_eq!(swept.deletes, vec![]);
    assert_eq!(swept.puts.len(), 1);
    assert_eq!(swept.puts[0].1.len(), 30 - 10);
}

/// A row a control pinned (its check passed, its record is on the way)
/// is not swept from under it: its entry stays, and a later sweep
/// removes it once unpinned.
#[test]
fn a_pinned_row_keeps_its_entry_and_a_later_sweep_removes_it() {
    let mut l = logged();
    keep_failed_for_a_minute(&mut l);
    l.apply(&created(1, 2, vec![noop(), noop()])).unwrap();
    run_all(&mut l, 3, false);
    l.checkpoint_at(4);
    assert!(l.st.table.pin(1).unwrap());
    l.checkpoint_at(2 * MINUTE_MS);
    assert_eq!(l.st.job_row(1).unwrap().state, JobState::Failed);
    assert_eq!(why(&l.st, 2), Missing::Removed);
    l.st.table.unpin(1);
    l.checkpoint_at(2 * MINUTE_MS + 1);
    assert_eq!(why(&l.st, 1), Missing::Removed);
}

/// Writes a checkpoint of `l`'s table as step 5 left them: counting 8
/// states, with no expiry frames, then reopens: the open notes a refile
/// from page 0.
fn image_from_before_step_6(l: &mut Logged) {
    use crate::table::keys;
    let seq = l.st.book.checkpoint_seq + 1;
    let (record, records) = crate::table::image::checkpoint_records(&l.st, seq);
    let Meta::Checkpoint(mut c) = record else {
        panic!("a checkpoint record")
    };
    c.counts.truncate(8);
    let mut batch =
        booster_store::Batch::new().checkpoint(crate::meta::encode(&Meta::Checkpoint(c)));
    for r in records {
        batch = batch.meta(r);
    }
    for f in 0..3 {
        let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        let stream = keys::EXPIRY_BASE + f;
        for item in l
            .store
            .scan(keys::TABLE_OWNER, stream, all, false, 100)
            .unwrap()
        {
            batch = batch.delete(item.key);
        }
    }
    crate::logged_tests::append(&*l.store, batch);
    reopen(l);
    assert_eq!(l.st.book.refile_from, Some(0));
}

/// Failed jobs 1..=130 (row pages 0, 1 and 2), kept a minute, in an
/// image from before step 6.
fn failed_rows_before_step_6() -> Logged {
    let mut l = logged();
    keep_failed_for_a_minute(&mut l);
    l.apply(&created(1, 2, vec![noop(); 130])).unwrap();
    run_all(&mut l, 3, false);
    l.checkpoint_at(4);
    image_from_before_step_6(&mut l);
    l
}

/// A store checkpointed before step 6 holds finished rows in its pages
/// but no expiry entries (its checkpoint counts 8 states): the open
/// notes a refile, each checkpoint files the next pages' finished rows
/// (a durable cursor: a reopen goes on where it stopped), and then they
/// expire like any other.
#[test]
fn finished_rows_of_an_image_from_before_step_6_are_refiled_in_chunks_and_expire() {
    let mut l = failed_rows_before_step_6();
    for next in [Some(1), Some(2), None] {
        l.st.book.refile_max_pages = 1;
        l.checkpoint_at(10);
        reopen(&mut l);
        assert_eq!(l.st.book.refile_from, next);
    }
    l.checkpoint_at(2 * MINUTE_MS);
    for id in [1, 64, 130] {
        assert_eq!(why(&l.st, id), Missing::Removed, "job {id}");
    }
    assert_eq!(l.st.book.by_state.iter().sum::<u64>(), 0);
}

/// A checkpoint the store refuses without poisoning (no room for it on
/// the disk) leaves the refile cursor where it was: before, the cursor
/// moved while the batch was built, so the next checkpoint that was
/// written skipped the refused one's pages, whose finished rows then
/// never expired ("Left from the review of step 6").
#[test]
fn a_refused_checkpoint_leaves_the_refile_cursor_so_no_page_is_skipped() {
    let mut l = failed_rows_before_step_6();
    l.st.book.refile_max_pages = 1;
    l.set_quota(Some(0));
    let e = l.try_checkpoint_at(10).unwrap_err();
    assert!(
        matches!(e, booster_store::StoreError::NoSpace { .. }),
        "{e}"
    );
    assert_eq!(l.st.book.refile_from, Some(0), "the cursor stays");
    l.set_quota(None);
    for _ in 0..3 {
        l.checkpoint_at(10);
    }
    assert_eq!(l.st.book.refile_from, None);
    l.checkpoint_at(2 * MINUTE_MS);
    for id in 1..=130 {
        assert_eq!(why(&l.st, id), Missing::Removed, "job {id}");
    }
    assert_eq!(l.st.book.by_state.iter().sum::<u64>(), 0);
}

/// An `EXPIRY` frame key's n is its checkpoint's seq (low 24 bits), so a
/// checkpoint 2^24 after another that files rows of the same minute (a
/// refile of old rows, at one checkpoint a second after 194 days) named
/// the same key and wrote over the older frame, whose rows then never
/// expired ("Left from the review of step 6"). A key the store holds is
/// not written over: the frame takes the next free n of its minute.
#[test]
fn an_expiry_frame_never_writes_over_an_older_frame_of_its_minute() {
    let mut l = logged();
    keep_failed_for_a_minute(&mut l);
    l.apply(&created(1, 2, vec![noop()])).unwrap();
    run_all(&mut l, 3, false);
    l.checkpoint_at(4);
    // 2^24 checkpoints later, another job fails in the same minute.
    l.st.book.checkpoint_seq += (1 << 24) - 1;
    l.apply(&created(2, 5, vec![noop()])).unwrap();
    run_all(&mut l, 6, false);
    l.checkpoint_at(7);
    l.checkpoint_at(3 * MINUTE_MS);
    for id in [1, 2] {
        assert_eq!(why(&l.st, id), Missing::Removed, "job {id}");
    }
}

/// A dependency past its retention is not swept while a job still waits
/// on it: live, the job counts it completed; a reopen from a checkpoint
/// that no longer held its row counted it "destroyed" and failed the job
/// when its other dependency's completion replayed, dropping the job's
/// own acknowledged completion.
#[test]
fn a_completed_dependency_a_job_still_waits_on_is_not_swept_from_under_it() {
    let mut l = logged();
    l.apply(&Meta::Retention {
        at_ms: 1,
        retention: Retention {
            completed_ms: MINUTE_MS,
            ..Retention::default()
        },
    })
    .unwrap();
    l.apply(&created(1, 2, vec![noop()])).unwrap();
    run_all(&mut l, 3, true);
    let w = noop().with_after(&[1, 2], crate::DependencyFailure::Fail);
    l.apply(&created(2, 4, vec![noop(), w])).unwrap();
    assert_eq!(l.st.job_row(3).unwrap().state, JobState::Waiting);
    l.checkpoint_at(5);
    // Job 1 is past its minute while job 3 still waits on job 2.
    l.checkpoint_at(2 * MINUTE_MS);
    assert_eq!(l.st.job_row(1).unwrap().state, JobState::Completed);
    run_all(&mut l, 2 * MINUTE_MS + 1, true);
    assert_eq!(l.st.job_row(3).unwrap().state, JobState::Completed);
    reopen(&mut l);
    let w = l.st.job_row(3).unwrap();
    assert_eq!(w.state, JobState::Completed, "{:?}", w.failure_reason);
    // Nothing waits on it any more: a later sweep removes it.
    l.checkpoint_at(3 * MINUTE_MS);
    l.checkpoint_at(4 * MINUTE_MS);
    assert_eq!(why(&l.st, 1), Missing::Removed);
}

/// The review of faults12, finding 4: the rows a refused checkpoint's
/// sweep removed are put back in the live book with their counts (a
/// reopen finds them: their removal was never written), and the next
/// checkpoint that is written removes them.
#[test]
fn a_refused_checkpoint_puts_the_rows_its_sweep_removed_back() {
    let mut l = logged();
    keep_failed_for_a_minute(&mut l);
    l.apply(&created(1, 2, vec![noop(); 3])).unwrap();
    run_all(&mut l, 3, false);
    l.checkpoint_at(4);
    l.set_quota(Some(0));
    let e = l.try_checkpoint_at(2 * MINUTE_MS).unwrap_err();
    assert!(
        matches!(e, booster_store::StoreError::NoSpace { .. }),
        "{e}"
    );
    l.set_quota(None);
    for id in 1..=3 {
        assert_eq!(l.st.job_row(id).unwrap().state, JobState::Failed);
    }
    assert_eq!(l.st.book.by_state[JobState::Failed.index()], 3);
    reopen(&mut l);
    assert_eq!(l.st.book.by_state[JobState::Failed.index()], 3);
    l.checkpoint_at(2 * MINUTE_MS);
    for id in 1..=3 {
        assert_eq!(why(&l.st, id), Missing::Removed, "job {id}");
    }
    assert_eq!(l.st.book.by_state.iter().sum::<u64>(), 0);
}

/// The review of faults12, finding 3: once a checkpoint was refused for
/// want of room, the timer does not build it again (the sweep, the page
/// reads and the compression, under the state lock and the append gate)
/// while the disk has less free than it asked for: each such tick counts
/// a failure and backs off. Once space is freed, it is tried and written.
#[test]
fn a_checkpoint_refused_for_room_is_not_built_again_while_the_disk_has_less_free() {
    let mut l = logged();
    l.st.book.runs_workers = true;
    l.st.book.auto_checkpoint = true;
    l.apply(&created(1, 2, vec![noop(); 3])).unwrap();
    l.set_quota(Some(0));
    let e = l.try_checkpoint_at(10).unwrap_err();
    l.st.checkpoint_failed(10, &RuntimeError::Store(e));
    for failures in [2, 3] {
        let now_ms = l.st.book.checkpoints.retry_at_ms;
        assert!(l.st.checkpoint_due(now_ms));
        assert!(!l.st.timer_checkpoint_due(now_ms, || l.store.free_bytes()));
        assert_eq!(l.st.book.metrics.checkpoint_failures, failures);
        assert!(!l.st.checkpoint_due(now_ms), "backs off");
    }
    l.set_quota(None);
    let now_ms = l.st.book.checkpoints.retry_at_ms;
    assert!(l.st.timer_checkpoint_due(now_ms, || l.store.free_bytes()));
    l.try_checkpoint_at(now_ms).unwrap();
}
