//! `TableView`: the job table's durable rows as `apply` and the readers
//! (status, listing, download, snapshots) see them. Until checkpoints
//! write rows into the store (issue 12, step 3) it is the overlay alone,
//! and every row in it is new since the (absent) checkpoint: the whole
//! table in RAM, as before the split. From step 3 on a lookup that misses
//! the overlay reads the row page as of the newest checkpoint.
//!
//! **Architecture invariant:** the table holds only durable facts: a
//! restart rebuilds it exactly by replay. Scheduling marks live in the
//! scheduler (`scheduler.rs`), keyed by the same job ids.

use std::collections::BTreeMap;

use crate::table::Job;
use crate::JobId;

#[derive(Default)]
pub struct TableView {
    /// Rows changed since the newest checkpoint; today every row
    /// (`Dirty::New` in ARCHITECTURE.md's plan).
    overlay: BTreeMap<JobId, Job>,
}

impl TableView {
    pub fn get(&self, id: &JobId) -> Option<&Job> {
        self.overlay.get(id)
    }

    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut Job> {
        self.overlay.get_mut(id)
    }

    pub fn contains_key(&self, id: &JobId) -> bool {
        self.overlay.contains_key(id)
    }

    /// Puts `job`'s row, returning the row it replaces.
    pub fn insert(&mut self, job: Job) -> Option<Job> {
        self.overlay.insert(job.id, job)
    }

    pub fn remove(&mut self, id: &JobId) -> Option<Job> {
        self.overlay.remove(id)
    }

    pub fn len(&self) -> usize {
        self.overlay.len()
    }

    /// Every row, ascending id.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Job> {
        self.overlay.values()
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &JobId> + '_ {
        self.overlay.keys()
    }
}

impl std::ops::Index<&JobId> for TableView {
    type Output = Job;

    fn index(&self, id: &JobId) -> &Job {
        self.get(id).expect("no row for this job id")
    }
}
