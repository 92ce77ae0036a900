//! `download`: a job's output (and errors) to files, in the job's format
//! (the CSV header first), compressed by the file's extension.

use std::path::{Path, PathBuf};

use booster_runtime::{Category, JobState, JobStatus, Runtime};

use super::{with_runtime, Ctx};
use crate::cli::DownloadArgs;
use crate::exit;
use crate::formats::encoding::{self, TextEncoder};
use crate::formats::{
    check_destination, props, Format, OutputFraming, OutputProjection, OutputSink, TextLayout,
};
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
            args.output_encoding.as_deref(),
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
    output_encoding: Option<&str>,
) -> anyhow::Result<DownloadCounts> {
    let encoder = output_encoder(job, output_encoding)?;
    let runtime = runtime.clone();
    let job = job.clone();
    let output: Option<PathBuf> = output.map(Path::to_path_buf);
    let errors: Option<PathBuf> = errors.map(Path::to_path_buf);
    tokio::task::spawn_blocking(move || {
        let framing = output_framing(&job);
        let mut counts = DownloadCounts::default();
        if let Some(path) = output {
            let columns = output_columns(&job);
            let mut sink = OutputSink::create_framed(&path, framing)?;
            if let Some(encoder) = encoder {
                sink.encode_as(encoder)?;
            }
            let (n, left) =
                write_category(&runtime, job.id, Category::Main, sink, &columns, partial)?;
            counts.main = Some(n);
            counts.partial.extend(left);
        }
        if let Some(path) = errors {
            let sink = OutputSink::create_framed(&path, OutputFraming::default())?;
            let columns = OutputColumns::default();
            let (n, left) =
                write_category(&runtime, job.id, Category::Errors, sink, &columns, partial)?;
            counts.errors = Some(n);
            counts.partial.extend(left);
        }
        Ok(counts)
    })
    .await?
}

/// `--output-encoding`: `input` writes the job's input encoding (its BOM
/// too), a label that encoding; None (and `utf-8`) plain UTF-8.
fn output_encoder(job: &JobStatus, asked: Option<&str>) -> anyhow::Result<Option<TextEncoder>> {
    let Some(asked) = asked else {
        return Ok(None);
    };
    if asked.eq_ignore_ascii_case("input") {
        return Ok(encoding::InputEncoding::from_properties(&job.properties)
            .map(|e| TextEncoder::new(e.encoding, e.bom)));
    }
    let target =
        encoding::parse_label(asked).map_err(|e| anyhow::anyhow!("--output-encoding: {e}"))?;
    Ok(Some(TextEncoder::new(target, false)))
}

/// A delimited job's header line, and the projection `--output-columns` asked for.
#[derive(Default)]
struct OutputColumns {
    header: Option<String>,
    projection: Option<OutputProjection>,
}

fn output_columns(job: &JobStatus) -> OutputColumns {
    if !job_format(job).is_delimited() {
        return OutputColumns::default();
    }
    let strings = |key: &str| -> Option<Vec<String>> {
        let list = job.properties.get(key)?.as_array()?;
        Some(
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        )
    };
    let delimiter = job
        .properties
        .get(props::DELIMITER)
        .and_then(|d| d.as_str())
        .and_then(|d| d.bytes().next())
        .unwrap_or(b',');
    let projection = strings(props::OUTPUT_COLUMNS).map(|output| {
        OutputProjection::new(
            &strings(props::CSV_COLUMNS).unwrap_or_default(),
            &output,
            delimiter,
        )
    });
    let header = match &projection {
        Some(p) => Some(p.header.clone()),
        None => job
            .properties
            .get(props::CSV_HEADER)
            .and_then(|h| h.as_str())
            .map(str::to_string),
    };
    OutputColumns { header, projection }
}

fn write_category(
    runtime: &Runtime,
    job: u64,
    category: Category,
    mut sink: OutputSink,
    columns: &OutputColumns,
    partial: bool,
) -> anyhow::Result<(u64, Option<PathBuf>)> {
    if let Some(header) = &columns.header {
        sink.write_line(header.as_bytes())?;
    }
    for record in runtime.download(job, category)? {
        let record = record?;
        match &columns.projection {
            Some(p) => sink.write_record(&p.project(&record))?,
            None => sink.write_record(&record)?,
        }
    }
    if partial {
        sink.finish_partial()
    } else {
        Ok((sink.finish()?, None))
    }
}

/// How the job's output is put together: as its input was (line endings
/// and all), or a JSON array for a JSON array input.
pub fn output_framing(job: &JobStatus) -> OutputFraming {
    match job_format(job) {
        Format::Json => OutputFraming::JsonArray,
        _ => OutputFraming::Lines(TextLayout::from_properties(&job.properties)),
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
