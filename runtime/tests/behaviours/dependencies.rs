//! Dependent jobs (issue 14): a job with `after` waits until every job it
//! names has completed; when one fails instead, its policy decides (fail,
//! abort, or run anyway); the wait survives a restart.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;
use serde_json::json;

use crate::common::*;

async fn open(dir: &std::path::Path) -> (Runtime, Arc<Held>) {
    let rt = Runtime::open(opts(dir, 2)).await.unwrap();
    let held = Arc::new(Held::default());
    rt.register_simple("step", held.clone());
    (rt, held)
}

fn step(args: serde_json::Value) -> JobSpec {
    JobSpec::simple("step", args)
}

async fn state(rt: &Runtime, id: JobId) -> JobState {
    rt.job(id).await.unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_until_every_dependency_has_completed() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, held) = open(dir.path()).await;
    held.hold.store(true, Ordering::SeqCst);
    let a = rt.submit(step(json!(1))).await.unwrap();
    let b = rt.submit(step(json!(2))).await.unwrap();
    let c = rt
        .submit(step(json!(3)).with_after(&[a, b], DependencyFailure::Fail))
        .await
        .unwrap();
    let status = rt.job(c).await.unwrap();
    assert_eq!(status.state, JobState::Waiting);
    let reason = status.waiting_reason.unwrap();
    assert!(reason.contains(&format!("job {a}, {b}")), "{reason}");
    held.hold.store(false, Ordering::SeqCst);
    let done = rt.wait(c).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    let (a_done, b_done) = (rt.job(a).await.unwrap(), rt.job(b).await.unwrap());
    assert!(done.started_at >= a_done.completed_at.max(b_done.completed_at));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dependency_fails_aborts_or_lets_run_by_policy_and_chains() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, held) = open(dir.path()).await;
    held.hold.store(true, Ordering::SeqCst);
    let bad = rt.submit(step(json!({"fail": true}))).await.unwrap();
    let fail = rt
        .submit(step(json!(1)).with_after(&[bad], DependencyFailure::Fail))
        .await
        .unwrap();
    let chained = rt
        .submit(step(json!(2)).with_after(&[fail], DependencyFailure::Fail))
        .await
        .unwrap();
    let abort = rt
        .submit(step(json!(3)).with_after(&[bad], DependencyFailure::Abort))
        .await
        .unwrap();
    let run = rt
        .submit(step(json!(4)).with_after(&[bad], DependencyFailure::Run))
        .await
        .unwrap();
    held.hold.store(false, Ordering::SeqCst);
    assert_eq!(rt.wait(bad).await.unwrap().state, JobState::Failed);
    let failed = rt.wait(fail).await.unwrap();
    assert_eq!(failed.state, JobState::Failed);
    let reason = failed.failure_reason.unwrap();
    assert!(reason.contains(&format!("job {bad}")), "{reason}");
    assert_eq!(rt.wait(chained).await.unwrap().state, JobState::Failed);
    assert_eq!(rt.wait(abort).await.unwrap().state, JobState::Aborted);
    assert_eq!(rt.wait(run).await.unwrap().state, JobState::Completed);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_survives_a_restart_and_runs_after_its_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = {
        let mut o = opts(dir.path(), 1);
        o.start_workers = false;
        let rt = Runtime::open(o).await.unwrap();
        let first = rt.submit(step(json!(1))).await.unwrap();
        let second = rt
            .submit(step(json!(2)).with_after(&[first], DependencyFailure::Fail))
            .await
            .unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
        (first, second)
    };
    let (rt, _) = open(dir.path()).await;
    assert_eq!(rt.wait(second).await.unwrap().state, JobState::Completed);
    assert_eq!(state(&rt, first).await, JobState::Completed);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_does_not_exist_is_refused_and_a_waiting_job_can_be_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, held) = open(dir.path()).await;
    let e = rt
        .submit(step(json!(1)).with_after(&[99], DependencyFailure::Fail))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("job 99") && e.contains("does not exist"), "{e}");
    held.hold.store(true, Ordering::SeqCst);
    let a = rt.submit(step(json!(1))).await.unwrap();
    let b = rt
        .submit(step(json!(2)).with_after(&[a], DependencyFailure::Fail))
        .await
        .unwrap();
    assert!(rt.pause(b).await.is_err(), "a waiting job cannot be paused");
    rt.abort(b).await.unwrap();
    held.hold.store(false, Ordering::SeqCst);
    rt.wait(a).await.unwrap();
    assert_eq!(state(&rt, b).await, JobState::Aborted);
    // A destroyed job is named for what became of it.
    rt.destroy(b).await.unwrap();
    let e = rt
        .submit(step(json!(3)).with_after(&[b], DependencyFailure::Fail))
        .await
        .unwrap_err()
        .to_string();
    let says = format!("job {b}, named in after, not found: it was aborted, then destroyed at");
    assert!(e.contains(&says), "{e}");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// A simple handler that returns what it reads of each dependency's
/// output through `JobContext::after_output`, and what reading a job it
/// did not run after says.
struct ReadsAfter;

impl SimpleHandler for ReadsAfter {
    fn perform(
        &self,
        job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        let mut read = Vec::new();
        for dep in job.after() {
            let records: Vec<String> = job
                .after_output(dep, Category::Main)
                .map_err(|e| HandlerError(e.to_string()))?
                .map(|r| String::from_utf8(r.unwrap()).unwrap())
                .collect();
            read.push(json!([dep, records]));
        }
        let stranger = args["stranger"].as_u64().unwrap();
        let refused = job
            .after_output(stranger, Category::Main)
            .err()
            .map(|e| e.to_string());
        Ok(Some(json!({ "read": read, "stranger": refused })))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_handler_reads_its_dependencies_output_and_no_other_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("echo", echo());
    rt.register_simple("reads-after", Arc::new(ReadsAfter));
    let mut deps = Vec::new();
    for n in [3, 5] {
        let id = rt.submit(sliced("echo", 2)).await.unwrap();
        upload_all(&rt, id, &records(n)).await;
        deps.push(id);
    }
    let other = rt.submit(sliced("echo", 2)).await.unwrap();
    upload_all(&rt, other, &records(1)).await;
    let reader = rt
        .submit(
            JobSpec::simple("reads-after", json!({ "stranger": other }))
                .with_after(&deps, DependencyFailure::Fail),
        )
        .await
        .unwrap();
    let done = rt.wait(reader).await.unwrap();
    assert_eq!(done.state, JobState::Completed, "{:?}", done.failure_reason);
    let result = done.result.unwrap();
    for (i, dep) in deps.iter().enumerate() {
        assert_eq!(result["read"][i][0], *dep);
        let expected: Vec<String> = download(&rt, *dep, Category::Main)
            .into_iter()
            .map(|r| String::from_utf8(r).unwrap())
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(result["read"][i][1], json!(expected));
    }
    let refused = result["stranger"].as_str().unwrap();
    assert!(refused.contains("did not run after"), "{refused}");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// A simple handler that counts its runs and returns the jobs it ran after.
#[derive(Default)]
struct OnComplete {
    runs: std::sync::atomic::AtomicU32,
}

impl SimpleHandler for OnComplete {
    fn perform(
        &self,
        job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(Some(json!(job.after())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_its_on_complete_job_once_after_every_job_finished_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (jobs, then) = {
        let mut o = opts(dir.path(), 1);
        o.start_workers = false;
        let rt = Runtime::open(o).await.unwrap();
        let e = rt
            .submit_batch(Vec::new(), JobSpec::simple("then", json!(null)))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one job"), "{e}");
        let batch = vec![step(json!(1)), step(json!({"fail": true})), step(json!(3))];
        let (jobs, then) = rt
            .submit_batch(batch, JobSpec::simple("then", json!(null)))
            .await
            .unwrap();
        assert_eq!(jobs.len(), 3);
        assert_eq!(then, jobs[2] + 1);
        let waiting = rt.job(then).await.unwrap();
        assert_eq!(waiting.state, JobState::Waiting);
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
        (jobs, then)
    };
    // A restart between the batch and its end: the on-complete job is in
    // the log with the batch, and runs once all have finished, one failed.
    let (rt, held) = open(dir.path()).await;
    let on_complete = Arc::new(OnComplete::default());
    held.hold.store(true, Ordering::SeqCst);
    rt.register_simple("then", on_complete.clone());
    assert_eq!(state(&rt, then).await, JobState::Waiting);
    held.hold.store(false, Ordering::SeqCst);
    let done = rt.wait(then).await.unwrap();
    assert_eq!(done.state, JobState::Completed, "{:?}", done.failure_reason);
    assert_eq!(done.result, Some(json!(jobs)));
    assert_eq!(state(&rt, jobs[1]).await, JobState::Failed);
    for id in &jobs {
        let job = rt.job(*id).await.unwrap();
        assert!(
            done.started_at >= job.completed_at,
            "job {id} had not finished"
        );
    }
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let (rt, _) = open(dir.path()).await;
    rt.register_simple("then", on_complete.clone());
    rt.wait_idle().await;
    assert_eq!(on_complete.runs.load(Ordering::SeqCst), 1);
    assert_eq!(state(&rt, then).await, JobState::Completed);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
