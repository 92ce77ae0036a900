//! Actions on many jobs at once, for an operator (admin role):
//!
//! - `POST /api/bulk/retry-failed` (body optional: `{"kind": "copy"}`):
//!   retry every failed job (of that kind).
//! - `POST /api/kinds/{kind}/pause` and `.../resume`: pause every job of
//!   the kind that can be paused now (resume every paused one). Jobs
//!   submitted later are not paused: this acts on the jobs there are.
//!
//! - `GET /api/kinds`: every kind's stored and effective settings;
//!   `PUT /api/kinds/{kind}` (body: the settings, or null to clear):
//!   store a kind's running-job limit (0 pauses it for good, for jobs
//!   submitted later too), retry and lease policy (issue 14).
//!
//! Each job goes through the same control call as its own button, so
//! the state machine decides; a job it refuses is listed with why, never
//! skipped in silence. At most [`BULK_MAX`] jobs per request; `more`
//! says to send it again.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use booster_runtime::{JobFilter, JobId, JobQuery, JobState, JobStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::roles::Role;
use super::AppState;

/// Jobs one bulk request acts on.
pub const BULK_MAX: usize = 10_000;

/// The newest `max` jobs matching `filter`, in id order, and whether
/// older ones are left. A kind filter has no index: each page reads a
/// bounded number of rows and may stop short with a cursor, so the pages
/// are followed until `max` jobs or the oldest row (the lock is released
/// between chunks, never held for the whole table).
async fn newest(
    app: &AppState,
    filter: JobFilter,
    max: usize,
) -> ApiResult<(Vec<JobStatus>, bool)> {
    let mut query = JobQuery {
        filter,
        before: None,
        limit: max,
    };
    let (mut pages, mut found) = (Vec::new(), 0);
    let more = loop {
        query.limit = max - found;
        let page = app.runtime.jobs_page(query.clone()).await?;
        found += page.jobs.len();
        pages.push(page.jobs);
        match page.next_before {
            None => break false,
            Some(_) if found >= max => break true,
            Some(before) => query.before = Some(before),
        }
    };
    Ok((pages.into_iter().rev().flatten().collect(), more))
}

pub fn require_admin(role: Role, what: &str) -> ApiResult<()> {
    if role < Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "only an admin token may {what}; this token's role is {}",
                role.name()
            ),
        ));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryFailed {
    pub kind: Option<String>,
}

/// The jobs done and the ones refused, as the answer lists them.
#[derive(Default)]
struct Outcome {
    done: Vec<JobId>,
    refused: Vec<Value>,
}

impl Outcome {
    fn note(&mut self, id: JobId, result: Result<(), booster_runtime::RuntimeError>) {
        match result {
            Ok(()) => self.done.push(id),
            Err(e) => self
                .refused
                .push(json!({ "id": id, "error": e.to_string() })),
        }
    }
}

pub async fn retry_failed(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    body: Result<Json<RetryFailed>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    require_admin(role, "retry all failed jobs")?;
    let req = match body {
        Ok(Json(req)) => req,
        // No body at all: every kind.
        Err(JsonRejection::MissingJsonContentType(_)) => RetryFailed::default(),
        Err(e) => return Err(e.into()),
    };
    let filter = JobFilter {
        state: Some(JobState::Failed),
        kind: req.kind.filter(|k| !k.is_empty()),
        text: None,
    };
    let (jobs, more) = newest(&app, filter, BULK_MAX).await?;
    let mut outcome = Outcome::default();
    for job in &jobs {
        outcome.note(job.id, app.runtime.retry(job.id).await);
    }
    Ok(Json(json!({
        "retried": outcome.done,
        "refused": outcome.refused,
        "more": more,
    })))
}

pub async fn kind_action(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    Path((kind, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (wanted, from): (&str, &[JobState]) = match action.as_str() {
        "pause" => (
            "pause",
            &[JobState::Scheduled, JobState::Queued, JobState::Running],
        ),
        "resume" => ("resume", &[JobState::Paused]),
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown kind action {other:?}: use pause or resume"),
            ))
        }
    };
    require_admin(role, &format!("{wanted} every job of a kind"))?;
    let mut outcome = Outcome::default();
    let mut more = false;
    let mut any = false;
    for state in from {
        let filter = JobFilter {
            state: Some(*state),
            kind: Some(kind.clone()),
            text: None,
        };
        let (jobs, left) = newest(&app, filter, BULK_MAX).await?;
        more |= left;
        for job in &jobs {
            any = true;
            // The job's own allowed actions decide (a running simple job
            // cannot pause): what it refuses is listed, not tried.
            if !job.allowed_actions.iter().any(|a| a == wanted) {
                outcome.refused.push(json!({
                    "id": job.id,
                    "error": format!("a {} {} job cannot {wanted}", job.state.as_str(), job.kind),
                }));
                continue;
            }
            let result = match wanted {
                "pause" => app.runtime.pause(job.id).await,
                _ => app.runtime.resume(job.id).await,
            };
            outcome.note(job.id, result);
        }
    }
    let key = if wanted == "pause" {
        "paused"
    } else {
        "resumed"
    };
    if !any {
        let any_of_kind = JobFilter {
            kind: Some(kind.clone()),
            ..JobFilter::default()
        };
        // Read on until one such job or the oldest row.
        let (found, _) = newest(&app, any_of_kind, 1).await?;
        if found.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no job of kind {kind:?}; check the kind's name"),
            ));
        }
    }
    Ok(Json(json!({
        key: outcome.done,
        "refused": outcome.refused,
        "more": more,
    })))
}

/// `GET /api/kinds`.
pub async fn kinds(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "kinds": app.runtime.kinds_settings() }))
}

/// `PUT /api/kinds/{kind}`: stores the kind's settings (null clears them).
pub async fn store_kind(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    Path(kind): Path<String>,
    body: Result<Json<Option<booster_runtime::KindSettings>>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    require_admin(role, "store a kind's settings")?;
    let Json(settings) = body?;
    app.runtime.store_kind_settings(&kind, settings).await?;
    let view = app
        .runtime
        .kinds_settings()
        .into_iter()
        .find(|v| v.kind == kind);
    Ok(Json(json!({ "kind": kind, "settings": view })))
}
