//! Degraded open (issue 10): bit rot in one frame of a sealed segment costs
//! only what that frame held. The runtime opens, names the damage, the job
//! whose slice rotted shows it, and every other job still downloads.

use std::path::{Path, PathBuf};

use booster_runtime::*;
use booster_store::format::{read_sealed_entries, FrameKind};

use crate::common::{opts, records, upload_all, Echo};

/// Runs one sliced job to completion in its own process lifetime, so each
/// job's frames end in their own sealed segment (shutdown seals).
async fn run_one_job(dir: &Path, n: usize) -> JobId {
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
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bseg"))
        .collect();
    segs.sort();
    let path = segs.last().unwrap().clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let entries = read_sealed_entries(&bytes).expect("the newest segment is sealed");
    let e = entries
        .iter()
        .find(|e| {
            e.header.kind == kind
                && owner.is_none_or(|o| e.header.key.owner == o && e.header.key.stream == stream)
        })
        .expect("a frame of that kind");
    let at = (e.offset + 60) as usize;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    (path, e.offset)
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
