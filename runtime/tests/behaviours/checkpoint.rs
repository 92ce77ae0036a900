use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;

use booster_tests::table::table_of;

use crate::common::*;

/// Jobs of every shape and state: a completed sliced job, a queued, a
/// waiting, a scheduled and an aborted simple job.
async fn jobs_of_every_shape(rt: &Runtime) -> Vec<JobId> {
    rt.register_sliced("echo", echo());
    let done = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(rt, done, &records(25)).await;
    rt.wait(done).await.unwrap();
    let queued = rt
        .submit(JobSpec::simple("nobody", serde_json::json!({"n": 1})).with_priority(7))
        .await
        .unwrap();
    let waits = rt
        .submit(
            JobSpec::simple("nobody", serde_json::Value::Null)
                .with_after(&[queued], DependencyFailure::Fail),
        )
        .await
        .unwrap();
    let mut later = JobSpec::simple("nobody", serde_json::Value::Null);
    later.run_at = Some(std::time::SystemTime::now() + Duration::from_secs(3600));
    let scheduled = rt.submit(later).await.unwrap();
    let gone = rt
        .submit(JobSpec::simple("nobody", serde_json::Value::Null))
        .await
        .unwrap();
    rt.abort(gone).await.unwrap();
    vec![done, queued, waits, scheduled, gone]
}

/// A checkpoint starts the meta log at the table's image: the reopened
/// runtime reads the rows from the pages and replays the records after it,
/// and lists the same table. A job destroyed after a first checkpoint is
/// gone after the second (its page was rewritten), and ids stay unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopen_from_a_checkpoint_lists_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let (table, gone, after);
    {
        let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
        let ids = jobs_of_every_shape(&rt).await;
        assert_eq!(rt.checkpoint().await.unwrap(), 1);
        gone = ids[4];
        rt.destroy(gone).await.unwrap();
        assert_eq!(rt.checkpoint().await.unwrap(), 2);
        // A record after the checkpoint replays over its image.
        after = rt
            .submit(JobSpec::simple("nobody", serde_json::Value::Null))
            .await
            .unwrap();
        rt.set_priority(ids[1], 3).await.unwrap();
        table = table_of(&rt).await;
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    // The open reads the unfinished rows (queued, waiting, scheduled, and
    // the job submitted after), not the finished one, and keeps in RAM only
    // those the scheduler changes there (waiting, scheduled): the two plain
    // queued ones are read back from their pages when leased.
    assert_eq!(rt.rows_in_ram(), 2);
    rt.register_sliced("echo", echo());
    assert_eq!(table_of(&rt).await, table);
    assert!(matches!(
        rt.job(gone).await,
        Err(RuntimeError::NotFound(..))
    ));
    let next = rt
        .submit(JobSpec::simple("nobody", serde_json::Value::Null))
        .await
        .unwrap();
    assert!(next > after, "job ids are never reused");
    // Checkpoint numbers go on after the second (and shutdown's).
    assert!(rt.checkpoint().await.unwrap() > 2);
}

/// A read-only open writes no checkpoint, and says how to get one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_open_refuses_to_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.start_workers = false;
    let rt = Runtime::open(o).await.unwrap();
    let err = rt.checkpoint().await.unwrap_err().to_string();
    assert!(err.contains("read-only"), "{err}");
}

/// G10: once a checkpoint is durable, the rows of finished jobs leave RAM
/// (and those of plain queued ones: issue 12 step 5), yet `job` and `jobs` show them as before,
/// read from the pages; a failed one can still be retried, and a
/// completed one destroyed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_leave_ram_at_a_checkpoint_yet_job_and_jobs_show_them() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    let held = Arc::new(Held::default());
    rt.register_simple("held", held.clone());
    // 150 jobs: three pages of rows; one fails.
    let mut specs: Vec<JobSpec> = (0..150)
        .map(|n| JobSpec::simple("held", serde_json::json!({ "n": n })))
        .collect();
    specs[70] = JobSpec::simple("held", serde_json::json!({ "fail": true }));
    let ids = rt.submit_many(specs).await.unwrap();
    for &id in &ids {
        rt.wait(id).await.unwrap();
    }
    let waiting = rt
        .submit(JobSpec::simple("nobody", serde_json::Value::Null))
        .await
        .unwrap();
    let table = table_of(&rt).await;
    assert!(rt.rows_in_ram() > ids.len());
    rt.checkpoint().await.unwrap();
    assert_eq!(
        rt.rows_in_ram(),
        0,
        "the queued job's row left RAM too (issue 12 step 5)"
    );
    assert_eq!(table_of(&rt).await, table);
    // The newest page of completed jobs, read from the pages.
    let completed = JobFilter {
        state: Some(JobState::Completed),
        ..JobFilter::default()
    };
    let query = JobQuery {
        limit: 10,
        ..JobQuery::newest(completed)
    };
    let page = rt.jobs_page(query).await.unwrap();
    assert_eq!(page.total, Some(149));
    let page = page.jobs;
    let mut newest: Vec<JobId> = ids
        .iter()
        .rev()
        .filter(|&&id| id != ids[70])
        .take(10)
        .copied()
        .collect();
    newest.reverse();
    assert_eq!(page.iter().map(|j| j.id).collect::<Vec<_>>(), newest);
    let shown = rt.job(ids[3]).await.unwrap();
    assert_eq!(shown.state, JobState::Completed);
    assert_eq!(shown.result, Some(serde_json::json!({ "n": 3 })));
    assert_eq!(rt.job(ids[70]).await.unwrap().state, JobState::Failed);
    assert_eq!(rt.job(waiting).await.unwrap().state, JobState::Queued);
    // Controls on rows read back from the pages.
    rt.destroy(ids[0]).await.unwrap();
    assert!(matches!(
        rt.job(ids[0]).await,
        Err(RuntimeError::NotFound(..))
    ));
    rt.retry(ids[70]).await.unwrap();
    assert_eq!(rt.wait(ids[70]).await.unwrap().state, JobState::Failed);
    assert_eq!(rt.job(ids[70]).await.unwrap().attempts, 2);
    rt.checkpoint().await.unwrap();
    assert_eq!(rt.rows_in_ram(), 0);
    assert!(matches!(
        rt.job(ids[0]).await,
        Err(RuntimeError::NotFound(..))
    ));
    assert_eq!(
        rt.jobs(JobFilter::default()).await.unwrap().len(),
        ids.len()
    );
}

/// Step 3.3: a runtime left running takes checkpoints by itself, with the
/// default options (G10 by default). Rows changed, its clock has not
/// moved: none is taken (the finished rows stay in RAM); once a second
/// passed, the timer takes one, and the finished rows leave RAM. A reopen
/// then lists the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_left_running_checkpoints_by_itself_once_a_second_passed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(1_000_000));
    let mut o = opts(dir.path(), 2);
    o.clock = clock.clone();
    let rt = Runtime::open(o).await.unwrap();
    rt.register_simple("held", Arc::new(Held::default()));
    let specs = (0..100)
        .map(|n| JobSpec::simple("held", serde_json::json!({ "n": n })))
        .collect();
    for id in rt.submit_many(specs).await.unwrap() {
        rt.wait(id).await.unwrap();
    }
    assert_eq!(rt.rows_in_ram(), 100, "no second has passed: no checkpoint");
    clock.advance_ms(1_000);
    until("the timer's checkpoint", || rt.rows_in_ram() == 0).await;
    let table = table_of(&rt).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let mut o = opts(dir.path(), 2);
    o.clock = clock;
    let rt = Runtime::open(o).await.unwrap();
    assert_eq!(rt.rows_in_ram(), 0);
    assert_eq!(table_of(&rt).await, table);
}

/// A lease is no record: a checkpoint taken while a job is leased writes
/// its row as the records say (queued, never started), so after a crash
/// the reopened job has no start it never had, and its `expires_at` still
/// expires it, as a replay of the log would have it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_while_a_job_is_leased_writes_its_row_as_the_records_say() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(1_000_000));
    let mut o = opts(dir.path(), 1);
    o.clock = clock.clone();
    o.auto_checkpoint = false;
    let expires = std::time::UNIX_EPOCH + Duration::from_millis(1_060_000);
    let id;
    {
        let rt = Runtime::open(o.clone()).await.unwrap();
        let held = Arc::new(Held::default());
        held.hold.store(true, std::sync::atomic::Ordering::SeqCst);
        rt.register_simple("held", held);
        let mut spec = JobSpec::simple("held", serde_json::Value::Null);
        spec.expires_at = Some(expires);
        id = rt.submit(spec).await.unwrap();
        for _ in 0..3000 {
            if !rt.job(id).await.unwrap().leases.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let leased = rt.job(id).await.unwrap();
        assert_eq!(leased.state, JobState::Running, "leased: {leased:?}");
        rt.checkpoint().await.unwrap();
        // The process stops with the handler still held: no record ends
        // the lease (its late commit finds the store closed).
        rt.shutdown(Duration::ZERO).await.unwrap();
    }
    let rt = Runtime::open(o).await.unwrap();
    let s = rt.job(id).await.unwrap();
    assert_eq!(
        (s.state, s.started_at),
        (JobState::Queued, None),
        "as its records say"
    );
    clock.advance_ms(60_001);
    let s = rt.wait(id).await.unwrap();
    assert_eq!(s.state, JobState::Aborted, "expired: {s:?}");
}

/// A rotted row page of the checkpoint's table degrades the open (G7,
/// G11) instead of stopping it: the recovery report names the page's id
/// range; the records since the checkpoint replay; a job whose row the
/// page held shows as lost to the damaged page (never "no such job"),
/// the rows of other pages are whole; `verify` names the frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotted_row_page_opens_degraded_and_its_rows_show_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.auto_checkpoint = false;
    let after;
    {
        let rt = Runtime::open(o.clone()).await.unwrap();
        // Jobs 1..=70: page 0 holds ids 0..=63, page 1 the rest.
        let specs = (0..70)
            .map(|_| JobSpec::simple("nobody", serde_json::Value::Null))
            .collect();
        rt.submit_many(specs).await.unwrap();
        rt.checkpoint().await.unwrap();
        after = rt
            .submit(JobSpec::simple("nobody", serde_json::Value::Null))
            .await
            .unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let offset = rot_row_page_0(dir.path());

    let rt = Runtime::open(o).await.expect("the open degrades");
    let report = rt.recovery_report();
    assert!(
        report
            .damaged
            .iter()
            .any(|d| d.offset == offset && d.what.contains("job ids 0 to 63")),
        "{:?}",
        report.damaged
    );
    let lost = rt.job(5).await.expect("a lost row, not no such job");
    assert_eq!(lost.state, JobState::Failed);
    let reason = lost.failure_reason.unwrap_or_default();
    assert!(
        reason.contains("damaged") && reason.contains("page 0"),
        "{reason}"
    );
    assert_eq!(rt.job(65).await.unwrap().state, JobState::Queued);
    assert_eq!(rt.job(after).await.unwrap().state, JobState::Queued);
    let verify = rt.verify();
    assert!(
        verify
            .problems
            .iter()
            .any(|p| format!("{p:?}").contains(&offset.to_string())),
        "{:?}",
        verify.problems
    );
}

/// Flips a bit in row page 0 of the checkpoint's table, in its sealed
/// segment; the frame's offset.
fn rot_row_page_0(dir: &std::path::Path) -> u64 {
    use booster_store::format::{read_sealed_entries, segment_paths};
    let (seg, offset) = segment_paths(dir)
        .unwrap()
        .into_iter()
        .find_map(|p| {
            let entries = read_sealed_entries(&std::fs::read(&p).unwrap()).ok()?;
            let e = entries.iter().find(|e| {
                e.header.key.owner == u64::MAX && e.header.key.stream == 0 && e.header.key.seq == 0
            })?;
            Some((p.clone(), e.offset))
        })
        .expect("row page 0 in a sealed segment");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[offset as usize + 60] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    offset
}

/// A store read error is never "no such row" (G7). Finished rows whose
/// page rotted after the checkpoint (an open does not read them): `job`
/// shows one as lost, naming the page; a control on one says what is
/// damaged, never "no such job"; and a record about one, logged after the
/// checkpoint, is not dropped at replay: the open names the page as
/// damaged (meta lost), so no checkpoint cuts the log, and restoring the
/// segment would still replay it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotted_page_of_finished_rows_is_named_damage_never_no_such_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.auto_checkpoint = false;
    let ids;
    {
        let rt = Runtime::open(o.clone()).await.unwrap();
        rt.register_simple("held", Arc::new(Held::default()));
        let specs = (0..10)
            .map(|n| JobSpec::simple("held", serde_json::json!({ "n": n })))
            .collect();
        ids = rt.submit_many(specs).await.unwrap();
        for &id in &ids {
            rt.wait(id).await.unwrap();
        }
        rt.checkpoint().await.unwrap();
        // A record after the checkpoint about a row only the page holds.
        rt.destroy(ids[2]).await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let offset = rot_row_page_0(dir.path());

    let rt = Runtime::open(o).await.expect("the open degrades");
    let report = rt.recovery_report();
    assert!(
        report
            .damaged
            .iter()
            .any(|d| d.offset == offset && d.meta_lost && d.what.contains("job ids 0 to 63")),
        "the replayed destroy names the page it could not read: {:?}",
        report.damaged
    );
    let lost = rt.job(ids[5]).await.expect("a lost row, not no such job");
    assert_eq!(lost.state, JobState::Failed);
    let reason = lost.failure_reason.unwrap_or_default();
    assert!(reason.contains("page 0"), "{reason}");
    let err = rt.retry(ids[5]).await.unwrap_err();
    assert!(
        !matches!(err, RuntimeError::NotFound(..)) && err.to_string().contains("damaged"),
        "{err}"
    );
    // A priority or worker limit change names the damage too, not the
    // lost row's state.
    for err in [
        rt.set_priority(ids[5], 3).await.unwrap_err(),
        rt.set_max_workers(ids[5], Some(2)).await.unwrap_err(),
    ] {
        assert!(err.to_string().contains("damaged"), "{err}");
    }
    assert!(
        rt.checkpoint().await.is_err(),
        "no checkpoint makes the loss permanent"
    );
}

/// A changed row whose page rotted (Known fault 5's first half: new jobs
/// whose ids fall in a rotted page of finished rows) blocks the
/// checkpoint that would merge it. The timer tries once, then pauses
/// checkpoints while the page is known unreadable: it never retries every
/// tick holding the append gate, and the pause is visible in the metrics,
/// naming the page and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_a_rotted_page_blocks_is_tried_once_then_paused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(1_000_000));
    let mut o = opts(dir.path(), 1);
    o.clock = clock.clone();
    o.auto_checkpoint = false;
    {
        let rt = Runtime::open(o.clone()).await.unwrap();
        rt.register_simple("held", Arc::new(Held::default()));
        let specs = (0..10)
            .map(|n| JobSpec::simple("held", serde_json::json!({ "n": n })))
            .collect();
        for id in rt.submit_many(specs).await.unwrap() {
            rt.wait(id).await.unwrap();
        }
        rt.checkpoint().await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    rot_row_page_0(dir.path());
    o.auto_checkpoint = true;
    let rt = Runtime::open(o).await.unwrap();
    rt.register_simple("held", Arc::new(Held::default()));
    // Job 11's row is changed, and merges into page 0.
    let id = rt
        .submit(JobSpec::simple("held", serde_json::Value::Null))
        .await
        .unwrap();
    rt.wait(id).await.unwrap();
    for _ in 0..100 {
        // A second passes, and the timer ticks at least once after it
        // (it releases a job scheduled within that second): a checkpoint
        // is due by the interval at each of those ticks.
        let mut spec = JobSpec::simple("held", serde_json::Value::Null);
        spec.run_at = Some(std::time::UNIX_EPOCH + Duration::from_millis(clock.now_ms() + 500));
        let scheduled = rt.submit(spec).await.unwrap();
        clock.advance_ms(1_000);
        rt.wait(scheduled).await.unwrap();
    }
    let m = rt.metrics();
    assert!(
        (1..=2).contains(&m.checkpoint_failures),
        "tried once, not every tick: {} attempts",
        m.checkpoint_failures
    );
    let paused = m.checkpoints_paused.unwrap_or_default();
    assert!(
        paused.contains("page 0") && paused.contains("restore the segment"),
        "{paused}"
    );
}

/// Opens a runtime (automatic checkpoints off) on `fs`, with no disk
/// reserve, so the test's quota is the space the store has.
async fn open_on_sim(fs: &booster_store::fs::sim::SimFileLayer) -> Runtime {
    open_on_sim_with_reserve(fs, 0).await
}

/// `open_on_sim`, holding a disk reserve of `reserve_bytes`.
async fn open_on_sim_with_reserve(
    fs: &booster_store::fs::sim::SimFileLayer,
    reserve_bytes: u64,
) -> Runtime {
    let fs = fs.clone();
    let mut o = opts(std::path::Path::new("/full"), 2);
    o.auto_checkpoint = false;
    let store_opts = booster_store::StoreOptions {
        reserve_bytes,
        ..booster_store::StoreOptions::default()
    };
    let rt = Runtime::open_on(o, move || {
        booster_store::Store::open_with(fs, "/full", store_opts)
    })
    .await
    .unwrap();
    rt.register_simple("held", Arc::new(Held::default()));
    rt
}

/// Arguments that hardly compress: `n` hex digits of a fixed sequence.
fn hex_args(seed: u64, n: usize) -> serde_json::Value {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let digits: String = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x & 15) as u32, 16).expect("a hex digit")
        })
        .collect();
    serde_json::json!({ "hex": digits })
}

/// Known fault 8: a checkpoint batch that does not fit on a nearly full
/// disk is refused before anything of it is written, and poisons nothing
/// (before, its write met ENOSPC and poisoned the store, G9, where small
/// commits still fit): submits and completions go on, acknowledged and
/// durable across a reopen, and once space is freed a checkpoint is
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_does_not_fit_on_a_full_disk_is_refused_and_small_commits_go_on() {
    let fs = booster_store::fs::sim::SimFileLayer::new();
    let rt = open_on_sim(&fs).await;
    // 1 000 queued jobs of 2 KB of arguments each: their rows make a
    // checkpoint of about a megabyte.
    let specs = (0..1000)
        .map(|n| JobSpec::simple("nobody", hex_args(n, 2000)))
        .collect();
    let queued = rt.submit_many(specs).await.unwrap();
    // Room for small commits, not for that checkpoint.
    fs.set_quota(Some(fs.used_bytes() + 256 * 1024));
    let e = rt.checkpoint().await.unwrap_err();
    assert!(
        e.to_string().contains("checkpoint") && e.to_string().contains("free space"),
        "{e}"
    );
    assert_eq!(rt.checkpoint_seq(), 0);
    // Said, and counted as a failure that backs off (not a pause for good).
    let m = rt.metrics();
    let paused = m.checkpoints_paused.unwrap_or_default();
    assert!(
        paused.contains("free space") && paused.contains("retrying"),
        "{paused}"
    );
    assert_eq!(m.checkpoint_failures, 1);
    let mut done = Vec::new();
    for n in 0..20 {
        let id = rt
            .submit(JobSpec::simple("held", serde_json::json!({ "n": n })))
            .await
            .unwrap();
        let status = rt.wait(id).await.unwrap();
        assert_eq!(status.state, JobState::Completed);
        done.push(id);
    }
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = open_on_sim(&fs).await;
    for &id in &done {
        assert_eq!(rt.job(id).await.unwrap().state, JobState::Completed);
    }
    assert_eq!(rt.job(queued[999]).await.unwrap().state, JobState::Queued);
    assert!(rt.checkpoint().await.is_err(), "still no room");
    fs.set_quota(None);
    assert_eq!(rt.checkpoint().await.unwrap(), 1);
    assert_eq!(rt.metrics().checkpoints_paused, None);
    let table = table_of(&rt).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = open_on_sim(&fs).await;
    assert_eq!(table_of(&rt).await, table);
}

/// Queues 1 000 jobs of 2 KB of arguments (rows that make a checkpoint of
/// about a megabyte), and aborts and destroys the first 400: the log
/// holds every one's `created` record, dead bytes once a checkpoint
/// covers them.
async fn queue_and_destroy(rt: &Runtime) {
    let specs = (0..1000)
        .map(|n| JobSpec::simple("nobody", hex_args(n, 2000)))
        .collect();
    let queued = rt.submit_many(specs).await.unwrap();
    for &id in &queued[..400] {
        rt.abort(id).await.unwrap();
        rt.destroy(id).await.unwrap();
    }
}

/// Review finding 1 of faults12: a nearly full disk is recovered with a
/// compaction (README, "Full disks"). The compaction's own checkpoint
/// needs room for itself (appends wait while it is written), with the
/// disk reserve counted as free, not the room a timer's checkpoint keeps
/// for the commits beside it: here the disk has less free than that
/// checkpoint, and the reserve makes it up; before, the checkpoint was
/// refused and the reserve never given back, so no compaction could run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_on_a_nearly_full_disk_takes_the_reserve_and_reclaims_space() {
    const RESERVE_BYTES: u64 = 1 << 20;
    // The same jobs on a disk without bound: how large their checkpoint is.
    let probe = booster_store::fs::sim::SimFileLayer::new();
    let rt = open_on_sim_with_reserve(&probe, RESERVE_BYTES).await;
    queue_and_destroy(&rt).await;
    let before = probe.used_bytes();
    rt.checkpoint().await.unwrap();
    let checkpoint_bytes = probe.used_bytes() - before;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();

    let fs = booster_store::fs::sim::SimFileLayer::new();
    let rt = open_on_sim_with_reserve(&fs, RESERVE_BYTES).await;
    queue_and_destroy(&rt).await;
    let reserve = std::path::Path::new("/full/RESERVE");
    assert!(booster_store::fs::FileLayer::open(&fs, reserve).is_ok());
    fs.set_quota(Some(fs.used_bytes() + checkpoint_bytes * 3 / 4));
    let report = rt.compact().await.unwrap();
    assert!(
        report.bytes_after < report.bytes_before,
        "{report:?} (a checkpoint of {checkpoint_bytes} bytes)"
    );
    assert!(
        booster_store::fs::FileLayer::open(&fs, reserve).is_err(),
        "the reserve was given back for the compaction"
    );
    // Small commits go on after it.
    let table = table_of(&rt).await;
    rt.submit(JobSpec::simple("nobody", serde_json::Value::Null))
        .await
        .unwrap();
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = open_on_sim(&fs).await;
    assert_eq!(table_of(&rt).await.len(), table.len() + 1);
}

/// Issue 12 step 5: queued jobs whose rows a checkpoint let go out of RAM
/// run with their own args once a handler comes (each handler returns its
/// args as its result), a priority change on one of them applies, and
/// none is lost or run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_whose_rows_left_ram_run_with_their_args() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    let specs: Vec<JobSpec> = (0..150)
        .map(|n| JobSpec::simple("late", serde_json::json!({ "n": n })))
        .collect();
    let ids = rt.submit_many(specs).await.unwrap();
    rt.checkpoint().await.unwrap();
    assert_eq!(rt.rows_in_ram(), 0, "the queued rows left RAM");
    rt.set_priority(ids[149], 1).await.unwrap();
    rt.register_simple("late", Arc::new(Held::default()));
    for (n, &id) in ids.iter().enumerate() {
        let status = rt.wait(id).await.unwrap();
        assert_eq!(status.state, JobState::Completed, "job {id}");
        assert_eq!(
            status.result,
            Some(serde_json::json!({ "n": n })),
            "job {id}"
        );
        assert_eq!(status.attempts, 1, "job {id}");
    }
    assert_eq!(rt.job(ids[149]).await.unwrap().priority, 1);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
