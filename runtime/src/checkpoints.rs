//! When the timer takes an automatic checkpoint, and what it does when one
//! cannot be written (issue 12, step 3.3; ARCHITECTURE.md, "3.3 Automatic
//! checkpoints").
//!
//! A checkpoint that fails loses nothing (the meta log holds every
//! record), but the finished rows it would have written stay in RAM and
//! the log grows, so a failure is never silent and never retried at the
//! timer's pace: a failure whose cause is known to last (a row page that
//! cannot be read, damage a checkpoint would make permanent) pauses
//! automatic checkpoints until the data directory is repaired and
//! reopened; any other backs off exponentially, up to
//! `CHECKPOINT_BACKOFF_MAX_MS`. Either way the reason is logged once (a
//! stderr line) and shown in `Metrics::checkpoints_paused` until a
//! checkpoint is written.
//!
//! **Architecture invariant:** the timer never takes the append gate for
//! a checkpoint that is known to fail.

use crate::state::State;
use crate::RuntimeError;
use booster_store::StoreError;

/// A checkpoint is due when this many rows changed since the last one
/// (ARCHITECTURE.md, "2. What stays in RAM": the overlay's bound). Each
/// waits in the overlay until the checkpoint is durable, at about 480
/// bytes a no-op job's row (the test below; about 450 in the soak): 31 MB
/// at this bound. It was 262 144, 4x the rows at about 800 bytes each,
/// most of the soak's peak (issue 12). Rows with larger arguments or
/// results are bounded by `CHECKPOINT_META_BYTES` instead.
pub const CHECKPOINT_CHANGED_ROWS: usize = 65_536;
/// Or when the meta records applied since the last one reach this many
/// bytes: the rows they changed hold their arguments and results in full
/// (a 4 KB argument is a 4 KB row), so a count alone bounds no bytes.
/// Each record's bytes count once, though a row keeps only its newest
/// result: an upper bound on what the rows gained.
pub const CHECKPOINT_META_BYTES: u64 = 32 << 20;
/// Or when this long passed with any change since the last one.
pub const CHECKPOINT_INTERVAL_MS: u64 = 1_000;
/// Checkpoints the changed-rows and meta-bytes bounds take are at least
/// this far apart.
const CHECKPOINT_MIN_GAP_MS: u64 = 50;
/// The first retry after a failed checkpoint waits this long, each next
/// one twice as long as the one before, up to `CHECKPOINT_BACKOFF_MAX_MS`.
const CHECKPOINT_BACKOFF_MIN_MS: u64 = 1_000;
const CHECKPOINT_BACKOFF_MAX_MS: u64 = 60_000;

/// How this process's checkpoints fare (`Book::checkpoints`).
#[derive(Debug, Default)]
pub struct CheckpointHealth {
    /// Failed checkpoints since the last one written.
    pub failures_in_a_row: u32,
    /// No automatic checkpoint is tried before this (the runtime's clock).
    pub retry_at_ms: u64,
    /// Why checkpoints fail or are paused, as logged (once per reason);
    /// None while they are written.
    pub paused: Option<String>,
    /// The free bytes the last checkpoint the store refused for want of
    /// room asked for (`StoreError::NoSpace`): the timer builds none
    /// while the disk has less (`checkpoint_known_to_fail`).
    pub needed_bytes: Option<u64>,
    /// Checkpoints sealed and not yet answered by the store: a pre-build
    /// waits for none (`image::RowSnapshot::take`).
    pub in_flight: u32,
}

/// What to tell the operator when checkpoints stop: it costs memory and
/// log, not data.
const PAUSED_COST: &str = "finished rows stay in RAM and the meta log grows until a checkpoint \
                           is written (the log holds every record: nothing is lost)";

impl CheckpointHealth {
    /// The wait before the next try after `failures` failures in a row.
    pub fn backoff_ms(failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(16);
        (CHECKPOINT_BACKOFF_MIN_MS << doublings).min(CHECKPOINT_BACKOFF_MAX_MS)
    }

    /// Logs `why` once: a reason already logged is not logged again.
    fn surface(&mut self, why: String) {
        if self.paused.as_deref() != Some(why.as_str()) {
            eprintln!("booster: {why}");
            self.paused = Some(why);
        }
    }
}

/// A checkpoint in the store's queue: what the store's answer changes
/// (`State::checkpoint_answered`).
pub struct Sealed {
    /// The table's generation sealed with it (`TableView::seal`).
    generation: u64,
    /// The records applied since the checkpoint before it, which it
    /// covers, and their bytes.
    records: u64,
    meta_bytes: u64,
    /// Where refiling goes on once it is durable (`Book::refile_from`,
    /// `kind_refile`).
    refile_next: crate::table::image::RefileNext,
    /// The rows its sweep removed, put back if it is not written.
    removed: Vec<crate::table::expiry::Removed>,
}

impl State {
    /// Seals the table's generation for a checkpoint batch just built
    /// (`image::swept_checkpoint_batch`, its `refile_next` and `removed`),
    /// under the lock it was built under: rows changed after this are the
    /// next one's.
    pub fn seal_checkpoint(
        &mut self,
        refile_next: crate::table::image::RefileNext,
        removed: Vec<crate::table::expiry::Removed>,
    ) -> Sealed {
        self.book.checkpoints.in_flight += 1;
        Sealed {
            generation: self.table.seal(),
            records: std::mem::take(&mut self.book.records_since_checkpoint),
            meta_bytes: std::mem::take(&mut self.book.meta_bytes_since_checkpoint),
            refile_next,
            removed,
        }
    }

    /// The store answered checkpoint `sealed` (its record applied when
    /// `written`). Written: the finished rows it wrote leave RAM, and the
    /// refile cursor moves on. Not written (a failure that poisons, or a
    /// refusal that does not: no room for it): nothing it would have
    /// changed moves; its records count for the next, the rows its sweep
    /// removed are put back (`expiry::put_back`: else the live book would
    /// lack rows a reopen finds), the next sweep looks again, and the next
    /// refiles the same pages.
    pub fn checkpoint_answered(
        &mut self,
        sealed: Sealed,
        written: bool,
        image: std::sync::Weak<dyn crate::slice_store::SliceStore>,
    ) {
        self.book.checkpoints.in_flight -= 1;
        if written {
            self.table.written_through(sealed.generation, image);
            self.book.refile_from = sealed.refile_next.expiry;
            self.book.kind_refile = sealed.refile_next.kinds;
        } else {
            self.book.records_since_checkpoint += sealed.records;
            self.book.meta_bytes_since_checkpoint += sealed.meta_bytes;
            crate::table::expiry::put_back(self, sealed.removed);
            self.book.sweep_due_ms = 0;
        }
    }

    /// Whether the timer takes a checkpoint now: in a process that runs
    /// work, writable, not stopping, nothing known to make it fail
    /// (`checkpoint_blocker`), past the backoff of a failed one; when
    /// `CHECKPOINT_CHANGED_ROWS` rows changed or `CHECKPOINT_META_BYTES`
    /// of records applied, or `CHECKPOINT_INTERVAL_MS`
    /// passed with any row changed or record applied (which also bounds
    /// the meta bytes since the last one), or with rows due for the
    /// retention sweep (`table/expiry.rs`).
    pub fn checkpoint_due(&self, now_ms: u64) -> bool {
        let b = &self.book;
        let blocked = !b.runs_workers
            || !b.auto_checkpoint
            || b.store_read_only
            || b.poisoned.is_some()
            || b.stopping
            || now_ms < b.checkpoints.retry_at_ms
            || self.blocked_by_damage();
        if blocked {
            return false;
        }
        let since = now_ms.saturating_sub(b.last_checkpoint_ms);
        let changed = self.table.changed();
        let sweep_due = now_ms >= b.sweep_due_ms.min(b.finished_due_ms);
        let full = changed >= CHECKPOINT_CHANGED_ROWS
            || b.meta_bytes_since_checkpoint >= CHECKPOINT_META_BYTES;
        (full && since >= CHECKPOINT_MIN_GAP_MS)
            || (since >= CHECKPOINT_INTERVAL_MS
                && (changed > 0 || b.records_since_checkpoint > 0 || sweep_due))
    }

    fn blocked_by_damage(&self) -> bool {
        self.book
            .damage
            .iter()
            .any(|d| d.meta_lost || !d.identified)
            || self.table.first_unreadable().is_some()
    }

    /// Why no checkpoint may be written now, saying what to do, when the
    /// cause lasts until the data directory is repaired:
    /// - this open went without a damaged range that may have held job
    ///   records: lost jobs are found anew at each open from the log's
    ///   gaps, and a checkpoint would cut the log and make that loss
    ///   permanent, where restoring the segment still undoes it;
    /// - a row page cannot be read that a record applied live had to
    ///   change, or that rows changed since merge into (Known fault 5):
    ///   the page is not rewritten from RAM, which would supersede the
    ///   rotted frame and make its rows' loss permanent.
    pub fn checkpoint_blocker(&self) -> Option<String> {
        if let Some(d) = self
            .book
            .damage
            .iter()
            .find(|d| d.meta_lost || !d.identified)
        {
            return Some(format!(
                "checkpoints are paused: this data directory opened without a damaged range \
                 that may have held job records ({}), and a checkpoint would make that loss \
                 permanent; {PAUSED_COST}: restore the segment from a backup and reopen, or \
                 salvage what survived into a new data directory (`booster salvage`)",
                crate::lost::describe_range(d)
            ));
        }
        let (page, e) = self.table.first_unreadable()?;
        let (first, last) = crate::lost::page_ids(page);
        Some(format!(
            "checkpoints are paused: row page {page} (job ids {first} to {last}) of the \
             checkpoint's table cannot be read ({e}), and rows of it changed since; {PAUSED_COST}: \
             restore the segment from a backup and reopen, or salvage what survived into a new \
             data directory (`booster salvage`)"
        ))
    }

    /// The timer found checkpoints blocked (`checkpoint_blocker`): says so
    /// once, without trying one.
    pub fn surface_checkpoint_blocker(&mut self) {
        if let Some(why) = self.checkpoint_blocker() {
            self.book.checkpoints.surface(why);
        }
    }

    /// A checkpoint could not be written at `now_ms`: counted, said once,
    /// and the next automatic one waits out the backoff.
    pub fn checkpoint_failed(&mut self, now_ms: u64, e: &RuntimeError) {
        self.back_off(now_ms);
        self.book.checkpoints.needed_bytes = match e {
            RuntimeError::Store(StoreError::NoSpace { needed_bytes, .. }) => Some(*needed_bytes),
            _ => None,
        };
        let why = match self.checkpoint_blocker() {
            Some(why) => why,
            None => format!(
                "a checkpoint could not be written ({e}); {PAUSED_COST}; retrying with \
                 backoff, at most every {} s",
                CHECKPOINT_BACKOFF_MAX_MS / 1000
            ),
        };
        self.book.checkpoints.surface(why);
    }

    /// A failed checkpoint, tried or known to fail: counted, and the next
    /// automatic one waits out the backoff.
    fn back_off(&mut self, now_ms: u64) {
        self.book.metrics.checkpoint_failures += 1;
        let h = &mut self.book.checkpoints;
        h.failures_in_a_row = h.failures_in_a_row.saturating_add(1);
        let wait_ms = CheckpointHealth::backoff_ms(h.failures_in_a_row);
        h.retry_at_ms = now_ms.saturating_add(wait_ms);
    }

    /// Whether the timer takes a checkpoint at `now_ms`: one is due
    /// (`checkpoint_due`; else a blocker is said once) and not known to
    /// be refused. Known to be refused: the last one was, for want of
    /// room, and the disk has less free (`free_bytes`, read only then;
    /// None: unknown) than it asked for; it then counts as failed (as
    /// said when it was refused) without being built. Building it would
    /// sweep, read and rebuild the touched pages and compress the batch
    /// under the state lock and the exclusive append gate, stalling every
    /// submit and commit, for a refusal (the review of faults12, finding
    /// 3). The need only grows while no checkpoint is written (rows keep
    /// changing), so the figure of the last refusal is a floor.
    pub fn timer_checkpoint_due(
        &mut self,
        now_ms: u64,
        free_bytes: impl FnOnce() -> Option<u64>,
    ) -> bool {
        if !self.checkpoint_due(now_ms) {
            if self.book.auto_checkpoint && self.book.runs_workers {
                self.surface_checkpoint_blocker();
            }
            return false;
        }
        let Some(needed_bytes) = self.book.checkpoints.needed_bytes else {
            return true;
        };
        match free_bytes() {
            Some(free) if free < needed_bytes => {
                self.back_off(now_ms);
                false
            }
            _ => true,
        }
    }

    /// A checkpoint was written: the backoff ends, and a pause that was
    /// said is said to be over.
    pub fn checkpoint_written(&mut self) {
        let h = &mut self.book.checkpoints;
        if h.paused.take().is_some() {
            eprintln!("booster: checkpoints are written again");
        }
        h.failures_in_a_row = 0;
        h.retry_at_ms = 0;
        h.needed_bytes = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the overlay may hold for the rows a checkpoint waits for.
    const OVERLAY_BUDGET_BYTES: usize = 32 << 20;

    /// The rows the changed-rows trigger lets wait for a checkpoint fit the
    /// overlay's budget, at what a finished no-op job's row (the soak's)
    /// costs there, measured by the allocator: the row as decoded, its
    /// own kind, arguments and properties (`Arc`s) included, and its place
    /// in the tree. It did not: 262 144 rows of about 800 bytes, each
    /// `Job` inside the tree's nodes, 200 MB of the soak's 256 MB.
    #[test]
    fn the_rows_a_checkpoint_waits_for_fit_the_overlay_s_budget() {
        let n = 20_000u64;
        let mut view = crate::table::view::TableView::default();
        let (_, held) = booster_tests::alloc::held_bytes(|| {
            for id in 1..=n {
                let mut job = crate::bench_support::simple_job(id, "noop", 50).job;
                job.state = crate::JobState::Completed;
                job.started_us = Some(1_000);
                job.completed_us = Some(2_000);
                view.insert(job);
            }
        });
        let per_row = held as usize / n as usize;
        println!("{per_row} bytes a finished row in the overlay");
        assert!(
            per_row * CHECKPOINT_CHANGED_ROWS <= OVERLAY_BUDGET_BYTES,
            "{CHECKPOINT_CHANGED_ROWS} rows of {per_row} bytes pass {OVERLAY_BUDGET_BYTES} bytes"
        );
        assert_eq!(view.values().count() as u64, n);
    }

    /// Rows with large arguments make a checkpoint due by their bytes,
    /// long before the changed-rows count: the rows waiting for it hold
    /// their arguments in full, and 65 536 rows of 4 KB would be 270 MB.
    #[test]
    fn rows_with_large_args_make_a_checkpoint_due_by_their_bytes() {
        let mut book = crate::state::Book::new(1, 30_000, 100);
        book.kinds.insert(
            std::sync::Arc::from("k"),
            crate::state::KindConf {
                handler: Some(crate::state::HandlerShape::Simple),
                ..Default::default()
            },
        );
        let mut st = State::new(book);
        st.book.runs_workers = true;
        st.book.auto_checkpoint = true;
        st.book.live = true;
        let mut l = crate::logged_tests::Logged::new(st);
        let args = serde_json::Value::String("x".repeat(4_096));
        let spec = crate::JobSpec::simple("k", args);
        let now_ms = CHECKPOINT_MIN_GAP_MS;
        let mut jobs = 0u64;
        while jobs < 9_000 {
            let m = crate::meta::Meta::Created {
                first_id: jobs + 1,
                at_ms: 0,
                specs: vec![spec.clone(); 100],
            };
            l.apply(&m).unwrap();
            jobs += 100;
            if jobs == 1_000 {
                assert!(!l.st.checkpoint_due(now_ms), "4 MB of rows is not due");
            }
        }
        assert!(l.st.table.changed() < CHECKPOINT_CHANGED_ROWS / 7);
        assert!(
            l.st.checkpoint_due(now_ms),
            "{jobs} rows of 4 KB arguments changed and no checkpoint is due"
        );
    }

    #[test]
    fn a_failing_checkpoint_backs_off_exponentially_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(CheckpointHealth::backoff_ms).collect();
        assert_eq!(
            waits,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
        );
        assert_eq!(CheckpointHealth::backoff_ms(u32::MAX), 60_000);
    }

    /// An open that lost meta records stops checkpoints (and compaction)
    /// for good: the timer says so once, with what to do, and the status
    /// shows it, rather than letting RAM and the log grow silently.
    #[test]
    fn damage_that_lost_meta_records_pauses_checkpoints_and_says_what_to_do() {
        let mut st = State::new(crate::state::Book::new(1, 30_000, 100));
        st.book.runs_workers = true;
        st.book.auto_checkpoint = true;
        st.book.records_since_checkpoint = 1;
        st.book.damage.push(booster_store::Damage {
            segment_id: 3,
            path: "seg-3".into(),
            offset: 128,
            end: 256,
            what: "a bad frame".into(),
            slices: Vec::new(),
            meta_lost: true,
            identified: true,
        });
        assert!(!st.checkpoint_due(10_000));
        st.surface_checkpoint_blocker();
        let why = st.book.checkpoints.paused.clone().unwrap_or_default();
        assert!(
            why.contains("segment 3") && why.contains("restore the segment") && why.contains("RAM"),
            "{why}"
        );
    }

    #[test]
    fn no_checkpoint_is_due_before_the_backoff_of_a_failed_one_ends() {
        let mut st = State::new(crate::state::Book::new(1, 30_000, 100));
        st.book.runs_workers = true;
        st.book.auto_checkpoint = true;
        st.book.records_since_checkpoint = 1;
        assert!(st.checkpoint_due(5_000));
        let e = RuntimeError::Invalid("the disk said no".into());
        st.checkpoint_failed(5_000, &e);
        st.checkpoint_failed(5_000, &e);
        assert!(!st.checkpoint_due(6_999), "two failures: 2 s");
        assert!(st.checkpoint_due(7_000));
        assert_eq!(st.book.metrics.checkpoint_failures, 2);
        let why = st.book.checkpoints.paused.clone().unwrap_or_default();
        assert!(why.contains("the disk said no"), "{why}");
        st.checkpoint_written();
        assert!(st.checkpoint_due(5_000));
        assert_eq!(st.book.checkpoints.paused, None);
    }
}
