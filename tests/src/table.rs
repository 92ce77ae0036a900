//! The job table as a runtime lists it, for tests that compare tables
//! across a reopen (checkpoints, power loss).

use booster_runtime::{JobFilter, Runtime};

/// Every job's status, less what depends on the clock or on the process
/// that asks (rates, leases, why it waits).
pub async fn table_of(rt: &Runtime) -> Vec<serde_json::Value> {
    rt.jobs(JobFilter::default())
        .await
        .expect("the whole table lists")
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).expect("a status serializes");
            if let Some(fields) = v.as_object_mut() {
                for volatile in ["records_per_s", "eta_s", "leases", "waiting_reason"] {
                    fields.remove(volatile);
                }
            }
            v
        })
        .collect()
}
