//! Where the job table lives in the store (ARCHITECTURE.md, "Planned: the
//! job table on disk", section 1): owners from `RESERVED_OWNER_BASE` up are
//! the runtime's own, and the table is owner `TABLE_OWNER`. Job ids stay
//! below the base: `submit` refuses past it and replay calls a record that
//! reaches it corrupt.

use booster_store::SliceKey;

use crate::JobId;

/// The first owner the runtime reserves; no job id reaches it.
pub const RESERVED_OWNER_BASE: u64 = 0xFFFF_FFFF_0000_0000;
/// The job table's owner.
pub const TABLE_OWNER: u64 = u64::MAX;

/// Rows per page: a page is one slice, one record per row present.
pub const ROWS_PER_PAGE: u64 = 64;

/// Stream 0: one slice per page of 64 rows (`row.rs`, `page.rs`).
pub const ROW_PAGE: u32 = 0;
/// Stream 1: a whole row whose encoding passes `row::MAX_INLINE_ROW`.
pub const ROW_LARGE: u32 = 1;
/// Stream 2: the slice map of an unfinished sliced job (`slice_map.rs`).
pub const SLICE_MAP: u32 = 2;
/// Stream 3: the ids of sliced jobs whose slices are dead.
pub const DEAD_SLICED: u32 = 3;
/// Stream 4, seq 0: the first row page not yet filed for the sweep while
/// an image from before step 6 is refiled (`expiry::refile`).
pub const REFILE: u32 = 4;
/// Stream 5, seq 0: the row pages whose `KIND_INDEX` masks may not be
/// written yet and the checkpoint that wrote it (`kind_index::cursor_record`;
/// `KIND_INDEX_COMPLETE` once every page has them); absent in an image
/// written before the kind index (`kind_index.rs`).
pub const KIND_REFILE: u32 = 5;
/// The `KIND_REFILE` cursor of an image whose kind index is complete.
pub const KIND_INDEX_COMPLETE: u64 = u64::MAX;
/// Streams 16 + s: the mask of a page's slots in state s (8: destroyed).
pub const STATE_INDEX_BASE: u32 = 16;
/// Streams 32 + f: ids of jobs that finished (f: 0 completed, 1 failed,
/// 2 aborted, 3 destroyed) in one minute, for the retention sweep.
pub const EXPIRY_BASE: u32 = 32;
/// Streams 65 536 + k: the mask of a page's slots whose job has kind id k.
pub const KIND_INDEX_BASE: u32 = 65_536;
/// The largest kind id a `KIND_INDEX` stream can name.
pub const MAX_KIND_ID: u32 = u32::MAX - KIND_INDEX_BASE;

/// A job's own stream of per-slice detail (irregular lines or numbers),
/// beside its input (0), outputs (1, 2) and rejects (3).
pub const STREAM_SLICE_INFO: u32 = 4;

/// The page that holds job `id`'s row, and its slot there.
pub fn page_of(id: JobId) -> (u64, u8) {
    (id / ROWS_PER_PAGE, (id % ROWS_PER_PAGE) as u8)
}

pub fn row_page(page: u64) -> SliceKey {
    table_key(ROW_PAGE, page)
}

/// The refile cursor's key (`REFILE`).
pub fn refile() -> SliceKey {
    table_key(REFILE, 0)
}

/// The kind index's refile cursor's key (`KIND_REFILE`).
pub fn kind_refile() -> SliceKey {
    table_key(KIND_REFILE, 0)
}

pub fn row_large(id: JobId) -> SliceKey {
    table_key(ROW_LARGE, id)
}

pub fn slice_map(id: JobId) -> SliceKey {
    table_key(SLICE_MAP, id)
}

pub fn dead_sliced() -> SliceKey {
    table_key(DEAD_SLICED, 0)
}

/// The mask key of `page` for a row's state byte `state` (0..=7 the
/// `JobState` index, 8 destroyed: `row::STATE_DESTROYED`).
pub fn state_index(state: u8, page: u64) -> Option<SliceKey> {
    (state <= super::row::STATE_DESTROYED)
        .then(|| table_key(STATE_INDEX_BASE + u32::from(state), page))
}

/// The `n`th expiry frame of `minute` for final state `f` (0..=3).
pub fn expiry(f: u8, minute: u64, n: u32) -> Option<SliceKey> {
    (f <= 3 && n < 1 << 24 && minute < 1 << 40)
        .then(|| table_key(EXPIRY_BASE + u32::from(f), (minute << 24) | u64::from(n)))
}

pub fn kind_index(kind: u32, page: u64) -> Option<SliceKey> {
    (kind <= MAX_KIND_ID).then(|| table_key(KIND_INDEX_BASE + kind, page))
}

pub fn slice_info(job: JobId, seq: u64) -> SliceKey {
    SliceKey {
        owner: job,
        stream: STREAM_SLICE_INFO,
        seq,
    }
}

fn table_key(stream: u32, seq: u64) -> SliceKey {
    SliceKey {
        owner: TABLE_OWNER,
        stream,
        seq,
    }
}

/// A mask record (`STATE_INDEX`, `KIND_INDEX`): the page's slots, bit n
/// for slot n.
pub fn encode_mask(mask: u64) -> Vec<u8> {
    mask.to_le_bytes().to_vec()
}

pub fn decode_mask(bytes: &[u8]) -> Result<u64, String> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| format!("a page mask is 8 bytes, not {}", bytes.len()))?;
    Ok(u64::from_le_bytes(b))
}

/// Job ids `first..first + n` are all below `RESERVED_OWNER_BASE`.
pub fn ids_fit(first: JobId, n: u64) -> bool {
    first
        .checked_add(n)
        .is_some_and(|end| end <= RESERVED_OWNER_BASE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_id_maps_to_its_page_and_slot() {
        assert_eq!(page_of(0), (0, 0));
        assert_eq!(page_of(63), (0, 63));
        assert_eq!(page_of(64), (1, 0));
        assert_eq!(page_of(RESERVED_OWNER_BASE - 1).1, 63);
    }

    #[test]
    fn index_streams_never_collide() {
        let last_state = state_index(super::super::row::STATE_DESTROYED, 0)
            .unwrap()
            .stream;
        let first_expiry = expiry(0, 0, 0).unwrap().stream;
        let last_expiry = expiry(3, 0, 0).unwrap().stream;
        assert!(last_state < first_expiry && last_expiry < KIND_INDEX_BASE);
        assert!(state_index(9, 0).is_none() && expiry(4, 0, 0).is_none());
        assert_eq!(kind_index(MAX_KIND_ID, 0).unwrap().stream, u32::MAX);
        assert!(kind_index(MAX_KIND_ID + 1, 0).is_none());
    }

    #[test]
    fn ids_fit_only_below_the_reserved_base() {
        assert!(ids_fit(1, 10));
        assert!(ids_fit(RESERVED_OWNER_BASE - 1, 1));
        assert!(!ids_fit(RESERVED_OWNER_BASE - 1, 2));
        assert!(!ids_fit(u64::MAX, 1));
    }

    #[test]
    fn masks_round_trip_and_refuse_other_lengths() {
        assert_eq!(
            decode_mask(&encode_mask(0x8000_0000_0000_0001)),
            Ok(0x8000_0000_0000_0001)
        );
        assert!(decode_mask(&[1, 2, 3]).is_err());
    }
}
