//! A job's row on disk (ARCHITECTURE.md, "Planned: the job table on
//! disk", section 1). Rows are written in format `R` v2 (first byte `S`):
//! a fixed part of 40 bytes, the optional times its flags name, then
//! description, properties, failure reason, singleton key, cron run and
//! dependencies, then the body. A no-op simple job's row is 52 bytes before
//! compression. Format `R` v1 (first byte `R`, step 1's, before `waiting`,
//! cron runs, dependencies and microsecond times) keeps decoding
//! (`tests/fixtures/row-page-v1.bin`). Within a version only reserved bytes
//! and flag bits may gain a meaning, zero meaning what it meant before;
//! anything else is a new format byte.

use serde_json::Value;

use super::codec::{Reader, Writer};
use super::keys::ROWS_PER_PAGE;
use crate::{CronRun, DependencyFailure, JobId, JobState, ProcessingWindow};

pub const FORMAT_ROW_V1: u8 = b'R';
/// The format rows are written in: v2, the letter after v1's.
pub const FORMAT_ROW_V2: u8 = b'S';
/// The state byte of a destroyed row (in retention); 0..=7 are
/// `JobState::index()` (7 is `waiting`).
pub const STATE_DESTROYED: u8 = 8;
/// Format v1's destroyed byte (it had no `waiting`): decoded as
/// `STATE_DESTROYED`.
const V1_STATE_DESTROYED: u8 = 7;
/// A row encoded longer than this goes whole to `ROW_LARGE`; its page
/// holds a stub.
pub const MAX_INLINE_ROW: usize = 4096;
/// How much of the description a stub keeps (at a char boundary).
pub const STUB_DESCRIPTION_BYTES: usize = 256;

const FIXED: usize = 40;

const F_SLICED: u8 = 1;
const F_LARGE: u8 = 1 << 1;
const F_DESTROY_ON_COMPLETE: u8 = 1 << 2;
const F_STARTED: u8 = 1 << 3;
const F_RUN_AT: u8 = 1 << 4;
const F_EXPIRES_AT: u8 = 1 << 5;
const F_FAILURE: u8 = 1 << 6;
const F_RESULT: u8 = 1 << 7;

/// Byte 6, the second flags byte (reserved, 0, before singletons).
const F2_SINGLETON: u8 = 1;
/// v2: a cron run (entry id u64, tick u64) follows the singleton key.
const F2_CRON: u8 = 1 << 1;
/// v2: dependencies (u32 count ++ u64 ids) follow the cron run.
const F2_AFTER: u8 = 1 << 2;
/// v2: bits 3-4, the dependency-failure policy: 0 fail, 1 abort, 2 run.
const F2_ON_DEP_SHIFT: u8 = 3;
const F2_ON_DEP_MASK: u8 = 0b11 << F2_ON_DEP_SHIFT;
/// v2: the job's own processing window follows the dependencies: u32
/// (start minute | end minute << 16) ++ the zone's IANA name (bytes).
const F2_WINDOW: u8 = 1 << 5;
/// v2: the job chose to be kept when it completes, whatever its kind
/// says (`destroy_on_complete` Some(false)); bit 2 of flags is Some(true).
const F2_KEEP_ON_COMPLETE: u8 = 1 << 6;
const F2_V2: u8 =
    F2_SINGLETON | F2_CRON | F2_AFTER | F2_ON_DEP_MASK | F2_WINDOW | F2_KEEP_ON_COMPLETE;

/// The sliced body's flags byte (reserved, 0, before categories existed).
const S_CATEGORIES: u8 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub id: JobId,
    /// `JobState::index()` (0..=7), or `STATE_DESTROYED`.
    pub state: u8,
    /// A destroyed row's state before it was destroyed (else 0).
    pub final_state: u8,
    pub priority: u8,
    /// The job's own choice: Some(true) flag bit 2, Some(false) flags 2
    /// bit 6 (v2), None neither (its kind's).
    pub destroy_on_complete: Option<bool>,
    pub kind: u32,
    pub max_workers: Option<u32>,
    pub attempts: u32,
    /// Lease expiries of a simple job, or of a sliced job's hooks (v1: 0).
    pub expiries: u32,
    pub created_ms: u64,
    /// Microseconds since the epoch (v1 kept milliseconds: decoded times
    /// 1000).
    pub completed_us: Option<u64>,
    pub started_us: Option<u64>,
    pub run_at_ms: Option<u64>,
    pub expires_at_ms: Option<u64>,
    /// Set exactly when the state is `STATE_DESTROYED`.
    pub destroyed_ms: Option<u64>,
    pub description: String,
    pub properties: Value,
    pub failure_reason: Option<String>,
    /// The singleton key the job holds while unfinished.
    pub singleton: Option<String>,
    /// The cron entry and tick this job is the run of (v2).
    pub cron: Option<CronRun>,
    /// Jobs that must complete first (v2).
    pub after: Vec<JobId>,
    /// What happens when one of `after` does not complete (v2).
    pub on_dependency_failure: DependencyFailure,
    /// The job's own processing window (v2, `F2_WINDOW`).
    pub window: Option<ProcessingWindow>,
    pub body: RowBody,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RowBody {
    Simple {
        args: Value,
        result: Option<Value>,
    },
    Sliced(Box<SlicedRow>),
    /// A destroyed row keeps no body.
    Gone,
    /// A page's stand-in for a row kept whole in `ROW_LARGE`: fixed part
    /// and clipped description only (listing never reads `ROW_LARGE`).
    Stub {
        sliced: bool,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlicedRow {
    pub slice_size: u32,
    pub collect_errors: bool,
    /// 0 open, 1 complete, 2 failed.
    pub upload: u8,
    pub before_done: bool,
    pub records_in: u64,
    pub records_rejected: u64,
    pub records_out: u64,
    pub records_written: Option<u64>,
    pub records_errors: u64,
    pub records_in_failed_slices: u64,
    pub slices_total: u64,
    pub slices_done: u64,
    pub slices_failed: u64,
    /// The meta wire's error groups (at most 50).
    pub collected_errors: Value,
    /// `[[seq, [message, sample]]]` (at most 50).
    pub failures: Value,
    /// The job's output categories and the records written to each, in
    /// the job's order (category n is stream 16 + n).
    pub categories: Vec<(String, u64)>,
}

impl Row {
    /// The row as a destroyed one: fixed part, description and failure
    /// reason stay ("completed, then destroyed at T"); body and
    /// properties go.
    pub fn into_destroyed(mut self, at_ms: u64) -> Row {
        if self.state != STATE_DESTROYED {
            self.final_state = self.state;
            self.state = STATE_DESTROYED;
        }
        self.destroyed_ms = Some(at_ms);
        self.properties = Value::Null;
        self.body = RowBody::Gone;
        self
    }

    /// The job's state, or None for a destroyed row.
    pub fn job_state(&self) -> Option<JobState> {
        JobState::ALL.get(usize::from(self.state)).copied()
    }

    /// The page's stand-in for this row (see `RowBody::Stub`).
    pub fn stub(&self) -> Row {
        let mut cut = self.description.len().min(STUB_DESCRIPTION_BYTES);
        while !self.description.is_char_boundary(cut) {
            cut -= 1;
        }
        Row {
            description: self.description[..cut].to_string(),
            properties: Value::Null,
            failure_reason: None,
            singleton: None,
            cron: None,
            after: Vec::new(),
            on_dependency_failure: DependencyFailure::Fail,
            window: None,
            body: RowBody::Stub {
                sliced: matches!(
                    self.body,
                    RowBody::Sliced(_) | RowBody::Stub { sliced: true }
                ),
            },
            ..self.clone()
        }
    }
}

/// The row as its page holds it, and, when it is too long for a page, the
/// whole row for `ROW_LARGE`.
pub fn encode_for_page(row: &Row) -> (Vec<u8>, Option<Vec<u8>>) {
    let whole = encode(row);
    if whole.len() <= MAX_INLINE_ROW {
        (whole, None)
    } else {
        (encode(&row.stub()), Some(whole))
    }
}

fn on_dependency_bits(p: DependencyFailure) -> u8 {
    let v = match p {
        DependencyFailure::Fail => 0,
        DependencyFailure::Abort => 1,
        DependencyFailure::Run => 2,
    };
    v << F2_ON_DEP_SHIFT
}

/// The row in format v2.
pub fn encode(row: &Row) -> Vec<u8> {
    debug_assert!(row.state <= STATE_DESTROYED && row.final_state < STATE_DESTROYED);
    let mut flags = 0;
    let (sliced, stub) = match &row.body {
        RowBody::Sliced(_) => (true, false),
        RowBody::Stub { sliced } => (*sliced, true),
        _ => (false, false),
    };
    let set = |flag: u8, on: bool| if on { flag } else { 0 };
    flags |= set(F_SLICED, sliced);
    flags |= set(F_LARGE, stub);
    flags |= set(F_DESTROY_ON_COMPLETE, row.destroy_on_complete == Some(true));
    flags |= set(F_STARTED, row.started_us.is_some());
    flags |= set(F_RUN_AT, row.run_at_ms.is_some());
    flags |= set(F_EXPIRES_AT, row.expires_at_ms.is_some());
    flags |= set(F_FAILURE, row.failure_reason.is_some() && !stub);
    flags |= set(
        F_RESULT,
        matches!(
            &row.body,
            RowBody::Simple {
                result: Some(_),
                ..
            }
        ),
    );
    // A stub carries the fixed part and description only.
    let mut flags2 = 0;
    if !stub {
        flags2 |= set(F2_SINGLETON, row.singleton.is_some());
        flags2 |= set(F2_CRON, row.cron.is_some());
        flags2 |= set(F2_AFTER, !row.after.is_empty());
        flags2 |= on_dependency_bits(row.on_dependency_failure);
        flags2 |= set(F2_WINDOW, row.window.is_some());
        flags2 |= set(F2_KEEP_ON_COMPLETE, row.destroy_on_complete == Some(false));
    }
    let mut w = Writer(Vec::with_capacity(64));
    w.u8(FORMAT_ROW_V2);
    w.u8((row.id % ROWS_PER_PAGE) as u8);
    w.u8(row.state);
    w.u8(flags);
    w.u8(row.priority);
    w.u8(row.final_state);
    w.u8(flags2);
    w.u8(0);
    w.u32(row.kind);
    w.u32(row.max_workers.unwrap_or(0));
    w.u32(row.attempts);
    w.u32(row.expiries);
    w.u64(row.created_ms);
    w.u64(row.completed_us.unwrap_or(0));
    debug_assert_eq!(w.0.len(), FIXED);
    for t in [
        row.started_us,
        row.run_at_ms,
        row.expires_at_ms,
        row.destroyed_ms,
    ]
    .into_iter()
    .flatten()
    {
        w.u64(t);
    }
    w.bytes(row.description.as_bytes());
    if stub {
        return w.0;
    }
    w.json(&row.properties);
    if let Some(f) = &row.failure_reason {
        w.bytes(f.as_bytes());
    }
    if let Some(k) = &row.singleton {
        w.bytes(k.as_bytes());
    }
    if let Some(run) = row.cron {
        w.u64(run.cron);
        w.u64(run.tick_ms);
    }
    if !row.after.is_empty() {
        w.u64s(&row.after);
    }
    if let Some(win) = row.window {
        w.u32(u32::from(win.start_min()) | u32::from(win.end_min()) << 16);
        w.bytes(win.tz_name().as_bytes());
    }
    encode_body(&mut w, &row.body);
    w.0
}

fn encode_body(w: &mut Writer, body: &RowBody) {
    match body {
        RowBody::Simple { args, result } => {
            w.json(args);
            if let Some(r) = result {
                w.bytes(&serde_json::to_vec(r).expect("a JSON value serializes"));
            }
        }
        RowBody::Sliced(s) => {
            w.u32(s.slice_size);
            w.u8(u8::from(s.collect_errors));
            w.u8(s.upload);
            w.u8(u8::from(s.before_done));
            w.u8(if s.categories.is_empty() {
                0
            } else {
                S_CATEGORIES
            });
            for v in [
                s.records_in,
                s.records_rejected,
                s.records_out,
                s.records_written.unwrap_or(u64::MAX),
                s.records_errors,
                s.records_in_failed_slices,
                s.slices_total,
                s.slices_done,
                s.slices_failed,
            ] {
                w.u64(v);
            }
            w.json(&s.collected_errors);
            w.json(&s.failures);
            if !s.categories.is_empty() {
                w.bytes(&serde_json::to_vec(&s.categories).expect("categories serialize"));
            }
        }
        RowBody::Gone | RowBody::Stub { .. } => {}
    }
}

/// What differs between the versions the decoder reads.
struct Version {
    v2: bool,
    /// Multiplier of the stored completed and started times to microseconds.
    time_to_us: u64,
    destroyed_byte: u8,
    flags2_allowed: u8,
}

const V1: Version = Version {
    v2: false,
    time_to_us: 1000,
    destroyed_byte: V1_STATE_DESTROYED,
    flags2_allowed: F2_SINGLETON,
};
const V2: Version = Version {
    v2: true,
    time_to_us: 1,
    destroyed_byte: STATE_DESTROYED,
    flags2_allowed: F2_V2,
};

/// A row's fixed part and times: all a checkpoint's merge and the
/// sweep's filing need of a stored row (`head`), read without its
/// description, JSON fields or body (parsing a stored page's JSON only to
/// carry its records over as bytes was most of a checkpoint's decoding:
/// ARCHITECTURE.md, "Where a checkpoint's cost goes now").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Head {
    pub id: JobId,
    /// `JobState::index()` (0..=7), or `STATE_DESTROYED`.
    pub state: u8,
    pub final_state: u8,
    pub priority: u8,
    flags: u8,
    flags2: u8,
    on_dependency_failure: DependencyFailure,
    pub kind: u32,
    pub max_workers: Option<u32>,
    pub attempts: u32,
    pub expiries: u32,
    pub created_ms: u64,
    pub completed_us: Option<u64>,
    pub started_us: Option<u64>,
    pub run_at_ms: Option<u64>,
    pub expires_at_ms: Option<u64>,
    pub destroyed_ms: Option<u64>,
}

impl Head {
    /// The page holds a stub; the whole row is in `ROW_LARGE`.
    pub fn stub(&self) -> bool {
        self.flags & F_LARGE != 0
    }

    /// A sliced job's row (its slice map is in `SLICE_MAP`).
    pub fn sliced(&self) -> bool {
        self.flags & F_SLICED != 0
    }
}

/// The head (`Head`) of the row in slot `id % 64` of page `page`, format
/// v1 or v2. The head is checked as `decode` checks it; the rest is
/// stepped over by its length prefixes (`skip_tail`), so a cut or
/// overlong record is refused as `decode` refuses it, but the text and
/// JSON inside are not parsed (ARCHITECTURE.md, "Where a checkpoint's
/// cost goes now").
pub fn head(bytes: &[u8], page: u64) -> Result<Head, String> {
    let mut r = Reader::new(bytes, "row");
    let h = read_head(&mut r, page)?;
    skip_tail(&mut r, &h)?;
    Ok(h)
}

/// Steps over the part of a row after its head, field by field as
/// `decode` reads it and with its checks of flags and bytes, to the
/// record's end; text and JSON are stepped over by length, not parsed.
fn skip_tail(r: &mut Reader<'_>, h: &Head) -> Result<(), String> {
    let has = |f: u8| h.flags & f != 0;
    r.bytes()?; // description
    if has(F_LARGE) {
        if has(F_FAILURE) || has(F_RESULT) || h.flags2 != 0 {
            return Err(r.err("a stub with a failure or result flag"));
        }
        return r.end();
    }
    r.bytes()?; // properties
    if has(F_FAILURE) {
        r.bytes()?;
    }
    if h.flags2 & F2_SINGLETON != 0 {
        r.bytes()?;
    }
    if h.flags2 & F2_CRON != 0 {
        r.take(16)?;
    }
    if h.flags2 & F2_AFTER != 0 {
        let n = r.u32()? as usize;
        if n == 0 {
            return Err(r.err("a dependencies flag with no dependencies"));
        }
        r.take(n.checked_mul(8).ok_or_else(|| r.err("count overflows"))?)?;
    }
    if h.flags2 & F2_WINDOW != 0 {
        r.u32()?;
        r.bytes()?;
    }
    if h.destroyed_ms.is_some() {
        if has(F_RESULT) {
            return Err(r.err("a destroyed row with a result flag"));
        }
    } else if !has(F_SLICED) {
        r.bytes()?; // args
        if has(F_RESULT) {
            r.bytes()?;
        }
    } else {
        if has(F_RESULT) {
            return Err(r.err("a sliced row with a result flag"));
        }
        r.u32()?; // slice size
        bool_byte(r)?;
        let upload = r.u8()?;
        if upload > 2 {
            return Err(r.err(format!("upload state {upload}")));
        }
        bool_byte(r)?;
        let sliced_flags = r.u8()?;
        if sliced_flags & !S_CATEGORIES != 0 {
            return Err(r.err(format!("sliced flags {sliced_flags:#04x}")));
        }
        r.take(9 * 8)?; // counts
        r.bytes()?; // collected errors
        r.bytes()?; // failures
        if sliced_flags & S_CATEGORIES != 0 {
            r.bytes()?;
        }
    }
    r.end()
}

fn read_head(r: &mut Reader<'_>, page: u64) -> Result<Head, String> {
    let format = r.u8()?;
    let version = match format {
        FORMAT_ROW_V1 => &V1,
        FORMAT_ROW_V2 => &V2,
        _ => {
            return Err(r.err(format!(
                "format byte {format:#04x}: written by an incompatible version"
            )))
        }
    };
    let slot = r.u8()?;
    if u64::from(slot) >= ROWS_PER_PAGE {
        return Err(r.err(format!("slot {slot} past the page")));
    }
    let id = page
        .checked_mul(ROWS_PER_PAGE)
        .and_then(|b| b.checked_add(u64::from(slot)))
        .ok_or_else(|| r.err(format!("page {page} past the largest id")))?;
    let stored_state = r.u8()?;
    let flags = r.u8()?;
    let priority = r.u8()?;
    let final_state = r.u8()?;
    if stored_state > version.destroyed_byte {
        return Err(r.err(format!("state {stored_state}")));
    }
    if !(1..=100).contains(&priority) {
        return Err(r.err(format!("priority {priority}")));
    }
    let destroyed = stored_state == version.destroyed_byte;
    let state = if destroyed {
        STATE_DESTROYED
    } else {
        stored_state
    };
    if (destroyed && final_state >= version.destroyed_byte) || (!destroyed && final_state != 0) {
        return Err(r.err(format!("final state {final_state} in state {stored_state}")));
    }
    let flags2 = r.u8()?;
    if flags2 & !version.flags2_allowed != 0 || r.u8()? != 0 {
        return Err(r.err("reserved bytes are not zero"));
    }
    let on_dependency_failure = match (flags2 & F2_ON_DEP_MASK) >> F2_ON_DEP_SHIFT {
        0 => DependencyFailure::Fail,
        1 => DependencyFailure::Abort,
        2 => DependencyFailure::Run,
        b => return Err(r.err(format!("dependency-failure policy {b}"))),
    };
    let kind = r.u32()?;
    let max_workers = Some(r.u32()?).filter(|&m| m > 0);
    let attempts = r.u32()?;
    let expiries = r.u32()?;
    if !version.v2 && expiries != 0 {
        return Err(r.err("reserved bytes are not zero"));
    }
    let created_ms = r.u64()?;
    let to_us = |t: u64| {
        t.checked_mul(version.time_to_us)
            .ok_or_else(|| format!("row: time {t} ms is past the microsecond range"))
    };
    let completed_us = match r.u64()? {
        0 => None,
        t => Some(to_us(t)?),
    };
    let has = |f: u8| flags & f != 0;
    let mut opt = |on: bool| -> Result<Option<u64>, String> {
        if on {
            r.u64().map(Some)
        } else {
            Ok(None)
        }
    };
    let started_us = opt(has(F_STARTED))?.map(to_us).transpose()?;
    let run_at_ms = opt(has(F_RUN_AT))?;
    let expires_at_ms = opt(has(F_EXPIRES_AT))?;
    let destroyed_ms = opt(destroyed)?;
    Ok(Head {
        id,
        state,
        final_state,
        priority,
        flags,
        flags2,
        on_dependency_failure,
        kind,
        max_workers,
        attempts,
        expiries,
        created_ms,
        completed_us,
        started_us,
        run_at_ms,
        expires_at_ms,
        destroyed_ms,
    })
}

/// Decodes the row in slot `id % 64` of its page (format v1 or v2); `id`
/// is the job the caller expects there (the page gives the high bits, the
/// row its slot).
pub fn decode(bytes: &[u8], page: u64) -> Result<Row, String> {
    let mut r = Reader::new(bytes, "row");
    let h = read_head(&mut r, page)?;
    let (flags, flags2) = (h.flags, h.flags2);
    let has = |f: u8| flags & f != 0;
    let destroyed = h.destroyed_ms.is_some();
    let description = r.string()?;
    let sliced = has(F_SLICED);
    let mut row = Row {
        id: h.id,
        state: h.state,
        final_state: h.final_state,
        priority: h.priority,
        destroy_on_complete: if has(F_DESTROY_ON_COMPLETE) {
            Some(true)
        } else if flags2 & F2_KEEP_ON_COMPLETE != 0 {
            Some(false)
        } else {
            None
        },
        kind: h.kind,
        max_workers: h.max_workers,
        attempts: h.attempts,
        expiries: h.expiries,
        created_ms: h.created_ms,
        completed_us: h.completed_us,
        started_us: h.started_us,
        run_at_ms: h.run_at_ms,
        expires_at_ms: h.expires_at_ms,
        destroyed_ms: h.destroyed_ms,
        description,
        properties: Value::Null,
        failure_reason: None,
        singleton: None,
        cron: None,
        after: Vec::new(),
        on_dependency_failure: h.on_dependency_failure,
        window: None,
        body: RowBody::Stub { sliced },
    };
    if has(F_LARGE) {
        if has(F_FAILURE) || has(F_RESULT) || flags2 != 0 {
            return Err(r.err("a stub with a failure or result flag"));
        }
        r.end()?;
        return Ok(row);
    }
    row.properties = r.json()?;
    if has(F_FAILURE) {
        row.failure_reason = Some(r.string()?);
    }
    if flags2 & F2_SINGLETON != 0 {
        row.singleton = Some(r.string()?);
    }
    if flags2 & F2_CRON != 0 {
        row.cron = Some(CronRun {
            cron: r.u64()?,
            tick_ms: r.u64()?,
        });
    }
    if flags2 & F2_AFTER != 0 {
        row.after = r.u64s()?;
        if row.after.is_empty() {
            return Err(r.err("a dependencies flag with no dependencies"));
        }
    }
    if flags2 & F2_WINDOW != 0 {
        let span = r.u32()?;
        let tz = r.string()?;
        let window = ProcessingWindow::new(span as u16, (span >> 16) as u16, Some(&tz))
            .map_err(|e| r.err(format!("window: {e}")))?;
        row.window = Some(window);
    }
    row.body = decode_body(&mut r, flags, destroyed, sliced)?;
    r.end()?;
    Ok(row)
}

fn decode_body(
    r: &mut Reader<'_>,
    flags: u8,
    destroyed: bool,
    sliced: bool,
) -> Result<RowBody, String> {
    let has_result = flags & F_RESULT != 0;
    if destroyed {
        if has_result {
            return Err(r.err("a destroyed row with a result flag"));
        }
        return Ok(RowBody::Gone);
    }
    if !sliced {
        let args = r.json()?;
        let result = if has_result {
            let b = r.bytes()?;
            Some(serde_json::from_slice(b).map_err(|e| r.err(format!("bad result JSON ({e})")))?)
        } else {
            None
        };
        return Ok(RowBody::Simple { args, result });
    }
    if has_result {
        return Err(r.err("a sliced row with a result flag"));
    }
    let slice_size = r.u32()?;
    let collect_errors = bool_byte(r)?;
    let upload = r.u8()?;
    if upload > 2 {
        return Err(r.err(format!("upload state {upload}")));
    }
    let before_done = bool_byte(r)?;
    let sliced_flags = r.u8()?;
    if sliced_flags & !S_CATEGORIES != 0 {
        return Err(r.err(format!("sliced flags {sliced_flags:#04x}")));
    }
    let mut n = [0u64; 9];
    for v in &mut n {
        *v = r.u64()?;
    }
    Ok(RowBody::Sliced(Box::new(SlicedRow {
        slice_size,
        collect_errors,
        upload,
        before_done,
        records_in: n[0],
        records_rejected: n[1],
        records_out: n[2],
        records_written: Some(n[3]).filter(|&w| w != u64::MAX),
        records_errors: n[4],
        records_in_failed_slices: n[5],
        slices_total: n[6],
        slices_done: n[7],
        slices_failed: n[8],
        collected_errors: r.json()?,
        failures: r.json()?,
        categories: if sliced_flags & S_CATEGORIES != 0 {
            let b = r.bytes()?;
            let c: Vec<(String, u64)> =
                serde_json::from_slice(b).map_err(|e| r.err(format!("bad categories ({e})")))?;
            if c.is_empty() {
                return Err(r.err("a categories flag with no categories"));
            }
            c
        } else {
            Vec::new()
        },
    })))
}

fn bool_byte(r: &mut Reader<'_>) -> Result<bool, String> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(r.err(format!("flag byte {b}"))),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::json;

    /// A no-op simple job: the smallest row there is.
    pub fn noop(id: JobId) -> Row {
        Row {
            id,
            state: 4,
            final_state: 0,
            priority: 50,
            destroy_on_complete: None,
            kind: 3,
            max_workers: None,
            attempts: 1,
            expiries: 0,
            created_ms: 1_795_000_000_000,
            completed_us: Some(1_795_000_000_007_000),
            started_us: None,
            run_at_ms: None,
            expires_at_ms: None,
            destroyed_ms: None,
            description: String::new(),
            properties: Value::Null,
            failure_reason: None,
            singleton: None,
            cron: None,
            after: Vec::new(),
            on_dependency_failure: DependencyFailure::Fail,
            window: None,
            body: RowBody::Simple {
                args: Value::Null,
                result: None,
            },
        }
    }

    /// A row with every optional part set.
    pub fn full_sliced(id: JobId) -> Row {
        Row {
            state: 5,
            priority: 7,
            destroy_on_complete: Some(true),
            max_workers: Some(4),
            expiries: 2,
            started_us: Some(1_795_000_000_001_234),
            run_at_ms: Some(1_795_000_000_000),
            expires_at_ms: Some(1_795_900_000_000),
            description: "customers ✓".into(),
            properties: json!({"team": "billing"}),
            failure_reason: Some("1 slice failed".into()),
            singleton: Some("nightly".into()),
            cron: Some(CronRun {
                cron: 3,
                tick_ms: 1_795_000_000_000,
            }),
            after: vec![5, 6],
            on_dependency_failure: DependencyFailure::Run,
            window: Some(ProcessingWindow::parse("22:00-06:00", Some("Europe/Berlin")).unwrap()),
            body: RowBody::Sliced(Box::new(SlicedRow {
                slice_size: 1000,
                collect_errors: true,
                upload: 1,
                before_done: true,
                records_in: 2500,
                records_rejected: 3,
                records_out: 2000,
                records_written: Some(1999),
                records_errors: 2,
                records_in_failed_slices: 498,
                slices_total: 3,
                slices_done: 2,
                slices_failed: 1,
                collected_errors: json!([{"message": "bad", "count": 2, "samples": []}]),
                failures: json!([[2, ["boom", null]]]),
                categories: vec![("review".into(), 12), ("valid".into(), 1987)],
            })),
            ..noop(id)
        }
    }

    #[test]
    fn a_no_op_simple_row_is_52_bytes() {
        assert_eq!(encode(&noop(5)).len(), 52);
    }

    #[test]
    fn rows_round_trip() {
        let mut with_result = noop(64 * 9 + 63);
        with_result.body = RowBody::Simple {
            args: json!({"n": 1}),
            result: Some(json!(null)),
        };
        let waiting = Row {
            state: JobState::Waiting.index() as u8,
            completed_us: None,
            after: vec![1],
            on_dependency_failure: DependencyFailure::Abort,
            window: None,
            ..noop(2)
        };
        let destroyed_waiting = waiting.clone().into_destroyed(1_795_000_000_100);
        assert_eq!(destroyed_waiting.final_state, 7);
        for row in [
            noop(1),
            waiting,
            destroyed_waiting,
            full_sliced(130),
            with_result,
            full_sliced(7).into_destroyed(1_795_000_000_100),
            full_sliced(8).stub(),
        ] {
            let (page, _) = super::super::keys::page_of(row.id);
            assert_eq!(decode(&encode(&row), page).as_ref(), Ok(&row));
        }
    }

    #[test]
    fn v1_bytes_decode_with_microsecond_times_and_7_as_destroyed() {
        let mut v1 = encode(&Row {
            completed_us: Some(1_795_000_000_007),
            ..noop(1)
        });
        v1[0] = FORMAT_ROW_V1;
        let row = decode(&v1, 0).unwrap();
        assert_eq!(row.completed_us, noop(1).completed_us);
        // In v2, 7 is `waiting`; in v1 it was the destroyed byte.
        let mut waiting = encode(&Row {
            state: 7,
            completed_us: None,
            ..noop(1)
        });
        assert_eq!(
            decode(&waiting, 0).unwrap().job_state(),
            Some(JobState::Waiting)
        );
        waiting[0] = FORMAT_ROW_V1;
        assert!(
            decode(&waiting, 0).is_err(),
            "v1 state 7 needs destroyed_ms"
        );
        // v1 had no cron, dependencies or expiries: those bits are refused.
        let mut v2 = encode(&full_sliced(1));
        v2[0] = FORMAT_ROW_V1;
        assert!(decode(&v2, 0).is_err());
    }

    #[test]
    fn a_long_row_leaves_a_stub_in_its_page() {
        let mut row = full_sliced(3);
        row.description = "é".repeat(3000);
        let (inline, large) = encode_for_page(&row);
        let stub = decode(&inline, 0).unwrap();
        assert_eq!(stub.body, RowBody::Stub { sliced: true });
        assert!(stub.description.len() <= STUB_DESCRIPTION_BYTES);
        assert!(row.description.starts_with(&stub.description));
        let h = head(&inline, 0).unwrap();
        assert!(h.stub() && h.sliced() && h.id == 3);
        assert_eq!(decode(&large.unwrap(), 0).unwrap(), row);
        assert!(!head(&encode(&row), 0).unwrap().stub());
    }

    #[test]
    fn every_cut_or_flipped_byte_is_an_error_or_another_valid_row_never_a_panic() {
        let bytes = encode(&full_sliced(70));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], 1).is_err(), "cut at {cut}");
            assert!(head(&bytes[..cut], 1).is_err(), "head, cut at {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                // A row decode reads has a head; head refuses only what
                // decode refuses (it does not parse text or JSON).
                if decode(&b, 1).is_ok() {
                    assert!(head(&b, 1).is_ok(), "byte {i} bit {bit}");
                }
            }
        }
    }
}
