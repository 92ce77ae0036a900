//! `jobs` and `job show|watch|priority|pause|resume|abort|retry|destroy`.

use booster_runtime::{JobFilter, JobId, Runtime};

use super::{with_runtime, Ctx};
use crate::cli::{JobCommand, JobsArgs};
use crate::exit;
use crate::report;

pub async fn list(ctx: &Ctx, args: JobsArgs) -> anyhow::Result<i32> {
    let runtime = ctx.open(None, false, true).await?;
    let filter = JobFilter {
        state: args.state,
        kind: args.kind,
        text: args.search,
    };
    let jobs = with_runtime(runtime.clone(), async { Ok(runtime.jobs(filter).await) }).await?;
    let jobs = report::newest_first(jobs, args.limit);
    if ctx.json {
        let list: Vec<serde_json::Value> = jobs.iter().map(report::job_json).collect();
        report::print_json(&serde_json::Value::Array(list));
    } else if ctx.quiet {
        for job in &jobs {
            outln!("{}", job.id);
        }
    } else if jobs.is_empty() {
        outln!("no jobs");
    } else {
        outln!("{}", report::table_header());
        for job in &jobs {
            outln!("{}", report::table_row(job));
        }
    }
    Ok(exit::OK)
}

pub async fn job(ctx: &Ctx, command: JobCommand) -> anyhow::Result<i32> {
    let runtime = ctx.open(None, false, true).await?;
    let id = match &command {
        JobCommand::Watch { job } => return super::watch::watch(ctx, runtime, *job).await,
        JobCommand::Show { job, .. }
        | JobCommand::Priority { job, .. }
        | JobCommand::Pause { job }
        | JobCommand::Resume { job }
        | JobCommand::Abort { job }
        | JobCommand::Retry { job }
        | JobCommand::Destroy { job } => *job,
    };
    let result = with_runtime(runtime.clone(), apply(&runtime, id, &command)).await?;
    match (result, &command) {
        (Some(job), JobCommand::Show { verbose, .. }) if !ctx.json => {
            outln!("{}", report::job_details(&job, *verbose).trim_end())
        }
        (Some(job), _) if ctx.json => report::print_json(&report::job_json(&job)),
        (Some(job), _) => ctx.say(format!(
            "job {}: {} at priority {}",
            job.id,
            job.state.as_str(),
            job.priority
        )),
        (None, _) if ctx.json => {
            report::print_json(&serde_json::json!({ "id": id, "destroyed": true }))
        }
        (None, _) => ctx.say(format!(
            "job {id} destroyed; `booster compact` reclaims its space"
        )),
    }
    Ok(exit::OK)
}

/// Applies the change; the job's status after it (None once destroyed).
async fn apply(
    runtime: &Runtime,
    id: JobId,
    command: &JobCommand,
) -> anyhow::Result<Option<booster_runtime::JobStatus>> {
    match command {
        JobCommand::Show { .. } | JobCommand::Watch { .. } => {}
        JobCommand::Priority { priority, .. } => runtime.set_priority(id, *priority).await?,
        JobCommand::Pause { .. } => runtime.pause(id).await?,
        JobCommand::Resume { .. } => runtime.resume(id).await?,
        JobCommand::Abort { .. } => runtime.abort(id).await?,
        JobCommand::Retry { .. } => runtime.retry(id).await?,
        JobCommand::Destroy { .. } => {
            runtime.destroy(id).await?;
            return Ok(None);
        }
    }
    Ok(Some(runtime.job(id).await?))
}
