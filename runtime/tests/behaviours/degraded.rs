//! Degraded open (issue 10): bit rot in one frame of a sealed segment costs
//! only what that frame held. The runtime opens, names the damage, the job
//! whose slice rotted shows it, and every other job still downloads.

use std::path::{Path, PathBuf};

use booster_runtime::*;
use booster_store::format::{read_sealed_entries, segment_paths, FooterEntry, FrameKind};

use crate::common::{records, upload_all, Echo};

/// These tests examine or damage the meta log's own frames: no checkpoint
/// may cut the log under them.
pub(crate) fn opts(dir: &std::path::Path, workers: usize) -> RuntimeOptions {
    let mut o = crate::common::opts(dir, workers);
    o.auto_checkpoint = false;
    o
}

/// Runs one sliced job to completion in its own process lifetime, so each
/// job's frames end in their own sealed segment (shutdown seals).
pub(crate) async fn run_one_job(dir: &Path, n: usize) -> JobId {
    let rt = Runtime::open(opts(dir, 1)).await.unwrap();
    rt.register_sliced("echo", std::sync::Arc::new(Echo));
    let id = rt.submit(JobSpec::sliced("echo")).await.unwrap();
    upload_all(&rt, id, &records(n)).await;
    assert_eq!(rt.wait(id).await.unwrap().state, JobState::Completed);
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    id
}

/// The stream of a job's `main` output slices.
const STREAM_OUTPUT: u32 = 1;

/// Flips one byte in the payload of the first frame of `kind` (for a slice,
/// of `owner`'s `stream`) in the newest segment; returns its path and offset.
fn rot(dir: &Path, kind: FrameKind, owner: Option<JobId>, stream: u32) -> (PathBuf, u64) {
    let segs = segment_paths(dir).unwrap();
    let path = segs.last().unwrap().clone();
    let offset = rot_nth(&path, 0, |e| {
        e.header.kind == kind
            && owner.is_none_or(|o| e.header.key.owner == o && e.header.key.stream == stream)
    });
    (path, offset)
}

/// Flips one byte in the payload of the `nth` frame of sealed segment
/// `path` that `pick` accepts; returns the frame's offset.
pub(crate) fn rot_nth(path: &Path, nth: usize, pick: impl Fn(&FooterEntry) -> bool) -> u64 {
    let mut bytes = std::fs::read(path).unwrap();
    let entries = read_sealed_entries(&bytes).expect("the segment is sealed");
    let e = entries
        .iter()
        .filter(|e| pick(e))
        .nth(nth)
        .expect("a frame of that kind");
    let at = (e.offset + 60) as usize;
    bytes[at] ^= 0x40;
    std::fs::write(path, &bytes).unwrap();
    e.offset
}

async fn download_all(rt: &Runtime, id: JobId) -> Vec<Vec<u8>> {
    rt.download(id, Category::Main)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotted_meta_frame_leaves_the_other_jobs_readable_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_one_job(dir.path(), 40).await;
    let _second = run_one_job(dir.path(), 40).await;
    let (path, offset) = rot(dir.path(), FrameKind::Meta, None, 0);
    let rt = Runtime::open(opts(dir.path(), 1))
        .await
        .expect("one rotted meta frame must not stop the open");
    let damaged = &rt.recovery_report().damaged;
    assert!(
        damaged
            .iter()
            .any(|d| d.path == path && d.offset <= offset && offset < d.end && d.meta_lost),
        "the lost meta frame is named: {damaged:?}"
    );
    assert_eq!(rt.job(first).await.unwrap().state, JobState::Completed);
    assert_eq!(download_all(&rt, first).await, records(40));
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotted_slice_is_named_when_read_and_shows_on_its_job_while_others_download_whole() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_one_job(dir.path(), 40).await;
    let second = run_one_job(dir.path(), 40).await;
    let (path, offset) = rot(dir.path(), FrameKind::Slice, Some(second), STREAM_OUTPUT);
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    // A sealed frame is checked when it is read: the download says where.
    let err = rt
        .download(second, Category::Main)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .expect_err("a rotted output slice cannot read back");
    let text = err.to_string();
    assert!(
        text.contains(&format!("offset {offset}")) && text.contains("verify"),
        "{text}"
    );
    let shown = rt.job(second).await.unwrap();
    assert!(
        shown
            .damage
            .iter()
            .any(|d| d.contains(&path.display().to_string()) && d.contains("output slice")),
        "the job names the damage once found: {:?}",
        shown.damage
    );
    assert!(rt.job(first).await.unwrap().damage.is_empty());
    assert_eq!(download_all(&rt, first).await, records(40));
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

/// Submits one job in a process of its own that runs no work, so the
/// job's `Created` record is the first meta frame of a segment of its own.
async fn submit_alone(dir: &Path, spec: JobSpec, upload: Option<usize>) -> (JobId, PathBuf) {
    let mut o = opts(dir, 1);
    o.start_workers = false;
    let rt = Runtime::open(o).await.unwrap();
    let id = rt.submit(spec).await.unwrap();
    if let Some(n) = upload {
        upload_all(&rt, id, &records(n)).await;
    }
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    (id, segment_paths(dir).unwrap().last().unwrap().clone())
}

/// Three queued simple jobs, each submitted by a process of its own; the
/// middle one's `Created` record is rotted. Returns the ids, the rotted
/// segment and the rotted frame's offset.
async fn three_with_the_middle_created_rotted(dir: &Path) -> ([JobId; 3], PathBuf, u64) {
    let mut ids = [0; 3];
    let mut paths = Vec::new();
    for (i, id) in ids.iter_mut().enumerate() {
        let spec = JobSpec::simple("noop", serde_json::json!(i));
        let (got, path) = submit_alone(dir, spec, None).await;
        *id = got;
        paths.push(path);
    }
    let offset = rot_nth(&paths[1], 0, |e| e.header.kind == FrameKind::Meta);
    (ids, paths.swap_remove(1), offset)
}

/// What every job whose `Created` record rotted must show: listed, failed,
/// and named with the damaged range, never "not found".
async fn assert_lost(rt: &Runtime, id: JobId, path: &Path, offset: u64) {
    let st = rt
        .job(id)
        .await
        .unwrap_or_else(|e| panic!("job {id} whose created record rotted: {e}"));
    assert_eq!(st.state, JobState::Failed, "{st:?}");
    let reason = st.failure_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("created record was lost")
            && reason.contains(&path.display().to_string())
            && reason.contains(&offset.to_string()),
        "{reason}"
    );
    assert!(!st.damage.is_empty(), "the job names the damage: {st:?}");
    let listed = rt.jobs(JobFilter::default()).await.unwrap();
    assert!(listed.iter().any(|j| j.id == id), "listed: {listed:?}");
    let err = rt
        .retry(id)
        .await
        .expect_err("a job whose spec is lost cannot run again");
    assert!(err.to_string().contains("salvage"), "{err}");
    let err = rt
        .destroy(id)
        .await
        .expect_err("destroying it would hide the loss");
    assert!(err.to_string().contains("salvage"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_job_whose_created_record_rotted_is_listed_as_lost_not_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let ([first, lost, third], path, offset) =
        three_with_the_middle_created_rotted(dir.path()).await;
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert_lost(&rt, lost, &path, offset).await;
    for id in [first, third] {
        assert_eq!(rt.job(id).await.unwrap().state, JobState::Queued);
    }
    // The next id is past the lost one: ids are never reused.
    let next = rt
        .submit(JobSpec::simple("noop", serde_json::json!(4)))
        .await
        .unwrap();
    assert_eq!(next, third + 1);
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_sliced_job_whose_created_record_rotted_is_found_by_its_later_records() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_one_job(dir.path(), 20).await;
    // The newest job: no later id shows a gap, only its own upload records
    // (in the same segment, after the rotted one) name it.
    let (lost, path) = submit_alone(dir.path(), JobSpec::sliced("echo"), Some(20)).await;
    let offset = rot_nth(&path, 0, |e| e.header.kind == FrameKind::Meta);
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("echo", std::sync::Arc::new(Echo));
    assert_lost(&rt, lost, &path, offset).await;
    assert_eq!(download_all(&rt, first).await, records(20));
    let next = rt
        .submit(JobSpec::simple("noop", serde_json::json!(4)))
        .await
        .unwrap();
    assert!(next > lost, "id {next} reuses the lost job's id {lost}");
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_range_is_logged_once_by_the_first_process_that_runs_work() {
    let dir = tempfile::tempdir().unwrap();
    let ([_, lost, _], path, offset) = three_with_the_middle_created_rotted(dir.path()).await;
    let reopen = |workers: bool| {
        let mut o = opts(dir.path(), 1);
        o.start_workers = workers;
        Runtime::open(o)
    };
    let shut = |rt: Runtime| async move {
        rt.shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap()
    };
    // A read-only open writes nothing it did not do itself.
    let rt = reopen(false).await.unwrap();
    assert!(rt.incidents().is_empty());
    shut(rt).await;
    for _ in 0..2 {
        let rt = reopen(true).await.unwrap();
        let incidents = rt.incidents();
        assert_eq!(incidents.len(), 1, "logged once: {incidents:?}");
        let i = &incidents[0];
        assert_eq!(i.file, path.file_name().unwrap().to_str().unwrap());
        match &i.kind {
            IncidentKind::Damaged {
                end,
                jobs,
                meta_lost,
                ..
            } => {
                assert!(i.offset <= offset && offset < *end, "{i:?}");
                assert!(*meta_lost && jobs.contains(&lost), "{i:?}");
            }
            other => panic!("not damage: {other:?}"),
        }
        shut(rt).await;
    }
}

/// Rot found by a read is kept as an incident, so the next process shows it
/// on the job without reading the slice again (sealed frames are checked
/// only when read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rot_found_by_a_read_shows_on_its_job_in_the_next_process_too() {
    let dir = tempfile::tempdir().unwrap();
    run_one_job(dir.path(), 40).await;
    let second = run_one_job(dir.path(), 40).await;
    let (_, offset) = rot(dir.path(), FrameKind::Slice, Some(second), STREAM_OUTPUT);
    {
        let mut o = opts(dir.path(), 1);
        o.start_workers = false;
        let rt = Runtime::open(o).await.unwrap();
        assert!(
            rt.job(second).await.unwrap().damage.is_empty(),
            "not read yet"
        );
        let read = rt
            .download(second, Category::Main)
            .unwrap()
            .collect::<Result<Vec<_>, _>>();
        assert!(read.is_err());
        rt.shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let shown = rt.job(second).await.unwrap().damage;
    assert!(
        shown
            .iter()
            .any(|d| d.contains(&format!("offsets {offset}"))),
        "{shown:?}"
    );
    let incidents = rt.incidents();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

/// A segment file that went missing held one job's slice commits: the store
/// opens without it, names it, the job's slices run again from the input
/// that is still there, and every other job downloads whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_segment_that_held_a_job_s_commits_runs_its_slices_again() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = submit_alone(dir.path(), JobSpec::sliced("echo"), Some(40)).await;
    {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        rt.register_sliced("echo", std::sync::Arc::new(Echo));
        assert_eq!(rt.wait(first).await.unwrap().state, JobState::Completed);
        rt.shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }
    let worked = segment_paths(dir.path()).unwrap().last().unwrap().clone();
    let second = run_one_job(dir.path(), 30).await;
    std::fs::remove_file(&worked).unwrap();

    let rt = Runtime::open(opts(dir.path(), 1))
        .await
        .expect("a missing segment must not stop the open");
    rt.register_sliced("echo", std::sync::Arc::new(Echo));
    let named = rt
        .recovery_report()
        .damaged
        .iter()
        .any(|d| d.path == worked && !d.identified && d.what.contains("missing"));
    assert!(named, "{:?}", rt.recovery_report().damaged);
    assert_eq!(rt.wait(first).await.unwrap().state, JobState::Completed);
    assert_eq!(download_all(&rt, first).await, records(40));
    assert_eq!(download_all(&rt, second).await, records(30));
    let file = worked.file_name().unwrap().to_str().unwrap();
    assert!(
        rt.incidents().iter().any(|i| i.file == file),
        "kept as an incident: {:?}",
        rt.incidents()
    );
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!worked.exists(), "nothing takes the missing file's place");
}

/// After a compaction a job's output frames and the checkpoint that says
/// its slices are done lie in different frames. An unreadable frame header
/// there loses frames nothing names: open finds which done slices' output
/// the store no longer holds, the job shows the damage, its download fails
/// instead of leaving a silent gap, and the other job downloads whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_an_unknown_loss_took_is_named_on_its_job_and_its_download_fails() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_one_job(dir.path(), 40).await;
    let second = run_one_job(dir.path(), 40).await;
    {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        rt.compact().await.unwrap();
        rt.shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }
    let (path, frame) = segment_paths(dir.path())
        .unwrap()
        .into_iter()
        .find_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            let e = read_sealed_entries(&bytes).ok()?.into_iter().find(|e| {
                e.header.kind == FrameKind::Slice
                    && e.header.key.owner == first
                    && e.header.key.stream == STREAM_OUTPUT
                    && e.header.key.seq == 2
            })?;
            Some((p, e))
        })
        .expect("the compacted output of slice 2");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[frame.offset as usize + 20] ^= 0x01; // inside the frame header
    let footer = bytes.len() - booster_store::format::FOOTER_TAIL_LEN - 20;
    bytes[footer] ^= 0x10; // recovery must scan the segment
    std::fs::write(&path, &bytes).unwrap();

    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("echo", std::sync::Arc::new(Echo));
    assert!(
        rt.recovery_report().damaged.iter().any(|d| !d.identified),
        "{:?}",
        rt.recovery_report().damaged
    );
    let shown = rt.job(first).await.unwrap();
    assert_eq!(shown.state, JobState::Completed);
    assert!(
        shown.damage.iter().any(|d| d.contains("slice 2")),
        "the job names its lost output: {:?}",
        shown.damage
    );
    let err = rt
        .download(first, Category::Main)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .expect_err("a download with a lost slice fails");
    assert!(err.to_string().contains("may have been"), "{err}");
    assert!(rt.job(second).await.unwrap().damage.is_empty());
    assert_eq!(download_all(&rt, second).await, records(40));
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

/// The sealed meta frame holding one slice's `Uploaded` record rotted: the
/// job's table has a hole where that slice was. The slice is named on the
/// job, and the job's download stops there with an error, never a file
/// that silently lacks its records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_whose_uploaded_record_was_lost_is_named_and_stops_the_download() {
    use booster_store::format::{decode_frame_payload, decode_records, decode_segment_header};
    let dir = tempfile::tempdir().unwrap();
    let (job, path) = submit_alone(dir.path(), JobSpec::sliced("echo"), Some(60)).await;
    let bytes = std::fs::read(&path).unwrap();
    let header = decode_segment_header(&bytes).unwrap();
    let uploaded_slice_1 = read_sealed_entries(&bytes)
        .unwrap()
        .into_iter()
        .filter(|e| e.header.kind == FrameKind::Meta)
        .find(|e| {
            let (h, raw) =
                decode_frame_payload(&bytes[e.offset as usize..], &header, None).unwrap();
            decode_records(&raw, h.record_count)
                .unwrap()
                .iter()
                .any(|r| {
                    let text = String::from_utf8_lossy(r);
                    text.contains(r#""t":"uploaded""#) && text.contains(r#""slice":1,"#)
                })
        })
        .expect("slice 1's uploaded record");
    let mut bytes = bytes;
    bytes[uploaded_slice_1.offset as usize + 60] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("echo", std::sync::Arc::new(Echo));
    rt.wait_idle().await;
    let shown = rt.job(job).await.unwrap();
    assert!(
        shown.damage.iter().any(|d| d.contains("input slice 1")),
        "the hole is named on the job: {shown:?}"
    );
    let err = rt
        .download(job, Category::Main)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .expect_err("a download with a hole fails");
    assert!(err.to_string().contains("slice 1 of job"), "{err}");
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();

    // Salvaged, the copy has no damage of its own, yet the hole is named.
    let copy = tempfile::tempdir().unwrap();
    let into = copy.path().join("salvaged");
    let report = booster_store::Store::salvage(dir.path(), &into, None).unwrap();
    assert!(!report.complete());
    let rt = Runtime::open(opts(&into, 1)).await.unwrap();
    assert!(rt.recovery_report().damaged.is_empty());
    let shown = rt.job(job).await.unwrap();
    assert!(
        shown.damage.iter().any(|d| d.contains("input slice 1")),
        "{shown:?}"
    );
    assert!(rt
        .download(job, Category::Main)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .is_err());
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

/// A done slice's output frame is gone from a store that opened clean (an
/// outside tool or a bug deleted it; nothing marks the range damaged). The
/// download must stop there with an error naming the slice, never hand out
/// a file that silently lacks its records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_slice_whose_output_frame_is_gone_stops_the_download() {
    use booster_store::{Batch, SliceKey, Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let id = run_one_job(dir.path(), 40).await;
    {
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store
            .append(Batch::new().delete(SliceKey {
                owner: id,
                stream: STREAM_OUTPUT,
                seq: 1,
            }))
            .unwrap();
        store.close().unwrap();
    }
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert!(
        rt.recovery_report().damaged.is_empty(),
        "the store opened clean"
    );
    let err = rt
        .download(id, Category::Main)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .expect_err("a download missing a done slice's output fails");
    assert!(
        err.to_string().contains("slice 1") && err.to_string().contains(&format!("job {id}")),
        "{err}"
    );
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

/// Known fault 7: a job waiting on a dependency whose `created` record
/// rotted sees it lost, as the open lists it, never "destroyed": its
/// settle waits for the end of replay, once the lost rows are in. One
/// that fails on a broken dependency fails naming the loss; one that
/// runs anyway runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_on_a_dependency_whose_created_record_rotted_sees_it_lost() {
    let dir = tempfile::tempdir().unwrap();
    let noop = |n: u64| JobSpec::simple("noop", serde_json::json!(n));
    let (dep, dep_segment) = submit_alone(dir.path(), noop(0), None).await;
    let fails = noop(1).with_after(&[dep], DependencyFailure::Fail);
    let (fails, _) = submit_alone(dir.path(), fails, None).await;
    let runs = noop(2).with_after(&[dep], DependencyFailure::Run);
    let (runs, _) = submit_alone(dir.path(), runs, None).await;
    let offset = rot_nth(&dep_segment, 0, |e| e.header.kind == FrameKind::Meta);
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert_lost(&rt, dep, &dep_segment, offset).await;
    let st = rt.job(fails).await.unwrap();
    assert_eq!(st.state, JobState::Failed, "{st:?}");
    let reason = st.failure_reason.unwrap_or_default();
    assert!(
        reason.contains(&format!("job {dep}")) && reason.contains("was lost"),
        "{reason}"
    );
    assert_eq!(rt.job(runs).await.unwrap().state, JobState::Queued);
    // The rotted frame lost meta records: a job unfinished when it was
    // found is named, one created after it is not, in the next process
    // too.
    let unfinished = |rt: &Runtime, id: JobId| {
        let rt = rt.clone();
        async move { !rt.job(id).await.unwrap().damage.is_empty() }
    };
    assert!(unfinished(&rt, runs).await);
    let later = rt.submit(noop(3)).await.unwrap();
    assert!(!unfinished(&rt, later).await);
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert!(unfinished(&rt, runs).await);
    assert_eq!(rt.job(later).await.unwrap().state, JobState::Queued);
    assert!(!unfinished(&rt, later).await);
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

/// The acknowledged tail of the last segment is cut inside a frame header,
/// so no frame names what went: it held one job's slice commits, and those
/// slices run again. The job that was running names the loss, in this
/// process and in the next one (where the cut segment is no longer the
/// last); a job that finished before names nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_an_unnamed_tail_cut_took_are_named_on_the_job_that_runs_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let before = run_one_job(dir.path(), 40).await;
    let (job, _) = submit_alone(dir.path(), JobSpec::sliced("echo"), Some(200)).await;
    let open = || async {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        rt.register_sliced("echo", std::sync::Arc::new(Echo));
        rt
    };
    let rt = open().await;
    assert_eq!(rt.wait(job).await.unwrap().state, JobState::Completed);
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let path = segment_paths(dir.path()).unwrap().last().unwrap().clone();
    let bytes = std::fs::read(&path).unwrap();
    let output = read_sealed_entries(&bytes)
        .unwrap()
        .into_iter()
        .find(|e| {
            e.header.kind == FrameKind::Slice
                && e.header.key.owner == job
                && e.header.key.stream == STREAM_OUTPUT
                && e.header.key.seq == 10
        })
        .expect("the commits lie in the last segment");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(output.offset + 8).unwrap();
    drop(file);

    let named = |rt: &Runtime, shown: &[String]| {
        let path = path.display().to_string();
        assert!(
            shown.iter().any(|d| d.contains(&path)),
            "the job names the loss: {shown:?}; {:?}",
            rt.recovery_report().damaged
        );
    };
    let rt = open().await;
    let damaged = &rt.recovery_report().damaged;
    let cut: Vec<_> = damaged
        .iter()
        .filter(|d| d.path == path && d.meta_lost && !d.identified)
        .collect();
    assert!(!cut.is_empty(), "{damaged:?}");
    // Named by the rule for unfinished jobs, not by the range's slices.
    assert!(
        cut.iter().all(|d| d.slices.iter().all(|k| k.owner != job)),
        "{cut:?}"
    );
    named(&rt, &rt.job(job).await.unwrap().damage);
    assert_eq!(rt.wait(job).await.unwrap().state, JobState::Completed);
    assert_eq!(download_all(&rt, job).await, records(200));
    named(&rt, &rt.job(job).await.unwrap().damage);
    assert!(rt.job(before).await.unwrap().damage.is_empty());
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();

    let rt = open().await;
    named(&rt, &rt.job(job).await.unwrap().damage);
    assert!(rt.job(before).await.unwrap().damage.is_empty());
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
