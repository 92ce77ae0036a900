//! The messages of `booster.worker.v1.Worker`, as `prost` derives (no
//! `.proto` file, no `protoc`): ARCHITECTURE.md lays out each with its
//! tags. A field is only ever added with a new tag; a tag is never reused.

use booster_runtime::{PackedSlice, SliceRecords};

/// `Hello`: a worker process joins.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// The worker's `booster` version; the node refuses another.
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub host: String,
    #[prost(uint32, tag = "3")]
    pub pid: u32,
    /// The kinds it runs.
    #[prost(string, repeated, tag = "4")]
    pub kinds: Vec<String>,
    /// Its worker threads.
    #[prost(uint32, tag = "5")]
    pub threads: u32,
    /// Jobs of a kind here run only with one of these property values.
    #[prost(message, repeated, tag = "6")]
    pub allows: Vec<PropertyAllow>,
    /// The wire protocol it speaks (`crate::PROTOCOL`); 0: an older
    /// worker, protocol 1.
    #[prost(uint32, tag = "7")]
    pub protocol: u32,
    /// Its handlers read their jobs' dependencies through `Output`: the
    /// node may lease it jobs with `after`. An older worker sends none.
    #[prost(bool, tag = "8")]
    pub reads_after: bool,
}

/// Jobs of `kind` are for this worker only when their property
/// `property` is one of `values` (`exec`: `cmd`, its `--exec-allow`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertyAllow {
    #[prost(string, tag = "1")]
    pub kind: String,
    #[prost(string, tag = "2")]
    pub property: String,
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub version: String,
    /// Names the process in every later call.
    #[prost(uint64, tag = "2")]
    pub worker_id: u64,
    #[prost(uint64, tag = "3")]
    pub lease_timeout_ms: u64,
    /// How often to heartbeat the leases held.
    #[prost(uint64, tag = "4")]
    pub heartbeat_interval_ms: u64,
    /// The largest message the node takes or sends.
    #[prost(uint64, tag = "5")]
    pub max_message_bytes: u64,
    /// 16 random bytes: every later call carries them with `worker_id`.
    #[prost(bytes = "vec", tag = "6")]
    pub session: Vec<u8>,
    /// The wire protocol the node speaks; 0: an older node, protocol 1.
    #[prost(uint32, tag = "7")]
    pub protocol: u32,
}

/// `Lease`: the next work for one thread (a long poll of about 1 s).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRequest {
    #[prost(uint64, tag = "1")]
    pub worker_id: u64,
    #[prost(uint32, tag = "2")]
    pub thread: u32,
    /// `HelloReply::session`.
    #[prost(bytes = "vec", tag = "3")]
    pub session: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseReply {
    /// None: nothing came within the poll.
    #[prost(message, optional, tag = "1")]
    pub task: Option<Task>,
    /// Nothing is queued or leased to anyone on the node.
    #[prost(bool, tag = "2")]
    pub idle: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Task {
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// The node's deadline, ms since the Unix epoch on the node's clock.
    #[prost(uint64, tag = "2")]
    pub deadline_ms: u64,
    #[prost(oneof = "Work", tags = "3, 4, 5, 6")]
    pub work: Option<Work>,
    /// The lease's own bound from hand-out, ms (its kind's lease timeout,
    /// which heartbeats do not extend); 0: none. An older node sends none.
    #[prost(uint64, tag = "7")]
    pub timeout_ms: u64,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Work {
    #[prost(message, tag = "3")]
    Simple(SimpleBatch),
    #[prost(message, tag = "4")]
    Slice(SliceWork),
    #[prost(message, tag = "5")]
    Before(HookWork),
    #[prost(message, tag = "6")]
    After(HookWork),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SimpleBatch {
    #[prost(message, repeated, tag = "1")]
    pub jobs: Vec<SimpleJob>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SimpleJob {
    #[prost(uint64, tag = "1")]
    pub job: u64,
    #[prost(string, tag = "2")]
    pub kind: String,
    /// JSON.
    #[prost(string, tag = "3")]
    pub args_json: String,
    /// JSON.
    #[prost(string, tag = "4")]
    pub properties_json: String,
    /// The jobs it ran after, whose output it reads through `Output`.
    #[prost(uint64, repeated, tag = "5")]
    pub after: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SliceWork {
    #[prost(uint64, tag = "1")]
    pub job: u64,
    #[prost(uint64, tag = "2")]
    pub slice: u64,
    #[prost(string, tag = "3")]
    pub kind: String,
    #[prost(string, tag = "4")]
    pub properties_json: String,
    #[prost(string, repeated, tag = "5")]
    pub categories: Vec<String>,
    // Tags 6 (protocol 1: the records as `repeated bytes`) and 7
    // (protocol 2: a `RecordBlob`) are retired.
    /// The input records, decrypted by the node and still compressed as
    /// the store keeps them (TLS carries them); the worker decompresses.
    #[prost(message, optional, tag = "9")]
    pub records: Option<PackedRecords>,
    /// The jobs it ran after, whose output it reads through `Output`.
    #[prost(uint64, repeated, tag = "8")]
    pub after: Vec<u64>,
}

/// Records as one blob (protocol 2): `data` holds them back to back,
/// `lengths` says each one's length, in order. One allocation a slice
/// on the wire, none to decode `data` (a view of the received buffer).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecordBlob {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: prost::bytes::Bytes,
    #[prost(uint32, repeated, tag = "2")]
    pub lengths: Vec<u32>,
}

impl RecordBlob {
    /// `records` back to back; Err (why, naming the record and its size)
    /// when one is too large for its length to be said (4 GiB or more).
    pub fn of<R: AsRef<[u8]>>(records: &[R]) -> Result<RecordBlob, String> {
        let mut lengths = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            lengths.push(length_of(i, r.as_ref().len())?);
        }
        let bytes = records.iter().map(|r| r.as_ref().len()).sum();
        let mut data = Vec::with_capacity(bytes);
        for r in records {
            data.extend_from_slice(r.as_ref());
        }
        Ok(RecordBlob {
            data: data.into(),
            lengths,
        })
    }

    /// The records, each as the `Vec` the runtime's API takes; Err (why)
    /// when the lengths do not cut the blob exactly: one points past its
    /// end, their sum overflows, or bytes are left after the last.
    pub fn records(&self) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::with_capacity(self.lengths.len());
        let mut at = 0usize;
        for (i, &len) in self.lengths.iter().enumerate() {
            let end = at
                .checked_add(len as usize)
                .filter(|&end| end <= self.data.len())
                .ok_or_else(|| {
                    format!(
                        "record {i} of {} bytes at byte {at} passes the end of its blob of {} bytes",
                        len,
                        self.data.len()
                    )
                })?;
            out.push(self.data[at..end].to_vec());
            at = end;
        }
        if at != self.data.len() {
            return Err(format!(
                "the lengths of {} records cover {at} bytes of a blob of {}",
                self.lengths.len(),
                self.data.len()
            ));
        }
        Ok(out)
    }

    /// How many records it holds.
    pub fn count(&self) -> usize {
        self.lengths.len()
    }
}

/// Record `i`'s length as a blob says it: Err past `u32::MAX` bytes.
fn length_of(i: usize, len: usize) -> Result<u32, String> {
    u32::try_from(len).map_err(|_| {
        format!("record {i} is {len} bytes: a record blob holds records of less than 4 GiB")
    })
}

/// The records of a message's blob; none is malformed, not "no records"
/// (a message of protocol 1, or one whose blob was lost, would otherwise
/// pass as an empty slice): an empty one is `Some(RecordBlob::default())`.
pub fn records_of(blob: Option<&RecordBlob>) -> Result<Vec<Vec<u8>>, String> {
    blob.ok_or_else(|| "it carries no records blob (an empty one is sent as such)".to_string())?
        .records()
}

/// A slice's records packed as a frame of the store holds them (protocol
/// 3): `body` is the records each as `u32` length (little-endian) ++
/// bytes, zstd-compressed when `zstd`, `raw_len` bytes once decompressed,
/// `count` records. zstd runs on the worker's cores, not the node's, and
/// the wire carries a fifth of the bytes (ARCHITECTURE.md, "Wire protocol
/// 3").
#[derive(Clone, PartialEq, prost::Message)]
pub struct PackedRecords {
    #[prost(bytes = "bytes", tag = "1")]
    pub body: prost::bytes::Bytes,
    #[prost(uint32, tag = "2")]
    pub raw_len: u32,
    #[prost(uint32, tag = "3")]
    pub count: u32,
    #[prost(bool, tag = "4")]
    pub zstd: bool,
}

impl From<PackedSlice> for PackedRecords {
    fn from(p: PackedSlice) -> PackedRecords {
        PackedRecords {
            raw_len: p.raw_len(),
            count: p.record_count(),
            zstd: p.is_zstd(),
            body: p.into_body().into(),
        }
    }
}

impl PackedRecords {
    /// The slice, checked (`PackedSlice::checked`: it decompresses to at
    /// most `max_raw_bytes`, exactly `raw_len`, holding exactly `count`
    /// records); Err says why not.
    pub fn checked(&self, max_raw_bytes: usize) -> Result<PackedSlice, String> {
        PackedSlice::checked(
            self.body.to_vec(),
            self.raw_len,
            self.count,
            self.zstd,
            max_raw_bytes,
        )
        .map_err(|e| e.0)
    }
}

/// The records of a slice the node sent (read from its store, which
/// authenticated them), decompressed once, at most what one slice of the
/// store holds (`PackedSlice::unpack` caps it at a frame's payload); none
/// is malformed, as for `packed_of`. Err says why.
///
/// Not bounded by the node's message limit (twice its `max_slice_bytes`
/// and 1 MiB): a record alone in its slice may pass `max_slice_bytes`, its
/// slice travels compressed and fits a message, and the node's own threads
/// run it, so a worker must. Nor by a limit of the worker's own: the node
/// chooses how large a message this worker takes (its `Hello`), so such a
/// bound would guard nothing against it, and one under the node's slices
/// would fail work the node's threads run.
pub fn received_records(packed: Option<PackedRecords>) -> Result<SliceRecords, String> {
    let p = packed.ok_or_else(no_records)?;
    PackedSlice::received(Vec::from(p.body), p.raw_len, p.count, p.zstd)
        .unpack(usize::MAX)
        .map_err(|e| e.0)
}

fn no_records() -> String {
    "it carries no packed records (an empty slice is sent as such)".to_string()
}

/// The packed records of a message; none is malformed, not "no records"
/// (a message of an older protocol, or one whose records were lost, would
/// otherwise pass as an empty slice).
pub fn packed_of(
    packed: Option<&PackedRecords>,
    max_raw_bytes: usize,
) -> Result<PackedSlice, String> {
    packed.ok_or_else(no_records)?.checked(max_raw_bytes)
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HookWork {
    #[prost(uint64, tag = "1")]
    pub job: u64,
    #[prost(string, tag = "2")]
    pub kind: String,
    #[prost(string, tag = "3")]
    pub properties_json: String,
    #[prost(string, repeated, tag = "4")]
    pub categories: Vec<String>,
    /// The jobs it ran after, whose output it reads through `Output`.
    #[prost(uint64, repeated, tag = "5")]
    pub after: Vec<u64>,
}

/// `Heartbeat`: the leases a process still works on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatRequest {
    #[prost(uint64, tag = "1")]
    pub worker_id: u64,
    #[prost(uint64, repeated, tag = "2")]
    pub epochs: Vec<u64>,
    /// `HelloReply::session`.
    #[prost(bytes = "vec", tag = "3")]
    pub session: Vec<u8>,
    /// Leases asked for ahead that a thread busy with another task has
    /// not started: handed back, their work queued again at once, no
    /// expiry counted (`Runtime::remote_release`). A node that predates
    /// the field lets them expire instead.
    #[prost(uint64, repeated, tag = "4")]
    pub released: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatReply {
    /// Epochs the node no longer holds for this worker: drop their work.
    #[prost(uint64, repeated, tag = "1")]
    pub ended: Vec<u64>,
}

/// `Commit`: what a thread made of its lease.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommitRequest {
    #[prost(uint64, tag = "1")]
    pub worker_id: u64,
    #[prost(uint64, tag = "2")]
    pub epoch: u64,
    #[prost(oneof = "Outcome", tags = "3, 4, 5")]
    pub outcome: Option<Outcome>,
    /// `HelloReply::session`.
    #[prost(bytes = "vec", tag = "6")]
    pub session: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Outcome {
    #[prost(message, tag = "3")]
    Simple(SimpleResults),
    #[prost(message, tag = "4")]
    Slice(SliceOutput),
    #[prost(message, tag = "5")]
    Hook(HookResult),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SimpleResults {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<SimpleResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SimpleResult {
    #[prost(uint64, tag = "1")]
    pub job: u64,
    #[prost(uint64, tag = "2")]
    pub started_us: u64,
    /// The result as JSON ("" for none); ignored when `error` is set.
    #[prost(string, tag = "3")]
    pub result_json: String,
    #[prost(string, optional, tag = "4")]
    pub error: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SliceOutput {
    #[prost(uint64, tag = "1")]
    pub job: u64,
    #[prost(uint64, tag = "2")]
    pub slice: u64,
    // Tags 3 (main) and 4 (categories) of protocol 1 and 7 and 8 (the
    // same as `RecordBlob`s) of protocol 2 are retired.
    /// Packed by the worker; the node checks it and stores it as it is.
    #[prost(message, optional, tag = "9")]
    pub main: Option<PackedRecords>,
    /// The job's category n at index n.
    #[prost(message, repeated, tag = "10")]
    pub categories: Vec<PackedRecords>,
    #[prost(message, repeated, tag = "5")]
    pub record_errors: Vec<RecordError>,
    /// Set: the whole slice failed, with this message (the rest is empty).
    #[prost(string, optional, tag = "6")]
    pub failed: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RecordError {
    /// The record's index in the slice.
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HookResult {
    #[prost(uint64, tag = "1")]
    pub job: u64,
    /// true: `before_batch`; false: `after_batch`.
    #[prost(bool, tag = "2")]
    pub before: bool,
    #[prost(string, optional, tag = "3")]
    pub error: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CommitReply {
    /// Durable. false: fenced, nothing changed (`reason` says why). true
    /// with a `reason`: durable, but the node failed some of a simple
    /// batch's jobs in place of their results (over its cap).
    #[prost(bool, tag = "1")]
    pub accepted: bool,
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// `Decline`: the worker's handler refuses work it was leased
/// (`RecordHandler::refuses` / `SimpleHandler::refuses`). The node hands
/// the lease back (no expiry counted) and leases those jobs to this
/// process no more.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeclineRequest {
    #[prost(uint64, tag = "1")]
    pub worker_id: u64,
    #[prost(uint64, tag = "2")]
    pub epoch: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub session: Vec<u8>,
    /// The jobs of the lease the handler refuses, with its reasons.
    #[prost(message, repeated, tag = "4")]
    pub jobs: Vec<DeclinedJob>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeclinedJob {
    #[prost(uint64, tag = "1")]
    pub job: u64,
    #[prost(string, tag = "2")]
    pub reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeclineReply {}

/// `Output`: records of a dependency's output (one category), from a
/// cursor on, for a handler of a lease this process holds whose job ran
/// after it (`JobContext::after_output`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutputRequest {
    #[prost(uint64, tag = "1")]
    pub worker_id: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub session: Vec<u8>,
    /// The lease whose handler reads.
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
    /// The dependency.
    #[prost(uint64, tag = "4")]
    pub job: u64,
    /// `main`, `errors`, `input` or one of the job's own categories.
    #[prost(string, tag = "5")]
    pub category: String,
    /// The cursor, as the last reply sent it (zeros at first): the part's
    /// slice number and rank, records of it already read, and the
    /// fingerprint of the parts before it.
    #[prost(uint64, tag = "6")]
    pub part: u64,
    #[prost(uint32, tag = "7")]
    pub record: u32,
    #[prost(uint32, tag = "8")]
    pub rank: u32,
    #[prost(uint64, tag = "9")]
    pub before: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OutputReply {
    #[prost(message, optional, tag = "1")]
    pub records: Option<RecordBlob>,
    /// Nothing is left after these records.
    #[prost(bool, tag = "2")]
    pub done: bool,
    /// Where the rest resumes (unless `done`).
    #[prost(uint64, tag = "3")]
    pub part: u64,
    #[prost(uint32, tag = "4")]
    pub record: u32,
    #[prost(uint32, tag = "5")]
    pub rank: u32,
    #[prost(uint64, tag = "6")]
    pub before: u64,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn blob(data: &[u8], lengths: &[u32]) -> RecordBlob {
        RecordBlob {
            data: prost::bytes::Bytes::copy_from_slice(data),
            lengths: lengths.to_vec(),
        }
    }

    #[test]
    fn records_come_out_of_a_blob_as_they_went_in_with_empty_ones_in_place() {
        let records: Vec<&[u8]> = vec![b"a", b"", b"ccc", b""];
        let sent = RecordBlob::of(&records).unwrap();
        let got = RecordBlob::decode(sent.encode_to_vec().as_slice()).unwrap();
        assert_eq!(got.count(), 4);
        assert_eq!(got.records().unwrap(), records);
        let empty = RecordBlob::default();
        assert_eq!(records_of(Some(&empty)).unwrap(), Vec::<Vec<u8>>::new());
        let why = records_of(None).unwrap_err();
        assert!(
            why.contains("no records blob"),
            "a missing blob is not an empty one: {why}"
        );
    }

    #[test]
    fn a_record_of_4_gib_or_more_is_refused_naming_its_size_not_truncated() {
        assert_eq!(length_of(0, u32::MAX as usize), Ok(u32::MAX));
        let why = length_of(3, u32::MAX as usize + 1).unwrap_err();
        assert!(why.contains("record 3 is 4294967296 bytes"), "{why}");
    }

    #[test]
    fn lengths_that_do_not_cut_the_blob_exactly_are_refused() {
        let past = blob(b"abcdef", &[2, 5]);
        let why = past.records().unwrap_err();
        assert!(why.contains("record 1 of 5 bytes at byte 2"), "{why}");
        let huge = blob(b"abcdef", &[3, u32::MAX, u32::MAX]);
        assert!(huge.records().unwrap_err().contains("record 1"));
        let short = blob(b"abcdef", &[2, 2]);
        let why = short.records().unwrap_err();
        assert!(why.contains("cover 4 bytes of a blob of 6"), "{why}");
        let none = blob(b"ab", &[]);
        assert!(none.records().is_err(), "bytes but no records");
    }
}
