//! What the runtime needs of a store, as an object-safe trait, so the one
//! runtime runs on real files (`Store<OsFileLayer>`) and, in power-loss
//! tests, on the store's simulated file system (`Store<SimFileLayer>`):
//! see `Runtime::open_on`. The cost is one virtual call per append or read.

use std::ops::Bound;

use booster_store::fs::FileLayer;
use booster_store::{
    Batch, CompactionPlan, CompactionReport, PackedSlice, Receipt, ScanPage, SliceInfo, SliceKey,
    SliceRecords, Store, StoreError, StoreMemory, StoreStats, VerifyReport,
};

/// The store calls the runtime makes; each is `Store`'s method of that name.
pub trait SliceStore: Send + Sync + 'static {
    fn append_with(&self, batch: Batch, done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>);
    /// `Store::append_placing`: `append_with`, saying whether the batch
    /// was placed in the log before it returned. By default never (a
    /// store that cannot say takes the durable path).
    fn append_placing(
        &self,
        batch: Batch,
        done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>,
    ) -> bool {
        self.append_with(batch, done);
        false
    }
    fn read_slice(&self, key: &SliceKey) -> Result<Option<Vec<Vec<u8>>>, StoreError>;
    /// `read_slice` in one buffer, without an allocation per record (a
    /// download's reader threads: the reader makes each record's `Vec`,
    /// so it is freed on the thread that made it). By default the
    /// records of `read_slice`, put back in one buffer.
    fn read_slice_records(&self, key: &SliceKey) -> Result<Option<SliceRecords>, StoreError> {
        Ok(self
            .read_slice(key)?
            .map(|records| SliceRecords::from_records(&records)))
    }
    /// The slice's frame body, decrypted, still compressed: what a
    /// remote lease carries. By default the records of `read_slice`,
    /// packed again.
    fn read_slice_packed(&self, key: &SliceKey) -> Result<Option<PackedSlice>, StoreError> {
        let Some(records) = self.read_slice(key)? else {
            return Ok(None);
        };
        let packed = PackedSlice::pack(&records, 1).map_err(|e| StoreError::Invalid(e.0))?;
        Ok(Some(packed))
    }
    fn slices(&self, owner: u64, stream: u32) -> Vec<SliceInfo>;
    /// `Store::try_scan`, with the seq range as a pair of bounds (a trait
    /// object cannot take `impl RangeBounds`). An index block that cannot
    /// be read is an error, never an empty range: the job table's index
    /// and pages are found by scans.
    fn scan(
        &self,
        owner: u64,
        stream: u32,
        seqs: (Bound<u64>, Bound<u64>),
        rev: bool,
        limit: usize,
    ) -> Result<Vec<SliceInfo>, StoreError>;
    /// `Store::try_scan_within`: `scan`, looking at most at `max_keys`
    /// keys, deleted ones included, and saying where it stopped short.
    fn scan_within(
        &self,
        owner: u64,
        stream: u32,
        seqs: (Bound<u64>, Bound<u64>),
        rev: bool,
        limit: usize,
        max_keys: usize,
    ) -> Result<ScanPage, StoreError>;
    fn compact(&self, plan: &dyn CompactionPlan) -> Result<CompactionReport, StoreError>;
    fn compact_segments(
        &self,
        plan: &dyn CompactionPlan,
        min_dead_share: f64,
    ) -> Result<CompactionReport, StoreError>;
    /// `Store::stats`: the counters, no read.
    fn stats(&self) -> StoreStats;
    fn verify(&self) -> VerifyReport;
    fn stats_with(&self, plan: &dyn CompactionPlan) -> Result<StoreStats, StoreError>;
    fn memory(&self) -> StoreMemory;
    fn shutdown(&self) -> Result<(), StoreError>;
    /// `Store::free_bytes`; None when it cannot be read.
    fn free_bytes(&self) -> Option<u64>;
}

impl<F: FileLayer> SliceStore for Store<F> {
    fn append_with(&self, batch: Batch, done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>) {
        Store::append_with(self, batch, done)
    }
    fn append_placing(
        &self,
        batch: Batch,
        done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>,
    ) -> bool {
        Store::append_placing(self, batch, done)
    }
    fn read_slice(&self, key: &SliceKey) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        Store::read_slice(self, key)
    }
    fn read_slice_records(&self, key: &SliceKey) -> Result<Option<SliceRecords>, StoreError> {
        Store::read_slice_records(self, key)
    }
    fn read_slice_packed(&self, key: &SliceKey) -> Result<Option<PackedSlice>, StoreError> {
        Store::read_slice_packed(self, key)
    }
    fn slices(&self, owner: u64, stream: u32) -> Vec<SliceInfo> {
        Store::slices(self, owner, stream)
    }
    fn scan(
        &self,
        owner: u64,
        stream: u32,
        seqs: (Bound<u64>, Bound<u64>),
        rev: bool,
        limit: usize,
    ) -> Result<Vec<SliceInfo>, StoreError> {
        Store::try_scan(self, owner, stream, seqs, rev, limit)
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
        Store::try_scan_within(self, owner, stream, seqs, rev, limit, max_keys)
    }
    fn compact(&self, plan: &dyn CompactionPlan) -> Result<CompactionReport, StoreError> {
        Store::compact(self, plan)
    }
    fn compact_segments(
        &self,
        plan: &dyn CompactionPlan,
        min_dead_share: f64,
    ) -> Result<CompactionReport, StoreError> {
        Store::compact_segments(self, plan, min_dead_share)
    }
    fn stats(&self) -> StoreStats {
        Store::stats(self)
    }
    fn verify(&self) -> VerifyReport {
        Store::verify(self)
    }
    fn stats_with(&self, plan: &dyn CompactionPlan) -> Result<StoreStats, StoreError> {
        Store::stats_with(self, plan)
    }
    fn memory(&self) -> StoreMemory {
        Store::memory(self)
    }
    fn shutdown(&self) -> Result<(), StoreError> {
        Store::shutdown(self)
    }
    fn free_bytes(&self) -> Option<u64> {
        Store::free_bytes(self).ok()
    }
}
