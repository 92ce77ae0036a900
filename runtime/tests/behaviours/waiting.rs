//! A job this process cannot or will not run waits, visibly, without
//! blocking the jobs behind it.

use std::sync::Arc;

use booster_runtime::*;
use serde_json::json;

use crate::common::*;

/// Copies records and returns args, but only for jobs whose `cmd`
/// property is "allowed".
struct Picky;

fn refusal(job: &JobContext<'_>) -> Option<String> {
    (job.properties["cmd"] != "allowed").then(|| {
        format!(
            "command {} is not allowed in this process",
            job.properties["cmd"]
        )
    })
}

impl RecordHandler for Picky {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        out.push(record.to_vec());
        Ok(())
    }
    fn refuses(&self, job: &JobContext<'_>) -> Option<String> {
        refusal(job)
    }
}

impl SimpleHandler for Picky {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        Ok(Some(args.clone()))
    }
    fn refuses(&self, job: &JobContext<'_>) -> Option<String> {
        refusal(job)
    }
}

fn with_cmd(mut spec: JobSpec, cmd: &str, priority: u8) -> JobSpec {
    spec.properties = json!({ "cmd": cmd });
    spec.with_priority(priority)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_its_handler_refuses_waits_with_the_reason_and_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    // Submitted before the handlers exist, at the most urgent priority.
    let refused = rt
        .submit(with_cmd(sliced("picky", 5), "rm -rf /", 1))
        .await
        .unwrap();
    upload_all(&rt, refused, &records(10)).await;
    let refused_simple = rt
        .submit(with_cmd(JobSpec::simple("picky-simple", json!(1)), "id", 1))
        .await
        .unwrap();
    rt.register_sliced("picky", Arc::new(Picky));
    rt.register_simple("picky-simple", Arc::new(Picky));
    let allowed = rt
        .submit(with_cmd(sliced("picky", 5), "allowed", 50))
        .await
        .unwrap();
    upload_all(&rt, allowed, &records(10)).await;
    let allowed_simple = rt
        .submit(with_cmd(
            JobSpec::simple("picky-simple", json!(2)),
            "allowed",
            50,
        ))
        .await
        .unwrap();
    assert_eq!(rt.wait(allowed).await.unwrap().records_out, 10);
    assert_eq!(
        rt.wait(allowed_simple).await.unwrap().result,
        Some(json!(2))
    );
    rt.wait_idle().await;
    for (id, cmd) in [(refused, "\"rm -rf /\""), (refused_simple, "\"id\"")] {
        let s = rt.job(id).await.unwrap();
        assert_eq!(s.state, JobState::Queued, "{s:?}");
        assert_eq!(
            s.waiting_reason.as_deref(),
            Some(format!("command {cmd} is not allowed in this process").as_str())
        );
        assert!(s.started_at.is_none());
    }
    assert_eq!(rt.job(allowed).await.unwrap().waiting_reason, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_kind_with_no_handler_here_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let job = rt
        .submit(JobSpec::simple("nobody", json!(null)))
        .await
        .unwrap();
    let reason = rt
        .job(job)
        .await
        .unwrap()
        .waiting_reason
        .unwrap_or_default();
    assert!(
        reason.contains("no worker registered for kind \"nobody\""),
        "{reason}"
    );
    let waiting = rt.submit(sliced("nobody", 5)).await.unwrap();
    let reason = rt.job(waiting).await.unwrap().waiting_reason;
    assert_eq!(reason.as_deref(), Some("waiting for its upload to finish"));
}
