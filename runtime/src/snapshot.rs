//! Compaction: the runtime's answer to the store's `CompactionPlan`. Slices
//! of jobs still in the table are live; the meta log is replaced by the
//! records of the checkpoint written just before (`Runtime::compact`),
//! whose pages hold the rows.

use std::collections::HashSet;

use booster_store::{CompactionPlan, SliceKey};

use crate::meta::{self, Meta};
use crate::state::State;
use crate::{JobId, RuntimeError};

pub struct Snapshot {
    live_jobs: HashSet<JobId>,
    records: Vec<Vec<u8>>,
}

/// What the log holds besides the rows, as records: the next id, the open
/// generation, incidents, the retention periods, kind settings and ids,
/// cron and dirmon entries.
/// A compaction snapshot and a checkpoint batch (`table/image.rs`) both
/// start with them.
pub fn records_besides_rows(state: &State) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    records.push(meta::encode(&Meta::NextId {
        next: state.book.next_id,
    }));
    if state.book.generation > 0 {
        records.push(meta::encode(&Meta::Opened {
            generation: state.book.generation,
            at_ms: state.book.log_ms,
        }));
    }
    // Incidents are history the table does not hold: each keeps its
    // own time (one record per run of equal times).
    for group in state.book.incidents.chunk_by(|a, b| a.at == b.at) {
        records.push(meta::encode(&Meta::Recovered {
            at_ms: crate::clock::to_ms(group[0].at),
            incidents: group.to_vec(),
        }));
    }
    // Absent means the defaults.
    if state.book.retention != crate::Retention::default() {
        records.push(meta::encode(&Meta::Retention {
            at_ms: state.book.log_ms,
            retention: state.book.retention,
        }));
    }
    for (kind, conf) in &state.book.kinds {
        if let Some(settings) = conf.stored {
            records.push(meta::encode(&Meta::KindSettings {
                kind: kind.to_string(),
                at_ms: state.book.log_ms,
                settings: Some(settings),
            }));
        }
    }
    // Kind ids before the rows, so every kind keeps its id.
    for (id, name) in state.book.kind_ids.iter() {
        records.push(meta::encode(&Meta::KindId {
            id,
            name: name.to_string(),
        }));
    }
    // Entries before the rows, which re-link their unfinished runs.
    for m in crate::cron::snapshot_records(&state.book.crons) {
        records.push(meta::encode(&m));
    }
    for m in state.book.dirmons.snapshot_records() {
        records.push(meta::encode(&m));
    }
    records
}

impl Snapshot {
    /// The compaction snapshot of a checkpoint just made durable; call
    /// with no commit in flight (the append gate held). The compacted log
    /// is that checkpoint's own meta records as written (`log`, from
    /// `checkpoint_batch`), so it says exactly what the checkpoint's pages
    /// hold, even if a lease or the timer moved a job since (they write no
    /// record); the rows stay in the pages (`TABLE_OWNER` keys are live).
    pub fn of_checkpoint(state: &State, log: Vec<Vec<u8>>) -> Result<Snapshot, RuntimeError> {
        Ok(Snapshot {
            live_jobs: live_jobs(state)?,
            records: log,
        })
    }

    /// The snapshot built from live state (the tests compare it with a
    /// replay); compaction takes `of_checkpoint`.
    #[cfg(test)]
    pub fn take(state: &State) -> Result<Snapshot, RuntimeError> {
        let (record, besides) =
            crate::table::image::checkpoint_records(state, state.book.checkpoint_seq);
        let mut records = vec![meta::encode(&record)];
        records.extend(besides);
        Ok(Snapshot {
            live_jobs: live_jobs(state)?,
            records,
        })
    }
}

/// The jobs whose slices are live: every row's job that owns slices
/// (sliced ones, and the lost, whose shape is unknown); every row in RAM
/// but a tombstone (a destroyed job's slices are dead). Reads every page
/// of the table's image, by the rows' heads (`TableView::slice_owners`).
fn live_jobs(state: &State) -> Result<HashSet<JobId>, RuntimeError> {
    let lost = state.book.kind_ids.id(crate::lost::KIND);
    state.table.slice_owners(lost)
}

/// Which slices are live, and nothing else: what `inspect`'s stats need,
/// without encoding a snapshot record per job under the state lock.
pub struct Liveness {
    live_jobs: HashSet<JobId>,
}

impl Liveness {
    pub fn take(state: &State) -> Result<Liveness, RuntimeError> {
        Ok(Liveness {
            live_jobs: live_jobs(state)?,
        })
    }
}

/// A job's slices are live while its row is; the table's own keys
/// (`TABLE_OWNER`: the checkpoint's image) always are.
fn live(live_jobs: &HashSet<JobId>, key: &SliceKey) -> bool {
    key.owner == crate::table::keys::TABLE_OWNER || live_jobs.contains(&key.owner)
}

impl CompactionPlan for Liveness {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        live(&self.live_jobs, key)
    }
    /// Never asked: a `Liveness` only counts live bytes
    /// (`Store::stats_with`); `Runtime::compact` takes a `Snapshot`.
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        unreachable!("Liveness is a stats plan; compaction takes a Snapshot")
    }
}

impl CompactionPlan for Snapshot {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        live(&self.live_jobs, key)
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        self.records.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::live_jobs;
    use crate::meta::{Control, Meta};
    use crate::table::keys;
    use crate::JobSpec;

    fn control(job: u64, action: Control) -> Meta {
        Meta::Control {
            job,
            at_ms: 3,
            action,
        }
    }

    /// Compaction's live set, from a checkpoint's pages read by their
    /// rows' heads: a finished sliced job keeps its slices, a destroyed
    /// one (a tombstone) and a simple job own none; every slot of a page
    /// that cannot be read is live, so no slice goes for a row unseen.
    #[test]
    fn the_live_set_keeps_sliced_rows_and_every_slot_of_a_page_it_cannot_read() {
        let mut logged = crate::logged_tests::Logged::new(crate::state_tests::state());
        logged.simple_jobs_done(70, |_| Some(Ok(None)));
        let sliced = Meta::Created {
            first_id: 71,
            at_ms: 1,
            specs: vec![JobSpec::sliced("copy"), JobSpec::sliced("copy")],
        };
        logged.apply(&sliced).unwrap();
        logged.apply(&control(71, Control::Abort)).unwrap();
        logged.apply(&control(72, Control::Abort)).unwrap();
        logged.apply(&control(72, Control::Destroy)).unwrap();
        logged.checkpoint();
        assert_eq!(logged.st.table.values().count(), 0, "every row left RAM");
        let live = live_jobs(&logged.st).unwrap();
        assert_eq!(live.into_iter().collect::<Vec<_>>(), vec![71]);

        logged.fail_reads_of(keys::row_page(0));
        let mut live: Vec<u64> = live_jobs(&logged.st).unwrap().into_iter().collect();
        live.sort_unstable();
        let mut want: Vec<u64> = (0..64).collect();
        want.push(71);
        assert_eq!(live, want, "page 0 (ids 0 to 63) could not be read");
    }
}
