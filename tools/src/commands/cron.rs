//! Simple jobs from the command line (`submit --kind K --args JSON`) and
//! cron entries (`submit ... --cron EXPR [--tz ZONE]`, `booster cron
//! list|pause|resume|remove`), on the local data directory. The remote
//! CLI (`--server`) builds the same specs with `simple_spec` and
//! `cron_spec` and prints the same lines.

use booster_runtime::{CronSpec, JobSpec};
use serde_json::Value;

use super::{with_runtime, Ctx};
use crate::cli::{CronCommand, JobInputArgs, SubmitArgs};
use crate::{exit, kinds, report};

/// The simple job `--args JSON` asks for: refused for a sliced kind, with
/// options only a sliced job has, or with arguments that are not JSON.
pub fn simple_spec(args: &JobInputArgs, json: &str) -> anyhow::Result<JobSpec> {
    if kinds::SLICED_KINDS.contains(&args.kind.as_str()) {
        return Err(exit::usage(format!(
            "{} is a sliced kind: it reads records from --input FILE; --args makes a simple job, of a kind a service registers (or noop)",
            args.kind
        )));
    }
    let sliced_only = [
        ("--format", args.format.is_some()),
        ("--slice-size", args.slice_size.is_some()),
        ("--collect-errors", args.collect_errors),
        ("--cmd", args.cmd.is_some()),
        ("--exec-one-to-one", args.exec_one_to_one),
        ("--max-workers", args.max_workers.is_some()),
        ("--categories", !args.categories.is_empty()),
    ];
    let given: Vec<&str> = sliced_only
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
    if !given.is_empty() {
        return Err(exit::usage(format!(
            "{} {} for sliced jobs (--input FILE); a simple job (--args) takes only its arguments",
            given.join(", "),
            if given.len() == 1 { "is" } else { "are" }
        )));
    }
    let value: Value = serde_json::from_str(json).map_err(|e| {
        exit::usage(format!(
            "--args is not valid JSON ({e}); quote it for the shell, e.g. --args '{{\"day\": \"2026-11-29\"}}'"
        ))
    })?;
    let mut spec = JobSpec::simple(&args.kind, value);
    spec.priority = args.priority;
    spec.description = args
        .description
        .clone()
        .unwrap_or_else(|| format!("{} {}", args.kind, report::truncate(json, 60)));
    spec.singleton = args.singleton_key();
    spec.after = args.after.clone();
    spec.on_dependency_failure = args.on_dependency_failure;
    spec.window = args.processing_window()?;
    spec.destroy_on_complete = args.destroy_on_complete.then_some(true);
    Ok(spec)
}

/// The cron entry `--cron EXPR` asks for, if any: runs of a simple job.
pub fn cron_spec(args: &SubmitArgs) -> anyhow::Result<Option<CronSpec>> {
    let Some(expr) = &args.cron else {
        return Ok(None);
    };
    let Some(json) = &args.job.args else {
        return Err(exit::usage(
            "--cron makes runs of a simple job (--args JSON): a sliced job's input is uploaded once, into one job, so a cron run would have none; schedule a simple job whose handler submits the sliced job",
        ));
    };
    Ok(Some(CronSpec {
        expr: expr.clone(),
        tz: args.tz.clone(),
        job: simple_spec(&args.job, json)?,
    }))
}

enum Submitted {
    Job(Box<booster_runtime::JobStatus>),
    Cron(Option<booster_runtime::CronView>),
}

/// `submit --args JSON [--cron EXPR]` on the local data directory.
pub async fn submit_simple(ctx: &Ctx, args: &SubmitArgs, json: &str) -> anyhow::Result<i32> {
    let spec = simple_spec(&args.job, json)?;
    let cron = cron_spec(args)?;
    let runtime = ctx.open(None, false, false).await?;
    let rt = runtime.clone();
    let submitted = with_runtime(runtime, async move {
        Ok(match cron {
            Some(cron) => {
                let id = rt.add_cron(cron).await?;
                Submitted::Cron(rt.crons().into_iter().find(|c| c.id == id))
            }
            None => Submitted::Job(Box::new(rt.job(rt.submit(spec).await?).await?)),
        })
    })
    .await?;
    match submitted {
        Submitted::Job(status) => {
            print_submitted_job(ctx.json, ctx.quiet, &status, "`booster work`")
        }
        Submitted::Cron(view) => print_added_cron(ctx.json, ctx.quiet, view.as_ref()),
    }
    Ok(exit::OK)
}

/// What `submit --args` prints about the job it made, here or remote.
pub fn print_submitted_job(
    json: bool,
    quiet: bool,
    status: &booster_runtime::JobStatus,
    runner: &str,
) {
    if json {
        report::print_json(&report::job_json(status));
    } else if quiet {
        outln!("{}", status.id);
    } else {
        outln!(
            "job {}: simple job of kind {}, {} at priority {}; {runner} runs it where a handler for {} is registered{}, then `booster job show {}` prints its result",
            status.id,
            status.kind,
            status.state.as_str(),
            status.priority,
            status.kind,
            report::window_note(status),
            status.id
        );
    }
}

/// What `submit --cron` prints about the entry it added, here or remote.
pub fn print_added_cron(json: bool, quiet: bool, view: Option<&booster_runtime::CronView>) {
    let Some(view) = view else {
        return;
    };
    if json {
        report::print_json(&serde_json::json!(view));
    } else if quiet {
        outln!("{}", view.id);
    } else {
        outln!("{}", report::cron_line(view));
    }
}

/// Prints entries as `cron list` does.
pub fn print_crons(json: bool, crons: &[booster_runtime::CronView]) {
    if json {
        report::print_json(&serde_json::json!(crons));
    } else if crons.is_empty() {
        outln!("no cron entries; `booster submit --kind K --args JSON --cron EXPR` adds one");
    } else {
        for c in crons {
            outln!("{}", report::cron_line(c));
        }
    }
}

/// `booster cron list|pause|resume|remove` on the local data directory.
pub async fn cron(ctx: &Ctx, command: CronCommand) -> anyhow::Result<i32> {
    let runtime = ctx.open(None, false, true).await?;
    let rt = runtime.clone();
    let crons = with_runtime(runtime, async move {
        match command {
            CronCommand::List => {}
            CronCommand::Pause { id } => rt.pause_cron(id).await?,
            CronCommand::Resume { id } => rt.resume_cron(id).await?,
            CronCommand::Remove { id } => {
                rt.remove_cron(id).await?;
                if !ctx.json {
                    ctx.say(format!("cron {id} removed"));
                }
            }
        }
        Ok(rt.crons())
    })
    .await?;
    print_crons(ctx.json, &crons);
    Ok(exit::OK)
}
