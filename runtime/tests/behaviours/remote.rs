//! Remote commits (`Runtime::remote_*`, issue 13) as the node answers
//! them: `accepted` only when what the worker sent is durable, and a
//! retry told the truth while its first try is still on its way.

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
    }
}

/// Leases until a slice comes, committing the hooks on the way; the
/// lease's epoch, the slice's job and number, and its records; None once
/// the node is idle.
async fn next_slice(
    rt: &Runtime,
    session: &RemoteSession,
) -> Option<(u64, JobId, u64, Vec<Vec<u8>>)> {
    loop {
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
            RemoteWork::Slice(s) => return Some((task.epoch, s.job, s.slice, s.records)),
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
}

fn output(job: JobId, slice: u64, main: Vec<Vec<u8>>) -> RemoteOutcome {
    RemoteOutcome::Slice {
        job,
        slice,
        result: Ok(SliceResult {
            main,
            ..Default::default()
        }),
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_retried_while_its_first_try_is_in_flight_is_answered_with_the_first_ones_outcome()
{
    let dir = tempfile::tempdir().unwrap();
    let rt = node(dir.path()).await;
    let id = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, id, &records(10)).await;
    let joined = rt.remote_join(hello()).unwrap();
    let (epoch, job, slice, records) = next_slice(&rt, &joined.session).await.unwrap();
    // Polled in this order within one poll of `join!`: the retry reaches
    // the node while the first try waits for its fsync.
    let (first, retry) = tokio::join!(
        rt.remote_commit(&joined.session, epoch, output(job, slice, records.clone())),
        rt.remote_commit(&joined.session, epoch, output(job, slice, records.clone())),
    );
    assert_eq!(first.unwrap(), CommitAnswer::Accepted);
    assert_eq!(
        retry.unwrap(),
        CommitAnswer::Accepted,
        "the retry is told the first try's outcome, not that no such lease exists"
    );
    // The job's after hook, then it is done.
    assert!(
        next_slice(&rt, &joined.session).await.is_none(),
        "one slice"
    );
    let s = rt.job(id).await.unwrap();
    assert_eq!((s.state, s.records_out), (JobState::Completed, 10));
    assert_eq!(download(&rt, id, Category::Main), records);
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
