//! The command line: global options and every subcommand (clap derive).

use std::path::PathBuf;

use booster_runtime::{JobId, JobState};
use clap::{Args, Parser, Subcommand};

use crate::exit;
use crate::formats::Format;

#[derive(Parser, Debug)]
#[command(
    name = "booster",
    version,
    about = "Run files through batch jobs: durable, prioritised, compressed and encrypted at rest",
    after_help = exit::HELP,
    propagate_version = true
)]
pub struct Cli {
    /// The data directory (the job store).
    #[arg(
        long,
        global = true,
        env = "BOOSTER_DATA",
        default_value = "./booster-data"
    )]
    pub data: PathBuf,
    /// Master key file (from `booster keygen`); when given, everything stored is encrypted.
    #[arg(long, global = true, env = "BOOSTER_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Machine-readable JSON on stdout; no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only what was asked for (ids, errors).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Talk to a `booster serve` at this URL instead of opening the data directory
    /// (jobs, job, run, submit, kind, cron, dirmon, download; work joins its fleet).
    #[arg(long, global = true, env = "BOOSTER_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token file (mode 0600): sent with --server; required by `serve` off
    /// loopback, where it holds one token (admin) or `ROLE TOKEN` lines
    /// (ROLE: read-only, submitter, worker, admin). Read again on SIGHUP.
    #[arg(long, global = true, env = "BOOSTER_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a new 256-bit master key (mode 0600; never overwrites).
    #[command(
        after_help = "Example:\n  booster keygen --out booster.key\n  booster --key-file booster.key run --kind copy --input in.csv --output out.csv"
    )]
    Keygen(KeygenArgs),
    /// Upload a file into a sliced job, process it on every core, download the output.
    #[command(
        after_help = "Examples:\n  booster run --kind copy --input in.csv.gz --output out.csv.gz\n  booster run --kind validate-customers --collect-errors --input customers.csv --output clean.csv --errors bad.jsonl\n  booster run --kind exec --cmd 'tr a-z A-Z' --input words.txt --output -"
    )]
    Run(RunArgs),
    /// Upload a file into a sliced job durably and return; `booster work` processes it.
    #[command(
        after_help = "Example:\n  booster submit --kind copy --input big.csv.zst --priority 10\n  booster work --until-idle"
    )]
    Submit(SubmitArgs),
    /// Process queued and interrupted jobs in the data directory, or with --server
    /// a node's jobs as a remote worker (until Ctrl-C, or --until-idle).
    #[command(
        after_help = "Examples:\n  booster work --until-idle --workers 4\n  booster --server https://node:7878 --token-file worker.token work --workers 8   # a remote worker of a fleet"
    )]
    Work(WorkArgs),
    /// Write a job's output (and errors) to files.
    #[command(
        after_help = "Example:\n  booster download 3 --output out.csv.gz --errors errors.jsonl"
    )]
    Download(DownloadArgs),
    /// List jobs.
    #[command(
        after_help = "Examples:\n  booster jobs\n  booster jobs --state failed --json\n  booster jobs --search customers --limit 20"
    )]
    Jobs(JobsArgs),
    /// Show or change one job.
    #[command(
        subcommand,
        after_help = "Examples:\n  booster job show 3\n  booster job priority 3 1      # run it before everything else\n  booster job pause 3 && booster job resume 3\n  booster job retry 3           # a failed job: its failed slices run again\n  booster --server http://127.0.0.1:7878 job watch 3"
    )]
    Job(JobCommand),
    /// Show or store a kind's settings: running-job limit, retries, leases.
    #[command(
        subcommand,
        after_help = "Stored settings outlive restarts and win over what a worker process sets in\ncode, until `booster kind reset`.\n\nExamples:\n  booster kind show\n  booster kind limit copy 2        # at most 2 copy jobs run at once\n  booster kind limit copy 0        # pause the kind: no copy job starts\n  booster kind limit copy none\n  booster kind retry report --max-retries 3 --backoff-ms 500\n  booster kind destroy-on-complete report on   # destroyed as each completes\n  booster kind reset copy"
    )]
    Kind(KindCommand),
    /// Show or store how long finished jobs stay before they are removed (per final state).
    #[command(
        after_help = "A finished job stays listed, with its output, for its state's period; the
checkpoint after that removes it (a destroyed job's tombstone, which `job show`
names, stays as long). Stored: it outlives restarts. Periods need a unit: 7d, 12h, 30m, 90s.
Without options it prints the periods that apply (defaults: completed 7d,
aborted 7d, failed 30d).

Examples:
  booster retention
  booster retention --completed 1d --failed 90d"
    )]
    Retention(RetentionArgs),
    /// List, pause, resume or remove cron entries (`submit --cron` adds one).
    #[command(
        subcommand,
        after_help = "Each tick of an entry's expression makes one run: a simple job with a new id.\nThe next run is made once the last one has finished; ticks missed meanwhile, or\nwhile no process ran, give one catch-up run.\n\nExamples:\n  booster submit --kind report --args '{\"day\": \"today\"}' --cron '0 3 * * *' --tz Europe/Berlin\n  booster cron list\n  booster cron pause 1 && booster cron resume 1\n  booster cron remove 1"
    )]
    Cron(CronCommand),
    /// Turn each file that arrives in a directory into a job: add, list, pause, resume, remove.
    #[command(
        subcommand,
        after_help = "A file matching --pattern that has stopped growing (its size and time unchanged\nfor --settle) is moved into the archive and becomes one job with its contents\nuploaded. A crash at any point neither loses the file nor runs it twice.\nFiles are taken by `booster serve` or `booster work` run with --dirmon-allow\nnaming directories that hold both the watched directory and the archive.\n\nExamples:\n  booster dirmon add --pattern '/data/in/*.csv' --kind copy --archive /data/done\n  booster work --dirmon-allow /data\n  booster dirmon list\n  booster dirmon pause 1 && booster dirmon resume 1\n  booster dirmon remove 1"
    )]
    Dirmon(DirmonCommand),
    /// Submit several files, one job each, and an on-complete job that runs once all have finished.
    #[command(
        after_help = "The jobs and the on-complete job are made in one commit: the on-complete job\nwaits for every job of the batch to finish (completed, failed or aborted), then\nruns once, across restarts. Its handler reads the batch's jobs and their output\n(JobContext::after and after_output).\n\nExample:\n  booster batch --input jan.csv --input feb.csv --kind copy --on-complete-kind report --on-complete-args '{\"month\": \"Q1\"}'"
    )]
    Batch {
        /// --input FILE (repeatable), --on-complete-kind KIND,
        /// --on-complete-args JSON, and the job options of `submit`.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true, value_name = "OPTION")]
        words: Vec<String>,
    },
    /// Segments, frames, jobs, live and dead bytes, compression ratio.
    #[command(after_help = "Example:\n  booster --data ./booster-data inspect")]
    Inspect,
    /// What recovery cut (torn tails) or found damaged in this data directory, oldest first.
    #[command(
        after_help = "Every open that cuts a torn tail, and the first process that runs work after a\nrange is found damaged, keeps an incident in the store's own log: it outlives\nthe stderr line and every compaction.\n\nExample:\n  booster incidents\n  booster incidents --json"
    )]
    Incidents,
    /// Check every frame's checksum (and every tag, with the key).
    #[command(after_help = "Example:\n  booster --key-file booster.key verify")]
    Verify,
    /// Copy every verifiable batch of a damaged store into a new one, and list what could not be saved.
    #[command(
        after_help = "The damaged directory is read only (no lock, no recovery, nothing written);\nrun `booster verify` first to see what is wrong.\n\nExample:\n  booster --data ./booster-data --key-file booster.key salvage --into ./booster-data.salvaged\n  booster --data ./booster-data.salvaged jobs"
    )]
    Salvage(SalvageArgs),
    /// Reclaim the space of destroyed jobs and dead frames: the segments at
    /// least half dead are rewritten, the rest kept as they are.
    #[command(
        after_help = "A destroyed job's data stays on disk in a segment less than half dead until\nthat segment passes the threshold; `--full` rewrites every segment and so purges it.\n\nExample:\n  booster compact\n  booster job destroy 3 && booster compact --full"
    )]
    Compact(CompactArgs),
    /// The tour: 1M customer records, encrypted, on every core, with a priority-1 job cutting in.
    #[command(
        after_help = "Example:\n  cargo run --release -p booster-tools -- demo\n  booster demo --records 100000 --keep"
    )]
    Demo(DemoArgs),
    /// Serve the HTTP API and the web dashboard over the data directory.
    #[command(
        after_help = "Example:\n  booster serve --listen 127.0.0.1:7878\n  booster serve --listen 0.0.0.0:7878 --token-file token --tls-cert cert.pem --tls-key key.pem\n  booster serve --exec-allow 'python3 enrich.py'   # exec jobs may run this command, and only this"
    )]
    Serve(ServeArgs),
    /// List the processes working on a node's jobs (with --server): the node's
    /// own threads and every remote `work` process.
    #[command(
        after_help = "Example:\n  booster --server https://node:7878 --token-file admin.token workers"
    )]
    Workers,
}

/// `booster retention`: the periods to store (those not given keep theirs).
#[derive(Args, Debug, Clone)]
pub struct RetentionArgs {
    /// How long a completed job stays (e.g. 7d, 12h, 30m, 90s).
    #[arg(long, value_name = "PERIOD", value_parser = parse_period, allow_hyphen_values = true)]
    pub completed: Option<u64>,
    /// How long an aborted job stays.
    #[arg(long, value_name = "PERIOD", value_parser = parse_period, allow_hyphen_values = true)]
    pub aborted: Option<u64>,
    /// How long a failed job stays.
    #[arg(long, value_name = "PERIOD", value_parser = parse_period, allow_hyphen_values = true)]
    pub failed: Option<u64>,
}

impl RetentionArgs {
    /// The `PUT /api/settings/retention` body: only the periods given, so
    /// the server keeps the others as they are when it stores them (never
    /// a copy of them read earlier, which a concurrent change would have
    /// made stale); None when none is given.
    pub fn changes(&self) -> Option<serde_json::Value> {
        let mut body = serde_json::Map::new();
        for (name, period) in [
            ("completed_ms", self.completed),
            ("aborted_ms", self.aborted),
            ("failed_ms", self.failed),
        ] {
            if let Some(ms) = period {
                body.insert(name.into(), ms.into());
            }
        }
        (!body.is_empty()).then_some(serde_json::Value::Object(body))
    }

    /// `current` with the periods given changed; None when none is given.
    pub fn applied_to(
        &self,
        current: booster_runtime::Retention,
    ) -> Option<booster_runtime::Retention> {
        if self.completed.is_none() && self.aborted.is_none() && self.failed.is_none() {
            return None;
        }
        Some(booster_runtime::Retention {
            completed_ms: self.completed.unwrap_or(current.completed_ms),
            aborted_ms: self.aborted.unwrap_or(current.aborted_ms),
            failed_ms: self.failed.unwrap_or(current.failed_ms),
        })
    }
}

/// A time as `500ms`, `90s`, `30m`, `12h` or `7d` (a bare number is
/// seconds), in milliseconds; None when it is not one (negative or
/// unparseable).
pub fn duration_ms(text: &str) -> Option<u64> {
    let units: [(&str, f64); 5] = [
        ("ms", 1.0),
        ("s", 1_000.0),
        ("m", 60_000.0),
        ("h", 3_600_000.0),
        ("d", 86_400_000.0),
    ];
    let (number, unit_ms) = units
        .iter()
        .find_map(|(suffix, ms)| text.strip_suffix(suffix).map(|n| (n, *ms)))
        .unwrap_or((text, 1_000.0));
    let n: f64 = number.trim().parse().ok()?;
    let ms = n * unit_ms;
    (n.is_finite() && n >= 0.0 && ms < u64::MAX as f64).then(|| ms.round() as u64)
}

/// A retention period: as `duration_ms`, but a bare number is refused,
/// since `--completed 7` meant as days would store 7 seconds and the next
/// sweep would remove almost every completed job, irreversibly.
fn parse_period(s: &str) -> Result<u64, String> {
    let number = s.trim();
    if number.parse::<f64>().is_ok_and(f64::is_finite) {
        return Err(format!(
            "{s:?} has no unit; write {number}d for days (or {number}h, {number}m, {number}s)"
        ));
    }
    duration_ms(s).ok_or_else(|| {
        format!("{s:?} is not a period; give a number and a unit, such as 7d, 12h, 30m or 90s")
    })
}

/// `on` or `off`.
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?}: give on or off")),
    }
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the key (refuses to overwrite).
    #[arg(long)]
    pub out: PathBuf,
}

/// What `run` and `submit` share: the job and its input.
#[derive(Args, Debug, Clone)]
pub struct JobInputArgs {
    /// The job kind: copy, exec (with --cmd) or validate-customers; other
    /// kinds are submitted by the service that registers them.
    #[arg(long)]
    pub kind: String,
    /// The input file (`-` for stdin); gzip, zstd, bzip2 and xz are recognised and decompressed.
    #[arg(long, required_unless_present = "args")]
    pub input: Option<PathBuf>,
    /// A simple job instead: its arguments as JSON, no input file (`submit` only).
    #[arg(long, value_name = "JSON", conflicts_with = "input")]
    pub args: Option<String>,
    /// Record format; by default from the file extension (.csv, .jsonl), else lines.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Records per slice.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub slice_size: Option<u64>,
    /// 1 (runs first) to 100 (last).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub priority: u8,
    /// A failing record goes to the job's errors instead of failing its slice.
    #[arg(long)]
    pub collect_errors: bool,
    /// At most one unfinished job holds KEY (default: the kind); a second submit is refused, naming the first.
    #[arg(long, value_name = "KEY", num_args = 0..=1, default_missing_value = "")]
    pub singleton: Option<String>,
    /// Run only after these jobs have completed; until then the job is `waiting`.
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub after: Vec<JobId>,
    /// When a job in --after fails, is aborted or destroyed: fail this job too,
    /// abort it, or run it anyway once all have finished.
    #[arg(long, value_name = "POLICY", default_value = "fail", requires = "after",
          value_parser = parse_dependency_failure)]
    pub on_dependency_failure: booster_runtime::DependencyFailure,
    /// Start work only between two times of day, in UTC or the zone that
    /// follows (`22:00-06:00`, `'22:00-06:00 Europe/Berlin'`; with submit,
    /// --tz gives the zone too). Outside it the job waits; at its end
    /// running slices finish and no new ones start.
    #[arg(long, value_name = "HH:MM-HH:MM [ZONE]")]
    pub window: Option<String>,
    /// For --kind exec: the shell command each slice's records are piped through.
    #[arg(long, value_name = "COMMAND")]
    pub cmd: Option<String>,
    /// For --kind exec: the command must write exactly one line per record;
    /// a slice where it writes another count fails (by default a filter or
    /// a splitter is fine, and `job show` notes the difference).
    #[arg(long)]
    pub exec_one_to_one: bool,
    /// Free text shown in `jobs` and the dashboard.
    #[arg(long)]
    pub description: Option<String>,
    /// How many of this job's slices may run at once (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_workers: Option<u32>,
    /// Largest CSV record in bytes; a longer one (or a quote never closed)
    /// is a record error on the line where it began, and parsing goes on
    /// at the next line.
    #[arg(long, value_name = "BYTES", default_value_t = crate::formats::DEFAULT_MAX_RECORD_BYTES,
          value_parser = clap::builder::ValueParser::new(clap::builder::RangedU64ValueParser::<usize>::new().range(1..)))]
    pub max_record_bytes: usize,
    /// Destroy the job by the record that completes it (`submit` only): its
    /// output goes and a tombstone stays for the retention period. Default:
    /// as its kind says (`booster kind destroy-on-complete`), else kept.
    #[arg(long)]
    pub destroy_on_complete: bool,
    /// Set by `run`, never a flag: the job is kept when it completes
    /// whatever its kind says, since `run` downloads its output after.
    #[arg(skip)]
    pub keep_on_complete: bool,
    /// Output categories beyond main and errors that the handler writes
    /// to (exec: lines `NAME<TAB>RECORD`), each downloaded to its own file.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', value_parser = parse_category_name)]
    pub categories: Vec<String>,
    #[command(flatten)]
    pub tabular: crate::formats::InputFormatArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobInputArgs,
    /// Do not compact in the background (by default the store is
    /// compacted, segment by segment, once its dead bytes pass max(1 GiB,
    /// half the store)); `booster compact` still runs one.
    #[arg(long)]
    pub no_auto_compact: bool,
    /// Where to write the output (`-` for stdout); `.gz` / `.zst` / `.bz2` / `.xz` compress.
    #[arg(long, default_value = "-")]
    pub output: PathBuf,
    /// Where to write the record errors (one JSON object per line).
    #[arg(long)]
    pub errors: Option<PathBuf>,
    /// Write every category into this directory instead (created if
    /// missing): STEM.EXT, STEM.errors.jsonl and STEM.NAME.EXT per category,
    /// STEM the input's name without extensions; one set per zip member.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["output", "errors"])]
    pub output_dir: Option<PathBuf>,
    /// The output's text encoding: `input` (the input's, BOM and all), or a label such as latin1; UTF-8 by default.
    #[arg(long, value_name = "LABEL")]
    pub output_encoding: Option<String>,
    /// Worker threads (default: every core).
    #[arg(long, value_parser = at_least_one)]
    pub workers: Option<usize>,
    /// When the job fails, write its output under the --output name anyway
    /// (by default it is kept as OUTPUT.partial).
    #[arg(long)]
    pub keep_partial: bool,
}

/// `--workers N` for commands that exist to do work: 0 is a usage error.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub job: JobInputArgs,
    /// Make a run of the job at every tick of this cron expression
    /// (5 fields, or 6 with seconds first): each run is its own job.
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// The time zone --cron and --window are read in (an IANA name such as
    /// Europe/Berlin; default UTC).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
}

impl SubmitArgs {
    /// `--tz` is the zone of `--cron` and of a `--window` that names none;
    /// refused alone, or beside a window that names another zone.
    pub fn settle_zone(&mut self) -> anyhow::Result<()> {
        let Some(tz) = &self.tz else {
            return Ok(());
        };
        if self.cron.is_none() && self.job.window.is_none() {
            return Err(crate::exit::usage(
                "--tz is the time zone of --cron or --window; give one of them, e.g. --window 22:00-06:00 --tz Europe/Berlin",
            ));
        }
        if let Some(window) = &mut self.job.window {
            match window.split_whitespace().nth(1) {
                None => *window = format!("{} {tz}", window.trim()),
                Some(zone) if zone != tz => {
                    return Err(crate::exit::usage(format!(
                        "--window names zone {zone} and --tz {tz}; give the zone once"
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl JobInputArgs {
    /// `--window SPAN [ZONE]`, parsed; a bad span or zone is a usage error
    /// that says how to write it.
    pub fn processing_window(&self) -> anyhow::Result<Option<booster_runtime::ProcessingWindow>> {
        let Some(text) = &self.window else {
            return Ok(None);
        };
        let mut words = text.split_whitespace();
        let span = words.next().unwrap_or_default();
        let zone = words.next();
        if words.next().is_some() {
            return Err(crate::exit::usage(format!(
                "--window {text:?}: give HH:MM-HH:MM and at most one zone, e.g. '22:00-06:00 Europe/Berlin'"
            )));
        }
        booster_runtime::ProcessingWindow::parse(span, zone)
            .map(Some)
            .map_err(|e| crate::exit::usage(format!("--window: {e}")))
    }

    /// The input file: present unless `--args` (clap requires one of them),
    /// and `--args` never reaches the code that reads an input.
    pub fn input_path(&self) -> &std::path::Path {
        self.input
            .as_deref()
            .expect("clap requires --input unless --args is given")
    }

    /// `--singleton [KEY]`: the key, the kind when none is given.
    pub fn singleton_key(&self) -> Option<String> {
        self.singleton.as_ref().map(|key| {
            if key.is_empty() {
                self.kind.clone()
            } else {
                key.clone()
            }
        })
    }
}

#[derive(Args, Debug)]
pub struct CompactArgs {
    /// Rewrite every live frame, however little of its segment is dead:
    /// every dead byte goes and every segment gets a fresh key.
    #[arg(long)]
    pub full: bool,
}

#[derive(Args, Debug)]
pub struct WorkArgs {
    /// Do not compact in the background (by default the store is
    /// compacted, segment by segment, once its dead bytes pass max(1 GiB,
    /// half the store)); `booster compact` still runs one.
    #[arg(long)]
    pub no_auto_compact: bool,
    /// Exit once nothing is runnable.
    #[arg(long)]
    pub until_idle: bool,
    /// Worker threads (default: every core).
    #[arg(long, value_parser = at_least_one)]
    pub workers: Option<usize>,
    /// The most simple jobs one lease carries (1: a lease per job). Default 1000,
    /// sized down to about 1 ms of the kind's run time.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub max_lease_batch: Option<usize>,
    /// Keep N of the worker threads for jobs of --reserve-priority or higher, so
    /// an urgent job starts at once whatever else runs (those threads idle
    /// otherwise). Must leave at least one worker for the rest.
    #[arg(long, value_name = "N")]
    pub reserve: Option<usize>,
    /// The lowest priority (1 = most urgent) the --reserve threads take.
    #[arg(long, value_name = "PRIORITY", default_value_t = 10, requires = "reserve",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub reserve_priority: u8,
    /// With --server: a command `exec` jobs from the node may run on this
    /// host, exactly as given (repeatable); without it this worker runs no
    /// `exec` jobs. (On the data directory `work` runs any command.)
    #[arg(long = "exec-allow", value_name = "COMMAND")]
    pub exec_allow: Vec<String>,
    #[command(flatten)]
    pub dirmon: DirmonWatchArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("destination").required(true).multiple(true).args(["output", "errors", "output_dir"])))]
pub struct DownloadArgs {
    /// The job's id (from `booster jobs`).
    pub job: JobId,
    /// Where to write the output (`-` for stdout); `.gz` / `.zst` / `.bz2` / `.xz` compress.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Which category --output writes: main (the default), errors, or one
    /// of the job's own (`booster job show` lists them).
    #[arg(long, value_name = "NAME", requires = "output")]
    pub category: Option<String>,
    /// Where to write the record errors.
    #[arg(long)]
    pub errors: Option<PathBuf>,
    /// Write every category into this directory (created if missing):
    /// STEM.EXT, STEM.errors.jsonl and STEM.NAME.EXT per category.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["output", "errors", "category"])]
    pub output_dir: Option<PathBuf>,
    /// The output's text encoding: `input` (the input's, BOM and all), or a label such as latin1; UTF-8 by default.
    #[arg(long, value_name = "LABEL")]
    pub output_encoding: Option<String>,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// One of scheduled, queued, running, paused, completed, failed, aborted, waiting.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only jobs whose description or kind contains this text.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// At most this many jobs, the newest (the list is newest first; 100 by default, at most 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000), conflicts_with = "all")]
    pub limit: Option<u64>,
    /// Only jobs with an id below this: the next (older) page, as the last line of a page says.
    #[arg(long, value_name = "ID")]
    pub before: Option<JobId>,
    /// Every job, page after page, instead of one page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Counts, progress, leases and grouped errors of a job.
    #[command(after_help = "Example:\n  booster job show 3")]
    Show {
        /// The job's id (from `booster jobs`).
        job: JobId,
        /// Also the lease epochs (the fencing tokens of running slices).
        #[arg(long)]
        verbose: bool,
    },
    /// Print a line each time the job changes (state, percent, slices, records out) until it ends.
    ///
    /// Exits 0 when it completed with no failed records, 3 when it failed, was aborted
    /// or has failed records. A job that a running `booster serve` or `booster work` is
    /// processing must be watched over the API with --server: their data directory is
    /// locked while they run.
    #[command(
        after_help = "Examples:\n  booster --server http://127.0.0.1:7878 job watch 3\n  booster --server http://127.0.0.1:7878 --json job watch 3   # one JSON object per line"
    )]
    Watch {
        /// The job's id (from `booster jobs`).
        job: JobId,
    },
    /// Change a job's priority (1 runs first, 100 last); takes effect at the next lease.
    #[command(after_help = "Example:\n  booster job priority 3 1")]
    Priority {
        /// The job's id (from `booster jobs`).
        job: JobId,
        /// 1 (runs first) to 100 (last).
        #[arg(value_parser = clap::value_parser!(i64).range(1..=100))]
        priority: i64,
    },
    /// How many of a sliced job's slices may run at once (`none`: no
    /// limit); stored, and applied from the next lease.
    #[command(
        name = "max-workers",
        after_help = "Examples:\n  booster job max-workers 3 2\n  booster job max-workers 3 none"
    )]
    MaxWorkers {
        /// The job's id (from `booster jobs`).
        job: JobId,
        /// At least 1, or `none`.
        #[arg(value_parser = parse_max_workers)]
        workers: MaxWorkers,
    },
    /// Stop handing out this job's slices (running ones finish).
    #[command(after_help = "Example:\n  booster job pause 3")]
    Pause {
        /// The job's id (from `booster jobs`).
        job: JobId,
    },
    /// Let a paused job run again.
    #[command(after_help = "Example:\n  booster job resume 3")]
    Resume {
        /// The job's id (from `booster jobs`).
        job: JobId,
    },
    /// Stop a job for good; what it produced stays until destroyed.
    #[command(after_help = "Example:\n  booster job abort 3")]
    Abort {
        /// The job's id (from `booster jobs`).
        job: JobId,
    },
    /// Run a failed job again (a sliced job re-runs its failed slices only).
    #[command(after_help = "Example:\n  booster job retry 3")]
    Retry {
        /// The job's id (from `booster jobs`).
        job: JobId,
    },
    /// Delete a finished job and its data (`booster compact` reclaims the space).
    #[command(after_help = "Example:\n  booster job destroy 3")]
    Destroy {
        /// The job's id (from `booster jobs`).
        job: JobId,
    },
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Customer records to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Worker threads (default: every core).
    #[arg(long, value_parser = at_least_one)]
    pub workers: Option<usize>,
    /// Work in this directory instead of a new temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the temporary directory (key, data, output) after the demo.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Do not compact in the background (by default the store is
    /// compacted, segment by segment, once its dead bytes pass max(1 GiB,
    /// half the store)); `booster compact` still runs one.
    #[arg(long)]
    pub no_auto_compact: bool,
    /// Address to listen on; off loopback it needs --token-file, --tls-cert and --tls-key.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// Worker threads (default: every core); 0 makes a node that does no
    /// work itself (remote workers and the API only).
    #[arg(long)]
    pub workers: Option<usize>,
    /// TLS certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// A lease whose worker sends no heartbeat for this long expires and its
    /// work runs again elsewhere (local and remote workers alike). At least
    /// 1000: a remote worker heartbeats every quarter of it, over a network.
    #[arg(long, value_name = "MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1000..))]
    pub lease_timeout_ms: u64,
    /// Worker tokens, one a line (mode 0600): they may only lease, heartbeat
    /// and commit work (`booster --server URL work`). Read again on SIGHUP.
    #[arg(long, value_name = "PATH")]
    pub worker_token_file: Option<PathBuf>,
    /// Read-only tokens, one a line (mode 0600). Read again on SIGHUP.
    #[arg(long, value_name = "PATH")]
    pub read_token_file: Option<PathBuf>,
    /// A command `exec` jobs may run, exactly as given (repeatable). Without
    /// it this server runs no commands; only admin tokens may submit them.
    #[arg(long = "exec-allow", value_name = "COMMAND")]
    pub exec_allow: Vec<String>,
    /// Connections for API requests at once; more wait to be accepted.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Dashboards' live event streams at once; more get 503.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_event_streams: u32,
    #[command(flatten)]
    pub dirmon: DirmonWatchArgs,
}

/// `--categories a,b`: each a valid category name.
fn parse_category_name(s: &str) -> Result<String, String> {
    booster_runtime::CategoryName::new(s)
        .map(|n| n.to_string())
        .map_err(|e| e.to_string())
}

/// `--on-dependency-failure fail|abort|run`.
fn parse_dependency_failure(s: &str) -> Result<booster_runtime::DependencyFailure, String> {
    s.parse()
}

/// `--state WORD`: the words are `JobState`'s own.
fn parse_state(s: &str) -> Result<JobState, String> {
    s.parse()
        .map_err(|e: booster_runtime::UnknownState| e.to_string())
}

#[derive(Subcommand, Debug, Clone)]
pub enum KindCommand {
    /// Every kind's stored and effective settings (or one kind's).
    Show {
        /// Only this kind.
        kind: Option<String>,
    },
    /// At most N jobs of KIND run at once; 0 pauses the kind; `none`: no limit.
    Limit {
        /// The kind (as in `--kind`).
        kind: String,
        /// A number of jobs, or `none`.
        #[arg(value_parser = parse_limit)]
        limit: Limit,
    },
    /// Failed simple jobs and failed slices of KIND run again up to N times, waiting MS, then twice as long each time.
    /// Options not given keep their stored value (defaults: 0 retries, 1000 ms, 0%).
    #[command(group = clap::ArgGroup::new("policy").required(true).multiple(true)
        .args(["max_retries", "backoff_ms", "jitter_percent"]))]
    Retry {
        /// The kind (as in `--kind`).
        kind: String,
        /// How many times a failed job runs again (0: never).
        #[arg(long)]
        max_retries: Option<u32>,
        /// The first wait, in milliseconds.
        #[arg(long)]
        backoff_ms: Option<u64>,
        /// Each wait is longer by a random 0 to P% of it, so jobs that
        /// failed together do not retry together.
        #[arg(long, value_name = "P",
              value_parser = clap::value_parser!(u8).range(0..=100))]
        jitter_percent: Option<u8>,
    },
    /// A lease of KIND's work that expires N times fails the work as hung.
    Lease {
        /// The kind (as in `--kind`).
        kind: String,
        /// Expiries before the work fails (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_expiries: u32,
        /// Bound one lease to this many milliseconds (at least 1) even while
        /// heartbeats arrive.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_ms: Option<u64>,
    },
    /// KIND starts work only between two times of day (a window that ends
    /// before it starts wraps midnight); `none`: at any time.
    Window {
        /// The kind (as in `--kind`).
        kind: String,
        /// HH:MM-HH:MM (e.g. 22:00-06:00), or `none`.
        window: String,
        /// The window's time zone, an IANA name (default UTC).
        #[arg(long)]
        tz: Option<String>,
    },
    /// Destroy each job of KIND by the record that completes it (`on`), or keep
    /// it for the retention period (`off`, the default); a job submitted with
    /// --destroy-on-complete is destroyed whatever its kind says.
    DestroyOnComplete {
        /// The kind (as in `--kind`).
        kind: String,
        /// on or off.
        #[arg(value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        on: bool,
    },
    /// Forget KIND's stored settings: the worker process's own apply again.
    Reset {
        /// The kind (as in `--kind`).
        kind: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DirmonCommand {
    /// Add an entry: --pattern 'DIR/GLOB' --archive DIR [--settle 5s], then the
    /// job options of `submit` (--kind, --format, --priority, ...; no --input).
    Add {
        /// --pattern 'DIR/GLOB', --archive DIR, --settle TIME (default 5s),
        /// and the job options, in any order.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true, value_name = "OPTION")]
        words: Vec<String>,
    },
    /// Every entry: pattern, archive, settle time, job options, paused.
    List,
    /// Take no more files for entry ID (a file being taken is finished).
    Pause {
        /// The entry's id (from `booster dirmon list`).
        id: u64,
    },
    /// Take files for entry ID again.
    Resume {
        /// The entry's id (from `booster dirmon list`).
        id: u64,
    },
    /// Remove entry ID (files already taken go on as their jobs).
    Remove {
        /// The entry's id (from `booster dirmon list`).
        id: u64,
    },
}

/// `--dirmon-allow` and `--dirmon-rescan`: what `work` and `serve` share.
#[derive(Args, Debug, Clone)]
pub struct DirmonWatchArgs {
    /// Run the dirmon watcher for entries whose directory and archive lie under
    /// these directories (comma-separated); without it no files are taken.
    #[arg(long, value_name = "DIR,...", value_delimiter = ',')]
    pub dirmon_allow: Vec<PathBuf>,
    /// Seconds between the watcher's safety-net rescans (file events wake it sooner).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, requires = "dirmon_allow",
          value_parser = parse_rescan)]
    pub dirmon_rescan: f64,
}

impl DirmonWatchArgs {
    /// The watcher's configuration, or None when no directory is allowed.
    pub fn config(&self) -> Option<crate::dirmon::Config> {
        (!self.dirmon_allow.is_empty()).then(|| crate::dirmon::Config {
            allow: self.dirmon_allow.clone(),
            rescan: std::time::Duration::from_secs_f64(self.dirmon_rescan),
        })
    }
}

fn parse_rescan(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() && (0.05..=86_400.0).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: give seconds between 0.05 and 86400")),
    }
}

#[derive(Subcommand, Debug)]
pub enum CronCommand {
    /// Every cron entry: expression, zone, kind, last and next tick, the unfinished run.
    List,
    /// Make no more runs of entry ID (a run already made goes on).
    Pause {
        /// The entry's id (from `booster cron list`).
        id: u64,
    },
    /// Make runs of entry ID again (the next for the latest passed tick).
    Resume {
        /// The entry's id (from `booster cron list`).
        id: u64,
    },
    /// Remove entry ID (a run already made goes on as any job).
    Remove {
        /// The entry's id (from `booster cron list`).
        id: u64,
    },
}

/// A running-job limit: a number, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit(pub Option<u32>);

/// `job max-workers`' value: a number of slices, or none.
#[derive(Clone, Copy, Debug)]
pub struct MaxWorkers(pub Option<u32>);

fn parse_max_workers(s: &str) -> Result<MaxWorkers, String> {
    if s == "none" {
        return Ok(MaxWorkers(None));
    }
    match s.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(MaxWorkers(Some(n))),
        _ => Err(format!(
            "{s:?}: give a number of slices of at least 1 (pause the job to run none), or `none` for no limit"
        )),
    }
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    s.parse::<u32>().map(|n| Limit(Some(n))).map_err(|_| {
        format!("{s:?} is not a number of jobs; give one (0 pauses the kind) or `none`")
    })
}

#[derive(Args, Debug)]
pub struct SalvageArgs {
    /// The new data directory to copy into (must not exist, or be empty).
    #[arg(long, value_name = "NEW_DIR")]
    pub into: PathBuf,
}

/// The global options each subcommand reads (the others are hidden from its
/// help; given anyway, they are ignored, or refused where they would
/// mislead, as `--server` with a command that needs the data directory).
fn globals_of(subcommand: &str) -> &'static [&'static str] {
    const LOCAL: &[&str] = &["data", "key_file", "json", "quiet"];
    const REMOTE: &[&str] = &["data", "key_file", "json", "quiet", "server", "token_file"];
    match subcommand {
        "keygen" => &["quiet"],
        // Its data directory and key are its own, under --dir.
        "demo" => &["json", "quiet"],
        "jobs" | "job" | "run" | "submit" | "download" | "kind" | "cron" | "dirmon"
        | "retention" => REMOTE,
        "serve" => &["data", "key_file", "quiet", "token_file"],
        _ => LOCAL,
    }
}

/// The command line as `booster` parses it: the derive, with each
/// subcommand's help listing only the global options that apply to it.
/// A global a subcommand does not read is given to it as a hidden copy
/// before clap propagates the globals (which skips an argument the
/// subcommand already has), so it still parses and stays global.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        let keep = globals_of(&name);
        let hidden: Vec<clap::Arg> = globals
            .iter()
            .filter(|g| !keep.contains(&g.get_id().as_str()))
            .map(|g| g.clone().hide(true))
            .collect();
        cmd = cmd.mut_subcommand(&name, |sc| with_hidden(sc, &hidden));
    }
    cmd
}

/// `cmd` and every subcommand under it, with `hidden` added.
fn with_hidden(mut cmd: clap::Command, hidden: &[clap::Arg]) -> clap::Command {
    cmd = cmd.args(hidden.iter().cloned());
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(&name, |sc| with_hidden(sc, hidden));
    }
    cmd
}

/// Parses the process's arguments with [`command`].
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn periods_parse_with_their_unit_and_print_back_in_the_largest_whole_one() {
        let day = 86_400_000;
        for (text, ms, printed) in [
            ("7d", 7 * day, "7d"),
            ("12h", 12 * 3_600_000, "12h"),
            ("30m", 1_800_000, "30m"),
            ("90s", 90_000, "90s"),
            ("1500ms", 1_500, "1500ms"),
            ("5", 5_000, "5s"),
            ("0s", 0, "0ms"),
            ("1.5h", 90 * 60_000, "90m"),
        ] {
            assert_eq!(duration_ms(text), Some(ms), "{text}");
            assert_eq!(crate::report::period(ms), printed, "{text}");
        }
        for bad in ["-1d", "7days", "", "d", "NaNs", "1e400d", "7 weeks"] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
        let err = Cli::try_parse_from(["booster", "retention", "--completed", "-1d"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("give a number and a unit, such as 7d, 12h, 30m or 90s"),
            "{err}"
        );
    }

    /// `retention --completed 7` meaning 7 days must not store 7 seconds
    /// (the next sweep would remove nearly every completed job): a period
    /// needs its unit. `--settle` keeps reading a bare number as seconds.
    #[test]
    fn a_retention_period_without_a_unit_is_refused_saying_to_write_7d() {
        let err = parse_period("7").unwrap_err();
        assert!(err.contains("write 7d"), "{err}");
        assert!(parse_period(" 7 ").is_err());
        let err = Cli::try_parse_from(["booster", "retention", "--failed", "30"]).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE, "{err}");
        assert!(err.to_string().contains("write 30d"), "{err}");
        assert_eq!(parse_period("7d"), Ok(7 * 86_400_000));
        assert_eq!(duration_ms("5"), Some(5_000), "--settle 5 is 5 seconds");
    }

    /// `retention --failed 90d` through a server sends only failed_ms:
    /// the server keeps the other periods as it has them, so a change made
    /// meanwhile by another client is not overwritten with a stale copy.
    #[test]
    fn a_retention_change_sends_only_the_periods_given() {
        let cli = Cli::try_parse_from(["booster", "retention", "--failed", "90d"]).unwrap();
        let Command::Retention(args) = cli.command else {
            panic!("parsed as another command");
        };
        let body = args.changes().unwrap();
        assert_eq!(body, serde_json::json!({"failed_ms": 90 * 86_400_000_u64}));
        let cli = Cli::try_parse_from(["booster", "retention"]).unwrap();
        let Command::Retention(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.changes(), None);
    }

    #[test]
    fn state_filter_takes_the_job_state_words() {
        let cli = Cli::try_parse_from(["booster", "jobs", "--state", "paused"]).unwrap();
        let Command::Jobs(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.state, Some(JobState::Paused));
        let err = Cli::try_parse_from(["booster", "jobs", "--state", "done"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown job state \"done\"") && err.contains("completed"),
            "{err}"
        );
    }

    fn help_of(path: &[&str]) -> String {
        let mut cmd = command();
        cmd.build();
        let mut sc = &mut cmd;
        for name in path {
            sc = sc.find_subcommand_mut(name).expect("a subcommand");
        }
        sc.render_long_help().to_string()
    }

    /// The options a subcommand's help lists (its "Options:" lines).
    fn options_of(path: &[&str]) -> Vec<String> {
        help_of(path)
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("--") || l.starts_with("-q"))
            .map(|l| {
                let flag = l.split([' ', ',']).find(|w| w.starts_with("--"));
                flag.unwrap_or(l).to_string()
            })
            .collect()
    }

    #[test]
    fn each_subcommand_lists_only_the_global_options_it_reads() {
        let has = |path: &[&str], flag: &str| options_of(path).iter().any(|o| o == flag);
        for hidden in ["--server", "--token-file", "--data", "--key-file", "--json"] {
            assert!(!has(&["keygen"], hidden), "keygen lists {hidden}");
        }
        assert!(has(&["keygen"], "--out") && has(&["keygen"], "--quiet"));
        assert!(has(&["run"], "--data") && has(&["run"], "--key-file"));
        assert!(
            has(&["run"], "--server") && has(&["run"], "--token-file"),
            "run works through a server too"
        );
        assert!(!has(&["work"], "--server") && !has(&["work"], "--token-file"));
        assert!(has(&["job", "watch"], "--server") && has(&["job", "watch"], "--token-file"));
        assert!(has(&["serve"], "--token-file") && !has(&["serve"], "--server"));
        assert!(
            !has(&["demo"], "--data") && !has(&["demo"], "--key-file"),
            "the demo keeps its data and key under --dir"
        );
        assert!(has(&["demo"], "--json") && has(&["demo"], "--dir"));
    }

    #[test]
    fn every_argument_of_every_subcommand_has_a_description() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if a.is_hide_set() || ["help", "version"].contains(&a.get_id().as_str()) {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sc in cmd.get_subcommands() {
                walk(sc, &format!("{path} {}", sc.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let mut cmd = command();
        cmd.build();
        walk(&cmd, "booster", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:?}");
    }

    #[test]
    fn the_parsed_command_line_is_the_derive_s() {
        use clap::FromArgMatches;
        let m = command()
            .try_get_matches_from(["booster", "--data", "d", "job", "priority", "3", "1"])
            .unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert_eq!(cli.data, std::path::PathBuf::from("d"));
        assert!(matches!(
            cli.command,
            Command::Job(JobCommand::Priority {
                job: 3,
                priority: 1
            })
        ));
    }
}
