//! `GET /api/jobs/{id}/output?category=main|errors|input`: records stream
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

/// Bytes gathered before a chunk is handed to the connection.
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
pub struct OutputQuery {
    pub category: Option<String>,
}

pub fn parse_category(s: &str) -> ApiResult<Category> {
    match s {
        "main" => Ok(Category::Main),
        "errors" => Ok(Category::Errors),
        "input" => Ok(Category::Input),
        other => Err(ApiError::bad_request(format!(
            "unknown category {other:?}: use main, errors or input"
        ))),
    }
}

pub async fn get_output<C: JobControl>(
    State(app): State<AppState<C>>,
    JobIdParam(id): JobIdParam,
    query: Result<Query<OutputQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let category = parse_category(query.category.as_deref().unwrap_or("main"))?;
    app.ctl.job(id).await?;
    let records = app.ctl.download(id, category)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        for record in records {
            match record {
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
