//! Jobs whose `Created` record was in a meta frame the store opened without
//! (degraded open, issue 10). Their spec is gone, but their id is not: it
//! shows as a gap in the ids that `Created` records hand out after the
//! newest compaction snapshot, or as the job a later record names (a slice
//! commit, a simple job's outcome, a control). Each such id becomes a
//! failed row that names the damage, so `jobs`, `job show` and `download`
//! say "lost with segment S" instead of "not found", and its id is never
//! handed out again.
//!
//! Only open runs this, and only when a damaged range lost meta records:
//! a log without damage has no gaps that mean anything (a submit whose
//! write was refused consumes its ids without a record).

use std::collections::BTreeSet;

use booster_store::Damage;

use crate::meta::{Expired, Meta};
use crate::state::State;
use crate::JobId;

/// The kind a lost job is listed under (no handler can take it).
pub const KIND: &str = "(lost)";

#[derive(Default)]
pub struct LostCreated {
    /// `(first id, count)` of every `Created` (and restored) job seen.
    created: Vec<(JobId, u64)>,
    /// Ids below it were settled by a compaction snapshot (`NextId`).
    floor: JobId,
    /// Ids named by a record before any row of theirs existed.
    named: BTreeSet<JobId>,
}

impl LostCreated {
    /// Notes what `m` tells about job ids; call before applying it.
    pub fn note(&mut self, m: &Meta, state: &State) {
        let mut name = |id: JobId| {
            if !state.table.contains_key(&id) {
                self.named.insert(id);
            }
        };
        match m {
            Meta::Created {
                first_id, specs, ..
            } => self.cover(*first_id, specs.len() as u64),
            Meta::Restore { job } => self.cover(job.id, 1),
            Meta::NextId { next } => self.floor = self.floor.max(*next),
            Meta::SimpleDone { outcomes, .. } => outcomes.iter().for_each(|o| name(o.job)),
            Meta::LeaseExpired { work, .. } => match work {
                Expired::Slice { job, .. } | Expired::Hook { job } => name(*job),
                Expired::Simple { jobs } => jobs.iter().for_each(|&j| name(j)),
            },
            other => {
                if let Some(job) = other.single_job() {
                    name(job);
                }
            }
        }
    }

    /// Job `id` was restored from a checkpoint's image (as a `restore`
    /// record notes it, without the record made).
    pub fn note_restored(&mut self, id: JobId) {
        self.cover(id, 1);
    }

    /// Ids `first..first + n` were created (or restored). A run that
    /// goes on from the last one grows it: an open with lost meta that
    /// restores 10M queued rows in id order keeps one entry, not 10M
    /// (160 MB).
    fn cover(&mut self, first: JobId, n: u64) {
        if let Some((f, c)) = self.created.last_mut() {
            if f.checked_add(*c) == Some(first) {
                *c += n;
                return;
            }
        }
        self.created.push((first, n));
    }

    /// The ids that had a `Created` record nobody can read any more:
    /// those at or above the snapshot's floor, up to the highest id any
    /// record knows, that no `Created` record covers.
    pub fn lost(mut self, next_id: JobId) -> Vec<JobId> {
        let hi = self
            .named
            .last()
            .map_or(next_id, |&n| next_id.max(n.saturating_add(1)));
        self.created.sort_unstable();
        let mut lost = Vec::new();
        let mut at = self.floor.max(1);
        for &(first, n) in &self.created {
            if first > at {
                lost.extend(at..first.min(hi));
            }
            at = at.max(first.saturating_add(n));
        }
        if at < hi {
            lost.extend(at..hi);
        }
        lost
    }
}

/// A failed row for job `id`, whose spec is gone (its `Created` record or
/// its row was lost with damaged frames): kind `KIND`, finished at
/// `at_ms`, `reason` saying where it went.
pub fn lost_job(id: JobId, at_ms: u64, reason: String) -> crate::table::Job {
    use crate::table::{Body, SimpleBody};
    let null = std::sync::Arc::new(serde_json::Value::Null);
    crate::table::Job {
        id,
        kind: std::sync::Arc::from(KIND),
        kind_id: 0,
        description: String::new(),
        priority: 50,
        max_workers: None,
        run_at_ms: None,
        expires_at_ms: None,
        created_ms: at_ms,
        started_us: None,
        completed_us: Some(crate::clock::ms_to_us(at_ms)),
        state: crate::JobState::Failed,
        properties: null.clone(),
        failure_reason: Some(reason),
        attempts: 0,
        body: Body::Simple(SimpleBody {
            args: null,
            result: None,
            expiries: 0,
        }),
        singleton: None,
        cron: None,
        after: Vec::new(),
        on_dependency_failure: Default::default(),
        window: None,
        destroy_on_complete: None,
        destroyed_ms: None,
    }
}

/// Why the rows of page `page` of the checkpoint's table are lost.
pub fn page_reason(page: u64, e: &crate::RuntimeError) -> String {
    let (first, last) = page_ids(page);
    format!(
        "row lost: page {page} (job ids {first} to {last}) of the checkpoint's table is \
         damaged ({e}); restore the segment from a backup, or salvage what survived into a \
         new data directory"
    )
}

/// Whether `e`, an error reading a row back, says its bytes are damaged
/// (a checksum, tag or decode error, a row missing from its page): the
/// job is then a lost row. Any other error (EIO, EMFILE, a failed map)
/// may pass, and loses nothing.
pub fn is_damage(e: &crate::RuntimeError) -> bool {
    matches!(
        e,
        crate::RuntimeError::Corrupt(_)
            | crate::RuntimeError::Store(booster_store::StoreError::Corrupt { .. })
    )
}

/// The ids page `page` holds.
pub fn page_ids(page: u64) -> (JobId, JobId) {
    let first = page.saturating_mul(crate::table::keys::ROWS_PER_PAGE);
    (first, first + crate::table::keys::ROWS_PER_PAGE - 1)
}

/// Where damaged range `d` is and what was wrong, as a job names it.
pub fn describe_range(d: &Damage) -> String {
    format!(
        "segment {} ({}) offsets {}..{}: {}",
        d.segment_id,
        d.path.display(),
        d.offset,
        d.end,
        d.what
    )
}

/// Whether damaged range `d` is a row page of the checkpoint's table that
/// could not be read (`table::image::page_damage`): it lost that page's
/// rows, shown as lost, and no other record.
pub fn is_row_page(d: &Damage) -> bool {
    use crate::table::keys;
    !d.slices.is_empty()
        && d.slices
            .iter()
            .all(|k| k.owner == keys::TABLE_OWNER && k.stream == keys::ROW_PAGE)
}

/// The damaged ranges that lost (or may have lost) meta records.
fn meta_ranges(damage: &[Damage]) -> String {
    let ranges: Vec<String> = damage
        .iter()
        .filter(|d| d.meta_lost)
        .map(describe_range)
        .collect();
    ranges.join("; ")
}

/// Why a lost job is failed: every damaged range that lost meta records
/// (which one held its `Created` record cannot be told), and what to do.
pub fn reason(damage: &[Damage]) -> String {
    format!(
        "lost: its created record was lost with a damaged meta frame ({}); what the job was \
         cannot be told. Restore the segment from a backup, or salvage what survived into a \
         new data directory",
        meta_ranges(damage)
    )
}

/// Why an upload found open at open is failed. Without damage the process
/// that ran it stopped; with meta records lost, its `UploadComplete` may
/// be among them: an acknowledged upload is never called interrupted.
pub fn upload_reason(damage: &[Damage]) -> String {
    if damage.iter().any(|d| d.meta_lost) {
        return format!(
            "upload records lost: the store lost meta records ({}), so whether the upload \
             finished cannot be told. Restore the segment from a backup, or submit the job again",
            meta_ranges(damage)
        );
    }
    UPLOAD_CUT.to_string()
}

/// The reason of an upload a stopped process left open.
pub(crate) const UPLOAD_CUT: &str =
    "upload interrupted: the process stopped before the upload finished; submit the job again";

/// The slices the table says the store holds but it does not. Always: a
/// slice missing between a job's first and last ones (its `Uploaded`
/// record was lost; one check per job unless there is a hole). After an
/// unknown loss (a damaged range no frame header names: a missing segment
/// file, say) also the input of every slice still to run or failed (its
/// records go to the errors file), and the `main` output of every slice
/// done (a commit always writes it). Open names them on their jobs, which
/// then show as damaged. Index lookups only: nothing is read. A table
/// whose rows cannot all be read (its index of row pages and a page both
/// unreadable) is an error, as it is to the replay: the slices of the rows
/// not read would go unnamed.
pub fn missing_frames(
    store: &dyn crate::slice_store::SliceStore,
    state: &State,
    damage: &[Damage],
) -> Result<Vec<booster_store::SliceKey>, crate::RuntimeError> {
    use crate::meta::{STREAM_INPUT, STREAM_MAIN};
    use crate::table::SliceState;
    let unknown = damage.iter().any(|d| !d.identified);
    let held = |job: JobId, stream: u32| -> BTreeSet<u64> {
        store
            .slices(job, stream)
            .into_iter()
            .map(|i| i.key.seq)
            .collect()
    };
    let mut missing = Vec::new();
    let mut check = |job: &crate::table::Job| {
        let Some(sliced) = job.sliced() else { return };
        // A slice whose `Uploaded` record was lost, while later ones were
        // not: the table has a hole there.
        for seq in sliced.slices.gaps() {
            missing.push(booster_store::SliceKey {
                owner: job.id,
                stream: STREAM_INPUT,
                seq,
            });
        }
        if sliced.slices.count() == 0 || !unknown {
            return;
        }
        let (input, main) = (held(job.id, STREAM_INPUT), held(job.id, STREAM_MAIN));
        for seq in sliced.slices.uploaded.iter() {
            let (stream, present) = match sliced.slices.state(seq) {
                Some(SliceState::Done) => (STREAM_MAIN, main.contains(&seq)),
                _ => (STREAM_INPUT, input.contains(&seq)),
            };
            if !present {
                missing.push(booster_store::SliceKey {
                    owner: job.id,
                    stream,
                    seq,
                });
            }
        }
    };
    // Without damage, the rows in RAM (holes are found while a job runs);
    // with it, every row of the table, read from its pages.
    if damage.is_empty() {
        state.table.values().for_each(&mut check);
    } else {
        state.table.scan(false, state.book.next_id, |job| {
            check(&job);
            std::ops::ControlFlow::Continue(())
        })?;
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(first_id: JobId, n: usize) -> Meta {
        Meta::Created {
            first_id,
            at_ms: 1,
            specs: vec![crate::JobSpec::simple("k", serde_json::Value::Null); n],
        }
    }

    fn lost_of(records: &[Meta], next_id: JobId) -> Vec<JobId> {
        let state = State::new(crate::state::Book::new(1, 1000, 10));
        let mut l = LostCreated::default();
        for m in records {
            l.note(m, &state);
        }
        l.lost(next_id)
    }

    #[test]
    fn a_gap_between_created_records_is_lost_whatever_their_order() {
        // Concurrent submits can log their Created records out of id order.
        let records = [created(6, 2), created(1, 2)];
        assert_eq!(lost_of(&records, 8), vec![3, 4, 5]);
    }

    /// Rows restored in id order keep one run, not an entry each (an
    /// open with lost meta over 10M queued rows held 160 MB of them), and
    /// the gaps between runs are still lost.
    #[test]
    fn restored_rows_in_id_order_are_noted_as_one_run() {
        let mut l = LostCreated::default();
        for id in (1..=1000).chain(1003..=1004) {
            l.note_restored(id);
        }
        assert_eq!(l.created, vec![(1, 1000), (1003, 2)]);
        assert_eq!(l.lost(1006), vec![1001, 1002, 1005]);
    }

    #[test]
    fn ids_below_the_snapshot_floor_are_settled() {
        let records = [Meta::NextId { next: 10 }, created(12, 1)];
        assert_eq!(lost_of(&records, 13), vec![10, 11]);
    }

    #[test]
    fn a_job_named_past_the_last_created_record_is_lost() {
        let records = [created(1, 1), Meta::AfterDone { job: 3, at_ms: 5 }];
        assert_eq!(lost_of(&records, 2), vec![2, 3]);
    }

    #[test]
    fn an_unbroken_log_loses_nothing() {
        let records = [
            created(1, 3),
            created(4, 1),
            Meta::Priority {
                job: 2,
                priority: 1,
            },
        ];
        assert!(lost_of(&records, 5).is_empty());
    }
}
