use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

/// Tracks how many slices of each job run at once.
#[derive(Default)]
struct Overlap {
    now: Mutex<HashMap<JobId, usize>>,
    max: Mutex<HashMap<JobId, usize>>,
}

impl RecordHandler for Overlap {
    fn process(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        {
            let mut now = self.now.lock();
            let n = now.entry(job.id).or_default();
            *n += 1;
            let mut max = self.max.lock();
            let m = max.entry(job.id).or_default();
            *m = (*m).max(*n);
        }
        std::thread::sleep(Duration::from_millis(15));
        *self.now.lock().get_mut(&job.id).unwrap() -= 1;
        out.push(record.to_vec());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_workers_caps_the_slices_of_a_job_running_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 4)).await.unwrap();
    let mut capped = sliced("overlap", 1);
    capped.max_workers = Some(2);
    let capped = rt.submit(capped).await.unwrap();
    let free = rt.submit(sliced("overlap", 1)).await.unwrap();
    upload_all(&rt, capped, &records(24)).await;
    upload_all(&rt, free, &records(24)).await;
    let overlap = Arc::new(Overlap::default());
    rt.register_sliced("overlap", overlap.clone());
    rt.wait(capped).await.unwrap();
    rt.wait(free).await.unwrap();
    let max = overlap.max.lock().clone();
    assert_eq!(
        max[&capped], 2,
        "capped job ran {} slices at once",
        max[&capped]
    );
    assert!(max[&free] > 2, "the uncapped job used more workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_workers_changed_at_runtime_applies_to_the_next_lease() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 4)).await.unwrap();
    let job = rt.submit(sliced("overlap", 1)).await.unwrap();
    rt.set_max_workers(job, Some(1)).await.unwrap();
    upload_all(&rt, job, &records(12)).await;
    let overlap = Arc::new(Overlap::default());
    rt.register_sliced("overlap", overlap.clone());
    rt.wait(job).await.unwrap();
    assert_eq!(overlap.max.lock()[&job], 1);
    assert_eq!(rt.job(job).await.unwrap().max_workers, Some(1));
}
