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
        | JobCommand::MaxWorkers { job, .. }
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
        (Some(job), JobCommand::MaxWorkers { .. }) => ctx.say(format!(
            "job {}: at most {} of its slices run at once",
            job.id,
            job.max_workers
                .map_or("any number".to_string(), |n| n.to_string())
        )),
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
        JobCommand::MaxWorkers { workers, .. } => runtime.set_max_workers(id, workers.0).await?,
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

/// `booster kind ...`: a kind's stored settings (issue 14: throttles that
/// persist). Each change stores the kind's whole settings: what was
/// stored, else what applies now, with the one field changed.
pub async fn kind(ctx: &Ctx, command: crate::cli::KindCommand) -> anyhow::Result<i32> {
    use crate::cli::{KindCommand, Limit};
    use booster_runtime::{KindSettings, LeasePolicy, RetryPolicy};
    let runtime = ctx
        .open(
            None,
            false,
            !matches!(
                command,
                KindCommand::Limit { .. }
                    | KindCommand::Retry { .. }
                    | KindCommand::Lease { .. }
                    | KindCommand::Window { .. }
            ),
        )
        .await?;
    let current = |kind: &str| -> KindSettings {
        let views = runtime.kinds_settings();
        let view = views.into_iter().find(|v| v.kind == kind);
        view.map(|v| v.stored.unwrap_or(v.effective))
            .unwrap_or_default()
    };
    let work = async {
        let changed = match command {
            KindCommand::Show { kind } => {
                let views: Vec<_> = runtime
                    .kinds_settings()
                    .into_iter()
                    .filter(|v| kind.as_ref().is_none_or(|k| &v.kind == k))
                    .collect();
                if ctx.json {
                    report::print_json(&serde_json::json!(views));
                } else if views.is_empty() {
                    outln!(
                        "no kind has stored settings{}",
                        kind.map(|k| format!(" ({k})")).unwrap_or_default()
                    );
                }
                if !ctx.json {
                    for v in &views {
                        outln!("{}", report::kind_line(v));
                    }
                }
                return Ok(None);
            }
            KindCommand::Limit {
                kind,
                limit: Limit(max),
            } => {
                let s = KindSettings {
                    max_running: max,
                    ..current(&kind)
                };
                (kind, Some(s))
            }
            KindCommand::Retry {
                kind,
                max_retries,
                backoff_ms,
                jitter_percent,
            } => {
                let retry = RetryPolicy {
                    max_retries,
                    backoff_base_ms: backoff_ms,
                    jitter_percent,
                };
                (
                    kind.clone(),
                    Some(KindSettings {
                        retry,
                        ..current(&kind)
                    }),
                )
            }
            KindCommand::Lease {
                kind,
                max_expiries,
                timeout_ms,
            } => {
                let lease = LeasePolicy {
                    max_expiries,
                    timeout: timeout_ms.map(std::time::Duration::from_millis),
                };
                (
                    kind.clone(),
                    Some(KindSettings {
                        lease: Some(lease),
                        ..current(&kind)
                    }),
                )
            }
            KindCommand::Window { kind, window, tz } => {
                let window = match window.as_str() {
                    "none" if tz.is_none() => None,
                    "none" => {
                        return Err(crate::exit::usage(
                            "--tz goes with a window; `none` clears the window",
                        ))
                    }
                    span => Some(
                        booster_runtime::ProcessingWindow::parse(span, tz.as_deref())
                            .map_err(|e| crate::exit::usage(e.to_string()))?,
                    ),
                };
                (
                    kind.clone(),
                    Some(KindSettings {
                        window,
                        ..current(&kind)
                    }),
                )
            }
            KindCommand::Reset { kind } => (kind, None),
        };
        let (kind, settings) = changed;
        runtime.store_kind_settings(&kind, settings).await?;
        Ok(Some(kind))
    };
    let kind = with_runtime(runtime.clone(), work).await?;
    if let Some(kind) = kind {
        let view = runtime
            .kinds_settings()
            .into_iter()
            .find(|v| v.kind == kind);
        if ctx.json {
            report::print_json(&serde_json::json!(view));
        } else if let Some(v) = view {
            ctx.say(report::kind_line(&v));
        } else {
            ctx.say(format!(
                "{kind}: no stored settings; the worker process's own apply"
            ));
        }
    }
    Ok(exit::OK)
}
