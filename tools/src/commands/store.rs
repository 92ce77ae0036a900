//! `inspect`, `verify` and `compact`: the data directory itself.

use std::collections::BTreeMap;

use anyhow::Context;
use booster_store::Store;
use serde_json::json;

use super::{with_runtime, Ctx};
use crate::exit;
use crate::progress::{Mode, Progress};
use crate::report;

/// `booster incidents`: the torn tails recovery cut and the damaged ranges
/// it opened without, as the store's log keeps them (G7).
pub async fn incidents(ctx: &Ctx) -> anyhow::Result<i32> {
    let runtime = ctx.open(None, false, true).await?;
    let list = with_runtime(runtime.clone(), async { Ok(runtime.incidents()) }).await?;
    if ctx.json {
        report::print_json(&json!(list));
        return Ok(exit::OK);
    }
    if list.is_empty() {
        outln!(
            "no incidents: recovery never cut a torn tail or found damage in {}",
            ctx.data_dir.display()
        );
    }
    for i in &list {
        outln!("{}", report::incident_line(i));
    }
    Ok(exit::OK)
}

pub async fn inspect(ctx: &Ctx) -> anyhow::Result<i32> {
    let runtime = ctx.open(None, false, true).await?;
    // The counts by state the runtime keeps, never a listing of every
    // job: that held each one in RAM (5.9 GB and 20 s at 4M jobs).
    let (stats, counts) = with_runtime(runtime.clone(), async {
        Ok((runtime.store_stats()?, runtime.metrics().jobs_by_state))
    })
    .await?;
    let by_state: BTreeMap<&str, u64> = (counts.iter())
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    let jobs: u64 = by_state.values().sum();
    let files = segment_files(&ctx.data_dir);
    let on_disk_bytes: u64 = files.iter().map(|(_, len)| len).sum();
    let ratio = if stats.stored_bytes > 0 {
        stats.raw_bytes as f64 / stats.stored_bytes as f64
    } else {
        0.0
    };
    if ctx.json {
        report::print_json(&json!({
            "data_dir": ctx.data_dir,
            "segments": stats.segments,
            "frames": stats.frames,
            "slice_frames": stats.slice_frames,
            "meta_frames": stats.meta_frames,
            "live_bytes": stats.live_bytes,
            "dead_bytes": stats.dead_bytes,
            "raw_bytes": stats.raw_bytes,
            "stored_bytes": stats.stored_bytes,
            "compression_ratio": ratio,
            "bytes_on_disk": on_disk_bytes,
            "jobs": jobs,
            "jobs_by_state": by_state,
            "segment_files": files.iter().map(|(n, l)| json!({"name": n, "bytes": l})).collect::<Vec<_>>(),
        }));
        return Ok(exit::OK);
    }
    outln!("data directory  {}", ctx.data_dir.display());
    outln!(
        "segments        {} ({} on disk)",
        stats.segments,
        report::bytes(on_disk_bytes)
    );
    outln!(
        "frames          {} ({} slices, {} meta)",
        report::count(stats.frames),
        report::count(stats.slice_frames),
        report::count(stats.meta_frames)
    );
    outln!(
        "bytes           {} live, {} dead (compact reclaims dead bytes)",
        report::bytes(stats.live_bytes),
        report::bytes(stats.dead_bytes)
    );
    outln!(
        "compression     {} raw -> {} stored ({ratio:.2}x)",
        report::bytes(stats.raw_bytes),
        report::bytes(stats.stored_bytes)
    );
    let states: Vec<String> = by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
    outln!("jobs            {} ({})", jobs, states.join(", "));
    if !ctx.quiet {
        for (name, len) in &files {
            outln!("  {name}  {}", report::bytes(*len));
        }
    }
    Ok(exit::OK)
}

/// Segment files by name with their sizes.
fn segment_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let len = e.metadata().ok()?.len();
            name.starts_with("seg-").then_some((name, len))
        })
        .collect();
    files.sort();
    files
}

/// Commands that read the files without opening the store need them there.
fn require_data_dir(ctx: &Ctx) -> anyhow::Result<()> {
    if !ctx.data_dir.exists() {
        anyhow::bail!(
            "no data directory at {}; pass --data DIR (or set BOOSTER_DATA)",
            ctx.data_dir.display()
        );
    }
    Ok(())
}

/// Verifies the files as they are, without opening the store: no lock, no
/// recovery, nothing written, whether or not the store would open.
pub async fn verify(ctx: &Ctx) -> anyhow::Result<i32> {
    require_data_dir(ctx)?;
    let key = ctx.master_key()?;
    let dir = ctx.data_dir.clone();
    let report = tokio::task::spawn_blocking(move || Store::verify_dir(&dir, key.as_ref()))
        .await?
        .with_context(|| format!("verifying {}", ctx.data_dir.display()))?;
    let problems: Vec<serde_json::Value> = report
        .problems
        .iter()
        .map(|p| json!({"segment": p.segment_id, "path": p.path, "offset": p.offset, "what": p.what}))
        .collect();
    if ctx.json {
        report::print_json(&json!({
            "ok": report.problems.is_empty(),
            "segments": report.segments,
            "frames": report.frames,
            "tags_checked": report.tags_checked,
            "problems": problems,
        }));
    } else {
        for p in &report.problems {
            outln!(
                "CORRUPT segment {} ({}) offset {}: {}",
                p.segment_id,
                p.path.display(),
                p.offset,
                p.what
            );
        }
        let tags = if ctx.key_file.is_some() {
            format!("{} tags", report::count(report.tags_checked))
        } else {
            "no tags (pass --key-file to check them too)".to_string()
        };
        outln!(
            "checked {} segments, {} frames, {tags}: {}",
            report.segments,
            report::count(report.frames),
            if report.problems.is_empty() {
                "clean".to_string()
            } else {
                format!("{} problems", report.problems.len())
            }
        );
    }
    Ok(if report.problems.is_empty() {
        exit::OK
    } else {
        exit::CORRUPT
    })
}

/// Copies every verifiable batch into a new store (`Store::salvage`) and
/// lists what could not be saved. Exit 0 when everything was copied, 4 when
/// something was lost (the copy holds the rest and opens clean).
pub async fn salvage(ctx: &Ctx, into: &std::path::Path) -> anyhow::Result<i32> {
    require_data_dir(ctx)?;
    let key = ctx.master_key()?;
    let (src, dst) = (ctx.data_dir.clone(), into.to_path_buf());
    let report = tokio::task::spawn_blocking(move || Store::salvage(&src, &dst, key.as_ref()))
        .await?
        .with_context(|| {
            format!(
                "salvaging {} into {}",
                ctx.data_dir.display(),
                into.display()
            )
        })?;
    let unsaved: Vec<serde_json::Value> = report
        .unsaved
        .iter()
        .map(|u| {
            json!({
                "segment": u.segment_id,
                "path": u.path,
                "offset": u.offset,
                "what": u.what,
                "slices": u.slices.iter().map(|k| json!({"job": k.owner, "stream": k.stream, "slice": k.seq})).collect::<Vec<_>>(),
                "meta_lost": u.meta_lost,
            })
        })
        .collect();
    let problems: Vec<serde_json::Value> = report
        .problems
        .iter()
        .map(|p| json!({"segment": p.segment_id, "path": p.path, "offset": p.offset, "what": p.what}))
        .collect();
    if ctx.json {
        report::print_json(&json!({
            "complete": report.complete(),
            "into": into,
            "segments_read": report.segments_read,
            "batches_copied": report.batches_copied,
            "slices_copied": report.slices_copied,
            "meta_records_copied": report.meta_records_copied,
            "unsaved": unsaved,
            "problems": problems,
        }));
    } else {
        for p in &report.problems {
            outln!(
                "PROBLEM {} offset {}: {}",
                p.path.display(),
                p.offset,
                p.what
            );
        }
        for u in &report.unsaved {
            let jobs: std::collections::BTreeSet<u64> = u.slices.iter().map(|k| k.owner).collect();
            let held = match (jobs.is_empty(), u.meta_lost) {
                (true, true) => " (held job state changes)".to_string(),
                (true, false) => String::new(),
                (false, meta) => format!(
                    " (held slices of job{} {}{})",
                    if jobs.len() == 1 { "" } else { "s" },
                    jobs.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if meta { ", and job state changes" } else { "" }
                ),
            };
            outln!(
                "NOT SAVED segment {} ({}) offset {}: {}{held}",
                u.segment_id,
                u.path.display(),
                u.offset,
                u.what
            );
        }
        outln!(
            "read {} segments: copied {} batches ({} slices, {} job records) into {}: {}",
            report.segments_read,
            report::count(report.batches_copied),
            report::count(report.slices_copied),
            report::count(report.meta_records_copied),
            into.display(),
            if report.complete() {
                "everything was saved".to_string()
            } else {
                format!(
                    "{} ranges could not be saved (listed above); in `booster --data {} jobs` a job whose slices were lost shows as damaged, a slice that lost its commit runs again, and a job whose every record was lost is not there at all",
                    report.unsaved.len() + report.problems.len(),
                    into.display()
                )
            }
        );
    }
    Ok(if report.complete() {
        exit::OK
    } else {
        exit::CORRUPT
    })
}

pub async fn compact(ctx: &Ctx, full: bool) -> anyhow::Result<i32> {
    let runtime = ctx.open(None, false, true).await?;
    let progress = Progress::spinner(
        Mode::pick(ctx.json, ctx.quiet, false),
        "compact",
        "copying live frames into new segments",
    );
    let compacted = async {
        Ok(match full {
            true => runtime.compact_full().await?,
            false => runtime.compact().await?,
        })
    };
    let report = with_runtime(runtime.clone(), compacted).await;
    progress.clear();
    let report = report?;
    if ctx.json {
        report::print_json(&json!({
            "segments_before": report.segments_before,
            "segments_after": report.segments_after,
            "bytes_before": report.bytes_before,
            "bytes_after": report.bytes_after,
            "slices_kept": report.slices_kept,
            "slices_dropped": report.slices_dropped,
            "segments_rewritten": report.segments_rewritten,
        }));
    } else {
        ctx.say(format!(
            "compacted {} segments ({}, {} rewritten) into {} ({}): kept {} slices, dropped {}",
            report.segments_before,
            report::bytes(report.bytes_before),
            report.segments_rewritten,
            report.segments_after,
            report::bytes(report.bytes_after),
            report::count(report.slices_kept),
            report::count(report.slices_dropped)
        ));
    }
    Ok(exit::OK)
}
