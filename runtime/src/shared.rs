//! What the actors, worker threads and API handles share: the state mutex,
//! the wake-up signals and the handler registry. The store itself is held
//! separately (`Arc<dyn SliceStore>`), so commit callbacks that run on the store's
//! own thread never own it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use booster_store::{Batch, SliceKey, StoreError};

use crate::slice_store::SliceStore;
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{oneshot, Notify};

use crate::actors::SupervisorMsg;
use crate::meta::{self, Meta};
use crate::state::State;
use crate::{RecordHandler, RuntimeError, SimpleHandler};

#[derive(Clone)]
pub enum Handler {
    Simple(Arc<dyn SimpleHandler>),
    Sliced(Arc<dyn RecordHandler>),
}

pub type Applied = Result<Vec<Result<(), RuntimeError>>, StoreError>;

/// Caps on what one slice may hold (from `RuntimeOptions`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_slice_records: usize,
    pub max_slice_bytes: usize,
    /// `RuntimeOptions::listing_rows_per_call`.
    pub listing_rows_per_call: u64,
}

/// Whether a failed append poisons the runtime. Only failures of the
/// storage itself do (G9: after a failed write or fsync nothing more may be
/// written until reopen). An error about the batch (a frame over the store's
/// size cap, too many records) fails only the request that made it, and so
/// does `Unavailable` (nothing was written: no file descriptor was left).
pub fn poisons(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Poisoned { .. }
            | StoreError::DiskFull { .. }
            | StoreError::Io { .. }
            | StoreError::Closed
    )
}

pub struct Shared {
    pub state: Mutex<State>,
    /// Signalled when work may have become leasable (workers wait on it).
    pub work_ready: Condvar,
    /// Signalled when the runtime may have become idle.
    pub idle: Notify,
    pub handlers: RwLock<HashMap<Arc<str>, Handler>>,
    /// Appends hold it shared; compaction holds it exclusively so its
    /// snapshot sees every acknowledged record.
    pub append_gate: RwLock<()>,
    pub inflight_commits: AtomicUsize,
    /// Slice commits handed to a worker's commit thread and not yet in
    /// `inflight_commits` (nor ended otherwise): shutdown waits for both
    /// before its last checkpoint (`worker/commit_thread.rs`).
    pub handed_commits: AtomicUsize,
    /// The timer's checkpoint is on its way (one at a time).
    pub checkpointing: AtomicBool,
    /// Background compaction's setting and state (the timer's).
    pub auto_compaction: crate::compaction::AutoCompaction,
    /// Slices handed to the upload pool and not yet passed to the store.
    pub upload_tasks: AtomicUsize,
    /// Worker threads alive (a hung one counts until its handler returns).
    pub workers_alive: Mutex<usize>,
    pub workers_gone: Condvar,
    pub supervisor: OnceLock<ractor::ActorRef<SupervisorMsg>>,
    pub limits: Limits,
    /// The runtime's clock (`RuntimeOptions::clock`; also `Book::clock`).
    pub clock: Arc<dyn crate::Clock>,
    /// Downloads reading ahead now (`read_ahead::DOWNLOADS_READING_AHEAD`
    /// at most).
    pub(crate) read_ahead_slots: Arc<crate::read_ahead::ReadAheadSlots>,
    /// `RuntimeOptions::codec_threads`: the upload pool's threads and a
    /// download's readers.
    pub codec_threads: usize,
}

impl Shared {
    pub fn new(state: State, limits: Limits) -> Shared {
        let clock = state.book.clock.clone();
        Shared {
            clock,
            state: Mutex::new(state),
            work_ready: Condvar::new(),
            idle: Notify::new(),
            handlers: RwLock::new(HashMap::new()),
            append_gate: RwLock::new(()),
            inflight_commits: AtomicUsize::new(0),
            handed_commits: AtomicUsize::new(0),
            checkpointing: AtomicBool::new(false),
            auto_compaction: Default::default(),
            upload_tasks: AtomicUsize::new(0),
            workers_alive: Mutex::new(0),
            workers_gone: Condvar::new(),
            supervisor: OnceLock::new(),
            limits,
            read_ahead_slots: Default::default(),
            codec_threads: crate::upload::codec_threads(),
        }
    }

    /// With `RuntimeOptions::codec_threads` (at least 1).
    pub fn with_codec_threads(mut self, threads: usize) -> Shared {
        self.codec_threads = threads.max(1);
        self
    }

    /// Wakes waiting workers and idle waiters after a state change. Call it
    /// without holding the state lock.
    pub fn changed(&self) {
        self.work_ready.notify_all();
        if self.is_idle() {
            self.idle.notify_waiters();
        }
    }

    /// Nothing runs or can run. A poisoned store counts as idle once its
    /// leases are gone: nothing will run until the runtime is reopened.
    pub fn is_idle(&self) -> bool {
        if self.inflight_commits.load(Ordering::Acquire) > 0 {
            return false;
        }
        let st = self.state.lock();
        st.is_idle() || (st.book.poisoned.is_some() && st.book.leases.is_empty())
    }

    /// A read of `key` found corruption the open did not (a sealed frame is
    /// checked only when read): it joins the damage list, so the job whose
    /// slice it was shows it (`JobStatus::damage`) from now on, and, the
    /// first time, it is kept as an incident (`Meta::Recovered`), so later
    /// processes show it too without reading the slice again. A store that
    /// opened read-only (a full disk) keeps it in memory only.
    pub fn note_damage(
        self: &Arc<Self>,
        store: &Arc<dyn SliceStore>,
        key: SliceKey,
        e: &StoreError,
    ) {
        let Some(incident) = self.damage_found(key, e) else {
            return;
        };
        if self.state.lock().book.store_read_only {
            return;
        }
        let m = Meta::Recovered {
            at_ms: self.clock.now_ms(),
            incidents: vec![incident],
        };
        commit(
            self,
            store,
            batch_of(std::slice::from_ref(&m)),
            vec![m],
            |_, _| {},
        );
    }

    /// Adds the damage to the list; the incident to log when it is new to
    /// this process and to the log.
    fn damage_found(&self, key: SliceKey, e: &StoreError) -> Option<crate::Incident> {
        let StoreError::Corrupt {
            segment_id,
            path,
            offset,
            what,
        } = e
        else {
            return None;
        };
        let mut st = self.state.lock();
        let known =
            st.book.damage.iter().any(|d| {
                d.segment_id == *segment_id && d.offset == *offset && d.slices.contains(&key)
            });
        if known {
            return None;
        }
        let damage = booster_store::Damage {
            segment_id: *segment_id,
            path: path.clone(),
            offset: *offset,
            end: *offset,
            what: what.clone(),
            slices: vec![key],
            meta_lost: false,
            identified: true,
        };
        let logged = st.book.incidents.iter().any(|i| {
            i.segment == *segment_id
                && i.offset == *offset
                && matches!(&i.kind, crate::IncidentKind::Damaged { jobs, .. } if jobs.contains(&key.owner))
        });
        let incident = (!logged).then(|| {
            let what = format!("{what} (found when {} was read)", describe_key(key));
            let next_id = st.book.next_id;
            crate::recovered::damage_incident(
                &damage,
                what,
                vec![key.owner],
                next_id,
                self.clock.now(),
            )
        });
        st.book.damage.push(damage);
        incident
    }

    pub fn handler(&self, kind: &str) -> Option<Handler> {
        self.handlers.read().get(kind).cloned()
    }
}

/// The writer: appends `batch` (which carries the encoded `metas`) through
/// the store's group commit. Once it is durable, on the store's commit
/// thread and in commit order, `metas` are applied to the state and `then`
/// runs under the same lock. This applies nothing before durability; an
/// urgent `Created` written through it by `placement.rs` was applied
/// there already, at placement, and is only confirmed here.
/// A storage failure poisons the runtime; an error about the batch itself
/// (see `poisons`) reaches `then` and changes nothing else.
///
/// Returns whether the batch was placed in the log before it returned
/// (`Store::append_placing`; `placement.rs`).
pub fn commit(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    batch: Batch,
    metas: Vec<Meta>,
    then: impl FnOnce(&mut State, Applied) + Send + 'static,
) -> bool {
    // The gate first, then the in-flight count: `compact` holds the gate
    // exclusively and waits for the count to drop to zero, so a commit
    // counted while it waits for the gate would never be let in.
    let _gate = shared.append_gate.read();
    append_counted(shared, store, batch, metas, then)
}

/// `commit` for a caller that holds the append gate exclusively (a
/// checkpoint): counted in flight like any commit, applied the same way.
pub fn append_counted(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    batch: Batch,
    metas: Vec<Meta>,
    then: impl FnOnce(&mut State, Applied) + Send + 'static,
) -> bool {
    shared.inflight_commits.fetch_add(1, Ordering::AcqRel);
    let started = Instant::now();
    let meta_bytes = batch.meta_bytes();
    let sh = shared.clone();
    let done = CalledOnce {
        shared: shared.clone(),
        appender: std::thread::current().id(),
        then: Some(move |res: Result<booster_store::Receipt, StoreError>| {
            {
                let mut st = sh.state.lock();
                st.book.metrics.record_commit(started.elapsed());
                let applied = match res {
                    Ok(_) => {
                        st.count_meta_bytes(meta_bytes);
                        Ok(metas.iter().map(|m| st.apply(m)).collect())
                    }
                    Err(e) => {
                        if poisons(&e) {
                            st.book.poisoned.get_or_insert_with(|| e.to_string());
                            // No job finishes now: wake every `wait`, which
                            // then returns the poison.
                            st.book.waiters.clear();
                        }
                        Err(e)
                    }
                };
                then(&mut st, applied);
            }
            sh.inflight_commits.fetch_sub(1, Ordering::AcqRel);
            sh.changed();
        }),
    };
    store.append_placing(batch, Box::new(move |res| done.call(res)))
}

/// A commit callback that the store may drop uncalled (a panic in
/// `Batch::prepare`, or on the store's way to the log). Dropped while
/// the panic unwinds the thread that appended, it only takes the commit
/// out of `inflight_commits`: the panic reaches that caller, which owns
/// what the commit was for (a worker's `on_panic` hands the lease back or
/// fails the slice, and counts the panic). Dropped anywhere else, it gets
/// `Unavailable` (nothing was written; a slice runs again). Either way
/// checkpoints and `shutdown`, which wait on that count, never wait for
/// good (G4).
struct CalledOnce<F: FnOnce(Result<booster_store::Receipt, StoreError>)> {
    then: Option<F>,
    shared: Arc<Shared>,
    appender: std::thread::ThreadId,
}

impl<F: FnOnce(Result<booster_store::Receipt, StoreError>)> CalledOnce<F> {
    fn call(mut self, res: Result<booster_store::Receipt, StoreError>) {
        if let Some(f) = self.then.take() {
            f(res);
        }
    }
}

impl<F: FnOnce(Result<booster_store::Receipt, StoreError>)> Drop for CalledOnce<F> {
    fn drop(&mut self) {
        let Some(f) = self.then.take() else {
            return;
        };
        if std::thread::panicking() && std::thread::current().id() == self.appender {
            self.shared.inflight_commits.fetch_sub(1, Ordering::AcqRel);
            self.shared.changed();
        } else {
            f(Err(StoreError::Unavailable {
                context: "the commit was dropped before the store took it (a panic on its way)"
                    .into(),
                source: std::io::Error::other("commit dropped uncalled"),
            }));
        }
    }
}

pub fn batch_of(metas: &[Meta]) -> Batch {
    metas
        .iter()
        .fold(Batch::new(), |b, m| b.meta(meta::encode(m)))
}

/// Writes meta records and waits until they are durable and applied.
/// Returns each record's apply result (a refused transition is an Err).
pub async fn write(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    metas: Vec<Meta>,
) -> Result<Vec<Result<(), RuntimeError>>, RuntimeError> {
    write_with(shared, store, metas, false).await
}

/// `write`, in the store's urgent lane when `urgent` (`Batch::urgent`).
pub async fn write_with(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    metas: Vec<Meta>,
    urgent: bool,
) -> Result<Vec<Result<(), RuntimeError>>, RuntimeError> {
    write_pinned(shared, store, metas, urgent, Vec::new()).await
}

/// `write_with` for records whose rows the caller pinned
/// (`TableView::pin`): they are unpinned once the records applied, or
/// their write failed.
pub async fn write_pinned(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    metas: Vec<Meta>,
    urgent: bool,
    pins: Vec<crate::JobId>,
) -> Result<Vec<Result<(), RuntimeError>>, RuntimeError> {
    let poisoned = {
        let mut st = shared.state.lock();
        let cause = st.book.poisoned.clone();
        if cause.is_some() {
            pins.iter().for_each(|&id| st.table.unpin(id));
        }
        cause
    };
    if let Some(cause) = poisoned {
        return Err(RuntimeError::Store(StoreError::Poisoned { cause }));
    }
    let (tx, rx) = oneshot::channel();
    let batch = batch_of(&metas);
    let batch = if urgent { batch.urgent() } else { batch };
    commit(shared, store, batch, metas, move |st, applied| {
        pins.iter().for_each(|&id| st.table.unpin(id));
        let _ = tx.send(applied);
    });
    rx.await
        .map_err(|_| RuntimeError::ShuttingDown)?
        .map_err(RuntimeError::Store)
}

/// Writes one meta record; its apply result is the answer.
pub async fn write_one(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    m: Meta,
) -> Result<(), RuntimeError> {
    write(shared, store, vec![m]).await?.pop().unwrap_or(Ok(()))
}

/// A slice key as an incident names it.
fn describe_key(key: SliceKey) -> String {
    format!("job {} stream {} slice {}", key.owner, key.stream, key.seq)
}
