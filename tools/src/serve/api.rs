//! JSON routes for jobs and workers: list, create, show, change, control,
//! destroy. Uploads and downloads stream and live in their own files.

use std::time::{Duration, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use booster_runtime::{JobFilter, JobId, JobQuery, JobShape, JobSpec, Runtime};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::roles::Role;
use super::upload::parse_format;
use super::view::{job_view, JobView, JobsPageView, WorkerView};
use super::AppState;
use crate::formats::props;

/// The `{id}` of a job route; anything but a number is a 400, never a path.
pub struct JobIdParam(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdParam {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let raw = params
            .iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        raw.parse::<JobId>()
            .map(JobIdParam)
            .map_err(|_| ApiError::bad_request(format!("job id {raw:?} is not a number")))
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub q: Option<String>,
    /// The newest N jobs (by id) below `before`: 100 when absent, at
    /// most 1000.
    pub limit: Option<usize>,
    /// Only jobs with an id below this: the `next_before` of the previous
    /// page, so pages stay put while new jobs arrive.
    pub before: Option<JobId>,
}

/// A page holds at most this many jobs.
pub const MAX_PAGE: usize = JobQuery::MAX_LIMIT;

/// `GET /api/jobs?state=&kind=&q=&limit=&before=`: one page, newest
/// first by id (the jobs in id order), `{"jobs", "next_before",
/// "total"}`; `total` is exact for a state filter or none, and for a kind
/// filter where the store counts jobs by kind; with a text filter (or a
/// kind in a store from before the kind index) it is null unless a first
/// page counted every match of a small table (10 000 rows read).
/// A text page (and a kind page while an image from before the kind
/// index is refiled) may stop short after `JobQuery::MAX_SCANNED_ROWS`
/// rows, and a kind with a state after that many rows' worth of index
/// pages, with a `next_before` to go on from.
pub async fn list(
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<JobsPageView>> {
    let Query(query) = query?;
    let state = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<booster_runtime::JobState>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
    };
    let filter = JobFilter {
        state,
        kind: query.kind.filter(|k| !k.is_empty()),
        text: query.q.filter(|q| !q.is_empty()),
    };
    let limit = query.limit.unwrap_or(JobQuery::DEFAULT_LIMIT);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_PAGE}; page on with before=<next_before>"
        )));
    }
    let page = app
        .runtime
        .jobs_page(JobQuery {
            filter,
            before: query.before,
            limit,
        })
        .await?;
    Ok(Json(JobsPageView {
        jobs: page.jobs.into_iter().map(job_view).collect(),
        total: page.total,
        next_before: page.next_before,
    }))
}

/// Body of `POST /api/jobs`. With `args` the job is simple; otherwise it is
/// sliced and waits for `PUT /api/jobs/{id}/input`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    pub kind: String,
    pub priority: Option<i64>,
    pub format: Option<String>,
    pub slice_size: Option<usize>,
    pub description: Option<String>,
    pub max_workers: Option<u32>,
    pub collect_errors: Option<bool>,
    pub properties: Option<Value>,
    pub args: Option<Value>,
    pub run_at_ms: Option<u64>,
    /// Sliced jobs' own output categories, e.g. ["valid", "review"].
    pub categories: Option<Vec<String>>,
    /// At most one unfinished job holds this key; a second is refused (409).
    pub singleton: Option<String>,
    /// Jobs that must complete first; until then the job is `waiting`.
    pub after: Option<Vec<JobId>>,
    /// `fail` (default), `abort` or `run`: when a job in `after` does not complete.
    pub on_dependency_failure: Option<String>,
    /// The job's own processing window: `{"start": "22:00", "end": "06:00",
    /// "tz": "Europe/Berlin"}` (tz absent: UTC).
    pub window: Option<Value>,
    /// true: destroyed when it completes; false: kept whatever its kind
    /// says; absent: as its kind says (`JobSpec::destroy_on_complete`).
    pub destroy_on_complete: Option<bool>,
}

pub fn check_priority(priority: i64) -> ApiResult<u8> {
    if (1..=100).contains(&priority) {
        Ok(priority as u8)
    } else {
        Err(booster_runtime::RuntimeError::BadPriority(priority).into())
    }
}

/// A job that runs a command may be submitted only by an admin, and only
/// with a command the operator allowed at start (G13).
fn check_command(allowed: &[String], role: Role, properties: &Value) -> ApiResult<()> {
    let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, m);
    if allowed.is_empty() {
        return Err(forbidden(
            "this server runs no commands: exec jobs need the operator to start it with \
             --exec-allow 'COMMAND'; the CLI runs them locally (booster run --kind exec)"
                .into(),
        ));
    }
    if role < Role::Admin {
        return Err(forbidden(format!(
            "only an admin token may submit exec jobs; this token's role is {}",
            role.name()
        )));
    }
    let cmd = properties.get(props::CMD).and_then(Value::as_str);
    match cmd {
        Some(cmd) if allowed.iter().any(|c| c == cmd) => Ok(()),
        Some(cmd) => Err(forbidden(format!(
            "command {cmd:?} is not one this server allows; the operator lists them with \
             --exec-allow, and properties.cmd must match one exactly"
        ))),
        None => Err(ApiError::bad_request(
            "an exec job needs properties.cmd, one of the commands this server allows",
        )),
    }
}

/// A kind no handler runs would wait forever: refused, with the kinds
/// there are (this process's, and those of the connected remote workers:
/// a service's own kinds).
pub fn check_kind(runtime: &Runtime, kind: &str) -> ApiResult<()> {
    let kinds = runtime.submittable_kinds();
    if kinds.iter().any(|k| k == kind) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "no worker here runs kind {kind:?}; the kinds are {}",
        kinds.join(", ")
    )))
}

pub async fn create(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    body: Result<Json<CreateJob>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(req) = body?;
    let spec = job_spec_of(&app.exec_allow, role, req)?;
    let sliced = matches!(spec.shape, JobShape::Sliced { .. });
    check_kind(&app.runtime, &spec.kind)?;
    let id = app.runtime.submit(spec).await?;
    let mut body = json!({ "id": id });
    if sliced {
        body["upload"] = json!(format!("/api/jobs/{id}/input"));
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Body of `POST /api/batches`: the batch's jobs and its on-complete job,
/// each as `POST /api/jobs` takes it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    pub jobs: Vec<CreateJob>,
    pub on_complete: CreateJob,
}

/// `POST /api/batches`: the jobs and the on-complete job in one commit;
/// the answer gives each job's id (and upload path, for a sliced one) and
/// the on-complete job's id, which runs once all have finished.
pub async fn create_batch(
    State(app): State<AppState>,
    Extension(role): Extension<Role>,
    body: Result<Json<CreateBatch>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(req) = body?;
    let mut jobs = Vec::with_capacity(req.jobs.len());
    for job in req.jobs {
        let spec = job_spec_of(&app.exec_allow, role, job)?;
        check_kind(&app.runtime, &spec.kind)?;
        jobs.push(spec);
    }
    let on_complete = job_spec_of(&app.exec_allow, role, req.on_complete)?;
    check_kind(&app.runtime, &on_complete.kind)?;
    let sliced: Vec<bool> = jobs
        .iter()
        .map(|s| matches!(s.shape, JobShape::Sliced { .. }))
        .collect();
    let (ids, then) = app.runtime.submit_batch(jobs, on_complete).await?;
    let jobs: Vec<Value> = ids
        .iter()
        .zip(sliced)
        .map(|(id, sliced)| {
            let mut job = json!({ "id": id });
            if sliced {
                job["upload"] = json!(format!("/api/jobs/{id}/input"));
            }
            job
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "jobs": jobs, "on_complete": then })),
    )
        .into_response())
}

/// The job a `POST /api/jobs` body asks for (also the template of a cron
/// entry's runs, `POST /api/crons`), checked.
pub fn job_spec_of(exec_allow: &[String], role: Role, req: CreateJob) -> ApiResult<JobSpec> {
    if req.kind.trim().is_empty() {
        return Err(ApiError::bad_request("kind is required, e.g. \"copy\""));
    }
    let priority = check_priority(req.priority.unwrap_or(50))?;
    let mut properties = req.properties.unwrap_or_else(|| json!({}));
    if !properties.is_object() {
        return Err(ApiError::bad_request("properties must be a JSON object"));
    }
    if req.kind == crate::kinds::EXEC {
        check_command(exec_allow, role, &properties)?;
    }
    if let Some(f) = req.format.as_deref() {
        // The job remembers its format the way the CLI's jobs do, so the
        // upload parses it and a download writes it back the same way.
        properties[props::FORMAT] = json!(parse_format(f)?.name());
    }
    if req.slice_size == Some(0) {
        return Err(ApiError::bad_request("slice_size must be at least 1"));
    }
    if req.max_workers == Some(0) {
        return Err(ApiError::bad_request(
            "max_workers must be at least 1 (leave it out for no limit)",
        ));
    }
    let shape = match req.args {
        Some(args) => JobShape::Simple { args },
        None => JobShape::Sliced {
            slice_size: req.slice_size,
            collect_errors: req.collect_errors.unwrap_or(true),
        },
    };
    let on_dependency_failure = match req.on_dependency_failure.as_deref() {
        Some(p) => p.parse().map_err(ApiError::bad_request)?,
        None => Default::default(),
    };
    let spec = JobSpec {
        cron: None,
        after: req.after.unwrap_or_default(),
        on_dependency_failure,
        kind: req.kind,
        shape,
        priority,
        description: req.description.unwrap_or_default(),
        max_workers: req.max_workers,
        run_at: req
            .run_at_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
        expires_at: None,
        properties,
        categories: req.categories.unwrap_or_default(),
        singleton: req.singleton,
        destroy_on_complete: req.destroy_on_complete,
        window: match req.window {
            None | Some(Value::Null) => None,
            Some(w) => Some(serde_json::from_value(w).map_err(|e| {
                ApiError::bad_request(format!(
                    "window: {e}; give {{\"start\": \"22:00\", \"end\": \"06:00\", \"tz\": \"Europe/Berlin\"}}"
                ))
            })?),
        },
    };
    Ok(spec)
}

pub async fn show(
    State(app): State<AppState>,
    JobIdParam(id): JobIdParam,
) -> ApiResult<Json<JobView>> {
    Ok(Json(job_view(app.runtime.job(id).await?)))
}

/// `PATCH /api/jobs/{id}`: `{"priority": P}` and/or `{"max_workers": W}`
/// (`null` lifts the limit). Everything is checked before anything changes.
pub async fn patch(
    State(app): State<AppState>,
    JobIdParam(id): JobIdParam,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<JobView>> {
    let Json(body) = body?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request(
            "expected a JSON object like {\"priority\": 10, \"max_workers\": 4}",
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| *k != "priority" && *k != "max_workers")
    {
        return Err(ApiError::bad_request(format!(
            "unknown field {unknown:?}: only priority and max_workers can change"
        )));
    }
    let priority = match fields.get("priority") {
        None => None,
        Some(p) => Some(p.as_i64().ok_or_else(|| {
            ApiError::bad_request("priority must be a whole number from 1 (first) to 100 (last)")
        })?),
    };
    if let Some(p) = priority {
        check_priority(p)?;
    }
    let max_workers = match fields.get("max_workers") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(w) => match w.as_u64() {
            Some(n) if (1..=u32::MAX as u64).contains(&n) => Some(Some(n as u32)),
            _ => {
                return Err(ApiError::bad_request(
                    "max_workers must be a number of at least 1, or null for no limit",
                ))
            }
        },
    };
    app.runtime.job(id).await?;
    if let Some(p) = priority {
        app.runtime.set_priority(id, p).await?;
    }
    if let Some(w) = max_workers {
        app.runtime.set_max_workers(id, w).await?;
    }
    Ok(Json(job_view(app.runtime.job_or_kept(id).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    pub reason: Option<String>,
}

/// `POST /api/jobs/{id}/{action}`.
pub async fn action(
    State(app): State<AppState>,
    Path((_, action)): Path<(String, String)>,
    JobIdParam(id): JobIdParam,
    body: axum::body::Bytes,
) -> ApiResult<Json<JobView>> {
    match action.as_str() {
        "pause" => app.runtime.pause(id).await?,
        "resume" => app.runtime.resume(id).await?,
        "abort" => app.runtime.abort(id).await?,
        "retry" => app.runtime.retry(id).await?,
        "fail" => {
            let reason = if body.is_empty() {
                None
            } else {
                serde_json::from_slice::<FailBody>(&body)
                    .map_err(|e| {
                        ApiError::bad_request(format!("expected {{\"reason\": \"...\"}}: {e}"))
                    })?
                    .reason
            };
            let reason = reason.unwrap_or_else(|| "failed by an operator".to_string());
            app.runtime.fail(id, reason).await?
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: use pause, resume, abort, retry or fail"),
            ))
        }
    }
    Ok(Json(job_view(app.runtime.job_or_kept(id).await?)))
}

pub async fn destroy(
    State(app): State<AppState>,
    JobIdParam(id): JobIdParam,
) -> ApiResult<Json<Value>> {
    app.runtime.destroy(id).await?;
    Ok(Json(json!({ "destroyed": id })))
}

pub async fn workers(State(app): State<AppState>) -> Json<Value> {
    let workers: Vec<WorkerView> = app.runtime.workers().await.iter().map(Into::into).collect();
    let processes = super::view::processes_of(app.runtime.worker_processes());
    Json(json!({ "workers": workers, "processes": processes }))
}

/// `GET /api/incidents`: what recovery cut or found damaged, oldest first.
pub async fn incidents(State(app): State<AppState>) -> Json<Value> {
    Json(json!({ "incidents": app.runtime.incidents() }))
}

pub async fn healthz(State(app): State<AppState>) -> Json<Value> {
    let workers = app.runtime.workers().await.len();
    Json(json!({ "status": "ok", "workers": workers }))
}
