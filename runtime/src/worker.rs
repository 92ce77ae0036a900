//! Worker threads: plain OS threads (never tokio's) that take a lease, run
//! the handler and hand one commit to the store. A slice's output is
//! compressed, sealed and handed to the store on the worker's commit
//! thread (`worker/commit_thread.rs`), so the worker leases again as soon
//! as its handler returned. A worker does not wait for the fsync either:
//! the slice counts as done only when the commit callback applies it, and
//! until then its lease is `committing` (it cannot expire or be re-leased).

mod commit_thread;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_store::{Batch, SliceKey, StoreError};

use crate::slice_store::SliceStore;

use self::commit_thread::{CommitThread, SliceCommit};
use crate::category::category_stream;
use crate::dispatch::{CommitEnd, HookItem, SimpleItem, SliceItem, Task, TaskWork};
use crate::download::{Dependencies, OutputSource};
use crate::handler::{panic_message, set_progress, Progress};
use crate::meta::{Meta, SimpleOutcome, STREAM_ERRORS, STREAM_INPUT, STREAM_MAIN};
use crate::remote::{Outcome, SimpleResult, SliceResult, Written};
use crate::shared::{batch_of, commit, poisons, Handler, Shared};
use crate::start_trace::{self, Phase};
use crate::state::LeaseWork;
use crate::table::merge_error_groups;
use crate::{ErrorGroup, HandlerError, JobContext, JobId, RecordErrorSample};

/// A slice whose handler panicked (outside per-record isolation) this many
/// times fails instead of being leased again.
const MAX_SLICE_PANICS: u32 = 3;

pub fn spawn(shared: Arc<Shared>, store: Arc<dyn SliceStore>, worker: usize, generation: u64) {
    *shared.workers_alive.lock() += 1;
    let sh = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("booster-worker-{worker}"))
        .spawn(move || {
            run(&sh, &store, worker, generation);
            drop(store);
            let mut alive = sh.workers_alive.lock();
            *alive -= 1;
            sh.workers_gone.notify_all();
        });
    if spawned.is_err() {
        *shared.workers_alive.lock() -= 1;
    }
}

fn run(shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, worker: usize, generation: u64) {
    // Dropped when the worker stops: what it handed over reaches the store
    // first (the worker counts as alive until then).
    let commits = CommitThread::start(shared, store, worker);
    loop {
        let Some(task) = next_task(shared, worker, generation, &commits) else {
            return;
        };
        let (epoch, claim) = (task.epoch, task.claim());
        set_progress(Some(Progress {
            cell: task.progress_ms.clone(),
            clock: shared.clock.clone(),
        }));
        let ran = catch_unwind(AssertUnwindSafe(|| execute(shared, store, &commits, task)));
        set_progress(None);
        if let Err(panic) = ran {
            on_panic(shared, store, epoch, &claim, &panic_message(&*panic), false);
            replace_self(shared, store, worker);
            return;
        }
    }
}

/// The worker's next lease; only an urgent job's while its commit
/// thread is behind (`CommitThread::behind`), which wakes this wait once
/// it catches up.
fn next_task(
    shared: &Shared,
    worker: usize,
    generation: u64,
    commits: &CommitThread,
) -> Option<Task> {
    start_trace::stamp(Phase::LeaseAsked, 0, Some(worker));
    let mut st = shared.state.lock();
    // When this worker began holding for an urgent submit in flight: its
    // hold ends `InFlight::max` after, whatever is announced meanwhile.
    let mut held_since: Option<Instant> = None;
    loop {
        start_trace::stamp(Phase::LockHeld, 0, Some(worker));
        let slot_gen = st.book.workers.get(worker).map(|s| s.generation);
        if st.book.stopping || slot_gen != Some(generation) {
            return None;
        }
        let now_ms = shared.clock.now_ms();
        // An urgent submit between its id and its placement: hold for it
        // rather than take a slice that would keep this worker busy past
        // the moment it becomes leasable (`placement::InFlight`).
        let hold = if st.book.urgent_in_flight.jobs > 0 {
            let now = Instant::now();
            let hold = st
                .book
                .urgent_in_flight
                .holds(now, held_since.unwrap_or(now));
            if hold.is_some() {
                held_since.get_or_insert(now);
            }
            hold
        } else {
            None
        };
        let task = if commits.behind(shared) || hold.is_some() {
            st.lease_urgent(worker, now_ms)
        } else {
            st.lease(worker, now_ms)
        };
        if let Some(task) = task {
            if start_trace::on() {
                // Stamped once the state lock is released: the stamp reads
                // schedstat and takes the trace's own lock.
                let leased = Instant::now();
                drop(st);
                start_trace::stamp_then(leased, Phase::Leased, task.first_job(), Some(worker));
            }
            return Some(task);
        }
        start_trace::stamp(Phase::Waiting, 0, Some(worker));
        let Some(hold) = hold else {
            shared
                .work_ready
                .wait_for(&mut st, Duration::from_millis(100));
            continue;
        };
        st.book.urgent_in_flight.holding += 1;
        shared.work_ready.wait_for(&mut st, hold);
        st.book.urgent_in_flight.holding -= 1;
    }
}

/// Hands the panicked lease back (or fails its slice after repeated panics).
/// `won_commit`: the panic came on the way to the store, on the commit
/// thread, after this worker won `begin_commit` (the right to commit is
/// held; a lease the timer expired is `committing` too, but not ours).
fn on_panic(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    claim: &LeaseWork,
    message: &str,
    won_commit: bool,
) {
    let failed = {
        let mut st = shared.state.lock();
        let panics = st.note_panic(epoch);
        if panics >= MAX_SLICE_PANICS && won_commit {
            Some(claim.clone())
        } else if panics >= MAX_SLICE_PANICS {
            st.begin_commit(epoch, claim)
        } else {
            st.release(epoch);
            None
        }
    };
    if let Some(LeaseWork::Slice { job, slice }) = failed {
        let m = Meta::SliceFailed {
            job,
            slice,
            at_ms: shared.clock.now_ms(),
            message: if won_commit {
                format!(
                    "this slice panicked {MAX_SLICE_PANICS} times, the last on the way to \
                     the store (not in the handler): {message}"
                )
            } else {
                format!("handler panicked {MAX_SLICE_PANICS} times on this slice: {message}")
            },
            sample: None,
            retry_at_ms: None,
        };
        commit_meta(shared, store, m, epoch);
    }
    shared.changed();
}

/// This thread is done; the supervisor starts a fresh one in its slot.
fn replace_self(shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, worker: usize) {
    let generation = {
        let mut st = shared.state.lock();
        st.book.metrics.worker_restarts += 1;
        let Some(slot) = st.book.workers.get_mut(worker) else {
            return;
        };
        slot.generation += 1;
        slot.restarts += 1;
        slot.generation
    };
    match shared.supervisor.get() {
        Some(sup)
            if sup
                .cast(crate::actors::SupervisorMsg::ReplaceWorker(worker))
                .is_ok() => {}
        _ => spawn(shared.clone(), store.clone(), worker, generation),
    }
}

fn execute(shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, commits: &CommitThread, task: Task) {
    let epoch = task.epoch;
    match task.work {
        TaskWork::Simple(items) => run_simple(shared, store, epoch, items),
        TaskWork::Slice(item) => run_slice(shared, store, commits, epoch, item),
        TaskWork::Before(item) => run_hook(shared, store, epoch, item, true),
        TaskWork::After(item) => run_hook(shared, store, epoch, item, false),
    }
}

fn run_simple(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    items: Vec<SimpleItem>,
) {
    let started = Instant::now();
    let mut cached: Option<(Arc<str>, Option<Handler>)> = None;
    let mut results = Vec::with_capacity(items.len());
    for item in &items {
        crate::heartbeat();
        if cached.as_ref().is_none_or(|(k, _)| *k != item.kind) {
            cached = Some((item.kind.clone(), shared.handler(&item.kind)));
        }
        let handler = cached.as_ref().and_then(|(_, h)| h.clone());
        let started_us = shared.clock.now_us();
        start_trace::stamp(Phase::Started, item.job, None);
        let ctx = JobContext {
            id: item.job,
            kind: &item.kind,
            properties: &item.properties,
            categories: &[],
            source: Some(Dependencies::Local(OutputSource { shared, store })),
        };
        let result = match handler {
            Some(Handler::Simple(h)) => {
                catch_unwind(AssertUnwindSafe(|| h.perform(&ctx, &item.args)))
                    .unwrap_or_else(|p| {
                        Err(HandlerError(format!(
                            "handler panicked: {}",
                            panic_message(&*p)
                        )))
                    })
                    .map_err(|e| e.0)
            }
            _ => Err(format!(
                "kind {:?} has no simple handler; register it with register_simple",
                item.kind
            )),
        };
        results.push(SimpleResult {
            job: item.job,
            started_us,
            result,
        });
    }
    commit_simple(shared, store, epoch, &items, results, started.elapsed());
}

/// Commits the results of a lease of simple jobs (`items`, in lease
/// order; `results` one per item, from this process's threads or a remote
/// worker's): a result over the cap fails its job, a failure schedules
/// its retry, and the lease must win `begin_commit` first.
pub(crate) fn commit_simple(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    items: &[SimpleItem],
    results: Vec<SimpleResult>,
    elapsed: Duration,
) {
    let mut outcomes = Vec::with_capacity(results.len());
    // Results the node could not store (over the cap): their jobs fail.
    let mut replaced = Vec::new();
    for (item, r) in items.iter().zip(results) {
        debug_assert_eq!(item.job, r.job, "results come in lease order");
        let given_ok = r.result.is_ok();
        let result = cap_result(item.job, r.result, shared.limits.max_slice_bytes);
        if let (true, Err(why)) = (given_ok, &result) {
            replaced.push(why.clone());
        }
        let retry_at_ms = match &result {
            Err(_) => {
                item.retry
                    .retry_at_ms(item.attempts, shared.clock.now_ms(), crate::random_draw())
            }
            Ok(_) => None,
        };
        outcomes.push(SimpleOutcome {
            job: item.job,
            started_us: r.started_us,
            result,
            retry_at_ms,
        });
    }
    let ran_us = Some(elapsed.as_secs_f64() * 1e6);
    // Partial: some outcome is stored as given (a result, or a failure).
    let partial = replaced.len() < outcomes.len();
    let replaced = (!replaced.is_empty()).then(|| (replaced.join("; "), partial));
    commit_simple_outcomes(shared, store, epoch, items, outcomes, replaced, ran_us);
}

/// Fails every job of simple lease `epoch` with `why`, no retry: work no
/// handler could be given (a remote worker's message could not carry its
/// arguments), which running again would not change.
pub(crate) fn fail_simple(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    items: &[SimpleItem],
    why: &str,
) {
    let started_us = shared.clock.now_us();
    let outcomes = items
        .iter()
        .map(|item| SimpleOutcome {
            job: item.job,
            started_us,
            result: Err(why.to_string()),
            retry_at_ms: None,
        })
        .collect();
    commit_simple_outcomes(shared, store, epoch, items, outcomes, None, None);
}

/// The commit of simple lease `epoch`'s `outcomes`, once it wins
/// `begin_commit`; `replaced`: why the node stored failures in place of
/// results it was given, and whether other outcomes are stored as given;
/// `ran_us`: how long the handler ran (none when no handler ran), for the
/// kind's lease sizing, observed under the lock `begin_commit` takes.
fn commit_simple_outcomes(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    items: &[SimpleItem],
    mut outcomes: Vec<SimpleOutcome>,
    replaced: Option<(String, bool)>,
    ran_us: Option<f64>,
) {
    let (valid, since_us) = {
        let mut st = shared.state.lock();
        if let (Some(first), Some(ran_us)) = (items.first(), ran_us) {
            st.observe_simple(&first.kind, items.len(), ran_us);
        }
        let jobs: Vec<JobId> = items.iter().map(|i| i.job).collect();
        // A job started at placement completes once its creation is
        // durable (or is dropped, and the commit is refused).
        crate::placement::until_created(shared, &mut st, &jobs);
        let claim = LeaseWork::Simple(jobs);
        let valid = st.begin_commit(epoch, &claim);
        (valid, st.book.leases.get(&epoch).map(|l| l.since_us))
    };
    let Some(LeaseWork::Simple(valid)) = valid else {
        return;
    };
    if valid.len() != outcomes.len() {
        outcomes.retain(|o| valid.contains(&o.job));
    }
    let at_us = shared.clock.now_us();
    // A start is kept within the lease, by this process's clock: a remote
    // worker's clock may be skewed, old or lying, and a start before the
    // job was created or after it completed is no start (G12: the node's
    // clock decides). This process's own threads read the same clock.
    if let Some(since_us) = since_us {
        for o in &mut outcomes {
            o.started_us = o.started_us.clamp(since_us, at_us.max(since_us));
        }
    }
    let jobs: Vec<(JobId, u64)> = outcomes.iter().map(|o| (o.job, o.started_us)).collect();
    let m = Meta::SimpleDone {
        at_ms: at_us / 1000,
        at_us: Some(at_us),
        outcomes,
    };
    let batch = batch_of(std::slice::from_ref(&m));
    let clock = shared.clock.clone();
    commit_or_fail(shared, store, batch, m, epoch, replaced, move |e| {
        Meta::SimpleDone {
            at_ms: clock.now_ms(),
            at_us: None,
            outcomes: jobs
                .into_iter()
                .map(|(job, started_us)| SimpleOutcome {
                    job,
                    started_us,
                    result: Err(format!("the results of its batch could not be stored: {e}")),
                    retry_at_ms: None,
                })
                .collect(),
        }
    });
}

/// A simple job's result over `max_slice_bytes` (as JSON) fails the job,
/// naming the cap, instead of reaching the store.
fn cap_result(
    job: JobId,
    result: Result<Option<serde_json::Value>, String>,
    cap: usize,
) -> Result<Option<serde_json::Value>, String> {
    let bytes = match &result {
        Ok(Some(v)) => serde_json::to_vec(v).map_or(0, |b| b.len()),
        _ => 0,
    };
    if bytes > cap {
        return Err(format!(
            "result of job {job} is {bytes} bytes, over the {} cap; return less, or raise max_slice_bytes",
            human_bytes(cap)
        ));
    }
    result
}

fn run_slice(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    commits: &CommitThread,
    epoch: u64,
    item: SliceItem,
) {
    let started = Instant::now();
    let Some(records) = read_input(shared, store, epoch, &item) else {
        return;
    };
    let handler = match shared.handler(&item.kind) {
        Some(Handler::Sliced(h)) => h,
        _ => {
            let msg = format!(
                "kind {:?} has no sliced handler; register it with register_sliced",
                item.kind
            );
            return fail_slice(shared, store, epoch, &item, msg, None);
        }
    };
    let ctx = JobContext {
        id: item.job,
        kind: &item.kind,
        properties: &item.properties,
        categories: &item.categories,
        source: Some(Dependencies::Local(OutputSource { shared, store })),
    };
    let outcome = handler.process_slice(&ctx, &records);
    start_trace::stamp(Phase::SliceEnded, item.job, Some(commits.worker));
    let result = SliceResult::settle(outcome, &item.categories).map(Outcome::from);
    let count = records.len() as u64;
    commit_result(
        shared,
        store,
        epoch,
        &item,
        &records,
        count,
        result,
        started,
        Some(commits),
    );
}

/// The slice's input records, decrypted; None when they cannot be read,
/// and then the slice has failed (or is failing) with the reason.
pub(crate) fn read_input(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    item: &SliceItem,
) -> Option<Vec<Vec<u8>>> {
    read_input_with(shared, store, epoch, item, |store, key| {
        store.read_slice(key)
    })
}

/// The key of slice `item`'s input.
pub(crate) fn input_key(item: &SliceItem) -> SliceKey {
    SliceKey {
        owner: item.job,
        stream: STREAM_INPUT,
        seq: item.slice,
    }
}

/// `read_input` read by `read` (a remote lease reads it packed).
pub(crate) fn read_input_with<T>(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    item: &SliceItem,
    read: impl FnOnce(&dyn SliceStore, &SliceKey) -> Result<Option<T>, StoreError>,
) -> Option<T> {
    let input_key = input_key(item);
    match read(store.as_ref(), &input_key) {
        Ok(Some(r)) => Some(r),
        Ok(None) => {
            let msg = "input slice is missing from the store".to_string();
            fail_slice_instead(shared, store, epoch, item, msg);
            None
        }
        Err(e) => {
            shared.note_damage(store, input_key, &e);
            let msg = format!("cannot read the input slice: {e}");
            fail_slice_instead(shared, store, epoch, item, msg);
            None
        }
    }
}

/// Commits what a handler made of slice `item` (here or on a remote
/// worker): its output and errors as one atomic batch, or the slice's
/// failure. `records` are the input records (only read for record
/// errors' samples: a remote commit without record errors passes none),
/// `count` how many the slice has. The lease must win `begin_commit`.
/// The output goes to the store through `commits` (a local worker's
/// commit thread) when given, else from this thread.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_result(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    item: &SliceItem,
    records: &[Vec<u8>],
    count: u64,
    result: Result<Outcome, String>,
    started: Instant,
    commits: Option<&CommitThread>,
) {
    let Outcome {
        main: output,
        by_category,
        record_errors,
    } = match result {
        Ok(r) => r,
        Err(message) => return fail_slice(shared, store, epoch, item, message, None),
    };
    let sample = |(i, message): &(usize, String)| RecordErrorSample {
        slice: item.slice,
        record_number: match &item.numbers {
            Some(n) => n.get(*i).copied().unwrap_or_default(),
            None => item.first_record.saturating_add(*i as u64),
        },
        line: line_of(item, *i),
        record: clip(records.get(*i).map(|r| r.as_slice()).unwrap_or_default()),
        message: message.clone(),
    };
    if !record_errors.is_empty() && !item.collect_errors {
        let first = sample(&record_errors[0]);
        let msg = first.message.clone();
        return fail_slice(shared, store, epoch, item, msg, Some(first));
    }
    let mut groups: Vec<ErrorGroup> = Vec::new();
    let mut error_lines = Vec::with_capacity(record_errors.len());
    for e in &record_errors {
        let s = sample(e);
        let raw = records.get(e.0).map(|r| r.as_slice()).unwrap_or_default();
        error_lines.push(error_record(&s, raw));
        merge_error_groups(
            &mut groups,
            &[ErrorGroup {
                message: s.message.clone(),
                count: 1,
                samples: vec![s],
            }],
        );
    }
    let bytes = output.stored_bytes()
        + stored_bytes(&error_lines)
        + by_category.iter().map(Written::stored_bytes).sum::<usize>();
    let cap = shared.limits.max_slice_bytes;
    if bytes > cap {
        let msg = format!(
            "output of slice {} is {bytes} bytes, over the {} cap; use a smaller slice_size, or raise max_slice_bytes",
            item.slice,
            human_bytes(cap)
        );
        return fail_slice_instead(shared, store, epoch, item, msg);
    }
    let key = |stream| SliceKey {
        owner: item.job,
        stream,
        seq: item.slice,
    };
    let written = output.len() as u64;
    let mut batch = output.add_to(Batch::new(), key(STREAM_MAIN));
    if !error_lines.is_empty() {
        batch = batch.slice(key(STREAM_ERRORS), &error_lines);
    }
    let mut written_by_category = BTreeMap::new();
    for (i, records) in by_category.into_iter().enumerate() {
        if !records.is_empty() {
            written_by_category.insert(item.categories[i].clone(), records.len() as u64);
            batch = records.add_to(batch, key(category_stream(i)));
        }
    }
    let m = Meta::SliceDone {
        job: item.job,
        slice: item.slice,
        at_ms: shared.clock.now_ms(),
        errors: record_errors.len() as u32,
        error_groups: groups,
        written: Some(written),
        written_by_category,
    };
    let batch = batch.meta(crate::meta::encode(&m));
    // The batch holds copies: the vectors go now, not after `hand`, which
    // may wait for room (a worker's memory bound, G10).
    drop(error_lines);
    if !begin(shared, epoch, item, started, count) {
        return;
    }
    let commit = SliceCommit {
        batch,
        meta: m,
        epoch,
        job: item.job,
        slice: item.slice,
    };
    match commits {
        Some(commits) => {
            commits.hand(shared, store, commit);
            start_trace::stamp(Phase::Handed, item.job, Some(commits.worker));
        }
        None => commit.run(shared, store),
    }
}

/// Commits `m` (in `batch`) for lease `epoch`; the lease ends once it is
/// durable. If the store refuses the batch as input (see `shared::poisons`),
/// the record `failed` makes is committed instead, so the work fails alone
/// rather than running again. That is a new append, which a commit callback
/// must not make (it may run on the store's writer thread), so a
/// short-lived thread makes it. `replaced`: `m` already stands in for part
/// of the outcome (a simple job's result over the cap), for this reason;
/// with whether the rest of it is as given (`CommitEnd::Replaced`). The
/// record `failed` makes replaces all of it.
fn commit_or_fail(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    batch: Batch,
    m: Meta,
    epoch: u64,
    replaced: Option<(String, bool)>,
    failed: impl FnOnce(StoreError) -> Meta + Send + 'static,
) {
    let (sh, st_store) = (shared.clone(), store.clone());
    commit(
        shared,
        store,
        batch,
        vec![m],
        move |st, applied| match applied {
            Ok(_) => st.end_commit(epoch, ended(true, replaced)),
            // Nothing was written (no file descriptor for a new segment):
            // the work goes back to the queue and runs again later.
            Err(StoreError::Unavailable { .. }) => st.end_commit(epoch, CommitEnd::NotDurable),
            Err(e) if !poisons(&e) => {
                let why = format!("the store refused the output: {e}");
                let fail =
                    move || commit_meta_as(&sh, &st_store, failed(e), epoch, Some((why, false)));
                let spawned = std::thread::Builder::new()
                    .name("booster-refused-commit".into())
                    .spawn(fail);
                if spawned.is_err() {
                    st.end_commit(epoch, CommitEnd::NotDurable);
                }
            }
            Err(_) => st.end_commit(epoch, CommitEnd::NotDurable),
        },
    );
}

/// Bytes a slice's records take in a frame before compression.
pub(crate) fn stored_bytes(records: &[Vec<u8>]) -> usize {
    records
        .iter()
        .map(|r| r.len() + crate::upload::RECORD_OVERHEAD)
        .sum()
}

/// `64 MiB`, `64 KiB` or `1000 bytes`: a cap as people set it.
fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// Marks the lease committing; false when it was fenced.
fn begin(shared: &Shared, epoch: u64, item: &SliceItem, started: Instant, records: u64) -> bool {
    let mut st = shared.state.lock();
    st.book.metrics.record_slice(started.elapsed(), records);
    st.begin_commit(epoch, &item.claim()).is_some()
}

/// Fails slice `item` as its outcome says (the handler failed it, or a
/// record error without `collect_errors`).
fn fail_slice(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    item: &SliceItem,
    message: String,
    sample: Option<RecordErrorSample>,
) {
    fail_slice_as(shared, store, epoch, item, message, sample, false)
}

/// Fails slice `item` in place of an outcome the node could not store
/// (over the cap, its input unreadable): a remote worker is told its
/// output was not stored, and why (`CommitEnd::Replaced`).
fn fail_slice_instead(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    item: &SliceItem,
    message: String,
) {
    fail_slice_as(shared, store, epoch, item, message, None, true)
}

fn fail_slice_as(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    item: &SliceItem,
    message: String,
    sample: Option<RecordErrorSample>,
    replaces: bool,
) {
    let replaced = replaces.then(|| (message.clone(), false));
    let now_ms = shared.clock.now_ms();
    let m = Meta::SliceFailed {
        job: item.job,
        slice: item.slice,
        at_ms: now_ms,
        message,
        sample,
        retry_at_ms: item
            .retry
            .retry_at_ms(item.retries, now_ms, crate::random_draw()),
    };
    if begin(shared, epoch, item, Instant::now(), 0) {
        commit_meta_as(shared, store, m, epoch, replaced);
    }
}

fn run_hook(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    item: HookItem,
    before: bool,
) {
    let ctx = JobContext {
        id: item.job,
        kind: &item.kind,
        properties: &item.properties,
        categories: &item.categories,
        source: Some(Dependencies::Local(OutputSource { shared, store })),
    };
    let result = match shared.handler(&item.kind) {
        Some(Handler::Sliced(h)) => catch_unwind(AssertUnwindSafe(|| {
            if before {
                h.before_batch(&ctx)
            } else {
                h.after_batch(&ctx)
            }
        }))
        .unwrap_or_else(|p| Err(HandlerError(format!("panicked: {}", panic_message(&*p))))),
        _ => Err(HandlerError(format!(
            "kind {:?} has no sliced handler; register it with register_sliced",
            item.kind
        ))),
    };
    commit_hook(
        shared,
        store,
        epoch,
        item.job,
        before,
        result.map_err(|e| e.0),
    );
}

/// Commits a before or after hook's result for lease `epoch` (run here or
/// on a remote worker); the lease must win `begin_commit`.
pub(crate) fn commit_hook(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    job: JobId,
    before: bool,
    result: Result<(), String>,
) {
    let at_ms = shared.clock.now_ms();
    let m = match result {
        Ok(()) if before => Meta::BeforeDone { job, at_ms },
        Ok(()) => Meta::AfterDone { job, at_ms },
        Err(e) => Meta::HookFailed {
            job,
            at_ms,
            message: format!(
                "{} failed: {e}",
                if before {
                    "before_batch"
                } else {
                    "after_batch"
                },
            ),
        },
    };
    let claim = if before {
        LeaseWork::Before { job }
    } else {
        LeaseWork::After { job }
    };
    if shared.state.lock().begin_commit(epoch, &claim).is_some() {
        commit_meta(shared, store, m, epoch);
    }
}

fn line_of(item: &SliceItem, i: usize) -> Option<u64> {
    match &item.lines {
        Some(lines) => lines.get(i).copied(),
        None => item.line_first.map(|l| l.saturating_add(i as u64)),
    }
}

/// A record as text for displays (status samples), cut to a readable
/// length. Never what is stored in `errors`: that is `error_record`.
pub(crate) fn clip(record: &[u8]) -> String {
    const MAX: usize = 1000;
    let s = String::from_utf8_lossy(&record[..record.len().min(MAX)]);
    s.into_owned()
}

/// One record of the `errors` category: a JSON object per failed record,
/// holding the record's exact bytes: `record` as text when they are UTF-8,
/// else `record_base64`.
pub(crate) fn error_record(s: &RecordErrorSample, raw: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let mut entry = serde_json::json!({
        "record_number": s.record_number,
        "line": s.line,
        "message": s.message,
    });
    match std::str::from_utf8(raw) {
        Ok(text) => entry["record"] = text.into(),
        Err(_) => {
            entry["record_base64"] = base64::engine::general_purpose::STANDARD.encode(raw).into()
        }
    }
    serde_json::to_vec(&entry).expect("json values serialize")
}

/// Commits one meta record for lease `epoch`; the lease ends once it is durable.
fn commit_meta(shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, m: Meta, epoch: u64) {
    commit_meta_as(shared, store, m, epoch, None)
}

/// `commit_meta`; `replaced`: the record stands in for an outcome the
/// node could not store, for this reason (and whether part of it is as
/// given: never, for one record made in its place).
fn commit_meta_as(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    m: Meta,
    epoch: u64,
    replaced: Option<(String, bool)>,
) {
    let batch = batch_of(std::slice::from_ref(&m));
    commit(shared, store, batch, vec![m], move |st, applied| {
        st.end_commit(epoch, ended(applied.is_ok(), replaced))
    });
}

/// How a commit that is durable or not ended, `replaced` or as given.
fn ended(durable: bool, replaced: Option<(String, bool)>) -> CommitEnd {
    match (durable, replaced) {
        (false, _) => CommitEnd::NotDurable,
        (true, None) => CommitEnd::Durable,
        (true, Some((why, partial))) => CommitEnd::Replaced { why, partial },
    }
}
