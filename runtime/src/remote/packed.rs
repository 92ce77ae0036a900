//! A slice's output as a commit writes it: records a local handler made,
//! or a remote worker's packed (zstd-compressed) bodies, which the node
//! checked and stores as they came (ARCHITECTURE.md, "Wire protocol 3").

use booster_store::{Batch, FormatError, PackedSlice, SliceKey};

use super::SliceResult;

/// A remote worker's slice output as it came over the wire: each
/// category's records packed as a frame body, checked by the node
/// (`PackedSlice::checked`) before it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedResult {
    pub main: PackedSlice,
    /// Category n of the job's list at index n (may be shorter).
    pub by_category: Vec<PackedSlice>,
    /// (index in the slice, message) per failed record.
    pub record_errors: Vec<(usize, String)>,
}

impl PackedResult {
    /// `result` packed at zstd `level`: what a remote worker sends.
    pub fn pack(result: &SliceResult, level: i32) -> Result<PackedResult, FormatError> {
        Ok(PackedResult {
            main: PackedSlice::pack(&result.main, level)?,
            by_category: (result.by_category.iter())
                .map(|records| PackedSlice::pack(records, level))
                .collect::<Result<_, _>>()?,
            record_errors: result.record_errors.clone(),
        })
    }

    /// Records written, all categories together.
    pub fn records_written(&self) -> usize {
        let count = |p: &PackedSlice| p.record_count() as usize;
        count(&self.main) + self.by_category.iter().map(count).sum::<usize>()
    }
}

/// One category's output for `worker::commit_result`.
pub(crate) enum Written {
    Records(Vec<Vec<u8>>),
    Packed(PackedSlice),
}

impl Written {
    pub(crate) fn len(&self) -> usize {
        match self {
            Written::Records(r) => r.len(),
            Written::Packed(p) => p.record_count() as usize,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the records take in a frame before compression; for a
    /// packed body, the larger of that and the body as stored (a checked
    /// body is never larger, this keeps the cap true if one were).
    pub(crate) fn stored_bytes(&self) -> usize {
        match self {
            Written::Records(r) => crate::worker::stored_bytes(r),
            Written::Packed(p) => (p.raw_len() as usize).max(p.body().len()),
        }
    }

    /// `batch` with these records as the slice under `key`.
    pub(crate) fn add_to(self, batch: Batch, key: SliceKey) -> Batch {
        match self {
            Written::Records(r) => batch.slice(key, &r),
            Written::Packed(p) => batch.slice_packed(key, p),
        }
    }
}

/// A slice's output, from a local handler or a remote worker.
pub(crate) struct Outcome {
    pub main: Written,
    pub by_category: Vec<Written>,
    pub record_errors: Vec<(usize, String)>,
}

impl From<SliceResult> for Outcome {
    fn from(r: SliceResult) -> Outcome {
        Outcome {
            main: Written::Records(r.main),
            by_category: r.by_category.into_iter().map(Written::Records).collect(),
            record_errors: r.record_errors,
        }
    }
}

impl From<PackedResult> for Outcome {
    fn from(r: PackedResult) -> Outcome {
        Outcome {
            main: Written::Packed(r.main),
            by_category: r.by_category.into_iter().map(Written::Packed).collect(),
            record_errors: r.record_errors,
        }
    }
}
