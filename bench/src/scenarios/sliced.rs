//! `sliced`: upload + process (`copy`) + download of N ~100 B CSV records in
//! slices of `--slice-size` (1000), with encryption on and off (zstd stays
//! on: the store cannot turn it off).
//! Each phase is timed on its own: upload is push..finish with the kind held
//! (no slice processed yet), process is releasing the kind..job completed,
//! download is reading every output record back. End to end is the sum of
//! the three, like `limit`'s, so the share of the limit compares like with
//! like; a real run overlaps processing with the upload. Peak RSS is
//! this variant's own (VmHWM reset before it, or a child process per run).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use booster_runtime::{Category, JobShape, JobSpec, JobState};
use serde_json::json;

use crate::booster::{self, CodecMode, RecordPool, DURABILITY};
use crate::handlers::COPY;
use crate::report::Measurement;
use crate::scenarios::Ctx;
use crate::threads;

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let n = ctx.records(10_000_000, 1_000_000);
    let tokio = booster::tokio()?;
    let pool = RecordPool::new();
    let modes: &[CodecMode] = if ctx.lean {
        &[CodecMode::On]
    } else {
        &[CodecMode::On, CodecMode::Off]
    };
    let mut out = Vec::new();
    for &mode in modes {
        out.extend(tokio.block_on(once(ctx, &pool, n, mode, COPY))?);
    }
    Ok(out)
}

pub struct Phases {
    pub upload_s: f64,
    pub process_s: f64,
    pub download_s: f64,
    /// Largest anonymous / file-backed resident bytes seen at a phase's end.
    pub max_rss_anon_bytes: u64,
    pub max_rss_file_bytes: u64,
    /// Per phase: each thread name's busy share of the phase's wall time, in %.
    pub busy: Vec<(&'static str, BTreeMap<String, f64>)>,
    /// Per phase (`PHASES`): the most anonymous resident bytes and live
    /// heap bytes a sampler saw (heap: 0 unless `BOOSTER_BENCH_COUNT_HEAP`).
    pub peaks: Vec<(u64, i64)>,
}

/// The phases, in the order `Phases::peaks` holds them.
pub const PHASES: [&str; 3] = ["upload", "process", "download"];

/// Folds the current RSS split into the running maxima.
fn note_rss(max: &mut (u64, u64)) {
    if let Some((anon, file)) = crate::rss::rss_split_bytes() {
        max.0 = max.0.max(anon);
        max.1 = max.1.max(file);
    }
}

async fn once(
    ctx: &Ctx,
    pool: &RecordPool,
    n: u64,
    mode: CodecMode,
    kind: &str,
) -> anyhow::Result<Vec<Measurement>> {
    let rss_reset = crate::rss::reset_peak_rss();
    std::fs::create_dir_all(&ctx.dir)?;
    let dir = tempfile::tempdir_in(&ctx.dir)?;
    let rt = booster::open(ctx, dir.path(), mode, ctx.workers).await?;
    let phases = upload_process_download(&rt, pool, n, ctx.slice_size, kind).await?;
    rt.shutdown(Duration::from_secs(5)).await?;
    let peak_rss = crate::rss::peak_rss_bytes().unwrap_or(0);
    let bytes = pool.bytes(n) as f64;
    let params = json!({
        "records": n, "slice_size": ctx.slice_size, "workers": ctx.workers,
        "codec_threads": ctx.codec_threads.unwrap_or_else(|| crate::report::cores().max(2)),
        "codec": mode.name(), "zstd_level": ctx.zstd_level,
        "peak_rss_reset": rss_reset,
        "transparent_huge_pages_off": booster_tools::huge_pages::are_off(),
    });
    let variant = mode.name();
    let m = |metric: String, v: f64, unit: &str| {
        Measurement::new("sliced", &metric, v, unit)
            .durability(DURABILITY)
            .record_size(pool.mean_bytes)
            .params(params.clone())
    };
    let mut out = Vec::new();
    let total_s = phases.upload_s + phases.process_s + phases.download_s;
    for (phase, s) in [
        ("upload", phases.upload_s),
        ("process", phases.process_s),
        ("download", phases.download_s),
        ("end_to_end", total_s),
    ] {
        out.push(m(
            format!("{variant}_{phase}_records_per_s"),
            n as f64 / s,
            "records/s",
        ));
        out.push(m(
            format!("{variant}_{phase}_mb_per_s"),
            bytes / s / 1e6,
            "MB/s",
        ));
    }
    out.push(m(
        format!("{variant}_peak_rss"),
        peak_rss as f64 / 1e6,
        "MB",
    ));
    // What the peak is made of: heap, or the store's mapped segment pages.
    // How busy the store's writer thread was per phase, every thread beside it.
    for (phase, by_thread) in &phases.busy {
        let writer = by_thread.get(threads::STORE_WRITER).copied().unwrap_or(0.0);
        let mut p = params.clone();
        p["threads_busy_percent"] = json!(by_thread);
        out.push(
            Measurement::new(
                "sliced",
                &format!("{variant}_{phase}_writer_busy"),
                writer,
                "%",
            )
            .durability(DURABILITY)
            .params(p),
        );
    }
    let anon_mb = phases.max_rss_anon_bytes as f64 / 1e6;
    let file_mb = phases.max_rss_file_bytes as f64 / 1e6;
    out.push(m(format!("{variant}_rss_anon_max"), anon_mb, "MB"));
    out.push(m(format!("{variant}_rss_file_max"), file_mb, "MB"));
    for (phase, (anon, heap)) in PHASES.iter().zip(&phases.peaks) {
        let mb = *anon as f64 / 1e6;
        out.push(m(format!("{variant}_{phase}_rss_anon_peak"), mb, "MB"));
        if *heap > 0 {
            let mb = *heap as f64 / 1e6;
            out.push(m(format!("{variant}_{phase}_heap_live_peak"), mb, "MB"));
        }
    }
    Ok(out)
}

/// Submits a sliced job of `kind`, uploads records 0..n, waits for it, and
/// downloads the output, checking every record came back.
pub async fn upload_process_download(
    rt: &booster_runtime::Runtime,
    pool: &RecordPool,
    n: u64,
    slice_size: usize,
    kind: &str,
) -> anyhow::Result<Phases> {
    let mut spec = JobSpec::sliced(kind);
    spec.shape = JobShape::Sliced {
        slice_size: Some(slice_size),
        collect_errors: true,
    };
    // Held during the upload, so each phase is timed on its own, as `limit`
    // times its phases; end to end is their sum (no overlap credited).
    rt.set_kind_limit(kind, Some(0)).await;
    let job = rt.submit(spec).await?;
    // Counting costs an atomic add per allocation: only when asked.
    if std::env::var_os("BOOSTER_BENCH_COUNT_HEAP").is_some() {
        crate::alloc::start_counting();
    }
    let peaks = crate::rss::PhasePeaks::start(PHASES.len());
    let mut busy = Vec::new();
    let mut cpu = threads::snapshot();
    let started = Instant::now();
    let mut uploader = rt.upload(job).await?;
    for i in 0..n {
        uploader.push_bytes(pool.get(i)).await?;
    }
    uploader.finish().await?;
    let upload_s = started.elapsed().as_secs_f64();
    note_busy(&mut busy, &mut cpu, "upload", upload_s);
    let mut max_rss = (0, 0);
    note_rss(&mut max_rss);
    peaks.enter(1);
    let processing = Instant::now();
    rt.set_kind_limit(kind, None).await;
    let status = tokio::time::timeout(Duration::from_secs(1800), rt.wait(job)).await??;
    let process_s = processing.elapsed().as_secs_f64();
    note_busy(&mut busy, &mut cpu, "process", process_s);
    note_rss(&mut max_rss);
    anyhow::ensure!(
        status.state == JobState::Completed && status.records_out == n,
        "job {job} ended {:?} with {} of {n} records out ({} failed): records were lost or failed",
        status.state,
        status.records_out,
        status.records_failed
    );
    peaks.enter(2);
    let downloading = Instant::now();
    let mut download = rt.download(job, Category::Main)?;
    let (count, bytes, cpu_at_end) = tokio::task::spawn_blocking(move || {
        let mut count = 0u64;
        let mut bytes = 0u64;
        for record in download.by_ref() {
            let record = record?;
            count += 1;
            bytes += record.len() as u64;
        }
        // Before the download is dropped: its reader threads end with it,
        // and a thread that ended is missed by the busy shares.
        let cpu_at_end = threads::snapshot();
        drop(download);
        Ok::<_, booster_runtime::RuntimeError>((count, bytes, cpu_at_end))
    })
    .await??;
    let download_s = downloading.elapsed().as_secs_f64();
    note_busy_at(&mut busy, &mut cpu, cpu_at_end, "download", download_s);
    note_rss(&mut max_rss);
    anyhow::ensure!(
        count == n && bytes == pool.bytes(n),
        "downloaded {count} records ({bytes} bytes), uploaded {n} ({} bytes)",
        pool.bytes(n)
    );
    Ok(Phases {
        upload_s,
        process_s,
        download_s,
        max_rss_anon_bytes: max_rss.0,
        max_rss_file_bytes: max_rss.1,
        busy,
        peaks: peaks.finish(),
    })
}

/// Each thread's busy share since `cpu` over `wall_s`; `cpu` moves on.
fn note_busy(
    busy: &mut Vec<(&'static str, BTreeMap<String, f64>)>,
    cpu: &mut threads::ThreadTimes,
    phase: &'static str,
    wall_s: f64,
) {
    note_busy_at(busy, cpu, threads::snapshot(), phase, wall_s);
}

/// `note_busy` up to the snapshot `now`, taken where the phase ended.
fn note_busy_at(
    busy: &mut Vec<(&'static str, BTreeMap<String, f64>)>,
    cpu: &mut threads::ThreadTimes,
    now: threads::ThreadTimes,
    phase: &'static str,
    wall_s: f64,
) {
    busy.push((phase, threads::busy_percent(cpu, &now, wall_s)));
    *cpu = now;
}
