//! `jobs` and `job show|watch|priority|pause|resume|abort|retry|destroy`.

use booster_runtime::{JobFilter, JobId, JobQuery, JobStatus, Runtime};

use super::{with_runtime, Ctx};
use crate::cli::{JobCommand, JobsArgs};
use crate::exit;
use crate::report;

pub async fn list(ctx: &Ctx, args: JobsArgs) -> anyhow::Result<i32> {
    let runtime = ctx.open(None, false, true).await?;
    let filter = JobFilter {
        state: args.state,
        kind: args.kind.clone(),
        text: args.search.clone(),
    };
    let mut listing = Listing::new(ctx.json, ctx.quiet, &args);
    let mut query = JobQuery {
        filter,
        before: args.before,
        limit: listing.limit(),
    };
    let rt = runtime.clone();
    with_runtime(runtime.clone(), async move {
        loop {
            let page = rt.jobs_page(query.clone()).await?;
            match listing.show(page.jobs, page.next_before, page.total) {
                Some(before) => query.before = Some(before),
                None => break,
            }
        }
        listing.finish();
        Ok(())
    })
    .await?;
    Ok(exit::OK)
}

/// What `booster jobs` prints, here or through a server: one page newest
/// first (the last line names the command for the next page), or with
/// `--all` every page as it comes (with `--json` one JSON array, written
/// a page at a time: never the whole list in RAM, which took 18 GB and
/// 74 s for 4M jobs). `--json` and `-q`
/// list every page unless `--limit` or `--before` asks for one, so a
/// script never gets a partial list without asking; a page they were
/// asked for names the command for the older page on stderr.
pub struct Listing {
    json: bool,
    quiet: bool,
    all: bool,
    /// A line named the older page: "no jobs" would be untrue.
    cut: bool,
    /// The command line of the next page, less its `--before`.
    again: String,
    limit: usize,
    shown: usize,
    /// `--json`: the array's opening bracket is written.
    opened: bool,
}

impl Listing {
    pub fn new(json: bool, quiet: bool, args: &JobsArgs) -> Listing {
        let mut again = String::from(match (json, quiet) {
            (true, _) => "booster --json jobs",
            (_, true) => "booster -q jobs",
            _ => "booster jobs",
        });
        if let Some(s) = args.state {
            again += &format!(" --state {}", s.as_str());
        }
        if let Some(k) = &args.kind {
            again += &format!(" --kind {}", report::shell_word(k));
        }
        if let Some(t) = &args.search {
            again += &format!(" --search {}", report::shell_word(t));
        }
        if let Some(n) = args.limit {
            again += &format!(" --limit {n}");
        }
        let limit = args.limit.map_or(JobQuery::DEFAULT_LIMIT, |n| n as usize);
        let paged = args.limit.is_some() || args.before.is_some();
        let all = args.all || ((json || quiet) && !paged);
        Listing {
            json,
            quiet,
            all,
            cut: false,
            again,
            limit: if all { JobQuery::MAX_LIMIT } else { limit },
            shown: 0,
            opened: false,
        }
    }

    /// The page size to ask for.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Prints one page (jobs in id order, as the API answers); the
    /// `before` of the page to ask for next, None when done.
    pub fn show(
        &mut self,
        mut jobs: Vec<JobStatus>,
        next_before: Option<JobId>,
        total: Option<u64>,
    ) -> Option<JobId> {
        jobs.reverse();
        if self.json {
            // One element a line, the page written at once: `[` before
            // the first, `,` before each other, `]` at `finish`.
            let mut page = String::new();
            for job in &jobs {
                page.push(if self.opened { ',' } else { '[' });
                self.opened = true;
                page.push_str(&report::job_json(job).to_string());
                page.push('\n');
            }
            if let Some(last) = page.pop() {
                debug_assert_eq!(last, '\n');
                outln!("{page}");
            }
        } else if self.quiet {
            for job in &jobs {
                outln!("{}", job.id);
            }
        } else {
            if self.shown == 0 && !jobs.is_empty() {
                outln!("{}", report::table_header());
            }
            for job in &jobs {
                outln!("{}", report::table_row(job));
            }
        }
        self.shown += jobs.len();
        let next = next_before?;
        if self.all {
            return Some(next);
        }
        let of = total.map_or(String::new(), |t| format!(" of {t}"));
        // A text filter, a kind with a state (both indexes walked), or a
        // kind filter while the kind index of an older image is refiled
        // may stop at its row budget with no match.
        let shown = match self.shown {
            0 => "no match in the jobs read so far".to_string(),
            n => format!("{n}{of} jobs shown"),
        };
        let line = format!("{shown}; older: {} --before {next}", self.again);
        if self.json || self.quiet {
            // Stdout stays the list a script reads.
            eprintln!("booster: {line}");
        } else {
            outln!("{line}");
        }
        self.cut = true;
        None
    }

    pub fn finish(self) {
        if self.json {
            outln!("{}", if self.opened { "]" } else { "[]" });
        } else if self.shown == 0 && !self.quiet && !self.cut {
            outln!("no jobs");
        }
    }
}

pub async fn job(ctx: &Ctx, command: JobCommand) -> anyhow::Result<i32> {
    let runtime = ctx.open(None, false, true).await?;
    let id = match &command {
        JobCommand::Watch { job } => return super::watch::watch(ctx, runtime, *job).await,
        JobCommand::Show { job, .. }
        | JobCommand::Priority { job, .. }
        | JobCommand::MaxWorkers { job, .. }
        | JobCommand::Pause { job }
        | JobCommand::Resume { job }
        | JobCommand::Abort { job }
        | JobCommand::Retry { job }
        | JobCommand::Destroy { job } => *job,
    };
    let result = with_runtime(runtime.clone(), apply(&runtime, id, &command)).await?;
    match (result, &command) {
        (Some(job), JobCommand::Show { verbose, .. }) if !ctx.json => {
            outln!("{}", report::job_details(&job, *verbose).trim_end())
        }
        (Some(job), _) if ctx.json => report::print_json(&report::job_json(&job)),
        (Some(job), _) => ctx.say(changed_line(&command, &job)),
        (None, _) if ctx.json => {
            report::print_json(&serde_json::json!({ "id": id, "destroyed": true }))
        }
        (None, _) => ctx.say(format!(
            "job {id} destroyed; `booster compact` reclaims its space"
        )),
    }
    Ok(exit::OK)
}

/// What `job priority|max-workers|pause|...` says about the job after the
/// change, here or through a server.
pub fn changed_line(command: &JobCommand, job: &booster_runtime::JobStatus) -> String {
    match command {
        JobCommand::MaxWorkers { .. } => format!(
            "job {}: at most {} of its slices run at once",
            job.id,
            job.max_workers
                .map_or("any number".to_string(), |n| n.to_string())
        ),
        _ => format!(
            "job {}: {} at priority {}",
            job.id,
            job.state.as_str(),
            job.priority
        ),
    }
}

/// Applies the change; the job's status after it (None once destroyed).
async fn apply(
    runtime: &Runtime,
    id: JobId,
    command: &JobCommand,
) -> anyhow::Result<Option<booster_runtime::JobStatus>> {
    match command {
        JobCommand::Show { .. } | JobCommand::Watch { .. } => {}
        JobCommand::Priority { priority, .. } => runtime.set_priority(id, *priority).await?,
        JobCommand::MaxWorkers { workers, .. } => runtime.set_max_workers(id, workers.0).await?,
        JobCommand::Pause { .. } => runtime.pause(id).await?,
        JobCommand::Resume { .. } => runtime.resume(id).await?,
        JobCommand::Abort { .. } => runtime.abort(id).await?,
        JobCommand::Retry { .. } => runtime.retry(id).await?,
        JobCommand::Destroy { .. } => {
            runtime.destroy(id).await?;
            return Ok(None);
        }
    }
    Ok(Some(runtime.job(id).await?))
}

/// `booster kind ...`: a kind's stored settings (issue 14: throttles that
/// persist). Each change stores the kind's whole settings: what was
/// stored, else what applies now, with the one field changed.
pub async fn kind(ctx: &Ctx, command: crate::cli::KindCommand) -> anyhow::Result<i32> {
    use crate::cli::KindCommand;
    let runtime = ctx
        .open(None, false, matches!(command, KindCommand::Show { .. }))
        .await?;
    let views = runtime.kinds_settings();
    let Some((kind, settings)) = kind_change(command, &views, ctx.json)? else {
        return Ok(exit::OK);
    };
    let rt = runtime.clone();
    let stored = kind.clone();
    with_runtime(runtime.clone(), async move {
        rt.store_kind_settings(&stored, settings).await?;
        Ok(())
    })
    .await?;
    let view = runtime
        .kinds_settings()
        .into_iter()
        .find(|v| v.kind == kind);
    print_kind_stored(ctx.json, ctx.quiet, &kind, view.as_ref());
    Ok(exit::OK)
}

/// What `booster kind ...` asks to store, here or through a server: the
/// kind and its whole settings (what was stored, else what applies now,
/// with the one part changed; None clears them). `kind show` prints
/// `views` and asks nothing.
pub fn kind_change(
    command: crate::cli::KindCommand,
    views: &[booster_runtime::KindView],
    json: bool,
) -> anyhow::Result<Option<(String, Option<booster_runtime::KindSettings>)>> {
    use crate::cli::{KindCommand, Limit};
    use booster_runtime::{KindSettings, LeasePolicy, RetryPolicy};
    let current = |kind: &str| -> KindSettings {
        let view = views.iter().find(|v| v.kind == kind);
        view.map(|v| v.stored.unwrap_or(v.effective))
            .unwrap_or_default()
    };
    Ok(Some(match command {
        KindCommand::Show { kind } => {
            let views: Vec<_> = views
                .iter()
                .filter(|v| kind.as_ref().is_none_or(|k| &v.kind == k))
                .collect();
            if json {
                report::print_json(&serde_json::json!(views));
            } else if views.is_empty() {
                outln!(
                    "no kind has stored settings{}",
                    kind.map(|k| format!(" ({k})")).unwrap_or_default()
                );
            } else {
                for v in &views {
                    outln!("{}", report::kind_line(v));
                }
            }
            return Ok(None);
        }
        KindCommand::Limit {
            kind,
            limit: Limit(max),
        } => {
            let s = KindSettings {
                max_running: max,
                ..current(&kind)
            };
            (kind, Some(s))
        }
        KindCommand::Retry {
            kind,
            max_retries,
            backoff_ms,
            jitter_percent,
        } => {
            let stored = current(&kind);
            let retry = RetryPolicy {
                max_retries: max_retries.unwrap_or(stored.retry.max_retries),
                backoff_base_ms: backoff_ms.unwrap_or(stored.retry.backoff_base_ms),
                jitter_percent: jitter_percent.unwrap_or(stored.retry.jitter_percent),
            };
            let s = KindSettings { retry, ..stored };
            (kind, Some(s))
        }
        KindCommand::Lease {
            kind,
            max_expiries,
            timeout_ms,
        } => {
            let lease = LeasePolicy {
                max_expiries,
                timeout: timeout_ms.map(std::time::Duration::from_millis),
            };
            let s = KindSettings {
                lease: Some(lease),
                ..current(&kind)
            };
            (kind, Some(s))
        }
        KindCommand::Window { kind, window, tz } => {
            let window = match window.as_str() {
                "none" if tz.is_none() => None,
                "none" => {
                    return Err(crate::exit::usage(
                        "--tz goes with a window; `none` clears the window",
                    ))
                }
                span => Some(
                    booster_runtime::ProcessingWindow::parse(span, tz.as_deref())
                        .map_err(|e| crate::exit::usage(e.to_string()))?,
                ),
            };
            let s = KindSettings {
                window,
                ..current(&kind)
            };
            (kind, Some(s))
        }
        KindCommand::DestroyOnComplete { kind, on } => {
            let s = KindSettings {
                destroy_on_complete: on,
                ..current(&kind)
            };
            (kind, Some(s))
        }
        KindCommand::Reset { kind } => (kind, None),
    }))
}

/// `booster retention [--completed P] [--aborted P] [--failed P]`:
/// stores the periods given (the others keep theirs) and prints those
/// that apply.
pub async fn retention(ctx: &Ctx, args: crate::cli::RetentionArgs) -> anyhow::Result<i32> {
    let show_only = args.applied_to(Default::default()).is_none();
    let runtime = ctx.open(None, false, show_only).await?;
    if let Some(wanted) = args.applied_to(runtime.retention()) {
        let rt = runtime.clone();
        with_runtime(runtime.clone(), async move {
            rt.set_retention(wanted).await?;
            Ok(())
        })
        .await?;
    }
    print_retention(ctx.json, ctx.quiet, &runtime.retention());
    Ok(exit::OK)
}

/// What `booster retention` prints, here or remote.
pub fn print_retention(json: bool, quiet: bool, r: &booster_runtime::Retention) {
    if json {
        report::print_json(&serde_json::json!(r));
    } else if !quiet {
        outln!(
            "finished jobs stay: completed {}, aborted {}, failed {}",
            report::period(r.completed_ms),
            report::period(r.aborted_ms),
            report::period(r.failed_ms)
        );
    }
}

/// What `booster kind` says once a change is stored, here or remote.
pub fn print_kind_stored(
    json: bool,
    quiet: bool,
    kind: &str,
    view: Option<&booster_runtime::KindView>,
) {
    if json {
        report::print_json(&serde_json::json!(view));
    } else if quiet {
    } else if let Some(v) = view {
        outln!("{}", report::kind_line(v));
    } else {
        outln!("{kind}: no stored settings; the worker process's own apply");
    }
}
