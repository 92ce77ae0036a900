//! Embedding booster-runtime in a Rust service: open, register kinds,
//! submit, upload, watch, control, download, shut down.
//!
//! ```sh
//! cargo run -p booster-runtime --example embed -- /tmp/booster-embed
//! ```

use std::sync::Arc;
use std::time::Duration;

use booster_runtime::{
    Category, HandlerError, JobContext, JobSpec, MasterKey, RecordHandler, Runtime, RuntimeError,
    RuntimeOptions, SimpleHandler,
};

/// A sliced handler: one output record per input record.
struct Upper;

impl RecordHandler for Upper {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if record.is_empty() {
            return Err(HandlerError("empty record".into()));
        }
        out.push(record.to_ascii_uppercase());
        Ok(())
    }
}

/// A simple handler: JSON arguments in, a JSON result out.
struct Add;

impl SimpleHandler for Add {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        let a = args["a"].as_i64().ok_or("argument a is missing")?;
        let b = args["b"].as_i64().ok_or("argument b is missing")?;
        Ok(Some(serde_json::json!(a + b)))
    }
}

#[tokio::main]
async fn main() -> Result<(), RuntimeError> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/booster-embed".into());
    let mut opts = RuntimeOptions::new(&dir);
    opts.slice_size = 1000;
    opts.lease_timeout = Duration::from_secs(10);
    // A real service reads its key from a file: MasterKey::from_file(path).
    opts.master_key = Some(MasterKey([7u8; 32]));
    let rt = Runtime::open(opts).await?;
    rt.register_sliced("upper", Arc::new(Upper));
    rt.register_simple("add", Arc::new(Add));

    // Watch progress events.
    let mut events = rt.subscribe();
    tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            if e.what != "slice_done" {
                println!(
                    "event: job {} {} ({:?}, {:.0}%)",
                    e.job, e.what, e.state, e.percent
                );
            }
        }
    });

    // A simple job.
    let add = rt
        .submit(JobSpec::simple("add", serde_json::json!({"a": 2, "b": 3})))
        .await?;
    println!("add -> {:?}", rt.wait(add).await?.result);

    // A sliced job: upload, process, download.
    let job = rt
        .submit(JobSpec::sliced("upper").with_collect_errors(true))
        .await?;
    let mut up = rt.upload(job).await?;
    for i in 0..10_000u64 {
        let record = if i % 5000 == 4999 {
            Vec::new()
        } else {
            format!("record {i}").into_bytes()
        };
        up.push_line(record, i + 1).await?;
    }
    up.finish().await?;
    let status = rt.wait(job).await?;
    println!(
        "job {job}: {:?}, {} in, {} out, {} errors",
        status.state, status.records_in, status.records_out, status.records_errors
    );
    let first: Vec<String> = rt
        .download(job, Category::Main)?
        .take(3)
        .map(|r| r.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .collect::<Result<_, _>>()?;
    println!("first outputs: {first:?}");
    for e in rt.download(job, Category::Errors)? {
        println!("error record: {}", String::from_utf8_lossy(&e?));
    }

    // Control: priorities and pauses take effect at the next lease.
    let later = rt.submit(JobSpec::sliced("upper")).await?;
    rt.set_priority(later, 1).await?;
    rt.pause(later).await?;
    rt.resume(later).await?;
    rt.abort(later).await?;
    rt.destroy(later).await?;

    rt.shutdown(Duration::from_secs(5)).await
}
