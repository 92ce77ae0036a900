//! The dashboard: one HTML page, its stylesheets and scripts, embedded in
//! the binary (no build step, nothing loaded from elsewhere). The scripts
//! build every piece of job data into the page with `textContent`, and the
//! Content-Security-Policy forbids inline script, so a job description
//! such as `<script>` stays text.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("../../assets/index.html");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file under `/assets/`: name, content type, body. Our scripts
/// (`app.js`: helpers, the jobs and workers pages and the routing;
/// `job.js`: the job page; `charts.js`: the history page and the charts)
/// share the page's global scope and load before `app.js` starts it.
/// uPlot (MIT, `assets/vendor/uPlot.LICENSE`) draws the charts.
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../../assets/app.js")),
    ("job.js", JS, include_str!("../../assets/job.js")),
    ("charts.js", JS, include_str!("../../assets/charts.js")),
    ("app.css", CSS, include_str!("../../assets/app.css")),
    (
        "uPlot.min.js",
        JS,
        include_str!("../../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        CSS,
        include_str!("../../assets/vendor/uPlot.min.css"),
    ),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub async fn index() -> impl IntoResponse {
    page("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn asset(Path(name): Path<String>) -> axum::response::Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => page(content_type, body).into_response(),
        None => super::error::ApiError::new(StatusCode::NOT_FOUND, format!("no asset {name:?}"))
            .into_response(),
    }
}
