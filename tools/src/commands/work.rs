//! `work`: processes whatever is queued or was interrupted in the data
//! directory, with a bar per active job, until Ctrl-C or (`--until-idle`)
//! until nothing is runnable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use booster_runtime::{JobFilter, Runtime};
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
    let runtime = ctx.open_with(opts, false).await?;
    let before: BTreeSet<u64> = finished_ids(&runtime).await?;
    let body = async {
        let watcher = match dirmon {
            Some(config) => Some(crate::dirmon::Watcher::spawn(runtime.clone(), config)?),
            None => None,
        };
        let interrupted = run_until(ctx, &runtime, args.until_idle).await;
        if let Some(watcher) = watcher {
            watcher.stop().await;
        }
        Ok((interrupted?, runtime.jobs(JobFilter::default()).await?))
    };
    let (interrupted, jobs) = with_runtime(runtime.clone(), body).await?;
    let finished: Vec<_> = jobs
        .iter()
        .filter(|j| j.state.is_finished() && !before.contains(&j.id))
        .collect();
    // A job that waits for something this process cannot give (a kind no
    // worker here runs) is named, so "nothing to do" never hides it.
    let waiting: Vec<_> = jobs
        .iter()
        .filter_map(|j| j.waiting_reason.as_ref().map(|why| (j.id, why)))
        .collect();
    let worst = finished
        .iter()
        .map(|j| super::exit_code(j))
        .max()
        .unwrap_or(exit::OK);
    if ctx.json {
        let list: Vec<_> = finished.iter().map(|j| report::job_json(j)).collect();
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

async fn finished_ids(runtime: &Runtime) -> anyhow::Result<BTreeSet<u64>> {
    Ok(runtime
        .jobs(JobFilter::default())
        .await?
        .into_iter()
        .filter(|j| j.state.is_finished())
        .map(|j| j.id)
        .collect())
}

/// true if stopped by an interrupt.
async fn run_until(ctx: &Ctx, runtime: &Runtime, until_idle: bool) -> anyhow::Result<bool> {
    let mode = Mode::pick(ctx.json, ctx.quiet, false);
    let multi = MultiProgress::new();
    let mut bars: BTreeMap<u64, Progress> = BTreeMap::new();
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
                for job in runtime.jobs(JobFilter::default()).await? {
                    let active = !job.state.is_finished();
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
