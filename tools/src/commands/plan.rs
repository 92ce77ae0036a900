//! What `run` and `submit` make of their command line, and what they say
//! about the jobs, shared by the local commands and `--server`: a job per
//! zip member, where each job's files go, the summary line and the exit code.

use std::time::Duration;

use booster_runtime::JobStatus;
use serde_json::json;

use super::display_name;
use super::download::{file_stem, output_stem, prepare_output_dir, Destinations, DownloadCounts};
use super::run::read_options;
use crate::cli::{JobInputArgs, RunArgs};
use crate::exit;
use crate::formats::{check_destination, file_members, is_std_stream, is_zip, Format};
use crate::report;

/// The jobs `run` makes (one per zip member, or one) once its outputs are
/// checked: local and `--server` alike.
pub fn plan_run(json: bool, args: &RunArgs) -> anyhow::Result<Vec<JobInputArgs>> {
    if args.job.args.is_some() {
        return Err(exit::usage(
            "run uploads --input FILE into a sliced job; a simple job is submitted with `booster submit --kind KIND --args JSON`, and `booster job show ID` prints its result",
        ));
    }
    if json && args.output_dir.is_none() && is_std_stream(&args.output) {
        return Err(exit::usage(
            "--json prints the summary on stdout; pass --output FILE for the records",
        ));
    }
    let mut jobs = per_member(&args.job)?;
    // run downloads each job's output once it completes: a kind's
    // destroy-on-complete must not take it first.
    for job in &mut jobs {
        job.keep_on_complete = true;
    }
    if jobs.len() > 1 {
        check_member_outputs(args, &jobs)?;
    }
    match &args.output_dir {
        Some(dir) => prepare_output_dir(dir)?,
        None => {
            for path in std::iter::once(&args.output).chain(args.errors.as_ref()) {
                check_destination(path)?;
            }
        }
    }
    Ok(jobs)
}

/// The jobs `args` make: one, or one per file of a zip archive that holds
/// several (neither `--member` nor `--concat`), each reading its member.
/// A spreadsheet is a zip too, read as one workbook.
pub fn per_member(args: &JobInputArgs) -> anyhow::Result<Vec<JobInputArgs>> {
    let one = || Ok(vec![args.clone()]);
    if is_std_stream(args.input_path())
        || args.tabular.member.is_some()
        || args.tabular.concat
        || read_options(args)?.format == Format::Xlsx
        || !is_zip(args.input_path())
    {
        return one();
    }
    let members = file_members(args.input_path())?;
    if members.len() < 2 {
        return one();
    }
    let archive = display_name(args.input_path());
    Ok(members
        .into_iter()
        .map(|member| {
            let mut job = args.clone();
            job.description = Some(match &args.description {
                Some(d) => format!("{d} ({member})"),
                None => format!("{} {archive}:{member}", args.kind),
            });
            job.tabular.member = Some(member);
            job
        })
        .collect())
}

/// A job per zip member writes into `--output-dir`, one set of files per
/// member: refused otherwise, and when two members would take the same names.
fn check_member_outputs(args: &RunArgs, jobs: &[JobInputArgs]) -> anyhow::Result<()> {
    let members: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j.tabular.member.as_deref())
        .collect();
    if args.output_dir.is_none() {
        return Err(exit::usage(format!(
            "{} holds {} files ({}): `run` makes a job per member, and their outputs go to \
             --output-dir DIR (one set of files per member); or pass --member NAME for one, \
             or --concat to read them all into one job",
            args.job.input_path().display(),
            members.len(),
            members.join(", ")
        )));
    }
    let mut stems = std::collections::BTreeMap::new();
    for member in members {
        if let Some(other) = stems.insert(file_stem(member), member) {
            return Err(exit::usage(format!(
                "zip members {other:?} and {member:?} would write the same files in \
                 --output-dir; run them one at a time with --member NAME"
            )));
        }
    }
    Ok(())
}

/// One job's object, or an array of them when a zip made several.
pub fn print_jobs_json(values: Vec<serde_json::Value>) {
    match <[_; 1]>::try_from(values) {
        Ok([one]) => report::print_json(&one),
        Err(many) => report::print_json(&json!(many)),
    }
}

/// Where `run` writes job `done`'s files. `taken` holds every path an
/// earlier job of this run wrote: a member whose file names meet another
/// member's (`a.review.csv`'s main file is `a.csv`'s `review` file) is
/// refused before anything of it is written, never written over.
pub fn run_destinations(
    args: &RunArgs,
    done: &JobStatus,
    taken: &mut std::collections::HashSet<std::path::PathBuf>,
) -> anyhow::Result<Destinations> {
    let to = match &args.output_dir {
        Some(dir) => Destinations::in_dir(dir, &output_stem(done), done),
        None => Destinations::files(Some(&args.output), args.errors.as_deref()),
    };
    if let Some(clash) = to.paths().find(|p| taken.contains(*p)) {
        anyhow::bail!(
            "job {}'s output {} is a file another job of this run already wrote; it is kept \
             in the store: `booster download {} --output-dir OTHER_DIR` writes it",
            done.id,
            clash.display(),
            done.id
        );
    }
    taken.extend(to.paths().map(std::path::Path::to_path_buf));
    Ok(to)
}

/// What `run` says about a finished, downloaded job (local and `--server`
/// alike); its JSON object with the download counts.
pub fn report_done(
    json: bool,
    quiet: bool,
    args: &RunArgs,
    done: &JobStatus,
    to: &Destinations,
    counts: &DownloadCounts,
    say: &impl Fn(String),
) -> serde_json::Value {
    let id = done.id;
    let code = exit_code(done);
    let mut value = report::job_json(done);
    value["output_records"] = json!(counts.main);
    value["error_records"] = json!(counts.errors);
    value["category_records"] = json!(counts.categories);
    if json {
    } else if quiet && code != exit::OK {
        // -q hides the chatter, never the news that records failed.
        eprintln!("{}", summary(done));
    } else {
        say(summary(done));
        if args.output_dir.is_some() {
            say(format!("  wrote {}", to.describe(counts).join(", ")));
        }
        if done.records_failed > 0 && args.errors.is_none() && args.output_dir.is_none() {
            say(format!(
                "  the errors are kept: `booster download {id} --errors errors.jsonl` or `booster job show {id}`"
            ));
        }
    }
    for path in &counts.partial {
        eprintln!(
            "job {id} failed: its output so far is in {} (`--keep-partial` writes it under the \
             name asked for); `booster job retry {id}` runs the failed slices again",
            path.display()
        );
    }
    value
}

/// A failed or aborted job, or one with failed slices: its output misses
/// records (record errors collected by `--collect-errors` do not count:
/// the output is complete without them).
pub fn is_incomplete(job: &JobStatus) -> bool {
    job.state != booster_runtime::JobState::Completed
        || job.slices_failed > 0
        || !job.upload_complete
}

/// 0 when every record was processed, [`exit::RECORDS_FAILED`] otherwise.
pub fn exit_code(job: &JobStatus) -> i32 {
    if job.state == booster_runtime::JobState::Completed && job.records_failed == 0 {
        exit::OK
    } else {
        exit::RECORDS_FAILED
    }
}

pub fn summary(job: &JobStatus) -> String {
    let elapsed = match (job.started_at, job.completed_at) {
        (Some(s), Some(c)) => c.duration_since(s).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let mut text = format!(
        "job {} {}: {} records in, {} out, {} failed; {} in {}",
        job.id,
        job.state.as_str(),
        report::count(job.records_in),
        report::count(job.records_out),
        report::count(job.records_failed),
        report::plural(job.slices_total, "slice"),
        report::duration(elapsed)
    );
    if let Some(reason) = &job.failure_reason {
        text.push_str(&format!("\n  failure: {reason}"));
    }
    for group in job.errors.iter().take(5) {
        text.push_str(&format!(
            "\n  {} x {}",
            report::count(group.count),
            group.message
        ));
        if let Some(sample) = group.samples.first() {
            let at = sample
                .line
                .map_or(format!("record {}", sample.record_number), |l| {
                    format!("line {l}")
                });
            text.push_str(&format!(
                " (e.g. {at}: {})",
                report::truncate(&report::escape(&sample.record), 60)
            ));
        }
    }
    text
}
