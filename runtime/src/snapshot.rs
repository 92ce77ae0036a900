//! Compaction: the runtime's answer to the store's `CompactionPlan`. Slices
//! of jobs still in the table are live; the meta log is replaced by one
//! `Restore` record per job (plus the next job id), which replays to the
//! same table.

use std::collections::HashSet;

use booster_store::{CompactionPlan, SliceKey};

use crate::meta::{self, Meta};
use crate::state::State;
use crate::JobId;

pub struct Snapshot {
    live_jobs: HashSet<JobId>,
    records: Vec<Vec<u8>>,
}

impl Snapshot {
    /// Call with no commit in flight (the append gate held), so the
    /// snapshot covers every durable record.
    pub fn take(state: &State) -> Snapshot {
        let mut records = Vec::with_capacity(state.table.len() + 1);
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
        for job in state.table.values() {
            records.push(meta::encode(&Meta::Restore {
                job: Box::new(job.clone()),
            }));
        }
        Snapshot {
            live_jobs: state.table.keys().copied().collect(),
            records,
        }
    }
}

/// Which slices are live, and nothing else: what `inspect`'s stats need,
/// without encoding a snapshot record per job under the state lock.
pub struct Liveness {
    live_jobs: HashSet<JobId>,
}

impl Liveness {
    pub fn take(state: &State) -> Liveness {
        Liveness {
            live_jobs: state.table.keys().copied().collect(),
        }
    }
}

impl CompactionPlan for Liveness {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        self.live_jobs.contains(&key.owner)
    }
    /// Never asked: a `Liveness` only counts live bytes
    /// (`Store::stats_with`); `Runtime::compact` takes a `Snapshot`.
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        unreachable!("Liveness is a stats plan; compaction takes a Snapshot")
    }
}

impl CompactionPlan for Snapshot {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        self.live_jobs.contains(&key.owner)
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        self.records.clone()
    }
}
