//! The runtime's stored settings (admin role to change them):
//!
//! - `GET /api/settings/retention`: `{"completed_ms", "aborted_ms",
//!   "failed_ms"}`, how long finished jobs of each final state stay
//!   (and a destroyed job's tombstone) before a checkpoint removes them.
//! - `PUT /api/settings/retention` (body: any of those fields, whole
//!   milliseconds): stores them, the others keep theirs; answers the
//!   periods stored.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::{Extension, Json};
use booster_runtime::Retention;
use serde_json::Value;

use super::bulk::require_admin;
use super::error::{ApiError, ApiResult};
use super::roles::Role;
use super::AppState;

/// `GET /api/settings/retention`.
pub async fn retention(State(app): State<AppState>) -> Json<Retention> {
    Json(app.runtime.retention())
}

/// `PUT /api/settings/retention`.
pub async fn store_retention(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Retention>> {
    require_admin(role, "store the retention periods")?;
    let Json(body) = body?;
    let wanted = retention_of(&body, app.runtime.retention())?;
    app.runtime.set_retention(wanted).await?;
    Ok(Json(app.runtime.retention()))
}

/// `current` with the periods `body` gives; a field that is not a whole
/// number of milliseconds, or one that is no period, is refused naming
/// what to send.
fn retention_of(body: &Value, current: Retention) -> ApiResult<Retention> {
    const FIELDS: [&str; 3] = ["completed_ms", "aborted_ms", "failed_ms"];
    let example = "e.g. {\"completed_ms\": 604800000} (7 days)";
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request(format!(
            "the body is an object of periods in milliseconds, {example}"
        )));
    };
    if let Some(other) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "{other:?} is no retention period; give completed_ms, aborted_ms or failed_ms"
        )));
    }
    let period = |name: &str, now: u64| -> ApiResult<u64> {
        match fields.get(name) {
            None => Ok(now),
            Some(v) => v.as_u64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} is {v}: give a whole number of milliseconds, at least 0, {example}"
                ))
            }),
        }
    };
    Ok(Retention {
        completed_ms: period("completed_ms", current.completed_ms)?,
        aborted_ms: period("aborted_ms", current.aborted_ms)?,
        failed_ms: period("failed_ms", current.failed_ms)?,
    })
}
