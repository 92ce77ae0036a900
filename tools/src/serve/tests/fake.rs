//! An in-memory stand-in for `Runtime` whose jobs move only when a test says
//! so (`advance`), so API and browser tests can watch progress happen
//! without depending on how fast handlers run. State rules follow the
//! runtime's contract: pause from queued/running/scheduled, resume from
//! paused, retry from failed, abort and fail from any unfinished state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use booster_runtime::{
    Category, ErrorGroup, JobEvent, JobFilter, JobId, JobShape, JobSpec, JobState, JobStatus,
    JobsPage, LeaseInfo, Metrics, RecordErrorSample, RuntimeError, WorkerStatus,
};
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::serve::{JobControl, UploadSink};

const FAKE_KINDS: [&str; 3] = ["copy", "slow", "exec"];
const FAKE_WORKERS: usize = 2;

struct FakeJob {
    status: JobStatus,
    slice_size: usize,
    input: Vec<Vec<u8>>,
    errors: Vec<Vec<u8>>,
}

#[derive(Default)]
struct FakeState {
    next_id: JobId,
    jobs: BTreeMap<JobId, FakeJob>,
}

#[derive(Clone)]
pub struct FakeRuntime {
    state: Arc<Mutex<FakeState>>,
    events: broadcast::Sender<JobEvent>,
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime {
            state: Arc::default(),
            events: broadcast::channel(1024).0,
        }
    }

    /// How many jobs were ever submitted.
    pub fn jobs_submitted(&self) -> usize {
        self.state.lock().jobs.len()
    }

    /// Completes up to `slices` queued slices of the job (a worker lease is
    /// shown on the next one while the job runs), publishing one event each.
    pub fn advance(&self, job: JobId, slices: u64) {
        let mut st = self.state.lock();
        let j = st.jobs.get_mut(&job).expect("advance: no such job");
        for _ in 0..slices {
            if j.status.slices_queued == 0 || j.status.state != JobState::Running {
                break;
            }
            j.status.slices_queued -= 1;
            j.status.slices_done += 1;
            let done_records = (j.status.slices_done as usize * j.slice_size).min(j.input.len());
            j.status.records_out = done_records as u64;
            j.status.records_processed = done_records as u64;
            j.status.percent = 100.0 * j.status.slices_done as f64 / j.status.slices_total as f64;
            j.status.records_per_s = 1000.0;
            j.status.eta_s = Some(j.status.slices_queued as f64);
            if j.status.slices_queued == 0 {
                j.status.state = JobState::Completed;
                j.status.completed_at = Some(SystemTime::now());
                j.status.leases.clear();
            } else {
                j.status.leases = vec![lease(job, j.status.slices_done)];
            }
            let _ = self.events.send(event(&j.status, "slice_done"));
        }
    }

    /// Blocks until an event stream is open (the test's watcher is
    /// listening), besides the server's own history sampler.
    pub fn wait_for_subscriber(&self) {
        while self.events.receiver_count() <= crate::serve::history::SAMPLER_RECEIVERS {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn priority(&self, job: JobId) -> u8 {
        self.state.lock().jobs[&job].status.priority
    }

    fn with_job<T>(
        &self,
        job: JobId,
        f: impl FnOnce(&mut FakeJob) -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        let mut st = self.state.lock();
        let j = st.jobs.get_mut(&job).ok_or(RuntimeError::NotFound(job))?;
        let out = f(j)?;
        let _ = self.events.send(event(&j.status, "state"));
        Ok(out)
    }

    fn transition(
        &self,
        job: JobId,
        action: &str,
        from: &[JobState],
        to: JobState,
    ) -> Result<(), RuntimeError> {
        self.with_job(job, |j| {
            if !from.contains(&j.status.state) {
                return Err(RuntimeError::IllegalTransition {
                    job,
                    action: action.to_string(),
                    state: j.status.state,
                });
            }
            j.status.state = to;
            Ok(())
        })
    }
}

fn lease(job: JobId, slice: u64) -> LeaseInfo {
    let now = SystemTime::now();
    LeaseInfo {
        worker: 0,
        job,
        slice: Some(slice),
        epoch: 1,
        since: now,
        deadline: now + Duration::from_secs(30),
    }
}

fn event(s: &JobStatus, what: &str) -> JobEvent {
    JobEvent {
        job: s.id,
        state: s.state,
        slices_done: s.slices_done,
        slices_total: s.slices_total,
        records_out: s.records_out,
        percent: s.percent,
        what: what.to_string(),
    }
}

const UNFINISHED: [JobState; 4] = [
    JobState::Scheduled,
    JobState::Queued,
    JobState::Running,
    JobState::Paused,
];

pub(crate) fn new_status(id: JobId, spec: JobSpec) -> (JobStatus, usize) {
    let (upload_complete, slice_size) = match &spec.shape {
        JobShape::Simple { .. } => (true, 1),
        JobShape::Sliced { slice_size, .. } => (false, slice_size.unwrap_or(100)),
    };
    let status = JobStatus {
        id,
        kind: spec.kind,
        description: spec.description,
        state: JobState::Queued,
        priority: spec.priority,
        max_workers: spec.max_workers,
        created_at: SystemTime::now(),
        started_at: None,
        completed_at: None,
        run_at: spec.run_at,
        expires_at: spec.expires_at,
        upload_complete,
        slices_total: 0,
        slices_queued: 0,
        slices_running: 0,
        slices_done: 0,
        slices_failed: 0,
        records_in: 0,
        records_out: 0,
        records_out_by_category: Default::default(),
        records_processed: 0,
        records_errors: 0,
        records_in_failed_slices: 0,
        records_failed: 0,
        percent: 0.0,
        records_per_s: 0.0,
        eta_s: None,
        leases: Vec::new(),
        errors: Vec::new(),
        failure_reason: None,
        waiting_reason: None,
        damage: Vec::new(),
        cron: None,
        result: None,
        attempts: 0,
        properties: spec.properties,
        allowed_actions: Vec::new(),
    };
    (status, slice_size)
}

fn group_by_message(samples: &[RecordErrorSample]) -> Vec<ErrorGroup> {
    let mut groups: Vec<ErrorGroup> = Vec::new();
    for s in samples {
        match groups.iter_mut().find(|g| g.message == s.message) {
            Some(g) => {
                g.count += 1;
                g.samples.push(s.clone());
            }
            None => groups.push(ErrorGroup {
                message: s.message.clone(),
                count: 1,
                samples: vec![s.clone()],
            }),
        }
    }
    groups
}

pub struct FakeUpload {
    rt: FakeRuntime,
    job: JobId,
    records: Vec<Vec<u8>>,
    rejected: Vec<RecordErrorSample>,
}

impl UploadSink for FakeUpload {
    async fn push(&mut self, record: Vec<u8>) -> Result<(), RuntimeError> {
        self.records.push(record);
        Ok(())
    }
    async fn push_line(&mut self, record: Vec<u8>, _line: u64) -> Result<(), RuntimeError> {
        self.records.push(record);
        Ok(())
    }
    async fn push_rejected(
        &mut self,
        raw: Vec<u8>,
        line: u64,
        message: String,
    ) -> Result<(), RuntimeError> {
        self.rejected.push(RecordErrorSample {
            slice: 0,
            record_number: (self.records.len() + self.rejected.len() + 1) as u64,
            line: Some(line),
            record: String::from_utf8_lossy(&raw).into_owned(),
            message,
        });
        Ok(())
    }
    async fn finish(self) -> Result<JobStatus, RuntimeError> {
        let FakeUpload {
            rt,
            job,
            records,
            rejected,
        } = self;
        let mut st = rt.state.lock();
        let j = st.jobs.get_mut(&job).ok_or(RuntimeError::NotFound(job))?;
        let slices = records.len().div_ceil(j.slice_size) as u64;
        let s = &mut j.status;
        s.upload_complete = true;
        s.records_in = (records.len() + rejected.len()) as u64;
        s.records_errors = rejected.len() as u64;
        s.slices_total = slices;
        s.slices_queued = slices;
        s.started_at = Some(SystemTime::now());
        if s.state == JobState::Queued {
            s.state = if slices == 0 {
                JobState::Completed
            } else {
                JobState::Running
            };
        }
        j.status.errors = group_by_message(&rejected);
        j.input = records;
        j.errors = rejected
            .into_iter()
            .map(|r| r.record.into_bytes())
            .collect();
        let _ = rt.events.send(event(&j.status, "upload_complete"));
        Ok(j.status.clone())
    }
    async fn fail(self, reason: String) -> Result<(), RuntimeError> {
        let mut st = self.rt.state.lock();
        if let Some(j) = st.jobs.get_mut(&self.job) {
            j.status.state = JobState::Failed;
            j.status.failure_reason = Some(reason);
        }
        Ok(())
    }
}

impl JobControl for FakeRuntime {
    type Upload = FakeUpload;
    type Download = std::vec::IntoIter<Result<Vec<u8>, RuntimeError>>;

    async fn submit(&self, spec: JobSpec) -> Result<JobId, RuntimeError> {
        if !(1..=100).contains(&spec.priority) {
            return Err(RuntimeError::BadPriority(spec.priority.into()));
        }
        if !FAKE_KINDS.contains(&spec.kind.as_str()) {
            return Err(RuntimeError::UnknownKind(spec.kind));
        }
        let mut st = self.state.lock();
        st.next_id += 1;
        let id = st.next_id;
        let (status, slice_size) = new_status(id, spec);
        let _ = self.events.send(event(&status, "created"));
        st.jobs.insert(
            id,
            FakeJob {
                status,
                slice_size,
                input: Vec::new(),
                errors: Vec::new(),
            },
        );
        Ok(id)
    }
    async fn upload(&self, job: JobId) -> Result<FakeUpload, RuntimeError> {
        let st = self.state.lock();
        let j = st.jobs.get(&job).ok_or(RuntimeError::NotFound(job))?;
        if j.status.upload_complete {
            return Err(RuntimeError::Invalid(format!(
                "job {job} already has its input"
            )));
        }
        Ok(FakeUpload {
            rt: self.clone(),
            job,
            records: Vec::new(),
            rejected: Vec::new(),
        })
    }
    async fn job(&self, job: JobId) -> Result<JobStatus, RuntimeError> {
        let st = self.state.lock();
        let j = st.jobs.get(&job).ok_or(RuntimeError::NotFound(job))?;
        Ok(j.status.clone())
    }
    async fn jobs(&self, filter: JobFilter) -> Vec<JobStatus> {
        let st = self.state.lock();
        st.jobs
            .values()
            .map(|j| &j.status)
            .filter(|s| filter.state.is_none_or(|f| f == s.state))
            .filter(|s| filter.kind.as_ref().is_none_or(|k| *k == s.kind))
            .filter(|s| {
                filter.text.as_ref().is_none_or(|t| {
                    s.description.contains(t.as_str()) || s.kind.contains(t.as_str())
                })
            })
            .cloned()
            .collect()
    }
    async fn jobs_page(&self, filter: JobFilter, before: Option<JobId>, limit: usize) -> JobsPage {
        let all = self.jobs(filter).await;
        let total = all.len();
        let below: Vec<JobStatus> = all
            .into_iter()
            .filter(|j| before.is_none_or(|b| j.id < b))
            .collect();
        let jobs = below[below.len().saturating_sub(limit)..].to_vec();
        let next_before = (below.len() > jobs.len()).then(|| jobs[0].id);
        JobsPage {
            jobs,
            total,
            next_before,
        }
    }
    async fn set_priority(&self, job: JobId, priority: i64) -> Result<(), RuntimeError> {
        if !(1..=100).contains(&priority) {
            return Err(RuntimeError::BadPriority(priority));
        }
        self.with_job(job, |j| {
            j.status.priority = priority as u8;
            Ok(())
        })
    }
    async fn set_max_workers(&self, job: JobId, max: Option<u32>) -> Result<(), RuntimeError> {
        self.with_job(job, |j| {
            j.status.max_workers = max;
            Ok(())
        })
    }
    async fn pause(&self, job: JobId) -> Result<(), RuntimeError> {
        let from = [JobState::Scheduled, JobState::Queued, JobState::Running];
        self.transition(job, "pause", &from, JobState::Paused)
    }
    async fn resume(&self, job: JobId) -> Result<(), RuntimeError> {
        self.transition(job, "resume", &[JobState::Paused], JobState::Running)
    }
    async fn abort(&self, job: JobId) -> Result<(), RuntimeError> {
        self.transition(job, "abort", &UNFINISHED, JobState::Aborted)
    }
    async fn retry(&self, job: JobId) -> Result<(), RuntimeError> {
        self.transition(job, "retry", &[JobState::Failed], JobState::Running)
    }
    async fn fail(&self, job: JobId, reason: String) -> Result<(), RuntimeError> {
        self.transition(job, "fail", &UNFINISHED, JobState::Failed)?;
        self.with_job(job, |j| {
            j.status.failure_reason = Some(reason);
            Ok(())
        })
    }
    async fn destroy(&self, job: JobId) -> Result<(), RuntimeError> {
        let mut st = self.state.lock();
        st.jobs.remove(&job).ok_or(RuntimeError::NotFound(job))?;
        Ok(())
    }
    fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }
    fn download(&self, job: JobId, category: Category) -> Result<Self::Download, RuntimeError> {
        let st = self.state.lock();
        let j = st.jobs.get(&job).ok_or(RuntimeError::NotFound(job))?;
        let records = match category {
            Category::Input => j.input.clone(),
            Category::Main => j.input[..j.status.records_out as usize].to_vec(),
            Category::Errors => j.errors.clone(),
            Category::Named(name) => {
                return Err(RuntimeError::Invalid(format!(
                    "job {job} has no category {:?}",
                    name.as_str()
                )))
            }
        };
        Ok(records.into_iter().map(Ok).collect::<Vec<_>>().into_iter())
    }
    async fn workers(&self) -> Vec<WorkerStatus> {
        let st = self.state.lock();
        let lease = st
            .jobs
            .values()
            .find_map(|j| j.status.leases.first().cloned());
        (0..FAKE_WORKERS)
            .map(|w| WorkerStatus {
                worker: w,
                lease: if w == 0 { lease.clone() } else { None },
                slices_done: 0,
                restarts: 0,
            })
            .collect()
    }
    fn incidents(&self) -> Vec<booster_runtime::Incident> {
        Vec::new()
    }
    fn kinds_settings(&self) -> Vec<booster_runtime::KindView> {
        Vec::new()
    }
    async fn store_kind_settings(
        &self,
        _kind: &str,
        _settings: Option<booster_runtime::KindSettings>,
    ) -> Result<(), RuntimeError> {
        Err(RuntimeError::Invalid(
            "the test double stores no kind settings".into(),
        ))
    }
    fn metrics(&self) -> Metrics {
        let st = self.state.lock();
        let mut by_state: BTreeMap<String, (JobState, u64)> = BTreeMap::new();
        for j in st.jobs.values() {
            by_state
                .entry(format!("{:?}", j.status.state))
                .or_insert((j.status.state, 0))
                .1 += 1;
        }
        Metrics {
            jobs_by_state: by_state.into_values().collect(),
            slices_processed: st.jobs.values().map(|j| j.status.slices_done).sum(),
            records_processed: st.jobs.values().map(|j| j.status.records_out).sum(),
            ..Metrics::default()
        }
    }
}
