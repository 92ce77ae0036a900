//! The server's side of the API's JSON shapes. The shapes themselves
//! live in booster-client (`booster_client::view`), where the JSON client
//! reads them back: one definition. What only the server knows is added
//! here: where a job came from (`details`), and this host in `processes`.

use booster_runtime::JobStatus;

pub use booster_client::view::{
    Detail, DownloadLink, JobEventView, JobView, JobsPageView, LeaseView, ProcessView, WorkerView,
};

/// The API's view of `s`, with the lines `job show` prints about where
/// it came from (`crate::report::job_origin`) as its `details`.
pub fn job_view(s: JobStatus) -> JobView {
    let details = crate::report::job_origin(&s)
        .into_iter()
        .map(|(label, value)| Detail {
            label: label.to_string(),
            value: value.to_string(),
        })
        .collect();
    JobView::with_details(s, details)
}

/// `processes` as the API shows them: this process's host and version
/// filled in.
pub fn processes_of(mut all: Vec<booster_runtime::WorkerProcess>) -> Vec<ProcessView> {
    for p in all.iter_mut().filter(|p| p.worker.is_none()) {
        p.host = this_host();
        p.version = env!("CARGO_PKG_VERSION").to_string();
    }
    all
}

/// This machine's host name (Linux: the kernel's), or "unknown".
pub use booster_client::worker::this_host;
