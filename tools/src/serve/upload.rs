//! `PUT /api/jobs/{id}/input`: the request body streams into the job's
//! `Uploader` chunk by chunk, never held whole. One record per line; a line
//! longer than `MAX_RECORD_BYTES` fails the upload (and the job) with a
//! message, since holding it would let one request take the server's memory.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;

use super::api::JobIdParam;
use super::control::UploadSink;
use super::error::{ApiError, ApiResult};
use super::view::JobView;
use super::{AppState, JobControl};

/// The longest record (line) an upload may carry.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// One record per line, as is.
    Lines,
    /// One JSON value per line; a line that is not JSON is a record error.
    Jsonl,
}

impl InputFormat {
    pub fn parse(s: &str) -> ApiResult<InputFormat> {
        match s {
            "lines" | "text" => Ok(InputFormat::Lines),
            "jsonl" | "json-lines" => Ok(InputFormat::Jsonl),
            other => Err(ApiError::bad_request(format!(
                "unknown format {other:?}: use lines or jsonl"
            ))),
        }
    }
}

/// Cuts a byte stream into lines, keeping an unfinished line between chunks.
pub struct LineSplitter {
    pending: Vec<u8>,
    next_line: u64,
    max_line_bytes: usize,
}

impl LineSplitter {
    pub fn new(max_line_bytes: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            next_line: 1,
            max_line_bytes,
        }
    }

    /// Complete lines of `chunk` (without `\n` or a trailing `\r`) with their
    /// 1-based line numbers.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, String> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let mut line = std::mem::take(&mut self.pending);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.check_len(line.len())?;
            lines.push((self.next_line, line));
            self.next_line += 1;
        }
        self.pending.extend_from_slice(rest);
        self.check_len(self.pending.len())?;
        Ok(lines)
    }

    /// The last line when the body did not end in a newline.
    pub fn finish(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.pending.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.pending);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some((self.next_line, line))
    }

    fn check_len(&self, len: usize) -> Result<(), String> {
        if len > self.max_line_bytes {
            Err(format!(
                "line {} is longer than {} bytes; split the record or upload it with the CLI",
                self.next_line, self.max_line_bytes
            ))
        } else {
            Ok(())
        }
    }
}

#[derive(Deserialize)]
pub struct UploadQuery {
    pub format: Option<String>,
}

pub async fn put_input<C: JobControl>(
    State(app): State<AppState<C>>,
    JobIdParam(id): JobIdParam,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let Query(query) = query?;
    let format = match query.format.as_deref() {
        Some(f) => InputFormat::parse(f)?,
        None => app
            .formats
            .lock()
            .get(&id)
            .copied()
            .unwrap_or(InputFormat::Lines),
    };
    let mut uploader = app.ctl.upload(id).await?;
    match stream_records(&mut uploader, format, body).await {
        Ok(()) => {
            let status = uploader.finish().await?;
            app.formats.lock().remove(&id);
            Ok((StatusCode::OK, Json(status.into())))
        }
        Err(reason) => {
            let message = format!("upload of job {id} failed: {reason}");
            uploader.fail(message.clone()).await?;
            Err(ApiError::bad_request(message))
        }
    }
}

async fn stream_records<U: UploadSink>(
    uploader: &mut U,
    format: InputFormat,
    body: Body,
) -> Result<(), String> {
    let mut splitter = LineSplitter::new(MAX_RECORD_BYTES);
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| format!("the request body broke off: {e}"))?;
        for (line, record) in splitter.feed(&chunk)? {
            push(uploader, format, line, record).await?;
        }
    }
    if let Some((line, record)) = splitter.finish() {
        push(uploader, format, line, record).await?;
    }
    Ok(())
}

async fn push<U: UploadSink>(
    uploader: &mut U,
    format: InputFormat,
    line: u64,
    record: Vec<u8>,
) -> Result<(), String> {
    let rejected = match format {
        InputFormat::Lines => None,
        InputFormat::Jsonl => serde_json::from_slice::<serde::de::IgnoredAny>(&record)
            .err()
            .map(|e| format!("line {line} is not JSON: {e}")),
    };
    let result = match rejected {
        None => uploader.push_line(record, line).await,
        Some(message) => uploader.push_rejected(record, line, message).await,
    };
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::LineSplitter;

    #[test]
    fn lines_split_across_chunks_are_joined_and_numbered() {
        let mut s = LineSplitter::new(100);
        let mut got = s.feed(b"ab").unwrap();
        got.extend(s.feed(b"c\r\nde\nf").unwrap());
        got.extend(s.finish());
        assert_eq!(
            got,
            vec![
                (1, b"abc".to_vec()),
                (2, b"de".to_vec()),
                (3, b"f".to_vec())
            ]
        );
    }

    #[test]
    fn a_line_over_the_limit_is_refused_before_it_is_held() {
        let mut s = LineSplitter::new(4);
        assert!(s.feed(b"1234\n").is_ok());
        let err = s.feed(b"12345").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
