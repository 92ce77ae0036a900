//! The subcommands. `dispatch` runs one; each opens the runtime over the
//! data directory, does its work and shuts the runtime down (flushing the
//! store and releasing its lock) even when the work failed.

mod batch;
mod cron;
mod dirmon;
mod download;
mod jobs;
mod keygen;
mod plan;
pub(crate) mod run;
mod store;
mod watch;
mod work;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use booster_runtime::{MasterKey, Runtime, RuntimeOptions};

use crate::cli::{Cli, Command};
use crate::exit;
use crate::kinds;

pub use cron::{cron_spec, print_added_cron, print_crons, print_submitted_job, simple_spec};
pub use dirmon::{print_added_dirmon, print_dirmons};
pub use download::{
    check_category_arg, check_errors_named_once, download_destinations, download_job, missing,
    prepare_output_dir, write_job, Destinations, DownloadCounts, RecordFeed, SeparatedFeed,
};
pub use jobs::{changed_line, kind_change, print_kind_stored, print_retention, Listing};
pub use keygen::write_key;
pub use plan::{
    exit_code, is_incomplete, per_member, plan_run, print_jobs_json, report_done, run_destinations,
    summary,
};
pub use run::{create_job, job_spec, read_options, submit_file, upload_input, wait_with_progress};

/// How long running slices get to finish after Ctrl-C before their leases
/// are handed back.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What every command needs from the global options.
#[derive(Clone)]
pub struct Ctx {
    pub data_dir: PathBuf,
    pub key_file: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
    pub interrupt: Interrupt,
}

impl Ctx {
    pub fn from_cli(cli: &Cli, interrupt: Interrupt) -> Ctx {
        Ctx {
            data_dir: cli.data.clone(),
            key_file: cli.key_file.clone(),
            json: cli.json,
            quiet: cli.quiet,
            interrupt,
        }
    }

    pub fn master_key(&self) -> anyhow::Result<Option<MasterKey>> {
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        if !path.exists() {
            anyhow::bail!(
                "key file {} does not exist; create one with `booster keygen --out {}`",
                path.display(),
                path.display()
            );
        }
        crate::secret_file::check_private(path, "key file")?;
        MasterKey::from_file(path)
            .map(Some)
            .with_context(|| format!("reading key file {}", path.display()))
    }

    pub fn runtime_options(
        &self,
        workers: Option<usize>,
        start_workers: bool,
    ) -> anyhow::Result<RuntimeOptions> {
        let mut opts = RuntimeOptions::new(&self.data_dir);
        opts.start_workers = start_workers;
        // Checkpoints by the timer in every process that runs work (`run`,
        // `work`, `serve`); a read-only open (`jobs`, `verify`, ...) writes
        // nothing.
        opts.auto_checkpoint = start_workers;
        match workers {
            // Only `serve` accepts 0 (clap refuses it elsewhere): a node
            // that serves the API and remote workers but runs no worker
            // thread itself. It still leases (to remote workers), so it
            // opens like any process that runs work.
            Some(0) => opts.workers = 0,
            Some(workers) => opts.workers = workers,
            None => {}
        }
        opts.master_key = self.master_key()?;
        if let Some(ms) = fixed_clock_ms()? {
            opts.clock = std::sync::Arc::new(booster_runtime::ManualClock::at_ms(ms));
        }
        Ok(opts)
    }

    /// Opens the runtime with the built-in kinds registered. Commands that
    /// only look (`must_exist`) refuse to create an empty data directory.
    pub async fn open(
        &self,
        workers: Option<usize>,
        start_workers: bool,
        must_exist: bool,
    ) -> anyhow::Result<Runtime> {
        let opts = self.runtime_options(workers, start_workers)?;
        self.open_with(opts, must_exist).await
    }

    /// `open` with options the caller tuned (`booster work`'s scheduling flags).
    pub async fn open_with(
        &self,
        opts: booster_runtime::RuntimeOptions,
        must_exist: bool,
    ) -> anyhow::Result<Runtime> {
        let runtime = self.open_unregistered(opts, must_exist).await?;
        kinds::register_builtin(&runtime);
        Ok(runtime)
    }

    /// `open_with` before the built-in kinds are registered: no job of
    /// theirs can start until `kinds::register_builtin` (what `work` reads
    /// as "unfinished when the run started" is taken in between).
    pub async fn open_unregistered(
        &self,
        opts: booster_runtime::RuntimeOptions,
        must_exist: bool,
    ) -> anyhow::Result<Runtime> {
        if must_exist && !self.data_dir.exists() {
            anyhow::bail!(
                "no data directory at {}; pass --data DIR (or set BOOSTER_DATA), or submit a job first",
                self.data_dir.display()
            );
        }
        let runtime = match Runtime::open(opts).await {
            Ok(runtime) => runtime,
            Err(e) => return Err(self.explain_open_error(e)),
        };
        report_recovery(&self.data_dir, &runtime);
        Ok(runtime)
    }

    /// A store locked by a `booster serve` names the way in: `--server URL`.
    fn explain_open_error(&self, e: booster_runtime::RuntimeError) -> anyhow::Error {
        use booster_runtime::RuntimeError;
        use booster_store::StoreError;
        let dir = self.data_dir.display();
        if let RuntimeError::Store(StoreError::Locked { pid, .. }) = &e {
            if let Some(url) = crate::serve::ServeNote::url_of(&self.data_dir, pid) {
                return anyhow::anyhow!(
                    "opening {dir}: {e}; that process is `booster serve`: use it with \
                     `booster --server {url} jobs` (jobs, job, run, submit and download work \
                     through it)"
                );
            }
        }
        anyhow::Error::new(e).context(format!("opening {dir}"))
    }

    /// Human output: stdout unless `-q` or `--json`.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.json {
            outln!("{}", text.as_ref());
        }
    }
}

/// What recovery cut or opened without, on stderr, for every command and
/// `serve` alike (G7: corruption is found, never hidden).
pub fn report_recovery(data_dir: &Path, runtime: &Runtime) {
    for (segment, offset, bytes) in &runtime.recovery_report().truncated {
        eprintln!(
            "booster: recovery cut a torn tail in {}: segment {segment} at offset {offset}, {bytes} bytes of a write that was never acknowledged",
            data_dir.display()
        );
    }
    for d in &runtime.recovery_report().damaged {
        let file = d.path.file_name().map_or_else(
            || d.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let lost = if d.identified {
            format!(
                "{} slice(s) lost{}",
                d.slices.len(),
                if d.meta_lost {
                    ", meta records lost"
                } else {
                    ""
                }
            )
        } else {
            // An unknown loss: the slices named are those the job table
            // says the store held and it no longer does.
            format!(
                "what it held cannot be named (any slice or meta record may be among it; {} slice(s) of listed jobs are missing)",
                d.slices.len()
            )
        };
        eprintln!(
            "booster: DAMAGED: {} opened degraded, leaving out segment {} ({file}) offsets {}..{}: {}; {lost}; `booster verify` names it, `booster salvage` copies the rest",
            data_dir.display(),
            d.segment_id,
            d.offset,
            d.end,
            d.what,
        );
    }
}

/// An error once the store stopped taking writes (a full disk, a failed
/// fsync): the work cannot go on in this process, and waiting would hang.
pub fn check_writable(runtime: &Runtime) -> anyhow::Result<()> {
    match runtime.poisoned() {
        None => Ok(()),
        Some(cause) => anyhow::bail!(
            "the store stopped taking writes: {cause}; `booster work` picks up the rest once \
             that is fixed"
        ),
    }
}

/// Runs `body` on an open runtime, then shuts the runtime down whatever
/// `body` returned, so the store is flushed and its lock released.
pub async fn with_runtime<T, F>(runtime: Runtime, body: F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let result = body.await;
    let closed = runtime.shutdown(SHUTDOWN_GRACE).await;
    let value = result?;
    closed.context("shutting the runtime down")?;
    Ok(value)
}

/// Ctrl-C and SIGTERM. The first asks the command to stop cleanly; a second
/// exits at once (nothing acknowledged is lost either way).
#[derive(Clone)]
pub struct Interrupt {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Interrupt {
    /// Installs the signal handlers; call inside the tokio runtime. They are
    /// registered before this returns, so a signal that arrives while the
    /// command is still opening the store is not lost (nor fatal).
    pub fn install() -> Interrupt {
        use tokio::signal::unix::{signal, SignalKind};
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut int = signal(SignalKind::interrupt()).ok();
        let mut term = signal(SignalKind::terminate()).ok();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = recv(&mut int) => {}
                    _ = recv(&mut term) => {}
                }
                if *tx.borrow() {
                    eprintln!("booster: second interrupt, exiting now");
                    std::process::exit(exit::INTERRUPTED);
                }
                eprintln!("booster: stopping (finishing or handing back running slices); interrupt again to exit now");
                let _ = tx.send(true);
            }
        });
        Interrupt { rx }
    }

    /// An interrupt that never fires (for embedding and tests).
    pub fn never() -> Interrupt {
        let (tx, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(tx);
        Interrupt { rx }
    }

    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once an interrupt arrived.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|set| *set).await;
    }
}

/// The next signal of `stream`; never, when it could not be registered.
async fn recv(stream: &mut Option<tokio::signal::unix::Signal>) {
    match stream.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

pub async fn dispatch(mut cli: Cli) -> anyhow::Result<i32> {
    match &mut cli.command {
        Command::Submit(args) => args.settle_zone()?,
        Command::Run(args) if args.job.window.is_some() => {
            return Err(crate::exit::usage(
                "--window is for submit: run processes the job now; submit it with --window and let `booster work` run it inside the window",
            ))
        }
        Command::Run(args) if args.job.destroy_on_complete => {
            return Err(crate::exit::usage(
                "--destroy-on-complete is for submit: run writes the job's output once it completes, which a destroy would take; submit it with --destroy-on-complete instead",
            ))
        }
        _ => {}
    }
    let ctx = Ctx::from_cli(&cli, Interrupt::install());
    if cli.server.is_some() {
        return match &cli.command {
            Command::Jobs(_)
            | Command::Job(_)
            | Command::Run(_)
            | Command::Submit(_)
            | Command::Kind(_)
            | Command::Retention(_)
            | Command::Cron(_)
            | Command::Dirmon(_)
            | Command::Download(_)
            | Command::Workers => crate::remote::run(&cli, &ctx.interrupt).await,
            Command::Work(args) => crate::fleet::work::run_cli(&cli, args, &ctx.interrupt).await,
            _ => anyhow::bail!(
                "--server works with jobs, job, run, submit, kind, retention, cron, dirmon, download, workers and work; run this command where the data directory is"
            ),
        };
    }
    match cli.command {
        Command::Keygen(args) => keygen::keygen(&ctx, &args.out),
        Command::Run(args) => run::run(&ctx, args).await,
        Command::Submit(args) => run::submit(&ctx, args).await,
        Command::Work(args) => work::work(&ctx, args).await,
        Command::Download(args) => download::download(&ctx, args).await,
        Command::Jobs(args) => jobs::list(&ctx, args).await,
        Command::Job(command) => jobs::job(&ctx, command).await,
        Command::Inspect => store::inspect(&ctx).await,
        Command::Verify => store::verify(&ctx).await,
        Command::Incidents => store::incidents(&ctx).await,
        Command::Kind(command) => jobs::kind(&ctx, command).await,
        Command::Retention(args) => jobs::retention(&ctx, args).await,
        Command::Cron(command) => cron::cron(&ctx, command).await,
        Command::Dirmon(command) => dirmon::dirmon(&ctx, command).await,
        Command::Batch { words } => batch::batch(&ctx, &words).await,
        Command::Salvage(args) => store::salvage(&ctx, &args.into).await,
        Command::Compact(args) => store::compact(&ctx, args.full).await,
        Command::Demo(args) => crate::demo::demo(&ctx, args).await,
        Command::Serve(args) => serve(&ctx, &cli.token_file, args).await,
        Command::Workers => Err(crate::exit::usage(
            "workers lists the processes working on a `booster serve` node: pass --server URL",
        )),
    }
}

async fn serve(
    ctx: &Ctx,
    token_file: &Option<PathBuf>,
    args: crate::cli::ServeArgs,
) -> anyhow::Result<i32> {
    let mut opts = ctx.runtime_options(args.workers, true)?;
    opts.auto_compact = !args.no_auto_compact;
    opts.lease_timeout = std::time::Duration::from_millis(args.lease_timeout_ms);
    let serve_opts = crate::serve::ServeOptions {
        listen: args.listen,
        token_file: token_file.clone(),
        worker_token_file: args.worker_token_file,
        read_token_file: args.read_token_file,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        exec_allow: args.exec_allow,
        dirmon: args.dirmon.config(),
        limits: crate::serve::ConnectionLimits {
            max_connections: args.max_connections as usize,
            max_event_streams: args.max_event_streams as usize,
            ..Default::default()
        },
    };
    crate::serve::run(opts, serve_opts, ctx.interrupt.wait()).await?;
    Ok(exit::OK)
}

/// A file's name for messages and job descriptions.
pub fn display_name(path: &Path) -> String {
    if crate::formats::is_std_stream(path) {
        return "stdin".into();
    }
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `BOOSTER_CLOCK_MS`: for tests, the runtime's clock stands at this time
/// (milliseconds since the epoch) instead of the system's, so a test of
/// retention moves a day by starting the next process a day later, never
/// by sleeping. Only a debug build (the one `cargo test` runs) reads it: a
/// stopped clock never expires a lease (G4), never fires a cron and never
/// makes a checkpoint due, so a release build that finds it set (left in
/// a shell or a unit file) refuses to start rather than run that way.
fn fixed_clock_ms() -> anyhow::Result<Option<u64>> {
    fixed_clock_from(
        std::env::var("BOOSTER_CLOCK_MS").ok(),
        cfg!(debug_assertions),
    )
}

/// `fixed_clock_ms` for the variable's `value`, in a build that
/// `honours` it or not.
fn fixed_clock_from(value: Option<String>, honours: bool) -> anyhow::Result<Option<u64>> {
    let Some(text) = value else {
        return Ok(None);
    };
    if !honours {
        return Err(crate::exit::usage(format!(
            "BOOSTER_CLOCK_MS is set ({text:?}), but only test builds read it: it would stop \
             this process's clock (leases never expire, cron never fires, no checkpoint falls \
             due); unset it"
        )));
    }
    let ms = text.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "BOOSTER_CLOCK_MS is {text:?}: give milliseconds since the epoch, or unset it to use the system clock"
        )
    })?;
    eprintln!(
        "warning: BOOSTER_CLOCK_MS stands the runtime's clock still at {ms} ms (a test setting: \
         leases never expire, cron never fires)"
    );
    Ok(Some(ms))
}

#[cfg(test)]
mod tests {
    use super::fixed_clock_from;

    /// A release build (`honours` false) that finds `BOOSTER_CLOCK_MS` set
    /// refuses to start, saying to unset it; a test build reads it.
    #[test]
    fn a_fixed_clock_is_refused_by_a_build_that_does_not_honour_it() {
        let err = fixed_clock_from(Some("1000".into()), false).unwrap_err();
        assert!(err.to_string().contains("unset it"), "{err}");
        assert_eq!(crate::exit::code_for(&err), crate::exit::USAGE);
        assert_eq!(fixed_clock_from(None, false).unwrap(), None);
        assert_eq!(
            fixed_clock_from(Some("1000".into()), true).unwrap(),
            Some(1000)
        );
        assert!(fixed_clock_from(Some("soon".into()), true).is_err());
    }
}
