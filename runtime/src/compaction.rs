//! Compaction as the runtime runs it: a checkpoint first, then the store's
//! segment-by-segment compaction (`Runtime::compact`) or its full one
//! (`Runtime::compact_full`); and background compaction, which the timer
//! starts when the store's dead bytes pass a threshold
//! (`RuntimeOptions::auto_compact`). ARCHITECTURE.md, "Background
//! compaction".

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use booster_store::{CompactionReport, StoreStats};

use crate::runtime::{checkpoint_applied, enqueue_checkpoint};
use crate::shared::Shared;
use crate::slice_store::SliceStore;
use crate::snapshot::Snapshot;
use crate::RuntimeError;

/// A segment is rewritten when at least this share of its frame bytes is
/// dead: a compaction then writes at most one byte per byte it reclaims.
pub const MIN_DEAD_SHARE: f64 = 0.5;

/// Background compaction waits for at least this many dead bytes
/// (`RuntimeOptions::auto_compact_min_dead_bytes`, default 1 GiB).
pub const AUTO_COMPACT_MIN_DEAD_BYTES: u64 = 1 << 30;

/// Which compaction the store runs after the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionMode {
    /// Only the segments at or past `MIN_DEAD_SHARE` are rewritten.
    Segments,
    /// Every live frame is rewritten (`booster compact --full`): every dead
    /// byte goes, and every segment gets a fresh key.
    Full,
}

/// Writes a checkpoint and compacts, with no commit in flight: appends
/// wait on the append gate while both are written. Blocking.
pub(crate) fn compact_blocking(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    mode: CompactionMode,
) -> Result<CompactionReport, RuntimeError> {
    let _gate = shared.append_gate.write();
    while shared.inflight_commits.load(Ordering::Acquire) > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (rx, _, log) = enqueue_checkpoint(shared, store, true, None)?;
    checkpoint_applied(rx.blocking_recv().ok())?;
    // A checkpoint was written: the timer's backoff (a disk too full for
    // checkpoints, say) ends with it.
    shared.state.lock().checkpoint_written();
    // The compacted log is that checkpoint's own records, not ones built
    // again now: a lease or the timer may have moved a job since (no
    // record), and counts that disagree with the pages would make the next
    // open refuse the directory.
    let plan = Snapshot::of_checkpoint(&shared.state.lock(), log)?;
    let report = match mode {
        CompactionMode::Segments => store.compact_segments(&plan, MIN_DEAD_SHARE),
        CompactionMode::Full => store.compact(&plan),
    };
    report.map_err(RuntimeError::Store)
}

/// Background compaction's setting and what it has done.
#[derive(Default)]
pub struct AutoCompaction {
    enabled: AtomicBool,
    min_dead_bytes: AtomicU64,
    running: AtomicBool,
    /// The store's dead bytes (its counters) must reach this before the
    /// next one starts: what the last one left plus `min_dead_bytes`, so
    /// a store whose dead bytes are spread too thin to rewrite is not
    /// compacted again at every tick.
    floor_bytes: AtomicU64,
    runs: AtomicU64,
    failures: AtomicU64,
}

impl AutoCompaction {
    pub fn configure(&self, enabled: bool, min_dead_bytes: u64) {
        self.enabled.store(enabled, Ordering::Release);
        self.min_dead_bytes.store(min_dead_bytes, Ordering::Release);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Background compactions finished, and failed, since open.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.runs.load(Ordering::Acquire),
            self.failures.load(Ordering::Acquire),
        )
    }

    /// Due when the dead bytes pass max(`min_dead_bytes`, half the
    /// store's frame bytes) and the floor the last one left. `stats` are
    /// the store's counters (`Store::stats`, no read): superseded and
    /// deleted frames, but not yet the slices of destroyed jobs, which the
    /// compaction itself finds.
    pub fn due(&self, stats: &StoreStats) -> bool {
        let min_dead_bytes = self.min_dead_bytes.load(Ordering::Acquire);
        let half = (stats.live_bytes + stats.dead_bytes) / 2;
        stats.dead_bytes >= min_dead_bytes.max(half)
            && stats.dead_bytes >= self.floor_bytes.load(Ordering::Acquire)
    }
}

/// The timer's step: starts a segment compaction when one is due and
/// none is running, off the timer (which keeps ticking meanwhile).
pub(crate) fn compact_if_due(shared: &Arc<Shared>, store: &Weak<dyn SliceStore>) {
    let auto = &shared.auto_compaction;
    if !auto.enabled() {
        return;
    }
    let Some(store) = store.upgrade() else {
        return;
    };
    if !auto.due(&store.stats()) || auto.running.swap(true, Ordering::AcqRel) {
        return;
    }
    let refused = {
        let st = shared.state.lock();
        st.book.store_read_only || st.book.stopping || st.book.draining
    };
    if refused {
        auto.running.store(false, Ordering::Release);
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let (s, st) = (shared.clone(), store.clone());
        let result = tokio::task::spawn_blocking(move || {
            compact_blocking(&s, &st, CompactionMode::Segments)
        })
        .await;
        let auto = &shared.auto_compaction;
        let min_dead_bytes = auto.min_dead_bytes.load(Ordering::Acquire);
        let floor = store.stats().dead_bytes.saturating_add(min_dead_bytes);
        auto.floor_bytes.store(floor, Ordering::Release);
        match result {
            Ok(Ok(_)) => {
                auto.runs.fetch_add(1, Ordering::AcqRel);
            }
            // Nothing is lost: a compaction that fails before it publishes
            // leaves the old segments, and one that fails after poisons
            // the store (G9) as any failed write does.
            Ok(Err(e)) => {
                auto.failures.fetch_add(1, Ordering::AcqRel);
                eprintln!(
                    "booster: background compaction failed: {e}; the next is tried once {floor} dead bytes are counted (`booster compact` runs one now)"
                );
            }
            Err(e) => {
                auto.failures.fetch_add(1, Ordering::AcqRel);
                eprintln!("booster: background compaction failed: {e}");
            }
        }
        auto.running.store(false, Ordering::Release);
    });
}
