//! Plain-text rendering of what the server returns, for the remote CLI.

use std::io::Write;

use crate::serve::view::{state_name, JobView, WorkerView};

pub fn print_jobs(out: &mut dyn Write, jobs: &[JobView]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6}  {:<10}  {:>3}  {:<20}  {:>7}  {:>12}  description",
        "id", "state", "pri", "kind", "percent", "records"
    )?;
    for j in jobs {
        writeln!(
            out,
            "{:>6}  {:<10}  {:>3}  {:<20}  {:>6.1}%  {:>12}  {}",
            j.id,
            state_name(j.state),
            j.priority,
            j.kind,
            j.percent,
            j.records_in,
            j.description
        )?;
    }
    Ok(())
}

pub fn print_job(out: &mut dyn Write, j: &JobView) -> std::io::Result<()> {
    writeln!(out, "job {} ({}): {}", j.id, j.kind, state_name(j.state))?;
    if !j.description.is_empty() {
        writeln!(out, "  description   {}", j.description)?;
    }
    let limit = j
        .max_workers
        .map_or("no limit".to_string(), |w| w.to_string());
    writeln!(out, "  priority      {}   max workers {limit}", j.priority)?;
    writeln!(
        out,
        "  slices        {} done, {} running, {} queued, {} failed of {}",
        j.slices_done, j.slices_running, j.slices_queued, j.slices_failed, j.slices_total
    )?;
    writeln!(
        out,
        "  records       {} in, {} out, {} errors, {} failed",
        j.records_in, j.records_out, j.records_errors, j.records_failed
    )?;
    let eta = j.eta_s.map_or("-".to_string(), |s| format!("{s:.0} s"));
    writeln!(
        out,
        "  progress      {:.1}%   {:.0} records/s   eta {eta}",
        j.percent, j.records_per_s
    )?;
    if let Some(reason) = &j.failure_reason {
        writeln!(out, "  failure       {reason}")?;
    }
    for l in &j.leases {
        let slice = l.slice.map_or("-".to_string(), |s| s.to_string());
        writeln!(
            out,
            "  lease         worker {} slice {slice} epoch {}",
            l.worker, l.epoch
        )?;
    }
    for g in &j.errors {
        writeln!(out, "  error x{:<6}  {}", g.count, g.message)?;
        for s in &g.samples {
            writeln!(out, "      record {}: {}", s.record_number, s.record)?;
        }
    }
    Ok(())
}

pub fn print_workers(out: &mut dyn Write, workers: &[WorkerView]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6}  {:>8}  {:>6}  {:>8}  lease",
        "worker", "job", "slice", "done"
    )?;
    for w in workers {
        let (job, slice) = match &w.lease {
            Some(l) => (
                l.job.to_string(),
                l.slice.map_or("-".to_string(), |s| s.to_string()),
            ),
            None => ("idle".to_string(), "-".to_string()),
        };
        writeln!(
            out,
            "{:>6}  {:>8}  {:>6}  {:>8}  restarts {}",
            w.worker, job, slice, w.slices_done, w.restarts
        )?;
    }
    Ok(())
}
