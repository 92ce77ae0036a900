//! `download`: a job's output (and errors) to files, in the job's format
//! (the CSV header first), compressed by the file's extension.

use std::path::{Path, PathBuf};

use booster_runtime::{Category, JobState, JobStatus, Runtime};

use super::{with_runtime, Ctx};
use crate::cli::DownloadArgs;
use crate::exit;
use crate::formats::{check_destination, props, Format, OutputSink};
use crate::report;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DownloadCounts {
    /// Records written to the output, when one was asked for.
    pub main: Option<u64>,
    pub errors: Option<u64>,
    /// Files left as `PATH.partial` because the job's output is incomplete.
    #[serde(skip)]
    pub partial: Vec<PathBuf>,
}

pub async fn download(ctx: &Ctx, args: DownloadArgs) -> anyhow::Result<i32> {
    for path in args.output.iter().chain(&args.errors) {
        check_destination(path)?;
    }
    let runtime = ctx.open(None, false, true).await?;
    let body = async {
        let job = runtime.job(args.job).await?;
        if !job.state.is_finished() {
            eprintln!(
                "warning: job {} is {}; this is the output so far",
                job.id,
                job.state.as_str()
            );
        }
        let counts = download_job(
            &runtime,
            &job,
            args.output.as_deref(),
            args.errors.as_deref(),
            false,
        )
        .await?;
        Ok((job, counts))
    };
    let (job, counts) = with_runtime(runtime.clone(), body).await?;
    if ctx.json {
        let mut value = report::job_json(&job);
        value["output_records"] = serde_json::json!(counts.main);
        value["error_records"] = serde_json::json!(counts.errors);
        report::print_json(&value);
    } else {
        let mut parts = Vec::new();
        if let (Some(n), Some(path)) = (counts.main, &args.output) {
            parts.push(format!(
                "{} records to {}",
                report::count(n),
                path.display()
            ));
        }
        if let (Some(n), Some(path)) = (counts.errors, &args.errors) {
            parts.push(format!("{} errors to {}", report::count(n), path.display()));
        }
        let text = format!("job {}: wrote {}", job.id, parts.join(", "));
        // With the records on stdout, the note goes to stderr.
        if args
            .output
            .as_deref()
            .is_some_and(crate::formats::is_std_stream)
        {
            if !ctx.quiet {
                eprintln!("{text}");
            }
        } else {
            ctx.say(text);
        }
    }
    if let Some(missing) = missing(&job) {
        eprintln!("{missing}");
        return Ok(exit::RECORDS_FAILED);
    }
    Ok(exit::OK)
}

/// What a finished job's output lacks, in words, or None when nothing:
/// failed slices, or an upload that never completed.
pub fn missing(job: &JobStatus) -> Option<String> {
    let id = job.id;
    if !job.upload_complete && job.state.is_finished() {
        return Some(format!(
            "job {id} is {}: its upload never completed, so the output holds only the {} \
             uploaded; submit the input again",
            job.state.as_str(),
            report::plural(job.records_in, "record")
        ));
    }
    if job.slices_failed > 0 {
        return Some(format!(
            "job {id} is {}: {} ({}) failed and are missing from the output; \
             `booster job show {id}` says why, `booster job retry {id}` runs them again",
            job.state.as_str(),
            report::plural(job.slices_failed, "slice"),
            report::plural(job.records_in_failed_slices, "record")
        ));
    }
    matches!(job.state, JobState::Failed | JobState::Aborted).then(|| {
        format!(
            "job {id} is {}: {} of {} in the output",
            job.state.as_str(),
            report::plural(job.slices_done, "slice"),
            report::count(job.slices_total)
        )
    })
}

/// Streams the job's `main` output to `output` and its `errors` to `errors`;
/// with `partial`, files stay `PATH.partial` (listed in the counts).
pub async fn download_job(
    runtime: &Runtime,
    job: &JobStatus,
    output: Option<&Path>,
    errors: Option<&Path>,
    partial: bool,
) -> anyhow::Result<DownloadCounts> {
    let runtime = runtime.clone();
    let job = job.clone();
    let output: Option<PathBuf> = output.map(Path::to_path_buf);
    let errors: Option<PathBuf> = errors.map(Path::to_path_buf);
    tokio::task::spawn_blocking(move || {
        let header = job
            .properties
            .get(props::CSV_HEADER)
            .and_then(|h| h.as_str())
            .filter(|_| job_format(&job) == Format::Csv);
        let mut counts = DownloadCounts::default();
        if let Some(path) = output {
            let (n, left) =
                write_category(&runtime, job.id, Category::Main, &path, header, partial)?;
            counts.main = Some(n);
            counts.partial.extend(left);
        }
        if let Some(path) = errors {
            let (n, left) =
                write_category(&runtime, job.id, Category::Errors, &path, None, partial)?;
            counts.errors = Some(n);
            counts.partial.extend(left);
        }
        Ok(counts)
    })
    .await?
}

fn write_category(
    runtime: &Runtime,
    job: u64,
    category: Category,
    path: &Path,
    header: Option<&str>,
    partial: bool,
) -> anyhow::Result<(u64, Option<PathBuf>)> {
    let mut sink = OutputSink::create(path)?;
    if let Some(header) = header {
        sink.write_line(header.as_bytes())?;
    }
    for record in runtime.download(job, category)? {
        sink.write_record(&record?)?;
    }
    if partial {
        sink.finish_partial()
    } else {
        Ok((sink.finish()?, None))
    }
}

/// The job's format as recorded when it was submitted.
pub fn job_format(job: &JobStatus) -> Format {
    job.properties
        .get(props::FORMAT)
        .and_then(|f| f.as_str())
        .and_then(Format::from_name)
        .unwrap_or(Format::Lines)
}
