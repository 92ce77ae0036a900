//! Between the wire types (v1) and the runtime's own: every enum is matched
//! whole, so a new variant on either side does not compile until its wire
//! form is decided.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::meta::{Control, CronChange, DirmonChange, Expired, Meta, SimpleOutcome};
use crate::table::slice_map::SlicePlace;
use crate::table::{Body, Job, SimpleBody, SliceMap, SliceState, SlicedBody, UploadState};
use crate::{
    CronRun, ErrorGroup, Incident, IncidentKind, JobShape, JobSpec, JobState, KindSettings,
    LeasePolicy, RecordErrorSample, RetryPolicy,
};

impl From<&Meta> for Record {
    fn from(m: &Meta) -> Record {
        match m.clone() {
            Meta::Created {
                first_id,
                at_ms,
                specs,
            } => Record::Created(rec::Created {
                first_id,
                at_ms,
                specs: specs.iter().map(Spec::from).collect(),
            }),
            Meta::Uploaded {
                job,
                slice,
                first_record,
                records,
                rejects,
                line_first,
                lines,
                numbers,
                reject_errors,
            } => Record::Uploaded(rec::Uploaded {
                job,
                slice,
                first_record,
                records,
                rejects,
                line_first,
                lines,
                numbers,
                reject_errors: groups_out(&reject_errors),
            }),
            Meta::UploadComplete { job, at_ms } => {
                Record::UploadComplete(rec::UploadComplete { job, at_ms })
            }
            Meta::UploadFailed { job, reason, at_ms } => {
                Record::UploadFailed(rec::UploadFailed { job, reason, at_ms })
            }
            Meta::BeforeDone { job, at_ms } => Record::BeforeDone(rec::BeforeDone { job, at_ms }),
            Meta::SliceDone {
                job,
                slice,
                at_ms,
                errors,
                error_groups,
                written,
                written_by_category,
            } => Record::SliceDone(rec::SliceDone {
                job,
                slice,
                at_ms,
                errors,
                written,
                written_by_category,
                error_groups: groups_out(&error_groups),
            }),
            Meta::SliceFailed {
                job,
                slice,
                at_ms,
                message,
                sample,
                retry_at_ms,
            } => Record::SliceFailed(rec::SliceFailed {
                job,
                slice,
                at_ms,
                message,
                sample: sample.map(Sample::from),
                retry_at_ms,
            }),
            Meta::AfterDone { job, at_ms } => Record::AfterDone(rec::AfterDone { job, at_ms }),
            Meta::HookFailed {
                job,
                at_ms,
                message,
            } => Record::HookFailed(rec::HookFailed {
                job,
                at_ms,
                message,
            }),
            Meta::SimpleDone {
                at_ms,
                at_us,
                outcomes,
            } => Record::SimpleDone(rec::SimpleDone {
                at_ms,
                at_us: at_us.and_then(finer_than_ms),
                outcomes: outcomes
                    .into_iter()
                    .map(|o| Outcome {
                        job: o.job,
                        started_ms: o.started_us / 1000,
                        result: o.result,
                        retry_at_ms: o.retry_at_ms,
                        started_us: finer_than_ms(o.started_us),
                    })
                    .collect(),
            }),
            Meta::Control { job, at_ms, action } => Record::Control(rec::Control {
                job,
                at_ms,
                action: match action {
                    Control::Pause => Action::Pause,
                    Control::Resume => Action::Resume,
                    Control::Abort => Action::Abort,
                    Control::Retry => Action::Retry,
                    Control::Fail { reason } => Action::Fail { reason },
                    Control::Destroy => Action::Destroy,
                    Control::Expire => Action::Expire,
                },
            }),
            Meta::Priority { job, priority } => Record::Priority(rec::Priority { job, priority }),
            Meta::MaxWorkers { job, max_workers } => {
                Record::MaxWorkers(rec::MaxWorkers { job, max_workers })
            }
            Meta::Restore { job } => Record::Restore(rec::Restore {
                job: Box::new(Row::from(&*job)),
            }),
            Meta::NextId { next } => Record::NextId(rec::NextId { next }),
            Meta::Checkpoint(c) => {
                let c = *c;
                Record::Checkpoint(rec::Checkpoint {
                    table_version: c.table_version,
                    seq: c.seq,
                    next_id: c.next_id,
                    generation: c.generation,
                    log_ms: c.log_ms,
                    counts: c.counts,
                    kind_counts: c.kind_counts,
                    records: c.records,
                })
            }
            Meta::Opened { generation, at_ms } => Record::Opened(rec::Opened { generation, at_ms }),
            Meta::LeaseExpired { at_ms, work } => Record::LeaseExpired(rec::LeaseExpired {
                at_ms,
                work: match work {
                    Expired::Slice { job, slice } => ExpiredWork::Slice { job, slice },
                    Expired::Hook { job } => ExpiredWork::Hook { job },
                    Expired::Simple { jobs } => ExpiredWork::Simple { jobs },
                },
            }),
            Meta::Recovered { at_ms, incidents } => Record::Recovered(rec::Recovered {
                at_ms,
                incidents: incidents.into_iter().map(IncidentV1::from).collect(),
            }),
            Meta::KindSettings {
                kind,
                at_ms,
                settings,
            } => Record::KindSettings(rec::KindSettings {
                kind,
                at_ms,
                settings: settings.map(KindSettingsV1::from),
            }),
            Meta::KindId { id, name } => Record::KindId(rec::KindId { id, name }),
            Meta::Retention { at_ms, retention } => Record::Retention(rec::Retention {
                at_ms,
                completed_ms: retention.completed_ms,
                aborted_ms: retention.aborted_ms,
                failed_ms: retention.failed_ms,
            }),
            Meta::Dirmon {
                dirmon,
                at_ms,
                change,
            } => Record::Dirmon(rec::Dirmon {
                dirmon,
                at_ms,
                change: Box::new(match change {
                    DirmonChange::Define { spec, paused } => {
                        let crate::DirmonSpec {
                            pattern,
                            archive,
                            settle_ms,
                            options,
                        } = *spec;
                        DirmonChangeV1::Define {
                            pattern,
                            archive,
                            settle_ms,
                            options,
                            paused,
                        }
                    }
                    DirmonChange::Pause => DirmonChangeV1::Pause,
                    DirmonChange::Resume => DirmonChangeV1::Resume,
                    DirmonChange::Remove => DirmonChangeV1::Remove,
                    DirmonChange::Taken { file, job } => DirmonChangeV1::Taken { file, job },
                    DirmonChange::Archived { file } => DirmonChangeV1::Archived { file },
                }),
            }),
            Meta::Cron {
                cron,
                at_ms,
                change,
            } => Record::Cron(rec::Cron {
                cron,
                at_ms,
                change: Box::new(match change {
                    CronChange::Define {
                        expr,
                        tz,
                        spec,
                        paused,
                        last_tick_ms,
                    } => CronChangeV1::Define {
                        expr,
                        tz,
                        spec: Box::new(Spec::from(&*spec)),
                        paused,
                        last_tick_ms,
                    },
                    CronChange::Pause => CronChangeV1::Pause,
                    CronChange::Resume => CronChangeV1::Resume,
                    CronChange::Remove => CronChangeV1::Remove,
                }),
            }),
        }
    }
}

impl From<Record> for Meta {
    fn from(r: Record) -> Meta {
        match r {
            Record::Created(rec::Created {
                first_id,
                at_ms,
                specs,
            }) => Meta::Created {
                first_id,
                at_ms,
                specs: specs.into_iter().map(JobSpec::from).collect(),
            },
            Record::Uploaded(rec::Uploaded {
                job,
                slice,
                first_record,
                records,
                rejects,
                line_first,
                lines,
                numbers,
                reject_errors,
            }) => Meta::Uploaded {
                job,
                slice,
                first_record,
                records,
                rejects,
                line_first,
                lines,
                numbers,
                reject_errors: groups_in(reject_errors),
            },
            Record::UploadComplete(rec::UploadComplete { job, at_ms }) => {
                Meta::UploadComplete { job, at_ms }
            }
            Record::UploadFailed(rec::UploadFailed { job, reason, at_ms }) => {
                Meta::UploadFailed { job, reason, at_ms }
            }
            Record::BeforeDone(rec::BeforeDone { job, at_ms }) => Meta::BeforeDone { job, at_ms },
            Record::SliceDone(rec::SliceDone {
                job,
                slice,
                at_ms,
                errors,
                error_groups,
                written,
                written_by_category,
            }) => Meta::SliceDone {
                job,
                slice,
                at_ms,
                errors,
                written,
                written_by_category,
                error_groups: groups_in(error_groups),
            },
            Record::SliceFailed(rec::SliceFailed {
                job,
                slice,
                at_ms,
                message,
                sample,
                retry_at_ms,
            }) => Meta::SliceFailed {
                job,
                slice,
                at_ms,
                message,
                sample: sample.map(RecordErrorSample::from),
                retry_at_ms,
            },
            Record::AfterDone(rec::AfterDone { job, at_ms }) => Meta::AfterDone { job, at_ms },
            Record::HookFailed(rec::HookFailed {
                job,
                at_ms,
                message,
            }) => Meta::HookFailed {
                job,
                at_ms,
                message,
            },
            Record::SimpleDone(rec::SimpleDone {
                at_ms,
                at_us,
                outcomes,
            }) => Meta::SimpleDone {
                at_ms,
                at_us,
                outcomes: outcomes
                    .into_iter()
                    .map(|o| SimpleOutcome {
                        job: o.job,
                        started_us: o.started_us.unwrap_or(crate::clock::ms_to_us(o.started_ms)),
                        result: o.result,
                        retry_at_ms: o.retry_at_ms,
                    })
                    .collect(),
            },
            Record::Control(rec::Control { job, at_ms, action }) => Meta::Control {
                job,
                at_ms,
                action: match action {
                    Action::Pause => Control::Pause,
                    Action::Resume => Control::Resume,
                    Action::Abort => Control::Abort,
                    Action::Retry => Control::Retry,
                    Action::Fail { reason } => Control::Fail { reason },
                    Action::Destroy => Control::Destroy,
                    Action::Expire => Control::Expire,
                },
            },
            Record::Priority(rec::Priority { job, priority }) => Meta::Priority { job, priority },
            Record::MaxWorkers(rec::MaxWorkers { job, max_workers }) => {
                Meta::MaxWorkers { job, max_workers }
            }
            Record::Restore(rec::Restore { job }) => Meta::Restore {
                job: Box::new(Job::from(*job)),
            },
            Record::NextId(rec::NextId { next }) => Meta::NextId { next },
            Record::Checkpoint(rec::Checkpoint {
                table_version,
                seq,
                next_id,
                generation,
                log_ms,
                counts,
                kind_counts,
                records,
            }) => Meta::Checkpoint(Box::new(crate::meta::Checkpoint {
                table_version,
                seq,
                next_id,
                generation,
                log_ms,
                counts,
                kind_counts,
                records,
            })),
            Record::Opened(rec::Opened { generation, at_ms }) => Meta::Opened { generation, at_ms },
            Record::LeaseExpired(rec::LeaseExpired { at_ms, work }) => Meta::LeaseExpired {
                at_ms,
                work: match work {
                    ExpiredWork::Slice { job, slice } => Expired::Slice { job, slice },
                    ExpiredWork::Hook { job } => Expired::Hook { job },
                    ExpiredWork::Simple { jobs } => Expired::Simple { jobs },
                },
            },
            Record::KindSettings(rec::KindSettings {
                kind,
                at_ms,
                settings,
            }) => Meta::KindSettings {
                kind,
                at_ms,
                settings: settings.map(KindSettings::from),
            },
            Record::KindId(rec::KindId { id, name }) => Meta::KindId { id, name },
            Record::Retention(rec::Retention {
                at_ms,
                completed_ms,
                aborted_ms,
                failed_ms,
            }) => Meta::Retention {
                at_ms,
                retention: crate::Retention {
                    completed_ms,
                    aborted_ms,
                    failed_ms,
                },
            },
            Record::Dirmon(rec::Dirmon {
                dirmon,
                at_ms,
                change,
            }) => Meta::Dirmon {
                dirmon,
                at_ms,
                change: match *change {
                    DirmonChangeV1::Define {
                        pattern,
                        archive,
                        settle_ms,
                        options,
                        paused,
                    } => DirmonChange::Define {
                        spec: Box::new(crate::DirmonSpec {
                            pattern,
                            archive,
                            settle_ms,
                            options,
                        }),
                        paused,
                    },
                    DirmonChangeV1::Pause => DirmonChange::Pause,
                    DirmonChangeV1::Resume => DirmonChange::Resume,
                    DirmonChangeV1::Remove => DirmonChange::Remove,
                    DirmonChangeV1::Taken { file, job } => DirmonChange::Taken { file, job },
                    DirmonChangeV1::Archived { file } => DirmonChange::Archived { file },
                },
            },
            Record::Cron(rec::Cron {
                cron,
                at_ms,
                change,
            }) => Meta::Cron {
                cron,
                at_ms,
                change: match *change {
                    CronChangeV1::Define {
                        expr,
                        tz,
                        spec,
                        paused,
                        last_tick_ms,
                    } => CronChange::Define {
                        expr,
                        tz,
                        spec: Box::new(JobSpec::from(*spec)),
                        paused,
                        last_tick_ms,
                    },
                    CronChangeV1::Pause => CronChange::Pause,
                    CronChangeV1::Resume => CronChange::Resume,
                    CronChangeV1::Remove => CronChange::Remove,
                },
            },
            Record::Recovered(rec::Recovered { at_ms, incidents }) => Meta::Recovered {
                at_ms,
                incidents: incidents
                    .into_iter()
                    .map(|i| i.into_incident(at_ms))
                    .collect(),
            },
        }
    }
}

fn time_out(t: SystemTime) -> Time {
    // A time before 1970 was never submitted; it is written as the epoch.
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Time {
        secs_since_epoch: d.as_secs(),
        nanos_since_epoch: d.subsec_nanos(),
    }
}

fn time_in(t: Time) -> SystemTime {
    let d = Duration::new(t.secs_since_epoch, t.nanos_since_epoch.min(999_999_999));
    UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
}

impl From<&JobSpec> for Spec {
    fn from(s: &JobSpec) -> Spec {
        Spec {
            kind: s.kind.clone(),
            shape: match &s.shape {
                JobShape::Simple { args } => Shape::Simple { args: args.clone() },
                JobShape::Sliced {
                    slice_size,
                    collect_errors,
                } => Shape::Sliced {
                    slice_size: *slice_size,
                    collect_errors: *collect_errors,
                },
            },
            priority: s.priority,
            description: s.description.clone(),
            max_workers: s.max_workers,
            run_at: s.run_at.map(time_out),
            expires_at: s.expires_at.map(time_out),
            properties: s.properties.clone(),
            categories: s.categories.clone(),
            singleton: s.singleton.clone(),
            cron: s.cron.map(CronRunV1::from),
            after: s.after.clone(),
            on_dependency_failure: s.on_dependency_failure,
            window: s.window.map(WindowV1),
            destroy_on_complete: s.destroy_on_complete,
        }
    }
}

impl From<Spec> for JobSpec {
    fn from(s: Spec) -> JobSpec {
        JobSpec {
            kind: s.kind,
            shape: match s.shape {
                Shape::Simple { args } => JobShape::Simple { args },
                Shape::Sliced {
                    slice_size,
                    collect_errors,
                } => JobShape::Sliced {
                    slice_size,
                    collect_errors,
                },
            },
            priority: s.priority,
            description: s.description,
            max_workers: s.max_workers,
            run_at: s.run_at.map(time_in),
            expires_at: s.expires_at.map(time_in),
            properties: s.properties,
            categories: s.categories,
            singleton: s.singleton,
            cron: s.cron.map(CronRun::from),
            after: s.after,
            on_dependency_failure: s.on_dependency_failure,
            window: s.window.map(|w| w.0),
            destroy_on_complete: s.destroy_on_complete,
        }
    }
}

impl From<RecordErrorSample> for Sample {
    fn from(s: RecordErrorSample) -> Sample {
        Sample {
            slice: s.slice,
            record_number: s.record_number,
            line: s.line,
            record: s.record,
            message: s.message,
        }
    }
}

impl From<Sample> for RecordErrorSample {
    fn from(s: Sample) -> RecordErrorSample {
        RecordErrorSample {
            slice: s.slice,
            record_number: s.record_number,
            line: s.line,
            record: s.record,
            message: s.message,
        }
    }
}

fn groups_out(groups: &[ErrorGroup]) -> Vec<Group> {
    groups
        .iter()
        .map(|g| Group {
            message: g.message.clone(),
            count: g.count,
            samples: g.samples.iter().cloned().map(Sample::from).collect(),
        })
        .collect()
}

fn groups_in(groups: Vec<Group>) -> Vec<ErrorGroup> {
    groups
        .into_iter()
        .map(|g| ErrorGroup {
            message: g.message,
            count: g.count,
            samples: g.samples.into_iter().map(RecordErrorSample::from).collect(),
        })
        .collect()
}

fn state_out(s: JobState) -> RowState {
    match s {
        JobState::Scheduled => RowState::Scheduled,
        JobState::Queued => RowState::Queued,
        JobState::Running => RowState::Running,
        JobState::Paused => RowState::Paused,
        JobState::Completed => RowState::Completed,
        JobState::Failed => RowState::Failed,
        JobState::Aborted => RowState::Aborted,
        JobState::Waiting => RowState::Waiting,
    }
}

fn state_in(s: RowState) -> JobState {
    match s {
        RowState::Scheduled => JobState::Scheduled,
        RowState::Queued => JobState::Queued,
        RowState::Running => JobState::Running,
        RowState::Paused => JobState::Paused,
        RowState::Completed => JobState::Completed,
        RowState::Failed => JobState::Failed,
        RowState::Aborted => JobState::Aborted,
        RowState::Waiting => JobState::Waiting,
    }
}

fn upload_out(u: UploadState) -> Upload {
    match u {
        UploadState::Open => Upload::Open,
        UploadState::Complete => Upload::Complete,
        UploadState::Failed => Upload::Failed,
    }
}

fn upload_in(u: Upload) -> UploadState {
    match u {
        Upload::Open => UploadState::Open,
        Upload::Complete => UploadState::Complete,
        Upload::Failed => UploadState::Failed,
    }
}

fn slice_state_out(s: SliceState) -> SliceStateV1 {
    match s {
        SliceState::Pending => SliceStateV1::Pending,
        SliceState::Done => SliceStateV1::Done,
        SliceState::Failed => SliceStateV1::Failed,
    }
}

fn slice_state_in(s: SliceStateV1) -> SliceState {
    match s {
        SliceStateV1::Pending => SliceState::Pending,
        SliceStateV1::Done => SliceState::Done,
        SliceStateV1::Failed => SliceState::Failed,
    }
}

/// A snapshot row's slices, one entry each, as v1 spells them.
fn slices_out(map: &SliceMap) -> Vec<(u64, Slice)> {
    map.uploaded
        .iter()
        .filter_map(|n| {
            let place = map.place(n)?;
            let d = map.detail(n);
            let slice = Slice {
                first_record: place.first_record,
                records: place.records,
                line_first: place.line_first,
                lines: d.lines.as_deref().cloned(),
                numbers: d.numbers.as_deref().cloned(),
                state: slice_state_out(map.state(n)?),
                errors: d.errors,
                expiries: (d.expiries > 0).then_some(d.expiries),
                retries: (d.retries > 0).then_some(d.retries),
                retry_at_ms: d.retry_at_ms,
            };
            Some((n, slice))
        })
        .collect()
}

/// The slice map of a snapshot row's slices (a seq listed twice: the
/// first entry holds).
fn slices_in(slices: Vec<(u64, Slice)>) -> SliceMap {
    let mut map = SliceMap::default();
    for (n, e) in slices {
        let place = SlicePlace {
            first_record: e.first_record,
            records: e.records,
            line_first: e.line_first,
        };
        if !map.upload(n, place, e.lines.map(Arc::new), e.numbers.map(Arc::new)) {
            continue;
        }
        map.set_state(n, slice_state_in(e.state));
        map.with_detail(n, |d| {
            d.errors = e.errors;
            d.expiries = e.expiries.unwrap_or(0);
            d.retries = e.retries.unwrap_or(0);
            d.retry_at_ms = e.retry_at_ms;
        });
    }
    map
}

impl From<&Job> for Row {
    fn from(j: &Job) -> Row {
        let body = match &j.body {
            Body::Simple(b) => RowBody::Simple {
                args: (*b.args).clone(),
                result: b.result.clone(),
                expiries: (b.expiries > 0).then_some(b.expiries),
            },
            Body::Sliced(s) => RowBody::Sliced(Box::new(Sliced {
                slice_size: s.slice_size,
                collect_errors: s.collect_errors,
                upload: upload_out(s.upload),
                before_done: s.before_done,
                slices: slices_out(&s.slices),
                records_in: s.records_in,
                records_rejected: s.records_rejected,
                records_out: s.records_out,
                records_written: s.records_written,
                records_errors: s.records_errors,
                records_in_failed_slices: s.records_in_failed_slices,
                categories: s
                    .categories
                    .iter()
                    .cloned()
                    .zip(s.records_by_category.iter().copied())
                    .collect(),
                slices_done: s.slices_done,
                slices_failed: s.slices_failed,
                collected_errors: groups_out(&s.collected_errors),
                failures: s
                    .failures
                    .iter()
                    .map(|(n, (m, sample))| (*n, (m.clone(), sample.clone().map(Sample::from))))
                    .collect(),
                hook_expiries: (s.hook_expiries > 0).then_some(s.hook_expiries),
            })),
        };
        Row {
            id: j.id,
            kind: j.kind.to_string(),
            description: j.description.clone(),
            priority: j.priority,
            max_workers: j.max_workers,
            run_at_ms: j.run_at_ms,
            expires_at_ms: j.expires_at_ms,
            created_ms: j.created_ms,
            started_ms: j.started_us.map(|us| us / 1000),
            completed_ms: j.completed_us.map(|us| us / 1000),
            started_us: j.started_us.and_then(finer_than_ms),
            completed_us: j.completed_us.and_then(finer_than_ms),
            state: state_out(j.state),
            properties: (*j.properties).clone(),
            failure_reason: j.failure_reason.clone(),
            attempts: j.attempts,
            body,
            singleton: j.singleton.as_deref().map(str::to_string),
            cron: j.cron.map(CronRunV1::from),
            after: j.after.clone(),
            on_dependency_failure: j.on_dependency_failure,
            window: j.window.map(WindowV1),
            destroy_on_complete: j.destroy_on_complete,
        }
    }
}

impl From<Row> for Job {
    fn from(r: Row) -> Job {
        let body = match r.body {
            RowBody::Simple {
                args,
                result,
                expiries,
            } => Body::Simple(SimpleBody {
                args: Arc::new(args),
                result,
                expiries: expiries.unwrap_or(0),
            }),
            RowBody::Sliced(s) => {
                let (names, counts): (Vec<String>, Vec<u64>) = s.categories.into_iter().unzip();
                let mut body =
                    SlicedBody::new(s.slice_size, s.collect_errors).with_categories(names);
                body.records_by_category = counts;
                body.upload = upload_in(s.upload);
                body.before_done = s.before_done;
                body.slices = slices_in(s.slices);
                body.records_in = s.records_in;
                body.records_rejected = s.records_rejected;
                body.records_out = s.records_out;
                body.records_written = s.records_written;
                body.records_errors = s.records_errors;
                body.records_in_failed_slices = s.records_in_failed_slices;
                body.slices_done = s.slices_done;
                body.slices_failed = s.slices_failed;
                body.collected_errors = groups_in(s.collected_errors);
                body.hook_expiries = s.hook_expiries.unwrap_or(0);
                body.failures = s
                    .failures
                    .into_iter()
                    .map(|(n, (m, sample))| (n, (m, sample.map(RecordErrorSample::from))))
                    .collect();
                Body::Sliced(Box::new(body))
            }
        };
        Job {
            id: r.id,
            kind: Arc::from(r.kind),
            // Interned when the restored job enters the table.
            kind_id: 0,
            description: r.description,
            priority: r.priority,
            max_workers: r.max_workers,
            run_at_ms: r.run_at_ms,
            expires_at_ms: r.expires_at_ms,
            created_ms: r.created_ms,
            started_us: r.started_us.or(r.started_ms.map(crate::clock::ms_to_us)),
            completed_us: r
                .completed_us
                .or(r.completed_ms.map(crate::clock::ms_to_us)),
            state: state_in(r.state),
            properties: Arc::new(r.properties),
            failure_reason: r.failure_reason,
            attempts: r.attempts,
            body,
            singleton: r.singleton.map(Arc::from),
            cron: r.cron.map(CronRun::from),
            after: r.after,
            on_dependency_failure: r.on_dependency_failure,
            window: r.window.map(|w| w.0),
            destroy_on_complete: r.destroy_on_complete,
            destroyed_ms: None,
        }
    }
}

impl From<CronRun> for CronRunV1 {
    fn from(r: CronRun) -> CronRunV1 {
        CronRunV1 {
            id: r.cron,
            tick_ms: r.tick_ms,
        }
    }
}

impl From<CronRunV1> for CronRun {
    fn from(r: CronRunV1) -> CronRun {
        CronRun {
            cron: r.id,
            tick_ms: r.tick_ms,
        }
    }
}

impl From<Incident> for IncidentV1 {
    fn from(i: Incident) -> IncidentV1 {
        let (torn_tail_bytes, damaged) = match i.kind {
            IncidentKind::TornTail { bytes } => (Some(bytes), None),
            IncidentKind::Damaged {
                end,
                what,
                jobs,
                meta_lost,
                next_id,
            } => (
                None,
                Some(DamagedV1 {
                    end,
                    what,
                    jobs,
                    meta_lost,
                    next_id,
                }),
            ),
        };
        IncidentV1 {
            segment: i.segment,
            file: i.file,
            offset: i.offset,
            torn_tail_bytes,
            damaged,
        }
    }
}

impl IncidentV1 {
    /// The incident, at the time of the record that holds it. A record
    /// with neither part (written by a later version) reads as a torn tail
    /// of 0 bytes rather than failing the open.
    fn into_incident(self, at_ms: u64) -> Incident {
        let kind = match (self.damaged, self.torn_tail_bytes) {
            (Some(d), _) => IncidentKind::Damaged {
                end: d.end,
                what: d.what,
                jobs: d.jobs,
                meta_lost: d.meta_lost,
                next_id: d.next_id,
            },
            (None, bytes) => IncidentKind::TornTail {
                bytes: bytes.unwrap_or(0),
            },
        };
        Incident {
            at: UNIX_EPOCH + Duration::from_millis(at_ms),
            segment: self.segment,
            file: self.file,
            offset: self.offset,
            kind,
        }
    }
}

impl From<KindSettings> for KindSettingsV1 {
    fn from(k: KindSettings) -> KindSettingsV1 {
        KindSettingsV1 {
            max_running: k.max_running,
            retry: RetryV1 {
                max_retries: k.retry.max_retries,
                backoff_base_ms: k.retry.backoff_base_ms,
                jitter_percent: k.retry.jitter_percent,
            },
            lease: k.lease.map(|l| LeaseV1 {
                max_expiries: l.max_expiries,
                timeout_ms: l.timeout.map(|t| t.as_millis() as u64),
            }),
            window: k.window.map(WindowV1),
            destroy_on_complete: k.destroy_on_complete,
        }
    }
}

impl From<KindSettingsV1> for KindSettings {
    fn from(k: KindSettingsV1) -> KindSettings {
        KindSettings {
            max_running: k.max_running,
            retry: RetryPolicy {
                max_retries: k.retry.max_retries,
                backoff_base_ms: k.retry.backoff_base_ms,
                jitter_percent: k.retry.jitter_percent,
            },
            lease: k.lease.map(|l| LeasePolicy {
                max_expiries: l.max_expiries,
                timeout: l.timeout_ms.map(Duration::from_millis),
            }),
            window: k.window.map(|w| w.0),
            destroy_on_complete: k.destroy_on_complete,
        }
    }
}

/// A time in microseconds, when it says more than its milliseconds (which
/// the record carries anyway): a record written from whole milliseconds,
/// or decoded from a record of before microseconds, writes back byte for
/// byte, and a reader loses nothing by its absence (`clock::ms_to_us`).
fn finer_than_ms(us: u64) -> Option<u64> {
    (!us.is_multiple_of(1000)).then_some(us)
}

/// A job's error groups as the meta wire spells them (`Group`), for the
/// job table's rows; none is null.
pub(crate) fn groups_to_json(groups: &[ErrorGroup]) -> Value {
    if groups.is_empty() {
        return Value::Null;
    }
    serde_json::to_value(groups_out(groups)).expect("error groups serialize")
}

pub(crate) fn groups_from_json(v: Value) -> Result<Vec<ErrorGroup>, String> {
    if v.is_null() {
        return Ok(Vec::new());
    }
    let groups: Vec<Group> =
        serde_json::from_value(v).map_err(|e| format!("bad error groups ({e})"))?;
    Ok(groups_in(groups))
}

/// Why each failed slice failed, `[[seq, [message, sample]]]` as the meta
/// wire spells a sample; none is null.
pub(crate) fn failures_to_json(
    failures: &BTreeMap<u64, (String, Option<RecordErrorSample>)>,
) -> Value {
    if failures.is_empty() {
        return Value::Null;
    }
    let wire: Vec<(u64, (&str, Option<Sample>))> = failures
        .iter()
        .map(|(n, (m, s))| (*n, (m.as_str(), s.clone().map(Sample::from))))
        .collect();
    serde_json::to_value(wire).expect("failures serialize")
}

pub(crate) fn failures_from_json(
    v: Value,
) -> Result<BTreeMap<u64, (String, Option<RecordErrorSample>)>, String> {
    if v.is_null() {
        return Ok(BTreeMap::new());
    }
    let wire: Vec<(u64, (String, Option<Sample>))> =
        serde_json::from_value(v).map_err(|e| format!("bad slice failures ({e})"))?;
    Ok(wire
        .into_iter()
        .map(|(n, (m, s))| (n, (m, s.map(RecordErrorSample::from))))
        .collect())
}
