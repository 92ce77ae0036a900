//! Unit tests of the job table, the state machine and the dispatcher,
//! without a store: meta records are applied directly.

use std::sync::Arc;

use crate::meta::{self, Control, Meta, SimpleOutcome};
use crate::snapshot::Snapshot;
use crate::state::{Book, HandlerShape, KindConf, LeaseWork, State};
use crate::status::build_status as status;
use crate::{JobSpec, JobState, RuntimeError};
use booster_store::CompactionPlan;

pub(crate) fn state() -> State {
    let mut st = State::new(Book::new(4, 1000, 100));
    st.book.live = true;
    st
}

fn register(st: &mut State, kind: &str, shape: HandlerShape) {
    st.book.kinds.insert(
        Arc::from(kind),
        KindConf {
            handler: Some(shape),
            ..KindConf::default()
        },
    );
}

fn created(first_id: u64, specs: Vec<JobSpec>) -> Meta {
    Meta::Created {
        first_id,
        at_ms: 1,
        specs,
    }
}

/// Slice `slice` of job `job` uploaded: `records` records, numbered on
/// from `slice * 10 + 1`.
pub(crate) fn uploaded(job: u64, slice: u64, records: u32) -> Meta {
    Meta::Uploaded {
        job,
        slice,
        first_record: slice * 10 + 1,
        records,
        rejects: 0,
        line_first: None,
        lines: None,
        numbers: None,
        reject_errors: Vec::new(),
    }
}

fn slice_done(job: u64, slice: u64) -> Meta {
    Meta::SliceDone {
        job,
        slice,
        at_ms: 5,
        errors: 0,
        error_groups: Vec::new(),
        written: None,
        written_by_category: Default::default(),
    }
}

fn control(job: u64, action: Control) -> Meta {
    Meta::Control {
        job,
        at_ms: 9,
        action,
    }
}

/// A history touching every record type.
fn history() -> Vec<Meta> {
    vec![
        created(
            1,
            vec![
                JobSpec::sliced("copy"),
                JobSpec::simple("noop", serde_json::json!({"n": 1})),
                JobSpec::simple("noop", serde_json::Value::Null).with_priority(3),
            ],
        ),
        uploaded(1, 0, 10),
        uploaded(1, 1, 10),
        uploaded(1, 2, 7),
        Meta::UploadComplete {
            job: 1,
            at_ms: Some(4),
        },
        Meta::BeforeDone { job: 1, at_ms: 2 },
        slice_done(1, 0),
        Meta::SliceFailed {
            job: 1,
            slice: 1,
            at_ms: 6,
            message: "bad record".into(),
            sample: None,
            retry_at_ms: None,
        },
        Meta::Priority {
            job: 1,
            priority: 7,
        },
        Meta::MaxWorkers {
            job: 1,
            max_workers: Some(2),
        },
        Meta::SimpleDone {
            at_ms: 8,
            at_us: None,
            outcomes: vec![SimpleOutcome {
                job: 2,
                started_us: 7000,
                result: Ok(Some(serde_json::json!("ok"))),
                retry_at_ms: None,
            }],
        },
        control(3, Control::Pause),
        control(3, Control::Resume),
        control(3, Control::Resume), // refused: queued
    ]
}

fn comparable(st: &State) -> Vec<serde_json::Value> {
    crate::logged_tests::all_rows(st)
        .iter()
        .map(|j| {
            let mut v = serde_json::to_value(status(st, j)).unwrap();
            let o = v.as_object_mut().unwrap();
            for volatile in ["leases", "records_per_s", "eta_s"] {
                o.remove(volatile);
            }
            v
        })
        .collect()
}

#[test]
fn replaying_encoded_meta_records_rebuilds_the_same_table() {
    let mut live = state();
    let mut results = Vec::new();
    for m in history() {
        results.push(live.apply(&m).is_ok());
    }
    assert_eq!(
        results.last(),
        Some(&false),
        "resume of a queued job is refused"
    );
    let mut replayed = State::new(Book::new(4, 1000, 100));
    for m in history() {
        let _ = replayed.apply(&meta::decode(&meta::encode(&m)).unwrap());
    }
    assert_eq!(comparable(&live), comparable(&replayed));
    assert_eq!(live.book.next_id, 4);
    assert_eq!(replayed.book.next_id, 4);
}

/// A compaction's snapshot (the records of the checkpoint written just
/// before) replays over that checkpoint's pages to the same table; the
/// slices of a destroyed job are dead.
#[test]
fn compaction_snapshot_replays_to_the_same_table() {
    let mut logged = crate::logged_tests::Logged::new(state());
    for m in history() {
        let _ = logged.apply(&m);
    }
    logged.apply(&control(2, Control::Destroy)).unwrap();
    logged.checkpoint();
    let live = &logged.st;
    let snap = Snapshot::take(live).unwrap();
    assert!(snap.slice_is_live(&booster_store::SliceKey {
        owner: 1,
        stream: 0,
        seq: 0
    }));
    assert!(!snap.slice_is_live(&booster_store::SliceKey {
        owner: 2,
        stream: 0,
        seq: 0
    }));
    let restored = logged.replay(Book::new(4, 1000, 100), &snap.meta_snapshot());
    assert_eq!(comparable(live), comparable(&restored));
    assert_eq!(restored.book.next_id, live.book.next_id);
}

#[test]
fn counts_reconcile_after_done_and_failed_slices() {
    let mut st = state();
    for m in history() {
        let _ = st.apply(&m);
    }
    let s = status(&st, &st.table[&1]);
    assert_eq!(s.state, JobState::Running, "slice 2 still pending");
    assert_eq!(
        (s.records_in, s.records_out, s.records_in_failed_slices),
        (27, 10, 10)
    );
    st.apply(&slice_done(1, 2)).unwrap();
    let s = status(&st, &st.table[&1]);
    assert_eq!(s.state, JobState::Failed);
    assert_eq!(s.records_in, s.records_out + s.records_failed);
    assert!(s.failure_reason.unwrap().contains("1 of 3 slices failed"));
}

#[test]
fn category_counts_add_up_and_a_slice_done_naming_an_undeclared_category_is_corruption() {
    let mut st = state();
    let spec = JobSpec::sliced("sort").with_categories(&["valid", "review"]);
    st.apply(&created(1, vec![spec])).unwrap();
    st.apply(&uploaded(1, 0, 10)).unwrap();
    st.apply(&uploaded(1, 1, 10)).unwrap();
    for (slice, valid) in [(0, 3), (1, 4)] {
        let mut done = slice_done(1, slice);
        if let Meta::SliceDone {
            written_by_category,
            ..
        } = &mut done
        {
            written_by_category.insert("valid".into(), valid);
        }
        st.apply(&done).unwrap();
    }
    let s = status(&st, &st.table[&1]);
    assert_eq!(
        s.records_out_by_category,
        [("review".to_string(), 0), ("valid".to_string(), 7)].into()
    );
    st.apply(&uploaded(1, 2, 10)).unwrap();
    let mut bad = slice_done(1, 2);
    if let Meta::SliceDone {
        written_by_category,
        ..
    } = &mut bad
    {
        written_by_category.insert("other".into(), 1);
    }
    let err = st.apply(&bad).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Corrupt(m) if m.contains("category \"other\"")),
        "{err}"
    );
    let s = status(&st, &st.table[&1]);
    assert_eq!(s.slices_done, 2, "the corrupt record changed nothing");
}

/// The slices of sliced job `id` that wait for a lease (its scheduler entry).
fn queued(st: &State, id: crate::JobId) -> &crate::table::RangeSet {
    &st.book
        .sliced_live
        .get(&id)
        .expect("an unfinished sliced job")
        .queued
}

#[test]
fn retry_requeues_only_the_failed_slices() {
    let mut st = state();
    for m in history() {
        let _ = st.apply(&m);
    }
    st.apply(&slice_done(1, 2)).unwrap();
    st.apply(&control(1, Control::Retry)).unwrap();
    assert_eq!(queued(&st, 1).iter().collect::<Vec<_>>(), vec![1]);
    assert_eq!(st.table[&1].state, JobState::Running);
}

#[test]
fn illegal_transitions_are_refused_and_change_nothing() {
    let mut st = state();
    st.apply(&created(
        1,
        vec![JobSpec::simple("k", serde_json::Value::Null)],
    ))
    .unwrap();
    for action in [Control::Resume, Control::Retry] {
        let err = st.apply(&control(1, action)).unwrap_err();
        assert!(matches!(
            err,
            RuntimeError::IllegalTransition {
                state: JobState::Queued,
                ..
            }
        ));
    }
    st.apply(&control(1, Control::Abort)).unwrap();
    for action in [
        Control::Pause,
        Control::Abort,
        Control::Fail { reason: "x".into() },
    ] {
        assert!(st.apply(&control(1, action)).is_err());
    }
    assert_eq!(st.table[&1].state, JobState::Aborted);
    st.apply(&control(1, Control::Destroy)).unwrap();
    let destroyed = crate::Missing::Destroyed {
        state: JobState::Aborted,
        at: crate::clock::from_ms(9),
    };
    assert!(matches!(
        st.apply(&control(1, Control::Pause)),
        Err(RuntimeError::NotFound(1, why)) if why == destroyed
    ));
}

#[test]
fn leases_follow_priority_then_submission_order() {
    let mut st = state();
    register(&mut st, "k", HandlerShape::Simple);
    let specs = [50u8, 10, 50, 10, 1]
        .iter()
        .map(|p| JobSpec::simple("k", serde_json::Value::Null).with_priority(*p))
        .collect();
    st.apply(&created(1, specs)).unwrap();
    let mut order = Vec::new();
    while let Some(task) = st.lease(0, 0) {
        if let crate::dispatch::TaskWork::Simple(items) = task.work {
            order.extend(items.iter().map(|i| i.job));
        }
    }
    assert_eq!(order, vec![5, 2, 4, 1, 3]);
}

#[test]
fn priority_change_takes_effect_at_the_next_lease() {
    let mut st = state();
    register(&mut st, "k", HandlerShape::Simple);
    st.apply(&created(
        1,
        vec![JobSpec::simple("k", serde_json::Value::Null); 3],
    ))
    .unwrap();
    st.apply(&Meta::Priority {
        job: 3,
        priority: 1,
    })
    .unwrap();
    let task = st.lease(0, 0).unwrap();
    let crate::dispatch::TaskWork::Simple(items) = task.work else {
        panic!("simple lease expected")
    };
    assert_eq!(items[0].job, 3);
}

#[test]
fn simple_job_times_are_microseconds_from_its_record() {
    let mut st = state();
    register(&mut st, "k", HandlerShape::Simple);
    st.apply(&created(
        1,
        vec![JobSpec::simple("k", serde_json::Value::Null)],
    ))
    .unwrap();
    st.apply(&Meta::SimpleDone {
        at_ms: 8,
        at_us: Some(8_123),
        outcomes: vec![SimpleOutcome {
            job: 1,
            started_us: 7_456,
            result: Ok(None),
            retry_at_ms: None,
        }],
    })
    .unwrap();
    let s = status(&st, &st.table[&1]);
    let us = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
    };
    assert_eq!(s.started_at.map(us), Some(7_456));
    assert_eq!(s.completed_at.map(us), Some(8_123));
}

#[test]
fn a_simple_lease_shows_its_start_to_the_microsecond_but_leaves_the_row_unstarted() {
    let mut st = state();
    fast_simple_jobs(&mut st, 1);
    st.book.clock = Arc::new(crate::ManualClock::at_us(7_000_123));
    st.lease(0, 0).unwrap();
    // The runtime's clock to the microsecond, not the caller's 0 ms.
    let s = status(&st, &st.table[&1]);
    let us = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
    };
    assert_eq!(s.started_at.map(us), Some(7_000_123));
    // A lease is no record: the row (what a checkpoint writes) has no start.
    assert_eq!(st.table[&1].started_us, None);
}

/// Leases `st` hands worker 0 until none is left; the jobs of each.
fn simple_lease_sizes(st: &mut State) -> Vec<usize> {
    let mut sizes = Vec::new();
    while let Some(task) = st.lease(0, 0) {
        let crate::dispatch::TaskWork::Simple(items) = task.work else {
            panic!("simple lease expected")
        };
        sizes.push(items.len());
    }
    sizes
}

fn fast_simple_jobs(st: &mut State, jobs: usize) {
    register(st, "k", HandlerShape::Simple);
    // 1 us a job: a batch budget of 1 ms fits every one of them.
    st.observe_simple("k", 1, 1.0);
    st.apply(&created(
        1,
        vec![JobSpec::simple("k", serde_json::Value::Null); jobs],
    ))
    .unwrap();
}

#[test]
fn fast_simple_jobs_share_one_lease_by_default() {
    let mut st = state();
    fast_simple_jobs(&mut st, 5);
    assert_eq!(simple_lease_sizes(&mut st), vec![5]);
}

/// A batch of simple jobs ends where the next most urgent job is sliced:
/// that job gets a lease of its own, and the simple ones after it the next.
#[test]
fn a_simple_batch_stops_at_a_sliced_job() {
    let mut st = state();
    fast_simple_jobs(&mut st, 1);
    register(&mut st, "copy", HandlerShape::Sliced);
    st.apply(&created(2, vec![JobSpec::sliced("copy")]))
        .unwrap();
    let simple = JobSpec::simple("k", serde_json::Value::Null);
    st.apply(&created(3, vec![simple])).unwrap();
    assert_eq!(leased_jobs(&mut st, 0), vec![1]);
    let before = st.lease(1, 0).expect("the sliced job's before hook");
    assert!(matches!(
        before.work,
        crate::dispatch::TaskWork::Before(crate::dispatch::HookItem { job: 2, .. })
    ));
    assert_eq!(leased_jobs(&mut st, 2), vec![3]);
}

#[test]
fn max_lease_batch_caps_the_jobs_of_one_simple_lease() {
    let mut st = state();
    st.book.max_lease_batch = 1;
    fast_simple_jobs(&mut st, 3);
    assert_eq!(simple_lease_sizes(&mut st), vec![1, 1, 1]);
    let mut st = state();
    st.book.max_lease_batch = 2;
    fast_simple_jobs(&mut st, 5);
    assert_eq!(simple_lease_sizes(&mut st), vec![2, 2, 1]);
}

/// The jobs of a lease of simple jobs (empty for none).
fn leased_jobs(st: &mut State, worker: usize) -> Vec<crate::JobId> {
    match st.lease(worker, 0).map(|t| t.work) {
        Some(crate::dispatch::TaskWork::Simple(items)) => items.iter().map(|i| i.job).collect(),
        Some(_) => panic!("not a simple lease"),
        None => Vec::new(),
    }
}

#[test]
fn a_reserved_worker_takes_only_jobs_at_the_lane_s_priority_or_above() {
    let mut st = state(); // 4 worker slots: the last one is the lane
    st.book.reserved_workers = 1;
    st.book.reserved_priority = 10;
    fast_simple_jobs(&mut st, 3); // priority 50, ids 1..=3
    assert_eq!(
        leased_jobs(&mut st, 3),
        Vec::<crate::JobId>::new(),
        "the lane idles"
    );
    let mut urgent = JobSpec::simple("k", serde_json::Value::Null);
    urgent.priority = 10;
    let mut also = urgent.clone();
    also.priority = 1;
    st.apply(&created(4, vec![urgent, also])).unwrap();
    // Urgent first, and a batch never takes the lane's slot past them.
    assert_eq!(leased_jobs(&mut st, 3), vec![5, 4]);
    assert_eq!(
        leased_jobs(&mut st, 0),
        vec![1, 2, 3],
        "the others take the rest"
    );
}

/// A remote worker thread's slot after this process's own.
fn remote_slot(st: &mut State, kinds: &[&str]) -> usize {
    st.book.workers.push(crate::state::WorkerSlot {
        remote: Some(crate::remote::RemoteSlot {
            group: 7,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            allows: Vec::new().into(),
            reads_after: true,
        }),
        ..Default::default()
    });
    st.book.workers.len() - 1
}

#[test]
fn remote_slots_stay_out_of_the_reserved_lane_and_lease_only_their_kinds() {
    let mut st = state(); // 4 local slots: the last one is the lane
    st.book.reserved_workers = 1;
    st.book.reserved_priority = 10;
    fast_simple_jobs(&mut st, 2); // kind k, priority 50
    let other = remote_slot(&mut st, &["copy"]);
    let remote = remote_slot(&mut st, &["k"]);
    assert_eq!(
        leased_jobs(&mut st, 3),
        Vec::<crate::JobId>::new(),
        "the lane idles"
    );
    assert_eq!(
        leased_jobs(&mut st, other),
        Vec::<crate::JobId>::new(),
        "a remote slot leases only the kinds its process runs"
    );
    assert_eq!(
        leased_jobs(&mut st, remote),
        vec![1, 2],
        "the last slot is a remote one, not the lane"
    );
}

/// An older worker's slot (its `Hello` does not say it reads
/// dependencies) would run a job with `after` without its input.
#[test]
fn a_remote_slot_of_an_older_worker_leaves_jobs_with_dependencies_to_this_process_s_threads() {
    let mut st = state();
    fast_simple_jobs(&mut st, 1);
    let spec = JobSpec::simple("k", serde_json::Value::Null);
    let after = spec
        .clone()
        .with_after(&[1], crate::DependencyFailure::Fail);
    st.apply(&created(2, vec![after, spec])).unwrap();
    st.apply(&Meta::SimpleDone {
        at_ms: 2,
        at_us: None,
        outcomes: vec![SimpleOutcome {
            job: 1,
            started_us: 1,
            result: Ok(None),
            retry_at_ms: None,
        }],
    })
    .unwrap();
    assert_eq!(st.table[&2].state, JobState::Queued, "job 1 is done");
    let remote = remote_slot(&mut st, &["k"]);
    if let Some(r) = st.book.workers[remote].remote.as_mut() {
        r.reads_after = false;
    }
    assert_eq!(
        leased_jobs(&mut st, remote),
        vec![3],
        "this remote handler could not read job 1's output: job 2 is not for it"
    );
    assert_eq!(leased_jobs(&mut st, 0), vec![2], "a local thread runs it");
}

#[test]
fn a_remote_slot_leases_only_jobs_its_allow_list_passes() {
    let mut st = state();
    register(&mut st, "k", HandlerShape::Simple);
    let with = |cmd: &str| {
        let mut spec = JobSpec::simple("k", serde_json::Value::Null);
        spec.properties = serde_json::json!({ "cmd": cmd });
        spec
    };
    st.apply(&created(1, vec![with("rm -rf /"), with("cat")]))
        .unwrap();
    let remote = remote_slot(&mut st, &["k"]);
    if let Some(r) = st.book.workers[remote].remote.as_mut() {
        r.allows = vec![crate::remote::RemoteAllow {
            kind: "k".into(),
            property: "cmd".into(),
            values: vec!["cat".into()],
        }]
        .into();
    }
    assert_eq!(
        leased_jobs(&mut st, remote),
        vec![2],
        "its process runs `cat` only"
    );
    assert_eq!(leased_jobs(&mut st, remote), Vec::<crate::JobId>::new());
    assert_eq!(leased_jobs(&mut st, 0), vec![1], "left to a slot that may");
}

#[test]
fn a_remote_slot_holds_at_most_three_live_leases_and_any_number_committing() {
    let mut st = state();
    st.book.max_lease_batch = 1;
    fast_simple_jobs(&mut st, 8);
    let remote = remote_slot(&mut st, &["k"]);
    let mut epochs = Vec::new();
    for _ in 0..3 {
        let task = st.lease(remote, 0);
        let why = "one finished (its commit on its way), one to run, one ahead";
        epochs.push(task.expect(why).epoch);
    }
    assert!(
        st.lease(remote, 0).is_none(),
        "a fourth live lease would hoard the queue"
    );
    assert_eq!(
        leased_jobs(&mut st, 0),
        vec![4],
        "a local slot is not bounded so"
    );
    let claim = LeaseWork::Simple(vec![1]);
    assert!(st.begin_commit(epochs[0], &claim).is_some());
    let fourth = st.lease(remote, 0).expect("the first is committing");
    assert!(st.lease(remote, 0).is_none(), "three live again");
    assert!(st
        .begin_commit(fourth.epoch, &LeaseWork::Simple(vec![5]))
        .is_some());
    assert!(st
        .begin_commit(epochs[1], &LeaseWork::Simple(vec![2]))
        .is_some());
    assert!(
        st.lease(remote, 0).is_some() && st.lease(remote, 0).is_some(),
        "the earlier ones are tracked too"
    );
    assert!(st.lease(remote, 0).is_none(), "three live: 3, 6 and 7");
}

pub(crate) fn sliced_job_with_slices(st: &mut State, slices: u64, max_workers: Option<u32>) {
    register(st, "copy", HandlerShape::Sliced);
    let mut spec = JobSpec::sliced("copy");
    spec.max_workers = max_workers;
    st.apply(&created(1, vec![spec])).unwrap();
    for s in 0..slices {
        st.apply(&uploaded(1, s, 10)).unwrap();
    }
    st.apply(&Meta::BeforeDone { job: 1, at_ms: 1 }).unwrap();
}

#[test]
fn max_workers_caps_concurrent_slice_leases() {
    let mut st = state();
    sliced_job_with_slices(&mut st, 5, Some(2));
    let a = st.lease(0, 0).unwrap();
    let _b = st.lease(1, 0).unwrap();
    assert!(st.lease(2, 0).is_none(), "a third slice must wait");
    st.release(a.epoch);
    assert!(
        st.lease(2, 0).is_some(),
        "a released slot is usable at once"
    );
}

#[test]
fn kind_limit_holds_back_queued_jobs_but_not_running_ones() {
    let mut st = state();
    sliced_job_with_slices(&mut st, 3, None);
    st.book.kinds.get_mut("copy").unwrap().max_running = Some(1);
    st.apply(&created(2, vec![JobSpec::sliced("copy").with_priority(1)]))
        .unwrap();
    // Job 2 has priority 1 but is queued; the kind's one running slot is job 1's.
    let t = st.lease(0, 0).unwrap();
    assert!(matches!(
        st.book.leases[&t.epoch].work,
        LeaseWork::Slice { job: 1, .. }
    ));
}

/// What the timer does with expired leases: their records are durable
/// (applied), then the leases are released.
fn settle_expired(st: &mut State, due: crate::dispatch::TickOutcome) {
    for e in due.expired {
        for m in &e.records {
            let _ = st.apply(m);
        }
        st.release(e.epoch);
    }
}

#[test]
fn a_slice_expiry_is_counted_by_its_record_so_replay_counts_it_too() {
    let mut st = state();
    sliced_job_with_slices(&mut st, 1, None);
    st.lease(0, 0).unwrap();
    let due = st.tick(2000);
    let records: Vec<Meta> = due.expired.iter().flat_map(|e| e.records.clone()).collect();
    assert!(matches!(
        records.as_slice(),
        [Meta::LeaseExpired {
            work: crate::meta::Expired::Slice { job: 1, slice: 0 },
            ..
        }]
    ));
    let expiries = |st: &State| st.table[&1].sliced().unwrap().slices.detail(0).expiries;
    assert_eq!(expiries(&st), 0, "counted when durable, not before");
    settle_expired(&mut st, due);
    assert_eq!(expiries(&st), 1);
}

#[test]
fn expired_lease_requeues_its_slice_and_fences_the_late_commit() {
    let mut st = state();
    sliced_job_with_slices(&mut st, 1, None);
    let t = st.lease(0, 0).unwrap();
    assert!(st.lease(1, 0).is_none());
    let due = st.tick(2000);
    assert_eq!(due.replace_workers, vec![0]);
    assert_eq!(st.book.metrics.lease_expiries, 1);
    assert!(
        st.lease(1, 2000).is_none(),
        "held until its expiry is durable"
    );
    settle_expired(&mut st, due);
    let again = st.lease(1, 2000).expect("the slice is leasable again");
    assert!(
        st.begin_commit(t.epoch, &t.claim()).is_none(),
        "late commit fenced"
    );
    assert_eq!(st.book.metrics.commits_fenced, 1);
    assert!(st.begin_commit(again.epoch, &again.claim()).is_some());
}

#[test]
fn heartbeats_extend_the_deadline() {
    let mut st = state();
    sliced_job_with_slices(&mut st, 1, None);
    let t = st.lease(0, 0).unwrap();
    t.progress_ms
        .store(1500, std::sync::atomic::Ordering::Relaxed);
    assert!(st.tick(2000).replace_workers.is_empty());
    assert_eq!(st.book.leases[&t.epoch].deadline_ms, 2500);
}

#[test]
fn aborting_a_job_revokes_its_leases() {
    let mut st = state();
    sliced_job_with_slices(&mut st, 2, None);
    let t = st.lease(0, 0).unwrap();
    st.apply(&control(1, Control::Abort)).unwrap();
    assert!(st.begin_commit(t.epoch, &t.claim()).is_none());
    assert!(st.lease(0, 0).is_none());
}

#[test]
fn an_expired_or_revoked_lease_marks_its_progress_cell_ended() {
    use crate::handler::LEASE_ENDED;
    use std::sync::atomic::Ordering::Relaxed;
    let mut st = state();
    sliced_job_with_slices(&mut st, 2, None);
    let expiring = st.lease(0, 0).unwrap();
    let due = st.tick(2000);
    assert_eq!(expiring.progress_ms.load(Relaxed), LEASE_ENDED);
    settle_expired(&mut st, due);
    let revoked = st.lease(1, 2000).unwrap();
    assert_ne!(revoked.progress_ms.load(Relaxed), LEASE_ENDED);
    st.apply(&control(1, Control::Abort)).unwrap();
    assert_eq!(revoked.progress_ms.load(Relaxed), LEASE_ENDED);
}

#[test]
fn failed_simple_job_with_retry_policy_is_scheduled_again() {
    let mut st = state();
    st.apply(&created(
        1,
        vec![JobSpec::simple("k", serde_json::Value::Null)],
    ))
    .unwrap();
    let m = Meta::SimpleDone {
        at_ms: 1,
        at_us: None,
        outcomes: vec![SimpleOutcome {
            job: 1,
            started_us: 1000,
            result: Err("boom".into()),
            retry_at_ms: Some(u64::MAX / 2),
        }],
    };
    st.apply(&m).unwrap();
    let j = &st.table[&1];
    assert_eq!((j.state, j.attempts), (JobState::Scheduled, 1));
    assert_eq!(j.failure_reason.as_deref(), Some("boom"));
}

#[test]
fn job_not_started_by_expires_at_is_reported_by_the_timer() {
    let mut st = state();
    let mut spec = JobSpec::simple("k", serde_json::Value::Null);
    spec.expires_at = Some(crate::clock::from_ms(500));
    st.apply(&created(1, vec![spec])).unwrap();
    assert!(st.tick(400).expire.is_empty());
    assert_eq!(st.tick(600).expire, vec![1]);
    st.apply(&control(1, Control::Expire)).unwrap();
    let j = &st.table[&1];
    assert_eq!(j.state, JobState::Aborted);
    assert!(j.failure_reason.as_deref().unwrap().starts_with("expired"));
}

/// A job's expiry timer is kept only while the job can still expire
/// (queued or scheduled, never started): one that runs, finishes, is
/// paused or destroyed leaves `Book::expiring`, and one queued again
/// unstarted (resumed) is filed again. Before, the timer kept every
/// entry until its time passed (G10: a job that finished a month before
/// its `expires_at` held RAM for that month), and a reopen, which files
/// only the unfinished rows, rebuilt another set than the live one (the
/// book model test's finding).
#[test]
fn a_job_keeps_its_expiry_timer_only_while_it_can_still_expire() {
    let mut st = state();
    register(&mut st, "k", HandlerShape::Simple);
    let spec = |n: u64| {
        let mut spec = JobSpec::simple("k", serde_json::json!(n));
        spec.expires_at = Some(crate::clock::from_ms(1_000_000 + n));
        spec
    };
    st.apply(&created(1, (1..=4).map(spec).collect())).unwrap();
    let timers = |st: &State| -> Vec<u64> { st.book.expiring.iter().map(|e| e.1).collect() };
    assert_eq!(timers(&st), [1, 2, 3, 4]);
    // Job 1 runs and completes.
    let task = st.lease(0, 10).unwrap();
    let claim = LeaseWork::Simple(vec![1]);
    assert!(st.begin_commit(task.epoch, &claim).is_some());
    st.apply(&Meta::SimpleDone {
        at_ms: 11,
        at_us: None,
        outcomes: vec![SimpleOutcome {
            job: 1,
            started_us: 10_000,
            result: Ok(None),
            retry_at_ms: None,
        }],
    })
    .unwrap();
    st.release(task.epoch);
    st.apply(&control(2, Control::Pause)).unwrap();
    st.apply(&control(3, Control::Destroy)).unwrap();
    assert_eq!(timers(&st), [4], "only job 4 can still expire");
    st.apply(&control(2, Control::Resume)).unwrap();
    assert_eq!(timers(&st), [2, 4]);
}

#[test]
fn a_restored_job_whose_counters_disagree_with_its_slices_is_corruption() {
    let mut st = state();
    st.apply(&created(1, vec![JobSpec::sliced("s")])).unwrap();
    st.apply(&uploaded(1, 0, 10)).unwrap();
    st.apply(&Meta::SliceFailed {
        job: 1,
        slice: 0,
        at_ms: 2,
        message: "bad".into(),
        sample: None,
        retry_at_ms: None,
    })
    .unwrap();
    // A snapshot that lost the failed slice's counts.
    let mut job = st.table[&1].clone();
    let s = job.sliced_mut().unwrap();
    s.slices_failed = 0;
    s.records_in_failed_slices = 0;
    st.apply(&Meta::Restore { job: Box::new(job) }).unwrap();
    let err = st.apply(&slice_done(1, 0)).unwrap_err();
    assert!(matches!(err, RuntimeError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("below 0"), "{err}");
}

/// A sliced job with one uploaded slice that failed at 3 ms, its upload
/// still open.
fn sliced_job_with_a_failed_slice() -> State {
    let mut st = state();
    for m in [
        created(1, vec![JobSpec::sliced("copy")]),
        uploaded(1, 0, 10),
        Meta::BeforeDone { job: 1, at_ms: 2 },
        Meta::SliceFailed {
            job: 1,
            slice: 0,
            at_ms: 3,
            message: "bad".into(),
            sample: None,
            retry_at_ms: None,
        },
    ] {
        st.apply(&m).unwrap();
    }
    st
}

#[test]
fn upload_complete_fails_the_job_at_the_records_time() {
    let mut st = sliced_job_with_a_failed_slice();
    let done = Meta::UploadComplete {
        job: 1,
        at_ms: Some(7),
    };
    st.apply(&done).unwrap();
    let j = &st.table[&1];
    assert_eq!((j.state, j.completed_us), (JobState::Failed, Some(7000)));
}

#[test]
fn upload_failed_finishes_the_job_at_the_records_time() {
    let mut st = sliced_job_with_a_failed_slice();
    let failed = Meta::UploadFailed {
        job: 1,
        reason: "upload interrupted".into(),
        at_ms: Some(8),
    };
    st.apply(&failed).unwrap();
    let j = &st.table[&1];
    assert_eq!((j.state, j.completed_us), (JobState::Failed, Some(8000)));
}

/// An `UploadFailed` written while the job's `UploadComplete` was lost with
/// a segment, replayed after the segment was restored: the restored log
/// says the upload finished, and the job goes on as it did.
#[test]
fn upload_failed_after_upload_complete_is_stale_and_changes_nothing() {
    let mut st = state();
    register(&mut st, "copy", HandlerShape::Sliced);
    for m in [
        created(1, vec![JobSpec::sliced("copy")]),
        uploaded(1, 0, 10),
        Meta::UploadComplete {
            job: 1,
            at_ms: Some(3),
        },
    ] {
        st.apply(&m).unwrap();
    }
    let before = st.table[&1].state;
    st.apply(&Meta::UploadFailed {
        job: 1,
        reason: "upload records lost".into(),
        at_ms: Some(9),
    })
    .unwrap();
    let j = &st.table[&1];
    assert_eq!(j.state, before);
    assert!(j.failure_reason.is_none(), "{:?}", j.failure_reason);
}

#[test]
fn old_record_without_a_time_happens_at_the_latest_logged_time() {
    let mut st = sliced_job_with_a_failed_slice();
    // As written before records carried their time.
    let old = meta::decode(br#"J{"t":"upload_failed","job":1,"reason":"upload interrupted"}"#);
    st.apply(&old.unwrap()).unwrap();
    assert_eq!(st.table[&1].completed_us, Some(3000));
}

#[test]
fn job_due_after_its_created_record_is_scheduled_whenever_it_replays() {
    let mut st = state();
    let mut spec = JobSpec::simple("noop", serde_json::Value::Null);
    spec.run_at = Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(50));
    st.apply(&created(1, vec![spec])).unwrap();
    assert_eq!(
        st.table[&1].state,
        JobState::Scheduled,
        "run_at 50 ms > created at 1 ms"
    );
    st.release_scheduled(50);
    assert_eq!(st.table[&1].state, JobState::Queued);
}

/// A second job created with a key already held (a retry took it between
/// the submit's check and its record) is created failed, on replay too.
#[test]
fn a_job_created_while_its_singleton_key_is_held_is_created_failed_on_replay_too() {
    let spec = || JobSpec::simple("k", serde_json::Value::Null).with_singleton("once");
    let log = [created(1, vec![spec()]), created(2, vec![spec()])];
    for live in [true, false] {
        let mut st = state();
        st.book.live = live;
        for m in &log {
            st.apply(m).unwrap();
        }
        assert_eq!(st.table[&1].state, JobState::Queued);
        assert_eq!(st.table[&2].state, JobState::Failed);
        let why = st.table[&2].failure_reason.clone().unwrap();
        assert!(why.contains("held by job 1"), "{why}");
        assert_eq!(st.book.singleton_holder("once"), Some(1));
        assert_eq!(st.book.singleton_lost_race.len(), usize::from(live));
    }
}

#[test]
fn a_regular_upload_is_one_range_and_one_run_with_no_slice_detail() {
    let mut st = state();
    st.apply(&created(1, vec![JobSpec::sliced("copy")]))
        .unwrap();
    // Uploaded out of order, as the upload pool's commits can land.
    for slice in (0..10_000u64).rev() {
        st.apply(&uploaded(1, slice, 10)).unwrap();
    }
    for slice in (0..5_000u64).step_by(2).chain((1..5_000).step_by(2)) {
        st.apply(&slice_done(1, slice)).unwrap();
    }
    let s = st.table[&1].sliced().unwrap();
    assert_eq!(s.slices.uploaded.ranges(), &[(0, 10_000)]);
    assert_eq!(s.slices.done.ranges(), &[(0, 5_000)]);
    assert_eq!(queued(&st, 1).ranges(), &[(5_000, 10_000)]);
    assert_eq!(s.slices.layout.runs().len(), 1);
    assert!(s.slices.detail.is_empty());
    let place = s.slices.place(9_999).unwrap();
    assert_eq!((place.first_record, place.records), (99_991, 10));
    assert_eq!(s.records_out, 50_000);
}

#[test]
fn a_retry_waits_its_doubled_backoff_plus_at_most_its_jitter_share() {
    let p = crate::RetryPolicy {
        max_retries: 3,
        backoff_base_ms: 1000,
        jitter_percent: 20,
    };
    assert_eq!(p.retry_at_ms(0, 5000, 0.0), Some(6000));
    assert_eq!(p.retry_at_ms(1, 5000, 0.5), Some(5000 + 2000 + 200));
    assert_eq!(p.retry_at_ms(2, 5000, 1.0), Some(5000 + 4000 + 800));
    assert_eq!(p.retry_at_ms(3, 5000, 0.5), None, "retries spent");
    let none = crate::RetryPolicy {
        jitter_percent: 0,
        ..p
    };
    assert_eq!(none.retry_at_ms(1, 5000, 0.9), Some(7000));
    // The draws spread the waits: uniform in [0, 1), not one value.
    let draws: Vec<f64> = (0..1000).map(|_| crate::random_draw()).collect();
    assert!(draws.iter().all(|d| (0.0..1.0).contains(d)), "{draws:?}");
    assert!(draws.iter().filter(|d| **d < 0.5).count() > 300);
    assert!(draws.iter().filter(|d| **d >= 0.5).count() > 300);
}

/// A remote worker gets its lease in one message: a batch of simple jobs
/// whose arguments would pass `max_remote_batch_bytes` is cut to fit (at
/// least one job), instead of a reply the message limit refuses, which
/// would leave the lease to expire.
#[test]
fn a_remote_slot_s_simple_batch_is_cut_to_fit_its_byte_budget() {
    let mut st = state();
    st.book.max_remote_batch_bytes = 64 << 10;
    register(&mut st, "k", HandlerShape::Simple);
    st.observe_simple("k", 1, 1.0);
    let big = serde_json::json!({ "pad": "x".repeat(20 << 10) });
    st.apply(&created(1, vec![JobSpec::simple("k", big); 10]))
        .unwrap();
    let remote = remote_slot(&mut st, &["k"]);
    assert_eq!(
        leased_jobs(&mut st, remote),
        vec![1, 2, 3],
        "3 x 20 KiB fit"
    );
    assert_eq!(leased_jobs(&mut st, 0).len(), 7, "a local batch is not cut");
}

/// A job created at `at_ms` (the record's clock).
fn created_at(st: &mut State, at_ms: u64) -> crate::JobId {
    let id = st.book.next_id;
    st.apply(&Meta::Created {
        first_id: id,
        at_ms,
        specs: vec![JobSpec::simple("noop", serde_json::Value::Null)],
    })
    .unwrap();
    id
}

/// A damaged range of segment 5 at `offset..end`.
fn damage(
    offset: u64,
    end: u64,
    meta_lost: bool,
    slices: Vec<booster_store::SliceKey>,
) -> booster_store::Damage {
    booster_store::Damage {
        segment_id: 5,
        path: "seg-5".into(),
        offset,
        end,
        what: "bad bytes".into(),
        slices,
        meta_lost,
        // A lost-meta range here names no frame (a cut inside a header).
        identified: !meta_lost,
    }
}

/// `damaged` logged as an open that runs work logs it, at `at_ms`, and
/// read back from the log's bytes.
fn log_found(st: &mut State, damaged: &booster_store::Damage, at_ms: u64) {
    let report = booster_store::RecoveryReport {
        damaged: vec![damaged.clone()],
        ..Default::default()
    };
    let at = crate::clock::from_us(at_ms * 1000);
    let incidents = crate::recovered::new_incidents(&report, st, true, at);
    assert_eq!(incidents.len(), 1);
    let m = Meta::Recovered { at_ms, incidents };
    let read = meta::decode(&meta::encode(&m)).unwrap();
    assert_eq!(format!("{read:?}"), format!("{m:?}"));
    st.apply(&read).unwrap();
}

fn named(st: &State, id: crate::JobId) -> bool {
    let job = st.job_row(id).unwrap();
    !st.damage_of(&job).is_empty()
}

/// Rot a read found earlier in the same segment (no meta records lost)
/// is not when the lost-meta range was found: a job created between the
/// two finds was unfinished when the records were lost, and is named.
#[test]
fn a_job_created_between_a_read_s_find_and_the_meta_loss_is_named() {
    let mut st = state();
    let early = created_at(&mut st, 1_000);
    let key = booster_store::SliceKey {
        owner: early,
        stream: meta::STREAM_INPUT,
        seq: 0,
    };
    let read = damage(100, 100, false, vec![key]);
    log_found(&mut st, &read, 2_000);
    let between = created_at(&mut st, 3_000);
    let tail = damage(50, 500, true, Vec::new());
    log_found(&mut st, &tail, 4_000);
    st.book.damage = vec![read, tail];
    assert!(named(&st, early));
    assert!(named(&st, between));
}

/// "Created by the time of the find" is by id, not by the wall clock: a
/// clock stepped back after a reboot stamps the find before the jobs the
/// crashed process created, and they are named; a job created after the
/// find names nothing, whatever its clock says.
#[test]
fn the_jobs_a_meta_loss_names_are_told_by_id_not_by_a_clock_that_stepped_back() {
    let mut st = state();
    let before = created_at(&mut st, 10_000);
    let tail = damage(50, 500, true, Vec::new());
    log_found(&mut st, &tail, 5_000);
    let after = created_at(&mut st, 4_000);
    st.book.damage = vec![tail];
    assert!(named(&st, before));
    assert!(!named(&st, after));
}

/// A row page that cannot be read lost its 64 rows (shown as lost), not
/// records of every unfinished job: an unrelated job names nothing.
#[test]
fn an_unreadable_row_page_names_no_unrelated_unfinished_job() {
    let mut st = state();
    let job = created_at(&mut st, 1_000);
    let e = crate::RuntimeError::Store(booster_store::StoreError::Corrupt {
        segment_id: 5,
        path: "seg-5".into(),
        offset: 64,
        what: "bad bytes".into(),
    });
    let page = crate::table::image::page_damage(7, &e);
    log_found(&mut st, &page, 2_000);
    st.book.damage = vec![page.clone()];
    assert!(
        !named(&st, job),
        "{:?}",
        st.damage_of(&st.job_row(job).unwrap())
    );
    // Without an incident (before any process logged it) either.
    st.book.incidents.clear();
    assert!(!named(&st, job));
}

/// An incident written before it kept the next id (`next_id: None`)
/// falls back to the created time against the incident's.
#[test]
fn an_incident_from_before_the_next_id_was_kept_falls_back_to_created_times() {
    let mut st = state();
    let early = created_at(&mut st, 1_000);
    let late = created_at(&mut st, 10_000);
    let tail = damage(50, 500, true, Vec::new());
    let report = booster_store::RecoveryReport {
        damaged: vec![tail.clone()],
        ..Default::default()
    };
    let at = crate::clock::from_us(5_000 * 1000);
    let mut incidents = crate::recovered::new_incidents(&report, &st, true, at);
    for i in &mut incidents {
        if let crate::IncidentKind::Damaged { next_id, .. } = &mut i.kind {
            *next_id = None;
        }
    }
    st.apply(&Meta::Recovered {
        at_ms: 5_000,
        incidents,
    })
    .unwrap();
    st.book.damage = vec![tail];
    assert!(named(&st, early));
    assert!(!named(&st, late));
}

/// A simple lease is claimed by a commit naming every job it still holds,
/// in any order: the batch as given, the batch less a revoked job, or the
/// same jobs reordered; never by one that lacks a held job.
#[test]
fn a_simple_lease_is_claimed_by_a_commit_naming_every_job_it_holds() {
    let work = |jobs: &[u64]| LeaseWork::Simple(jobs.to_vec());
    let given: Vec<u64> = (1..=1000).collect();
    let mut revoked = given.clone();
    revoked.remove(500);
    let mut reordered = given.clone();
    reordered.reverse();
    assert!(work(&given).claimed_by(&work(&given)));
    assert!(work(&revoked).claimed_by(&work(&given)));
    assert!(work(&given).claimed_by(&work(&reordered)));
    assert!(work(&[3, 1]).claimed_by(&work(&[1, 2, 3])));
    assert!(!work(&given).claimed_by(&work(&revoked)));
    assert!(!work(&[1, 4]).claimed_by(&work(&[1, 2, 3])));
    assert!(!work(&[4, 1]).claimed_by(&work(&[1, 2, 3])));
}
