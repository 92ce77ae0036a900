//! Cron entries over HTTP: `GET /api/crons` lists them; `POST /api/crons`
//! adds one and `POST /api/crons/{id}/{pause|resume|remove}` changes one,
//! both for admin tokens only.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use booster_runtime::{CronId, CronSpec};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{check_kind, job_spec_of, CreateJob};
use super::bulk::require_admin;
use super::error::{ApiError, ApiResult};
use super::roles::Role;
use super::AppState;

/// Body of `POST /api/crons`: the expression, its time zone (default UTC)
/// and the job each run is, as `POST /api/jobs` takes it (with `args`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCron {
    pub expr: String,
    pub tz: Option<String>,
    pub job: CreateJob,
}

/// `GET /api/crons`.
pub async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "crons": app.runtime.crons() }))
}

/// `POST /api/crons` (admin).
pub async fn create(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    body: Result<Json<CreateCron>, JsonRejection>,
) -> ApiResult<Response> {
    require_admin(role, "add a cron entry")?;
    let Json(req) = body?;
    let job = job_spec_of(&app.exec_allow, role, req.job)?;
    check_kind(&app.runtime, &job.kind)?;
    let spec = CronSpec {
        expr: req.expr,
        tz: req.tz,
        job,
    };
    let id = app.runtime.add_cron(spec).await?;
    let view = app.runtime.crons().into_iter().find(|c| c.id == id);
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "cron": view }))).into_response())
}

/// The checks of `POST /api/{what}s/{id}/{action}` for an entry (a cron
/// or dirmon entry): the id parsed, the action one of pause, resume or
/// remove, the token an admin's.
pub(super) fn entry_action(what: &str, id: &str, action: &str, role: Role) -> ApiResult<u64> {
    let Ok(id) = id.parse::<u64>() else {
        return Err(ApiError::bad_request(format!(
            "{id:?} is not a {what} entry id; GET /api/{what}s lists them"
        )));
    };
    if !matches!(action, "pause" | "resume" | "remove") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown {what} action {action:?}: use pause, resume or remove"),
        ));
    }
    require_admin(role, &format!("{action} a {what} entry"))?;
    Ok(id)
}

/// `POST /api/crons/{id}/{action}` (admin): pause, resume or remove.
pub async fn action(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id: CronId = entry_action("cron", &id, &action, role)?;
    match action.as_str() {
        "pause" => app.runtime.pause_cron(id).await?,
        "resume" => app.runtime.resume_cron(id).await?,
        _ => app.runtime.remove_cron(id).await?,
    }
    let view = app.runtime.crons().into_iter().find(|c| c.id == id);
    Ok(Json(json!({ "id": id, "cron": view })))
}
