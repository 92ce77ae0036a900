//! Start at placement (issue 17; ARCHITECTURE.md, "Start at placement"):
//! an urgent submit's `Created` record is applied when its batch is placed
//! in the log, so a free worker can start the job while the batch's
//! `fdatasync` is still under way. The submit is acknowledged only once
//! the batch is durable (G1). Until then the job is in `Book::placed`:
//! leasable, hidden from readers, and dropped should the batch fail.
//!
//! Why the log stays the truth: nothing naming the job is appended before
//! its `Created` is durable. Its commit waits for that (`until_created`,
//! before `begin_commit`), its lease does not expire and its job does not
//! expire meanwhile, and every control answers `NotFound`. And why replay
//! agrees: the `Created` of such a submit reads no other job, so applying
//! it ahead of the records placed before it changes nothing they do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_store::StoreError;
use parking_lot::MutexGuard;
use tokio::sync::oneshot;

use crate::meta::Meta;
use crate::shared::{batch_of, commit, Shared};
use crate::slice_store::SliceStore;
use crate::start_trace::{self, Phase};
use crate::state::State;
use crate::{JobId, JobShape, JobSpec, RuntimeError};

impl State {
    /// Whether a submit of `specs` may start at placement: every job
    /// simple and urgent, with nothing whose apply reads another job (a
    /// singleton key, `after`, a cron tick). The caller also checks that
    /// the batch holds no other record (a new kind's `kind_id`).
    pub(crate) fn starts_at_placement(&self, specs: &[JobSpec]) -> bool {
        specs.iter().all(|s| {
            s.priority <= self.book.urgent_priority
                && matches!(s.shape, JobShape::Simple { .. })
                && s.singleton.is_none()
                && s.after.is_empty()
                && s.cron.is_none()
        })
    }

    /// Applies `created` now that its batch is placed: its rows and
    /// entries are made, hidden (`Book::placed`) until it is durable.
    /// Nothing of the log's clock or checkpoint counters moves: that
    /// happens at the durable apply, in log order.
    pub(crate) fn apply_placed(&mut self, created: &Meta) {
        let Meta::Created {
            first_id, specs, ..
        } = created
        else {
            return;
        };
        let ids = *first_id..first_id + specs.len() as u64;
        self.book.placed.extend(ids.clone());
        if self.apply_record(created).is_err() {
            // It applied nothing; the durable apply says why.
            ids.for_each(|id| {
                self.book.placed.remove(&id);
            });
        }
    }

    /// The placed jobs from `first_id` are durable: they show, and their
    /// `created` event goes out in the state they have now.
    pub(crate) fn confirm_placed(&mut self, first_id: JobId, n: u64) {
        for id in first_id..first_id + n {
            self.book.placed.remove(&id);
            if let Some(job) = self.table.get(&id) {
                self.book.emit(&job, "created");
            }
        }
    }

    /// The batch of the placed jobs from `first_id` failed: each one's
    /// lease is revoked (a handler running it loses its commit) and its
    /// row and entry go (its accept time with the entry), as if it had
    /// never been submitted, and so does a directory monitor's file it
    /// took.
    pub(crate) fn drop_placed(&mut self, first_id: JobId, n: u64) {
        for id in first_id..first_id + n {
            if !self.book.placed.remove(&id) {
                continue;
            }
            if let Some(job) = self.table.take_resident(id) {
                self.book.revoke_leases(&job);
                self.book.count_gone(&job);
            }
            self.book.dirmons.taken.retain(|_, (_, taker)| *taker != id);
        }
    }
}

/// How long a freed worker holds for an urgent submit in flight before it
/// leases other work: a placement takes tens of microseconds, so this only
/// bounds what a stalled one (a compaction holding the append gate, a
/// submitting thread that waits for a core) costs the other work.
pub(crate) const HOLD_MAX_US: u64 = 2_000;

/// Urgent submits that start at placement and could be leased the moment
/// they are placed (`State::leasable_now`), from their ids (under the
/// state lock) until they are applied, or take another path
/// (ARCHITECTURE.md, "Where the urgent tail goes"). A worker freed
/// meanwhile holds for them (`InFlight::holds`) instead of leasing a
/// slice that would keep it busy until after the urgent job is leasable.
#[derive(Debug)]
pub struct InFlight {
    /// Jobs announced, not yet applied or given up.
    pub jobs: usize,
    /// Workers holding for them now: at most one per job.
    pub holding: usize,
    /// When the latest was announced (monotonic: a step of the runtime's
    /// clock neither ends nor stretches a hold).
    announced: Option<Instant>,
    /// The longest a worker holds: `HOLD_MAX_US`. A test sets it longer,
    /// so that a held append gate, not time, decides.
    pub max: Duration,
}

impl Default for InFlight {
    fn default() -> InFlight {
        InFlight {
            jobs: 0,
            holding: 0,
            announced: None,
            max: Duration::from_micros(HOLD_MAX_US),
        }
    }
}

impl InFlight {
    fn announce(&mut self, n: usize, now: Instant) {
        self.jobs += n;
        self.announced = Some(now);
    }

    fn settle(&mut self, n: usize) {
        self.jobs = self.jobs.saturating_sub(n);
    }

    /// Whether a freed worker should hold (lease only urgent work, else
    /// wait), and for how long at most. `since`: when this worker began
    /// holding (`now` if it has not yet). It holds while an announced job
    /// has no worker holding for it yet, and until `max` after the
    /// earlier of the latest announce and `since`: at most `max` per
    /// worker however many announces follow, and not at all for a submit
    /// stalled longer than `max`.
    pub(crate) fn holds(&self, now: Instant, since: Instant) -> Option<Duration> {
        if self.jobs <= self.holding {
            return None;
        }
        let start = self.announced?.min(since);
        let left = (start + self.max).checked_duration_since(now)?;
        (!left.is_zero()).then_some(left)
    }
}

/// An urgent submit's place in `InFlight`, from its ids until it is
/// applied at placement (`settle`), or dropped on any other way out (the
/// store was poisoned, the batch was not placed, the submit's future was
/// dropped): either way the count goes and the workers are woken.
pub(crate) struct Announced {
    shared: Arc<Shared>,
    n: usize,
}

impl Announced {
    /// Counts `n` jobs in flight; call with the state lock held (`st`).
    pub(crate) fn new(shared: &Arc<Shared>, st: &mut State, n: usize) -> Announced {
        st.book.urgent_in_flight.announce(n, Instant::now());
        Announced {
            shared: shared.clone(),
            n,
        }
    }

    fn settle(mut self, st: &mut State) {
        st.book.urgent_in_flight.settle(self.n);
        self.n = 0;
    }
}

impl Drop for Announced {
    /// Takes the state lock: never drop an `Announced` while holding it
    /// (that deadlocks). `write_placing` reads the poisoned flag into a
    /// local before its early return for that reason, and every guard in
    /// its scope drops before its parameters when a panic unwinds.
    fn drop(&mut self) {
        if self.n == 0 {
            return;
        }
        self.shared
            .state
            .lock()
            .book
            .urgent_in_flight
            .settle(self.n);
        self.shared.changed();
    }
}

/// Waits, the state lock released meanwhile, until none of `jobs` is
/// placed: its `Created` is durable (`State::confirm_placed`) or it was
/// dropped (`State::drop_placed`, its lease revoked). A commit naming a
/// placed job waits here before `begin_commit`, so nothing naming it is
/// even placed in the log before its creation is durable.
pub(crate) fn until_created(shared: &Shared, st: &mut MutexGuard<'_, State>, jobs: &[JobId]) {
    while jobs.iter().any(|id| st.book.placed.contains(id)) {
        // `Shared::changed` follows every commit callback.
        shared.work_ready.wait_for(st, Duration::from_millis(100));
    }
}

/// Writes `created` (a submit that `State::starts_at_placement`) in the
/// store's urgent lane, applies it as soon as it is placed, and returns
/// once it is durable (or failed, the placed jobs dropped).
pub(crate) async fn write_placing(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    created: Meta,
    announced: Option<Announced>,
) -> Result<Vec<Result<(), RuntimeError>>, RuntimeError> {
    let Meta::Created {
        first_id, specs, ..
    } = &created
    else {
        unreachable!("only a created record is placed ahead");
    };
    let (first_id, n) = (*first_id, specs.len() as u64);
    // Read before `announced` can drop: its `Drop` takes the state lock.
    let poisoned = shared.state.lock().book.poisoned.clone();
    if let Some(cause) = poisoned {
        return Err(RuntimeError::Store(StoreError::Poisoned { cause }));
    }
    // Set under the state lock by whichever comes second: the commit's
    // answer, or the apply at placement (which is then not made).
    let answered = Arc::new(AtomicBool::new(false));
    let seen = answered.clone();
    let (tx, rx) = oneshot::channel();
    let batch = batch_of(std::slice::from_ref(&created)).urgent();
    let placed = commit(
        shared,
        store,
        batch,
        vec![created.clone()],
        move |st, applied| {
            seen.store(true, Ordering::Relaxed);
            if applied.is_err() {
                st.drop_placed(first_id, n);
            }
            let _ = tx.send(applied);
        },
    );
    if placed {
        start_trace::stamp(Phase::Placed, first_id, None);
        let mut st = shared.state.lock();
        if !answered.load(Ordering::Relaxed) {
            st.apply_placed(&created);
        }
        if let Some(announced) = announced {
            announced.settle(&mut st);
        }
        drop(st);
        shared.changed();
        start_trace::stamp(Phase::Applied, first_id, None);
    } else {
        // It becomes leasable only once durable: no worker holds for it.
        drop(announced);
    }
    rx.await
        .map_err(|_| RuntimeError::ShuttingDown)?
        .map_err(RuntimeError::Store)
}

#[cfg(test)]
mod tests {
    use crate::meta::Meta;
    use crate::state_tests::state;
    use crate::JobSpec;

    /// A dropped placed job leaves nothing behind: not its accept time
    /// (`Book::accepted`), not a directory monitor's file it took.
    #[test]
    fn a_dropped_placed_job_leaves_no_marks() {
        let mut st = state();
        let mut spec = JobSpec::simple("k", serde_json::Value::Null).with_priority(1);
        spec.properties =
            serde_json::json!({ crate::dirmon::PROPERTY: {"file": "in/a.csv", "entry": 3} });
        let created = Meta::Created {
            first_id: 1,
            at_ms: 1,
            specs: vec![spec],
        };
        st.apply_placed(&created);
        assert!(st.book.placed.contains(&1));
        assert!(st.book.accepted.contains_key(&1));
        assert!(st.book.dirmons.taken.contains_key("in/a.csv"));
        st.drop_placed(1, 1);
        assert!(st.table.get(&1).is_none());
        assert!(!st.book.accepted.contains_key(&1));
        assert!(!st.book.dirmons.taken.contains_key("in/a.csv"));
    }
}

#[cfg(test)]
mod hold_tests {
    use std::time::{Duration, Instant};

    use super::InFlight;

    const MAX: Duration = Duration::from_millis(2);

    fn announced_at(at: Instant, jobs: usize) -> InFlight {
        let mut f = InFlight::default();
        f.announce(jobs, at);
        f
    }

    #[test]
    fn a_freed_worker_holds_until_max_after_the_announce() {
        let t0 = Instant::now();
        let f = announced_at(t0, 1);
        assert_eq!(f.max, MAX);
        let now = t0 + Duration::from_micros(500);
        assert_eq!(f.holds(now, now), Some(Duration::from_micros(1_500)));
        let now = t0 + MAX;
        assert_eq!(f.holds(now, now), None, "the bound ran out");
        assert_eq!(
            InFlight::default().holds(now, now),
            None,
            "nothing announced"
        );
    }

    #[test]
    fn a_hold_is_bounded_from_when_the_worker_began_holding_however_many_announces_follow() {
        let t0 = Instant::now();
        let mut f = announced_at(t0, 1);
        // Announces every 1 ms, each before the last settles.
        for ms in 1..=5u64 {
            let now = t0 + Duration::from_millis(ms);
            f.announce(1, now);
            let left = f.holds(now, t0);
            if ms < 2 {
                assert_eq!(left, Some(MAX - Duration::from_millis(ms)));
            } else {
                assert_eq!(left, None, "{ms} ms after the worker began holding");
            }
        }
        // A worker freed just now holds, for at most `max`.
        let now = t0 + Duration::from_millis(5);
        assert_eq!(f.holds(now, now), Some(MAX));
    }

    #[test]
    fn each_announced_job_holds_at_most_one_worker() {
        let t0 = Instant::now();
        let mut f = announced_at(t0, 2);
        f.holding = 1;
        assert!(f.holds(t0, t0).is_some(), "one job has no worker yet");
        f.holding = 2;
        assert_eq!(f.holds(t0, t0), None, "each job has its worker");
        f.settle(2);
        f.holding = 0;
        assert_eq!(f.holds(t0, t0), None, "both settled");
    }
}
