//! Downloads: one category of a job's records in input order, read slice by
//! slice (never the whole job in memory). `errors` also holds the records
//! of each failed slice (its input, each with its number, line and the
//! slice's failure), so records in = processed + errors in what a user
//! downloads, with or without `collect_errors`. `main` can come with each
//! record's separators ([`SeparatedDownload`]) where its slice is 1:1 with
//! its input slice.

use std::collections::VecDeque;
use std::sync::Arc;

use booster_store::SliceKey;

use crate::shared::Shared;
use crate::slice_store::SliceStore;

use crate::category::category_stream;
use crate::meta::{STREAM_ERRORS, STREAM_INPUT, STREAM_MAIN, STREAM_REJECTS};
use crate::read_ahead::ReadAhead;
use crate::separators::{self, Separators, STREAM_SEPARATORS};
use crate::table::slice_map::{SliceDetail, SlicePlace};
use crate::table::SliceState;
use crate::worker::error_record;
use crate::{Category, JobId, RecordErrorSample, RuntimeError};

/// The store and the table a download reads: what `Runtime::download`
/// and a handler's `JobContext::after_output` open downloads from.
#[derive(Clone, Copy)]
pub(crate) struct OutputSource<'a> {
    pub shared: &'a Arc<Shared>,
    pub store: &'a Arc<dyn SliceStore>,
}

/// Where a handler's `JobContext` reads the output of the jobs its job
/// ran after: this process's store, or elsewhere (a remote worker reads
/// through the node, `DependencyOutputs`).
#[derive(Clone, Copy)]
pub(crate) enum Dependencies<'a> {
    Local(OutputSource<'a>),
    Elsewhere(&'a dyn DependencyOutputs),
}

impl Dependencies<'_> {
    /// The jobs `job` ran after (`JobSpec::after`).
    pub fn after(self, job: JobId) -> Vec<JobId> {
        match self {
            Dependencies::Local(s) => s.after(job),
            Dependencies::Elsewhere(o) => o.after(job),
        }
    }

    /// `category` of `dep`, one of `job`'s dependencies (checked by the
    /// caller).
    pub fn open(
        self,
        job: JobId,
        dep: JobId,
        category: Category,
    ) -> Result<Download, RuntimeError> {
        match self {
            Dependencies::Local(s) => s.open(dep, category, false),
            Dependencies::Elsewhere(o) => o.open(job, dep, category),
        }
    }
}

/// The outputs of a job's dependencies as a handler that runs away from
/// the node's store reads them (`JobContext::with_dependencies`): a
/// remote worker asks the node, chunk by chunk (`booster_client`).
pub trait DependencyOutputs: Sync {
    /// The jobs `job` ran after, in the order given.
    fn after(&self, job: JobId) -> Vec<JobId>;
    /// `category` of `dep`, one of `job`'s dependencies, in input order
    /// (`Download::streamed`).
    fn open(&self, job: JobId, dep: JobId, category: Category) -> Result<Download, RuntimeError>;
}

impl OutputSource<'_> {
    /// Category `category` of `job`; a category the job did not declare is
    /// an error naming the ones it has. `read_ahead`: its slices may be
    /// read ahead on reader threads (`Runtime::download`; never a
    /// handler's `after_output`, on a worker thread).
    pub fn open(
        self,
        job: JobId,
        category: Category,
        read_ahead: bool,
    ) -> Result<Download, RuntimeError> {
        self.open_stored(job, category, read_ahead)
            .map(|d| Download(Records::Stored(Box::new(d))))
    }

    /// `open`, as the store's download it is.
    pub fn open_stored(
        self,
        job: JobId,
        category: Category,
        read_ahead: bool,
    ) -> Result<StoredDownload, RuntimeError> {
        {
            let st = self.shared.state.lock();
            let j = st.job_row(job)?;
            if let Category::Named(name) = category {
                let names = j.sliced().map_or(&[][..], |s| &s.categories);
                if !names.iter().any(|n| n == name.as_str()) {
                    return Err(RuntimeError::Invalid(format!(
                        "job {job} has no category {:?}; its categories are main, errors{}",
                        name.as_str(),
                        names.iter().map(|n| format!(", {n}")).collect::<String>()
                    )));
                }
            }
        }
        Ok(StoredDownload::new(
            self.store.clone(),
            self.shared.clone(),
            job,
            category,
            read_ahead,
        ))
    }

    /// The jobs `job` ran after (`JobSpec::after`).
    pub fn after(self, job: JobId) -> Vec<JobId> {
        let st = self.shared.state.lock();
        st.table
            .get(&job)
            .map_or_else(Vec::new, |j| j.after.clone())
    }
}

/// Records of one category in input order, streamed slice by slice: read
/// from this process's store, or (a remote worker's `after_output`)
/// from the node, chunk by chunk.
pub struct Download(Records);

enum Records {
    /// Boxed: one allocation a download keeps the streamed form small.
    Stored(Box<StoredDownload>),
    Streamed(Box<dyn Iterator<Item = Result<Vec<u8>, RuntimeError>> + Send>),
}

impl Download {
    /// Records that come from elsewhere (a remote worker reads a
    /// dependency's output from the node): `records` as a download.
    pub fn streamed(
        records: Box<dyn Iterator<Item = Result<Vec<u8>, RuntimeError>> + Send>,
    ) -> Download {
        Download(Records::Streamed(records))
    }

    /// Slices still to read (a progress hint; 0 for a streamed one).
    pub fn slices_left(&self) -> usize {
        match &self.0 {
            Records::Stored(d) => d.slices_left(),
            Records::Streamed(_) => 0,
        }
    }
}

impl Iterator for Download {
    type Item = Result<Vec<u8>, RuntimeError>;
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Records::Stored(d) => d.next_separated().map(|r| r.map(|(record, _)| record)),
            Records::Streamed(records) => records.next(),
        }
    }
}

/// Where a read of a download resumes (`Runtime::remote_output`): its
/// part (one slice's worth: a stored slice, a failed one), named by a
/// stable key (the slice's number and its rank among the streams of the
/// category, never a position in the part list, which each call lists
/// again), the records of that part already read, and a fingerprint of
/// the parts before it. A dependency whose parts before the cursor
/// changed since (a retried slice) fails the read rather than give a
/// record twice or leave one out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputCursor {
    /// The part's slice number.
    pub seq: u64,
    /// Its rank among the parts of one slice: rejects 0, stored 1,
    /// failed 2.
    pub rank: u32,
    pub record: u32,
    /// The fingerprint of the keys of the parts before this one (0 for
    /// none).
    pub before: u64,
}

/// Why a chunk was not read (`StoredDownload::chunk`).
#[derive(Debug)]
pub(crate) enum ChunkError {
    /// The cursor names no record of this download (a record past its
    /// part's end): the caller sent it malformed.
    Cursor(String),
    /// The read failed, or the download changed under the cursor.
    Read(RuntimeError),
}

/// Records of a download from a cursor on, and where the rest resumes.
#[derive(Debug, Default)]
pub struct OutputChunk {
    pub records: Vec<Vec<u8>>,
    /// None: the download ends with these records.
    pub next: Option<OutputCursor>,
}

/// A download read from this process's store.
pub(crate) struct StoredDownload {
    store: Arc<dyn SliceStore>,
    shared: Arc<Shared>,
    keys: VecDeque<Part>,
    /// The reads of `keys`' stored and failed slices, on reader threads.
    reads: ReadAhead,
    current: std::vec::IntoIter<Vec<u8>>,
    /// Read each `main` slice's separators too (`SeparatedDownload`).
    separated: bool,
    /// The current slice's irregular separators, by index in it.
    separators: VecDeque<(u32, Separators)>,
    /// Index in the current slice of the next record.
    index: u32,
    /// The key of the part read now (its records are `current`'s).
    current_key: (u64, u32),
    /// The fingerprint of the parts taken from `keys` before the current
    /// one, and of all taken.
    before_current: u64,
    taken: u64,
}

/// A part's place in its download: the slice's number and its rank.
fn part_key(part: &Part) -> (u64, u32) {
    match part {
        Part::Stored(k, _) => (k.seq, u32::from(k.stream != STREAM_REJECTS)),
        Part::Failed(f) => (f.key.seq, 2),
        Part::Lost(k) => (k.seq, 3),
    }
}

/// `fingerprint` with the part of `key` after it: order-sensitive, 0 for
/// no part.
fn fingerprint(fingerprint: u64, key: (u64, u32)) -> u64 {
    let mut x = key.0.wrapping_mul(4).wrapping_add(u64::from(key.1) + 1);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (fingerprint ^ x).wrapping_mul(0x0000_0100_0000_01b3)
}

/// `main` records with the separators their input had (`None`s where the
/// slice is not 1:1 or had only regular ones), in input order.
pub struct SeparatedDownload(StoredDownload);

impl Iterator for SeparatedDownload {
    type Item = Result<(Vec<u8>, Separators), RuntimeError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_separated()
    }
}

impl SeparatedDownload {
    pub(crate) fn new(mut download: StoredDownload) -> SeparatedDownload {
        download.separated = true;
        SeparatedDownload(download)
    }
}

/// One slice's worth of a download.
enum Part {
    /// A stored slice, read as it is, with its decoded size where the
    /// index listed it.
    Stored(SliceKey, Option<u32>),
    /// A failed slice: its input records, each turned into an error entry.
    Failed(FailedSlice),
    /// A slice the job's table no longer holds although later ones exist:
    /// its `Uploaded` record went with a damaged range. The download fails
    /// there rather than leave a silent gap.
    Lost(SliceKey),
}

/// `job`'s lost slices, as parts of a download.
fn lost_slices(shared: &Shared, job: JobId) -> Vec<Part> {
    let st = shared.state.lock();
    let Some(j) = st.table.get(&job) else {
        return Vec::new();
    };
    let Some(s) = j.sliced() else {
        return Vec::new();
    };
    s.slices
        .gaps()
        .into_iter()
        .map(|seq| {
            Part::Lost(SliceKey {
                owner: job,
                stream: STREAM_INPUT,
                seq,
            })
        })
        .collect()
}

struct FailedSlice {
    key: SliceKey,
    message: String,
    place: SlicePlace,
    detail: SliceDetail,
}

impl FailedSlice {
    fn entries(&self, records: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let (p, e) = (&self.place, &self.detail);
        records
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let sample = RecordErrorSample {
                    slice: self.key.seq,
                    record_number: match &e.numbers {
                        Some(n) => n.get(i).copied().unwrap_or_default(),
                        None => p.first_record.saturating_add(i as u64),
                    },
                    line: match &e.lines {
                        Some(lines) => lines.get(i).copied(),
                        None => p.line_first.map(|l| l.saturating_add(i as u64)),
                    },
                    record: String::new(),
                    message: format!("slice {} failed: {}", self.key.seq, self.message),
                };
                error_record(&sample, raw)
            })
            .collect()
    }
}

/// Where `name` is in `job`'s category list.
fn category_index(shared: &Shared, job: JobId, name: &str) -> Option<usize> {
    let st = shared.state.lock();
    let j = st.table.get(&job)?;
    let s = j.sliced()?;
    s.categories.iter().position(|c| c == name)
}

/// The `main` keys of `job`'s done slices: a commit always writes one, so
/// a done slice whose key the store does not list is asked for anyway, and
/// its read says what happened to it (never a silent gap in the file).
fn done_main_keys(shared: &Shared, job: JobId) -> Vec<SliceKey> {
    let st = shared.state.lock();
    let Some(j) = st.table.get(&job) else {
        return Vec::new();
    };
    let Some(s) = j.sliced() else {
        return Vec::new();
    };
    s.slices
        .done
        .iter()
        .map(|seq| SliceKey {
            owner: job,
            stream: STREAM_MAIN,
            seq,
        })
        .collect()
}

/// The failed slices of `job`, with what their error entries need.
fn failed_slices(shared: &Shared, job: JobId) -> Vec<FailedSlice> {
    let st = shared.state.lock();
    let Some(j) = st.table.get(&job) else {
        return Vec::new();
    };
    let Some(s) = j.sliced() else {
        return Vec::new();
    };
    s.failures
        .iter()
        .filter_map(|(seq, (message, _))| {
            let place = s.slices.place(*seq)?;
            (s.slices.state(*seq) == Some(SliceState::Failed)).then(|| FailedSlice {
                key: SliceKey {
                    owner: job,
                    stream: STREAM_INPUT,
                    seq: *seq,
                },
                message: message.clone(),
                place,
                detail: s.slices.detail(*seq),
            })
        })
        .collect()
}

impl StoredDownload {
    pub(crate) fn new(
        store: Arc<dyn SliceStore>,
        shared: Arc<Shared>,
        job: JobId,
        category: Category,
        read_ahead: bool,
    ) -> StoredDownload {
        let list = |stream| {
            store
                .slices(job, stream)
                .into_iter()
                .map(|i| Part::Stored(i.key, Some(i.raw_len)))
        };
        let mut keys: Vec<Part> = match category {
            Category::Input => list(STREAM_INPUT).collect(),
            Category::Main => {
                let listed: std::collections::BTreeMap<SliceKey, u32> = store
                    .slices(job, STREAM_MAIN)
                    .into_iter()
                    .map(|i| (i.key, i.raw_len))
                    .collect();
                let unlisted: Vec<Part> = done_main_keys(&shared, job)
                    .into_iter()
                    .filter(|k| !listed.contains_key(k))
                    .map(|k| Part::Stored(k, None))
                    .collect();
                listed
                    .into_iter()
                    .map(|(k, raw_len)| Part::Stored(k, Some(raw_len)))
                    .chain(unlisted)
                    .collect()
            }
            Category::Named(name) => match category_index(&shared, job, name.as_str()) {
                Some(i) => list(category_stream(i)).collect(),
                None => Vec::new(),
            },
            // Per input slice: records the uploader rejected, then records
            // the handler failed (or, for a failed slice, all its records);
            // all in input order.
            Category::Errors => list(STREAM_REJECTS)
                .chain(list(STREAM_ERRORS))
                .chain(failed_slices(&shared, job).into_iter().map(Part::Failed))
                .collect(),
        };
        keys.extend(lost_slices(&shared, job));
        keys.sort_by_key(part_key);
        // The download stops at a lost slice: nothing after it is read.
        let reads = keys
            .iter()
            .map_while(|part| match part {
                Part::Stored(k, raw_len) => Some((*k, *raw_len)),
                Part::Failed(f) => Some((f.key, None)),
                Part::Lost(_) => None,
            })
            .collect();
        let slots = read_ahead.then(|| shared.read_ahead_slots.clone());
        let reads = ReadAhead::new(store.clone(), reads, shared.codec_threads, slots);
        StoredDownload {
            store,
            shared,
            reads,
            keys: keys.into(),
            current: Vec::new().into_iter(),
            separated: false,
            separators: VecDeque::new(),
            index: 0,
            current_key: (0, 0),
            before_current: 0,
            taken: 0,
        }
    }

    /// Slices still to read (a progress hint).
    pub fn slices_left(&self) -> usize {
        self.keys.len()
    }

    /// Where the next record is: in the part read now, or at the start of
    /// the next; None at the end.
    fn cursor(&self) -> Option<OutputCursor> {
        if !self.current.as_slice().is_empty() {
            let (seq, rank) = self.current_key;
            return Some(OutputCursor {
                seq,
                rank,
                record: self.index,
                before: self.before_current,
            });
        }
        let (seq, rank) = part_key(self.keys.front()?);
        Some(OutputCursor {
            seq,
            rank,
            record: 0,
            before: self.taken,
        })
    }

    /// The records from `from` on, about `budget_bytes` of them (at least
    /// one), and where the rest resumes. A read error after some records
    /// is left for the next chunk, whose first read it is.
    pub(crate) fn chunk(
        mut self,
        from: OutputCursor,
        budget_bytes: usize,
    ) -> Result<OutputChunk, ChunkError> {
        let at = (from.seq, from.rank);
        // Whole parts before the cursor's are skipped unread; a lost part
        // is not skipped, so its read says what happened to it.
        while let Some(part) = self.keys.front() {
            let key = part_key(part);
            if key >= at || matches!(part, Part::Lost(_)) {
                break;
            }
            self.keys.pop_front();
            self.reads.skip();
            self.taken = fingerprint(self.taken, key);
        }
        let changed = || {
            ChunkError::Read(RuntimeError::Invalid(format!(
                "the output read changed since the read began (a slice before record {} of \
                 slice {} was retried, or its part is gone): read it again from the start",
                from.record, from.seq
            )))
        };
        if self.taken != from.before {
            return Err(changed());
        }
        if from.record > 0 {
            // Inside a part: the same part must still be there, and the
            // record within it.
            if self.keys.front().map(part_key) != Some(at) {
                return Err(changed());
            }
            match self.load_next() {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(ChunkError::Read(e)),
                None => return Err(changed()),
            }
            let len = self.current.len();
            if from.record as usize > len {
                return Err(ChunkError::Cursor(format!(
                    "the cursor names record {} of a part of {len} records (slice {})",
                    from.record, from.seq
                )));
            }
            for _ in 0..from.record {
                if let Some(Err(e)) = self.next_separated() {
                    return Err(ChunkError::Read(e));
                }
            }
        }
        let mut chunk = OutputChunk::default();
        let mut bytes = 0usize;
        loop {
            let at = self.cursor();
            match self.next_separated() {
                None => return Ok(chunk),
                Some(Err(e)) if chunk.records.is_empty() => return Err(ChunkError::Read(e)),
                Some(Err(_)) => {
                    chunk.next = at;
                    return Ok(chunk);
                }
                Some(Ok((record, _))) => {
                    // A length and a tag or two on the wire.
                    bytes += record.len() + 8;
                    chunk.records.push(record);
                }
            }
            if bytes >= budget_bytes {
                chunk.next = self.cursor();
                return Ok(chunk);
            }
        }
    }

    /// The separators stored for the input slice `seq` of `key`'s job,
    /// when they pair with an output slice of `records` records.
    fn separators_of(
        &self,
        key: &SliceKey,
        records: usize,
    ) -> Result<VecDeque<(u32, Separators)>, RuntimeError> {
        let key = SliceKey {
            stream: STREAM_SEPARATORS,
            ..*key
        };
        // Most slices have none. Asked of the index first: after a loss no
        // frame names, a read of an absent key is an error ("may have been
        // among them"), and a slice whose records are all here must still
        // download; without its separators (if they were lost) it gets the
        // plain line ending, its records intact.
        let bounds = (
            std::ops::Bound::Included(key.seq),
            std::ops::Bound::Included(key.seq),
        );
        if self
            .store
            .scan(key.owner, key.stream, bounds, false, 1)?
            .is_empty()
        {
            return Ok(VecDeque::new());
        }
        let Some(frame) = self.store.read_slice(&key)? else {
            return Ok(VecDeque::new());
        };
        let stored = separators::decode(&frame).map_err(|why| {
            RuntimeError::Invalid(format!(
                "the separators of slice {} of job {} cannot be read ({why}): the store is \
                 damaged there",
                key.seq, key.owner
            ))
        })?;
        // Not 1:1 (a filter, a splitter): pairing by index would give a
        // record another record's bytes.
        if stored.records as usize != records {
            return Ok(VecDeque::new());
        }
        Ok(stored.entries.into())
    }

    /// The download ends here (an error): no further part is read.
    fn stop(&mut self) {
        self.keys.clear();
        self.reads.stop();
    }

    fn next_separated(&mut self) -> Option<Result<(Vec<u8>, Separators), RuntimeError>> {
        loop {
            if let Some(r) = self.current.next() {
                let index = self.index;
                self.index += 1;
                let separators = match self.separators.front() {
                    Some((i, _)) if *i == index => self.separators.pop_front().map(|(_, s)| s),
                    _ => None,
                };
                return Some(Ok((r, separators.unwrap_or_default())));
            }
            if let Err(e) = self.load_next()? {
                return Some(Err(e));
            }
        }
    }

    /// The next part's records into `current`; None when no part is left.
    fn load_next(&mut self) -> Option<Result<(), RuntimeError>> {
        let part = self.keys.pop_front()?;
        self.current_key = part_key(&part);
        self.before_current = self.taken;
        self.taken = fingerprint(self.taken, self.current_key);
        let key = match &part {
            Part::Stored(key, _) => *key,
            Part::Failed(f) => f.key,
            Part::Lost(key) => {
                self.stop();
                return Some(Err(RuntimeError::Corrupt(format!(
                    "slice {} of job {} was lost with a damaged range of the store \
                     (`booster job show {}` names it): the download stops there rather \
                     than leave its records out",
                    key.seq, key.owner, key.owner
                ))));
            }
        };
        match self.reads.read(&key) {
            Ok(Some(records)) => {
                let records = records.to_vecs();
                self.index = 0;
                self.separators = VecDeque::new();
                if self.separated && key.stream == STREAM_MAIN {
                    match self.separators_of(&key, records.len()) {
                        Ok(found) => self.separators = found,
                        Err(e) => {
                            self.stop();
                            return Some(Err(e));
                        }
                    }
                }
                self.current = match &part {
                    Part::Stored(..) | Part::Lost(_) => records,
                    Part::Failed(f) => f.entries(records),
                }
                .into_iter()
            }
            // Every part was listed by the index or named by the job's
            // table: a frame gone since means the store lost it, and a
            // download that skipped it would be a file short of records.
            Ok(None) => {
                self.stop();
                return Some(Err(RuntimeError::Corrupt(format!(
                    "slice {} of job {} ({}) is not in the store although the job's \
                     table says it was written: the download stops there rather than leave \
                     its records out; run `booster verify` and restore the store from a \
                     backup",
                    key.seq,
                    key.owner,
                    crate::status::stream_name(key.stream, &[])
                ))));
            }
            Err(e) => {
                self.shared.note_damage(&self.store, key, &e);
                self.stop();
                return Some(Err(RuntimeError::Store(e)));
            }
        }
        Some(Ok(()))
    }
}
