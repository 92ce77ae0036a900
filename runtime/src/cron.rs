//! Cron entries (issue 14): a simple job made again at every tick of a
//! cron expression, each run its own job with a new id. ARCHITECTURE.md
//! ("Cron") has the records and the exactly-once argument; in short:
//!
//! - An entry is its own durable record (`Meta::Cron`), applied by
//!   `State::apply` into `Book::crons`.
//! - A run is a `created` record whose spec names its entry and tick
//!   (`JobSpec::cron`). `apply` takes it only for a tick after the entry's
//!   last one, while the entry is not paused and has no unfinished run, so
//!   a tick can never run twice, live or on replay.
//! - Which tick is due is decided live, by the timer, from the injected
//!   clock: the latest passed tick, so missed ticks give one catch-up run.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

use crate::meta::{CronChange, Meta};
use crate::shared::{write_one, Shared};
use crate::slice_store::SliceStore;
use crate::state::State;
use crate::{CronId, CronRun, CronSpec, CronView, JobId, JobShape, JobSpec, Runtime, RuntimeError};

/// A cron expression read in a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// 5 fields (minute first), or 6 with seconds first; `tz` an IANA
    /// name, None for UTC.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule, RuntimeError> {
        let fields = expr.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(RuntimeError::Invalid(format!(
                "cron expression {expr:?} has {fields} fields; give 5 (minute hour day-of-month month day-of-week, e.g. '*/5 * * * *') or 6 with seconds first"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| {
                RuntimeError::Invalid(format!(
                    "cron expression {expr:?} is not valid: {e}; e.g. '0 3 * * *' runs at 03:00 every day"
                ))
            })?;
        let tz = match tz {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                RuntimeError::Invalid(format!(
                    "unknown time zone {name:?}; give an IANA name such as Europe/Berlin or UTC"
                ))
            })?,
        };
        Ok(Schedule { cron, tz })
    }

    /// `ms` in the entry's zone, cut to the whole second: ticks are whole
    /// seconds, and croner keeps a fraction it is given.
    fn at(&self, ms: u64) -> Option<DateTime<Tz>> {
        let ms = i64::try_from(ms - ms % 1000).ok()?;
        Utc.timestamp_millis_opt(ms)
            .single()
            .map(|t| t.with_timezone(&self.tz))
    }

    /// The first tick strictly after `ms`.
    pub fn next_after(&self, ms: u64) -> Option<u64> {
        let t = self.cron.find_next_occurrence(&self.at(ms)?, false).ok()?;
        u64::try_from(t.timestamp_millis()).ok()
    }

    /// The latest tick at or before `ms`.
    pub fn latest_at_or_before(&self, ms: u64) -> Option<u64> {
        let t = self
            .cron
            .find_previous_occurrence(&self.at(ms)?, true)
            .ok()?;
        u64::try_from(t.timestamp_millis()).ok()
    }
}

/// One cron entry, as the log made it.
#[derive(Clone, Debug)]
pub struct CronEntry {
    pub id: CronId,
    pub expr: String,
    pub tz: Option<String>,
    pub schedule: Schedule,
    /// The template of every run.
    pub spec: JobSpec,
    /// When the entry was defined: the first tick is after it.
    pub defined_ms: u64,
    pub paused: bool,
    /// The tick of the latest run `apply` took.
    pub last_tick_ms: Option<u64>,
    /// The run that has not finished: the next one waits for it.
    pub run: Option<JobId>,
    /// Live: the tick of a run the timer is writing.
    pub pending: Option<u64>,
}

impl CronEntry {
    /// The first tick after the latest run's (after the definition when
    /// none ran).
    pub fn next_tick_ms(&self) -> Option<u64> {
        self.schedule
            .next_after(self.last_tick_ms.unwrap_or(self.defined_ms))
    }

    /// The tick a run is due for at `now_ms`, if one is: the latest passed
    /// tick, so ticks missed while nothing ran give one run, not a storm.
    pub fn due(&self, now_ms: u64) -> Option<u64> {
        if self.paused || self.run.is_some() || self.pending.is_some() {
            return None;
        }
        let next = self.next_tick_ms()?;
        if next > now_ms {
            return None;
        }
        Some(
            self.schedule
                .latest_at_or_before(now_ms)
                .unwrap_or(next)
                .max(next),
        )
    }

    fn view(&self) -> CronView {
        CronView {
            id: self.id,
            expr: self.expr.clone(),
            tz: self.tz.clone(),
            kind: self.spec.kind.clone(),
            description: self.spec.description.clone(),
            paused: self.paused,
            last_tick_ms: self.last_tick_ms,
            next_tick_ms: self.next_tick_ms(),
            running: self.run,
            window: self.spec.window,
        }
    }
}

/// What a cron spec must be; the same check for `add_cron` and for a
/// `define` record read from the log.
fn check_spec(spec: &JobSpec) -> Result<(), String> {
    if matches!(spec.shape, JobShape::Sliced { .. }) {
        return Err("a cron entry runs simple jobs: a sliced job's input is uploaded once, into one job, so a cron run would have none; schedule a simple job whose handler submits and uploads the sliced job".into());
    }
    if spec.cron.is_some() || spec.run_at.is_some() || spec.expires_at.is_some() {
        return Err("a cron entry's job has no run_at, expires_at or cron run of its own: the schedule decides when each run starts".into());
    }
    Ok(())
}

impl State {
    /// Applies a `Meta::Cron` record.
    pub(crate) fn apply_cron(
        &mut self,
        id: CronId,
        at_ms: u64,
        change: &CronChange,
    ) -> Result<(), RuntimeError> {
        let crons = &mut self.book.crons;
        match change {
            CronChange::Define {
                expr,
                tz,
                spec,
                paused,
                last_tick_ms,
            } => {
                let corrupt = |e: String| RuntimeError::Corrupt(format!("cron {id}: {e}"));
                check_spec(spec).map_err(corrupt)?;
                let schedule =
                    Schedule::parse(expr, tz.as_deref()).map_err(|e| corrupt(e.to_string()))?;
                if crons.contains_key(&id) || id == CronId::MAX {
                    return Err(corrupt("defined twice".into()));
                }
                crons.insert(
                    id,
                    CronEntry {
                        id,
                        expr: expr.clone(),
                        tz: tz.clone(),
                        schedule,
                        spec: (**spec).clone(),
                        defined_ms: at_ms,
                        paused: *paused,
                        last_tick_ms: *last_tick_ms,
                        run: None,
                        pending: None,
                    },
                );
                self.book.next_cron = self.book.next_cron.max(id + 1);
            }
            CronChange::Pause | CronChange::Resume => {
                let entry = crons.get_mut(&id).ok_or_else(|| no_entry(id))?;
                entry.paused = matches!(change, CronChange::Pause);
            }
            CronChange::Remove => {
                crons.remove(&id).ok_or_else(|| no_entry(id))?;
            }
        }
        Ok(())
    }

    /// Whether the log takes a run of `run.cron` for `run.tick_ms`: the
    /// entry exists, is not paused, has no unfinished run, and the tick is
    /// after its last. A run it does not take is not created (exactly one
    /// run per tick, whatever was written).
    pub(crate) fn cron_takes(&self, run: CronRun) -> bool {
        self.book.crons.get(&run.cron).is_some_and(|e| {
            !e.paused && e.run.is_none() && e.last_tick_ms.is_none_or(|l| run.tick_ms > l)
        })
    }

    /// The runs due at `now_ms`, marked pending: a process that runs work
    /// writes each (`submit_cron_runs`), and clears the mark once written.
    pub(crate) fn cron_due(&mut self, now_ms: u64) -> Vec<JobSpec> {
        let book = &mut self.book;
        if !book.live || !book.runs_workers || book.stopping || book.store_read_only {
            return Vec::new();
        }
        let mut due = Vec::new();
        for entry in book.crons.values_mut() {
            if let Some(tick_ms) = entry.due(now_ms) {
                entry.pending = Some(tick_ms);
                let mut spec = entry.spec.clone();
                spec.cron = Some(CronRun {
                    cron: entry.id,
                    tick_ms,
                });
                due.push(spec);
            }
        }
        due
    }
}

impl State {
    /// Drops every pending mark (the runs were not written).
    pub(crate) fn clear_cron_pending(&mut self) {
        for entry in self.book.crons.values_mut() {
            entry.pending = None;
        }
    }
}

fn no_entry(id: CronId) -> RuntimeError {
    RuntimeError::EntryNotFound(format!(
        "no cron entry {id}; `booster cron list` shows them"
    ))
}

/// Writes the runs the timer found due, one `created` record each, and
/// clears their pending marks whatever the write did (a run not written
/// is still due, and is tried again at the next tick).
pub(crate) async fn submit_cron_runs(
    shared: Arc<Shared>,
    store: Arc<dyn SliceStore>,
    runs: Vec<JobSpec>,
) {
    for spec in runs {
        let run = spec.cron.expect("cron_due sets the run");
        let _ = crate::runtime::submit_specs(&shared, &store, vec![spec]).await;
        let mut st = shared.state.lock();
        if let Some(entry) = st.book.crons.get_mut(&run.cron) {
            entry.pending = None;
        }
    }
    shared.changed();
}

impl Runtime {
    /// Adds a cron entry: at every tick of `spec.expr` (in `spec.tz`), a
    /// run of `spec.job`, a simple job, with a new id. A run is made only
    /// once the previous one has finished; ticks missed meanwhile, or
    /// while no process ran, give one catch-up run. Durable when it returns.
    pub async fn add_cron(&self, spec: CronSpec) -> Result<CronId, RuntimeError> {
        check_spec(&spec.job).map_err(RuntimeError::Invalid)?;
        crate::runtime::validate(&spec.job, &self.shared().limits)?;
        Schedule::parse(&spec.expr, spec.tz.as_deref())?;
        let id = {
            let mut st = self.shared().state.lock();
            let id = st.book.next_cron;
            st.book.next_cron += 1;
            id
        };
        let m = Meta::Cron {
            cron: id,
            at_ms: self.shared().clock.now_ms(),
            change: CronChange::Define {
                expr: spec.expr.trim().to_string(),
                tz: spec.tz,
                spec: Box::new(spec.job),
                paused: false,
                last_tick_ms: None,
            },
        };
        write_one(self.shared(), self.store(), m).await?;
        self.shared().changed();
        Ok(id)
    }

    /// Every cron entry, by id.
    pub fn crons(&self) -> Vec<CronView> {
        let st = self.shared().state.lock();
        st.book.crons.values().map(CronEntry::view).collect()
    }

    /// Stops making runs of entry `id` (a run already made goes on).
    pub async fn pause_cron(&self, id: CronId) -> Result<(), RuntimeError> {
        self.change_cron(id, CronChange::Pause).await
    }

    /// Makes runs of entry `id` again: the next for the latest passed tick.
    pub async fn resume_cron(&self, id: CronId) -> Result<(), RuntimeError> {
        self.change_cron(id, CronChange::Resume).await
    }

    /// Removes entry `id` (a run already made goes on as any job).
    pub async fn remove_cron(&self, id: CronId) -> Result<(), RuntimeError> {
        self.change_cron(id, CronChange::Remove).await
    }

    async fn change_cron(&self, id: CronId, change: CronChange) -> Result<(), RuntimeError> {
        if !self.shared().state.lock().book.crons.contains_key(&id) {
            return Err(no_entry(id));
        }
        let m = Meta::Cron {
            cron: id,
            at_ms: self.shared().clock.now_ms(),
            change,
        };
        write_one(self.shared(), self.store(), m).await?;
        self.shared().changed();
        Ok(())
    }
}

/// The entries a compaction snapshot writes: each whole, with its paused
/// flag and latest tick, before the job rows (which re-link their runs).
/// Each keeps its own definition time: an entry that never ran still
/// catches up on the ticks since it was defined.
pub(crate) fn snapshot_records(crons: &BTreeMap<CronId, CronEntry>) -> Vec<Meta> {
    crons
        .values()
        .map(|e| Meta::Cron {
            cron: e.id,
            at_ms: e.defined_ms,
            change: CronChange::Define {
                expr: e.expr.clone(),
                tz: e.tz.clone(),
                spec: Box::new(e.spec.clone()),
                paused: e.paused,
                last_tick_ms: e.last_tick_ms,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_MS: u64 = 60_000;

    #[test]
    fn five_fields_tick_every_minute_and_six_every_second() {
        let every_minute = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(every_minute.next_after(0), Some(MINUTE_MS));
        assert_eq!(every_minute.next_after(MINUTE_MS), Some(2 * MINUTE_MS));
        let every_second = Schedule::parse("* * * * * *", None).unwrap();
        assert_eq!(every_second.next_after(1_500), Some(2_000));
        assert_eq!(every_second.latest_at_or_before(2_999), Some(2_000));
    }

    #[test]
    fn a_time_zone_moves_the_ticks() {
        // 03:00 in Berlin is 02:00 UTC in winter (1970-01-01 was winter).
        let berlin = Schedule::parse("0 3 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(berlin.next_after(0), Some(2 * 60 * MINUTE_MS));
        let utc = Schedule::parse("0 3 * * *", None).unwrap();
        assert_eq!(utc.next_after(0), Some(3 * 60 * MINUTE_MS));
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_the_way_out() {
        for (expr, tz, says) in [
            ("* * *", None, "give 5"),
            ("61 * * * *", None, "not valid"),
            ("* * * * *", Some("Mars/Olympus"), "IANA"),
        ] {
            let e = Schedule::parse(expr, tz).unwrap_err().to_string();
            assert!(e.contains(says), "{expr:?}: {e}");
        }
    }

    fn define(id: CronId) -> Meta {
        Meta::Cron {
            cron: id,
            at_ms: 0,
            change: CronChange::Define {
                expr: "* * * * *".into(),
                tz: None,
                spec: Box::new(JobSpec::simple("k", serde_json::Value::Null)),
                paused: false,
                last_tick_ms: None,
            },
        }
    }

    fn run(first_id: JobId, tick_ms: u64) -> Meta {
        let mut spec = JobSpec::simple("k", serde_json::Value::Null);
        spec.cron = Some(CronRun { cron: 1, tick_ms });
        Meta::Created {
            first_id,
            at_ms: tick_ms,
            specs: vec![spec],
        }
    }

    fn done(job: JobId) -> Meta {
        Meta::SimpleDone {
            at_ms: 1,
            at_us: None,
            outcomes: vec![crate::meta::SimpleOutcome {
                job,
                started_us: 1,
                result: Ok(None),
                retry_at_ms: None,
            }],
        }
    }

    /// Runs of one tick written twice (a duplicate), of an earlier tick,
    /// and while a run is unfinished: the log creates none of them, live
    /// and on replay alike, and their ids are never handed out again.
    #[test]
    fn apply_takes_one_run_per_tick_live_and_on_replay() {
        let log = [
            define(1),
            run(1, MINUTE_MS),
            run(2, MINUTE_MS),
            run(3, 2 * MINUTE_MS),
            done(1),
            run(4, MINUTE_MS),
            run(5, 2 * MINUTE_MS),
            run(6, 2 * MINUTE_MS),
        ];
        let mut live = crate::state_tests::state();
        for m in &log {
            let _ = live.apply(m);
        }
        let mut replayed = State::new(crate::state::Book::new(4, 1000, 100));
        for m in &log {
            let _ = replayed.apply(&crate::meta::decode(&crate::meta::encode(m)).unwrap());
        }
        for st in [&live, &replayed] {
            let made: Vec<(JobId, u64)> = st
                .table
                .values()
                .map(|j| (j.id, j.cron.unwrap().tick_ms))
                .collect();
            assert_eq!(made, [(1, MINUTE_MS), (5, 2 * MINUTE_MS)]);
            let entry = &st.book.crons[&1];
            assert_eq!(entry.last_tick_ms, Some(2 * MINUTE_MS));
            assert_eq!(entry.run, Some(5));
            assert_eq!(st.book.next_id, 7);
        }
    }

    /// A compaction snapshot of an entry that never ran, replayed, still
    /// owes the ticks since the entry was defined (not since compaction).
    #[test]
    fn a_snapshot_keeps_an_entrys_definition_time_and_last_tick() {
        let mut live = crate::state_tests::state();
        live.apply(&define(1)).unwrap();
        live.apply(&Meta::Opened {
            generation: 1,
            at_ms: 10 * MINUTE_MS,
        })
        .unwrap();
        let mut replayed = State::new(crate::state::Book::new(4, 1000, 100));
        for m in snapshot_records(&live.book.crons) {
            replayed.apply(&m).unwrap();
        }
        let entry = &replayed.book.crons[&1];
        assert_eq!(entry.due(10 * MINUTE_MS + 1), Some(10 * MINUTE_MS));
        live.apply(&run(1, 10 * MINUTE_MS)).unwrap();
        let mut replayed = State::new(crate::state::Book::new(4, 1000, 100));
        for m in snapshot_records(&live.book.crons) {
            replayed.apply(&m).unwrap();
        }
        assert_eq!(replayed.book.crons[&1].last_tick_ms, Some(10 * MINUTE_MS));
    }

    #[test]
    fn missed_ticks_are_due_once_as_the_latest() {
        let mut entry = CronEntry {
            id: 1,
            expr: "* * * * *".into(),
            tz: None,
            schedule: Schedule::parse("* * * * *", None).unwrap(),
            spec: JobSpec::simple("k", serde_json::Value::Null),
            defined_ms: 0,
            paused: false,
            last_tick_ms: None,
            run: None,
            pending: None,
        };
        assert_eq!(entry.due(MINUTE_MS - 1), None);
        assert_eq!(entry.due(10 * MINUTE_MS + 5), Some(10 * MINUTE_MS));
        entry.last_tick_ms = Some(10 * MINUTE_MS);
        assert_eq!(entry.due(10 * MINUTE_MS + 5), None);
        entry.paused = true;
        assert_eq!(entry.due(20 * MINUTE_MS), None);
    }
}
