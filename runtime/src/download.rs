//! Downloads: one category of a job's records in input order, read slice by
//! slice (never the whole job in memory).

use std::collections::VecDeque;
use std::sync::Arc;

use booster_store::SliceKey;

use crate::shared::Shared;
use crate::slice_store::SliceStore;

use crate::meta::{STREAM_ERRORS, STREAM_INPUT, STREAM_MAIN, STREAM_REJECTS};
use crate::{Category, JobId, RuntimeError};

/// Records of one category in input order, streamed slice by slice.
pub struct Download {
    store: Arc<dyn SliceStore>,
    shared: Arc<Shared>,
    keys: VecDeque<SliceKey>,
    current: std::vec::IntoIter<Vec<u8>>,
}

impl Download {
    pub(crate) fn new(
        store: Arc<dyn SliceStore>,
        shared: Arc<Shared>,
        job: JobId,
        category: Category,
    ) -> Download {
        let list = |stream| store.slices(job, stream).into_iter().map(|i| i.key);
        let mut keys: Vec<SliceKey> = match category {
            Category::Input => list(STREAM_INPUT).collect(),
            Category::Main => list(STREAM_MAIN).collect(),
            // Per input slice: records the uploader rejected, then records
            // the handler failed; both in input order.
            Category::Errors => list(STREAM_REJECTS).chain(list(STREAM_ERRORS)).collect(),
        };
        keys.sort_by_key(|k| (k.seq, if k.stream == STREAM_REJECTS { 0 } else { 1 }));
        Download {
            store,
            shared,
            keys: keys.into(),
            current: Vec::new().into_iter(),
        }
    }

    /// Slices still to read (a progress hint).
    pub fn slices_left(&self) -> usize {
        self.keys.len()
    }
}

impl Iterator for Download {
    type Item = Result<Vec<u8>, RuntimeError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(Ok(r));
            }
            let key = self.keys.pop_front()?;
            match self.store.read_slice(&key) {
                Ok(Some(records)) => self.current = records.into_iter(),
                Ok(None) => continue,
                Err(e) => {
                    self.shared.note_damage(key, &e);
                    self.keys.clear();
                    return Some(Err(RuntimeError::Store(e)));
                }
            }
        }
    }
}
