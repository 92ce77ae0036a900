use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;

pub fn opts(dir: &Path, workers: usize) -> RuntimeOptions {
    let mut o = RuntimeOptions::new(dir);
    o.workers = workers;
    o.slice_size = 10;
    o.lease_timeout = Duration::from_secs(30);
    o
}

pub fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("r{i:05}").into_bytes()).collect()
}

/// Copies every record to `main`.
pub struct Echo;

impl RecordHandler for Echo {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        out.push(record.to_vec());
        Ok(())
    }
}

pub async fn upload_all(rt: &Runtime, job: JobId, recs: &[Vec<u8>]) {
    let mut up = rt.upload(job).await.unwrap();
    for r in recs {
        up.push(r.clone()).await.unwrap();
    }
    up.finish().await.unwrap();
}

pub fn download(rt: &Runtime, job: JobId, category: Category) -> Vec<Vec<u8>> {
    rt.download(job, category)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Polls `cond` until it holds (tests wait on behaviour, not on time).
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for: {what}");
}

pub fn sliced(kind: &str, slice_size: usize) -> JobSpec {
    JobSpec::sliced(kind).with_slice_size(slice_size)
}

pub fn echo() -> Arc<Echo> {
    Arc::new(Echo)
}

/// A simple handler held while `hold` is set (heartbeating), then it
/// returns its args as the result; `{"fail": true}` fails.
#[derive(Default)]
pub struct Held {
    pub hold: std::sync::atomic::AtomicBool,
}

impl SimpleHandler for Held {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        while self.hold.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(2));
            booster_runtime::heartbeat();
        }
        if args["fail"] == serde_json::json!(true) {
            return Err("asked to fail".into());
        }
        Ok(Some(args.clone()))
    }
}
