//! `GET /api/jobs/{id}/output?category=main|errors|input|NAME`: records stream
//! out one per line, slice by slice. The runtime's `Download` reads the store
//! synchronously, so it runs on a blocking thread and hands records over a
//! small bounded channel: a slow client slows the reader, never fills memory.
//! `framing=length&separators=true` sends `main` with each record's
//! separators (`crate::formats::wire`), so a `--server` download is as
//! exact as a local one.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use booster_runtime::Category;
use serde::Deserialize;

use super::api::JobIdParam;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::formats::{write_framed, write_separated, LENGTH_FRAMING, SEPARATORS_HEADER};

/// Bytes gathered before a chunk is handed to the connection.
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
pub struct OutputQuery {
    pub category: Option<String>,
    /// `length`: each record as a 4-byte little-endian length and its
    /// bytes (`crate::formats::FramedRecords`); by default one per line.
    pub framing: Option<String>,
    /// With `framing=length` and `main`: each record's separators too.
    #[serde(default)]
    pub separators: bool,
}

/// `main`, `errors`, `input` or one of the job's own categories (the
/// runtime says which it has when the name is not one of them).
pub fn parse_category(s: &str) -> ApiResult<Category> {
    Category::parse(s).map_err(|e| {
        ApiError::bad_request(format!(
            "unknown category {s:?}: use main, errors, input or one of the job's categories ({e})"
        ))
    })
}

pub async fn get_output(
    State(app): State<AppState>,
    JobIdParam(id): JobIdParam,
    query: Result<Query<OutputQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let category = parse_category(query.category.as_deref().unwrap_or("main"))?;
    let framed = match query.framing.as_deref() {
        None | Some("lines") => false,
        Some(LENGTH_FRAMING) => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown framing {other:?}: use lines (the default) or {LENGTH_FRAMING}"
            )))
        }
    };
    let separated = query.separators && framed && category == Category::Main;
    if query.separators && !separated {
        return Err(ApiError::bad_request(
            "separators=true is for category=main with framing=length",
        ));
    }
    app.runtime.job(id).await?;
    let records: Box<dyn Iterator<Item = _> + Send> = if separated {
        Box::new(app.runtime.download_separated(id)?)
    } else {
        Box::new(
            app.runtime
                .download(id, category)?
                .map(|r| r.map(|bytes| (bytes, Default::default()))),
        )
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        for record in records {
            match record {
                Ok((bytes, separators)) if separated => {
                    write_separated(&bytes, &separators, &mut chunk)
                }
                Ok((bytes, _)) if framed => write_framed(&bytes, &mut chunk),
                Ok((bytes, _)) => {
                    chunk.extend_from_slice(&bytes);
                    chunk.push(b'\n');
                }
                Err(e) => {
                    // The status line is gone already; breaking the body is
                    // the only way left to tell the client it is incomplete.
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
            if chunk.len() >= CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES));
                if tx.blocking_send(Ok(Bytes::from(full))).is_err() {
                    return; // client went away
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(chunk)));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut response = ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    if separated {
        response
            .headers_mut()
            .insert(SEPARATORS_HEADER, header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct ErrorsQuery {
    pub offset: Option<u64>,
    pub limit: Option<usize>,
}

/// A page of errors holds at most this many entries.
pub const MAX_ERRORS_PAGE: usize = 1000;

/// `GET /api/jobs/{id}/errors?offset=N&limit=M`: one page of the job's
/// `errors` category (every rejected, failed and failed-slice record, in
/// input order, as the download has them), each entry as its JSON
/// (`record_number`, `line`, `message`, `record`). `total` is the job's
/// failed-record count; `next_offset` is null on the last page. The whole
/// category is `GET .../output?category=errors`.
pub async fn get_errors(
    State(app): State<AppState>,
    JobIdParam(id): JobIdParam,
    query: Result<Query<ErrorsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let Query(query) = query?;
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_ERRORS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_ERRORS_PAGE}; page on with offset"
        )));
    }
    let job = app.runtime.job(id).await?;
    let records = app.runtime.download(id, Category::Errors)?;
    let (entries, more) = tokio::task::spawn_blocking(move || {
        let mut page = Vec::with_capacity(limit);
        let mut records = records;
        // Skipped entries are read too, so a damaged slice before the
        // page is an error, not a shorter list.
        for record in records
            .by_ref()
            .take(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            record?;
        }
        let mut rest = records;
        for record in rest.by_ref().take(limit) {
            let bytes = record?;
            // Entries are JSON the runtime wrote; anything else is shown
            // as text rather than dropped.
            page.push(serde_json::from_slice(&bytes).unwrap_or_else(
                |_| serde_json::json!({ "record": String::from_utf8_lossy(&bytes) }),
            ));
        }
        let more = rest.next().transpose()?.is_some();
        Ok::<_, booster_runtime::RuntimeError>((page, more))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let next_offset = more.then(|| offset + entries.len() as u64);
    Ok(axum::Json(serde_json::json!({
        "errors": entries,
        "offset": offset,
        "limit": limit,
        "total": job.records_failed,
        "next_offset": next_offset,
        "export": format!("/api/jobs/{id}/output?category=errors"),
    })))
}
