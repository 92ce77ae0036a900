//! The demo's summary: every count reconciled, speed, sizes, and the check
//! that no record text appears in clear under the data directory.

use std::path::Path;
use std::time::Duration;

use booster_runtime::JobState;
use serde_json::json;

use super::generate::{contains, Generated, HEADER};
use super::{Outcome, Paths};
use crate::commands::Ctx;
use crate::exit;
use crate::report::{self, bytes, count};

struct Check {
    name: &'static str,
    /// None: the check could not be made here (it neither passes nor fails).
    ok: Option<bool>,
    detail: String,
}

pub fn report(
    ctx: &Ctx,
    paths: &Paths,
    generated: &Generated,
    outcome: &Outcome,
    total_time: Duration,
) -> anyhow::Result<i32> {
    let big = &outcome.big;
    let (files, disk_bytes, found) = scan_for_clear_text(&paths.data_dir, &needles(generated))?;
    let records_per_s = big.records_in as f64 / outcome.process_time.as_secs_f64().max(1e-9);
    let checks = [
        Check {
            name: "completed",
            ok: Some(
                big.state == JobState::Completed && outcome.urgent.state == JobState::Completed,
            ),
            detail: format!(
                "big job {}, urgent job {}",
                big.state.as_str(),
                outcome.urgent.state.as_str()
            ),
        },
        Check {
            name: "reconciled",
            ok: Some(
                big.records_in == generated.records
                    && big.records_processed + big.records_failed == big.records_in
                    && big.records_failed == generated.planted(),
            ),
            detail: format!(
                "{} in = {} out + {} failed; {} planted bad",
                count(big.records_in),
                count(big.records_out),
                count(big.records_failed),
                count(generated.planted())
            ),
        },
        Check {
            name: "downloaded",
            ok: Some(
                outcome.output_records == big.records_out
                    && outcome.error_records == big.records_failed,
            ),
            detail: format!(
                "{} records in {}, {} in {}",
                count(outcome.output_records),
                outcome.output_path.display(),
                count(outcome.error_records),
                outcome.errors_path.display()
            ),
        },
        Check {
            name: "priority",
            ok: outcome.priority.ok(),
            detail: outcome.priority.detail().to_string(),
        },
        Check {
            name: "encrypted",
            ok: Some(found.is_empty() && files > 0),
            detail: if found.is_empty() {
                format!(
                    "none of {} record strings found in {files} files ({}) under {}",
                    needles(generated).len(),
                    bytes(disk_bytes),
                    paths.data_dir.display()
                )
            } else {
                format!("found in clear: {}", found.join(", "))
            },
        },
    ];
    let all_ok = checks.iter().all(|c| c.ok != Some(false));
    if ctx.json {
        let checks_json: serde_json::Value = checks
            .iter()
            .map(|c| (c.name.to_string(), json!({"ok": c.ok, "detail": c.detail})))
            .collect::<serde_json::Map<_, _>>()
            .into();
        report::print_json(&json!({
            "ok": all_ok,
            "dir": paths.dir,
            "key_file": paths.key_path,
            "job": report::job_json(big),
            "urgent_job": report::job_json(&outcome.urgent),
            "records_in": big.records_in,
            "records_out": big.records_out,
            "records_failed": big.records_failed,
            "records_per_s": records_per_s,
            "slices": big.slices_total,
            "workers": outcome.workers,
            "raw_bytes": generated.raw_bytes,
            "store_raw_bytes": outcome.store.raw_bytes,
            "store_stored_bytes": outcome.store.stored_bytes,
            "bytes_on_disk": disk_bytes,
            "seconds": total_time.as_secs_f64(),
            "checks": checks_json,
        }));
    } else {
        ctx.say(format!(
            "5. summary ({} in all)\n   records   {} in, {} out, {} ({})\n   speed     {} records/s on {} (upload {}, upload+process {}, download {})\n   slices    {} of {} records\n   bytes     {} of CSV in; the store holds input, output and errors: {} raw -> {} on disk, compressed and encrypted ({})",
            report::duration(total_time),
            count(big.records_in),
            count(big.records_out),
            report::plural(big.records_failed, "error"),
            generated.planted_text(),
            count(records_per_s.round() as u64),
            report::plural(outcome.workers as u64, "worker"),
            report::duration(outcome.upload_time),
            report::duration(outcome.process_time),
            report::duration(outcome.download_time),
            report::plural(big.slices_total, "slice"),
            count(outcome.slice_records),
            bytes(generated.raw_bytes),
            bytes(outcome.store.raw_bytes),
            bytes(disk_bytes),
            size_ratio(outcome.store.raw_bytes, disk_bytes),
        ));
        for c in &checks {
            ctx.say(format!(
                "   {} {:<10} {}",
                match c.ok {
                    Some(true) => "ok  ",
                    Some(false) => "FAIL",
                    None => "n/a ",
                },
                c.name,
                c.detail
            ));
        }
        if let Some(group) = big.errors.first() {
            if let Some(sample) = group.samples.first() {
                ctx.say(format!(
                    "   e.g. error \"{}\" at line {}: {}",
                    group.message,
                    sample.line.unwrap_or(sample.record_number),
                    report::truncate(&report::escape(&sample.record), 70)
                ));
            }
        }
    }
    Ok(if all_ok { exit::OK } else { exit::ERROR })
}

/// "8.2x smaller", or, where a small job is outweighed by the store's
/// fixed size on disk, "11.3x larger: the store's fixed overhead".
fn size_ratio(raw: u64, disk: u64) -> String {
    let ratio = raw as f64 / disk.max(1) as f64;
    if ratio >= 1.0 {
        format!("{ratio:.1}x smaller")
    } else {
        format!(
            "{:.1}x larger: the store's fixed overhead outweighs so small a job",
            1.0 / ratio.max(1e-9)
        )
    }
}

fn needles(generated: &Generated) -> Vec<String> {
    let mut needles = generated.samples.clone();
    needles.push(HEADER.to_string());
    needles
}

/// (files scanned, their bytes, the needles found in clear).
fn scan_for_clear_text(dir: &Path, needles: &[String]) -> anyhow::Result<(u64, u64, Vec<String>)> {
    let mut files = 0;
    let mut total_bytes = 0;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let content = std::fs::read(entry.path())?;
            files += 1;
            total_bytes += content.len() as u64;
            for needle in needles {
                if contains(&content, needle.as_bytes()) && !found.contains(needle) {
                    found.push(needle.clone());
                }
            }
        }
    }
    Ok((files, total_bytes, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_ratio_says_larger_when_the_store_outweighs_the_job() {
        assert_eq!(size_ratio(82, 10), "8.2x smaller");
        assert!(
            size_ratio(10, 40).starts_with("4.0x larger"),
            "{}",
            size_ratio(10, 40)
        );
    }
}
