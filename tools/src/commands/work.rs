//! `work`: processes whatever is queued or was interrupted in the data
//! directory, with a bar per active job, until Ctrl-C or (`--until-idle`)
//! until nothing is runnable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use booster_runtime::{JobFilter, JobId, JobQuery, JobState, JobStatus, Runtime, RuntimeError};
use indicatif::MultiProgress;

use super::{with_runtime, Ctx};
use crate::cli::WorkArgs;
use crate::exit;
use crate::progress::{Mode, Progress, Unit};
use crate::report;

pub async fn work(ctx: &Ctx, args: WorkArgs) -> anyhow::Result<i32> {
    if !args.exec_allow.is_empty() {
        return Err(exit::usage(
            "--exec-allow is for a remote worker (--server URL work); on the data directory \
             `work` runs the command each exec job names",
        ));
    }
    let mut opts = ctx.runtime_options(args.workers, true)?;
    opts.auto_compact = !args.no_auto_compact;
    if let Some(n) = args.max_lease_batch {
        opts.max_lease_batch = n;
    }
    if let Some(n) = args.reserve {
        if n >= opts.workers {
            return Err(exit::usage(format!(
                "--reserve {n} leaves none of the {} worker(s) for jobs below priority {}; \
                 reserve fewer, or pass more --workers",
                opts.workers, args.reserve_priority
            )));
        }
        opts.reserved_workers = n;
        opts.reserved_priority = args.reserve_priority;
    }
    let dirmon = args.dirmon.config();
    if dirmon.is_some() && args.until_idle {
        return Err(exit::usage(
            "--dirmon-allow watches for files until stopped; drop --until-idle",
        ));
    }
    // Taken before any job can start: a job that finished between the
    // open and the look would be left out of what this run reports.
    let runtime = ctx.open_unregistered(opts, false).await?;
    let before = Before::take(&runtime).await?;
    crate::kinds::register_builtin(&runtime);
    let body = async {
        let watcher = match dirmon {
            Some(config) => Some(crate::dirmon::Watcher::spawn(runtime.clone(), config)?),
            None => None,
        };
        let interrupted = run_until(ctx, &runtime, args.until_idle).await;
        if let Some(watcher) = watcher {
            watcher.stop().await;
        }
        let interrupted = interrupted?;
        Ok((
            interrupted,
            before.finished_since(&runtime).await?,
            unfinished(&runtime).await?,
        ))
    };
    let (interrupted, finished, unfinished) = with_runtime(runtime.clone(), body).await?;
    // A job that waits for something this process cannot give (a kind no
    // worker here runs) is named, so "nothing to do" never hides it.
    let waiting: Vec<_> = (unfinished.iter())
        .filter_map(|j| j.waiting_reason.as_ref().map(|why| (j.id, why)))
        .collect();
    let worst = finished
        .iter()
        .map(super::exit_code)
        .max()
        .unwrap_or(exit::OK);
    if ctx.json {
        let list: Vec<_> = finished.iter().map(report::job_json).collect();
        report::print_json(&serde_json::json!({ "interrupted": interrupted, "finished": list }));
    } else {
        for job in &finished {
            if ctx.quiet && super::exit_code(job) != exit::OK {
                // -q hides the chatter, never the news that records failed.
                eprintln!("{}", super::plan::summary(job));
            } else {
                ctx.say(super::plan::summary(job));
            }
        }
        for (id, why) in &waiting {
            ctx.say(format!("job {id} waits: {why}"));
        }
        if interrupted {
            ctx.say("stopped; `booster work` picks up the rest");
        } else if finished.is_empty() && waiting.is_empty() {
            ctx.say("nothing to do");
        }
    }
    Ok(if interrupted && args.until_idle {
        exit::INTERRUPTED
    } else {
        worst
    })
}

/// What a run reports as finished is read from what was unfinished when
/// it started and the jobs created since, never from a listing of every
/// job: a store keeps its finished jobs for their retention, millions of
/// them (listing 4M took 35 s and 6 GB before `work` did any work).
struct Before {
    /// Unfinished when the run started.
    unfinished: BTreeSet<JobId>,
    /// The newest job id then (0: none).
    newest: JobId,
}

impl Before {
    async fn take(runtime: &Runtime) -> anyhow::Result<Before> {
        let unfinished = unfinished(runtime)
            .await?
            .into_iter()
            .map(|j| j.id)
            .collect();
        let newest = runtime.jobs_page(JobQuery {
            limit: 1,
            ..JobQuery::newest(Default::default())
        });
        let newest = newest.await?.jobs.first().map_or(0, |j| j.id);
        Ok(Before { unfinished, newest })
    }

    /// The jobs that finished since `take`, ascending id: of those
    /// unfinished then, and of those created since (newest first, page by
    /// page, down to the newest of then). A job destroyed meanwhile is
    /// not one (as a listing would not show it).
    async fn finished_since(&self, runtime: &Runtime) -> anyhow::Result<Vec<JobStatus>> {
        let mut out = Vec::new();
        for &id in &self.unfinished {
            match runtime.job(id).await {
                Ok(job) if job.state.is_finished() => out.push(job),
                Ok(_) | Err(RuntimeError::NotFound(..)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut query = JobQuery {
            limit: JobQuery::MAX_LIMIT,
            ..JobQuery::newest(Default::default())
        };
        'pages: loop {
            let page = runtime.jobs_page(query.clone()).await?;
            for job in page.jobs.into_iter().rev() {
                if job.id <= self.newest {
                    break 'pages;
                }
                if job.state.is_finished() {
                    out.push(job);
                }
            }
            match page.next_before {
                Some(before) => query.before = Some(before),
                None => break,
            }
        }
        out.sort_by_key(|j| j.id);
        Ok(out)
    }
}

/// Every unfinished job, ascending id: read through the index by state,
/// so its cost follows the active jobs, not the history.
async fn unfinished(runtime: &Runtime) -> anyhow::Result<Vec<JobStatus>> {
    let mut out = Vec::new();
    for &state in JobState::ALL.iter().filter(|s| !s.is_finished()) {
        let filter = JobFilter {
            state: Some(state),
            ..JobFilter::default()
        };
        out.extend(runtime.jobs(filter).await?);
    }
    out.sort_by_key(|j| j.id);
    Ok(out)
}

/// true if stopped by an interrupt.
async fn run_until(ctx: &Ctx, runtime: &Runtime, until_idle: bool) -> anyhow::Result<bool> {
    let mode = Mode::pick(ctx.json, ctx.quiet, false);
    let multi = MultiProgress::new();
    let mut bars: BTreeMap<u64, Progress> = BTreeMap::new();
    // Jobs whose bar was finished: not looked up again.
    let mut ended: BTreeSet<JobId> = BTreeSet::new();
    let idle = async {
        if until_idle {
            runtime.wait_idle().await
        } else {
            std::future::pending().await
        }
    };
    tokio::pin!(idle);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = &mut idle => break,
            _ = ctx.interrupt.wait() => {
                clear(&bars);
                return Ok(true);
            }
            _ = tick.tick() => {
                if let Err(e) = super::check_writable(runtime) {
                    clear(&bars);
                    return Err(e);
                }
                if mode == Mode::Off {
                    continue;
                }
                // The active jobs, and those whose bar is not finished yet.
                let mut jobs = unfinished(runtime).await?;
                let listed: BTreeSet<JobId> = jobs.iter().map(|j| j.id).collect();
                let left: Vec<JobId> = (bars.keys())
                    .filter(|id| !listed.contains(id) && !ended.contains(id))
                    .copied()
                    .collect();
                for id in left {
                    match runtime.job(id).await {
                        Ok(job) => jobs.push(job),
                        // Destroyed once finished: its bar ends.
                        Err(RuntimeError::NotFound(..)) => {
                            ended.insert(id);
                            if let Some(bar) = bars.get(&id) {
                                bar.finish("destroyed");
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                for job in jobs {
                    let active = !job.state.is_finished();
                    if !active {
                        ended.insert(job.id);
                    }
                    if active && !bars.contains_key(&job.id) {
                        let label = format!("job {}", job.id);
                        bars.insert(job.id, Progress::new(mode, Some(&multi), &label, Unit::Records));
                    }
                    if let Some(bar) = bars.get(&job.id) {
                        bar.set_length(job.records_in);
                        bar.set_position(job.records_processed + job.records_failed);
                        bar.set_message(crate::progress::job_message(&job));
                        if !active {
                            bar.finish(job.state.as_str());
                        }
                    }
                }
            }
        }
    }
    clear(&bars);
    // Idle because the store stopped taking writes is not "done".
    super::check_writable(runtime)?;
    Ok(false)
}

fn clear(bars: &BTreeMap<u64, Progress>) {
    for bar in bars.values() {
        bar.clear();
    }
}
