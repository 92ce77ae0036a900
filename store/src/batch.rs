//! `Batch`: slices and meta records that become durable together.

use crate::codec::{encode_records, prepare, PreparedFrame};
use crate::segment::FrameKind;
use crate::{SliceKey, StoreError};

pub(crate) enum Entry {
    Slice {
        key: SliceKey,
        record_count: u32,
        raw: Vec<u8>,
    },
    Meta {
        raw: Vec<u8>,
    },
}

/// Slices and meta records that become durable together or not at all.
#[derive(Default)]
pub struct Batch {
    pub(crate) entries: Vec<Entry>,
    pub(crate) too_many_records: bool,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a slice of records (each any bytes).
    pub fn slice<R: AsRef<[u8]>>(mut self, key: SliceKey, records: &[R]) -> Batch {
        let record_count = u32::try_from(records.len()).unwrap_or_else(|_| {
            self.too_many_records = true;
            u32::MAX
        });
        self.entries.push(Entry::Slice {
            key,
            record_count,
            raw: encode_records(records),
        });
        self
    }

    /// Adds a meta record: opaque bytes the runtime replays on open.
    pub fn meta(mut self, payload: Vec<u8>) -> Batch {
        self.entries.push(Entry::Meta { raw: payload });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of frames this batch becomes (slices + meta records).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Compresses every entry on the calling thread: one frame per slice,
    /// and one frame for all the batch's meta records (after the slices).
    pub(crate) fn prepare(self, zstd_level: i32) -> Result<Vec<PreparedFrame>, StoreError> {
        if self.too_many_records {
            return Err(StoreError::Invalid(
                "a slice holds more than 2^32-1 records; split it".into(),
            ));
        }
        let mut frames = Vec::with_capacity(self.entries.len());
        let mut metas: Vec<Vec<u8>> = Vec::new();
        for e in self.entries {
            match e {
                Entry::Slice {
                    key,
                    record_count,
                    raw,
                } => frames.push(
                    prepare(FrameKind::Slice, key, record_count, raw, zstd_level)
                        .map_err(|e| StoreError::Invalid(e.0))?,
                ),
                Entry::Meta { raw } => metas.push(raw),
            }
        }
        if !metas.is_empty() {
            let none = SliceKey {
                owner: 0,
                stream: 0,
                seq: 0,
            };
            let count = u32::try_from(metas.len())
                .map_err(|_| StoreError::Invalid("too many meta records in one batch".into()))?;
            frames.push(
                prepare(
                    FrameKind::Meta,
                    none,
                    count,
                    encode_records(&metas),
                    zstd_level,
                )
                .map_err(|e| StoreError::Invalid(e.0))?,
            );
        }
        Ok(frames)
    }
}
