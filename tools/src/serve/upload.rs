//! `PUT /api/jobs/{id}/input`: the request body streams into the job's
//! `Uploader`, never held whole. Records are cut by the CLI's own parsers
//! (`crate::formats`: lines, CSV with its header, JSON Lines), so an upload
//! over HTTP stores exactly what `booster submit` would; or, with
//! `?format=items`, the client already cut them with every input option
//! (`crate::formats::ItemsReader`: what `booster --server submit` sends)
//! and each item is stored as it is.
//!
//! Three stages with small bounded channels between them, so a slow store
//! slows the client rather than filling memory: this task pumps body chunks;
//! a blocking thread opens the body as the input (the parsers read
//! `std::io::Read`); the upload pump (`crate::pump`, the one `run` and
//! `submit` use) cuts the records and pushes them into the uploader.

use std::io::{self, BufReader, Read};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::Json;
use booster_runtime::{JobStatus, Uploader};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::api::JobIdParam;
use super::error::{ApiError, ApiResult};
use super::view::{job_view, JobView};
use super::AppState;
use crate::formats::encoding::parse_label;
use crate::formats::{
    parse_delimiter, props, source_from_reader_with, ColumnRules, FixedLayout, Format, ItemsSource,
    ReadOptions, ReadProgress, RecordSource, ITEMS_FORMAT,
};
use crate::pump::{pump, PumpError};

/// The longest line an upload may carry: one line cannot take the server's memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

pub fn parse_format(name: &str) -> ApiResult<Format> {
    Format::from_name(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown format {name:?}: use lines, csv, jsonl or json"
        ))
    })
}

/// The format the job was created with (its `format` property), else lines.
pub fn job_format(job: &JobStatus) -> Format {
    job.properties
        .get(props::FORMAT)
        .and_then(|f| f.as_str())
        .and_then(Format::from_name)
        .unwrap_or(Format::Lines)
}

/// `PUT .../input?format=...`: the reader that cuts the body, and the input
/// options a local `submit` takes (a fixed-width layout comes from the
/// job's `fixed_layout` property). A zip or a spreadsheet is read where
/// the file is: `booster --server submit` does that and sends items.
#[derive(Deserialize, Default)]
pub struct UploadQuery {
    pub format: Option<String>,
    /// One character, or `\t`.
    pub delimiter: Option<String>,
    /// An encoding label (`latin1`, `utf-16le`, ...).
    pub encoding: Option<String>,
    /// Comma-separated, as `--columns`, `--required-columns`, `--allowed-columns`.
    pub columns: Option<String>,
    pub required_columns: Option<String>,
    pub allowed_columns: Option<String>,
    pub skip_unknown: Option<bool>,
}

impl UploadQuery {
    /// The read options of a body in `format` for `job`.
    fn read_options(&self, format: Format, job: &JobStatus) -> ApiResult<ReadOptions> {
        let list = |v: &Option<String>| -> Option<Vec<String>> {
            v.as_deref()
                .map(|t| t.split(',').map(|c| c.trim().to_string()).collect())
        };
        let mut options = ReadOptions::new(format, crate::formats::DEFAULT_MAX_RECORD_BYTES);
        if let Some(d) = &self.delimiter {
            options.delimiter = Some(
                parse_delimiter(d).map_err(|e| ApiError::bad_request(format!("delimiter: {e}")))?,
            );
        }
        if let Some(label) = &self.encoding {
            options.encoding = Some(
                parse_label(label).map_err(|e| ApiError::bad_request(format!("encoding: {e}")))?,
            );
        }
        options.columns = ColumnRules {
            rename: list(&self.columns),
            required: list(&self.required_columns).unwrap_or_default(),
            allowed: list(&self.allowed_columns),
            skip_unknown: self.skip_unknown.unwrap_or(false),
            output: None,
        };
        if let Some(layout) = FixedLayout::from_properties(&job.properties) {
            options.layout = Some(layout.map_err(ApiError::bad_request)?);
        }
        Ok(options)
    }
}

/// What the body of an upload holds.
enum BodyFormat {
    /// The input itself, cut by the format's reader with these options.
    Text(Box<ReadOptions>),
    /// Items the client's readers cut (`crate::formats::ItemsReader`).
    Items,
}

pub async fn put_input(
    State(app): State<AppState>,
    JobIdParam(id): JobIdParam,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<Json<JobView>> {
    let Query(query) = query?;
    let job = app.runtime.job(id).await?;
    let format = match query.format.as_deref() {
        Some(ITEMS_FORMAT) => BodyFormat::Items,
        Some(f) => BodyFormat::Text(Box::new(query.read_options(parse_format(f)?, &job)?)),
        None => BodyFormat::Text(Box::new(query.read_options(job_format(&job), &job)?)),
    };
    let expected_header = job
        .properties
        .get(props::CSV_HEADER)
        .and_then(|h| h.as_str())
        .map(str::to_string);
    let mut uploader = app.runtime.upload(id).await?;
    match stream_records(&mut uploader, format, expected_header, body).await {
        Ok(()) => Ok(Json(job_view(uploader.finish().await?))),
        Err(PumpError::Store(e)) => {
            // The store's own error is the answer (507 disk full, 503
            // poisoned). Marking the job failed may be refused as well;
            // then the next open of the store does it (an upload that never
            // finished).
            let _ = uploader
                .fail(format!("upload of job {id} failed: {e}"))
                .await;
            Err(e.into())
        }
        Err(reason) => {
            let message = format!("upload of job {id} failed: {reason}");
            uploader.fail(message.clone()).await?;
            Err(ApiError::bad_request(format!(
                "{message}; the job is marked failed"
            )))
        }
    }
}

async fn stream_records(
    uploader: &mut Uploader,
    format: BodyFormat,
    expected_header: Option<String>,
    body: Body,
) -> Result<(), PumpError> {
    let (chunk_tx, chunk_rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let open = tokio::task::spawn_blocking(move || open_body(chunk_rx, format, expected_header));
    let chunks = async move {
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| io::Error::other(format!("the body broke off: {e}")));
            if chunk.is_err() {
                let _ = chunk_tx.send(chunk).await;
                return;
            }
            if chunk_tx.send(chunk).await.is_err() {
                // The upload stopped (a full disk, a bad header): the rest
                // of the body is read and dropped, so the client, still
                // sending, gets the answer saying why instead of a
                // connection reset.
                while let Some(Ok(_)) = chunks.next().await {}
                return;
            }
        }
    };
    let push = async move {
        let records = match open.await {
            Ok(Ok(records)) => records,
            Ok(Err(e)) => return Err(PumpError::Read(e)),
            Err(_) => {
                return Err(PumpError::ReaderDied(
                    "the upload parser stopped before the end of the input".into(),
                ))
            }
        };
        pump(uploader, records, std::future::pending(), || {}).await
    };
    let ((), pushed) = tokio::join!(chunks, push);
    pushed
}

/// The blocking stage that opens the body as the job's input: the format's
/// reader (a CSV header read, and checked against the job's), or the
/// client's items.
fn open_body(
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    format: BodyFormat,
    expected_header: Option<String>,
) -> io::Result<Box<dyn RecordSource>> {
    let reader = BufReader::with_capacity(256 << 10, BodyReader::new(chunks, MAX_LINE_BYTES));
    let options = match format {
        BodyFormat::Text(options) => options,
        BodyFormat::Items => return Ok(Box::new(ItemsSource::new(reader))),
    };
    let source = source_from_reader_with(
        Box::new(reader),
        ReadProgress::default(),
        &options,
        "the upload",
    )
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:#}")))?;
    if let (Some(expected), Some(header)) = (&expected_header, &source.header) {
        if header.raw != *expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the CSV header {:?} is not the one the job was created with ({expected:?})",
                    header.raw
                ),
            ));
        }
    }
    Ok(source.records)
}

/// Body chunks as `std::io::Read` for the parsers, refusing a line longer
/// than the limit before holding it.
pub struct BodyReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    line: u64,
    line_bytes: usize,
    max_line_bytes: usize,
}

impl BodyReader {
    pub fn new(chunks: mpsc::Receiver<io::Result<Bytes>>, max_line_bytes: usize) -> BodyReader {
        BodyReader {
            chunks,
            current: Bytes::new(),
            line: 1,
            line_bytes: 0,
            max_line_bytes,
        }
    }

    fn count_lines(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut start = 0;
        for pos in memchr::memchr_iter(b'\n', bytes) {
            self.check(self.line_bytes + (pos - start))?;
            self.line += 1;
            self.line_bytes = 0;
            start = pos + 1;
        }
        self.line_bytes += bytes.len() - start;
        self.check(self.line_bytes)
    }

    fn check(&self, line_bytes: usize) -> io::Result<()> {
        if line_bytes <= self.max_line_bytes {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "line {} is longer than {} bytes; split the record",
                self.line, self.max_line_bytes
            ),
        ))
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.current = chunk?,
            }
        }
        let n = buf.len().min(self.current.len());
        let taken = self.current.split_to(n);
        self.count_lines(&taken)?;
        buf[..n].copy_from_slice(&taken);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use axum::body::Bytes;

    use super::BodyReader;

    fn reader(chunks: &[&'static [u8]], max: usize) -> BodyReader {
        let (tx, rx) = tokio::sync::mpsc::channel(chunks.len().max(1));
        for c in chunks {
            tx.try_send(Ok(Bytes::from_static(c))).unwrap();
        }
        BodyReader::new(rx, max)
    }

    #[test]
    fn chunks_read_back_as_one_stream() {
        let mut out = String::new();
        reader(&[b"ab", b"c\nd", b"e\n"], 100)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "abc\nde\n");
    }

    #[test]
    fn a_line_over_the_limit_is_refused_with_its_number() {
        let mut out = Vec::new();
        let err = reader(&[b"1234\n", b"12", b"345"], 4)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("line 2 is longer than 4"), "{err}");
    }

    #[test]
    fn a_long_line_made_of_one_chunk_is_refused() {
        let mut out = Vec::new();
        let err = reader(&[b"ok\n0123456789\nok\n"], 4)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
