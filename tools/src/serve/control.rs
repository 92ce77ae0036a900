//! The seam between the HTTP layer and the runtime.
//!
//! Routes are written against `JobControl` rather than `Runtime` directly so
//! the API tests can drive job progress step by step (an in-memory double in
//! `serve/tests/fake.rs`) without depending on handler timing. `Runtime`
//! implements it by forwarding, one line per method.

use std::future::Future;

use booster_runtime::{
    Category, CronId, CronSpec, CronView, Incident, JobEvent, JobFilter, JobId, JobSpec, JobStatus,
    JobsPage, KindSettings, KindView, Metrics, Runtime, RuntimeError, Uploader, WorkerStatus,
};
use tokio::sync::broadcast;

/// Everything the HTTP API needs from a runtime.
pub trait JobControl: Clone + Send + Sync + 'static {
    type Upload: UploadSink;
    type Download: Iterator<Item = Result<Vec<u8>, RuntimeError>> + Send + 'static;

    fn submit(&self, spec: JobSpec) -> impl Future<Output = Result<JobId, RuntimeError>> + Send;
    fn upload(&self, job: JobId)
        -> impl Future<Output = Result<Self::Upload, RuntimeError>> + Send;
    fn job(&self, job: JobId) -> impl Future<Output = Result<JobStatus, RuntimeError>> + Send;
    fn jobs(&self, filter: JobFilter) -> impl Future<Output = Vec<JobStatus>> + Send;
    /// The newest `limit` matching jobs below id `before` (in id order),
    /// how many match in all, and where the next older page starts.
    fn jobs_page(
        &self,
        filter: JobFilter,
        before: Option<JobId>,
        limit: usize,
    ) -> impl Future<Output = JobsPage> + Send;
    fn set_priority(
        &self,
        job: JobId,
        priority: i64,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn set_max_workers(
        &self,
        job: JobId,
        max_workers: Option<u32>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn pause(&self, job: JobId) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn resume(&self, job: JobId) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn abort(&self, job: JobId) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn retry(&self, job: JobId) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn fail(
        &self,
        job: JobId,
        reason: String,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn destroy(&self, job: JobId) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn subscribe(&self) -> broadcast::Receiver<JobEvent>;
    fn download(&self, job: JobId, category: Category) -> Result<Self::Download, RuntimeError>;
    fn workers(&self) -> impl Future<Output = Vec<WorkerStatus>> + Send;
    fn metrics(&self) -> Metrics;
    /// What recovery cut or found damaged, oldest first (`Runtime::incidents`).
    fn incidents(&self) -> Vec<Incident>;
    /// Every kind's stored and effective settings (`Runtime::kinds_settings`).
    fn kinds_settings(&self) -> Vec<KindView>;
    fn store_kind_settings(
        &self,
        kind: &str,
        settings: Option<KindSettings>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Every cron entry (`Runtime::crons`). The in-memory double of the
    /// API tests has none.
    fn crons(&self) -> Vec<CronView> {
        Vec::new()
    }
    fn add_cron(
        &self,
        _spec: CronSpec,
    ) -> impl Future<Output = Result<CronId, RuntimeError>> + Send {
        async { Err(no_crons()) }
    }
    fn change_cron(
        &self,
        _id: CronId,
        _change: CronAction,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        async { Err(no_crons()) }
    }
}

/// What `POST /api/crons/{id}/{action}` does to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronAction {
    Pause,
    Resume,
    Remove,
}

fn no_crons() -> RuntimeError {
    RuntimeError::Invalid("this control keeps no cron entries".into())
}

/// Pushes one parsed item into an upload: a record with the source line
/// it came from, or a record the parser rejected, with its line and why.
/// Every upload goes through here, `run`/`submit` and `PUT .../input`
/// alike, so they store the same thing for the same input.
pub async fn push_item<U: UploadSink>(
    uploader: &mut U,
    item: crate::formats::Item,
) -> Result<(), RuntimeError> {
    match item {
        crate::formats::Item::Record { bytes, line } => uploader.push_line(bytes, line).await,
        crate::formats::Item::Rejected { raw, line, message } => {
            uploader.push_rejected(raw, line, message).await
        }
    }
}

/// The receiving end of an upload (`Uploader` in the runtime).
pub trait UploadSink: Send + 'static {
    fn push(&mut self, record: Vec<u8>) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn push_line(
        &mut self,
        record: Vec<u8>,
        line: u64,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn push_rejected(
        &mut self,
        raw: Vec<u8>,
        line: u64,
        message: String,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    fn finish(self) -> impl Future<Output = Result<JobStatus, RuntimeError>> + Send;
    fn fail(self, reason: String) -> impl Future<Output = Result<(), RuntimeError>> + Send;
}

impl JobControl for Runtime {
    type Upload = Uploader;
    type Download = booster_runtime::Download;

    async fn submit(&self, spec: JobSpec) -> Result<JobId, RuntimeError> {
        runs_here(self, &spec.kind)?;
        Runtime::submit(self, spec).await
    }
    async fn upload(&self, job: JobId) -> Result<Uploader, RuntimeError> {
        Runtime::upload(self, job).await
    }
    async fn job(&self, job: JobId) -> Result<JobStatus, RuntimeError> {
        Runtime::job(self, job).await
    }
    async fn jobs(&self, filter: JobFilter) -> Vec<JobStatus> {
        Runtime::jobs(self, filter).await
    }
    async fn jobs_page(&self, filter: JobFilter, before: Option<JobId>, limit: usize) -> JobsPage {
        Runtime::jobs_page(self, filter, before, limit).await
    }
    async fn set_priority(&self, job: JobId, priority: i64) -> Result<(), RuntimeError> {
        Runtime::set_priority(self, job, priority).await
    }
    async fn set_max_workers(&self, job: JobId, max: Option<u32>) -> Result<(), RuntimeError> {
        Runtime::set_max_workers(self, job, max).await
    }
    async fn pause(&self, job: JobId) -> Result<(), RuntimeError> {
        Runtime::pause(self, job).await
    }
    async fn resume(&self, job: JobId) -> Result<(), RuntimeError> {
        Runtime::resume(self, job).await
    }
    async fn abort(&self, job: JobId) -> Result<(), RuntimeError> {
        Runtime::abort(self, job).await
    }
    async fn retry(&self, job: JobId) -> Result<(), RuntimeError> {
        Runtime::retry(self, job).await
    }
    async fn fail(&self, job: JobId, reason: String) -> Result<(), RuntimeError> {
        Runtime::fail(self, job, reason).await
    }
    async fn destroy(&self, job: JobId) -> Result<(), RuntimeError> {
        Runtime::destroy(self, job).await
    }
    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        Runtime::subscribe(self)
    }
    fn download(&self, job: JobId, category: Category) -> Result<Self::Download, RuntimeError> {
        Runtime::download(self, job, category)
    }
    async fn workers(&self) -> Vec<WorkerStatus> {
        Runtime::workers(self).await
    }
    fn metrics(&self) -> Metrics {
        Runtime::metrics(self)
    }
    fn incidents(&self) -> Vec<Incident> {
        Runtime::incidents(self)
    }
    fn kinds_settings(&self) -> Vec<KindView> {
        Runtime::kinds_settings(self)
    }
    async fn store_kind_settings(
        &self,
        kind: &str,
        settings: Option<KindSettings>,
    ) -> Result<(), RuntimeError> {
        Runtime::store_kind_settings(self, kind, settings).await
    }
    fn crons(&self) -> Vec<CronView> {
        Runtime::crons(self)
    }
    async fn add_cron(&self, spec: CronSpec) -> Result<CronId, RuntimeError> {
        runs_here(self, &spec.job.kind)?;
        Runtime::add_cron(self, spec).await
    }
    async fn change_cron(&self, id: CronId, change: CronAction) -> Result<(), RuntimeError> {
        match change {
            CronAction::Pause => Runtime::pause_cron(self, id).await,
            CronAction::Resume => Runtime::resume_cron(self, id).await,
            CronAction::Remove => Runtime::remove_cron(self, id).await,
        }
    }
}

/// A kind no handler here runs would wait forever: refused, with the
/// kinds there are.
fn runs_here(rt: &Runtime, kind: &str) -> Result<(), RuntimeError> {
    let kinds = Runtime::kinds(rt);
    if !kinds.iter().any(|k| k == kind) {
        return Err(RuntimeError::Invalid(format!(
            "no worker here runs kind {kind:?}; the kinds are {}",
            kinds.join(", ")
        )));
    }
    Ok(())
}

impl UploadSink for Uploader {
    async fn push(&mut self, record: Vec<u8>) -> Result<(), RuntimeError> {
        Uploader::push(self, record).await
    }
    async fn push_line(&mut self, record: Vec<u8>, line: u64) -> Result<(), RuntimeError> {
        Uploader::push_line(self, record, line).await
    }
    async fn push_rejected(
        &mut self,
        raw: Vec<u8>,
        line: u64,
        message: String,
    ) -> Result<(), RuntimeError> {
        Uploader::push_rejected(self, raw, line, message).await
    }
    async fn finish(self) -> Result<JobStatus, RuntimeError> {
        Uploader::finish(self).await
    }
    async fn fail(self, reason: String) -> Result<(), RuntimeError> {
        Uploader::fail(self, reason).await
    }
}
