//! `booster batch`: several input files, one sliced job each, and an
//! on-complete job, made in one commit (`Runtime::submit_batch`): the
//! on-complete job runs once, when every job of the batch has finished.

use std::path::PathBuf;

use booster_runtime::JobSpec;

use super::run::{job_spec, read_options, upload_input};
use super::{with_runtime, Ctx};
use crate::dirmon::{parse_job_options, take_flags};
use crate::formats::open_source_with;
use crate::progress::{Mode, Progress, Unit};
use crate::{exit, report};

/// `batch`'s words: the inputs, the on-complete job, and the job options
/// every input's job is made with (as `submit` reads them).
struct BatchWords {
    inputs: Vec<PathBuf>,
    then_kind: String,
    then_args: serde_json::Value,
    options: Vec<String>,
}

fn split(words: &[String]) -> anyhow::Result<BatchWords> {
    let mut inputs = Vec::new();
    let (mut then_kind, mut then_args) = (None, serde_json::Value::Null);
    let own = ["--input", "--on-complete-kind", "--on-complete-args"];
    let (taken, options) = take_flags(words, &own)?;
    for (flag, value) in taken {
        match flag.as_str() {
            "--input" => inputs.push(PathBuf::from(value)),
            "--on-complete-kind" => then_kind = Some(value),
            _ => {
                then_args = serde_json::from_str(&value).map_err(|e| {
                    exit::usage(format!(
                        "--on-complete-args is not valid JSON ({e}); quote it for the shell"
                    ))
                })?
            }
        }
    }
    let then_kind = then_kind.ok_or_else(|| {
        exit::usage(
            "batch needs --on-complete-kind KIND: the simple job that runs once all have finished",
        )
    })?;
    if inputs.is_empty() {
        return Err(exit::usage("batch needs at least one --input FILE"));
    }
    Ok(BatchWords {
        inputs,
        then_kind,
        then_args,
        options,
    })
}

pub async fn batch(ctx: &Ctx, words: &[String]) -> anyhow::Result<i32> {
    let w = split(words)?;
    if crate::kinds::SLICED_KINDS.contains(&w.then_kind.as_str()) {
        return Err(exit::usage(format!(
            "{} is a sliced kind; the on-complete job is a simple job (a kind a service registers, or noop)",
            w.then_kind
        )));
    }
    let mut prepared = Vec::with_capacity(w.inputs.len());
    for input in &w.inputs {
        let args = parse_job_options("batch", &w.options, input)
            .map_err(|e| exit::usage(format!("{e:#}")))?;
        let source = open_source_with(input, &read_options(&args)?)?;
        let spec = job_spec(&args, &source)?;
        prepared.push((spec, source));
    }
    let mut then = JobSpec::simple(&w.then_kind, w.then_args.clone());
    then.description = format!(
        "on-complete of a batch of {}",
        report::plural(w.inputs.len() as u64, "job")
    );
    let runtime = ctx.open(None, false, false).await?;
    let rt = runtime.clone();
    let mode = Mode::pick(ctx.json, ctx.quiet, false);
    let (ids, then_id) = with_runtime(runtime, async move {
        let specs: Vec<JobSpec> = prepared.iter().map(|(s, _)| s.clone()).collect();
        let (ids, then_id) = rt.submit_batch(specs, then).await?;
        for (id, (_, source)) in ids.iter().zip(prepared) {
            let progress = Progress::new(mode, None, "upload", Unit::Bytes);
            let uploaded = upload_input(&rt, *id, source, &ctx.interrupt, &progress).await;
            progress.clear();
            uploaded?;
        }
        Ok((ids, then_id))
    })
    .await?;
    if ctx.json {
        report::print_json(&serde_json::json!({ "jobs": ids, "on_complete": then_id }));
    } else if ctx.quiet {
        outln!("{then_id}");
    } else {
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        outln!(
            "batch: jobs {}; job {then_id} ({}) runs once all have finished; `booster work` processes them",
            list.join(", "),
            w.then_kind
        );
    }
    Ok(exit::OK)
}
