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
        let mut report = Report::new(ctx, interrupted?);
        let left = runtime.unfinished_ids();
        for id in before.ids_since(&runtime).await? {
            // Still unfinished (a backlog the run did not reach): not read.
            if left.binary_search(&id).is_ok() {
                continue;
            }
            match runtime.job(id).await {
                Ok(job) if job.state.is_finished() => report.finished(&job),
                Ok(_) | Err(RuntimeError::NotFound(..)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // A job that waits for something this process cannot give (a kind
        // no worker here runs) is named, so "nothing to do" never hides it.
        for &id in left.iter().take(WAITING_LOOK) {
            match runtime.job(id).await {
                Ok(job) => report.waits(&job),
                Err(RuntimeError::NotFound(..)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(report.finish(left.len()))
    };
    let (interrupted, worst) = with_runtime(runtime.clone(), body).await?;
    Ok(if interrupted && args.until_idle {
        exit::INTERRUPTED
    } else {
        worst
    })
}

/// The unfinished jobs left at the end that `work` looks at for a
/// waiting reason, oldest first: a backlog of millions is counted, not
/// read.
const WAITING_LOOK: usize = 100;

/// What a run says, a job at a time as it is read (never every finished
/// job held at once: a run can finish millions): text, or with `--json`
/// one object `{"interrupted", "finished": [..]}` whose array is written
/// an element at a time.
struct Report<'a> {
    ctx: &'a Ctx,
    interrupted: bool,
    finished: usize,
    waiting: usize,
    /// The highest exit code of a finished job's.
    worst: i32,
}

impl<'a> Report<'a> {
    fn new(ctx: &'a Ctx, interrupted: bool) -> Report<'a> {
        Report {
            ctx,
            interrupted,
            finished: 0,
            waiting: 0,
            worst: exit::OK,
        }
    }

    fn finished(&mut self, job: &JobStatus) {
        let code = super::exit_code(job);
        self.worst = self.worst.max(code);
        if self.ctx.json {
            let head = match self.finished {
                0 => format!("{{\"interrupted\":{},\"finished\":[", self.interrupted),
                _ => ",".to_string(),
            };
            outln!("{head}{}", report::job_json(job));
        } else if self.ctx.quiet && code != exit::OK {
            // -q hides the chatter, never the news that records failed.
            eprintln!("{}", super::plan::summary(job));
        } else {
            self.ctx.say(super::plan::summary(job));
        }
        self.finished += 1;
    }

    fn waits(&mut self, job: &JobStatus) {
        if let Some(why) = &job.waiting_reason {
            if !self.ctx.json {
                self.ctx.say(format!("job {} waits: {why}", job.id));
            }
            self.waiting += 1;
        }
    }

    /// The closing lines, `unfinished` jobs left; (interrupted, the exit
    /// code the finished jobs call for).
    fn finish(self, unfinished: usize) -> (bool, i32) {
        if self.ctx.json {
            match self.finished {
                0 => report::print_json(&serde_json::json!({
                    "interrupted": self.interrupted, "finished": []
                })),
                _ => outln!("]}}"),
            }
        } else if self.interrupted {
            self.ctx.say("stopped; `booster work` picks up the rest");
        } else if unfinished > WAITING_LOOK {
            self.ctx.say(format!(
                "{unfinished} jobs are unfinished (the oldest {WAITING_LOOK} looked at); \
                 `booster jobs --state queued` lists them"
            ));
        } else if self.finished == 0 && self.waiting == 0 {
            self.ctx.say("nothing to do");
        }
        (self.interrupted, self.worst)
    }
}

/// What a run reports as finished is read from what was unfinished when
/// it started and the jobs created since, never from a listing of every
/// job: a store keeps its finished jobs for their retention, millions of
/// them (listing 4M took 35 s and 6 GB before `work` did any work), and
/// its unfinished ones are ids only (`Runtime::unfinished_ids`, 8 bytes
/// a job, not a status each).
struct Before {
    /// Unfinished when the run started, ascending.
    unfinished: Vec<JobId>,
    /// The newest job id then (0: none).
    newest: JobId,
}

impl Before {
    async fn take(runtime: &Runtime) -> anyhow::Result<Before> {
        let newest = runtime.jobs_page(JobQuery {
            limit: 1,
            ..JobQuery::newest(Default::default())
        });
        let newest = newest.await?.jobs.first().map_or(0, |j| j.id);
        Ok(Before {
            unfinished: runtime.unfinished_ids(),
            newest,
        })
    }

    /// The jobs that may have finished since `take`, ascending: those
    /// unfinished then, then those created since (read newest first, page
    /// by page, down to the newest of then; every one above it).
    async fn ids_since(self, runtime: &Runtime) -> anyhow::Result<Vec<JobId>> {
        let mut created = Vec::new();
        let mut query = JobQuery {
            limit: JobQuery::MAX_LIMIT,
            ..JobQuery::newest(Default::default())
        };
        'pages: loop {
            let page = runtime.jobs_page(query.clone()).await?;
            for job in page.jobs.iter().rev() {
                if job.id <= self.newest {
                    break 'pages;
                }
                created.push(job.id);
            }
            match page.next_before {
                Some(before) => query.before = Some(before),
                None => break,
            }
        }
        created.reverse();
        let mut ids = self.unfinished;
        ids.extend(created);
        Ok(ids)
    }
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
                // The running jobs, and those whose bar is not finished yet.
                let running = JobFilter {
                    state: Some(JobState::Running),
                    ..JobFilter::default()
                };
                let mut jobs = runtime.jobs(running).await?;
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
