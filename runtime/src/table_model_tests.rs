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
//! checkpoint. A unit test, because it
//! drives `State` directly (deterministic, no worker threads);
//! `BOOSTER_SEED` replays a run.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use crate::dispatch::TaskWork;
use crate::logged_tests::{all_rows, Logged};
use crate::meta::{Control, Meta, SimpleOutcome};
use crate::state::{Book, HandlerShape, KindConf, LeaseWork, State};
use crate::{JobId, JobSpec, JobState};

const WORKERS: usize = 4;

#[derive(Clone, Debug, PartialEq)]
struct RefRow {
    state: JobState,
    priority: u8,
    attempts: u32,
}

#[derive(Clone, Debug)]
enum Op {
    Submit(Vec<u8>),
    Lease(usize),
    Commit(usize, bool),
    Control(u64, u8),
    Priority(u64, u8),
    /// A checkpoint: the finished rows leave RAM.
    Checkpoint,
    /// The state is replayed from the store's log, from its checkpoint.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(1..=100u8, 1..4).prop_map(Op::Submit),
        3 => (0..WORKERS).prop_map(Op::Lease),
        3 => ((0..WORKERS), any::<bool>()).prop_map(|(w, ok)| Op::Commit(w, ok)),
        2 => (any::<u64>(), 0..6u8).prop_map(|(j, a)| Op::Control(j, a)),
        1 => (any::<u64>(), 1..=100u8).prop_map(|(j, p)| Op::Priority(j, p)),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
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
        // Destroy: gone from the table.
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
    rows: BTreeMap<JobId, RefRow>,
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
    book.kinds.insert(
        Arc::from("k"),
        KindConf {
            handler: Some(HandlerShape::Simple),
            ..KindConf::default()
        },
    );
    book
}

impl Model {
    fn new() -> Model {
        let mut st = State::new(book());
        st.book.live = true;
        Model {
            logged: Logged::new(st),
            rows: BTreeMap::new(),
            held: [None; WORKERS],
            next_id: 1,
            now_ms: 1,
            log: Vec::new(),
        }
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
                match expected {
                    Some(Some(next)) => self.rows.get_mut(&id).expect("looked up").state = next,
                    Some(None) => {
                        self.rows.remove(&id);
                    }
                    None => {}
                }
            }
            Op::Checkpoint => {
                self.logged.checkpoint();
                self.check_overlay_holds_only_unfinished_rows();
            }
            Op::Reopen => self.reopen(),
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

    /// After a checkpoint the overlay holds the unfinished rows and
    /// nothing else: a finished job costs no RAM.
    fn check_overlay_holds_only_unfinished_rows(&self) {
        let resident: Vec<JobId> = self.st().table.keys().copied().collect();
        let unfinished: Vec<JobId> = self
            .rows
            .iter()
            .filter(|(_, r)| !r.state.is_finished())
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

    fn submit(&mut self, priorities: &[u8]) {
        let specs = priorities
            .iter()
            .map(|p| JobSpec::simple("k", serde_json::Value::Null).with_priority(*p))
            .collect();
        self.apply(Meta::Created {
            first_id: self.next_id,
            at_ms: self.now_ms,
            specs,
        })
        .unwrap();
        for p in priorities {
            let row = RefRow {
                state: JobState::Queued,
                priority: *p,
                attempts: 0,
            };
            self.rows.insert(self.next_id, row);
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
        self.check_scheduler();
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
            let row = &self.st().table[id];
            assert_eq!((slot.state, slot.priority), (row.state, row.priority));
            assert_eq!(slot.filed(), slot.ready_slot(row, None), "job {id}");
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
        assert_eq!(rows(&replayed), rows(self.st()));
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
        for op in &ops {
            m.step(op);
            m.check();
        }
        m.check_replay();
    }
}
