//! The embedding API: `Runtime::open` and the handle's methods. Every
//! control call checks the transition first (fast refusal), then writes its
//! meta record and answers with the result of applying it once durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_store::fs::FileLayer;
use booster_store::{RecoveryReport, Store, StoreError, StoreOptions};
use crossbeam_channel::Sender;
use ractor::{Actor, ActorRef};

use crate::actors::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::clock::from_ms;
use crate::compaction::{compact_blocking, CompactionMode};
use crate::lost::LostCreated;
use crate::meta::{self, Control, Meta};
use crate::shared::{write_one, Handler, Limits, Shared};
use crate::slice_store::SliceStore;
use crate::state::{Book, HandlerShape, State};
use crate::status::status_of;
use crate::table::{Body, UploadState};
use crate::upload::{start_pool, UploadSlice, Uploader};
use crate::waiting::Refusal;
use crate::{
    transition, Category, Download, Incident, JobContext, JobFilter, JobId, JobQuery, JobShape,
    JobSpec, JobStatus, JobsPage, KindSettings, KindView, LeaseInfo, LeasePolicy, Metrics, Missing,
    RecordHandler, RetryPolicy, Runtime, RuntimeError, RuntimeOptions, SeparatedDownload,
    SimpleHandler, StoreStats, VerifyReport, WorkerStatus,
};

pub struct Handle {
    shared: Arc<Shared>,
    store: Arc<dyn SliceStore>,
    pool: Sender<UploadSlice>,
    supervisor: ActorRef<SupervisorMsg>,
    /// What the store's recovery found and did on open (torn tails cut).
    recovery: RecoveryReport,
}

impl Handle {
    /// Stops leasing and workers; waits up to `wait` for worker threads to exit.
    fn stop(&self, wait: Duration) {
        self.shared.state.lock().book.stopping = true;
        self.shared.work_ready.notify_all();
        self.supervisor.stop(None);
        let deadline = Instant::now() + wait;
        {
            let mut alive = self.shared.workers_alive.lock();
            while *alive > 0 {
                if self
                    .shared
                    .workers_gone
                    .wait_until(&mut alive, deadline)
                    .timed_out()
                {
                    break;
                }
            }
        }
        // Upload threads hold the store while they encode a slice; wait for
        // them so the store (and its directory lock) goes with this handle.
        while self.shared.upload_tasks.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Upload-pool threads and a hung worker may still hold clones of the
        // store; closing it here releases the directory lock before this
        // returns (their late appends fail with `Closed`, and a late commit
        // was fenced anyway). A failure to seal is not worth reporting: the
        // next open seals an unsealed last segment.
        let _ = self.store.shutdown();
    }
}

impl Drop for Handle {
    /// The last handle went away without `shutdown`: stop like a crash
    /// would (acknowledged work is durable; leased work runs again on open).
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

pub(crate) fn validate(spec: &JobSpec, limits: &Limits) -> Result<(), RuntimeError> {
    if !(1..=100).contains(&spec.priority) {
        return Err(RuntimeError::BadPriority(i64::from(spec.priority)));
    }
    if spec.kind.is_empty() {
        return Err(RuntimeError::Invalid(
            "a job needs a kind: the name of a registered handler".into(),
        ));
    }
    if let JobShape::Sliced {
        slice_size: Some(0),
        ..
    } = spec.shape
    {
        return Err(RuntimeError::Invalid(
            "slice_size must be at least 1 record".into(),
        ));
    }
    if let JobShape::Sliced {
        slice_size: Some(n),
        ..
    } = spec.shape
    {
        check_slice_size(n, limits)?;
    }
    match spec.shape {
        JobShape::Sliced { .. } => crate::category::check_categories(&spec.categories)?,
        JobShape::Simple { .. } if !spec.categories.is_empty() => {
            return Err(RuntimeError::Invalid(
                "categories are for sliced jobs; a simple job returns one result".into(),
            ))
        }
        JobShape::Simple { .. } => {}
    }
    if spec.max_workers == Some(0) {
        return Err(RuntimeError::Invalid(
            "max_workers must be at least 1 (or none for no limit)".into(),
        ));
    }
    if spec
        .singleton
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 256)
    {
        return Err(RuntimeError::Invalid(
            "a singleton key is 1 to 256 bytes".into(),
        ));
    }
    Ok(())
}

/// A slice of `records` records is within the cap, or a clear refusal.
fn check_slice_size(records: usize, limits: &Limits) -> Result<(), RuntimeError> {
    if records > limits.max_slice_records {
        return Err(RuntimeError::Invalid(format!(
            "slice_size {records} is over the cap of {} records per slice; use a smaller slice_size",
            limits.max_slice_records
        )));
    }
    Ok(())
}

impl Runtime {
    /// Opens the data directory, replays the store, starts the actors (and
    /// workers when `opts.start_workers`). Interrupted work resumes.
    pub async fn open(opts: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let store_opts = StoreOptions {
            zstd_level: opts.zstd_level,
            master_key: opts.master_key.clone(),
            ..StoreOptions::default()
        };
        let dir = opts.data_dir.clone();
        Runtime::open_on(opts, move || Store::open(&dir, store_opts)).await
    }

    /// `open` on the store that `open_store` opens (on a blocking thread),
    /// on any file layer: the power-loss tests run the runtime on the
    /// store's simulated file system (`Store::open_with(SimFileLayer, ..)`).
    /// `opts.data_dir`, `master_key` and `zstd_level` are then up to it.
    #[doc(hidden)]
    pub async fn open_on<F: FileLayer>(
        opts: RuntimeOptions,
        open_store: impl FnOnce() -> Result<(Store<F>, RecoveryReport), StoreError> + Send + 'static,
    ) -> Result<Runtime, RuntimeError> {
        Runtime::open_wrapped(opts, open_store, |s| s).await
    }

    /// `open_on`, the runtime then using the store through `wrap` (tests
    /// put a store that fails or panics on purpose between the two).
    pub(crate) async fn open_wrapped<F: FileLayer>(
        opts: RuntimeOptions,
        open_store: impl FnOnce() -> Result<(Store<F>, RecoveryReport), StoreError> + Send + 'static,
        wrap: impl FnOnce(Arc<dyn SliceStore>) -> Arc<dyn SliceStore> + Send + 'static,
    ) -> Result<Runtime, RuntimeError> {
        if opts.reserved_workers > 0 && opts.reserved_workers >= opts.workers.max(1) {
            return Err(RuntimeError::Invalid(format!(
                "reserved_workers {} of {} worker(s) leaves none for jobs below priority {}; \
                 reserve fewer, or run more workers",
                opts.reserved_workers,
                opts.workers.max(1),
                opts.reserved_priority
            )));
        }
        let limits = Limits {
            max_slice_records: opts.max_slice_records.clamp(1, u32::MAX as usize),
            max_slice_bytes: opts.max_slice_bytes.max(1),
            listing_rows_per_call: opts.listing_rows_per_call.max(1),
        };
        let clock = opts.clock.clone();
        let codec_threads = opts.codec_threads;
        let (store, state, recovery) =
            tokio::task::spawn_blocking(move || -> Result<_, RuntimeError> {
                let (store, mut report) = open_store()?;
                let mut book = Book::new(
                    opts.workers,
                    opts.lease_timeout.as_millis() as u64,
                    opts.slice_size.clamp(1, limits.max_slice_records) as u32,
                );
                book.live = false;
                book.lease_policy = opts.lease_policy;
                book.max_lease_batch = opts.max_lease_batch.max(1);
                book.max_remote_batch_bytes = limits.max_slice_bytes;
                book.urgent_priority = opts.urgent_priority;
                book.reserved_workers = opts.reserved_workers;
                book.reserved_priority = opts.reserved_priority;
                book.runs_workers = opts.start_workers;
                book.auto_checkpoint = opts.auto_checkpoint;
                book.clock = opts.clock.clone();
                let mut state = State::new(book);
                // A meta frame that rotted in a sealed segment is left out
                // and named (degraded open): the rest replays, and the
                // damage joins what recovery found, for the CLI and the jobs.
                let (records, lost) = store.meta_records_skipping_damage()?;
                let store: Arc<dyn SliceStore> = wrap(Arc::new(store));
                for d in lost {
                    let known = report
                        .damaged
                        .iter()
                        .any(|k| k.segment_id == d.segment_id && k.offset == d.offset);
                    if !known {
                        report.damaged.push(d);
                    }
                }
                state.book.damage = report.damaged.clone();
                state.book.store_read_only = report.read_only;
                let mut lost = report
                    .damaged
                    .iter()
                    .any(|d| d.meta_lost)
                    .then(LostCreated::default);
                // Row pages of the checkpoint that could not be read: named
                // like any damaged range (their rows show as lost).
                let pages_lost = replay_log(&store, &mut state, &records, lost.as_mut())?;
                report.damaged.extend(pages_lost);
                if let Some(lost) = lost {
                    let reason = crate::lost::reason(&report.damaged);
                    for id in lost.lost(state.book.next_id) {
                        state.insert_lost(id, &reason);
                    }
                }
                // Waiting jobs whose settle waited for the lost rows.
                state.settle_after_replay();
                // Frames an unknown loss took, and slices whose records went
                // with any damaged range, are named on their jobs: by the
                // first range that names nothing (it may have held them),
                // else by the first that lost meta records.
                let missing: Vec<_> =
                    crate::lost::missing_frames(&*store, &state, &report.damaged)?
                        .into_iter()
                        .filter(|k| !report.damaged.iter().any(|d| d.slices.contains(k)))
                        .collect();
                let named = report
                    .damaged
                    .iter()
                    .position(|d| !d.identified)
                    .or_else(|| report.damaged.iter().position(|d| d.meta_lost));
                state.book.damage = report.damaged.clone();
                match (named, missing.is_empty()) {
                    (_, true) => {}
                    (Some(i), false) => {
                        report.damaged[i].slices.extend(missing);
                        state.book.damage = report.damaged.clone();
                    }
                    // No range of this open explains it: the log lost the
                    // records before (a store salvaged, or restored after
                    // damage). Named on the job, never a silent hole; the
                    // store itself is whole, so the recovery report is not
                    // told.
                    (None, false) => state.book.damage.push(booster_store::Damage {
                        segment_id: 0,
                        path: std::path::PathBuf::from("(the job log)"),
                        offset: 0,
                        end: 0,
                        what: "slices are missing between a job's first and last ones: \
                               their upload records were lost before this open"
                            .into(),
                        slices: missing,
                        meta_lost: false,
                        identified: true,
                    }),
                }
                state.release_scheduled(opts.clock.now_ms());
                state.book.last_checkpoint_ms = opts.clock.now_ms();
                state.book.fleet.set_opened(opts.clock.now_ms());
                state.book.live = true;
                Ok((store, state, report))
            })
            .await
            .map_err(|e| RuntimeError::Invalid(format!("open failed: {e}")))??;
        // Only a process that runs work settles what the last one left (a
        // read-only open writes nothing); the directory lock means no other
        // process can still be uploading.
        let interrupted: Vec<JobId> = state
            .table
            .values()
            .filter(|j| {
                opts.start_workers
                    && !j.is_terminal()
                    && j.sliced().is_some_and(|s| s.upload == UploadState::Open)
            })
            .map(|j| j.id)
            .collect();
        let generation = state.book.generation + 1;
        if opts.start_workers && generation > crate::state::MAX_GENERATION {
            return Err(RuntimeError::Invalid(format!(
                "this data directory was opened by {} processes that run work, the most lease epochs can tell apart; copy its jobs to a new one",
                crate::state::MAX_GENERATION
            )));
        }
        let incidents =
            crate::recovered::new_incidents(&recovery, &state, opts.start_workers, clock.now());
        let shared = Arc::new(Shared::new(state, limits).with_codec_threads(codec_threads));
        shared.auto_compaction.configure(
            opts.auto_compact && opts.start_workers && !recovery.read_only,
            opts.auto_compact_min_dead_bytes,
        );
        // What this open cut or found, into the log before anything else.
        // A read-only open only writes the torn tails it cut itself, and a
        // failure to (a full disk) does not stop it: stderr still says it.
        if !incidents.is_empty() && !recovery.read_only {
            let m = Meta::Recovered {
                at_ms: clock.now_ms(),
                incidents,
            };
            let written = write_one(&shared, &store, m).await;
            if opts.start_workers {
                written?;
            }
        }
        // Durable before the first lease: every epoch this process hands
        // out carries the generation, so none repeats one of an earlier open.
        if opts.start_workers {
            let m = Meta::Opened {
                generation,
                at_ms: clock.now_ms(),
            };
            write_one(&shared, &store, m).await?;
            // The options' retention, stored when it differs.
            let stored = shared.state.lock().book.retention;
            if let Some(retention) = opts.retention.filter(|r| *r != stored) {
                let m = Meta::Retention {
                    at_ms: clock.now_ms(),
                    retention,
                };
                write_one(&shared, &store, m).await?;
            }
        }
        for job in interrupted {
            let reason = crate::lost::upload_reason(&recovery.damaged);
            let at_ms = Some(clock.now_ms());
            write_one(&shared, &store, Meta::UploadFailed { job, reason, at_ms }).await?;
        }
        let pool = start_pool(shared.codec_threads);
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                shared: shared.clone(),
                store: Arc::downgrade(&store),
                start_workers: opts.start_workers,
            },
        )
        .await
        .map_err(|e| RuntimeError::Invalid(format!("cannot start the supervisor: {e}")))?;
        let _ = shared.supervisor.set(supervisor.clone());
        Ok(Runtime {
            inner: Arc::new(Handle {
                shared,
                store,
                pool,
                supervisor,
                recovery,
            }),
        })
    }

    /// What the store's recovery found and did when this runtime opened:
    /// every torn tail it cut (segment, offset, bytes), for the caller to
    /// show or log.
    /// Every incident recovery logged in this data directory (torn tails
    /// it cut, damaged ranges it opened without), oldest first.
    pub fn incidents(&self) -> Vec<Incident> {
        self.shared().state.lock().book.incidents.clone()
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    pub(crate) fn store(&self) -> &Arc<dyn SliceStore> {
        &self.inner.store
    }

    fn register(&self, kind: &str, handler: Handler, shape: HandlerShape) {
        let kind: Arc<str> = Arc::from(kind);
        let refuses: Refusal = match handler.clone() {
            Handler::Simple(h) => Arc::new(move |job: &JobContext<'_>| h.refuses(job)),
            Handler::Sliced(h) => Arc::new(move |job: &JobContext<'_>| h.refuses(job)),
        };
        self.shared().handlers.write().insert(kind.clone(), handler);
        {
            let mut st = self.shared().state.lock();
            let conf = st.book.kinds.entry(kind.clone()).or_default();
            conf.handler = Some(shape);
            conf.refuses = Some(refuses);
            st.reconsider(&kind);
        }
        self.shared().changed();
    }

    /// The kinds a handler is registered for in this process, sorted: what
    /// a submitter that runs the work here may ask for.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .shared()
            .handlers
            .read()
            .keys()
            .map(|k| k.to_string())
            .collect();
        kinds.sort();
        kinds
    }

    /// The kinds a job may be submitted of, sorted: those with a handler
    /// here, those a connected worker process runs, and those of any job
    /// the table has held (durable kind ids), so a kind whose workers are
    /// away (a service's deploy, a node restart) is still taken and its
    /// jobs wait for them, while a name never seen is refused as a typo.
    pub fn submittable_kinds(&self) -> Vec<String> {
        let mut kinds = self.kinds();
        kinds.extend(
            self.worker_processes()
                .into_iter()
                .filter(|p| p.worker.is_some())
                .flat_map(|p| p.kinds),
        );
        let st = self.shared().state.lock();
        kinds.extend(st.book.kind_ids.iter().map(|(_, name)| name.to_string()));
        drop(st);
        kinds.sort();
        kinds.dedup();
        kinds
    }

    pub fn register_sliced(&self, kind: &str, handler: Arc<dyn RecordHandler>) {
        self.register(kind, Handler::Sliced(handler), HandlerShape::Sliced);
    }

    pub fn register_simple(&self, kind: &str, handler: Arc<dyn SimpleHandler>) {
        self.register(kind, Handler::Simple(handler), HandlerShape::Simple);
    }

    /// When work of `kind` whose lease keeps expiring gives up, and an
    /// optional bound on one lease (`LeasePolicy`). Applies from the next
    /// lease; a setting of this process, not stored.
    pub fn set_lease_policy(&self, kind: &str, policy: LeasePolicy) {
        self.shared()
            .state
            .lock()
            .book
            .kinds
            .entry(Arc::from(kind))
            .or_default()
            .lease = Some(policy);
    }

    /// How failed simple jobs and failed slices of `kind` run again
    /// automatically.
    pub fn set_retry_policy(&self, kind: &str, policy: RetryPolicy) {
        self.shared()
            .state
            .lock()
            .book
            .kinds
            .entry(Arc::from(kind))
            .or_default()
            .retry = policy;
    }

    /// Durable enqueue. A sliced job is created waiting for its upload.
    pub async fn submit(&self, spec: JobSpec) -> Result<JobId, RuntimeError> {
        Ok(self.submit_many(vec![spec]).await?[0])
    }

    /// Many jobs, one durable group commit.
    pub async fn submit_many(&self, specs: Vec<JobSpec>) -> Result<Vec<JobId>, RuntimeError> {
        for s in &specs {
            validate(s, &self.shared().limits)?;
            if s.cron.is_some() {
                return Err(RuntimeError::Invalid(
                    "a job's cron run is set by the runtime; add a cron entry (add_cron) instead"
                        .into(),
                ));
            }
        }
        submit_specs(self.shared(), self.store(), specs).await
    }

    /// A batch: `jobs` and an on-complete job, in one durable commit. The
    /// on-complete job waits for every job of the batch to finish
    /// (completed, failed or aborted; it is created with `after` = the
    /// batch's ids and `DependencyFailure::Run`), then runs, once: it is
    /// one job, made with the batch, so no restart can make or fire it
    /// twice, and no crash can leave a batch without it. Its handler reads
    /// the batch's jobs with `JobContext::after` and `after_output`.
    /// Returns the jobs' ids, in order, and the on-complete job's.
    pub async fn submit_batch(
        &self,
        jobs: Vec<JobSpec>,
        on_complete: JobSpec,
    ) -> Result<(Vec<JobId>, JobId), RuntimeError> {
        if jobs.is_empty() {
            return Err(RuntimeError::Invalid(
                "a batch needs at least one job before its on-complete job".into(),
            ));
        }
        if !on_complete.after.is_empty() {
            return Err(RuntimeError::Invalid(
                "a batch's on-complete job runs after the batch's jobs; give it no after of its own"
                    .into(),
            ));
        }
        for s in jobs.iter().chain([&on_complete]) {
            validate(s, &self.shared().limits)?;
            if s.cron.is_some() {
                return Err(RuntimeError::Invalid(
                    "a job's cron run is set by the runtime; add a cron entry (add_cron) instead"
                        .into(),
                ));
            }
        }
        let mut ids =
            submit_specs_then(self.shared(), self.store(), jobs, Some(on_complete)).await?;
        let last = ids.pop().expect("the on-complete job has an id");
        Ok((ids, last))
    }

    pub async fn upload(&self, job: JobId) -> Result<Uploader, RuntimeError> {
        let slice_size = {
            let mut st = self.shared().state.lock();
            let st = &mut *st;
            // A placed job is simple, but answers `NotFound` as for no
            // job, not "a simple job" (ARCHITECTURE.md, "Start at
            // placement", rule 3).
            if st.book.placed.contains(&job) {
                return Err(st.missing(job));
            }
            let j = st.table.get(&job).ok_or_else(|| st.missing(job))?;
            let (state, id) = (j.state, j.id);
            let Some(s) = j.sliced() else {
                return Err(RuntimeError::Invalid(format!(
                    "job {id} is a simple job; only sliced jobs take uploads"
                )));
            };
            let uploading = st.book.uploaders.contains(&id);
            if s.upload != UploadState::Open || s.slices.count() > 0 || uploading {
                return Err(RuntimeError::Invalid(format!(
                    "job {id} already has an upload ({state:?}); submit a new job to upload again"
                )));
            }
            check_slice_size(s.slice_size as usize, &self.shared().limits).map_err(|e| {
                RuntimeError::Invalid(format!(
                    "job {id} cannot take an upload: {e}; submit it again with a smaller one"
                ))
            })?;
            st.book.uploaders.insert(id);
            s.slice_size as usize
        };
        Ok(Uploader {
            shared: self.shared().clone(),
            store: self.inner.store.clone(),
            pool: self.inner.pool.clone(),
            job,
            slice_size,
            max_slice_bytes: self.shared().limits.max_slice_bytes,
            next_slice: 0,
            next_record: 1,
            permits: Arc::new(tokio::sync::Semaphore::new(crate::upload::INFLIGHT_BYTES)),
            error: Arc::new(parking_lot::Mutex::new(None)),
            finished: false,
            buf: Default::default(),
        })
    }

    pub async fn job(&self, job: JobId) -> Result<JobStatus, RuntimeError> {
        status_of(self.shared(), job)
    }

    /// `job`, or the final state its tombstone keeps when it was destroyed
    /// once finished: the answer to a change that succeeded (a retry, a
    /// resume, a new priority) after which workers may have completed the
    /// job and, destroy-on-complete, destroyed it before the caller looked.
    pub async fn job_or_kept(&self, job: JobId) -> Result<JobStatus, RuntimeError> {
        crate::status::kept_status(&self.shared().state.lock(), job)
    }

    /// Every job matching `filter`, ascending id. Read page by page from
    /// the index, the state lock released between chunks
    /// (`listing::all`). A listing that cannot be read whole (a damaged
    /// index and one of its pages) is `RuntimeError::Corrupt` naming
    /// them, never a partial list.
    pub async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobStatus>, RuntimeError> {
        let shared = self.shared().clone();
        off_executor(move || crate::listing::all(|| shared.state.lock(), filter)).await
    }

    /// One page of a newest-first listing (`JobQuery`): the newest
    /// `limit` jobs matching the filter with an id below `before`, in id
    /// order, `next_before` where the next (older) page starts (None on
    /// the last), `total` exact for a state filter or none. It reads only
    /// the row pages the index names for what it shows, a few per hold
    /// of the state lock (`listing::page`), so a dashboard asking for 100
    /// jobs costs the same at 20M rows as at 2K and never stalls the
    /// dispatcher.
    pub async fn jobs_page(&self, query: JobQuery) -> Result<JobsPage, RuntimeError> {
        let shared = self.shared().clone();
        off_executor(move || {
            let budget = shared.limits.listing_rows_per_call;
            crate::listing::page_within(|| shared.state.lock(), &query, budget)
        })
        .await
    }

    /// Checks `action` on `job` and pins its row (`TableView::pin`) for
    /// the record that follows.
    fn check(&self, job: JobId, action: &Control) -> Result<(), RuntimeError> {
        let mut st = self.shared().state.lock();
        if !st.table.pin(job)? {
            return Err(st.missing(job));
        }
        let checked = Self::check_pinned(&st, job, action);
        if checked.is_err() {
            st.table.unpin(job);
        }
        checked
    }

    fn check_pinned(st: &State, job: JobId, action: &Control) -> Result<(), RuntimeError> {
        let j = st.job_row(job)?;
        if let (Control::Retry, Some(key)) = (action, &j.singleton) {
            if let Some(holder) = st.book.singleton_holder(key).filter(|&h| h != job) {
                return Err(RuntimeError::SingletonHeld {
                    key: key.to_string(),
                    job: holder,
                });
            }
        }
        if st.book.lost.contains(&job) || &*j.kind == crate::lost::KIND {
            return Err(RuntimeError::Invalid(format!(
                "job {job} cannot {}: {}",
                action.verb(),
                j.failure_reason
                    .as_deref()
                    .unwrap_or("its created record was lost")
            )));
        }
        let simple = matches!(j.body, Body::Simple(_));
        if transition::allowed(action, j.state, simple) {
            Ok(())
        } else {
            Err(RuntimeError::IllegalTransition {
                job,
                action: action.verb().to_string(),
                state: j.state,
            })
        }
    }

    async fn control(&self, job: JobId, action: Control) -> Result<(), RuntimeError> {
        // The row stays in RAM until the record applied (a finished row
        // is read here, not on the commit thread).
        self.check(job, &action)?;
        let m = Meta::Control {
            job,
            at_ms: self.shared().clock.now_ms(),
            action,
        };
        let written = crate::shared::write_pinned(
            self.shared(),
            &self.inner.store,
            vec![m],
            false,
            vec![job],
        )
        .await;
        written?.pop().unwrap_or(Ok(()))
    }

    pub async fn set_priority(&self, job: JobId, priority: i64) -> Result<(), RuntimeError> {
        if !(1..=100).contains(&priority) {
            return Err(RuntimeError::BadPriority(priority));
        }
        {
            // Refused here, before a record is written for a finished job.
            let mut st = self.shared().state.lock();
            let j = st.job_row_checked(job)?;
            if j.is_terminal() {
                return Err(RuntimeError::IllegalTransition {
                    job,
                    action: "change the priority of".into(),
                    state: j.state,
                });
            }
            // A queued row a checkpoint let go (issue 12 step 5) is read
            // back here and held until the record applied, never read on
            // the commit thread.
            st.table.pin(job)?;
        }
        let m = Meta::Priority {
            job,
            priority: priority as u8,
        };
        let pins = vec![job];
        let written =
            crate::shared::write_pinned(self.shared(), &self.inner.store, vec![m], false, pins);
        written.await?.pop().unwrap_or(Ok(()))
    }

    pub async fn set_max_workers(
        &self,
        job: JobId,
        max_workers: Option<u32>,
    ) -> Result<(), RuntimeError> {
        if max_workers == Some(0) {
            return Err(RuntimeError::Invalid(
                "max_workers must be at least 1 (or none for no limit)".into(),
            ));
        }
        {
            let st = self.shared().state.lock();
            let j = st.job_row_checked(job)?;
            if matches!(j.body, Body::Simple(_)) {
                return Err(RuntimeError::Invalid(format!(
                    "job {job} is a simple job: max_workers limits how many of a sliced job's slices run at once"
                )));
            }
            if j.is_terminal() {
                return Err(RuntimeError::IllegalTransition {
                    job,
                    action: "change max_workers of".into(),
                    state: j.state,
                });
            }
        }
        let m = Meta::MaxWorkers { job, max_workers };
        write_one(self.shared(), &self.inner.store, m).await
    }

    /// Stores `kind`'s settings (None clears them): durable like a job's
    /// state, kept by compaction, and while stored they win over what any
    /// process sets in code. Applies from the next lease.
    pub async fn store_kind_settings(
        &self,
        kind: &str,
        settings: Option<KindSettings>,
    ) -> Result<(), RuntimeError> {
        if kind.is_empty() || kind.len() > 256 {
            return Err(RuntimeError::Invalid(
                "a kind name is 1 to 256 bytes".into(),
            ));
        }
        if let Some(s) = &settings {
            if s.lease.is_some_and(|l| l.max_expiries == 0) {
                return Err(RuntimeError::Invalid(
                    "max_expiries must be at least 1".into(),
                ));
            }
            let under_a_ms = |t: Duration| t < Duration::from_millis(1);
            if s.lease.is_some_and(|l| l.timeout.is_some_and(under_a_ms)) {
                return Err(RuntimeError::Invalid(
                    "a lease timeout is at least 1 ms; leave it out for no bound on a lease".into(),
                ));
            }
            if s.retry.jitter_percent > 100 {
                return Err(RuntimeError::Invalid(
                    "jitter_percent is 0 to 100 (a share of each wait)".into(),
                ));
            }
        }
        let m = Meta::KindSettings {
            kind: kind.to_string(),
            at_ms: self.shared().clock.now_ms(),
            settings,
        };
        write_one(self.shared(), &self.inner.store, m).await?;
        self.shared().changed();
        Ok(())
    }

    /// Stores the retention periods: how long finished jobs (and
    /// destroyed jobs' tombstones) stay before the sweep at a checkpoint
    /// removes them. Durable, kept by compaction and checkpoints; a
    /// shorter period applies at the next sweep.
    pub async fn set_retention(&self, retention: crate::Retention) -> Result<(), RuntimeError> {
        let m = Meta::Retention {
            at_ms: self.shared().clock.now_ms(),
            retention,
        };
        write_one(self.shared(), &self.inner.store, m).await?;
        self.shared().changed();
        Ok(())
    }

    /// The retention periods that apply (the defaults until some are stored).
    pub fn retention(&self) -> crate::Retention {
        self.shared().state.lock().book.retention
    }

    /// Every kind registered here or with stored settings, with what is
    /// stored and what applies, by name.
    pub fn kinds_settings(&self) -> Vec<KindView> {
        let st = self.shared().state.lock();
        let default_lease = st.book.lease_policy;
        let mut out: Vec<KindView> = st
            .book
            .kinds
            .iter()
            .map(|(name, k)| KindView {
                kind: name.to_string(),
                registered: k.handler.is_some(),
                stored: k.stored,
                effective: KindSettings {
                    max_running: k.max_running(),
                    retry: k.retry(),
                    lease: Some(k.lease().unwrap_or(default_lease)),
                    window: k.window(),
                    destroy_on_complete: k.stored.is_some_and(|s| s.destroy_on_complete),
                },
            })
            .collect();
        out.sort_by(|a, b| a.kind.cmp(&b.kind));
        out
    }

    /// At most `max_running_jobs` jobs of `kind` run at once (None: no
    /// limit). A setting of this process, not stored; a stored setting
    /// (`store_kind_settings`) wins over it.
    pub async fn set_kind_limit(&self, kind: &str, max_running_jobs: Option<u32>) {
        self.shared()
            .state
            .lock()
            .book
            .kinds
            .entry(Arc::from(kind))
            .or_default()
            .max_running = max_running_jobs;
        self.shared().changed();
    }

    pub async fn pause(&self, job: JobId) -> Result<(), RuntimeError> {
        self.control(job, Control::Pause).await
    }
    pub async fn resume(&self, job: JobId) -> Result<(), RuntimeError> {
        self.control(job, Control::Resume).await
    }
    pub async fn abort(&self, job: JobId) -> Result<(), RuntimeError> {
        self.control(job, Control::Abort).await
    }
    /// Failed simple job: run again. Failed sliced job: re-run failed slices only.
    pub async fn retry(&self, job: JobId) -> Result<(), RuntimeError> {
        self.control(job, Control::Retry).await
    }
    pub async fn fail(&self, job: JobId, reason: String) -> Result<(), RuntimeError> {
        self.control(job, Control::Fail { reason }).await
    }
    pub async fn destroy(&self, job: JobId) -> Result<(), RuntimeError> {
        self.control(job, Control::Destroy).await
    }

    /// Waits until the job is completed, failed or aborted. Once the store
    /// refuses writes (a failed write or fsync, G9) an unfinished job can
    /// never end: the wait returns `StoreError::Poisoned` instead.
    ///
    /// A job destroyed once it finished (`destroy_on_complete`, or by hand)
    /// still ended as its tombstone says: the wait answers that state
    /// (`Completed` is a success) with the tombstone's times; its output
    /// and counts went with it. A job destroyed before it finished never
    /// will: `NotFound` with `Missing::Destroyed`, as for any other gone id.
    pub async fn wait(&self, job: JobId) -> Result<JobStatus, RuntimeError> {
        loop {
            let rx = {
                let mut st = self.shared().state.lock();
                let status = crate::status::kept_status(&st, job)?;
                if status.state.is_finished() {
                    return Ok(status);
                }
                // A job cannot finish once the store refuses writes (G9):
                // say so instead of waiting for ever.
                if let Some(cause) = st.book.poisoned.clone() {
                    return Err(RuntimeError::Store(StoreError::Poisoned { cause }));
                }
                let (tx, rx) = tokio::sync::oneshot::channel();
                st.book.waiters.entry(job).or_default().push(tx);
                rx
            };
            let _ = rx.await;
        }
    }

    /// Waits until nothing is runnable or running.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.shared().idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared().is_idle() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
        }
    }

    /// The ids of every unfinished job (scheduled, queued, running,
    /// paused or waiting), ascending: the scheduler's own entries, read
    /// under the state lock without a row, 8 bytes a job (a listing of
    /// them makes each one's status: at 10M queued jobs, gigabytes).
    pub fn unfinished_ids(&self) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self
            .shared()
            .state
            .lock()
            .book
            .active
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::JobEvent> {
        self.shared().state.lock().book.events.subscribe()
    }

    /// One category of `job`'s records, in input order. A category the job
    /// did not declare is an error naming the ones it has.
    pub fn download(&self, job: JobId, category: Category) -> Result<Download, RuntimeError> {
        crate::download::OutputSource {
            shared: self.shared(),
            store: &self.inner.store,
        }
        .open(job, category, true)
    }

    /// `job`'s `main` records with the separators its input had around
    /// each (`Uploader::push_separated`), where a slice's output is 1:1
    /// with its input; `Separators::default()` elsewhere.
    pub fn download_separated(&self, job: JobId) -> Result<SeparatedDownload, RuntimeError> {
        let download = crate::download::OutputSource {
            shared: self.shared(),
            store: &self.inner.store,
        }
        .open_stored(job, Category::Main, true)?;
        Ok(SeparatedDownload::new(download))
    }

    /// Each worker slot and the lease it holds: a gauge, like the
    /// per-state counts, so a lease may name an urgent job whose creation
    /// is not durable yet, which readers do not show yet
    /// (ARCHITECTURE.md, "Start at placement", rule 3).
    pub async fn workers(&self) -> Vec<WorkerStatus> {
        let st = self.shared().state.lock();
        st.book
            .workers
            .iter()
            .enumerate()
            // Slots of forgotten remote processes wait for the next one.
            .filter(|(i, w)| *i < st.book.local_workers || w.remote.is_some())
            .map(|(i, w)| WorkerStatus {
                worker: i,
                lease: w
                    .lease
                    .and_then(|e| st.book.leases.get(&e))
                    .map(|l| LeaseInfo {
                        worker: i,
                        job: match &l.work {
                            crate::state::LeaseWork::Simple(jobs) => {
                                jobs.first().copied().unwrap_or(0)
                            }
                            crate::state::LeaseWork::Slice { job, .. }
                            | crate::state::LeaseWork::Before { job }
                            | crate::state::LeaseWork::After { job } => *job,
                        },
                        slice: match l.work {
                            crate::state::LeaseWork::Slice { slice, .. } => Some(slice),
                            _ => None,
                        },
                        epoch: l.epoch,
                        since: from_ms(l.since_ms),
                        deadline: from_ms(l.deadline_ms),
                    }),
                slices_done: w.slices_done,
                restarts: w.restarts,
                remote: w.remote.as_ref().and_then(|r| {
                    let g = st.book.fleet.groups().get(&r.group)?;
                    Some(crate::RemoteWorkerInfo {
                        worker: r.group,
                        host: g.hello.host.clone(),
                        pid: g.hello.pid,
                        version: g.hello.version.clone(),
                        kinds: g.hello.kinds.clone(),
                        joined: from_ms(g.joined_ms),
                        last_seen: from_ms(g.last_seen_ms),
                    })
                }),
            })
            .collect()
    }

    /// Why the store stopped taking writes (a failed write or fsync, a
    /// full disk), or None while it takes them. Nothing runs until the
    /// runtime is reopened, so a command waiting for work should stop and
    /// say this.
    pub fn poisoned(&self) -> Option<String> {
        self.shared().state.lock().book.poisoned.clone()
    }

    /// How many job rows this process holds in RAM: the unfinished ones,
    /// those changed since the newest durable checkpoint, and those a
    /// control holds while its record is written. A finished job's row
    /// leaves RAM at the first checkpoint after it finished (G10); `job`
    /// and `jobs` then read it from the checkpoint's pages.
    pub fn rows_in_ram(&self) -> usize {
        self.shared().state.lock().table.values().count()
    }

    /// Entries of each in-RAM structure that can hold one per job, and
    /// the store's index sizes: a diagnostic (issue 12's soak samples it
    /// beside the resident set).
    pub fn memory_census(&self) -> crate::MemoryCensus {
        let store = self.inner.store.memory();
        crate::MemoryCensus::take(&self.shared().state.lock(), store)
    }

    /// The number of the newest checkpoint in this data directory's log
    /// (the one this open started from, or a later one this process
    /// wrote); 0: none.
    pub fn checkpoint_seq(&self) -> u64 {
        self.shared().state.lock().book.checkpoint_seq
    }

    pub fn metrics(&self) -> Metrics {
        let st = self.shared().state.lock();
        let mut m = st.book.metrics.snapshot();
        m.jobs_by_state = crate::JobState::ALL
            .iter()
            .map(|s| (*s, st.book.by_state[s.index()]))
            .collect();
        m.checkpoints_paused = st.book.checkpoints.paused.clone();
        let auto = &self.shared().auto_compaction;
        m.auto_compact = auto.enabled();
        (m.auto_compactions, m.auto_compaction_failures) = auto.counts();
        m
    }

    /// The store's counts, with the slices of destroyed jobs counted as
    /// dead bytes (the store cannot know a destroy): what `compact` reclaims.
    pub fn store_stats(&self) -> Result<StoreStats, RuntimeError> {
        let plan = crate::snapshot::Liveness::take(&self.shared().state.lock())?;
        Ok(self.inner.store.stats_with(&plan)?)
    }

    pub fn verify(&self) -> VerifyReport {
        self.inner.store.verify()
    }

    /// Reclaims destroyed jobs' slices and dead frames, segment by
    /// segment: only the segments at least half dead are rewritten
    /// (`Store::compact_segments`). A checkpoint is written first, and the
    /// compacted log starts at it: the rows stay in their pages. Appends
    /// wait while both are written.
    pub async fn compact(&self) -> Result<booster_store::CompactionReport, RuntimeError> {
        self.compact_with(CompactionMode::Segments).await
    }

    /// As [`Runtime::compact`], rewriting every live frame: every dead
    /// byte goes and every segment gets a fresh key (`booster compact
    /// --full`).
    pub async fn compact_full(&self) -> Result<booster_store::CompactionReport, RuntimeError> {
        self.compact_with(CompactionMode::Full).await
    }

    async fn compact_with(
        &self,
        mode: CompactionMode,
    ) -> Result<booster_store::CompactionReport, RuntimeError> {
        let shared = self.shared().clone();
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || compact_blocking(&shared, &store, mode))
            .await
            .map_err(|e| RuntimeError::Invalid(format!("compaction failed: {e}")))?
    }

    /// Writes a checkpoint (issue 12, step 3): the pages of the rows that
    /// changed since the last one (the whole table the first time) and the
    /// checkpoint record that starts the meta log, in one batch, taken with
    /// no commit in flight. A later open reads the unfinished rows from the
    /// pages and replays only the records after it; once it is durable, the
    /// finished rows it wrote leave RAM. Returns the checkpoint's number. A
    /// read-only process writes none.
    pub async fn checkpoint(&self) -> Result<u64, RuntimeError> {
        take_checkpoint(self.shared().clone(), self.inner.store.clone()).await
    }

    /// Stops taking leases, lets running slices finish (or hands their leases
    /// back after `grace`), flushes and closes the store.
    pub async fn shutdown(self, grace: Duration) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + grace;
        self.shared().state.lock().book.draining = true;
        while Instant::now() < deadline && !self.shared().state.lock().book.leases.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Commits still on a worker's commit thread go to the store before
        // the last checkpoint and the store's close (a commit leaves
        // `handed_commits` only once it is counted in flight). No deadline:
        // this can wait out a compaction, which holds the append gate for
        // its rewrite. Not counted (ARCHITECTURE.md, "The freed worker's
        // commit"): a batch being built before `hand`, and a refused
        // batch's `SliceFailed`; one that meets the closed store runs its
        // slice again on the next open.
        let shared = self.shared();
        while shared.handed_commits.load(Ordering::Acquire) > 0
            || shared.inflight_commits.load(Ordering::Acquire) > 0
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A last checkpoint, so the next open replays little. One that
        // cannot be written loses nothing: the log holds every record.
        let due = {
            let st = self.shared().state.lock();
            st.checkpoint_due(u64::MAX)
        };
        if due {
            let _ = self.checkpoint().await;
        }
        let inner = self.inner.clone();
        drop(self);
        tokio::task::spawn_blocking(move || inner.stop(Duration::from_secs(1)))
            .await
            .map_err(|e| RuntimeError::Invalid(format!("shutdown failed: {e}")))?;
        Ok(())
    }
}

/// A checkpoint in the store's queue: its outcome, its number, and its
/// meta records as encoded (the log a compaction right after it keeps).
pub(crate) type EnqueuedCheckpoint = (
    tokio::sync::oneshot::Receiver<crate::shared::Applied>,
    u64,
    Vec<Vec<u8>>,
);

/// Enqueues a checkpoint batch (`table/image.rs`) and seals the table's
/// generation. Call holding the append gate exclusively with no commit in
/// flight. Once the batch is durable and applied, the finished rows it
/// wrote leave RAM (`TableView::written_through`); the receiver then gets
/// the outcome. A process without workers writes one only for a
/// compaction (`for_compaction`), which writes anyway.
pub(crate) fn enqueue_checkpoint(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    for_compaction: bool,
    prebuilt: Option<crate::table::image::Prebuilt>,
) -> Result<EnqueuedCheckpoint, RuntimeError> {
    let locked = Instant::now();
    let (batch, record, log, sealed, pages) = {
        let mut st = shared.state.lock();
        if let Some(cause) = st.book.poisoned.clone() {
            return Err(RuntimeError::Store(StoreError::Poisoned { cause }));
        }
        if st.book.store_read_only || !(st.book.runs_workers || for_compaction) {
            return Err(RuntimeError::Invalid(
                "this process opened the data directory read-only: it writes no \
                 checkpoint; open it with workers to write one"
                    .into(),
            ));
        }
        if let Some(why) = st.checkpoint_blocker() {
            return Err(RuntimeError::Corrupt(why));
        }
        let now_ms = shared.clock.now_ms();
        let built =
            crate::table::image::swept_checkpoint_batch(&mut st, &**store, now_ms, prebuilt);
        let built = match built {
            Ok(built) => built,
            // Known fault 5: the page is not rewritten from RAM (that
            // would make its rows' loss permanent); checkpoints pause
            // while it cannot be read.
            Err(crate::table::image::Unbuilt::Page(page, e)) => {
                st.table.note_unreadable(page, e);
                let why = st.checkpoint_blocker().expect("the page was just noted");
                return Err(RuntimeError::Corrupt(why));
            }
            Err(crate::table::image::Unbuilt::Other(e)) => return Err(e),
        };
        st.book.last_checkpoint_ms = shared.clock.now_ms();
        let sealed = st.seal_checkpoint(built.refile_next, built.removed);
        // A compaction's checkpoint is written while appends wait, and a
        // full disk is recovered by compacting: it asks room for itself
        // only, and may take the disk reserve ("Full disks").
        let batch = match for_compaction {
            true => built
                .batch
                .needs_room_before_compaction("the checkpoint a compaction starts with"),
            false => built.batch,
        };
        let pages = (built.pages, built.pages_read);
        (batch, built.record, built.log, sealed, pages)
    };
    let lock_us = locked.elapsed().as_micros() as u64;
    let seq = match &record {
        Meta::Checkpoint(c) => c.seq,
        _ => unreachable!("checkpoint_batch returns its checkpoint record"),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let image = Arc::downgrade(store);
    let enqueued = Instant::now();
    crate::shared::append_counted(shared, store, batch, vec![record], move |st, applied| {
        let written = matches!(&applied, Ok(r) if r.iter().all(Result::is_ok));
        st.checkpoint_answered(sealed, written, image);
        let _ = tx.send(applied);
    });
    let enqueue_us = enqueued.elapsed().as_micros() as u64;
    let mut st = shared.state.lock();
    let t = &mut st.book.metrics.checkpoint_times;
    t.taken += 1;
    t.lock_us += lock_us;
    t.enqueue_us += enqueue_us;
    t.pages_sealed += pages.0;
    t.pages_sealed_read += pages.1;
    drop(st);
    Ok((rx, seq, log))
}

/// Takes a checkpoint (`Runtime::checkpoint`; the timer, on the triggers
/// of `State::checkpoint_due`; shutdown): the touched pages are built from
/// a snapshot of the changed rows first, holding neither the state lock
/// nor the append gate; then the gate is held while the pages changed
/// since are built again and the batch is enqueued, then released; the
/// call returns once it is durable (ARCHITECTURE.md, "3.4 The checkpoint
/// off the state lock").
pub(crate) async fn take_checkpoint(
    shared: Arc<Shared>,
    store: Arc<dyn SliceStore>,
) -> Result<u64, RuntimeError> {
    let outcome = write_checkpoint(shared.clone(), store).await;
    let now_ms = shared.clock.now_ms();
    let mut st = shared.state.lock();
    match &outcome {
        Ok(_) => st.checkpoint_written(),
        Err(e) => st.checkpoint_failed(now_ms, e),
    }
    drop(st);
    outcome
}

async fn write_checkpoint(
    shared: Arc<Shared>,
    store: Arc<dyn SliceStore>,
) -> Result<u64, RuntimeError> {
    let (rx, seq) = tokio::task::spawn_blocking(move || {
        let prebuilt = prebuild_checkpoint(&shared, &store);
        let gate = shared.append_gate.write();
        let gated = Instant::now();
        while shared.inflight_commits.load(Ordering::Acquire) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let drain_us = gated.elapsed().as_micros() as u64;
        let enqueued =
            enqueue_checkpoint(&shared, &store, false, prebuilt).map(|(rx, seq, _)| (rx, seq));
        drop(gate);
        let gate_us = gated.elapsed().as_micros() as u64;
        let t = &mut shared.state.lock().book.metrics.checkpoint_times;
        t.gate_us += gate_us;
        t.drain_us += drain_us;
        enqueued
    })
    .await
    .map_err(|e| RuntimeError::Invalid(format!("checkpoint failed: {e}")))??;
    checkpoint_applied(rx.await.ok())?;
    Ok(seq)
}

/// The touched row pages built from a snapshot of the changed rows,
/// holding the state lock only to take it and neither it nor the append
/// gate while pages are read, merged and encoded; None when none can be
/// taken (`RowSnapshot::take`).
fn prebuild_checkpoint(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
) -> Option<crate::table::image::Prebuilt> {
    let locked = Instant::now();
    let snapshot = crate::table::image::RowSnapshot::take(&mut shared.state.lock());
    let lock_us = locked.elapsed().as_micros() as u64;
    let started = Instant::now();
    let prebuilt = snapshot.map(|s| s.build(&**store));
    let prebuild_us = started.elapsed().as_micros() as u64;
    let t = &mut shared.state.lock().book.metrics.checkpoint_times;
    t.lock_us += lock_us;
    t.prebuild_us += prebuild_us;
    t.pages_prebuilt += prebuilt.as_ref().map_or(0, |p| p.pages());
    prebuilt
}

/// A checkpoint's outcome (None: the store stopped before answering).
pub(crate) fn checkpoint_applied(
    applied: Option<crate::shared::Applied>,
) -> Result<(), RuntimeError> {
    let applied = applied
        .ok_or(RuntimeError::ShuttingDown)?
        .map_err(RuntimeError::Store)?;
    applied.into_iter().next().unwrap_or(Ok(()))
}

/// Replays the meta log `records` into `state`. A log that starts at a
/// checkpoint has the rows the scheduler needs read from its pages once
/// the records of its batch are applied (`table/image.rs`); the others
/// are read when asked for. Returns the row pages that could not be read
/// (their rows are lost rows now).
pub(crate) fn replay_log(
    store: &Arc<dyn SliceStore>,
    state: &mut State,
    records: &[Vec<u8>],
    mut lost: Option<&mut LostCreated>,
) -> Result<Vec<booster_store::Damage>, RuntimeError> {
    let mut damage = Vec::new();
    let checkpoint = match records.first().map(|r| meta::decode(r)).transpose()? {
        Some(Meta::Checkpoint(c)) => Some(*c),
        _ => None,
    };
    let rows_at = checkpoint.as_ref().map(|c| 1 + c.records as usize);
    // Lost jobs are known only at the end: a waiting job that may wait on
    // one is settled then (`State::settle_after_replay`, by the caller
    // once it inserted them).
    if lost.is_some() {
        state.book.settle_later = Some(Default::default());
    }
    for (k, record) in records.iter().enumerate() {
        if rows_at == Some(k) {
            let c = checkpoint.as_ref().expect("rows_at comes from it");
            damage = crate::table::image::restore_rows(store, state, c, lost.as_deref_mut())?;
        }
        let m = meta::decode(record)?;
        if let Some(lost) = lost.as_deref_mut() {
            lost.note(&m, state);
        }
        // A refused record was refused live too: skipping it is
        // the replay. A corrupt one stops the open.
        if let Err(RuntimeError::Corrupt(what)) = state.apply(&m) {
            return Err(RuntimeError::Corrupt(format!(
                "record {} of the meta log: {what}",
                k + 1
            )));
        }
    }
    if let (Some(c), Some(at)) = (&checkpoint, rows_at) {
        if at >= records.len() {
            damage = crate::table::image::restore_rows(store, state, c, lost)?;
        }
    }
    // Records about rows whose page could not be read did not apply: the
    // pages are named like a rotted page the open read (their rows show
    // as lost), and no checkpoint cuts the log while they are, so
    // restoring the segment still replays those records. Stopping the open
    // instead would hide every other job for the sake of one page's.
    for (page, e) in state.table.take_unreadable() {
        let key = crate::table::keys::row_page(page);
        if !damage.iter().any(|d| d.slices.contains(&key)) {
            damage.push(crate::table::image::page_damage(page, &e));
        }
    }
    Ok(damage)
}

/// Writes valid specs as one `created` record: ids and singleton keys are
/// taken under the state lock (`Runtime::submit_many`, and the timer's
/// cron runs).
pub(crate) async fn submit_specs(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    specs: Vec<JobSpec>,
) -> Result<Vec<JobId>, RuntimeError> {
    submit_specs_then(shared, store, specs, None).await
}

/// `submit_specs`, and with `then` a batch's on-complete job last, made to
/// run after every job of `specs` (its `after` is set under the state
/// lock, once their ids are known).
async fn submit_specs_then(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    mut specs: Vec<JobSpec>,
    then: Option<JobSpec>,
) -> Result<Vec<JobId>, RuntimeError> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let called = crate::start_trace::now();
    let batch = then.is_some().then_some(specs.len() as u64);
    specs.extend(then);
    let urgent;
    let at_placement;
    let announced;
    let mut records = Vec::new();
    let mut pins = Vec::new();
    let first_id = {
        let mut st = shared.state.lock();
        if st.book.stopping {
            return Err(RuntimeError::ShuttingDown);
        }
        if let Some(d) = st.book.damage.iter().find(|d| !d.identified) {
            return Err(RuntimeError::Corrupt(format!(
                "this data directory lost frames nothing names (segment {} ({}) offsets \
                 {}..{}: {}): a new job could be given the id of a job the lost range held, \
                 so submits are refused until that file is restored from a backup. Work, \
                 listings and downloads of the other jobs go on; salvage copies what \
                 survived into a new data directory that takes new jobs",
                d.segment_id,
                d.path.display(),
                d.offset,
                d.end,
                d.what
            )));
        }
        // Checked and reserved under the lock, so two submits of one
        // key can never both pass; the reservation ends when the
        // `Created` record is applied (the job then holds the key) or
        // its write failed.
        let keys: Vec<&String> = specs.iter().filter_map(|s| s.singleton.as_ref()).collect();
        for (i, key) in keys.iter().enumerate() {
            if let Some(job) = st.book.singleton_holder(key) {
                return Err(RuntimeError::SingletonHeld {
                    key: key.to_string(),
                    job,
                });
            }
            if keys[..i].contains(key) {
                return Err(RuntimeError::Invalid(format!(
                    "singleton {key:?} is asked for twice in one submit"
                )));
            }
        }
        for dep in specs.iter().flat_map(|s| &s.after) {
            if !st.table.contains_key(dep) || st.book.placed.contains(dep) {
                return Err(RuntimeError::Invalid(match st.missing(*dep) {
                    RuntimeError::NotFound(_, why @ (Missing::Destroyed { .. } | Missing::Removed)) => {
                        format!("job {dep}, named in after, {why}; a job can run after jobs that still exist")
                    }
                    _ => format!(
                        "job {dep}, named in after, does not exist; a job can run after jobs that were submitted before it"
                    ),
                }));
            }
        }
        let first = st.book.next_id;
        let n = specs.len() as u64;
        if !crate::table::keys::ids_fit(first, n) {
            return Err(RuntimeError::Invalid(format!(
                "job id space exhausted: {n} more job(s) from id {first} would reach {:#x}, where the runtime's own keys start; copy the jobs you keep to a new data directory",
                crate::table::keys::RESERVED_OWNER_BASE
            )));
        }
        // The `created` record reads its dependencies' rows when it
        // applies: they stay in RAM until then.
        for dep in specs.iter().flat_map(|s| &s.after) {
            match st.table.pin(*dep) {
                Ok(true) => pins.push(*dep),
                Ok(false) => {}
                Err(e) => {
                    for p in pins {
                        st.table.unpin(p);
                    }
                    return Err(e);
                }
            }
        }
        st.book.next_id = first + n;
        if let (Some(jobs), Some(then)) = (batch, specs.last_mut()) {
            then.after = (first..first + jobs).collect();
            then.on_dependency_failure = crate::DependencyFailure::Run;
        }
        // A kind without an id gets one in this batch, before its first
        // `created` record (`table/kinds.rs`).
        for s in &specs {
            if let Some(id) = st.book.kind_ids.reserve(&s.kind) {
                let name = s.kind.clone();
                if !records
                    .iter()
                    .any(|r| matches!(r, Meta::KindId { name: n, .. } if *n == name))
                {
                    records.push(Meta::KindId { id, name });
                }
            }
        }
        urgent = specs.iter().all(|s| s.priority <= st.book.urgent_priority);
        at_placement = records.is_empty() && st.starts_at_placement(&specs);
        // Only jobs a worker could lease the moment they are placed are
        // announced: a freed worker holds for nothing else.
        announced = (at_placement && st.leasable_now(&specs, shared.clock.now_ms()))
            .then(|| crate::placement::Announced::new(shared, &mut st, specs.len()));
        for (i, s) in specs.iter().enumerate() {
            if let Some(key) = &s.singleton {
                st.book
                    .singleton_pending
                    .insert(key.clone(), first + i as u64);
            }
        }
        first
    };
    crate::start_trace::stamp_at(called, crate::start_trace::Phase::SubmitCalled, first_id);
    let n = specs.len() as u64;
    let keys_reserved = specs.iter().any(|s| s.singleton.is_some());
    records.push(Meta::Created {
        first_id,
        at_ms: shared.clock.now_ms(),
        specs,
    });
    let written = if at_placement {
        // No pins: a job that starts at placement has no `after`.
        debug_assert!(pins.is_empty() && records.len() == 1);
        let created = records.pop().expect("pushed above");
        crate::placement::write_placing(shared, store, created, announced).await
    } else {
        crate::shared::write_pinned(shared, store, records, urgent, pins).await
    };
    if keys_reserved {
        let mut st = shared.state.lock();
        st.book
            .singleton_pending
            .retain(|_, id| !(first_id..first_id + n).contains(id));
        // A job the log created failed because its key was taken first
        // (a racing retry): the submit says so.
        let lost: Vec<(String, JobId)> = (first_id..first_id + n)
            .filter_map(|id| st.book.singleton_lost_race.remove(&id))
            .collect();
        if let (Some((key, job)), Ok(_)) = (lost.into_iter().next(), &written) {
            return Err(RuntimeError::SingletonHeld { key, job });
        }
    }
    written?;
    Ok((first_id..first_id + n).collect())
}

/// Runs a listing (row pages read and decoded, the state lock taken per
/// chunk) on tokio's blocking pool: never on the executor's threads,
/// which also answer the workers' leases, heartbeats and commits (G4,
/// G12), so a request for many pages cannot stall them.
async fn off_executor<T: Send + 'static>(
    listing: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(listing)
        .await
        .map_err(|e| RuntimeError::Invalid(format!("the listing stopped: {e}")))?
}
