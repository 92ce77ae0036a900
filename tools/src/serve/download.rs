//! `GET /api/jobs/{id}/output?category=main|errors|input|NAME`: records stream
//! out one per line, slice by slice. The runtime's `Download` reads the store
//! synchronously, so it runs on a blocking thread and hands records over a
//! small bounded channel: a slow client slows the reader, never fills memory.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use booster_runtime::Category;
use serde::Deserialize;

use super::api::JobIdParam;
use super::error::{ApiError, ApiResult};
use super::{AppState, JobControl};
use crate::formats::{write_framed, LENGTH_FRAMING};

/// Bytes gathered before a chunk is handed to the connection.
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
pub struct OutputQuery {
    pub category: Option<String>,
    /// `length`: each record as a 4-byte little-endian length and its
    /// bytes (`crate::formats::FramedRecords`); by default one per line.
    pub framing: Option<String>,
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

pub async fn get_output<C: JobControl>(
    State(app): State<AppState<C>>,
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
    app.ctl.job(id).await?;
    let records = app.ctl.download(id, category)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        for record in records {
            match record {
                Ok(bytes) if framed => write_framed(&bytes, &mut chunk),
                Ok(bytes) => {
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
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}
