//! A `State` over a store, as the runtime keeps them, for unit tests of
//! checkpoints: each record that applies is appended to the store;
//! `checkpoint` writes one as `Runtime::checkpoint`
//! does; `reopen` replays the store's log into a fresh state, as an open
//! does. The store runs on the simulated file system (nothing on disk).

use std::ops::{Bound, ControlFlow};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use booster_store::fs::sim::SimFileLayer;
use booster_store::{
    Batch, CompactionPlan, CompactionReport, Receipt, ScanPage, SliceInfo, SliceKey, Store,
    StoreError, StoreOptions, StoreStats, VerifyReport,
};

use crate::meta::{self, Meta};
use crate::slice_store::SliceStore;
use crate::state::{Book, State};
use crate::table::Job;
use crate::RuntimeError;

pub(crate) struct Logged {
    pub st: State,
    fs: SimFileLayer,
    concrete: Arc<Store<SimFileLayer>>,
    pub store: Arc<dyn SliceStore>,
    counting: Arc<Counting>,
}

/// The store, counting the slices read through it (a test of what the
/// commit thread reads).
struct Counting {
    inner: Arc<Store<SimFileLayer>>,
    reads: AtomicU64,
    /// Scans fail as an unreadable index block would make them.
    failing_scans: std::sync::atomic::AtomicBool,
    /// Reads of the keys it says answer what it gives (a rotted frame's
    /// error, a passing I/O error, no slice) instead of the store.
    failing_reads: std::sync::Mutex<Option<(KeyTest, ReadAnswer)>>,
    /// Called before each read (`watch_reads`).
    read_watch: std::sync::Mutex<Option<KeyWatch>>,
    /// Reads of the table's row pages (`ROW_PAGE`).
    page_reads: AtomicU64,
    /// Keys the store's index scans gave.
    keys_scanned: AtomicU64,
    /// Keys bounded scans looked at, deleted ones included.
    keys_examined: AtomicU64,
}

type KeyTest = Box<dyn Fn(&SliceKey) -> bool + Send>;
type KeyWatch = Arc<dyn Fn(&SliceKey) + Send + Sync>;
type ReadAnswer = Box<dyn Fn() -> Result<Option<Vec<Vec<u8>>>, StoreError> + Send>;

impl SliceStore for Counting {
    fn append_with(&self, batch: Batch, done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>) {
        self.inner.append_with(batch, done)
    }
    fn append_placing(
        &self,
        batch: Batch,
        done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>,
    ) -> bool {
        self.inner.append_placing(batch, done)
    }
    fn read_slice(&self, key: &SliceKey) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        // Cloned out: the watch may read through the store itself.
        let watch = self.read_watch.lock().unwrap().clone();
        if let Some(watch) = watch {
            watch(key);
        }
        if key.owner == crate::table::keys::TABLE_OWNER
            && key.stream == crate::table::keys::ROW_PAGE
        {
            self.page_reads.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((_, answer)) =
            (self.failing_reads.lock().unwrap().as_ref()).filter(|(failing, _)| failing(key))
        {
            return answer();
        }
        self.inner.read_slice(key)
    }
    fn slices(&self, owner: u64, stream: u32) -> Vec<SliceInfo> {
        self.inner.slices(owner, stream)
    }
    fn scan(
        &self,
        owner: u64,
        stream: u32,
        seqs: (Bound<u64>, Bound<u64>),
        rev: bool,
        limit: usize,
    ) -> Result<Vec<SliceInfo>, StoreError> {
        if self.failing_scans.load(Ordering::Relaxed) {
            return Err(StoreError::Invalid(
                "an index block cannot be read (a test's failing scan)".into(),
            ));
        }
        let keys = SliceStore::scan(&*self.inner, owner, stream, seqs, rev, limit)?;
        self.keys_scanned
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        Ok(keys)
    }
    fn scan_within(
        &self,
        owner: u64,
        stream: u32,
        seqs: (Bound<u64>, Bound<u64>),
        rev: bool,
        limit: usize,
        max_keys: usize,
    ) -> Result<ScanPage, StoreError> {
        if self.failing_scans.load(Ordering::Relaxed) {
            return Err(StoreError::Invalid(
                "an index block cannot be read (a test's failing scan)".into(),
            ));
        }
        let page =
            SliceStore::scan_within(&*self.inner, owner, stream, seqs, rev, limit, max_keys)?;
        self.keys_scanned
            .fetch_add(page.slices.len() as u64, Ordering::Relaxed);
        self.keys_examined
            .fetch_add(page.keys_examined as u64, Ordering::Relaxed);
        Ok(page)
    }
    fn compact(&self, plan: &dyn CompactionPlan) -> Result<CompactionReport, StoreError> {
        self.inner.compact(plan)
    }
    fn compact_segments(
        &self,
        plan: &dyn CompactionPlan,
        min_dead_share: f64,
    ) -> Result<CompactionReport, StoreError> {
        self.inner.compact_segments(plan, min_dead_share)
    }
    fn stats(&self) -> booster_store::StoreStats {
        self.inner.stats()
    }
    fn verify(&self) -> VerifyReport {
        self.inner.verify()
    }
    fn stats_with(&self, plan: &dyn CompactionPlan) -> Result<StoreStats, StoreError> {
        self.inner.stats_with(plan)
    }
    fn memory(&self) -> booster_store::StoreMemory {
        self.inner.memory()
    }
    fn shutdown(&self) -> Result<(), StoreError> {
        self.inner.shutdown()
    }
    fn free_bytes(&self) -> Option<u64> {
        self.inner.free_bytes().ok()
    }
}

/// Appends `batch` and waits until it is durable.
pub(crate) fn append(store: &dyn SliceStore, batch: Batch) {
    let (tx, rx) = std::sync::mpsc::channel();
    store.append_with(
        batch,
        Box::new(move |r| {
            let _ = tx.send(r.map(|_| ()));
        }),
    );
    rx.recv().expect("the store answers").expect("the append");
}

impl Logged {
    pub fn new(st: State) -> Logged {
        let fs = SimFileLayer::new();
        let (store, _) = Store::open_with(fs.clone(), "/logged", StoreOptions::default()).unwrap();
        let concrete = Arc::new(store);
        let counting = Arc::new(Counting {
            inner: concrete.clone(),
            reads: AtomicU64::new(0),
            failing_scans: Default::default(),
            failing_reads: Default::default(),
            read_watch: Default::default(),
            page_reads: AtomicU64::new(0),
            keys_scanned: AtomicU64::new(0),
            keys_examined: AtomicU64::new(0),
        });
        let store: Arc<dyn SliceStore> = counting.clone();
        Logged {
            st,
            fs,
            concrete,
            store,
            counting,
        }
    }

    /// From now on the store's scans fail (`fail`) as an unreadable index
    /// block makes them, or work again.
    pub fn fail_scans(&self, fail: bool) {
        self.counting.failing_scans.store(fail, Ordering::Relaxed);
    }

    /// From now on reads of `key` fail as a rotted frame makes them.
    pub fn fail_reads_of(&self, key: SliceKey) {
        self.fail_reads(move |k| *k == key);
    }

    /// From now on reads of the keys `failing` says fail.
    pub fn fail_reads(&self, failing: impl Fn(&SliceKey) -> bool + Send + 'static) {
        self.answer_reads(failing, || {
            Err(StoreError::Corrupt {
                segment_id: 1,
                path: "/logged/a-test's-rotted-frame".into(),
                offset: 0,
                what: "a test's rotted frame".into(),
            })
        });
    }

    /// From now on reads of the keys `failing` says answer `answer` (a
    /// passing I/O error, no slice).
    pub fn answer_reads(
        &self,
        failing: impl Fn(&SliceKey) -> bool + Send + 'static,
        answer: impl Fn() -> Result<Option<Vec<Vec<u8>>>, StoreError> + Send + 'static,
    ) {
        *self.counting.failing_reads.lock().unwrap() = Some((Box::new(failing), Box::new(answer)));
    }

    /// From now on every read is the store's again.
    pub fn heal_reads(&self) {
        *self.counting.failing_reads.lock().unwrap() = None;
    }

    /// From now on `watch` is called with the key of each read, before
    /// the read, on the reading thread.
    pub fn watch_reads(&self, watch: impl Fn(&SliceKey) + Send + Sync + 'static) {
        *self.counting.read_watch.lock().unwrap() = Some(Arc::new(watch));
    }

    /// How many row pages were read from the store so far.
    pub fn page_reads(&self) -> u64 {
        self.counting.page_reads.load(Ordering::Relaxed)
    }

    /// How many keys the store's index scans gave so far.
    pub fn keys_scanned(&self) -> u64 {
        self.counting.keys_scanned.load(Ordering::Relaxed)
    }

    /// How many keys bounded index scans looked at so far, deleted ones
    /// included.
    pub fn keys_examined(&self) -> u64 {
        self.counting.keys_examined.load(Ordering::Relaxed)
    }

    /// How many slices were read from the store so far.
    pub fn reads(&self) -> u64 {
        self.counting.reads.load(Ordering::Relaxed)
    }

    /// Applies `m` and logs it if it applied. (The runtime checks a
    /// record under the lock before it writes it, so a refused one is not
    /// in the log; here the check is the apply, and only the store's
    /// reader sees the order.)
    pub fn apply(&mut self, m: &Meta) -> Result<(), RuntimeError> {
        let raw = meta::encode(m);
        self.st.count_meta_bytes(raw.len() as u64);
        let applied = self.st.apply(m);
        if applied.is_ok() {
            append(&*self.store, Batch::new().meta(raw));
        }
        applied
    }

    /// Creates `n` simple jobs of kind `k` (ids from 1) and finishes, in
    /// one `SimpleDone` record, those `outcome` gives a result for.
    pub fn simple_jobs_done(
        &mut self,
        n: usize,
        outcome: impl Fn(crate::JobId) -> Option<Result<Option<serde_json::Value>, String>>,
    ) {
        self.simple_jobs_of_kinds_done(n, |_| "k", outcome);
    }

    /// `simple_jobs_done`, job `id` of kind `kind(id)`.
    pub fn simple_jobs_of_kinds_done(
        &mut self,
        n: usize,
        kind: impl Fn(crate::JobId) -> &'static str,
        outcome: impl Fn(crate::JobId) -> Option<Result<Option<serde_json::Value>, String>>,
    ) {
        let specs = (1..=n as u64)
            .map(|id| crate::JobSpec::simple(kind(id), serde_json::Value::Null))
            .collect();
        let created = Meta::Created {
            first_id: 1,
            at_ms: 1,
            specs,
        };
        self.apply(&created).unwrap();
        let outcomes = (1..=n as u64)
            .filter_map(|job| {
                outcome(job).map(|result| crate::meta::SimpleOutcome {
                    job,
                    started_us: 1,
                    result,
                    retry_at_ms: None,
                })
            })
            .collect();
        let done = Meta::SimpleDone {
            at_ms: 2,
            at_us: None,
            outcomes,
        };
        self.apply(&done).unwrap();
    }

    /// Writes a checkpoint; once it is durable the finished rows it wrote
    /// leave RAM.
    pub fn checkpoint(&mut self) {
        self.checkpoint_at(0);
    }

    /// `checkpoint`, with the retention sweep by `now_ms`.
    pub fn checkpoint_at(&mut self, now_ms: u64) {
        self.try_checkpoint_at(now_ms).expect("the checkpoint");
    }

    /// `checkpoint_at`, answering the store's refusal as the runtime
    /// does (`runtime::enqueue_checkpoint`).
    pub fn try_checkpoint_at(&mut self, now_ms: u64) -> Result<(), StoreError> {
        self.try_checkpoint_with(now_ms, None).map(|_| ())
    }

    /// `checkpoint`, taking the pages of `prebuilt` still current
    /// (`image::RowSnapshot`); returns the row pages built at the seal.
    pub fn checkpoint_prebuilt(&mut self, prebuilt: crate::table::image::Prebuilt) -> u64 {
        self.try_checkpoint_with(0, Some(prebuilt))
            .expect("the checkpoint")
            .0
    }

    /// A compaction as `Runtime::compact` makes one (`compaction.rs`): a
    /// checkpoint, then the store's segment (or `full`) compaction with
    /// that checkpoint's records as the meta snapshot.
    pub fn compact_at(&mut self, now_ms: u64, full: bool) -> booster_store::CompactionReport {
        let (_, log) = self
            .try_checkpoint_with(now_ms, None)
            .expect("the checkpoint");
        let plan = crate::snapshot::Snapshot::of_checkpoint(&self.st, log).unwrap();
        let report = match full {
            true => self.store.compact(&plan),
            false => self
                .store
                .compact_segments(&plan, crate::compaction::MIN_DEAD_SHARE),
        };
        report.expect("the compaction")
    }

    /// `try_checkpoint_at` with the pages of `prebuilt` still current;
    /// returns the row pages built at the seal and the checkpoint's meta
    /// records.
    fn try_checkpoint_with(
        &mut self,
        now_ms: u64,
        prebuilt: Option<crate::table::image::Prebuilt>,
    ) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
        let built = crate::table::image::swept_checkpoint_batch(
            &mut self.st,
            &*self.store,
            now_ms,
            prebuilt,
        )
        .unwrap();
        let pages = built.pages;
        let sealed = self.st.seal_checkpoint(built.refile_next, built.removed);
        let (tx, rx) = std::sync::mpsc::channel();
        self.store.append_with(
            built.batch,
            Box::new(move |r| {
                let _ = tx.send(r.map(|_| ()));
            }),
        );
        let answer = rx.recv().expect("the store answers");
        if answer.is_ok() {
            self.st.apply(&built.record).unwrap();
        }
        let image = Arc::downgrade(&self.store);
        self.st.checkpoint_answered(sealed, answer.is_ok(), image);
        answer.map(|()| (pages, built.log))
    }

    /// Bounds the simulated disk's files at `bytes` more than they hold
    /// now (`SimFileLayer::set_quota`), or lifts the bound.
    pub fn set_quota(&self, more_bytes: Option<u64>) {
        let used = self.fs.used_bytes();
        self.fs.set_quota(more_bytes.map(|b| used + b));
    }

    /// A fresh state (`book`) replayed from the store's log.
    pub fn reopen(&mut self, book: Book) {
        let lost = self.reopen_damaged(book);
        assert!(lost.is_empty(), "{lost:?}");
    }

    /// `reopen`, returning the damage the open found (as the runtime's
    /// open keeps it in `book.damage`).
    pub fn reopen_damaged(&mut self, book: Book) -> Vec<booster_store::Damage> {
        let mut st = State::new(book);
        let records = self.concrete.meta_records().unwrap();
        let lost = crate::runtime::replay_log(&self.store, &mut st, &records, None).unwrap();
        st.book.damage = lost.clone();
        self.st = st;
        lost
    }

    /// Replays `records` (a compaction snapshot) over this store's pages
    /// into a fresh state (`book`).
    pub fn replay(&self, book: Book, records: &[Vec<u8>]) -> State {
        let mut st = State::new(book);
        let lost = crate::runtime::replay_log(&self.store, &mut st, records, None).unwrap();
        assert!(lost.is_empty(), "{lost:?}");
        st
    }
}

/// Every row of `st`'s table, ascending id: RAM's over the store's.
pub(crate) fn all_rows(st: &State) -> Vec<Job> {
    let mut rows = Vec::new();
    st.table
        .scan(false, st.book.next_id, |j| {
            rows.push(j.into_owned());
            ControlFlow::Continue(())
        })
        .unwrap();
    rows
}

mod tests {
    use super::*;
    use crate::meta::SimpleOutcome;
    use crate::JobSpec;

    /// A store index that cannot be scanned is never a short table: a
    /// listing reads every page below the next id instead (before, it
    /// listed only the rows in RAM), and an open stops naming the store's
    /// error instead of opening without the rows it could not find.
    #[test]
    fn an_index_that_cannot_be_scanned_is_an_error_never_a_short_table() {
        let mut logged = Logged::new(crate::state_tests::state());
        logged.simple_jobs_done(70, |job| (job <= 10).then_some(Ok(None)));
        logged.checkpoint();
        assert_eq!(
            logged.st.table.values().count(),
            0,
            "finished rows left RAM, and so did the queued ones (step 5)"
        );
        assert_eq!(all_rows(&logged.st).len(), 70);
        logged.fail_scans(true);
        assert_eq!(all_rows(&logged.st).len(), 70, "no row listed short");
        let mut st = State::new(Book::new(4, 1000, 100));
        let records = logged.concrete.meta_records().unwrap();
        let err = crate::runtime::replay_log(&logged.store, &mut st, &records, None)
            .expect_err("the open stops");
        assert!(err.to_string().contains("index block"), "{err}");
    }

    /// 70 queued simple jobs, written to the table's pages by a checkpoint.
    fn seventy_queued_in_pages() -> Logged {
        let mut logged = Logged::new(crate::state_tests::state());
        let spec = JobSpec::simple("k", serde_json::Value::Null);
        let created = Meta::Created {
            first_id: 1,
            at_ms: 1,
            specs: vec![spec; 70],
        };
        logged.apply(&created).unwrap();
        logged.checkpoint();
        logged
    }

    /// A listing whose index cannot be scanned and whose pages cannot be
    /// read either is an error naming the index, never rows made up for
    /// every slot below the next id (before: 127 rows, 57 of ids never
    /// created, listed as lost).
    #[test]
    fn a_listing_whose_index_and_pages_cannot_be_read_is_an_error_never_made_up_rows() {
        let logged = seventy_queued_in_pages();
        logged.fail_scans(true);
        logged.fail_reads(|k| k.owner == crate::table::keys::TABLE_OWNER);
        let mut rows = 0;
        let listed = logged.st.table.scan(false, logged.st.book.next_id, |_| {
            rows += 1;
            ControlFlow::Continue(())
        });
        let err = listed.expect_err("an incomplete listing");
        assert!(err.to_string().contains("index"), "{err} ({rows} rows)");
    }

    /// The open's check for slices the table names but the store lacks
    /// reads every row; rows it cannot read (the index of row pages and a
    /// page both unreadable) stop it with the store's error, as they stop
    /// the replay, never a check of part of the table (before: no slice
    /// named and no error).
    #[test]
    fn the_check_for_missing_slices_stops_at_rows_it_cannot_read() {
        let logged = seventy_queued_in_pages();
        let damage = booster_store::Damage {
            segment_id: 3,
            path: "seg-3".into(),
            offset: 64,
            end: 128,
            what: "a bad frame".into(),
            slices: Vec::new(),
            meta_lost: true,
            identified: false,
        };
        let found =
            crate::lost::missing_frames(&*logged.store, &logged.st, std::slice::from_ref(&damage));
        assert!(found.unwrap().is_empty());
        logged.fail_scans(true);
        logged.fail_reads(|k| k.owner == crate::table::keys::TABLE_OWNER);
        let err = crate::lost::missing_frames(&*logged.store, &logged.st, &[damage])
            .expect_err("rows it could not read");
        assert!(err.to_string().contains("index"), "{err}");
    }

    /// Records about a finished job whose row left RAM that do nothing to
    /// a finished job (a priority or max_workers change, a lease expiry's
    /// count, a late outcome) are refused or skipped without reading its
    /// row on the commit thread, and leave it out of RAM (before, each read
    /// its page and held the row in RAM as changed until the next
    /// checkpoint); a late outcome leaves its completion time alone.
    #[test]
    fn refused_applies_on_a_finished_row_read_nothing_and_keep_it_out_of_ram() {
        let mut logged = Logged::new(crate::state_tests::state());
        let spec = JobSpec::simple("k", serde_json::Value::Null);
        let created = Meta::Created {
            first_id: 1,
            at_ms: 1,
            specs: vec![spec; 2],
        };
        logged.apply(&created).unwrap();
        let outcome = |job, at_ms| Meta::SimpleDone {
            at_ms,
            at_us: Some(at_ms * 1000 + 7),
            outcomes: vec![SimpleOutcome {
                job,
                started_us: 1,
                result: Ok(None),
                retry_at_ms: None,
            }],
        };
        logged.apply(&outcome(1, 2)).unwrap();
        logged.checkpoint();
        let (reads, in_ram) = (logged.reads(), logged.st.table.values().count());
        assert_eq!(in_ram, 0, "the queued job's row left RAM too (step 5)");
        let priority = Meta::Priority {
            job: 1,
            priority: 3,
        };
        assert!(
            logged.st.apply(&priority).is_err(),
            "a finished job keeps its priority"
        );
        let max = Meta::MaxWorkers {
            job: 1,
            max_workers: Some(2),
        };
        assert!(logged.st.apply(&max).is_err());
        let expired = Meta::LeaseExpired {
            at_ms: 3,
            work: crate::meta::Expired::Simple { jobs: vec![1] },
        };
        logged.st.apply(&expired).unwrap();
        logged.st.apply(&outcome(1, 4)).unwrap();
        assert_eq!(logged.reads(), reads, "a refused apply read a row");
        assert_eq!(logged.st.table.values().count(), in_ram);
        let job = logged.st.table.get(&1).unwrap();
        assert_eq!(
            job.completed_us,
            Some(2007),
            "the late outcome changed nothing"
        );
        assert_eq!(job.priority, 50);
    }
}
