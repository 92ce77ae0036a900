//! `booster --server URL jobs|job ...|submit|download`: the same commands,
//! the same output (printed by `crate::report`), over the HTTP API.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context};
use booster_runtime::{JobShape, JobStatus};
use serde_json::json;

use super::{Client, RemoteOptions};
use crate::cli::{Cli, Command, DownloadArgs, JobCommand, JobInputArgs};
use crate::commands::Interrupt;
use crate::exit;
use crate::formats::{self, is_std_stream, props, Format, OutputSink};
use crate::report;

/// Runs `cli.command` against `cli.server` (with `cli.token_file`); returns
/// the exit code (see `crate::exit`).
pub async fn run(cli: &Cli, interrupt: &Interrupt) -> anyhow::Result<i32> {
    if let Command::Job(JobCommand::Watch { job }) = &cli.command {
        // Following events blocks on the stream for as long as the job
        // runs: the first Ctrl-C must end it, not wait for the next event.
        let (client, out, id) = (connect(cli)?, out_of(cli), *job);
        let follow = tokio::task::spawn_blocking(move || watch(&client, &out, id));
        return tokio::select! {
            done = follow => done?,
            _ = interrupt.wait() => Err(anyhow::Error::new(exit::Interrupted)),
        };
    }
    // The client is blocking (one request at a time, streaming files):
    // keep it off the async threads.
    tokio::task::block_in_place(|| run_blocking(cli))
}

fn out_of(cli: &Cli) -> Out {
    Out {
        json: cli.json,
        quiet: cli.quiet,
    }
}

fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let server = cli
        .server
        .clone()
        .context("--server URL is needed to talk to a booster serve")?;
    Client::new(&RemoteOptions {
        server,
        token_file: cli.token_file.clone(),
        ca_cert: std::env::var_os("BOOSTER_CA_CERT").map(Into::into),
    })
}

fn run_blocking(cli: &Cli) -> anyhow::Result<i32> {
    let client = connect(cli)?;
    let out = out_of(cli);
    match &cli.command {
        Command::Jobs(args) => {
            let state = args.state.map(booster_runtime::JobState::as_str);
            let jobs = client.jobs(state, args.kind.as_deref(), args.search.as_deref())?;
            let jobs: Vec<JobStatus> = jobs.into_iter().map(Into::into).collect();
            let jobs = report::newest_first(jobs, args.limit);
            out.jobs(&jobs);
        }
        Command::Job(JobCommand::Watch { job }) => return watch(&client, &out, *job),
        Command::Job(command) => job(&client, &out, command)?,
        Command::Submit(args) => submit(&client, &out, &args.job)?,
        Command::Download(args) => return download(&client, &out, args),
        _ => bail!("--server works with jobs, job, submit and download"),
    }
    Ok(exit::OK)
}

struct Out {
    json: bool,
    quiet: bool,
}

impl Out {
    fn say(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.json {
            outln!("{}", text.as_ref());
        }
    }

    fn jobs(&self, jobs: &[JobStatus]) {
        if self.json {
            let list: Vec<serde_json::Value> = jobs.iter().map(report::job_json).collect();
            report::print_json(&serde_json::Value::Array(list));
        } else if self.quiet {
            for job in jobs {
                outln!("{}", job.id);
            }
        } else if jobs.is_empty() {
            outln!("no jobs");
        } else {
            outln!("{}", report::table_header());
            for job in jobs {
                outln!("{}", report::table_row(job));
            }
        }
    }
}

fn job(client: &Client, out: &Out, command: &JobCommand) -> anyhow::Result<()> {
    let view = match command {
        JobCommand::Show { job, .. } | JobCommand::Watch { job } => client.job(*job)?,
        JobCommand::Priority { job, priority } => client.set(*job, Some(*priority), None)?,
        JobCommand::Pause { job } => client.control(*job, "pause", None)?,
        JobCommand::Resume { job } => client.control(*job, "resume", None)?,
        JobCommand::Abort { job } => client.control(*job, "abort", None)?,
        JobCommand::Retry { job } => client.control(*job, "retry", None)?,
        JobCommand::Destroy { job } => {
            client.destroy(*job)?;
            if out.json {
                report::print_json(&json!({ "id": job, "destroyed": true }));
            }
            out.say(format!(
                "job {job} destroyed; `booster compact` on the server reclaims its space"
            ));
            return Ok(());
        }
    };
    let status: JobStatus = view.into();
    match command {
        _ if out.json => report::print_json(&report::job_json(&status)),
        JobCommand::Show { verbose, .. } => {
            outln!("{}", report::job_details(&status, *verbose).trim_end())
        }
        _ => out.say(format!(
            "job {}: {} at priority {}",
            status.id,
            status.state.as_str(),
            status.priority
        )),
    }
    Ok(())
}

/// `job watch`: one line (or JSON object) per event until the job ends;
/// the exit code `booster run` would give the finished job.
fn watch(client: &Client, out: &Out, id: u64) -> anyhow::Result<i32> {
    client.watch_from_now(id, |event| {
        if event.get("state").is_none() {
            return true; // `lagged`: the final state still comes
        }
        if out.json {
            report::print_json(event);
        } else {
            out.say(report::watch_line(event));
        }
        true
    })?;
    let status: JobStatus = client.job(id)?.into();
    if !status.state.is_finished() {
        bail!("the event stream of job {id} ended before the job did (the server stopped?); watch again");
    }
    Ok(crate::commands::exit_code(&status))
}

/// Reads the input here (decompressing, and for CSV its header, exactly as
/// a local submit does), creates the job, then streams the records' bytes.
fn submit(client: &Client, out: &Out, args: &JobInputArgs) -> anyhow::Result<()> {
    let format = args
        .format
        .unwrap_or_else(|| Format::from_path(&args.input));
    if format == Format::Csv && is_std_stream(&args.input) {
        bail!(
            "with --server, CSV input must be a file: its header is read before the upload \
             starts; save stdin to a file, or pass --format lines"
        );
    }
    let spec = {
        let input = formats::open_source(&args.input, format, args.max_record_bytes)?;
        crate::commands::job_spec(args, &input)?
    };
    let (slice_size, collect_errors) = match spec.shape {
        JobShape::Sliced {
            slice_size,
            collect_errors,
        } => (slice_size, collect_errors),
        JobShape::Simple { .. } => (None, false),
    };
    let id = client.create(&json!({
        "kind": spec.kind,
        "priority": spec.priority,
        "description": spec.description,
        "max_workers": spec.max_workers,
        "slice_size": slice_size,
        "collect_errors": collect_errors,
        "format": format.name(),
        "properties": spec.properties,
    }))?;
    let (mut bytes, _) = formats::open_bytes(&args.input)?;
    let view = client
        .upload(id, &mut bytes, Some(format.name()))
        .with_context(|| format!("uploading into job {id}"))?;
    let status: JobStatus = view.into();
    if out.json {
        report::print_json(&report::job_json(&status));
    } else if out.quiet {
        outln!("{}", status.id);
    } else {
        outln!(
            "job {}: {} records in {} slices, {} at priority {}; the server processes it",
            status.id,
            report::count(status.records_in),
            status.slices_total,
            status.state.as_str(),
            status.priority
        );
    }
    Ok(())
}

fn download(client: &Client, out: &Out, args: &DownloadArgs) -> anyhow::Result<i32> {
    for path in args.output.iter().chain(&args.errors) {
        formats::check_destination(path)?;
    }
    let status: JobStatus = client.job(args.job)?.into();
    if !status.state.is_finished() {
        eprintln!(
            "warning: job {} is {}; this is the output so far",
            status.id,
            status.state.as_str()
        );
    }
    let header = status
        .properties
        .get(props::CSV_HEADER)
        .and_then(|h| h.as_str())
        .filter(|_| {
            status
                .properties
                .get(props::FORMAT)
                .and_then(|f| f.as_str())
                == Some("csv")
        });
    if let Some(name) = &args.category {
        crate::commands::check_category_arg(name)?;
    }
    let to = crate::commands::download_destinations(args, &status);
    if let Some(dir) = &args.output_dir {
        crate::commands::prepare_output_dir(dir)?;
    }
    let mut counts = crate::commands::DownloadCounts::default();
    if let Some(path) = &to.main {
        counts.main = Some(download_to(client, args.job, "main", path, header)?);
    }
    for (name, path) in &to.categories {
        let n = download_to(client, args.job, name, path, header)?;
        counts.categories.insert(name.clone(), n);
    }
    if let Some(path) = &to.errors {
        counts.errors = Some(download_to(client, args.job, "errors", path, None)?);
    }
    let text = format!(
        "job {}: wrote {}",
        status.id,
        to.describe(&counts).join(", ")
    );
    if out.json {
        report::print_json(&report::job_json(&status));
    } else if args.output.as_deref().is_some_and(is_std_stream) {
        if !out.quiet {
            eprintln!("{text}");
        }
    } else {
        out.say(text);
    }
    if let Some(missing) = crate::commands::missing(&status) {
        eprintln!("{missing}");
        return Ok(exit::RECORDS_FAILED);
    }
    Ok(exit::OK)
}

/// Streams one category into `path` (compressed by its extension). Records
/// arrive one per line; writing each line back with its newline reproduces
/// the bytes exactly.
fn download_to(
    client: &Client,
    job: u64,
    category: &str,
    path: &Path,
    header: Option<&str>,
) -> anyhow::Result<u64> {
    let mut sink = OutputSink::create(path)?;
    if let Some(header) = header {
        sink.write_line(header.as_bytes())?;
    }
    let mut body = BufReader::with_capacity(256 << 10, client.download_reader(job, category)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = body.read_until(b'\n', &mut line).context(
            "the download broke off before its end; the output is incomplete, download again",
        )?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        sink.write_record(&line)?;
    }
    sink.finish()
}
