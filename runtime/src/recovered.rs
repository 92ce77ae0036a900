//! What recovery did or found on this open, as `Meta::Recovered` incidents
//! (G7: a torn tail is "truncated on recovery and logged"; the log is the
//! meta log, so the record outlives the stderr line and every compaction).

use std::collections::BTreeSet;
use std::time::SystemTime;

use booster_store::RecoveryReport;

use crate::state::State;
use crate::{Incident, IncidentKind, JobId};

/// The incidents of this open that the log does not hold yet. Every torn
/// tail in `report` is new: this open cut it, and the next one will not
/// find it. A damaged range stays until its segment is restored, so each
/// open finds it again: it is new only if no incident already names its
/// segment and offset, and only a process that runs work (`runs_work`)
/// logs it, since a read-only open writes nothing it did not do.
pub fn new_incidents(
    report: &RecoveryReport,
    state: &State,
    runs_work: bool,
    at: SystemTime,
) -> Vec<Incident> {
    let logged = |segment: u64, offset: u64| {
        state
            .book
            .incidents
            .iter()
            .any(|i| i.segment == segment && i.offset == offset)
    };
    let mut out: Vec<Incident> = report
        .truncated
        .iter()
        .map(|&(segment, offset, bytes)| Incident {
            at,
            segment,
            file: booster_store::format::segment_file_name(segment),
            offset,
            kind: IncidentKind::TornTail { bytes },
        })
        .collect();
    if !runs_work {
        return out;
    }
    for d in &report.damaged {
        if logged(d.segment_id, d.offset) {
            continue;
        }
        let mut jobs: BTreeSet<JobId> = d.slices.iter().map(|k| k.owner).collect();
        if d.meta_lost {
            jobs.extend(state.book.lost.iter().copied());
        }
        out.push(damage_incident(
            d,
            d.what.clone(),
            jobs.into_iter().collect(),
            state.book.next_id,
            at,
        ));
    }
    out
}

/// The incident that keeps damaged range `d` (found at open, or by a read:
/// `Shared::note_damage`), saying `what` and naming `jobs`; `next_id` is
/// the book's when it is found (the jobs created by then are below it).
pub fn damage_incident(
    d: &booster_store::Damage,
    what: String,
    jobs: Vec<JobId>,
    next_id: JobId,
    at: SystemTime,
) -> Incident {
    Incident {
        at,
        segment: d.segment_id,
        file: d
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| booster_store::format::segment_file_name(d.segment_id)),
        offset: d.offset,
        kind: IncidentKind::Damaged {
            end: d.end,
            what,
            jobs,
            meta_lost: d.meta_lost,
            next_id: Some(next_id),
        },
    }
}
