//! `run` and `submit`: a file into a sliced job. `run` also processes it
//! and downloads the output; `submit` returns once the upload is durable.

use std::time::Duration;

use anyhow::Context;
use booster_runtime::{JobId, JobShape, JobSpec, JobStatus, Runtime};
use serde_json::json;

use super::plan::{
    exit_code, is_incomplete, per_member, plan_run, print_jobs_json, report_done, run_destinations,
};
use super::{display_name, download_job, with_runtime, Ctx, Interrupt};
use crate::cli::{JobInputArgs, RunArgs, SubmitArgs};
use crate::exit::{self, Interrupted};
use crate::formats::{is_std_stream, open_source_with, props, Format, InputSource, ReadOptions};
use crate::kinds;
use crate::progress::{Mode, Progress, Unit};
use crate::pump::{pump, PumpError};
use crate::report;

pub async fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<i32> {
    let jobs = plan_run(ctx.json, &args)?;
    for job in &jobs {
        precheck(job)?;
    }
    let mut opts = ctx.runtime_options(args.workers, true)?;
    opts.auto_compact = !args.no_auto_compact;
    let runtime = ctx.open_with(opts, false).await?;
    with_runtime(runtime.clone(), run_on(ctx, &runtime, &args, &jobs)).await
}

async fn run_on(
    ctx: &Ctx,
    runtime: &Runtime,
    args: &RunArgs,
    jobs: &[JobInputArgs],
) -> anyhow::Result<i32> {
    let mode = Mode::pick(ctx.json, ctx.quiet, false);
    // The records may go to stdout: then people read the summary on stderr.
    let to_stderr = args.output_dir.is_none() && is_std_stream(&args.output);
    let say = |text: String| {
        if ctx.quiet || ctx.json {
        } else if to_stderr {
            eprintln!("{text}");
        } else {
            outln!("{text}");
        }
    };
    // Every job is uploaded before any is waited for, so the members of a
    // zip run side by side.
    let mut ids = Vec::with_capacity(jobs.len());
    for job in jobs {
        let uploaded = submit_file(runtime, job, &ctx.interrupt, mode).await?;
        say(format!(
            "job {}: uploaded {} records into {}{}",
            uploaded.id,
            report::count(uploaded.records_in),
            report::plural(uploaded.slices_total, "slice"),
            job.tabular
                .member
                .as_deref()
                .filter(|_| jobs.len() > 1)
                .map_or(String::new(), |m| format!(" from {m}"))
        ));
        ids.push(uploaded.id);
    }
    let mut code = exit::OK;
    let mut values = Vec::new();
    let mut taken = std::collections::HashSet::new();
    for id in ids {
        let (done, value) = finish_one(ctx, runtime, args, id, &say, &mut taken).await?;
        if exit_code(&done) != exit::OK {
            code = exit::RECORDS_FAILED;
        }
        values.push(value);
    }
    if ctx.json {
        print_jobs_json(values);
    }
    Ok(code)
}

/// Waits for job `id`, downloads it where `args` say and reports it; the
/// job's JSON (with its download counts) for `--json`.
async fn finish_one(
    ctx: &Ctx,
    runtime: &Runtime,
    args: &RunArgs,
    id: JobId,
    say: &impl Fn(String),
    taken: &mut std::collections::HashSet<std::path::PathBuf>,
) -> anyhow::Result<(JobStatus, serde_json::Value)> {
    let mode = Mode::pick(ctx.json, ctx.quiet, false);
    let done = match wait_with_progress(runtime, id, &ctx.interrupt, mode).await {
        Ok(done) => done,
        Err(e) if e.is::<Interrupted>() => {
            eprintln!(
                "job {id} is kept: `booster work` finishes it, then `booster download {id} --output ...`"
            );
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    // A job that failed has incomplete output: it stays `OUTPUT.partial`
    // unless asked for, so no script mistakes it for the whole.
    let partial = is_incomplete(&done) && !args.keep_partial;
    let to = run_destinations(args, &done, taken)?;
    let counts = download_job(
        runtime,
        &done,
        &to,
        partial,
        args.output_encoding.as_deref(),
    )
    .await?;
    let value = report_done(ctx.json, ctx.quiet, args, &done, &to, &counts, say);
    Ok((done, value))
}

pub async fn submit(ctx: &Ctx, args: SubmitArgs) -> anyhow::Result<i32> {
    if let Some(json) = &args.job.args {
        return super::cron::submit_simple(ctx, &args, json).await;
    }
    super::cron_spec(&args)?; // --cron without --args: refused
    let jobs = per_member(&args.job)?;
    for job in &jobs {
        precheck(job)?;
    }
    let runtime = ctx.open(None, false, false).await?;
    let mode = Mode::pick(ctx.json, ctx.quiet, false);
    let submitted = with_runtime(runtime.clone(), async {
        let mut submitted = Vec::with_capacity(jobs.len());
        for job in &jobs {
            submitted.push(submit_file(&runtime, job, &ctx.interrupt, mode).await?);
        }
        Ok(submitted)
    })
    .await?;
    if ctx.json {
        print_jobs_json(submitted.iter().map(report::job_json).collect());
        return Ok(exit::OK);
    }
    for status in &submitted {
        if ctx.quiet {
            outln!("{}", status.id);
        } else {
            outln!("{}", report::submitted_line(status, "`booster work`"));
        }
    }
    Ok(exit::OK)
}

/// Refuses a missing or unreadable input, a kind this process cannot run,
/// or options that do not fit the kind, before the data directory is opened
/// (or created).
fn precheck(args: &JobInputArgs) -> anyhow::Result<()> {
    if !kinds::SLICED_KINDS.contains(&args.kind.as_str()) {
        return Err(exit::usage(format!(
            "no job kind {:?} here; the kinds are {} (a service that registers its own \
             kinds submits them through the embedding API)",
            args.kind,
            kinds::SLICED_KINDS.join(", ")
        )));
    }
    if is_std_stream(args.input_path()) {
        return Ok(());
    }
    let input = open_source_with(args.input_path(), &read_options(args)?)?;
    job_spec(args, &input).map(|_| ())
}

/// How to read the input: the format (by extension unless given) and the
/// tabular options.
pub fn read_options(args: &JobInputArgs) -> anyhow::Result<ReadOptions> {
    // A zip member's name says its format better than the archive's.
    let named = match &args.tabular.member {
        Some(member) => std::path::Path::new(member),
        None => args.input_path(),
    };
    let format = args.format.unwrap_or_else(|| Format::from_path(named));
    args.tabular.read_options(format, args.max_record_bytes)
}

/// The job's spec and properties for `args` and what the input's header says.
pub fn job_spec(args: &JobInputArgs, input: &InputSource) -> anyhow::Result<JobSpec> {
    let mut properties = json!({
        props::FORMAT: input.format.name(),
        props::INPUT: display_name(args.input_path()),
    });
    input.layout.to_properties(&mut properties);
    if let Some(header) = &input.header {
        properties[props::CSV_HEADER] = json!(header.raw);
        properties[props::CSV_COLUMNS] = json!(header.columns);
    }
    if let Some(encoding) = input.encoding {
        encoding.to_properties(&mut properties);
    }
    if let Some(layout) = &input.fixed_layout {
        properties[crate::formats::FIXED_LAYOUT] = json!(layout);
    }
    if let Some(delimiter) = input.delimiter {
        properties[props::DELIMITER] = json!(char::from(delimiter).to_string());
    }
    if let Some(member) = &args.tabular.member {
        properties[props::MEMBER] = json!(member);
    }
    if let Some(columns) = &args.tabular.output_columns {
        properties[props::OUTPUT_COLUMNS] = json!(columns);
    }
    let spec = options_spec(args, properties)?;
    if args.kind == kinds::VALIDATE_CUSTOMERS {
        check_customer_header(input)?;
    }
    Ok(spec)
}

/// The job the options alone make (no input read): `properties` plus what
/// the options add, the kind's own option rules checked. `job_spec` adds
/// the input's part; a dirmon entry is checked with this when it is added.
pub fn options_spec(
    args: &JobInputArgs,
    mut properties: serde_json::Value,
) -> anyhow::Result<JobSpec> {
    match (args.kind.as_str(), &args.cmd) {
        (kinds::EXEC, None) => return Err(exit::usage("--kind exec needs --cmd 'COMMAND'")),
        (kinds::EXEC, Some(cmd)) => properties[props::CMD] = json!(cmd),
        (_, Some(_)) => return Err(exit::usage("--cmd is only for --kind exec")),
        (_, None) => {}
    }
    if args.exec_one_to_one {
        if args.kind != kinds::EXEC {
            return Err(exit::usage("--exec-one-to-one is only for --kind exec"));
        }
        properties[props::EXEC_ONE_TO_ONE] = json!(true);
    }
    let mut spec = JobSpec::sliced(&args.kind);
    spec.shape = JobShape::Sliced {
        slice_size: args.slice_size.map(|n| n as usize),
        collect_errors: args.collect_errors,
    };
    spec.priority = args.priority;
    spec.max_workers = args.max_workers;
    spec.description = args
        .description
        .clone()
        .unwrap_or_else(|| format!("{} {}", args.kind, display_name(args.input_path())));
    spec.properties = properties;
    spec.categories = args.categories.clone();
    spec.singleton = args.singleton_key();
    spec.after = args.after.clone();
    spec.on_dependency_failure = args.on_dependency_failure;
    spec.window = args.processing_window()?;
    spec.destroy_on_complete = match (args.keep_on_complete, args.destroy_on_complete) {
        (true, _) => Some(false),
        (false, on) => on.then_some(true),
    };
    Ok(spec)
}

fn check_customer_header(input: &InputSource) -> anyhow::Result<()> {
    if input.format != Format::Csv {
        anyhow::bail!(
            "validate-customers reads CSV with a header row; pass --format csv or a .csv file"
        );
    }
    let Some(header) = &input.header else {
        return Ok(());
    };
    for column in kinds::REQUIRED_COLUMNS {
        if !header
            .columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(column))
        {
            anyhow::bail!(
                "the CSV header has no `{column}` column; validate-customers needs {}",
                kinds::REQUIRED_COLUMNS.join(", ")
            );
        }
    }
    Ok(())
}

/// Creates the job and uploads `args.input` into it; returns once every
/// slice is durable. A record the format rejects is stored as a record error
/// with its line; an unreadable input or Ctrl-C fails the job and says so.
pub async fn submit_file(
    runtime: &Runtime,
    args: &JobInputArgs,
    interrupt: &Interrupt,
    mode: Mode,
) -> anyhow::Result<JobStatus> {
    let (id, input) = create_job(runtime, args).await?;
    let progress = Progress::new(mode, None, "upload", Unit::Bytes);
    let status = upload_input(runtime, id, input, interrupt, &progress).await;
    progress.clear();
    status
}

/// Opens the input (reading a CSV header) and creates the job for it.
pub async fn create_job(
    runtime: &Runtime,
    args: &JobInputArgs,
) -> anyhow::Result<(JobId, InputSource)> {
    let path = args.input_path().to_path_buf();
    let options = read_options(args)?;
    let input = tokio::task::spawn_blocking(move || open_source_with(&path, &options)).await??;
    let spec = job_spec(args, &input)?;
    let id = runtime.submit(spec).await.context("submitting the job")?;
    Ok((id, input))
}

/// Streams the input's records into job `id` through the upload pump,
/// then waits until every slice is durable.
pub async fn upload_input(
    runtime: &Runtime,
    id: JobId,
    input: InputSource,
    interrupt: &Interrupt,
    progress: &Progress,
) -> anyhow::Result<JobStatus> {
    let mut uploader = runtime.upload(id).await?;
    let read = input.progress.clone();
    if let Some(total) = read.total_bytes {
        progress.set_length(total);
    }
    let after_batch = || progress.set_position(read.read_bytes());
    match pump(&mut uploader, input.records, interrupt.wait(), after_batch).await {
        Ok(()) => Ok(uploader.finish().await?),
        Err(PumpError::Stopped) => {
            uploader.fail("upload interrupted by Ctrl-C".into()).await?;
            Err(anyhow::Error::new(Interrupted).context(format!(
                "upload of job {id} interrupted; the job is marked failed"
            )))
        }
        // The store's own error (disk full, poisoned), as it is.
        Err(PumpError::Store(e)) => Err(e.into()),
        Err(PumpError::Read(e)) => {
            let reason = format!("reading the input failed: {e}");
            uploader.fail(reason.clone()).await?;
            anyhow::bail!("{reason}; job {id} is marked failed");
        }
        Err(PumpError::ReaderDied(why)) => {
            uploader.fail(why.clone()).await?;
            anyhow::bail!("{why}; job {id} is marked failed (nothing of it will run)");
        }
    }
}

/// Waits for the job to finish, with a bar of its slices.
pub async fn wait_with_progress(
    runtime: &Runtime,
    id: u64,
    interrupt: &Interrupt,
    mode: Mode,
) -> anyhow::Result<JobStatus> {
    let progress = Progress::new(mode, None, "process", Unit::Records);
    let wait = runtime.wait(id);
    tokio::pin!(wait);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            done = &mut wait => {
                progress.clear();
                // A wait the store's refusal ended says what to do, as the
                // tick below does.
                if done.is_err() {
                    super::check_writable(runtime)?;
                }
                return Ok(done?);
            }
            _ = tick.tick() => {
                if let Err(e) = super::check_writable(runtime) {
                    progress.clear();
                    return Err(e);
                }
                if mode != Mode::Off {
                    let job = runtime.job(id).await?;
                    progress.set_length(job.records_in);
                    progress.set_position(job.records_processed + job.records_failed);
                    progress.set_message(crate::progress::job_message(&job));
                }
            }
            _ = interrupt.wait() => {
                progress.clear();
                return Err(anyhow::Error::new(Interrupted));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use booster_runtime::{JobSpec, JobState, Runtime, RuntimeOptions};

    use super::*;
    use crate::formats::{Item, RecordSource};

    /// One batch of records, then a panic (a parser bug).
    struct PanicsAfterOneBatch(bool);

    impl RecordSource for PanicsAfterOneBatch {
        fn next_batch(&mut self, _max: usize, out: &mut Vec<Item>) -> std::io::Result<()> {
            if self.0 {
                panic!("parser bug");
            }
            self.0 = true;
            out.push(Item::record(b"a".to_vec(), 1));
            Ok(())
        }
    }

    #[test]
    fn a_panic_in_the_input_reader_fails_the_upload_instead_of_completing_it() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut opts = RuntimeOptions::new(dir.path().join("data"));
            opts.start_workers = false;
            let runtime = Runtime::open(opts).await.unwrap();
            crate::kinds::register_builtin(&runtime);
            let id = runtime.submit(JobSpec::sliced("copy")).await.unwrap();
            let input = InputSource {
                format: Format::Lines,
                header: None,
                delimiter: None,
                encoding: None,
                fixed_layout: None,
                layout: Default::default(),
                progress: Default::default(),
                records: Box::new(PanicsAfterOneBatch(false)),
            };
            let progress = Progress::new(Mode::Off, None, "upload", Unit::Bytes);
            let err = upload_input(&runtime, id, input, &Interrupt::never(), &progress)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("the input reader panicked: parser bug"),
                "{err}"
            );
            let job = runtime.job(id).await.unwrap();
            assert_eq!(job.state, JobState::Failed, "the upload is not complete");
            assert!(
                job.failure_reason.unwrap_or_default().contains("panicked"),
                "the job says why"
            );
            runtime.shutdown(Duration::from_secs(5)).await.unwrap();
        });
    }
}
