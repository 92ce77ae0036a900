//! The slice map of an unfinished sliced job, format `M` v2 (first byte
//! `N`, under `SLICE_MAP`; ARCHITECTURE.md, "Planned: the job table on
//! disk"): which input slices were uploaded, which are done or failed, as
//! range sets (input slice seqs are dense from 0, so a million slices are
//! one range), where each slice's records sit (`Layout`: runs of slices of
//! one size, so a regular upload is one run), plus detail only for the
//! slices that have any. It is also the running job's bookkeeping in RAM
//! (`SlicedBody::slices`). Format v1 (byte `M`, step 1) was never written
//! by any runtime (nothing wrote the table before v2): its bytes are
//! refused like any unknown format.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::codec::{Reader, Writer};

pub const FORMAT_SLICE_MAP_V2: u8 = b'N';
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

    /// The smallest seq in the set.
    pub fn first(&self) -> Option<u64> {
        self.0.first().map(|&(s, _)| s)
    }

    /// Takes the smallest seq out of the set.
    pub fn pop_first(&mut self) -> Option<u64> {
        let seq = self.first()?;
        self.remove(seq);
        Some(seq)
    }

    /// Every seq, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(|&(s, e)| s..e)
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

/// Seqs in ascending order append to the last range (any order works).
impl FromIterator<u64> for RangeSet {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> RangeSet {
        let mut set = RangeSet::default();
        for seq in iter {
            match set.0.last_mut() {
                Some(last) if last.1 == seq => last.1 = seq + 1,
                Some(last) if last.1 < seq => set.0.push((seq, seq + 1)),
                None => set.0.push((seq, seq + 1)),
                Some(_) => set.insert(seq),
            }
        }
        set
    }
}

/// Where one slice's records sit: its first record number (1-based, in
/// upload order), its record count and its first source line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlicePlace {
    pub first_record: u64,
    pub records: u32,
    pub line_first: Option<u64>,
}

/// Consecutive slices of one record count whose first record numbers (and
/// first lines) step by a fixed stride. A whole regular upload is one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutRun {
    pub start: u64,
    pub count: u64,
    pub first_record: u64,
    pub record_stride: u64,
    pub records: u32,
    pub line_first: Option<u64>,
    pub line_stride: u64,
}

impl LayoutRun {
    fn single(seq: u64, p: SlicePlace) -> LayoutRun {
        LayoutRun {
            start: seq,
            count: 1,
            first_record: p.first_record,
            record_stride: 0,
            records: p.records,
            line_first: p.line_first,
            line_stride: 0,
        }
    }

    fn end(&self) -> u64 {
        self.start + self.count
    }

    fn place(&self, seq: u64) -> SlicePlace {
        let i = seq - self.start;
        SlicePlace {
            first_record: self.first_record + i * self.record_stride,
            records: self.records,
            line_first: self.line_first.map(|l| l + i * self.line_stride),
        }
    }

    /// `self` followed by `next` (which starts where `self` ends) as one
    /// run, when they follow one rule.
    fn join(&self, next: &LayoutRun) -> Option<LayoutRun> {
        if self.end() != next.start
            || self.records != next.records
            || self.line_first.is_some() != next.line_first.is_some()
        {
            return None;
        }
        let stride = |a_first: u64, a_stride: u64, b_first: u64, b_stride: u64| {
            let step = if self.count > 1 {
                a_stride
            } else if next.count > 1 {
                b_stride
            } else {
                b_first.checked_sub(a_first)?
            };
            let fits = a_first.checked_add(self.count.checked_mul(step)?)? == b_first
                && (next.count == 1 || b_stride == step);
            fits.then_some(step)
        };
        let record_stride = stride(
            self.first_record,
            self.record_stride,
            next.first_record,
            next.record_stride,
        )?;
        let line_stride = match (self.line_first, next.line_first) {
            (Some(a), Some(b)) => stride(a, self.line_stride, b, next.line_stride)?,
            _ => 0,
        };
        // The last slice's numbers must stay in range.
        let last = next.end() - 1 - self.start;
        self.first_record
            .checked_add(last.checked_mul(record_stride)?)?;
        if let Some(l) = self.line_first {
            l.checked_add(last.checked_mul(line_stride)?)?;
        }
        Some(LayoutRun {
            count: self.count + next.count,
            record_stride,
            line_stride,
            ..*self
        })
    }
}

/// The places of the uploaded slices, as runs ascending by start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout(Vec<LayoutRun>);

impl Layout {
    pub fn runs(&self) -> &[LayoutRun] {
        &self.0
    }

    pub fn place(&self, seq: u64) -> Option<SlicePlace> {
        let i = self.0.partition_point(|r| r.end() <= seq);
        let run = self.0.get(i).filter(|r| r.start <= seq)?;
        Some(run.place(seq))
    }

    /// Adds slice `seq` (not yet in the layout), joining its neighbours
    /// where they follow one rule.
    pub fn insert(&mut self, seq: u64, p: SlicePlace) {
        debug_assert!(self.place(seq).is_none(), "slice {seq} placed twice");
        let mut i = self.0.partition_point(|r| r.end() <= seq);
        let mut run = LayoutRun::single(seq, p);
        if i > 0 {
            if let Some(joined) = self.0[i - 1].join(&run) {
                i -= 1;
                self.0.remove(i);
                run = joined;
            }
        }
        if let Some(joined) = self.0.get(i).and_then(|next| run.join(next)) {
            self.0[i] = joined;
        } else {
            self.0.insert(i, run);
        }
    }
}

/// What a slice has beyond its state and place: only slices with any of
/// it have an entry (`SliceMap::detail`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceDetail {
    /// Leases on this slice that expired (see `LeasePolicy`).
    pub expiries: u32,
    /// Times a handler panicked outside per-record isolation (live only:
    /// never encoded).
    pub panics: u32,
    /// Times the kind's retry policy ran this slice again after it failed.
    pub retries: u32,
    /// Pending, waiting for its automatic retry until this time.
    pub retry_at_ms: Option<u64>,
    /// Input records of this slice that went to `errors` (collect_errors).
    pub errors: u32,
    /// Source lines per record, only when they are not `line_first + i`
    /// (uploads from before contiguous lines were folded).
    pub lines: Option<Arc<Vec<u64>>>,
    /// Record numbers, only when they are not `first_record + i`.
    pub numbers: Option<Arc<Vec<u64>>>,
}

impl SliceDetail {
    /// Nothing to keep: the entry can go.
    pub fn is_empty(&self) -> bool {
        *self == SliceDetail::default()
    }

    /// What the map encodes (everything but the live `panics`).
    fn durable(&self) -> SliceDetail {
        SliceDetail {
            panics: 0,
            ..self.clone()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceState {
    Pending,
    Done,
    Failed,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SliceMap {
    /// Slices whose upload was applied (a hole is a slice whose record
    /// was lost: `download::slice_gaps`).
    pub uploaded: RangeSet,
    pub done: RangeSet,
    pub failed: RangeSet,
    pub layout: Layout,
    pub detail: BTreeMap<u64, SliceDetail>,
}

impl SliceMap {
    /// One past the highest uploaded slice.
    pub fn slices_total(&self) -> u64 {
        self.uploaded.0.last().map_or(0, |&(_, end)| end)
    }

    /// Slices uploaded (holes not counted).
    pub fn count(&self) -> u64 {
        self.uploaded.len()
    }

    pub fn state(&self, seq: u64) -> Option<SliceState> {
        if !self.uploaded.contains(seq) {
            None
        } else if self.done.contains(seq) {
            Some(SliceState::Done)
        } else if self.failed.contains(seq) {
            Some(SliceState::Failed)
        } else {
            Some(SliceState::Pending)
        }
    }

    /// Records slice `seq` as uploaded; false if it already was.
    pub fn upload(
        &mut self,
        seq: u64,
        place: SlicePlace,
        lines: Option<Arc<Vec<u64>>>,
        numbers: Option<Arc<Vec<u64>>>,
    ) -> bool {
        if self.uploaded.contains(seq) {
            return false;
        }
        self.uploaded.insert(seq);
        self.layout.insert(seq, place);
        if lines.is_some() || numbers.is_some() {
            let d = self.detail.entry(seq).or_default();
            d.lines = lines;
            d.numbers = numbers;
        }
        true
    }

    pub fn place(&self, seq: u64) -> Option<SlicePlace> {
        self.layout.place(seq)
    }

    /// The slice's detail, or an empty one.
    pub fn detail(&self, seq: u64) -> SliceDetail {
        self.detail.get(&seq).cloned().unwrap_or_default()
    }

    /// Changes slice `seq`'s detail; an entry left empty goes.
    pub fn with_detail<T>(&mut self, seq: u64, f: impl FnOnce(&mut SliceDetail) -> T) -> T {
        use std::collections::btree_map::Entry;
        match self.detail.entry(seq) {
            Entry::Occupied(mut o) => {
                let out = f(o.get_mut());
                if o.get().is_empty() {
                    o.remove();
                }
                out
            }
            // The common case (a slice done without errors) allocates nothing.
            Entry::Vacant(v) => {
                let mut d = SliceDetail::default();
                let out = f(&mut d);
                if !d.is_empty() {
                    v.insert(d);
                }
                out
            }
        }
    }

    /// Moves an uploaded slice to `state`.
    pub fn set_state(&mut self, seq: u64, state: SliceState) {
        debug_assert!(self.uploaded.contains(seq));
        self.done.remove(seq);
        self.failed.remove(seq);
        match state {
            SliceState::Done => self.done.insert(seq),
            SliceState::Failed => self.failed.insert(seq),
            SliceState::Pending => {}
        }
    }

    /// Uploaded slices neither done nor failed, ascending.
    pub fn pending(&self) -> impl Iterator<Item = u64> + '_ {
        self.uploaded
            .iter()
            .filter(|&s| !self.done.contains(s) && !self.failed.contains(s))
    }

    /// The slices missing below the highest uploaded one (their upload
    /// records were lost with a damaged range).
    pub fn gaps(&self) -> Vec<u64> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for &(start, end) in &self.uploaded.0 {
            gaps.extend(at..start);
            at = end;
        }
        gaps
    }

    /// Pending and not waiting for an automatic retry: a lease may take it.
    pub fn queueable(&self, seq: u64) -> bool {
        self.state(seq) == Some(SliceState::Pending)
            && self
                .detail
                .get(&seq)
                .is_none_or(|d| d.retry_at_ms.is_none())
    }
}

const D_EXPIRIES: u8 = 1;
const D_RETRIES: u8 = 1 << 1;
const D_RETRY_AT: u8 = 1 << 2;
const D_ERRORS: u8 = 1 << 3;
const D_LINES: u8 = 1 << 4;
const D_NUMBERS: u8 = 1 << 5;
const D_ALL: u8 = (1 << 6) - 1;

pub fn encode(map: &SliceMap) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.u8(FORMAT_SLICE_MAP_V2);
    for set in [&map.uploaded, &map.done, &map.failed] {
        w.u32(set.0.len() as u32);
        for &(s, e) in &set.0 {
            w.u64(s);
            w.u64(e);
        }
    }
    w.u32(map.layout.0.len() as u32);
    for run in &map.layout.0 {
        w.u64(run.start);
        w.u64(run.count);
        w.u64(run.first_record);
        w.u64(run.record_stride);
        w.u32(run.records);
        w.u64(run.line_first.unwrap_or(u64::MAX));
        w.u64(run.line_stride);
    }
    let durable: Vec<(u64, SliceDetail)> = map
        .detail
        .iter()
        .map(|(&seq, d)| (seq, d.durable()))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    w.u32(durable.len() as u32);
    for (seq, d) in &durable {
        let set = |flag: u8, on: bool| if on { flag } else { 0 };
        let mask = set(D_EXPIRIES, d.expiries > 0)
            | set(D_RETRIES, d.retries > 0)
            | set(D_RETRY_AT, d.retry_at_ms.is_some())
            | set(D_ERRORS, d.errors > 0)
            | set(D_LINES, d.lines.is_some())
            | set(D_NUMBERS, d.numbers.is_some());
        w.u64(*seq);
        w.u8(mask);
        for (flag, v) in [
            (D_EXPIRIES, d.expiries),
            (D_RETRIES, d.retries),
            (D_ERRORS, d.errors),
        ] {
            if mask & flag != 0 {
                w.u32(v);
            }
        }
        if let Some(at) = d.retry_at_ms {
            w.u64(at);
        }
        for v in [&d.lines, &d.numbers].into_iter().flatten() {
            w.u64s(v);
        }
    }
    w.0
}

pub fn decode(bytes: &[u8]) -> Result<SliceMap, String> {
    let mut r = Reader::new(bytes, "slice map");
    let format = r.u8()?;
    if format != FORMAT_SLICE_MAP_V2 {
        return Err(r.err(format!(
            "format byte {format:#04x}: written by an incompatible version"
        )));
    }
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
            if s >= e || prev_end.is_some_and(|p| s <= p) {
                return Err(r.err(format!(
                    "range {s}..{e} is empty or not after the one before"
                )));
            }
            prev_end = Some(e);
            set.0.push((s, e));
        }
    }
    let [uploaded, done, failed] = sets;
    let layout = decode_layout(&mut r, &uploaded)?;
    let detail = decode_detail(&mut r, &uploaded)?;
    r.end()?;
    if let Some(at) = first_overlap(&done, &failed) {
        return Err(format!("slice map: slice {at} is both done and failed"));
    }
    for set in [&done, &failed] {
        if set.len() != overlap_len(set, &uploaded) {
            return Err("slice map: a done or failed slice was never uploaded".into());
        }
    }
    Ok(SliceMap {
        uploaded,
        done,
        failed,
        layout,
        detail,
    })
}

/// Runs ascending, each inside one uploaded range, covering every
/// uploaded slice exactly once.
fn decode_layout(r: &mut Reader<'_>, uploaded: &RangeSet) -> Result<Layout, String> {
    let n = r.u32()?;
    let mut runs: Vec<LayoutRun> = Vec::new();
    let mut covered = 0u64;
    for _ in 0..n {
        let run = LayoutRun {
            start: r.u64()?,
            count: r.u64()?,
            first_record: r.u64()?,
            record_stride: r.u64()?,
            records: r.u32()?,
            line_first: Some(r.u64()?).filter(|&l| l != u64::MAX),
            line_stride: r.u64()?,
        };
        let last = run.count.checked_sub(1);
        let in_range = last.is_some_and(|last| {
            run.start.checked_add(last).is_some_and(|end| {
                let i = uploaded.0.partition_point(|&(_, e)| e <= run.start);
                uploaded
                    .0
                    .get(i)
                    .is_some_and(|&(s, e)| s <= run.start && end < e)
            }) && last
                .checked_mul(run.record_stride)
                .and_then(|d| run.first_record.checked_add(d))
                .is_some()
                && run.line_first.is_none_or(|l| {
                    last.checked_mul(run.line_stride)
                        .and_then(|d| l.checked_add(d))
                        .is_some()
                })
        });
        if !in_range || runs.last().is_some_and(|p| p.end() > run.start) {
            return Err(r.err(format!(
                "layout run of {} slices from {} is out of order or outside the uploaded slices",
                run.count, run.start
            )));
        }
        covered += run.count;
        runs.push(run);
    }
    if covered != uploaded.len() {
        return Err(r.err(format!(
            "layout places {covered} slices of {} uploaded",
            uploaded.len()
        )));
    }
    Ok(Layout(runs))
}

fn decode_detail(
    r: &mut Reader<'_>,
    uploaded: &RangeSet,
) -> Result<BTreeMap<u64, SliceDetail>, String> {
    let n = r.u32()?;
    let mut detail = BTreeMap::new();
    let mut prev = None;
    for _ in 0..n {
        let seq = r.u64()?;
        if !uploaded.contains(seq) || prev.is_some_and(|p| p >= seq) {
            return Err(r.err(format!(
                "detail of slice {seq} out of order or of a slice never uploaded"
            )));
        }
        prev = Some(seq);
        let mask = r.u8()?;
        if mask == 0 || mask & !D_ALL != 0 {
            return Err(r.err(format!("detail mask {mask:#04x}")));
        }
        let mut field = |flag: u8| -> Result<u32, String> {
            if mask & flag != 0 {
                r.u32()
            } else {
                Ok(0)
            }
        };
        let d = SliceDetail {
            expiries: field(D_EXPIRIES)?,
            retries: field(D_RETRIES)?,
            errors: field(D_ERRORS)?,
            panics: 0,
            retry_at_ms: if mask & D_RETRY_AT != 0 {
                Some(r.u64()?)
            } else {
                None
            },
            lines: if mask & D_LINES != 0 {
                Some(Arc::new(r.u64s()?))
            } else {
                None
            },
            numbers: if mask & D_NUMBERS != 0 {
                Some(Arc::new(r.u64s()?))
            } else {
                None
            },
        };
        detail.insert(seq, d);
    }
    Ok(detail)
}

/// How many seqs of `x` are also in `y`.
fn overlap_len(x: &RangeSet, y: &RangeSet) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while let (Some(&(xs, xe)), Some(&(ys, ye))) = (x.0.get(i), y.0.get(j)) {
        n += xe.min(ye).saturating_sub(xs.max(ys));
        if xe <= ye {
            i += 1;
        } else {
            j += 1;
        }
    }
    n
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

    fn regular(seq: u64) -> SlicePlace {
        SlicePlace {
            first_record: 1 + seq * 1000,
            records: 1000,
            line_first: Some(2 + seq * 1000),
        }
    }

    fn sample() -> SliceMap {
        let mut m = SliceMap::default();
        for s in 0..1_000_000 {
            assert!(m.upload(s, regular(s), None, None));
        }
        for s in 0..10 {
            m.set_state(s, SliceState::Done);
        }
        m.set_state(10, SliceState::Failed);
        m.with_detail(10, |d| {
            d.expiries = 3;
            d.retries = 1;
            d.errors = 2;
        });
        m.with_detail(11, |d| d.retry_at_ms = Some(1_795_000_000_000));
        m.with_detail(12, |d| {
            d.lines = Some(Arc::new(vec![4, 9]));
            d.numbers = Some(Arc::new(vec![7, 8]));
        });
        m
    }

    #[test]
    fn a_million_regular_slices_are_one_range_and_one_run() {
        let m = sample();
        assert_eq!(m.uploaded.ranges(), &[(0, 1_000_000)]);
        assert_eq!(m.layout.runs().len(), 1);
        assert_eq!(m.place(999_999), Some(regular(999_999)));
        assert_eq!(m.pending().take(2).collect::<Vec<_>>(), vec![11, 12]);
        assert!(!m.queueable(11) && m.queueable(12));
        assert!(encode(&m).len() < 300);
        assert_eq!(decode(&encode(&m)), Ok(m));
    }

    #[test]
    fn slices_uploaded_in_any_order_keep_their_places_and_join_into_runs() {
        let mut x = 99u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut m = SliceMap::default();
        let mut model = BTreeMap::new();
        let mut order: Vec<u64> = (0..300).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        for seq in order {
            // Slices 100..200 are irregular (rejects, byte cuts).
            let place = if (100..200).contains(&seq) {
                SlicePlace {
                    first_record: 100_000 + seq * 7 + next() % 3,
                    records: 5 + (next() % 2) as u32,
                    line_first: (next() % 2 == 0).then_some(seq),
                }
            } else {
                regular(seq)
            };
            m.upload(seq, place, None, None);
            model.insert(seq, place);
        }
        for (seq, place) in &model {
            assert_eq!(m.place(*seq), Some(*place), "slice {seq}");
        }
        let runs = m.layout.runs();
        assert!(runs.windows(2).all(|w| w[0].end() <= w[1].start));
        assert_eq!(runs.first().map(|r| r.count), Some(100));
        assert_eq!(runs.last().map(|r| r.count), Some(100));
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
            assert!(set.iter().eq(model.iter().copied()));
            assert_eq!(set.iter().collect::<RangeSet>(), set);
        }
    }

    #[test]
    fn panics_are_live_only_and_an_emptied_detail_goes() {
        let mut m = sample();
        m.with_detail(20, |d| d.panics = 2);
        assert_eq!(decode(&encode(&m)), Ok(sample()));
        m.with_detail(20, |d| d.panics = 0);
        assert!(!m.detail.contains_key(&20));
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
    fn a_slice_in_two_states_or_never_uploaded_is_refused() {
        let mut m = sample();
        m.done.insert(10);
        assert!(decode(&encode(&m)).is_err());
        let mut m = sample();
        m.done.insert(2_000_000);
        assert!(decode(&encode(&m)).is_err());
        let mut v1 = encode(&sample());
        v1[0] = b'M';
        assert!(decode(&v1).is_err(), "v1 was never written");
    }
}
