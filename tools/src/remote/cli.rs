//! `booster --server URL jobs|job ...|run|submit|download`: the same
//! commands, the same output (printed by `crate::report`) and the same
//! files, over the HTTP API.

use anyhow::{bail, Context};
use booster_runtime::{Category, JobState, JobStatus};
use serde_json::json;

use booster_client::http::{job_body, Event, ListFilter};

use super::{Client, RemoteOptions};
use crate::cli::{
    Cli, Command, CronCommand, DirmonCommand, DownloadArgs, JobCommand, JobInputArgs, RunArgs,
    SubmitArgs,
};
use crate::commands::Interrupt;
use crate::exit;
use crate::formats::{self, is_std_stream};
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
    tokio::task::block_in_place(|| run_blocking(cli, interrupt))
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
    super::connect(&RemoteOptions {
        server,
        token_file: cli.token_file.clone(),
        ca_cert: booster_client::ca_cert_from_env(),
    })
}

fn run_blocking(cli: &Cli, interrupt: &Interrupt) -> anyhow::Result<i32> {
    let client = connect(cli)?;
    let out = out_of(cli);
    match &cli.command {
        Command::Jobs(args) => {
            let filter = ListFilter {
                state: args.state.map(booster_runtime::JobState::as_str),
                kind: args.kind.as_deref(),
                text: args.search.as_deref(),
            };
            let mut listing = crate::commands::Listing::new(out.json, out.quiet, args);
            let mut before = args.before;
            loop {
                let page = client.jobs_page(&filter, listing.limit(), before)?;
                let jobs = page.jobs.into_iter().map(Into::into).collect();
                match listing.show(jobs, page.next_before, page.total) {
                    Some(b) => before = Some(b),
                    None => break,
                }
            }
            listing.finish();
        }
        Command::Job(JobCommand::Watch { job }) => return watch(&client, &out, *job),
        Command::Job(command) => job(&client, &out, command)?,
        Command::Submit(args) if args.job.args.is_some() => submit_simple(&client, &out, args)?,
        Command::Submit(args) => {
            crate::commands::cron_spec(args)?; // --cron without --args: refused
            submit(&client, &out, &args.job, interrupt)?
        }
        Command::Cron(command) => cron(&client, &out, command)?,
        Command::Dirmon(command) => dirmon(&client, &out, command)?,
        Command::Kind(command) => {
            let views = client.kinds()?;
            if let Some((kind, settings)) =
                crate::commands::kind_change(command.clone(), &views, out.json)?
            {
                let view = client.store_kind(&kind, settings.as_ref())?;
                crate::commands::print_kind_stored(out.json, out.quiet, &kind, view.as_ref());
            }
        }
        Command::Retention(args) => {
            let shown = match args.changes() {
                Some(changes) => client.set_retention(&changes)?,
                None => client.retention()?,
            };
            crate::commands::print_retention(out.json, out.quiet, &shown);
        }
        Command::Run(args) => return run_remote(&client, &out, args, interrupt),
        Command::Download(args) => return download(&client, &out, args),
        Command::Workers => workers(&client, &out)?,
        _ => bail!("--server works with jobs, job, run, submit, kind, retention, cron, dirmon, download, workers and work"),
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
}

fn job(client: &Client, out: &Out, command: &JobCommand) -> anyhow::Result<()> {
    let view = match command {
        JobCommand::Show { job, .. } | JobCommand::Watch { job } => client.job(*job)?,
        JobCommand::Priority { job, priority } => client.set(*job, Some(*priority), None)?,
        JobCommand::MaxWorkers { job, workers } => client.set(*job, None, Some(workers.0))?,
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
        _ => out.say(crate::commands::changed_line(command, &status)),
    }
    Ok(())
}

/// `job watch`: one line (or JSON object) per event until the job ends;
/// the exit code `booster run` would give the finished job.
fn watch(client: &Client, out: &Out, id: u64) -> anyhow::Result<i32> {
    client.watch_from_now(id, |event| {
        let Event::Job(event) = event else {
            return true; // `lagged`: the watch reads the job next
        };
        let event = serde_json::to_value(event).expect("an event serialises");
        if out.json {
            report::print_json(&event);
        } else {
            out.say(report::watch_line(&event));
        }
        true
    })?;
    let status: JobStatus = match client.job(id) {
        Ok(view) => view.into(),
        // Destroyed once it finished (destroy-on-complete): its tombstone
        // says how it ended; its counts went with it.
        Err(e) => match e.destroyed_finished() {
            Some(JobState::Completed) => {
                out.say(format!("job {id} completed, then was destroyed"));
                return Ok(exit::OK);
            }
            Some(state) => {
                out.say(format!("job {id} {}, then was destroyed", state.as_str()));
                return Ok(exit::RECORDS_FAILED);
            }
            None => return Err(e.into()),
        },
    };
    if !status.state.is_finished() {
        bail!("the event stream of job {id} ended before the job did (the server stopped?); watch again");
    }
    Ok(crate::commands::exit_code(&status))
}

/// `submit --args JSON [--cron EXPR]` through a server: the spec a local
/// submit makes, the same lines printed.
fn submit_simple(client: &Client, out: &Out, args: &SubmitArgs) -> anyhow::Result<()> {
    let json_args = args.job.args.as_deref().unwrap_or("null");
    let spec = crate::commands::simple_spec(&args.job, json_args)?;
    let mut body = job_body(&spec)?;
    if body["properties"].is_null() {
        body["properties"] = json!({});
    }
    match crate::commands::cron_spec(args)? {
        Some(cron) => {
            let view = client.add_cron(&json!({"expr": cron.expr, "tz": cron.tz, "job": body}))?;
            crate::commands::print_added_cron(out.json, out.quiet, Some(&view));
        }
        None => {
            let id = client.create(&body)?;
            let status: JobStatus = client.job(id)?.into();
            crate::commands::print_submitted_job(out.json, out.quiet, &status, "the server");
        }
    }
    Ok(())
}

/// `cron list|pause|resume|remove` through a server.
fn cron(client: &Client, out: &Out, command: &CronCommand) -> anyhow::Result<()> {
    let (id, action) = match command {
        CronCommand::List => (None, ""),
        CronCommand::Pause { id } => (Some(*id), "pause"),
        CronCommand::Resume { id } => (Some(*id), "resume"),
        CronCommand::Remove { id } => (Some(*id), "remove"),
    };
    if let Some(id) = id {
        client.cron_action(id, action)?;
        if action == "remove" {
            out.say(format!("cron {id} removed"));
        }
    }
    crate::commands::print_crons(out.json, &client.crons()?);
    Ok(())
}

/// `dirmon add|list|pause|resume|remove` on a server: the entry's paths
/// are the server's (absolute), and the server's `--dirmon-allow` and
/// `--exec-allow` decide what it takes.
fn dirmon(client: &Client, out: &Out, command: &DirmonCommand) -> anyhow::Result<()> {
    let (id, action) = match command {
        DirmonCommand::Add { words } => {
            let spec = crate::dirmon::split_remote_add_words(words)?.spec();
            let view = client.add_dirmon(&json!({
                "pattern": spec.pattern,
                "archive": spec.archive,
                "settle_ms": spec.settle_ms,
                "options": spec.options,
            }))?;
            crate::commands::print_added_dirmon(
                out.json,
                out.quiet,
                Some(&view),
                "the server takes the files (its --dirmon-allow holds both directories)",
            );
            return Ok(());
        }
        DirmonCommand::List => (None, ""),
        DirmonCommand::Pause { id } => (Some(*id), "pause"),
        DirmonCommand::Resume { id } => (Some(*id), "resume"),
        DirmonCommand::Remove { id } => (Some(*id), "remove"),
    };
    if let Some(id) = id {
        client.dirmon_action(id, action)?;
        if action == "remove" {
            out.say(format!("dirmon {id} removed"));
            if !out.json {
                return Ok(());
            }
        }
    }
    crate::commands::print_dirmons(out.json, &client.dirmons()?);
    Ok(())
}

/// Reads the input here with the readers a local `submit` uses (every input
/// option: format, delimiter, encoding, layout, zip member, column rules,
/// sheet; a zip of several files makes a job per member), creates each job
/// with the same spec, and uploads the records as they were cut
/// (`?format=items`), so the server stores what a local submit would.
fn submit(
    client: &Client,
    out: &Out,
    args: &JobInputArgs,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    let jobs = crate::commands::per_member(args)?;
    let mut submitted = Vec::with_capacity(jobs.len());
    for job in &jobs {
        submitted.push(submit_one(client, job, interrupt)?);
    }
    if out.json {
        crate::commands::print_jobs_json(submitted.iter().map(report::job_json).collect());
        return Ok(());
    }
    for status in &submitted {
        if out.quiet {
            outln!("{}", status.id);
        } else {
            outln!("{}", report::submitted_line(status, "the server"));
        }
    }
    Ok(())
}

fn submit_one(
    client: &Client,
    args: &JobInputArgs,
    interrupt: &Interrupt,
) -> anyhow::Result<JobStatus> {
    let input =
        formats::open_source_with(args.input_path(), &crate::commands::read_options(args)?)?;
    let spec = crate::commands::job_spec(args, &input)?;
    // The format is in the properties, as a local submit records it.
    let id = client.submit(&spec)?;
    // Ctrl-C ends the request body early: the server then fails the job
    // ("upload interrupted"), as a local submit does, instead of the
    // whole file going up after the user asked to stop.
    let records = Interruptible {
        records: input.records,
        interrupt: interrupt.clone(),
    };
    let mut items = formats::ItemsReader::new(Box::new(records));
    let view = client
        .upload(id, &mut items, Some(formats::ITEMS_FORMAT))
        .with_context(|| format!("uploading into job {id}"))?;
    Ok(view.into())
}

/// `run` through a server: submit as above, wait for each job, then write
/// its files exactly as a local `run` does (`commands::write_job`), with
/// the same messages and exit code.
fn run_remote(
    client: &Client,
    out: &Out,
    args: &RunArgs,
    interrupt: &Interrupt,
) -> anyhow::Result<i32> {
    let jobs = crate::commands::plan_run(out.json, args)?;
    let to_stderr = args.output_dir.is_none() && is_std_stream(&args.output);
    let say = |text: String| {
        if out.quiet || out.json {
        } else if to_stderr {
            eprintln!("{text}");
        } else {
            outln!("{text}");
        }
    };
    let mut ids = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let uploaded = submit_one(client, job, interrupt)?;
        say(format!(
            "job {}: uploaded {} records into {}",
            uploaded.id,
            report::count(uploaded.records_in),
            report::plural(uploaded.slices_total, "slice")
        ));
        ids.push(uploaded.id);
    }
    let mut code = exit::OK;
    let mut values = Vec::new();
    let mut taken = std::collections::HashSet::new();
    for id in ids {
        let done = wait_finished(client, id, interrupt)?;
        let partial = crate::commands::is_incomplete(&done) && !args.keep_partial;
        let to = crate::commands::run_destinations(args, &done, &mut taken)?;
        let counts = crate::commands::write_job(
            client,
            &done,
            &to,
            partial,
            args.output_encoding.as_deref(),
        )?;
        let value =
            crate::commands::report_done(out.json, out.quiet, args, &done, &to, &counts, &say);
        if crate::commands::exit_code(&done) != exit::OK {
            code = exit::RECORDS_FAILED;
        }
        values.push(value);
    }
    if out.json {
        crate::commands::print_jobs_json(values);
    }
    Ok(code)
}

/// How often a remote `run` asks whether its job has finished.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Polls job `id` until it finishes; Ctrl-C stops waiting (the job goes on
/// on the server).
fn wait_finished(client: &Client, id: u64, interrupt: &Interrupt) -> anyhow::Result<JobStatus> {
    loop {
        let status: JobStatus = client.job(id)?.into();
        if status.state.is_finished() {
            return Ok(status);
        }
        if interrupt.is_set() {
            eprintln!(
                "job {id} goes on on the server: `booster --server URL download {id} --output ...` \
                 once it has finished"
            );
            return Err(anyhow::Error::new(exit::Interrupted));
        }
        std::thread::sleep(POLL);
    }
}

impl crate::commands::RecordFeed for Client {
    fn records(
        &self,
        job: u64,
        category: Category,
    ) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Vec<u8>>> + '_>> {
        Ok(Box::new(
            self.download_records(job, category.name())?
                .map(|r| r.map_err(anyhow::Error::from)),
        ))
    }

    fn separated(&self, job: u64) -> anyhow::Result<crate::commands::SeparatedFeed<'_>> {
        Ok(Box::new(
            self.download_separated(job)?
                .map(|r| r.map_err(anyhow::Error::from)),
        ))
    }
}

/// `download` through a server: the same files as a local `download`
/// (`commands::write_job`: the job's framing, header, output columns and
/// encoding, every category), the records fetched whole (`framing=length`).
fn download(client: &Client, out: &Out, args: &DownloadArgs) -> anyhow::Result<i32> {
    for path in args.output.iter().chain(&args.errors) {
        formats::check_destination(path)?;
    }
    if let Some(name) = &args.category {
        crate::commands::check_category_arg(name)?;
    }
    crate::commands::check_errors_named_once(args)?;
    let status: JobStatus = client.job(args.job)?.into();
    if !status.state.is_finished() {
        eprintln!(
            "warning: job {} is {}; this is the output so far",
            status.id,
            status.state.as_str()
        );
    }
    let to = crate::commands::download_destinations(args, &status);
    if let Some(dir) = &args.output_dir {
        crate::commands::prepare_output_dir(dir)?;
    }
    let counts =
        crate::commands::write_job(client, &status, &to, false, args.output_encoding.as_deref())?;
    let text = format!(
        "job {}: wrote {}",
        status.id,
        to.describe(&counts).join(", ")
    );
    if out.json {
        let mut value = report::job_json(&status);
        value["output_records"] = json!(counts.main);
        value["error_records"] = json!(counts.errors);
        value["category_records"] = json!(counts.categories);
        report::print_json(&value);
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

/// A record source that stops with an error once Ctrl-C was pressed.
struct Interruptible {
    records: Box<dyn formats::RecordSource>,
    interrupt: Interrupt,
}

impl formats::RecordSource for Interruptible {
    fn next_batch(&mut self, max: usize, out: &mut Vec<formats::Item>) -> std::io::Result<()> {
        if self.interrupt.is_set() {
            // Not `ErrorKind::Interrupted`: readers retry that one.
            return Err(std::io::Error::other(
                "interrupted by Ctrl-C: the upload stopped, and the server fails the job",
            ));
        }
        self.records.next_batch(max, out)
    }
}

/// `booster --server URL workers`: one line per process, or the JSON.
fn workers(client: &Client, out: &Out) -> anyhow::Result<()> {
    let processes = client.processes()?;
    if out.json {
        outln!("{}", serde_json::to_string_pretty(&processes)?);
        return Ok(());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    outln!(
        "{:<20}  {:>8}  {:<8}  {:>7}  {:>6}  {:>9}  {:>10}  KINDS",
        "HOST",
        "PID",
        "VERSION",
        "THREADS",
        "LEASES",
        "HEARD",
        "RECORDS/S"
    );
    for p in processes {
        let heard_s = now_ms.saturating_sub(p.last_heartbeat_ms) as f64 / 1000.0;
        let host = match p.worker {
            None => format!("{} (node)", p.host),
            Some(_) => p.host,
        };
        outln!(
            "{:<20}  {:>8}  {:<8}  {:>7}  {:>6}  {:>8.1}s  {:>10.0}  {}",
            host,
            p.pid,
            p.version,
            p.threads,
            p.leases,
            heard_s,
            p.records_per_s,
            p.kinds.join(",")
        );
    }
    Ok(())
}
