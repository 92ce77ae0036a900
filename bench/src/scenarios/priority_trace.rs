//! `priority` with `BOOSTER_BENCH_TRACE_STARTS=1`: where each probe's start
//! went, from the runtime's stamps (`booster_runtime::start_trace`) and
//! the harness's own instants, printed to stderr (issue 17; ARCHITECTURE.md,
//! "Where the urgent tail goes"). Measurement only: the figures the run
//! reports are the same, a little slower for the stamping.

use std::time::{Duration, Instant};

use booster_runtime::start_trace::{self, Event, Phase};

use crate::stats::Latencies;

/// The switch: an environment variable, so the scenario's child process
/// sees it as the parent does.
pub fn wanted() -> bool {
    std::env::var_os("BOOSTER_BENCH_TRACE_STARTS").is_some_and(|v| v != "0")
}

/// One probe as the harness saw it.
pub struct Probe {
    pub job: u64,
    pub submitted: Instant,
    pub started: Instant,
    /// The first worker free after the submit (a slice's end), if any
    /// came before the start: the bench's `priority_wait` ends there.
    pub first_free: Option<Instant>,
    pub overhead: Duration,
}

/// The phases of one probe, in microseconds (None: no stamp for it).
#[derive(Default)]
struct Phases {
    submit_to_placed: Option<f64>,
    placed_to_applied: Option<f64>,
    submitter_run_delay: Option<f64>,
    /// The taking worker's slice end after the first free worker's.
    first_free_to_taker_free: Option<f64>,
    free_to_handed: Option<f64>,
    handed_to_asked: Option<f64>,
    asked_to_locked: Option<f64>,
    locked_to_leased: Option<f64>,
    leased_to_started: Option<f64>,
    /// After the probe was applied until the taker leased it.
    applied_to_leased: Option<f64>,
    taker_run_delay: Option<f64>,
    /// The taker waited on `work_ready` on its way to this lease.
    taker_waited: bool,
    /// Its commit thread took a commit between its slice end and the start.
    commit_thread_ran: bool,
    /// Another worker became free after the submit, before the probe was
    /// applied, and leased other work.
    missed_a_worker: bool,
}

const NAMES: [&str; 11] = [
    "submit_to_placed",
    "placed_to_applied",
    "submitter_run_delay",
    "first_free_to_taker_free",
    "free_to_handed",
    "handed_to_asked",
    "asked_to_locked",
    "locked_to_leased",
    "leased_to_started",
    "applied_to_leased",
    "taker_run_delay",
];

impl Phases {
    fn values(&self) -> [Option<f64>; 11] {
        [
            self.submit_to_placed,
            self.placed_to_applied,
            self.submitter_run_delay,
            self.first_free_to_taker_free,
            self.free_to_handed,
            self.handed_to_asked,
            self.asked_to_locked,
            self.locked_to_leased,
            self.leased_to_started,
            self.applied_to_leased,
            self.taker_run_delay,
        ]
    }
}

fn us(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e6
}

/// The last event matching `f` at or before `by`.
fn last_before(events: &[Event], by: Instant, f: impl Fn(&Event) -> bool) -> Option<&Event> {
    events.iter().rev().find(|e| e.at <= by && f(e))
}

fn phases_of(p: &Probe, events: &[Event]) -> Phases {
    let mine = |phase: Phase| events.iter().find(|e| e.phase == phase && e.job == p.job);
    let mut ph = Phases::default();
    let (submit, placed, applied) = (
        mine(Phase::SubmitCalled),
        mine(Phase::Placed),
        mine(Phase::Applied),
    );
    if let (Some(s), Some(pl)) = (submit, placed) {
        ph.submit_to_placed = Some(us(s.at, pl.at));
    }
    if let (Some(pl), Some(a)) = (placed, applied) {
        ph.placed_to_applied = Some(us(pl.at, a.at));
    }
    if let (Some(s), Some(a)) = (submit, applied) {
        ph.submitter_run_delay = Some(a.run_delay_ns.saturating_sub(s.run_delay_ns) as f64 / 1e3);
    }
    let Some(leased) = mine(Phase::Leased) else {
        return ph;
    };
    let w = leased.worker;
    let on_w = |phase: Phase| move |e: &Event| e.phase == phase && e.worker == w;
    let free = last_before(events, leased.at, on_w(Phase::SliceEnded));
    let handed = last_before(events, leased.at, on_w(Phase::Handed));
    let asked = last_before(events, leased.at, on_w(Phase::LeaseAsked));
    let locked = last_before(events, leased.at, on_w(Phase::LockHeld));
    if let Some(a) = applied {
        ph.applied_to_leased = Some(us(a.at, leased.at));
    }
    if let (Some(f), Some(first)) = (free, p.first_free) {
        ph.first_free_to_taker_free = Some(us(first, f.at));
    }
    if let (Some(f), Some(h)) = (free, handed) {
        ph.free_to_handed = (h.at >= f.at).then(|| us(f.at, h.at));
    }
    if let (Some(h), Some(a)) = (handed, asked) {
        ph.handed_to_asked = (a.at >= h.at).then(|| us(h.at, a.at));
    }
    if let Some(a) = asked {
        ph.asked_to_locked = locked.map(|l| us(a.at, l.at));
        ph.taker_waited = events.iter().any(|e| {
            e.phase == Phase::Waiting && e.worker == w && e.at >= a.at && e.at <= leased.at
        });
    }
    ph.locked_to_leased = locked.map(|l| us(l.at, leased.at));
    ph.leased_to_started = Some(us(leased.at, p.started));
    if let (Some(f), Some(s)) = (free, mine(Phase::Started)) {
        ph.taker_run_delay = Some(s.run_delay_ns.saturating_sub(f.run_delay_ns) as f64 / 1e3);
        ph.commit_thread_ran = events.iter().any(|e| {
            e.phase == Phase::CommitTaken && e.worker == w && e.at >= f.at && e.at <= s.at
        });
    }
    if let (Some(s), Some(a)) = (submit, applied) {
        ph.missed_a_worker = events.iter().any(|e| {
            e.phase == Phase::Leased
                && e.worker != w
                && e.job != p.job
                && e.at >= s.at
                && e.at < a.at
        });
    }
    ph
}

/// Prints the breakdown: each phase's p50 and p99 over all probes, then
/// every phase of the probes at or above the overhead's p99.
pub fn report(label: &str, probes: &[Probe]) {
    let events = start_trace::take();
    let all: Vec<(&Probe, Phases)> = probes.iter().map(|p| (p, phases_of(p, &events))).collect();
    eprintln!(
        "trace{label}: {} probes, {} stamps",
        probes.len(),
        events.len()
    );
    for (i, name) in NAMES.iter().enumerate() {
        let mut l = Latencies::new();
        all.iter()
            .filter_map(|(_, ph)| ph.values()[i])
            .for_each(|v| l.record_us(v as u64));
        if !l.is_empty() {
            eprintln!(
                "trace{label}: {name:<26} p50 {:>8.0} us  p99 {:>8.0} us  (n {})",
                l.percentile_us(50.0),
                l.percentile_us(99.0),
                l.len()
            );
        }
    }
    let count = |f: &dyn Fn(&Phases) -> bool| all.iter().filter(|(_, ph)| f(ph)).count();
    eprintln!(
        "trace{label}: taker waited {} / commit thread ran in the window {} / missed a free worker {}",
        count(&|ph| ph.taker_waited),
        count(&|ph| ph.commit_thread_ran),
        count(&|ph| ph.missed_a_worker)
    );
    let mut by_overhead: Vec<&(&Probe, Phases)> = all.iter().collect();
    by_overhead.sort_by_key(|(p, _)| std::cmp::Reverse(p.overhead));
    let tail = (probes.len() / 100).max(5).min(by_overhead.len());
    for (p, ph) in &by_overhead[..tail] {
        let fields: Vec<String> = NAMES
            .iter()
            .zip(ph.values())
            .filter_map(|(n, v)| Some(format!("{n}={:.0}", v?)))
            .collect();
        eprintln!(
            "trace{label}: tail probe job {} overhead {:.0} us: {} waited={} commit_ran={} missed={}",
            p.job,
            p.overhead.as_secs_f64() * 1e6,
            fields.join(" "),
            ph.taker_waited,
            ph.commit_thread_ran,
            ph.missed_a_worker
        );
    }
}
