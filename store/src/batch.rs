//! `Batch`: slices, deletions and meta records that become durable together.

use crate::codec::{encode_records, prepare, PreparedFrame, MAX_BODY_BYTES};
use crate::packed::PackedSlice;
use crate::records::RecordsBuf;
use crate::segment::frame::{FLAG_CHECKPOINT, FLAG_TOMBSTONE};
use crate::segment::FrameKind;
use crate::{SliceKey, StoreError};

pub(crate) enum Entry {
    Slice {
        key: SliceKey,
        record_count: u32,
        raw: Vec<u8>,
    },
    /// A slice already encoded (and compressed), checked by its maker.
    Packed {
        key: SliceKey,
        packed: PackedSlice,
    },
    Delete {
        key: SliceKey,
    },
    Meta {
        raw: Vec<u8>,
    },
}

/// Slices, deletions and meta records that become durable together or not
/// at all.
#[derive(Default)]
pub struct Batch {
    pub(crate) entries: Vec<Entry>,
    pub(crate) too_many_records: bool,
    checkpoint: Option<Vec<u8>>,
    checkpoints: usize,
    pub(crate) urgent: bool,
    /// What the batch is, and the room it asks for, when it waits for
    /// room (`needs_room`, `needs_room_before_compaction`).
    pub(crate) needs_room: Option<(String, Room)>,
}

/// The free space a batch that waits for room must find
/// (`reserve::room_needed`; ARCHITECTURE.md, "Full disks").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Room {
    /// Room for itself and as much again: commits go on beside it and
    /// after it, and must not meet the disk it filled.
    BesideCommits,
    /// Room for itself with headroom, the disk reserve counted as free
    /// (given back when short): the write a compaction starts with, while
    /// appends wait, so that a full disk can be compacted.
    BeforeCompaction,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a slice of records (each any bytes).
    pub fn slice<R: AsRef<[u8]>>(self, key: SliceKey, records: &[R]) -> Batch {
        self.slice_encoded(key, records.len(), encode_records(records))
    }

    /// Adds a slice of records already encoded (`RecordsBuf`): the same
    /// frame as `slice` with those records, without encoding them again.
    pub fn slice_records(self, key: SliceKey, records: RecordsBuf) -> Batch {
        let (raw, count) = records.into_parts();
        self.slice_encoded(key, count, raw)
    }

    fn slice_encoded(mut self, key: SliceKey, count: usize, raw: Vec<u8>) -> Batch {
        let record_count = u32::try_from(count).unwrap_or_else(|_| {
            self.too_many_records = true;
            u32::MAX
        });
        self.entries.push(Entry::Slice {
            key,
            record_count,
            raw,
        });
        self
    }

    /// Adds a slice already packed (a remote worker's output, checked by
    /// `PackedSlice::checked`): stored as its frame body as it is, so the
    /// store compresses nothing for it. Reads give the same records as
    /// `slice` of them would.
    pub fn slice_packed(mut self, key: SliceKey, packed: PackedSlice) -> Batch {
        self.entries.push(Entry::Packed { key, packed });
        self
    }

    /// Deletes the slice under `key` (a tombstone): once the batch is
    /// durable, reads return None, `slices` and `scan` skip the key, and
    /// its older frame is dead bytes. A later slice of the key revives it.
    /// Deleting a key that holds nothing is allowed and changes nothing
    /// a reader can see. Entries apply in the order they were added.
    pub fn delete(mut self, key: SliceKey) -> Batch {
        self.entries.push(Entry::Delete { key });
        self
    }

    /// Adds a meta record: opaque bytes the runtime replays on open.
    pub fn meta(mut self, payload: Vec<u8>) -> Batch {
        self.entries.push(Entry::Meta { raw: payload });
        self
    }

    /// Adds a checkpoint: a meta record that starts the meta log. Once it
    /// is durable, `Store::meta_records` returns it first, then every later
    /// meta record; the meta records before it are dead. It orders before
    /// the batch's other meta records. A batch holds at most one.
    pub fn checkpoint(mut self, payload: Vec<u8>) -> Batch {
        self.checkpoints += 1;
        self.checkpoint = Some(payload);
        self
    }

    /// Commits the batch in the writer's next group, ahead of batches
    /// already queued (which may be many groups' worth under load), and
    /// without waiting for queue space. For small batches whose latency
    /// matters more than their order: a priority-1 job's `Created` record.
    /// A batch's durability and atomicity are the same either way; only its
    /// place in the commit order moves, so a producer must not rely on it
    /// following its own earlier, unacknowledged batches.
    pub fn urgent(mut self) -> Batch {
        self.urgent = true;
        self
    }

    /// Refuses the batch, writing nothing and poisoning nothing, when the
    /// disk lacks room for it with headroom (`StoreError::NoSpace`, naming
    /// it as `what`), instead of letting its write meet a full disk, which
    /// poisons the store (G9). For a large batch that can wait while small
    /// ones go on (a checkpoint: the log it would summarise holds every
    /// record). The check is made when the batch is appended, against the
    /// file system's free space (`FileLayer::free_bytes`) less the bytes
    /// queued ahead of it; ARCHITECTURE.md, "Full disks".
    pub fn needs_room(mut self, what: impl Into<String>) -> Batch {
        self.needs_room = Some((what.into(), Room::BesideCommits));
        self
    }

    /// Like `needs_room`, for the batch a compaction writes first while
    /// appends wait (the runtime's checkpoint that the compacted log
    /// starts at): it asks room for itself with headroom only, and the
    /// disk reserve counts as free, given back when short (as compaction
    /// gives it back), so that a disk too full for a checkpoint beside
    /// commits can still be compacted. Replaces an earlier mark.
    pub fn needs_room_before_compaction(mut self, what: impl Into<String>) -> Batch {
        self.needs_room = Some((what.into(), Room::BeforeCompaction));
        self
    }

    /// Bytes of the batch's meta records as given (before compression),
    /// its checkpoint aside: what the runtime weighs its checkpoint
    /// trigger by.
    pub fn meta_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Meta { raw } => raw.len() as u64,
                _ => 0,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.checkpoint.is_none()
    }

    /// Number of entries (slices, deletions, meta records, checkpoint).
    pub fn len(&self) -> usize {
        self.entries.len() + usize::from(self.checkpoint.is_some())
    }

    /// Compresses every entry on the calling thread: one frame per slice or
    /// deletion, and one frame for all the batch's meta records (after the
    /// slices; flagged as a checkpoint, with it first, when there is one).
    pub(crate) fn prepare(self, zstd_level: i32) -> Result<Vec<PreparedFrame>, StoreError> {
        if self.too_many_records {
            return Err(StoreError::Invalid(
                "a slice holds more than 2^32-1 records; split it".into(),
            ));
        }
        if self.checkpoints > 1 {
            return Err(StoreError::Invalid(format!(
                "a batch holds at most one checkpoint, this one has {}; append them in separate batches",
                self.checkpoints
            )));
        }
        let invalid = |e: crate::FormatError| StoreError::Invalid(e.0);
        let mut frames = Vec::with_capacity(self.entries.len());
        let mut metas: Vec<Vec<u8>> = Vec::new();
        let marks = if let Some(checkpoint) = self.checkpoint {
            metas.push(checkpoint);
            FLAG_CHECKPOINT
        } else {
            0
        };
        for e in self.entries {
            match e {
                Entry::Slice {
                    key,
                    record_count,
                    raw,
                } => frames.push(
                    prepare(FrameKind::Slice, key, record_count, raw, zstd_level)
                        .map_err(invalid)?,
                ),
                Entry::Packed { packed, .. } if packed.body().len() > MAX_BODY_BYTES => {
                    return Err(StoreError::Invalid(format!(
                        "a packed slice of {} bytes exceeds the 256 MiB cap on a frame; split the slice",
                        packed.body().len()
                    )))
                }
                Entry::Packed { key, packed } => frames.push(PreparedFrame {
                    kind: FrameKind::Slice,
                    key,
                    record_count: packed.record_count(),
                    raw_len: packed.raw_len(),
                    zstd: packed.is_zstd(),
                    marks: 0,
                    body: packed.into_body(),
                }),
                Entry::Delete { key } => {
                    let mut frame = prepare(FrameKind::Slice, key, 0, Vec::new(), zstd_level)
                        .map_err(invalid)?;
                    frame.marks = FLAG_TOMBSTONE;
                    frames.push(frame);
                }
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
            let mut frame = prepare(
                FrameKind::Meta,
                none,
                count,
                encode_records(&metas),
                zstd_level,
            )
            .map_err(invalid)?;
            frame.marks = marks;
            frames.push(frame);
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_body_over_a_frames_cap_is_refused() {
        let key = SliceKey {
            owner: 1,
            stream: 0,
            seq: 0,
        };
        // calloc'd: the pages are never touched.
        let body = vec![0u8; MAX_BODY_BYTES + 1];
        let packed = PackedSlice::of_frame(body, 8, 1, true);
        let Err(err) = Batch::new().slice_packed(key, packed).prepare(1) else {
            panic!("a body over the cap was prepared");
        };
        assert!(
            matches!(&err, StoreError::Invalid(why) if why.contains("exceeds the 256 MiB cap")),
            "{err:?}"
        );
    }
}
