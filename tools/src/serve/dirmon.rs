//! Dirmon entries over HTTP: `GET /api/dirmons` lists them; `POST
//! /api/dirmons` adds one and `POST /api/dirmons/{id}/{pause|resume|remove}`
//! changes one, both for admin tokens only. An entry is added only where
//! this server's `--dirmon-allow` holds its directory and archive, and an
//! `exec` entry only with a command in `--exec-allow`: a client never
//! decides what this host reads or runs.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use booster_runtime::{DirmonId, DirmonSpec, DirmonView, DIRMON_DEFAULT_SETTLE_MS};
use serde::Deserialize;
use serde_json::{json, Value};

use super::bulk::require_admin;
use super::error::{ApiError, ApiResult};
use super::roles::Role;
use super::AppState;

/// Body of `POST /api/dirmons`: absolute paths, and the job options as
/// `booster submit` takes them (`["--kind", "copy", "--format", "csv"]`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDirmon {
    pub pattern: String,
    pub archive: String,
    pub settle_ms: Option<u64>,
    pub options: Vec<String>,
}

/// `GET /api/dirmons`.
pub async fn list(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "dirmons": app.runtime.dirmons() }))
}

/// `POST /api/dirmons` (admin).
pub async fn create(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    body: Result<Json<CreateDirmon>, JsonRejection>,
) -> ApiResult<Response> {
    require_admin(role, "add a dirmon entry")?;
    let Json(req) = body?;
    for (what, path) in [("pattern", &req.pattern), ("archive", &req.archive)] {
        if !std::path::Path::new(path).is_absolute() {
            return Err(ApiError::bad_request(format!(
                "{what} {path:?} is relative; give an absolute path on the server"
            )));
        }
    }
    let spec = DirmonSpec {
        pattern: req.pattern,
        archive: req.archive,
        settle_ms: req.settle_ms.unwrap_or(DIRMON_DEFAULT_SETTLE_MS),
        options: req.options,
    };
    spec.split_pattern().map_err(ApiError::bad_request)?;
    let job = crate::dirmon::parse_options(&spec.options, std::path::Path::new("input"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(cmd) = &job.cmd {
        if !app.exec_allow.iter().any(|allowed| allowed == cmd) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this server runs no command {cmd:?}; its operator allows commands with --exec-allow"),
            ));
        }
    }
    if app.dirmon_allow.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this server takes no files; its operator allows directories with --dirmon-allow",
        ));
    }
    let view = DirmonView {
        id: 0,
        spec: spec.clone(),
        paused: false,
        defined_ms: 0,
    };
    if let Some(why) = crate::dirmon::refusal(&view, &app.dirmon_allow) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("not added: {why}"),
        ));
    }
    crate::dirmon::check_entry(&app.runtime, &spec)
        .map_err(|e| ApiError::bad_request(format!("not added: {e:#}")))?;
    let id = app.runtime.add_dirmon(spec).await?;
    let view = app.runtime.dirmons().into_iter().find(|d| d.id == id);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "dirmon": view })),
    )
        .into_response())
}

/// `POST /api/dirmons/{id}/{action}` (admin): pause, resume or remove.
pub async fn action(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id: DirmonId = super::cron::entry_action("dirmon", &id, &action, role)?;
    // No file is being taken meanwhile: the watcher of this process claims
    // under the same lock and looks the entry up again once it has it, so a
    // removed entry never takes a file between the check and the removal.
    let _taking = crate::dirmon::TAKING.lock().await;
    if action == "remove" {
        if let Some(view) = app.runtime.dirmons().into_iter().find(|d| d.id == id) {
            crate::dirmon::check_removable(&view)
                .map_err(|why| ApiError::new(StatusCode::CONFLICT, why))?;
        }
    }
    match action.as_str() {
        "pause" => app.runtime.pause_dirmon(id).await?,
        "resume" => app.runtime.resume_dirmon(id).await?,
        _ => app.runtime.remove_dirmon(id).await?,
    }
    let view = app.runtime.dirmons().into_iter().find(|d| d.id == id);
    Ok(Json(json!({ "id": id, "dirmon": view })))
}
