//! A page of the job table: one slice under (`TABLE_OWNER`, `ROW_PAGE`,
//! page = id / 64), one record per row present, ascending by slot. A page
//! is rewritten whole at each checkpoint that changes any of its rows.

use super::keys::ROWS_PER_PAGE;
use super::row::{self, Row};

/// A page as written: its records (each row as the page holds it, a stub
/// for a long one, ascending by slot), and `(job id, whole row)` for each
/// long row, for `ROW_LARGE`.
pub struct EncodedPage {
    pub records: Vec<Vec<u8>>,
    pub large: Vec<(u64, Vec<u8>)>,
}

/// Encodes `rows`, which must all belong to one page.
pub fn encode(rows: &[Row]) -> Result<EncodedPage, String> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| r.id);
    if let (Some(first), Some(last)) = (sorted.first(), sorted.last()) {
        if first.id / ROWS_PER_PAGE != last.id / ROWS_PER_PAGE {
            return Err(format!(
                "rows {} and {} are not in one page",
                first.id, last.id
            ));
        }
    }
    if sorted.windows(2).any(|w| w[0].id == w[1].id) {
        return Err("a page holds each row once".into());
    }
    let mut records = Vec::with_capacity(sorted.len());
    let mut large = Vec::new();
    for r in sorted {
        let (inline, whole) = row::encode_for_page(r);
        records.push(inline);
        if let Some(w) = whole {
            large.push((r.id, w));
        }
    }
    Ok(EncodedPage { records, large })
}

/// The rows of page `page`, checking that slots ascend and that there are
/// at most 64.
pub fn decode<R: AsRef<[u8]>>(page: u64, records: &[R]) -> Result<Vec<Row>, String> {
    decode_with(page, records, row::decode, |r| r.id)
}

/// The heads of page `page`'s rows (`row::head`: fixed part and times;
/// the rest stepped over by its lengths, text and JSON not parsed),
/// with `decode`'s checks of slot order: what a checkpoint's merge reads
/// of a stored page it carries over as bytes.
pub fn heads<R: AsRef<[u8]>>(page: u64, records: &[R]) -> Result<Vec<row::Head>, String> {
    decode_with(page, records, row::head, |h| h.id)
}

fn decode_with<R: AsRef<[u8]>, T>(
    page: u64,
    records: &[R],
    decode: fn(&[u8], u64) -> Result<T, String>,
    id_of: fn(&T) -> u64,
) -> Result<Vec<T>, String> {
    if records.len() as u64 > ROWS_PER_PAGE {
        return Err(format!(
            "page {page} holds {} rows, more than {ROWS_PER_PAGE}",
            records.len()
        ));
    }
    let mut rows: Vec<T> = Vec::with_capacity(records.len());
    for (i, rec) in records.iter().enumerate() {
        let row =
            decode(rec.as_ref(), page).map_err(|e| format!("page {page}, record {i}: {e}"))?;
        if let Some(prev) = rows.last().map(id_of).filter(|&prev| prev >= id_of(&row)) {
            return Err(format!(
                "page {page}, record {i}: row {} does not follow row {prev}",
                id_of(&row)
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::row::tests::{full_sliced, noop};

    #[test]
    fn a_page_round_trips_in_slot_order_whatever_the_input_order() {
        let rows = vec![full_sliced(130), noop(128), noop(191)];
        let EncodedPage { records, large } = encode(&rows).unwrap();
        assert!(large.is_empty());
        let back = decode(2, &records).unwrap();
        let ids: Vec<u64> = back.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![128, 130, 191]);
        assert_eq!(back[1], full_sliced(130));
    }

    #[test]
    fn rows_of_two_pages_or_twice_one_row_are_refused() {
        assert!(encode(&[noop(63), noop(64)]).is_err());
        assert!(encode(&[noop(5), noop(5)]).is_err());
    }

    #[test]
    fn a_page_s_heads_are_its_rows_fixed_parts_and_refuse_what_its_rows_refuse() {
        let rows = vec![full_sliced(130), noop(128), noop(191)];
        let records = encode(&rows).unwrap().records;
        let heads = heads(2, &records).unwrap();
        let back = decode(2, &records).unwrap();
        assert_eq!(heads.len(), back.len());
        for (h, r) in heads.iter().zip(&back) {
            assert_eq!(
                (h.id, h.state, h.final_state),
                (r.id, r.state, r.final_state)
            );
            assert_eq!(
                (h.completed_us, h.destroyed_ms),
                (r.completed_us, r.destroyed_ms)
            );
            assert_eq!(h.sliced(), matches!(r.body, row::RowBody::Sliced(_)));
            assert!(!h.stub());
        }
        let swapped = vec![records[1].clone(), records[0].clone()];
        assert!(super::heads(2, &swapped).is_err());
        assert!(super::heads(3, &records[..1]).is_ok_and(|h| h[0].id == 3 * 64));
    }

    #[test]
    fn a_page_whose_row_is_cut_after_its_head_or_runs_long_has_no_heads() {
        // noop: 40 fixed bytes (kind .. completed), no optional times.
        let whole = encode(&[noop(128)]).unwrap().records.remove(0);
        let cut = vec![whole[..40].to_vec()];
        assert!(decode(2, &cut).is_err());
        let err = heads(2, &cut).unwrap_err();
        assert!(err.contains("cut short"), "{err}");
        let mut long = whole.clone();
        long.push(0);
        assert!(decode(2, &[&long]).is_err());
        let err = heads(2, &[&long]).unwrap_err();
        assert!(err.contains("past the end"), "{err}");
        assert!(heads(2, &[&whole]).is_ok());
    }

    #[test]
    fn out_of_order_or_foreign_records_are_errors() {
        let records = encode(&[noop(1), noop(2)]).unwrap().records;
        let swapped = vec![records[1].clone(), records[0].clone()];
        assert!(decode(0, &swapped).is_err());
        let too_many: Vec<Vec<u8>> = (0..65).map(|_| records[0].clone()).collect();
        assert!(decode(0, &too_many).is_err());
    }
}
