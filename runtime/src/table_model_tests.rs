//! A model test of the job table and the ready queue (issue 12): random
//! submits, leases, commits, controls, priority changes, checkpoints and
//! reopens are applied to
//! `State` and to a reference `BTreeMap<JobId, RefRow>` written from the
//! contract alone (the transition table, G5's lease order), and the two
//! must agree after every step. It guards the split of `State` into the
//! scheduler and the table (step 2's last increment): after every step the
//! scheduler holds an entry for exactly the unfinished rows, with their
//! state and priority, filed in the ready queue where the row says; and
//! at the end the log replays to the same table. Since step 3.2 the state
//! runs over a store (`logged_tests.rs`): after a checkpoint the overlay
//! holds only the unfinished rows, and the table read through pages and
//! overlay still equals the reference; a reopen replays from the newest
//! checkpoint. Since step 6 it runs on a fake clock that moves by minutes,
//! with stored retention periods: destroys leave tombstones,
//! `destroy_on_complete` (the job's choice over its kind's) destroys a job
//! as it completes, and each checkpoint's sweep removes exactly the rows
//! the reference says are due (finished, with the same finish, at the
//! checkpoint before, and past their period); `NotFound` tells destroyed,
//! removed and never-existed ids apart as the reference does. A unit
//! test, because it
//! drives `State` directly (deterministic, no worker threads);
//! `BOOSTER_SEED` replays a run.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use crate::dispatch::TaskWork;
use crate::logged_tests::{all_rows, Logged};
use crate::meta::{Control, Meta, SimpleOutcome};
use crate::state::{Book, HandlerShape, KindConf, LeaseWork, State};
use crate::{JobId, JobSpec, JobState, KindSettings, Missing, Retention, RuntimeError};

const WORKERS: usize = 4;
const MINUTE_MS: u64 = 60_000;

/// The model's stored periods: short, so sweeps happen within a run.
const RETENTION: Retention = Retention {
    completed_ms: 2 * MINUTE_MS,
    aborted_ms: MINUTE_MS,
    failed_ms: 3 * MINUTE_MS,
};

#[derive(Clone, Debug, PartialEq)]
struct RefRow {
    state: JobState,
    priority: u8,
    attempts: u32,
}

/// The reference's side of a row that is not compared with the table's
/// job: when it finished and when it was destroyed (a tombstone), and
/// its own `destroy_on_complete`.
#[derive(Clone, Debug, Default)]
struct RefLife {
    /// Its kind (`KINDS`).
    kind: &'static str,
    finished_ms: Option<u64>,
    destroyed_ms: Option<u64>,
    destroy_on_complete: Option<bool>,
}

impl RefLife {
    /// Where the contract files the row for the sweep: its final state
    /// (an unfinished one destroyed counts as aborted) and the minute of
    /// its destroy, else of its finish.
    fn filing(&self, state: JobState) -> Option<(JobState, u64)> {
        let at = self.destroyed_ms.or(self.finished_ms)?;
        let as_state = match state {
            JobState::Completed | JobState::Failed => state,
            _ => JobState::Aborted,
        };
        Some((as_state, at / MINUTE_MS))
    }
}

/// The model's kinds: `k` (whose stored `destroy_on_complete` the model
/// changes), a common one and a rare one, for the kind index.
const KINDS: [&str; 3] = ["k", "k2", "rare"];

/// A submitted job's kind, by a random pick of 0..10: mostly `k`.
fn kind_of_pick(pick: u8) -> &'static str {
    match pick {
        0 => KINDS[2],
        1..=3 => KINDS[1],
        _ => KINDS[0],
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Jobs with these priorities, `destroy_on_complete` choices and
    /// kinds (`kind_of_pick`).
    Submit(Vec<(u8, Option<bool>, u8)>),
    Lease(usize),
    Commit(usize, bool),
    Control(u64, u8),
    Priority(u64, u8),
    /// A checkpoint: the finished rows leave RAM.
    Checkpoint,
    /// The state is replayed from the store's log, from its checkpoint.
    Reopen,
    /// A compaction (`Runtime::compact`: a checkpoint first), segment by
    /// segment or (true) full; the next reopen replays from it.
    Compact(bool),
    /// The clock moves this many minutes.
    Advance(u8),
    /// The kind's stored `destroy_on_complete`.
    KindDestroys(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(
            (1..=100u8, proptest::option::of(any::<bool>()), 0..10u8),
            1..4
        )
        .prop_map(Op::Submit),
        3 => (0..WORKERS).prop_map(Op::Lease),
        3 => ((0..WORKERS), any::<bool>()).prop_map(|(w, ok)| Op::Commit(w, ok)),
        2 => (any::<u64>(), 0..6u8).prop_map(|(j, a)| Op::Control(j, a)),
        1 => (any::<u64>(), 1..=100u8).prop_map(|(j, p)| Op::Priority(j, p)),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        1 => any::<bool>().prop_map(Op::Compact),
        2 => (0..3u8).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::KindDestroys),
    ]
}

/// The reference's answer to a control: the next state, or None when the
/// transition table refuses it (simple jobs; `transition.rs`'s table,
/// written out again here on purpose).
fn reference_control(action: u8, state: JobState) -> Option<Option<JobState>> {
    use JobState::*;
    let next = match (action, state) {
        (0, Queued) => Paused,
        (1, Paused) => Queued,
        (2, Queued | Running | Paused | Failed) => Aborted,
        (3, Failed) => Queued,
        (4, Queued | Running | Paused) => Failed,
        // Destroy: a tombstone.
        (5, s) if s != Running => return Some(None),
        _ => return None,
    };
    Some(Some(next))
}

fn control(action: u8) -> Control {
    match action {
        0 => Control::Pause,
        1 => Control::Resume,
        2 => Control::Abort,
        3 => Control::Retry,
        4 => Control::Fail {
            reason: "model".into(),
        },
        _ => Control::Destroy,
    }
}

#[derive(Clone, Copy)]
struct Held {
    epoch: u64,
    job: JobId,
    /// Its job left Running by a control (abort, fail): the commit loses.
    revoked: bool,
}

struct Model {
    /// The state over its store (`logged_tests.rs`): `st`.
    logged: Logged,
    /// The jobs (tombstones are in `life` only).
    rows: BTreeMap<JobId, RefRow>,
    /// Every row's life, tombstones included; an id without one that is
    /// below `next_id` was removed by a sweep.
    life: BTreeMap<JobId, RefLife>,
    /// The tombstones' states.
    tombstones: BTreeMap<JobId, JobState>,
    /// Each row's filing at the newest checkpoint.
    filed: BTreeMap<JobId, (JobState, u64)>,
    /// The kind's stored `destroy_on_complete`.
    kind_destroys: bool,
    /// The lease each worker holds.
    held: [Option<Held>; WORKERS],
    next_id: JobId,
    now_ms: u64,
    /// Every record applied, in order: what the log would hold.
    log: Vec<Meta>,
}

/// The book of the model's process: one simple kind, leases of one job.
fn book() -> Book {
    let mut book = Book::new(WORKERS, 1000, 100);
    book.max_lease_batch = 1;
    for kind in KINDS {
        let conf = KindConf {
            handler: Some(HandlerShape::Simple),
            ..KindConf::default()
        };
        book.kinds.insert(Arc::from(kind), conf);
    }
    book
}

impl Model {
    fn new() -> Model {
        let mut st = State::new(book());
        st.book.live = true;
        let mut m = Model {
            logged: Logged::new(st),
            rows: BTreeMap::new(),
            life: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            filed: BTreeMap::new(),
            kind_destroys: false,
            held: [None; WORKERS],
            next_id: 1,
            now_ms: 1_800_000_000_000,
            log: Vec::new(),
        };
        m.apply(Meta::Retention {
            at_ms: m.now_ms,
            retention: RETENTION,
        })
        .unwrap();
        m
    }

    /// Applies `meta` to the state, as the commit thread does once it is
    /// durable, and logs it if it applied. (The runtime checks a control
    /// under the lock before it writes the record, so a refused one is not
    /// in the log; a running job it refused is queued on replay, where no
    /// lease holds it.)
    fn apply(&mut self, meta: Meta) -> Result<(), crate::RuntimeError> {
        let applied = self.logged.apply(&meta);
        if applied.is_ok() {
            self.log.push(meta);
        }
        applied
    }

    fn step(&mut self, op: &Op) {
        self.now_ms += 1;
        match op {
            Op::Submit(priorities) => self.submit(priorities),
            Op::Lease(w) => self.lease(*w),
            Op::Commit(w, ok) => self.commit(*w, *ok),
            Op::Control(pick, action) => {
                let id = pick % (self.next_id + 1);
                let applied = self.apply(Meta::Control {
                    job: id,
                    at_ms: self.now_ms,
                    action: control(*action),
                });
                let expected = self
                    .rows
                    .get(&id)
                    .and_then(|r| reference_control(*action, r.state));
                assert_eq!(applied.is_ok(), expected.is_some(), "{op:?}: {applied:?}");
                if expected.is_some() {
                    for h in self.held.iter_mut().flatten() {
                        h.revoked |= h.job == id;
                    }
                }
                let now_ms = self.now_ms;
                match expected {
                    Some(Some(next)) => {
                        self.rows.get_mut(&id).expect("looked up").state = next;
                        let life = self.life.get_mut(&id).expect("a row has a life");
                        life.finished_ms = next.is_finished().then_some(now_ms);
                    }
                    Some(None) => self.destroy(id, now_ms),
                    None => {}
                }
            }
            Op::Checkpoint => {
                self.logged.checkpoint_at(self.now_ms);
                self.sweep();
                self.check_overlay_holds_only_unfinished_rows();
                self.check_kind_index();
            }
            Op::Reopen => {
                self.reopen();
                self.check_kind_index();
            }
            Op::Compact(full) => {
                self.logged.compact_at(self.now_ms, *full);
                self.sweep();
                self.check_overlay_holds_only_unfinished_rows();
                self.check_kind_index();
            }
            Op::Advance(minutes) => self.now_ms += u64::from(*minutes) * MINUTE_MS,
            Op::KindDestroys(on) => {
                let settings = KindSettings {
                    destroy_on_complete: *on,
                    ..KindSettings::default()
                };
                self.apply(Meta::KindSettings {
                    kind: "k".into(),
                    at_ms: self.now_ms,
                    settings: Some(settings),
                })
                .unwrap();
                self.kind_destroys = *on;
            }
            Op::Priority(pick, priority) => {
                let id = pick % (self.next_id + 1);
                let applied = self.apply(Meta::Priority {
                    job: id,
                    priority: *priority,
                });
                let row = self.rows.get_mut(&id).filter(|r| !r.state.is_finished());
                assert_eq!(applied.is_ok(), row.is_some(), "{op:?}: {applied:?}");
                if let Some(row) = row {
                    row.priority = *priority;
                }
            }
        }
    }

    /// Job `id` becomes a tombstone at `at_ms`.
    fn destroy(&mut self, id: JobId, at_ms: u64) {
        let row = self.rows.remove(&id).expect("a job to destroy");
        self.tombstones.insert(id, row.state);
        self.life
            .get_mut(&id)
            .expect("a row has a life")
            .destroyed_ms = Some(at_ms);
    }

    /// The contract's sweep at a checkpoint: a row filed at the checkpoint
    /// before (with the filing it has now) goes once its filing's minute
    /// ended and its state's period passed; then every row is filed anew.
    fn sweep(&mut self) {
        let now_ms = self.now_ms;
        let due: Vec<JobId> = self
            .life
            .iter()
            .filter_map(|(id, life)| {
                let state = self
                    .tombstones
                    .get(id)
                    .or(self.rows.get(id).map(|r| &r.state));
                let filing = life.filing(*state.expect("a row or a tombstone"))?;
                let (state, minute) = filing;
                let due_ms = (minute + 1) * MINUTE_MS + RETENTION.period_ms(state);
                (self.filed.get(id) == Some(&filing) && due_ms <= now_ms).then_some(*id)
            })
            .collect();
        for id in due {
            self.rows.remove(&id);
            self.tombstones.remove(&id);
            self.life.remove(&id);
        }
        self.filed = self
            .life
            .iter()
            .filter_map(|(id, life)| {
                let state = self
                    .tombstones
                    .get(id)
                    .or(self.rows.get(id).map(|r| &r.state));
                Some((*id, life.filing(*state?)?))
            })
            .collect();
    }

    /// After a checkpoint the overlay holds the unfinished rows but the
    /// queued ones (simple, with no expiry or window: every queued job of
    /// the model) and nothing else: a finished or queued job costs no row
    /// in RAM (step 5).
    fn check_overlay_holds_only_unfinished_rows(&self) {
        let resident: Vec<JobId> = self.st().table.keys().copied().collect();
        let unfinished: Vec<JobId> = self
            .rows
            .iter()
            .filter(|(_, r)| !r.state.is_finished() && r.state != JobState::Queued)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(resident, unfinished, "rows in RAM after a checkpoint");
    }

    /// A restart: leases are gone (their jobs are queued again), the table
    /// is the checkpoint's image and the records after it.
    fn reopen(&mut self) {
        self.logged.reopen(book());
        self.logged.st.book.live = true;
        self.held = [None; WORKERS];
        for row in self.rows.values_mut() {
            if row.state == JobState::Running {
                row.state = JobState::Queued;
            }
        }
    }

    fn st(&self) -> &State {
        &self.logged.st
    }

    fn submit(&mut self, jobs: &[(u8, Option<bool>, u8)]) {
        let specs = jobs
            .iter()
            .map(|(p, destroys, kind)| JobSpec {
                destroy_on_complete: *destroys,
                ..JobSpec::simple(kind_of_pick(*kind), serde_json::Value::Null).with_priority(*p)
            })
            .collect();
        self.apply(Meta::Created {
            first_id: self.next_id,
            at_ms: self.now_ms,
            specs,
        })
        .unwrap();
        for (p, destroys, kind) in jobs {
            let row = RefRow {
                state: JobState::Queued,
                priority: *p,
                attempts: 0,
            };
            self.rows.insert(self.next_id, row);
            let life = RefLife {
                kind: kind_of_pick(*kind),
                destroy_on_complete: *destroys,
                ..RefLife::default()
            };
            self.life.insert(self.next_id, life);
            self.next_id += 1;
        }
    }

    /// G5: the most urgent queued job, ties by submission order.
    fn lease(&mut self, w: usize) {
        if self.held[w].is_some() {
            return;
        }
        let expected = self
            .rows
            .iter()
            .filter(|(_, r)| r.state == JobState::Queued)
            .map(|(id, r)| (r.priority, *id))
            .min();
        let task = self.logged.st.lease(w, self.now_ms);
        let got = task.as_ref().map(|t| match &t.work {
            TaskWork::Simple(items) => {
                assert_eq!(items.len(), 1);
                items[0].job
            }
            _ => panic!("a simple lease"),
        });
        assert_eq!(got, expected.map(|(_, id)| id), "lease for worker {w}");
        if let (Some(task), Some(id)) = (task, got) {
            self.held[w] = Some(Held {
                epoch: task.epoch,
                job: id,
                revoked: false,
            });
            self.rows.get_mut(&id).expect("leased").state = JobState::Running;
        }
    }

    fn commit(&mut self, w: usize, ok: bool) {
        let Some(Held {
            epoch,
            job: id,
            revoked,
        }) = self.held[w].take()
        else {
            return;
        };
        let claim = LeaseWork::Simple(vec![id]);
        let won = self.logged.st.begin_commit(epoch, &claim).is_some();
        // A lease holds until a control takes its job out of Running
        // (abort, fail); then its late commit is fenced.
        assert_eq!(won, !revoked, "commit of job {id}");
        if !won {
            return;
        }
        self.apply(Meta::SimpleDone {
            at_ms: self.now_ms,
            at_us: None,
            outcomes: vec![SimpleOutcome {
                job: id,
                started_us: self.now_ms * 1000,
                result: if ok { Ok(None) } else { Err("model".into()) },
                retry_at_ms: None,
            }],
        })
        .unwrap();
        self.logged.st.release(epoch);
        let row = self.rows.get_mut(&id).expect("running");
        row.attempts += 1;
        row.state = if ok {
            JobState::Completed
        } else {
            JobState::Failed
        };
        let life = self.life.get_mut(&id).expect("a row has a life");
        life.finished_ms = Some(self.now_ms);
        let kind_destroys = self.kind_destroys && life.kind == KINDS[0];
        if ok && life.destroy_on_complete.unwrap_or(kind_destroys) {
            self.destroy(id, self.now_ms);
        }
    }

    fn check(&self) {
        let table: BTreeMap<JobId, RefRow> = all_rows(self.st())
            .iter()
            .map(|j| {
                let row = RefRow {
                    state: j.state,
                    priority: j.priority,
                    attempts: j.attempts,
                };
                (j.id, row)
            })
            .collect();
        assert_eq!(table, self.rows);
        let mut counts = [0u64; 8];
        for r in self.rows.values() {
            counts[r.state.index()] += 1;
        }
        assert_eq!(self.st().book.by_state, counts);
        assert_eq!(self.st().book.destroyed, self.tombstones.len() as u64);
        self.check_kind_counts();
        let table = &self.st().table;
        assert_eq!(
            table.overlay_sizes().1,
            table.values().count(),
            "the census's count of rows in the overlay drifted from the rows there"
        );
        self.check_missing();
        self.check_scheduler();
    }

    /// The book's counts by kind are the reference's rows (and
    /// tombstones) of each kind by state.
    fn check_kind_counts(&self) {
        let st = self.st();
        let mut want: BTreeMap<&str, [u64; 9]> = BTreeMap::new();
        for (id, r) in &self.rows {
            want.entry(self.life[id].kind).or_default()[r.state.index()] += 1;
        }
        for id in self.tombstones.keys() {
            want.entry(self.life[id].kind).or_default()[8] += 1;
        }
        let counts = st.book.kind_counts.as_ref().expect("every kind counted");
        let got: BTreeMap<&str, [u64; 9]> = KINDS
            .iter()
            .filter_map(|k| Some((*k, *counts.get(&st.book.kind_ids.id(k)?)?)))
            .filter(|(_, c)| c.iter().any(|n| *n > 0))
            .collect();
        assert_eq!(got, want, "counts by kind");
    }

    /// The store's kind masks are its row pages' kinds, page for page
    /// (`kind_index::mismatches`): every checkpoint wrote or deleted
    /// those its pages' changes moved.
    fn check_kind_index(&self) {
        let st = self.st();
        let kinds: Vec<_> = st.book.kind_ids.iter().map(|(k, _)| k).collect();
        let store = &*self.logged.store;
        let wrong = crate::table::kind_index::mismatches(store, &kinds, st.book.kind_refile);
        assert_eq!(wrong, Vec::<String>::new(), "the kind index");
    }

    /// Every state filter (and none), each alone and with each kind
    /// (from the kind index), listed page by page newest first
    /// (`listing::page`, small pages so they cross row pages and
    /// checkpoints' images), gives the reference's rows in that state (and
    /// kind) once each, with their count (a kind's counted by its first
    /// page: the model's table is small).
    fn check_listing(&self) {
        let states = std::iter::once(None).chain(JobState::ALL.iter().copied().map(Some));
        let kinds = std::iter::once(None).chain(KINDS.iter().copied().map(Some));
        let kinds: Vec<Option<&str>> = kinds.collect();
        for (state, kind) in states.flat_map(|s| kinds.iter().map(move |k| (s, *k))) {
            let want: Vec<JobId> = self
                .rows
                .iter()
                .filter(|(_, r)| state.is_none_or(|s| r.state == s))
                .filter(|(id, _)| kind.is_none_or(|k| self.life[*id].kind == k))
                .map(|(id, _)| *id)
                .collect();
            let mut query = crate::JobQuery {
                filter: crate::JobFilter {
                    state,
                    kind: kind.map(String::from),
                    ..Default::default()
                },
                before: None,
                limit: 7,
            };
            let mut got = Vec::new();
            loop {
                let page = crate::listing::page(|| self.st(), &query).unwrap();
                assert_eq!(page.total, Some(want.len() as u64), "{state:?} {kind:?}");
                got.splice(0..0, page.jobs.iter().map(|j| j.id));
                match page.next_before {
                    Some(b) => query.before = Some(b),
                    None => break,
                }
            }
            assert_eq!(got, want, "listing {state:?} {kind:?} page by page");
        }
    }

    /// `NotFound` says why, as the reference knows it: a tombstone's state
    /// and time, a removed id, one never handed out.
    fn check_missing(&self) {
        for id in 1..=self.next_id {
            let why = match self.st().job_row(id) {
                Ok(_) => {
                    assert!(self.rows.contains_key(&id), "job {id} should be gone");
                    continue;
                }
                Err(RuntimeError::NotFound(_, why)) => why,
                Err(e) => panic!("job {id}: {e}"),
            };
            let want = match (self.tombstones.get(&id), self.life.get(&id)) {
                (Some(state), Some(life)) => Missing::Destroyed {
                    state: *state,
                    at: crate::clock::from_ms(life.destroyed_ms.expect("a tombstone's time")),
                },
                _ if id < self.next_id => Missing::Removed,
                _ => Missing::Never,
            };
            assert_eq!(why, want, "job {id}");
        }
    }

    /// The scheduler has an entry for exactly the unfinished rows, with
    /// their state and priority, filed where its row says.
    fn check_scheduler(&self) {
        let book = &self.st().book;
        let unfinished: Vec<JobId> = self
            .rows
            .iter()
            .filter(|(_, r)| !r.state.is_finished())
            .map(|(id, _)| *id)
            .collect();
        let mut active: Vec<JobId> = book.active.keys().copied().collect();
        active.sort_unstable();
        assert_eq!(active, unfinished, "scheduler entries");
        for (id, slot) in &book.active {
            // A queued row may be only on its page (step 5).
            let row = self.st().table.get(id).expect("an active job's row");
            assert_eq!((slot.state, slot.priority), (row.state, row.priority));
            assert_eq!(slot.filed(), slot.ready_slot(&row, None), "job {id}");
        }
        let running = book.running_by_kind.values().sum::<u32>();
        assert_eq!(u64::from(running), book.by_state[JobState::Running.index()]);
    }

    /// The log replays to the table the live state has, but for the jobs
    /// a lease holds (leases are not logged: replay has them queued).
    fn check_replay(&self) {
        let mut replayed = State::new(crate::state::Book::new(WORKERS, 1000, 100));
        for meta in &self.log {
            let decoded = crate::meta::decode(&crate::meta::encode(meta)).unwrap();
            let _ = replayed.apply(&decoded);
        }
        let rows = |st: &State| -> Vec<(JobId, RefRow)> {
            all_rows(st)
                .iter()
                .map(|j| {
                    let state = match j.state {
                        JobState::Running => JobState::Queued,
                        s => s,
                    };
                    let row = RefRow {
                        state,
                        priority: j.priority,
                        attempts: j.attempts,
                    };
                    (j.id, row)
                })
                .collect()
        };
        // Replay without checkpoints has no sweep: the rows the sweeps
        // removed are still there.
        let kept = |rows: Vec<(JobId, RefRow)>| -> Vec<(JobId, RefRow)> {
            rows.into_iter()
                .filter(|(id, _)| self.life.contains_key(id))
                .collect()
        };
        assert_eq!(kept(rows(&replayed)), rows(self.st()));
        for (id, state) in &self.tombstones {
            let at = self.life[id].destroyed_ms.expect("a tombstone's time");
            assert_eq!(replayed.table.tombstone(id), Some((*state, at)), "job {id}");
        }
        let mut ids: Vec<JobId> = replayed.book.active.keys().copied().collect();
        ids.sort_unstable();
        let mut live: Vec<JobId> = self.st().book.active.keys().copied().collect();
        live.sort_unstable();
        assert_eq!(ids, live, "replayed scheduler entries");
    }
}

fn config() -> proptest::test_runner::Config {
    booster_tests::rng::proptest_config("table_model", 64, 4000)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_table_follows_its_reference_through_submits_leases_commits_and_controls(
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut m = Model::new();
        for (i, op) in ops.iter().enumerate() {
            m.step(op);
            m.check();
            // Listing builds every row's status per filter: after each
            // change of the image, and every eighth step between.
            if matches!(op, Op::Checkpoint | Op::Reopen) || i % 8 == 7 {
                m.check_listing();
            }
        }
        m.check_listing();
        m.check_replay();
    }

    /// A listing page by page while the table changes under it: the
    /// lock closure applies the next random step each time the listing
    /// takes the lock again (between pages and chunks), as the dispatcher,
    /// the commit thread, a checkpoint (with its sweep) or a reopen would.
    /// No id is listed twice, and every id that was in the state asked
    /// for from the start of the listing to its end is listed; every id
    /// listed was in that state at some point.
    #[test]
    fn a_listing_lists_each_row_once_while_the_table_changes_between_chunks(
        setup in prop::collection::vec(op(), 1..150),
        during in prop::collection::vec(op(), 1..80),
        state in proptest::option::of(0..JobState::ALL.len()),
        kind in proptest::option::of(0..KINDS.len()),
    ) {
        let state = state.map(|i| JobState::ALL[i]);
        let kind = kind.map(|i| KINDS[i]);
        let mut m = Model::new();
        for op in &setup {
            m.step(op);
        }
        let in_state = |m: &Model| -> std::collections::BTreeSet<JobId> {
            m.rows
                .iter()
                .filter(|(_, r)| state.is_none_or(|s| r.state == s))
                .filter(|(id, _)| kind.is_none_or(|k| m.life[*id].kind == k))
                .map(|(id, _)| *id)
                .collect()
        };
        let mut stayed = in_state(&m);
        let mut ever = stayed.clone();
        let model = std::cell::RefCell::new(m);
        let mut during = during.iter();
        let mut first = true;
        let mut lock = || {
            if !first {
                if let Some(op) = during.next() {
                    let mut m = model.borrow_mut();
                    m.step(op);
                    let now = in_state(&m);
                    stayed.retain(|id| now.contains(id));
                    ever.extend(now);
                }
            }
            first = false;
            std::cell::Ref::map(model.borrow(), |m| m.st())
        };
        let mut query = crate::JobQuery {
            filter: crate::JobFilter {
                state,
                kind: kind.map(String::from),
                ..Default::default()
            },
            before: None,
            limit: 3,
        };
        let mut got = Vec::new();
        loop {
            let page = crate::listing::page(&mut lock, &query).unwrap();
            got.extend(page.jobs.iter().rev().map(|j| j.id));
            match page.next_before {
                Some(b) => query.before = Some(b),
                None => break,
            }
        }
        let listed: std::collections::BTreeSet<JobId> = got.iter().copied().collect();
        prop_assert_eq!(listed.len(), got.len(), "an id listed twice: {:?}", got);
        let missing: Vec<_> = stayed.difference(&listed).collect();
        prop_assert!(missing.is_empty(), "{:?} stayed {:?} but were not listed", missing, state);
        let made_up: Vec<_> = listed.difference(&ever).collect();
        prop_assert!(made_up.is_empty(), "{:?} were never {:?}", made_up, state);
    }
}
