//! `download`: a job's output (and errors) to files, in the job's format
//! (the CSV header first), compressed by the file's extension.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use booster_runtime::{Category, CategoryName, JobId, JobState, JobStatus, Runtime, Separators};

use super::{with_runtime, Ctx};
use crate::cli::DownloadArgs;
use crate::exit;
use crate::formats::encoding::{self, TextEncoder};
use crate::formats::{
    check_destination, props, Format, OutputFraming, OutputProjection, OutputSink, TextLayout,
};
use crate::report;

/// Where each category of a job's output goes: `--output` and `--errors`,
/// `--category NAME --output PATH`, or every category in `--output-dir`.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    pub main: Option<PathBuf>,
    pub errors: Option<PathBuf>,
    /// The job's own categories asked for, by name.
    pub categories: Vec<(String, PathBuf)>,
}

impl Destinations {
    pub fn files(main: Option<&Path>, errors: Option<&Path>) -> Destinations {
        Destinations {
            main: main.map(Path::to_path_buf),
            errors: errors.map(Path::to_path_buf),
            categories: Vec::new(),
        }
    }

    /// Every category of `job` as a file in `dir`, named after `stem`:
    /// `STEM.EXT` (main), `STEM.errors.jsonl`, `STEM.NAME.EXT` per category,
    /// EXT the job's format's.
    pub fn in_dir(dir: &Path, stem: &str, job: &JobStatus) -> Destinations {
        let ext = output_extension(job_format(job));
        Destinations {
            main: Some(dir.join(format!("{stem}.{ext}"))),
            errors: Some(dir.join(format!("{stem}.errors.jsonl"))),
            categories: job
                .records_out_by_category
                .keys()
                .map(|name| (name.clone(), dir.join(format!("{stem}.{name}.{ext}"))))
                .collect(),
        }
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.main
            .iter()
            .chain(&self.errors)
            .chain(self.categories.iter().map(|(_, p)| p))
            .map(PathBuf::as_path)
    }

    /// What was written where, for the summary line.
    pub fn describe(&self, counts: &DownloadCounts) -> Vec<String> {
        let mut parts = Vec::new();
        if let (Some(n), Some(path)) = (counts.main, &self.main) {
            parts.push(format!(
                "{} to {}",
                report::plural(n, "record"),
                path.display()
            ));
        }
        for (name, path) in &self.categories {
            if let Some(n) = counts.categories.get(name) {
                let noun = if *n == 1 { "record" } else { "records" };
                parts.push(format!(
                    "{} {name} {noun} to {}",
                    report::count(*n),
                    path.display()
                ));
            }
        }
        if let (Some(n), Some(path)) = (counts.errors, &self.errors) {
            parts.push(format!(
                "{} to {}",
                report::plural(n, "error"),
                path.display()
            ));
        }
        parts
    }
}

/// The extension of a job's output files in an output directory.
fn output_extension(format: Format) -> &'static str {
    match format {
        Format::Csv | Format::Xlsx => "csv",
        Format::Psv => "psv",
        Format::Tsv => "tsv",
        Format::Jsonl => "jsonl",
        Format::Json => "json",
        Format::Lines | Format::Fixed => "txt",
    }
}

/// The name a job's files in an output directory start with: its zip
/// member's or input's name without compression and format extensions
/// (`customers.csv.gz` -> `customers`), or `job-ID` for stdin.
pub fn output_stem(job: &JobStatus) -> String {
    let name = |key| job.properties.get(key).and_then(|i| i.as_str());
    let input = name(props::MEMBER)
        .or_else(|| name(props::INPUT))
        .filter(|i| *i != "stdin" && !i.is_empty());
    match input {
        Some(name) => file_stem(name),
        None => format!("job-{}", job.id),
    }
}

/// `a.csv.gz` -> `a`, `dir/b.jsonl` -> `dir_b`, `c` -> `c`.
pub fn file_stem(name: &str) -> String {
    let mut stem = name.replace(['/', '\\'], "_");
    for ext in [".gz", ".zst", ".bz2", ".xz", ".zip"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s.to_string();
        }
    }
    match stem.rfind('.') {
        Some(dot) if dot > 0 => stem[..dot].to_string(),
        _ => stem,
    }
}

/// `--output-dir DIR`: created when missing; a file there is refused.
pub fn prepare_output_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!(
            "--output-dir {}: it is a file, not a directory; pass a directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create --output-dir {}: {e}", dir.display()))
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DownloadCounts {
    /// Records written to the output, when one was asked for.
    pub main: Option<u64>,
    pub errors: Option<u64>,
    /// Records written per category of the job's own, for those asked for.
    pub categories: BTreeMap<String, u64>,
    /// Files left as `PATH.partial` because the job's output is incomplete.
    #[serde(skip)]
    pub partial: Vec<PathBuf>,
}

/// `--category errors --output F` and `--errors G` both name the errors
/// file: refused, never one of them dropped in silence.
pub fn check_errors_named_once(args: &DownloadArgs) -> anyhow::Result<()> {
    if args.category.as_deref() == Some("errors") && args.output.is_some() && args.errors.is_some()
    {
        return Err(exit::usage(
            "--category errors --output names the errors file, and so does --errors: give one",
        ));
    }
    Ok(())
}

/// `--category NAME` checked before the data directory is opened.
pub fn check_category_arg(name: &str) -> anyhow::Result<()> {
    match name {
        "main" | "errors" => Ok(()),
        other => CategoryName::new(other)
            .map(|_| ())
            .map_err(|e| exit::usage(format!("--category: {e}"))),
    }
}

/// Where `download`'s arguments send each category of `job`.
pub fn download_destinations(args: &DownloadArgs, job: &JobStatus) -> Destinations {
    if let Some(dir) = &args.output_dir {
        return Destinations::in_dir(dir, &output_stem(job), job);
    }
    let mut to = Destinations::files(None, args.errors.as_deref());
    match (args.category.as_deref(), &args.output) {
        (_, None) => {}
        (None | Some("main"), Some(path)) => to.main = Some(path.clone()),
        (Some("errors"), Some(path)) => to.errors = Some(path.clone()),
        (Some(name), Some(path)) => to.categories.push((name.to_string(), path.clone())),
    }
    to
}

pub async fn download(ctx: &Ctx, args: DownloadArgs) -> anyhow::Result<i32> {
    for path in args.output.iter().chain(&args.errors) {
        check_destination(path)?;
    }
    if let Some(name) = &args.category {
        check_category_arg(name)?;
    }
    check_errors_named_once(&args)?;
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
        let to = download_destinations(&args, &job);
        if let Some(dir) = &args.output_dir {
            prepare_output_dir(dir)?;
        }
        let counts =
            download_job(&runtime, &job, &to, false, args.output_encoding.as_deref()).await?;
        Ok((job, counts, to))
    };
    let (job, counts, to) = with_runtime(runtime.clone(), body).await?;
    if ctx.json {
        let mut value = report::job_json(&job);
        value["output_records"] = serde_json::json!(counts.main);
        value["error_records"] = serde_json::json!(counts.errors);
        value["category_records"] = serde_json::json!(counts.categories);
        report::print_json(&value);
    } else {
        let text = format!("job {}: wrote {}", job.id, to.describe(&counts).join(", "));
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
        // Records processed before the upload stopped are in the output;
        // the rest of what was uploaded never ran.
        let verb = |n: u64| {
            if n == 1 {
                ("was", "is")
            } else {
                ("were", "are")
            }
        };
        return Some(format!(
            "job {id} is {}: its upload never completed: {} {} uploaded, {} {} in the \
             output; submit the input again",
            job.state.as_str(),
            report::plural(job.records_in, "record"),
            verb(job.records_in).0,
            report::plural(job.records_out, "record"),
            verb(job.records_out).1,
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

/// Records, each with its separators (usual ones where none were kept).
pub type SeparatedFeed<'a> = Box<dyn Iterator<Item = anyhow::Result<(Vec<u8>, Separators)>> + 'a>;

/// Where a download's records come from: this process's runtime, or a
/// `booster serve` (`--server`), so both write the same files.
pub trait RecordFeed {
    /// `job`'s records of `category`, in input order.
    fn records(
        &self,
        job: JobId,
        category: Category,
    ) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Vec<u8>>> + '_>>;

    /// `job`'s `main` records with the separators their input had, where
    /// a slice's output is 1:1 with its input.
    fn separated(&self, job: JobId) -> anyhow::Result<SeparatedFeed<'_>>;
}

impl RecordFeed for Runtime {
    fn records(
        &self,
        job: JobId,
        category: Category,
    ) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Vec<u8>>> + '_>> {
        Ok(Box::new(
            self.download(job, category)?
                .map(|r| r.map_err(anyhow::Error::from)),
        ))
    }

    fn separated(&self, job: JobId) -> anyhow::Result<SeparatedFeed<'_>> {
        Ok(Box::new(
            self.download_separated(job)?
                .map(|r| r.map_err(anyhow::Error::from)),
        ))
    }
}

/// Records with the usual separators.
fn unseparated<'a>(
    records: impl Iterator<Item = anyhow::Result<Vec<u8>>> + 'a,
) -> SeparatedFeed<'a> {
    Box::new(records.map(|r| r.map(|record| (record, Separators::default()))))
}

/// Streams each category of the job to its destination: `main` and the
/// job's own categories in the job's format (the CSV header, the output
/// columns and the encoding alike), `errors` as JSON Lines; with `partial`,
/// files stay `PATH.partial` (listed in the counts).
pub async fn download_job(
    runtime: &Runtime,
    job: &JobStatus,
    to: &Destinations,
    partial: bool,
    output_encoding: Option<&str>,
) -> anyhow::Result<DownloadCounts> {
    let (runtime, job, to) = (runtime.clone(), job.clone(), to.clone());
    let output_encoding = output_encoding.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        write_job(&runtime, &job, &to, partial, output_encoding.as_deref())
    })
    .await?
}

/// `download_job` on this thread, from any feed.
pub fn write_job(
    feed: &dyn RecordFeed,
    job: &JobStatus,
    to: &Destinations,
    partial: bool,
    output_encoding: Option<&str>,
) -> anyhow::Result<DownloadCounts> {
    let encoder = output_encoder(job, output_encoding)?;
    let mut records: Vec<(Category, &Path)> = Vec::new();
    if let Some(path) = &to.main {
        records.push((Category::Main, path));
    }
    for (name, path) in &to.categories {
        let category = CategoryName::new(name).map_err(|e| anyhow::anyhow!("--category: {e}"))?;
        records.push((Category::Named(category), path));
    }
    let framing = output_framing(job);
    let mut counts = DownloadCounts::default();
    for (category, path) in records {
        // Asked before the file is made: a category the job lacks leaves none.
        let records = match category {
            Category::Main => feed.separated(job.id)?,
            other => unseparated(feed.records(job.id, other)?),
        };
        let columns = output_columns(job);
        let mut sink = OutputSink::create_framed(path, framing)?;
        if let Some((encoding, bom)) = encoder {
            sink.encode_as(TextEncoder::new(encoding, bom))?;
        }
        let (n, left) = write_category(records, sink, &columns, partial)?;
        match category {
            Category::Named(name) => {
                counts.categories.insert(name.as_str().to_string(), n);
            }
            _ => counts.main = Some(n),
        }
        counts.partial.extend(left);
    }
    if let Some(path) = &to.errors {
        let records = unseparated(feed.records(job.id, Category::Errors)?);
        let sink = OutputSink::create_framed(path, OutputFraming::default())?;
        let columns = OutputColumns::default();
        let (n, left) = write_category(records, sink, &columns, partial)?;
        counts.errors = Some(n);
        counts.partial.extend(left);
    }
    Ok(counts)
}

/// The encoding and whether to write a BOM (by default: UTF-8's BOM when
/// the input had one); each file gets its own encoder.
fn output_encoder(
    job: &JobStatus,
    asked: Option<&str>,
) -> anyhow::Result<Option<(&'static encoding_rs::Encoding, bool)>> {
    let Some(asked) = asked else {
        // UTF-8 is stored as it came: its BOM is the one byte sequence
        // the text lacks, so it goes back on.
        return Ok(encoding::InputEncoding::from_properties(&job.properties)
            .filter(|e| e.bom && e.encoding == encoding_rs::UTF_8)
            .map(|e| (e.encoding, e.bom)));
    };
    if asked.eq_ignore_ascii_case("input") {
        return Ok(
            encoding::InputEncoding::from_properties(&job.properties).map(|e| (e.encoding, e.bom))
        );
    }
    let target =
        encoding::parse_label(asked).map_err(|e| anyhow::anyhow!("--output-encoding: {e}"))?;
    Ok(Some((target, false)))
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
    records: SeparatedFeed<'_>,
    mut sink: OutputSink,
    columns: &OutputColumns,
    partial: bool,
) -> anyhow::Result<(u64, Option<PathBuf>)> {
    if let Some(header) = &columns.header {
        sink.write_line(header.as_bytes())?;
    }
    for record in records {
        let (record, separators) = record?;
        match &columns.projection {
            Some(p) => sink.write_separated(&p.project(&record), &separators)?,
            None => sink.write_separated(&record, &separators)?,
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
