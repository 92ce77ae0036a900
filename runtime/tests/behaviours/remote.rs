//! Remote commits (`Runtime::remote_*`, issue 13) as the node answers
//! them: `accepted` only when what the worker sent is durable, and a
//! retry told the truth while its first try is still on its way.

use std::future::Future;
use std::time::Duration;

use booster_runtime::*;

use crate::common::*;

/// A node that runs no work itself, with a 64 KiB slice cap, and `echo`
/// registered (a remote slot leases only registered kinds).
async fn node(dir: &std::path::Path) -> Runtime {
    node_on(dir, opts(dir, 0)).await
}

async fn node_on(dir: &std::path::Path, mut o: RuntimeOptions) -> Runtime {
    o.workers = 0;
    o.data_dir = dir.to_path_buf();
    o.max_slice_bytes = 64 << 10;
    let rt = Runtime::open(o).await.unwrap();
    rt.register_sliced("echo", echo());
    rt
}

fn hello() -> RemoteHello {
    RemoteHello {
        host: "w1".into(),
        pid: 42,
        version: "test".into(),
        kinds: vec!["echo".into()],
        threads: 1,
        allows: Vec::new(),
        reads_after: true,
    }
}

/// Leases until a slice comes, committing the hooks on the way; the
/// lease's epoch, the slice's job and number, and its records; None once
/// the node is idle.
async fn next_slice(
    rt: &Runtime,
    session: &RemoteSession,
) -> Option<(u64, JobId, u64, Vec<Vec<u8>>)> {
    // A bound on a hang: 100 long polls find nothing only when the node
    // never says it is idle.
    for _ in 0..100 {
        let task = match rt
            .remote_lease(session, 0, Duration::from_millis(200))
            .await
            .unwrap()
        {
            RemoteLease::Task(task) => task,
            RemoteLease::Nothing => continue,
            RemoteLease::Idle => return None,
        };
        let (job, before) = match task.work {
            RemoteWork::Slice(s) => {
                let records = s.records.unpack(usize::MAX).unwrap().to_vecs();
                return Some((task.epoch, s.job, s.slice, records));
            }
            RemoteWork::Before(h) => (h.job, true),
            RemoteWork::After(h) => (h.job, false),
            RemoteWork::Simple(_) => panic!("no simple job was submitted"),
        };
        let hook = RemoteOutcome::Hook {
            job,
            before,
            result: Ok(()),
        };
        let answer = rt.remote_commit(session, task.epoch, hook).await.unwrap();
        assert_eq!(answer, CommitAnswer::Accepted);
    }
    panic!("the node never said it was idle for this worker");
}

/// Works every slice the node leases `session`, copying it, until the
/// node says it is idle for this worker.
async fn work_until_idle(rt: &Runtime, session: &RemoteSession) {
    while let Some((epoch, job, slice, records)) = next_slice(rt, session).await {
        let answer = rt
            .remote_commit(session, epoch, output(job, slice, records))
            .await
            .unwrap();
        assert_eq!(answer, CommitAnswer::Accepted);
    }
}

/// A sliced `echo` job of `n` records in slices of 7, a job of one
/// record that runs after it (`policy`), and the session of a worker
/// process joined to read it.
async fn a_job_after_another(
    rt: &Runtime,
    n: usize,
    policy: DependencyFailure,
) -> (JobId, JobId, RemoteSession) {
    let first = rt.submit(sliced("echo", 7)).await.unwrap();
    upload_all(rt, first, &records(n)).await;
    let then = sliced("echo", 10).with_after(&[first], policy);
    let then = rt.submit(then).await.unwrap();
    upload_all(rt, then, &records(1)).await;
    (first, then, rt.remote_join(hello()).unwrap().session)
}

/// Works the slices the node leases `session` (their outcome:
/// `outcome(job, slice, records)`) until a slice of `then` is leased: its
/// lease's epoch, its number and its records.
async fn work_until_leased(
    rt: &Runtime,
    session: &RemoteSession,
    then: JobId,
    outcome: impl Fn(JobId, u64, Vec<Vec<u8>>) -> RemoteOutcome,
) -> (u64, u64, Vec<Vec<u8>>) {
    while let Some((epoch, job, slice, records)) = next_slice(rt, session).await {
        if job == then {
            return (epoch, slice, records);
        }
        let answer = rt.remote_commit(session, epoch, outcome(job, slice, records));
        assert_eq!(answer.await.unwrap(), CommitAnswer::Accepted);
    }
    panic!("job {then} was never leased");
}

fn output(job: JobId, slice: u64, main: Vec<Vec<u8>>) -> RemoteOutcome {
    RemoteOutcome::Slice {
        job,
        slice,
        result: Ok(packed(SliceResult {
            main,
            ..Default::default()
        })),
    }
}

/// `result` as a remote worker sends it (protocol 3: packed).
fn packed(result: SliceResult) -> PackedResult {
    PackedResult::pack(&result, 1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_commit_whose_output_the_node_cannot_store_is_not_answered_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let id = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let joined = rt.remote_join(hello()).unwrap();
    let (epoch, job, slice, _) = next_slice(&rt, &joined.session).await.unwrap();
    // 100 KiB of output from a slice of 10 records: over the 64 KiB cap,
    // so the node fails the slice instead of storing it.
    let answer = rt
        .remote_commit(
            &joined.session,
            epoch,
            output(job, slice, vec![vec![b'x'; 100 << 10]]),
        )
        .await
        .unwrap();
    let CommitAnswer::Fenced(why) = answer else {
        panic!("the output was not stored, yet the commit was answered accepted");
    };
    assert!(why.contains("over the 64 KiB cap"), "{why}");
    let s = rt.job(id).await.unwrap();
    assert_eq!((s.slices_failed, s.records_out), (1, 0), "{s:?}");
}

/// A job of one slice of 10 records on a node without threads, leased
/// to a remote process: what a commit of it sends.
struct OneSlice {
    _dir: tempfile::TempDir,
    rt: Runtime,
    id: JobId,
    session: RemoteSession,
    epoch: u64,
    slice: u64,
    records: Vec<Vec<u8>>,
}

impl OneSlice {
    async fn leased() -> OneSlice {
        let dir = tempfile::tempdir().unwrap();
        let rt = node(dir.path()).await;
        let id = rt.submit(sliced("echo", 10)).await.unwrap();
        upload_all(&rt, id, &records(10)).await;
        let session = rt.remote_join(hello()).unwrap().session;
        let (epoch, job, slice, records) = next_slice(&rt, &session).await.unwrap();
        assert_eq!(job, id);
        OneSlice {
            _dir: dir,
            rt,
            id,
            session,
            epoch,
            slice,
            records,
        }
    }

    /// The commit of the slice's records, as the worker sends it.
    async fn commit(&self) -> Result<CommitAnswer, RemoteError> {
        let out = output(self.id, self.slice, self.records.clone());
        self.rt.remote_commit(&self.session, self.epoch, out).await
    }

    /// The job is done, its slice stored once.
    async fn assert_done_once(&self) {
        // The job's after hook, then it is done.
        assert!(
            next_slice(&self.rt, &self.session).await.is_none(),
            "one slice"
        );
        let s = self.rt.job(self.id).await.unwrap();
        assert_eq!((s.state, s.records_out), (JobState::Completed, 10));
        assert_eq!(download(&self.rt, self.id, Category::Main), self.records);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_retried_while_its_first_try_is_in_flight_is_answered_with_the_first_ones_outcome()
{
    let one = OneSlice::leased().await;
    // Polled in this order within one poll of `join!`: the retry reaches
    // the node while the first try waits for its fsync.
    let (first, retry) = tokio::join!(one.commit(), one.commit());
    assert_eq!(first.unwrap(), CommitAnswer::Accepted);
    assert_eq!(
        retry.unwrap(),
        CommitAnswer::Accepted,
        "the retry is told the first try's outcome, not that no such lease exists"
    );
    one.assert_done_once().await;
}

/// Session 18: the call that commits now waits for its answer itself,
/// with no task of its own between; a call cancelled on its way (its
/// connection dropped) must still leave the commit made and its answer
/// for the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_call_is_cancelled_on_its_way_still_answers_its_retry() {
    let one = OneSlice::leased().await;
    // Polled once, then dropped, as a call whose connection drops is.
    let mut first = Box::pin(one.commit());
    // Almost always pending (the commit waits for its fsync); on a loaded
    // machine the blocking thread and the fsync may both beat the first
    // poll, and then the retry below meets an answered commit instead.
    let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(first.as_mut().poll(cx))).await;
    if let std::task::Poll::Ready(answer) = polled {
        assert_eq!(answer.unwrap(), CommitAnswer::Accepted);
    }
    drop(first);
    // The retry comes once the slice is durable, as a worker's backed-off
    // retry does: the answer must have outlived the call.
    for _ in 0..500 {
        if one.rt.job(one.id).await.unwrap().records_out == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        one.commit().await.unwrap(),
        CommitAnswer::Accepted,
        "the retry is told the cancelled call's outcome"
    );
    one.assert_done_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_slot_reused_by_another_process_starts_with_fresh_counters() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::at_ms(1_000_000));
    let mut o = opts(dir.path(), 0);
    o.clock = clock.clone();
    let rt = node_on(dir.path(), o).await;
    let id = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let first = rt.remote_join(hello()).unwrap();
    let (epoch, job, slice, records) = next_slice(&rt, &first.session).await.unwrap();
    let answer = rt
        .remote_commit(&first.session, epoch, output(job, slice, records))
        .await
        .unwrap();
    assert_eq!(answer, CommitAnswer::Accepted);
    let slot_of = |workers: Vec<WorkerStatus>, process: u64| {
        workers
            .into_iter()
            .find(|w| w.remote.as_ref().is_some_and(|r| r.worker == process))
            .unwrap()
    };
    let used = slot_of(rt.workers().await, first.session.worker);
    assert_eq!(used.slices_done, 1);
    // Silent for more than 4 lease timeouts, holding nothing: forgotten
    // when the next process joins, which gets its slot.
    clock.advance_ms(5 * first.lease_timeout_ms);
    let second = rt.remote_join(hello()).unwrap();
    let reused = slot_of(rt.workers().await, second.session.worker);
    assert_eq!(reused.worker, used.worker, "the slot is reused");
    assert_eq!(
        (reused.slices_done, reused.restarts),
        (0, 0),
        "another process's slot starts with fresh counters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_kind_no_connected_worker_runs_says_so_and_leaves_the_worker_idle() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    rt.register_sliced("other", echo());
    let id = rt.submit(sliced("other", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let joined = rt.remote_join(hello()).unwrap();
    assert!(
        next_slice(&rt, &joined.session).await.is_none(),
        "nothing is leasable by it: an --until-idle worker stops"
    );
    let reason = rt.job(id).await.unwrap().waiting_reason.unwrap_or_default();
    assert!(
        reason.starts_with("no worker can run it") && reason.contains("\"other\""),
        "{reason}"
    );
}

/// An older worker (its `Hello` does not say it reads dependencies) would
/// run a job with `after` without its input: it is never leased one, and
/// the job says why it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_after_is_never_leased_to_a_worker_that_cannot_read_its_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let first = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, first, &records(10)).await;
    let then = sliced("echo", 10).with_after(&[first], DependencyFailure::Fail);
    let then = rt.submit(then).await.unwrap();
    upload_all(&rt, then, &records(10)).await;
    let old = RemoteHello {
        reads_after: false,
        ..hello()
    };
    let joined = rt.remote_join(old).unwrap();
    work_until_idle(&rt, &joined.session).await;
    let s = rt.job(first).await.unwrap();
    assert_eq!(s.state, JobState::Completed);
    let s = rt.job(then).await.unwrap();
    assert_eq!(s.state, JobState::Queued);
    let reason = s.waiting_reason.unwrap_or_default();
    assert!(
        reason.starts_with("no worker can run it") && reason.contains("reads the output"),
        "{reason}"
    );
}

/// Issue 13's known fault: a job with `after` was never leased to a
/// remote worker, so a node without threads never ran it. Now its lease
/// names its dependencies, and its handler reads their output through
/// the node a chunk at a time (`remote_output`), exactly what a local
/// handler's `after_output` reads, across parts and chunk ends alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_reads_the_output_of_its_job_s_dependencies_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let other = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, other, &records(3)).await;
    let (first, then, session) = a_job_after_another(&rt, 40, DependencyFailure::Fail).await;
    let session = &session;
    // The dependencies' slices, then the dependent job's.
    let (epoch, slice, records) = work_until_leased(&rt, session, then, output).await;
    let expected = download(&rt, first, Category::Main);
    assert_eq!(expected.len(), 40);
    // 20 bytes a chunk: two or three records, so chunks end inside and
    // at the end of the dependency's slices of 7.
    let read = |budget: usize| {
        let mut got = Vec::new();
        let mut from = OutputCursor::default();
        loop {
            let chunk = rt
                .remote_output(session, epoch, first, "main", from, budget)
                .unwrap();
            assert!(!chunk.records.is_empty() || chunk.next.is_none());
            got.extend(chunk.records);
            match chunk.next {
                Some(next) => from = next,
                None => return got,
            }
        }
    };
    assert_eq!(read(20), expected);
    assert_eq!(read(1 << 20), expected);
    // Only the lease's own job's dependencies, only under its own lease.
    let err = rt.remote_output(session, epoch, other, "main", OutputCursor::default(), 20);
    assert!(
        matches!(err, Err(RemoteError::Malformed(_))),
        "{:?}",
        err.err()
    );
    let err = rt.remote_output(session, epoch + 1000, first, "main", Default::default(), 20);
    assert!(
        matches!(err, Err(RemoteError::NoSuchLease(_))),
        "{:?}",
        err.err()
    );
    let stranger = rt.remote_join(hello()).unwrap();
    let err = rt.remote_output(
        &stranger.session,
        epoch,
        first,
        "main",
        Default::default(),
        20,
    );
    assert!(
        matches!(err, Err(RemoteError::NoSuchLease(_))),
        "{:?}",
        err.err()
    );
    let answer = rt
        .remote_commit(session, epoch, output(then, slice, records))
        .await;
    assert_eq!(answer.unwrap(), CommitAnswer::Accepted);
    work_until_idle(&rt, session).await;
    assert_eq!(rt.job(then).await.unwrap().state, JobState::Completed);
}

/// Review finding 2 (s12-fleet): the `Output` cursor named a part by its
/// position in a part list each call lists again, so a dependency whose
/// parts changed between two chunks (a failed slice retried) gave records
/// twice. The cursor names the part by its key and the parts before it:
/// the read fails, saying the output changed, rather than give a record
/// twice or leave one out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_whose_parts_change_between_two_chunks_fails_the_read_rather_than_repeat_records(
) {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let all = records(21);
    let (first, then, session) = a_job_after_another(&rt, 21, DependencyFailure::Run).await;
    let session = &session;
    // The dependency's middle slice fails, so the job with after runs on
    // the other two slices' output.
    let fail_the_middle = |job, slice, records: Vec<Vec<u8>>| match records.first() == Some(&all[7])
    {
        true => RemoteOutcome::Slice {
            job,
            slice,
            result: Err("no".into()),
        },
        false => output(job, slice, records),
    };
    let (epoch, ..) = work_until_leased(&rt, session, then, fail_the_middle).await;
    // 10 records of 14 bytes: the first slice's 7 and 3 of the third's.
    let chunk = rt
        .remote_output(session, epoch, first, "main", OutputCursor::default(), 140)
        .unwrap();
    let mut expected = all[..7].to_vec();
    expected.extend_from_slice(&all[14..17]);
    assert_eq!(chunk.records, expected);
    let from = chunk.next.expect("more records");
    assert_eq!(from.record, 3);
    // An operator retries the dependency; another worker runs its failed
    // slice, which now has output before the cursor.
    rt.retry(first).await.unwrap();
    let other = rt.remote_join(hello()).unwrap();
    let (e, job, slice, records) = next_slice(&rt, &other.session).await.unwrap();
    assert_eq!((job, records.first()), (first, Some(&all[7])));
    let answer = rt
        .remote_commit(&other.session, e, output(job, slice, records))
        .await;
    assert_eq!(answer.unwrap(), CommitAnswer::Accepted);
    match rt.remote_output(session, epoch, first, "main", from, 1 << 20) {
        Err(RemoteError::Output(e)) => assert!(e.to_string().contains("changed"), "{e}"),
        Ok(chunk) => panic!(
            "the read went on where the parts had moved: {:?}",
            chunk
                .records
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect::<Vec<_>>()
        ),
        Err(e) => panic!("{e}"),
    }
    // Read again from the start, it is whole.
    let chunk = rt
        .remote_output(
            session,
            epoch,
            first,
            "main",
            OutputCursor::default(),
            1 << 20,
        )
        .unwrap();
    assert_eq!((chunk.records, chunk.next), (all, None));
}

/// Review finding 3 (s12-fleet): a cursor naming a record far past its
/// part's end (a hostile worker) skipped records one by one some 4e9
/// times, holding a blocking thread. Refused at once as malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_its_part_s_records_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let (first, then, session) = a_job_after_another(&rt, 14, DependencyFailure::Fail).await;
    let (epoch, ..) = work_until_leased(&rt, &session, then, output).await;
    let chunk = rt
        .remote_output(&session, epoch, first, "main", OutputCursor::default(), 14)
        .unwrap();
    let inside = chunk.next.expect("more records");
    assert_eq!(inside.record, 1);
    for hostile in [
        OutputCursor {
            record: u32::MAX,
            ..inside
        },
        OutputCursor {
            record: 8,
            ..inside
        },
    ] {
        let rt = rt.clone();
        let session = session.clone();
        let read = tokio::task::spawn_blocking(move || {
            rt.remote_output(&session, epoch, first, "main", hostile, 14)
        });
        let err = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a hostile cursor is answered at once")
            .unwrap();
        assert!(
            matches!(err, Err(RemoteError::Malformed(ref why)) if why.contains("record")),
            "{:?}",
            err.err()
        );
    }
}

/// A worker process that runs simple jobs of kind `job`.
fn runs_job() -> RemoteHello {
    RemoteHello {
        kinds: vec!["job".into()],
        ..hello()
    }
}

/// The first task the node leases `session`, whatever its work.
async fn first_task(rt: &Runtime, session: &RemoteSession) -> RemoteTask {
    for _ in 0..100 {
        match rt
            .remote_lease(session, 0, Duration::from_millis(200))
            .await
            .unwrap()
        {
            RemoteLease::Task(task) => return task,
            RemoteLease::Nothing => continue,
            RemoteLease::Idle => break,
        }
    }
    panic!("the node leased nothing");
}

/// Known fault 10: a kind's own lease bound (`LeasePolicy::timeout`) ends
/// a lease at that bound from hand-out, heartbeats or not, so a worker
/// must hand a lease it asked for ahead back within it, not within half
/// the lease timeout: the node sends the bound with the lease (before,
/// the worker could not know it, and the lease ahead of a kind bound
/// below half the lease timeout expired unstarted, counted against its
/// work as a hang). A kind without its own bound sends none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_lease_carries_its_kind_s_own_bound() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let bounded = LeasePolicy {
        max_expiries: 3,
        timeout: Some(Duration::from_millis(700)),
    };
    rt.set_lease_policy("echo", bounded);
    let id = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let joined = rt.remote_join(hello()).unwrap();
    assert!(700 < joined.lease_timeout_ms / 2, "a bound below half");
    let task = first_task(&rt, &joined.session).await;
    assert_eq!(task.timeout_ms, Some(700));
    rt.set_lease_policy("echo", LeasePolicy::default());
    let id = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let task = first_task(&rt, &joined.session).await;
    assert_eq!(task.timeout_ms, None);
}

/// A worker process silent for more than 4 lease timeouts, holding
/// nothing, is forgotten by the node's timer, not only when another
/// process joins: until then the workers listing showed it as connected
/// and a job of a kind only it ran gave no waiting reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_process_is_forgotten_without_another_joining() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::at_ms(1_000_000));
    let mut o = opts(dir.path(), 0);
    o.clock = clock.clone();
    let rt = node_on(dir.path(), o).await;
    let joined = rt.remote_join(hello()).unwrap();
    let remote = |rt: &Runtime| {
        rt.worker_processes()
            .into_iter()
            .filter(|p| p.worker.is_some())
            .count()
    };
    assert_eq!(remote(&rt), 1);
    let id = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let reason = rt.job(id).await.unwrap().waiting_reason;
    assert!(
        !reason
            .as_deref()
            .unwrap_or("")
            .starts_with("no worker can run it"),
        "{reason:?}"
    );
    clock.advance_ms(5 * joined.lease_timeout_ms);
    until("the silent process to be forgotten", || remote(&rt) == 0).await;
    let reason = rt.job(id).await.unwrap().waiting_reason.unwrap_or_default();
    assert!(reason.starts_with("no worker can run it"), "{reason}");
}

/// A decline names only jobs of the lease it hands back: one naming
/// another job is `Malformed` and changes nothing (the lease stays held
/// and commits); a decline of the lease's own job hands it back, counts
/// no expiry, and that process is never leased the job again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_hands_back_only_its_own_leases_jobs_and_keeps_them_from_that_process() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let id = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let joined = rt.remote_join(hello()).unwrap();
    let (epoch, job, _, _) = next_slice(&rt, &joined.session).await.unwrap();
    let foreign = rt.remote_decline(&joined.session, epoch, vec![(job + 1, "no".into())]);
    assert!(
        matches!(foreign, Err(RemoteError::Malformed(_))),
        "{foreign:?}"
    );
    rt.remote_decline(&joined.session, epoch, vec![(job, "not here".into())])
        .unwrap();
    assert_eq!(rt.metrics().lease_expiries, 0);
    assert!(
        next_slice(&rt, &joined.session).await.is_none(),
        "the declined job is not leased to this process again"
    );
    let reason = rt.job(id).await.unwrap().waiting_reason.unwrap_or_default();
    assert!(reason.contains("declined it: not here"), "{reason}");
    let other = rt.remote_join(hello()).unwrap();
    work_until_idle(&rt, &other.session).await;
    assert_eq!(rt.wait(id).await.unwrap().state, JobState::Completed);
}

/// Issue 13's known fault: a simple job whose arguments alone pass the
/// message limit was leased to a remote worker anyway; the node could not
/// encode the lease (`Internal`), the lease expired, and so again until
/// the job failed as hung. Now a node without threads of its own fails it
/// at once, naming its size and the limit, with no retry; the job queued
/// behind it is leased as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_job_too_large_for_a_remote_message_fails_at_once_naming_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    // 64 KiB slices: messages of 1.125 MiB at most.
    let huge = "x".repeat(2 << 20);
    let args = serde_json::json!({ "text": huge });
    // Its arguments and its properties (none: `null`) as JSON.
    let bytes = serde_json::to_vec(&args).unwrap().len() + "null".len();
    let big = JobSpec::simple("job", args).with_priority(1);
    let big = rt.submit(big).await.unwrap();
    let small = rt
        .submit(JobSpec::simple("job", serde_json::json!({ "n": 1 })))
        .await
        .unwrap();
    let joined = rt.remote_join(runs_job()).unwrap();
    let task = first_task(&rt, &joined.session).await;
    let RemoteWork::Simple(jobs) = task.work else {
        panic!("only simple jobs were submitted");
    };
    let leased: Vec<JobId> = jobs.iter().map(|j| j.job).collect();
    assert_eq!(leased, [small], "the large job is never sent");
    let s = rt.wait(big).await.unwrap();
    assert_eq!(s.state, JobState::Failed, "{s:?}");
    let why = s.failure_reason.unwrap_or_default();
    assert!(
        why.contains(&format!("are {bytes} bytes")) && why.contains("1114112 bytes"),
        "{why}"
    );
    assert_eq!(s.attempts, 1, "no retry: it would never fit");
    let results = vec![SimpleResult {
        job: small,
        started_us: 0,
        result: Ok(None),
    }];
    let answer = rt.remote_commit(&joined.session, task.epoch, RemoteOutcome::Simple(results));
    assert_eq!(answer.await.unwrap(), CommitAnswer::Accepted);
    assert_eq!(rt.job(small).await.unwrap().state, JobState::Completed);
}

/// Submits a `job` its held handler keeps running on the node's one
/// thread, and waits until it runs.
async fn occupy_the_node_s_thread(rt: &Runtime) {
    let busy = rt
        .submit(JobSpec::simple("job", serde_json::json!({ "n": 0 })))
        .await
        .unwrap();
    for _ in 0..500 {
        if rt.job(busy).await.unwrap().state == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rt.job(busy).await.unwrap().state, JobState::Running);
}

/// `Held`, with the length of its arguments as JSON for a result (a
/// large job's arguments would pass the result cap).
#[derive(Default)]
struct HeldLength(Held);

impl SimpleHandler for HeldLength {
    fn perform(
        &self,
        job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        self.0.perform(job, &serde_json::Value::Null)?;
        Ok(Some(args.to_string().len().into()))
    }
}

/// The same job on a node with threads of its own: never sent to the
/// remote worker (it is handed back, no expiry counted, and never leased
/// to that process again), and one of the node's threads runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_job_too_large_for_a_remote_message_runs_on_the_node_s_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.max_slice_bytes = 64 << 10;
    let rt = Runtime::open(o).await.unwrap();
    let held = std::sync::Arc::new(HeldLength::default());
    held.0.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    rt.register_simple("job", held.clone());
    // The node's one thread is busy while the remote worker asks.
    occupy_the_node_s_thread(&rt).await;
    let args = serde_json::json!({ "text": "x".repeat(2 << 20) });
    let big = rt
        .submit(JobSpec::simple("job", args.clone()))
        .await
        .unwrap();
    let joined = rt.remote_join(runs_job()).unwrap();
    let answer = rt
        .remote_lease(&joined.session, 0, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        matches!(answer, RemoteLease::Nothing),
        "the large job was leased to the remote worker"
    );
    held.0
        .hold
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let s = rt.wait(big).await.unwrap();
    assert_eq!(s.state, JobState::Completed, "{:?}", s.failure_reason);
    assert_eq!(s.result, Some(args.to_string().len().into()));
    assert_eq!(s.attempts, 1, "no expiry was counted against it");
}

/// Review finding 1 (s12-fleet): a node with threads handed a too-large
/// job back to them even when none had a handler for its kind (a kind
/// only remote workers run): it stayed queued for ever, with no waiting
/// reason. It fails at once, naming its size and why no thread takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_large_job_of_a_kind_only_remote_workers_run_fails_at_once_on_a_node_with_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.max_slice_bytes = 64 << 10;
    let rt = Runtime::open(o).await.unwrap();
    let args = serde_json::json!({ "text": "x".repeat(2 << 20) });
    let big = rt.submit(JobSpec::simple("job", args)).await.unwrap();
    let joined = rt.remote_join(runs_job()).unwrap();
    let answer = rt
        .remote_lease(&joined.session, 0, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        !matches!(answer, RemoteLease::Task(_)),
        "the large job was leased to the remote worker"
    );
    let s = tokio::time::timeout(Duration::from_secs(10), rt.wait(big))
        .await
        .expect("the job stayed queued")
        .unwrap();
    assert_eq!(s.state, JobState::Failed, "{s:?}");
    let why = s.failure_reason.unwrap_or_default();
    assert!(
        why.contains("1114112 bytes") && why.contains("no handler for kind \"job\""),
        "{why}"
    );
    assert_eq!(s.attempts, 1, "no retry: it would never fit");
}

/// Review finding 4 (s12-fleet): a simple lease the node could not send
/// (its message past the limit: the Lease route's `fits`) failed its job
/// for good even where a thread of the node could run it. It goes back
/// to the node's threads, as a job too large to lease does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_lease_the_node_cannot_send_goes_back_to_a_thread_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let held = std::sync::Arc::new(Held::default());
    held.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    rt.register_simple("job", held.clone());
    // The node's one thread is busy while the remote worker asks.
    occupy_the_node_s_thread(&rt).await;
    let job = rt
        .submit(JobSpec::simple("job", serde_json::json!({ "n": 1 })))
        .await
        .unwrap();
    let joined = rt.remote_join(runs_job()).unwrap();
    let task = first_task(&rt, &joined.session).await;
    let RemoteWork::Simple(jobs) = &task.work else {
        panic!("only simple jobs were submitted");
    };
    assert_eq!(jobs.iter().map(|j| j.job).collect::<Vec<_>>(), [job]);
    rt.remote_unsent(&joined.session, task.epoch, "its lease would be too large")
        .unwrap();
    held.hold.store(false, std::sync::atomic::Ordering::SeqCst);
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Completed, "{:?}", s.failure_reason);
}

/// Issue 13's known fault: a lease the node could not send (a record of 4
/// GiB or more, whose length a record blob cannot say) was answered
/// `Internal` and left held until it expired, then leased and failed to
/// encode again until the slice failed as hung. `remote_unsent` fails the
/// work once, naming why, no expiry counted; the lease is gone, so a
/// late commit of it is fenced, and a second call changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_the_node_cannot_send_fails_its_slice_once_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let id = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let joined = rt.remote_join(hello()).unwrap();
    let session = &joined.session;
    let (epoch, job, slice, records) = next_slice(&rt, session).await.unwrap();
    let stranger = rt.remote_join(hello()).unwrap();
    rt.remote_unsent(&stranger.session, epoch, "not its lease")
        .unwrap();
    let why = "record 3 is 4294967296 bytes: a record blob holds records of less than 4 GiB";
    rt.remote_unsent(session, epoch, why).unwrap();
    rt.remote_unsent(session, epoch, "a second time").unwrap();
    let s = rt.wait(id).await.unwrap();
    assert_eq!(
        (s.slices_failed, s.records_in_failed_slices),
        (1, 10),
        "{s:?}"
    );
    let text = format!("{s:?}");
    assert!(
        text.contains("could not send this work to a remote worker") && text.contains(why),
        "{text}"
    );
    assert!(
        !text.contains("not its lease") && !text.contains("a second time"),
        "{text}"
    );
    assert_eq!(rt.metrics().lease_expiries, 0);
    let late = rt
        .remote_commit(session, epoch, output(job, slice, records))
        .await;
    assert!(matches!(late.unwrap(), CommitAnswer::Fenced(_)));
}

/// A simple batch whose every result the node could not store (over its
/// cap) is durable, but none of it as sent: its job failed saying why,
/// and the worker is answered "fenced", saying so, not `accepted` (review
/// finding 1 of s12-fleet's later commits: it was answered durable "failed
/// some of its jobs"). Only a batch some of whose outcomes are stored as
/// sent is accepted (`remote::tests`). (A batch's size is the node's
/// choice, from how quick the kind has been: one job here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_batch_whose_every_result_was_replaced_is_fenced_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let joined = rt.remote_join(runs_job()).unwrap();
    let session = &joined.session;
    let id = rt
        .submit(JobSpec::simple("job", serde_json::json!({ "n": 1 })))
        .await
        .unwrap();
    let task = first_task(&rt, session).await;
    let huge = SimpleResult {
        job: id,
        started_us: 0,
        result: Ok(Some(serde_json::json!("x".repeat(100 << 10)))),
    };
    let answer = rt.remote_commit(session, task.epoch, RemoteOutcome::Simple(vec![huge]));
    match answer.await.unwrap() {
        CommitAnswer::Fenced(why) => {
            assert!(
                why.contains("failed the work instead")
                    && why.contains(&format!("result of job {id}")),
                "{why}"
            )
        }
        other => panic!("a batch none of whose results was stored answered {other:?}"),
    }
    let s = rt.wait(id).await.unwrap();
    assert_eq!(s.state, JobState::Failed);
    assert!(s
        .failure_reason
        .unwrap_or_default()
        .contains("over the 64 KiB cap"));
}

/// Session 18: a lease with work ready is taken on the call's own
/// (executor) thread and its slice read there; a slice that does not read
/// is failed on a blocking thread (failing it appends, and an append may
/// wait for a compaction's whole run), naming why, and the call answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_lease_of_a_slice_that_does_not_read_fails_it_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || crate::degraded::opts(dir.path(), 0);
    let id = {
        let rt = node_on(dir.path(), opts()).await;
        let id = rt.submit(sliced("echo", 10)).await.unwrap();
        upload_all(&rt, id, &records(10)).await;
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
        id
    };
    let input = |e: &booster_store::format::FooterEntry| {
        e.header.kind == booster_store::format::FrameKind::Slice
            && (e.header.key.owner, e.header.key.stream) == (id, 0)
    };
    let segments = booster_store::format::segment_paths(dir.path()).unwrap();
    let rotted = segments.iter().find(|path| {
        let bytes = std::fs::read(path).unwrap();
        booster_store::format::read_sealed_entries(&bytes).is_ok_and(|es| es.iter().any(input))
    });
    crate::degraded::rot_nth(rotted.expect("a sealed input slice"), 0, input);
    let rt = node_on(dir.path(), opts()).await;
    let session = rt.remote_join(hello()).unwrap().session;
    // The job's before hook, then its slice, which is never sent.
    for _ in 0..3 {
        let lease = rt.remote_lease(&session, 0, Duration::from_millis(50));
        let task = match lease.await.unwrap() {
            RemoteLease::Task(task) => task,
            _ => continue,
        };
        let RemoteWork::Before(h) = task.work else {
            panic!("a slice that does not read is never sent");
        };
        let hook = RemoteOutcome::Hook {
            job: h.job,
            before: true,
            result: Ok(()),
        };
        let answer = rt.remote_commit(&session, task.epoch, hook).await.unwrap();
        assert_eq!(answer, CommitAnswer::Accepted);
    }
    let s = rt.job(id).await.unwrap();
    assert_eq!((s.state, s.slices_failed), (JobState::Failed, 1), "{s:?}");
    assert!(
        s.errors
            .iter()
            .any(|e| e.message.contains("cannot read the input slice")),
        "{:?}",
        s.errors
    );
}
