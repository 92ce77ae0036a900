//! The demo's priority check, built on what G5 promises: at the next lease
//! after the urgent job is queued, it goes before the big job's queued
//! slices. Whether that lease comes early or late depends on the machine,
//! so the demo makes it a known point instead of racing it:
//!
//! 1. [`plan`] sizes the big job's slices so that more slices than workers
//!    are stored before its upload holds for the urgent job.
//! 2. Every worker that takes a big slice waits at the [`Gate`] with its
//!    lease held, so when the urgent job is queued, every worker is busy
//!    and the big job still has queued slices.
//! 3. One permit lets exactly one worker finish its big slice and lease
//!    again; that worker runs until it waits at the gate on the next big
//!    slice, when every worker waits again and nothing moves. If priority
//!    holds, its first lease after the permit went to the urgent job, so
//!    the urgent job has a `started_at` by then.
//!
//! [`judge`] reads that from the runtime's own counts: no timing threshold,
//! and when the big job is too small for every worker to be busy with
//! slices left over, the verdict says so instead of passing or failing.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use booster_runtime::{
    HandlerError, JobContext, JobId, Output, RecordHandler, Runtime, SliceOutcome,
};

use crate::commands::Interrupt;
use crate::exit;
use crate::report::plural;

/// How often a slice waiting at the gate renews its lease (30 s by default).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The largest slice of the big job (the default demo's).
pub const MAX_SLICE_RECORDS: u64 = 1000;

/// How the big job is cut: records per slice, and how many records are
/// uploaded before the upload holds until the urgent job is queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub slice_records: u64,
    pub hold_records: u64,
}

impl Plan {
    /// Full slices stored before the hold.
    pub fn slices_before_hold(&self) -> u64 {
        self.hold_records / self.slice_records
    }
}

/// Slices small enough that the big job has about four per worker, never
/// over [`MAX_SLICE_RECORDS`]; the hold comes after a quarter of them, and
/// after at least one more than there are workers.
pub fn plan(records: u64, workers: usize) -> Plan {
    let workers = workers.max(1) as u64;
    let slice_records = (records / (4 * (workers + 1))).clamp(1, MAX_SLICE_RECORDS);
    let slices = records.div_ceil(slice_records);
    let before_hold = (slices / 4).max(workers + 1).min(slices);
    Plan {
        slice_records,
        hold_records: (before_hold * slice_records).min(records),
    }
}

/// Holds the big job's slices: a worker that takes one waits for a permit,
/// its lease held by heartbeats.
#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    job: Option<JobId>,
    permits: u64,
    open: bool,
    waiting: usize,
    /// Slices let through by a permit.
    passed: u64,
}

impl Gate {
    /// Gates `job`'s slices from now on.
    pub fn hold(&self, job: JobId) {
        self.state.lock().unwrap().job = Some(job);
    }

    /// Lets one waiting slice through.
    pub fn release_one(&self) {
        self.state.lock().unwrap().permits += 1;
        self.changed.notify_all();
    }

    /// Lets every slice through from now on.
    pub fn open(&self) {
        self.state.lock().unwrap().open = true;
        self.changed.notify_all();
    }

    /// Workers waiting at the gate now.
    pub fn waiting(&self) -> usize {
        self.state.lock().unwrap().waiting
    }

    /// (slices let through by a permit, workers waiting) at one instant.
    pub fn passed_and_waiting(&self) -> (u64, usize) {
        let st = self.state.lock().unwrap();
        (st.passed, st.waiting)
    }

    fn pass(&self, job: JobId) {
        let mut st = self.state.lock().unwrap();
        if st.job != Some(job) {
            return;
        }
        st.waiting += 1;
        while !st.open && st.permits == 0 {
            // A waiting slice is still being worked on: keep its lease.
            booster_runtime::heartbeat();
            st = self.changed.wait_timeout(st, HEARTBEAT).unwrap().0;
        }
        if !st.open {
            st.permits -= 1;
            st.passed += 1;
        }
        st.waiting -= 1;
    }
}

/// Opens the gate when dropped, so an interrupted or failed tour never
/// leaves workers waiting on it at shutdown.
pub struct OpenOnDrop(pub Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// The demo's handler: `inner`, with the gated job's slices waiting at the gate first.
pub struct Gated {
    pub inner: Arc<dyn RecordHandler>,
    pub gate: Arc<Gate>,
}

impl RecordHandler for Gated {
    fn process(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        self.inner.process(job, record, out)
    }
    fn process_to(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Output,
    ) -> Result<(), HandlerError> {
        self.inner.process_to(job, record, out)
    }
    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        self.gate.pass(job.id);
        self.inner.process_slice(job, records)
    }
    fn before_batch(&self, job: &JobContext<'_>) -> Result<(), HandlerError> {
        self.inner.before_batch(job)
    }
    fn after_batch(&self, job: &JobContext<'_>) -> Result<(), HandlerError> {
        self.inner.after_batch(job)
    }
    fn refuses(&self, job: &JobContext<'_>) -> Option<String> {
        self.inner.refuses(job)
    }
}

/// What the runtime showed around the urgent job's cut-in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Witness {
    pub workers: usize,
    /// Workers waiting at the gate on big slices when the urgent job was queued.
    pub busy: usize,
    /// The big job's queued slices then.
    pub big_queued: u64,
    /// The urgent job's first lease (the runtime's `started_at`, µs), if it
    /// had one once the released worker waited on its next big slice.
    pub urgent_started_us: Option<u64>,
}

/// How often the waits below look at the runtime and the gate.
const POLL: Duration = Duration::from_millis(5);

/// One poll interval, or Err on interrupt.
async fn poll(tick: &mut tokio::time::Interval, interrupt: &Interrupt) -> anyhow::Result<()> {
    tokio::select! {
        _ = tick.tick() => Ok(()),
        _ = interrupt.wait() => Err(anyhow::Error::new(exit::Interrupted)),
    }
}

/// Waits, with the big upload held, until `stored` of its slices are
/// stored and every worker that could take one waits at the gate (or the
/// upload ended early, `upload_ended`); returns how busy the workers and
/// the queue are.
pub async fn wait_busy(
    runtime: &Runtime,
    big: JobId,
    gate: &Gate,
    stored: u64,
    workers: usize,
    interrupt: &Interrupt,
    upload_ended: impl Fn() -> bool,
) -> anyhow::Result<Witness> {
    let mut tick = tokio::time::interval(POLL);
    loop {
        poll(&mut tick, interrupt).await?;
        let job = runtime.job(big).await?;
        let waiting = gate.waiting();
        let all_busy = waiting == workers;
        let none_left = job.slices_queued == 0 && waiting as u64 == job.slices_running;
        if (job.slices_total >= stored && (all_busy || none_left)) || upload_ended() {
            return Ok(Witness {
                workers,
                busy: waiting,
                big_queued: job.slices_queued,
                ..Default::default()
            });
        }
    }
}

/// With the urgent job queued: where the witness can show priority, lets
/// exactly one worker go on until it takes its next big slice and waits
/// again, then notes whether the urgent job had its first lease by then.
pub async fn watch_next_lease(
    runtime: &Runtime,
    urgent: JobId,
    gate: &Gate,
    witness: &mut Witness,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    if witness.busy < witness.workers || witness.big_queued == 0 {
        return Ok(());
    }
    gate.release_one();
    let mut tick = tokio::time::interval(POLL);
    while gate.passed_and_waiting() != (1, witness.workers) {
        poll(&mut tick, interrupt).await?;
    }
    witness.urgent_started_us = runtime
        .job(urgent)
        .await?
        .started_at
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as u64);
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The next lease went to the urgent job.
    Held(String),
    /// A big slice was leased before the queued urgent job.
    Broken(String),
    /// The big job was too small for the check to mean anything.
    NotShown(String),
}

impl Verdict {
    /// Some(passed), or None when the check could not be made.
    pub fn ok(&self) -> Option<bool> {
        match self {
            Verdict::Held(_) => Some(true),
            Verdict::Broken(_) => Some(false),
            Verdict::NotShown(_) => None,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Verdict::Held(d) | Verdict::Broken(d) | Verdict::NotShown(d) => d,
        }
    }
}

/// G5 over the witness: when the urgent job was queued with every worker
/// busy and big slices queued, the next lease went to the urgent job.
pub fn judge(w: &Witness) -> Verdict {
    let workers = plural(w.workers as u64, "worker");
    let queued = plural(w.big_queued, "priority-50 slice");
    if w.busy < w.workers || w.big_queued == 0 {
        return Verdict::NotShown(format!(
            "not shown: the urgent job was queued with {} of {workers} busy and {queued} waiting; \
             priority shows only with every worker busy and slices waiting (pass a larger --records)",
            w.busy
        ));
    }
    match w.urgent_started_us {
        Some(_) => Verdict::Held(format!(
            "queued with {workers} busy and {queued} waiting, the priority-1 job took the next lease"
        )),
        None => Verdict::Broken(format!(
            "queued with {workers} busy and {queued} waiting, the priority-1 job was passed over: \
             the next lease went to a priority-50 slice"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut_in(started: bool) -> Witness {
        Witness {
            workers: 2,
            busy: 2,
            big_queued: 3,
            urgent_started_us: started.then_some(1_700_000_000_123_456),
        }
    }

    #[test]
    fn urgent_job_leased_before_the_next_big_slice_is_held() {
        assert!(matches!(judge(&cut_in(true)), Verdict::Held(_)));
    }

    #[test]
    fn big_slice_leased_before_the_queued_urgent_job_is_broken() {
        assert!(matches!(judge(&cut_in(false)), Verdict::Broken(_)));
    }

    #[test]
    fn idle_worker_or_no_queued_big_slice_is_not_shown() {
        let idle = Witness {
            busy: 1,
            ..cut_in(true)
        };
        assert!(matches!(judge(&idle), Verdict::NotShown(_)));
        let drained = Witness {
            big_queued: 0,
            ..cut_in(true)
        };
        assert!(matches!(judge(&drained), Verdict::NotShown(_)));
    }

    #[test]
    fn plan_stores_more_slices_than_workers_before_the_hold() {
        for records in [50, 500, 20_000, 1_000_000] {
            for workers in [1, 2, 16] {
                let p = plan(records, workers);
                assert!(p.slice_records >= 1 && p.slice_records <= MAX_SLICE_RECORDS);
                assert!(p.hold_records <= records);
                if records >= 4 * (workers as u64 + 1) {
                    assert!(
                        p.slices_before_hold() > workers as u64,
                        "{records} on {workers}: {p:?}"
                    );
                }
            }
        }
        assert_eq!(
            plan(1_000_000, 2),
            Plan {
                slice_records: 1000,
                hold_records: 250_000
            }
        );
    }

    #[test]
    fn plan_of_a_tiny_job_cannot_keep_every_worker_busy() {
        let p = plan(3, 16);
        assert_eq!(p.slice_records, 1);
        assert!(p.slices_before_hold() <= 3);
    }

    /// The whole check against a real runtime: two workers on a gated big
    /// job at priority 50, then an urgent job above or below it.
    async fn judged_with_urgent_at(urgent_priority: u8) -> Verdict {
        use booster_runtime::{JobSpec, RuntimeOptions};
        const KIND: &str = "gated-copy";
        let dir = tempfile::tempdir().unwrap();
        let mut opts = RuntimeOptions::new(dir.path());
        opts.workers = 2;
        let runtime = Runtime::open(opts).await.unwrap();
        let gate = Arc::new(Gate::default());
        let _open = OpenOnDrop(gate.clone());
        runtime.register_sliced(
            KIND,
            Arc::new(Gated {
                inner: Arc::new(crate::kinds::Copy),
                gate: gate.clone(),
            }),
        );
        let interrupt = Interrupt::never();
        let spec = |priority| {
            JobSpec::sliced(KIND)
                .with_priority(priority)
                .with_slice_size(1)
        };
        let big = runtime.submit(spec(50)).await.unwrap();
        gate.hold(big);
        let mut big_upload = runtime.upload(big).await.unwrap();
        for _ in 0..4 {
            big_upload.push(b"big".to_vec()).await.unwrap();
        }
        let mut witness = wait_busy(&runtime, big, &gate, 4, 2, &interrupt, || false)
            .await
            .unwrap();
        let urgent = runtime.submit(spec(urgent_priority)).await.unwrap();
        let mut urgent_upload = runtime.upload(urgent).await.unwrap();
        urgent_upload.push(b"urgent".to_vec()).await.unwrap();
        urgent_upload.finish().await.unwrap();
        watch_next_lease(&runtime, urgent, &gate, &mut witness, &interrupt)
            .await
            .unwrap();
        gate.open();
        big_upload.finish().await.unwrap();
        runtime.shutdown(Duration::from_secs(10)).await.unwrap();
        judge(&witness)
    }

    #[tokio::test]
    async fn urgent_job_above_the_big_job_is_held_on_a_real_runtime() {
        let verdict = judged_with_urgent_at(1).await;
        assert!(matches!(verdict, Verdict::Held(_)), "{verdict:?}");
    }

    #[tokio::test]
    async fn urgent_job_below_the_big_job_is_broken_on_a_real_runtime() {
        let verdict = judged_with_urgent_at(100).await;
        assert!(matches!(verdict, Verdict::Broken(_)), "{verdict:?}");
    }

    #[test]
    fn gate_lets_one_slice_through_per_permit() {
        let gate = Arc::new(Gate::default());
        let job = 7;
        gate.hold(job);
        let g = gate.clone();
        let passed = std::thread::spawn(move || {
            g.pass(job);
            g.pass(job);
        });
        while gate.waiting() == 0 {
            std::thread::yield_now();
        }
        gate.release_one();
        // The second pass waits again: only one permit was given.
        while !passed.is_finished()
            && (gate.waiting() == 0 || gate.state.lock().unwrap().permits > 0)
        {
            std::thread::yield_now();
        }
        assert!(!passed.is_finished(), "both slices passed on one permit");
        gate.open();
        passed.join().unwrap();
        // Other jobs never wait.
        gate.pass(8);
    }
}
