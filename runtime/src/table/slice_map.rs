//! The slice map of an unfinished sliced job, format `M` v1 (under
//! `SLICE_MAP`): which input slices are done, failed or queued, as range
//! sets (input slice seqs are dense from 0, so a million pending slices
//! are one range), plus detail only for the slices that have any.

use serde_json::Value;

use super::codec::{Reader, Writer};

pub const FORMAT_SLICE_MAP_V1: u8 = b'M';

/// Sorted, disjoint, non-empty half-open ranges of slice seqs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    pub fn contains(&self, seq: u64) -> bool {
        let i = self.0.partition_point(|&(_, end)| end <= seq);
        self.0.get(i).is_some_and(|&(start, _)| start <= seq)
    }

    pub fn len(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, seq: u64) {
        if self.contains(seq) {
            return;
        }
        let i = self.0.partition_point(|&(_, end)| end < seq);
        let joins_left = i < self.0.len() && self.0[i].1 == seq;
        let right = if joins_left { i + 1 } else { i };
        let joins_right = right < self.0.len() && self.0[right].0 == seq + 1;
        match (joins_left, joins_right) {
            (true, true) => {
                self.0[i].1 = self.0[right].1;
                self.0.remove(right);
            }
            (true, false) => self.0[i].1 = seq + 1,
            (false, true) => self.0[right].0 = seq,
            (false, false) => self.0.insert(i, (seq, seq + 1)),
        }
    }

    pub fn remove(&mut self, seq: u64) {
        let i = self.0.partition_point(|&(_, end)| end <= seq);
        let Some(&(start, end)) = self.0.get(i) else {
            return;
        };
        if seq < start {
            return;
        }
        match (start == seq, end == seq + 1) {
            (true, true) => {
                self.0.remove(i);
            }
            (true, false) => self.0[i].0 = seq + 1,
            (false, true) => self.0[i].1 = seq,
            (false, false) => {
                self.0[i].1 = seq;
                self.0.insert(i + 1, (seq + 1, end));
            }
        }
    }
}

/// What a slice has beyond its state: only slices with any of it have an
/// entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SliceDetail {
    pub seq: u64,
    pub expiries: u8,
    pub panics: u8,
    pub damage: u8,
    pub errors: u32,
    pub records: u32,
    /// `[message, sample]` of a failed slice, or null.
    pub failure: Value,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SliceMap {
    pub slices_total: u64,
    pub done: RangeSet,
    pub failed: RangeSet,
    pub queued: RangeSet,
    /// Ascending by seq.
    pub detail: Vec<SliceDetail>,
}

pub fn encode(map: &SliceMap) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.u8(FORMAT_SLICE_MAP_V1);
    w.u64(map.slices_total);
    for set in [&map.done, &map.failed, &map.queued] {
        w.u32(set.0.len() as u32);
        for &(s, e) in &set.0 {
            w.u64(s);
            w.u64(e);
        }
    }
    w.u32(map.detail.len() as u32);
    for d in &map.detail {
        w.u64(d.seq);
        w.u8(d.expiries);
        w.u8(d.panics);
        w.u8(d.damage);
        w.u8(0);
        w.u32(d.errors);
        w.u32(d.records);
        w.json(&d.failure);
    }
    w.0
}

pub fn decode(bytes: &[u8]) -> Result<SliceMap, String> {
    let mut r = Reader::new(bytes, "slice map");
    let format = r.u8()?;
    if format != FORMAT_SLICE_MAP_V1 {
        return Err(r.err(format!(
            "format byte {format:#04x}: written by an incompatible version"
        )));
    }
    let slices_total = r.u64()?;
    let mut sets = [
        RangeSet::default(),
        RangeSet::default(),
        RangeSet::default(),
    ];
    for set in &mut sets {
        let n = r.u32()?;
        let mut prev_end = None;
        for _ in 0..n {
            let (s, e) = (r.u64()?, r.u64()?);
            if s >= e || e > slices_total || prev_end.is_some_and(|p| s <= p) {
                return Err(r.err(format!(
                    "range {s}..{e} is empty, past {slices_total} slices, or not after the one before"
                )));
            }
            prev_end = Some(e);
            set.0.push((s, e));
        }
    }
    let n = r.u32()?;
    let mut detail: Vec<SliceDetail> = Vec::new();
    for _ in 0..n {
        let seq = r.u64()?;
        if seq >= slices_total || detail.last().is_some_and(|d| d.seq >= seq) {
            return Err(r.err(format!(
                "detail of slice {seq} out of order or past the end"
            )));
        }
        let (expiries, panics, damage) = (r.u8()?, r.u8()?, r.u8()?);
        if r.u8()? != 0 {
            return Err(r.err("reserved byte is not zero"));
        }
        detail.push(SliceDetail {
            seq,
            expiries,
            panics,
            damage,
            errors: r.u32()?,
            records: r.u32()?,
            failure: r.json()?,
        });
    }
    r.end()?;
    let [done, failed, queued] = sets;
    let map = SliceMap {
        slices_total,
        done,
        failed,
        queued,
        detail,
    };
    let (a, b, c) = (&map.done, &map.failed, &map.queued);
    for (x, y) in [(a, b), (a, c), (b, c)] {
        if let Some(at) = first_overlap(x, y) {
            return Err(format!("slice map: slice {at} is in two states"));
        }
    }
    Ok(map)
}

/// The first seq in both sets (a walk over both range lists at once).
fn first_overlap(x: &RangeSet, y: &RangeSet) -> Option<u64> {
    let (mut i, mut j) = (0, 0);
    while let (Some(&(xs, xe)), Some(&(ys, ye))) = (x.0.get(i), y.0.get(j)) {
        if xs.max(ys) < xe.min(ye) {
            return Some(xs.max(ys));
        }
        if xe <= ye {
            i += 1;
        } else {
            j += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> SliceMap {
        let mut m = SliceMap {
            slices_total: 1_000_000,
            ..SliceMap::default()
        };
        for s in 0..10 {
            m.done.insert(s);
        }
        m.failed.insert(10);
        for s in 11..1_000_000 {
            m.queued.insert(s);
        }
        m.detail.push(SliceDetail {
            seq: 10,
            expiries: 3,
            failure: json!(["hung", null]),
            ..SliceDetail::default()
        });
        m
    }

    #[test]
    fn a_million_pending_slices_are_one_range() {
        let m = sample();
        assert_eq!(m.queued.ranges(), &[(11, 1_000_000)]);
        assert!(encode(&m).len() < 200);
        assert_eq!(decode(&encode(&m)), Ok(m));
    }

    #[test]
    fn range_sets_insert_and_remove_like_a_set() {
        let mut set = RangeSet::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x = 12345u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let seq = (x >> 33) % 40;
            if x & 1 == 0 {
                set.insert(seq);
                model.insert(seq);
            } else {
                set.remove(seq);
                model.remove(&seq);
            }
            assert_eq!(set.len(), model.len() as u64);
            assert!((0..40).all(|q| set.contains(q) == model.contains(&q)));
            assert!(set.ranges().windows(2).all(|w| w[0].1 < w[1].0));
        }
    }

    #[test]
    fn every_cut_is_an_error_and_no_flip_panics() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let _ = decode(&b);
            }
        }
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let mut m = sample();
        m.done.insert(10);
        assert!(decode(&encode(&m)).is_err());
    }
}
