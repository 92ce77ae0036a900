//! `Store`: the handle callers hold. Opening locks and recovers; appends go
//! to the writer thread; reads go straight to the segments.

use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::commit::{run_writer, QueueBudget, WriterState};
use crate::engine::Engine;
use crate::fs::{FileLayer, OsFileLayer};
use crate::lock::lock_dir;
use crate::manifest::Watermark;
use crate::reserve::{ensure_reserve, release_reserve};
use crate::segment::recovery::recover;
use crate::sequencer::{Answer, Done, Request, Sequencer};
use crate::{
    Batch, CompactionPlan, CompactionReport, Damage, MasterKey, Receipt, RecoveryReport, SliceInfo,
    SliceKey, StoreError, StoreOptions, StoreStats, VerifyReport,
};
use crate::{PackedSlice, SliceRecords};

/// The append-only segment store of one data directory.
pub struct Store<F: FileLayer = OsFileLayer> {
    engine: Arc<Engine<F>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Taken (released) by `shutdown`, or dropped with the store.
    lock: Mutex<Option<F::Lock>>,
    closed: AtomicBool,
    /// Dropping the sender stops the watermark thread.
    watermark: Mutex<Option<WatermarkThread>>,
}

/// The periodic watermark writer: dropping the sender stops it.
type WatermarkThread = (Sender<()>, JoinHandle<()>);

impl Store<OsFileLayer> {
    /// Verifies `dir` without opening it (no lock, no recovery, no writes),
    /// for a store that fails to open.
    pub fn verify_dir(
        dir: impl AsRef<Path>,
        key: Option<&MasterKey>,
    ) -> Result<VerifyReport, StoreError> {
        crate::verify::verify_dir(&OsFileLayer, dir.as_ref(), key)
    }

    /// Copies every verifiable batch of the data directory `src` (read as
    /// `verify_dir` reads it: no lock, no recovery, no writes) into a new
    /// store in `dst`, which must be empty or absent, and lists what could
    /// not be saved. A batch is copied whole or not at all.
    pub fn salvage(
        src: impl AsRef<Path>,
        dst: impl AsRef<Path>,
        key: Option<&MasterKey>,
    ) -> Result<crate::SalvageReport, StoreError> {
        crate::salvage_dir::salvage_dir(&OsFileLayer, src.as_ref(), dst.as_ref(), key)
    }

    /// Opens (creating if needed) the store in `dir`: takes the lock, recovers.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: StoreOptions,
    ) -> Result<(Store, RecoveryReport), StoreError> {
        Store::open_with(OsFileLayer, dir, opts)
    }
}

impl<F: FileLayer> Store<F> {
    /// Opens the store on any file layer (tests use a simulated one).
    pub fn open_with(
        fs: F,
        dir: impl AsRef<Path>,
        opts: StoreOptions,
    ) -> Result<(Store<F>, RecoveryReport), StoreError> {
        let started = Instant::now();
        let dir = dir.as_ref().to_path_buf();
        if opts.segment_size_bytes == 0 {
            return Err(StoreError::Invalid(
                "segment_size_bytes must be above 0".into(),
            ));
        }
        fs.create_dir_all(&dir)
            .map_err(|e| StoreError::io(format!("creating data directory {}", dir.display()), e))?;
        let lock = lock_dir(&fs, &dir)?;
        let key = opts.master_key.as_ref();
        // Recovery writes a little (a seal footer, the manifest): on a full
        // disk the reserve makes that room, and without one the store opens
        // read-only (everything readable, writes refused until reopened).
        let mut read_only = false;
        let recovered = match recover(&fs, &dir, key, false) {
            Err(e) if e.is_disk_full() && release_reserve(&fs, &dir) => {
                recover(&fs, &dir, key, false)
            }
            other => other,
        };
        let recovered = match recovered {
            Err(e) if e.is_disk_full() => {
                read_only = true;
                recover(&fs, &dir, key, true)?
            }
            other => other?,
        };
        // The reserve is a safety margin, not a condition of opening: a
        // file system without fallocate, or one too full, goes without.
        let reserve_bytes = if read_only {
            0
        } else {
            ensure_reserve(&fs, &dir, opts.reserve_bytes).unwrap_or_else(|_| {
                release_reserve(&fs, &dir);
                0
            })
        };
        let mut report = recovered.report;
        report.read_only = read_only;
        report.reserve_bytes = reserve_bytes;
        let read_only_cause = read_only.then(|| {
            format!(
                "the disk holding {} was full when the store opened, so it opened read-only; free space and reopen it",
                dir.display()
            )
        });
        let sequencer = Sequencer::new(
            opts.master_key.clone(),
            opts.segment_size_bytes,
            recovered.next_segment_id,
        );
        let engine = Arc::new(Engine {
            fs,
            dir,
            opts,
            segments: RwLock::new(recovered.segments),
            index: RwLock::new(recovered.index),
            poisoned: Mutex::new(read_only_cause),
            writer: Mutex::new(WriterState::new(recovered.next_segment_id)),
            budget: QueueBudget::default(),
            sequencer,
            manifest: Mutex::new(recovered.manifest),
            acked: Mutex::new(Watermark::default()),
            active_frames: Default::default(),
        });
        let thread_engine = Arc::clone(&engine);
        let writer = std::thread::Builder::new()
            .name("booster-store-writer".into())
            .spawn(move || run_writer(thread_engine))
            .map_err(|e| StoreError::io("starting the writer thread", e))?;
        let watermark = start_watermark_thread(&engine)?;
        report.open_ms = started.elapsed().as_secs_f64() * 1e3;
        let store = Store {
            engine,
            writer: Mutex::new(Some(writer)),
            lock: Mutex::new(Some(lock)),
            closed: AtomicBool::new(false),
            watermark: Mutex::new(watermark),
        };
        Ok((store, report))
    }

    /// Appends a batch and blocks until it is durable (group commit).
    pub fn append(&self, batch: Batch) -> Result<Receipt, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.append_with(
            batch,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Poisoned {
                cause: "the writer thread stopped".into(),
            })
        })
    }

    /// Appends without blocking: `done` runs on the writer thread once the
    /// batch is durable (or failed). Compression has already happened on the
    /// caller's thread when this returns. When the store is poisoned or the
    /// batch is invalid, `done` runs at once on the caller's thread.
    /// Callbacks run in commit order; each delays the next group, so keep
    /// them short, and never call `append`, `compact` or `close` on this
    /// store from one (the writer thread would wait on itself).
    pub fn append_with(
        &self,
        batch: Batch,
        done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>,
    ) {
        self.append_placing(batch, done);
    }

    /// `append_with`, saying whether the batch was placed in the log (its
    /// position among all batches fixed, ARCHITECTURE.md "Batch atomicity",
    /// step 2) before this returned. An urgent batch is, unless a
    /// compaction or close holds the writer; another is when the window
    /// had room. When it returns true, every batch appended after it is
    /// placed after it and written after it (or in the same group). `done`
    /// may already have run when it returns.
    pub fn append_placing(
        &self,
        mut batch: Batch,
        done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>,
    ) -> bool {
        let done: Done = done;
        if self.closed.load(Ordering::Acquire) {
            done(Err(StoreError::Closed));
            return false;
        }
        if let Some(err) = self.engine.poison_error() {
            done(Err(err));
            return false;
        }
        let urgent = batch.urgent;
        let needs_room = batch.needs_room.take();
        let frames = match batch.prepare(self.engine.opts.zstd_level) {
            Ok(frames) => frames,
            Err(e) => {
                done(Err(e));
                return false;
            }
        };
        if let Some((what, room)) = needs_room {
            if let Err(e) = self.engine.room_for(what, room, &frames) {
                done(Err(e));
                return false;
            }
        }
        let request = Request {
            frames: frames.into(),
            done: Answer::new(done),
            urgent,
        };
        let bytes = request.bytes();
        if urgent {
            self.engine.budget.acquire_now(bytes);
        } else {
            self.engine.budget.acquire(bytes);
        }
        // Placed and sealed on this thread when the window has room.
        match self.engine.sequencer.push(request) {
            Ok(placed) => placed,
            Err(request) => {
                self.engine.budget.release(bytes);
                request.done.send(Err(StoreError::Poisoned {
                    cause: "the writer thread stopped".into(),
                }));
                false
            }
        }
    }

    /// The records of a slice (decrypted, decompressed), or None.
    pub fn read_slice(&self, key: &SliceKey) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        Ok(self.read_slice_records(key)?.map(|r| r.to_vecs()))
    }

    /// The slice's frame body, authenticated and decrypted but still
    /// compressed, or None: what a remote worker is sent, which
    /// decompresses it itself (ARCHITECTURE.md, "Wire protocol 3").
    pub fn read_slice_packed(&self, key: &SliceKey) -> Result<Option<PackedSlice>, StoreError> {
        let Some((loc, body)) = self.engine.read_slice_body(key)? else {
            return Ok(None);
        };
        let h = &loc.header;
        let zstd = h.flags & crate::segment::frame::FLAG_ZSTD != 0;
        Ok(Some(PackedSlice::of_frame(
            body,
            h.raw_len,
            h.record_count,
            zstd,
        )))
    }

    /// Like `read_slice`, without an allocation per record.
    pub fn read_slice_records(&self, key: &SliceKey) -> Result<Option<SliceRecords>, StoreError> {
        let Some((loc, raw)) = self.engine.read_slice_raw(key)? else {
            return Ok(None);
        };
        let records =
            SliceRecords::new(raw, loc.header.record_count).map_err(|e| StoreError::Corrupt {
                segment_id: loc.segment_id,
                path: self
                    .engine
                    .dir
                    .join(crate::segment::segment_file_name(loc.segment_id)),
                offset: loc.offset,
                what: e.0,
            })?;
        Ok(Some(records))
    }

    /// Index entries for one owner and stream, ordered by seq.
    pub fn slices(&self, owner: u64, stream: u32) -> Vec<SliceInfo> {
        self.scan(owner, stream, .., false, usize::MAX)
    }

    /// The live keys of (owner, stream) whose seq lies in `seqs`, ascending
    /// (or descending with `rev`), at most `limit`: a page of a listing,
    /// such as "the newest 100 below cursor X" (`..x`, `rev`, 100).
    /// Deleted keys are skipped.
    pub fn scan(
        &self,
        owner: u64,
        stream: u32,
        seqs: impl RangeBounds<u64>,
        rev: bool,
        limit: usize,
    ) -> Vec<SliceInfo> {
        self.try_scan(owner, stream, seqs, rev, limit)
            .unwrap_or_default()
    }

    /// `scan`, failing when an index block of a sealed segment no longer
    /// decodes. Those blocks are checked (CRC) when the footer is read at
    /// open or written at seal, and a sealed file is never written, so
    /// `scan` (which returns nothing then) sees this only when something
    /// outside the store changed a segment file while it was open.
    pub fn try_scan(
        &self,
        owner: u64,
        stream: u32,
        seqs: impl RangeBounds<u64>,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<SliceInfo>, StoreError> {
        Ok(self
            .try_scan_within(owner, stream, seqs, rev, limit, usize::MAX)?
            .slices)
    }

    /// `try_scan`, looking at most at `max_keys` keys, deleted ones
    /// included: a listing's bound on the work of one call, however many
    /// deleted keys lie in the range until a compaction drops them.
    pub fn try_scan_within(
        &self,
        owner: u64,
        stream: u32,
        seqs: impl RangeBounds<u64>,
        rev: bool,
        limit: usize,
        max_keys: usize,
    ) -> Result<crate::ScanPage, StoreError> {
        let seqs = (seqs.start_bound().cloned(), seqs.end_bound().cloned());
        self.engine
            .index
            .read()
            .scan_within(owner, stream, seqs, rev, limit, max_keys)
    }

    /// The meta log (decrypted), for replay on open: the newest durable
    /// checkpoint record first (when there is one), then every later meta
    /// record in commit order. Fails on the first meta frame that fails its
    /// checks.
    pub fn meta_records(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.engine.read_meta()
    }

    /// `meta_records` for a degraded store: a meta frame that fails its
    /// checks (bit rot in a sealed segment, found only when read) is left
    /// out and named in the returned damage list, so the caller can replay
    /// the rest and mark what the lost records described.
    pub fn meta_records_skipping_damage(&self) -> Result<(Vec<Vec<u8>>, Vec<Damage>), StoreError> {
        self.engine.read_meta_with(true)
    }

    /// Rewrites the live slices (per `plan`) and the plan's meta snapshot
    /// into new segments under fresh keys and publishes them atomically (see
    /// ARCHITECTURE.md). Appends wait meanwhile, and `plan` is consulted while
    /// they wait: it must not itself wait on an append.
    pub fn compact(&self, plan: &dyn CompactionPlan) -> Result<CompactionReport, StoreError> {
        self.engine.compact(plan).inspect(|_| self.retake_reserve())
    }

    /// A compaction on a tight disk may give the reserve back
    /// (`reserve::free_with_reserve`); once one finished, the store takes
    /// it again where there is room (`ensure_reserve` leaves a nearly full
    /// disk as it is), so a long-running process that compacts in the
    /// background is not left without one until its next open.
    fn retake_reserve(&self) {
        let e = &self.engine;
        if ensure_reserve(&e.fs, &e.dir, e.opts.reserve_bytes).is_err() {
            release_reserve(&e.fs, &e.dir);
        }
    }

    /// Rewrites only the sealed segments whose dead share under `plan`
    /// (`SegmentUsage::dead_share`) is at least `min_dead_share`, and keeps
    /// the rest as they are: the plan's meta snapshot (which must replace
    /// every meta record, as for `compact`) starts the output as a
    /// checkpoint, then the victims' live slices, and tombstones where a
    /// kept segment holds an older frame of a key the victims delete or the
    /// plan drops. Published atomically by the manifest; with no segment
    /// past the threshold nothing is written but the active segment's seal
    /// (`CompactionReport::segments_rewritten` is 0). An empty meta snapshot
    /// makes it a full `compact`. Appends wait meanwhile, as for `compact`.
    pub fn compact_segments(
        &self,
        plan: &dyn CompactionPlan,
        min_dead_share: f64,
    ) -> Result<CompactionReport, StoreError> {
        (self.engine.compact_segments(plan, min_dead_share)).inspect(|_| self.retake_reserve())
    }

    /// The bytes free in the data directory's file system (statvfs), as
    /// a batch that waits for room (`Batch::needs_room`) is checked
    /// against.
    pub fn free_bytes(&self) -> Result<u64, StoreError> {
        let dir = &self.engine.dir;
        self.engine
            .fs
            .free_bytes(dir)
            .map_err(|e| StoreError::io(format!("reading the free space of {}", dir.display()), e))
    }

    /// Checks every header, frame and footer CRC and, with the key, every tag.
    pub fn verify(&self) -> VerifyReport {
        self.engine.verify()
    }

    /// Records the highest acknowledged position in the manifest now (the
    /// background thread does this about every `watermark_interval_ms`).
    /// After it, losing any batch acknowledged so far is reported on open as
    /// lost acknowledged data, never taken for a torn tail.
    pub fn record_watermark(&self) -> Result<(), StoreError> {
        self.engine.record_watermark()
    }

    /// Segments, frames, live and dead bytes, raw and stored bytes.
    pub fn stats(&self) -> StoreStats {
        let segments = self.engine.segments.read().len();
        self.engine.index.read().stats(segments)
    }

    /// What the store holds in RAM, counted (a diagnostic: issue 12's soak
    /// samples it beside the resident set).
    pub fn memory(&self) -> crate::StoreMemory {
        let segments = self.engine.segments.read().len();
        self.engine.index.read().memory(segments)
    }

    /// As [`Store::stats`], but the slices `plan` would drop count as dead
    /// bytes, not live: what [`Store::compact`] with `plan` reclaims.
    pub fn stats_with(&self, plan: &dyn CompactionPlan) -> Result<StoreStats, StoreError> {
        let segments = self.engine.segments.read().len();
        self.engine.index.read().stats_with(segments, plan)
    }

    /// Each segment's file bytes and the bytes of it a compaction with
    /// `plan` keeps, in segment id order: where the dead bytes are.
    pub fn segment_usage(
        &self,
        plan: &dyn CompactionPlan,
    ) -> Result<Vec<crate::SegmentUsage>, StoreError> {
        self.engine.segment_usage(plan)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.engine.dir
    }

    /// Finishes queued appends, seals the active segment and releases the lock.
    pub fn close(self) -> Result<(), StoreError> {
        self.shutdown()
    }

    /// `close` through a shared handle: finishes queued appends, seals the
    /// active segment (unless the store is poisoned: a poisoned store writes
    /// nothing more) and releases the directory lock before it returns, so
    /// the directory can be opened again at once, even while other clones of
    /// an `Arc<Store>` are still alive. After it, reads still work and every
    /// append fails with `StoreError::Closed`. Calling it again does nothing.
    pub fn shutdown(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        self.stop_writer();
        let sealed = if self.engine.poison_error().is_some() {
            Ok(())
        } else {
            let mut w = self.engine.writer.lock();
            self.engine
                .seal_active(&mut w)
                .and_then(|()| self.engine.record_watermark())
        };
        drop(self.lock.lock().take());
        sealed
    }

    fn stop_writer(&self) {
        self.engine.sequencer.stop();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
        if let Some((stop, handle)) = self.watermark.lock().take() {
            drop(stop);
            let _ = handle.join();
        }
    }

    /// Sorted-run blocks read from the files so far (the runs indexed now).
    #[cfg(test)]
    pub(crate) fn run_block_reads(&self) -> u64 {
        self.engine.index.read().run_block_reads()
    }

    /// Keys the index holds in RAM maps (tests of the on-disk index).
    #[cfg(test)]
    pub(crate) fn keys_in_ram(&self) -> usize {
        self.engine.index.read().keys_in_ram()
    }

    /// The ids of the segments, oldest first (for tests and `inspect`).
    pub fn segment_ids(&self) -> Vec<u64> {
        self.engine.segments.read().keys().copied().collect()
    }
}

/// Records the watermark about every `watermark_interval_ms`, off the
/// commit path: a commit never waits for this write.
fn start_watermark_thread<F: FileLayer>(
    engine: &Arc<Engine<F>>,
) -> Result<Option<WatermarkThread>, StoreError> {
    let interval_ms = engine.opts.watermark_interval_ms;
    if interval_ms == 0 {
        return Ok(None);
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let engine = Arc::clone(engine);
    let handle = std::thread::Builder::new()
        .name("booster-store-watermark".into())
        .spawn(move || {
            let interval = std::time::Duration::from_millis(interval_ms);
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                if engine.poison_error().is_some() {
                    return;
                }
                // A failure poisons the store; the error reaches the next append.
                let _ = engine.record_watermark();
            }
        })
        .map_err(|e| StoreError::io("starting the watermark thread", e))?;
    Ok(Some((stop, handle)))
}

impl<F: FileLayer> Drop for Store<F> {
    fn drop(&mut self) {
        self.stop_writer();
    }
}
