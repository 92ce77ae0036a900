//! A kind whose progress the test decides: the `gated` handler copies each
//! record, but first takes one permit, and permits come only from
//! [`Gate::release`]. A job of it stays running with its slices leased
//! until the test lets records through, so the API, the dashboard and the
//! CLI can be watched at a known point without depending on how fast a
//! handler runs.
//!
//! ```no_run
//! # async fn f(runtime: booster_runtime::Runtime) {
//! let gate = booster_tests::gate::register(&runtime);
//! // ... submit a `gated` job of 300 records with max_workers 1 ...
//! gate.release(100); // exactly one slice of 100 finishes
//! # }
//! ```
//!
//! A handler waits on the gate with its lease held: open the runtime with a
//! lease timeout longer than the test ([`LEASE_TIMEOUT`]), and release
//! everything ([`Gate::open`]) before shutting it down.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use booster_runtime::{HandlerError, JobContext, RecordHandler, Runtime};

/// The kind [`register`] adds.
pub const GATED: &str = "gated";

/// A lease that outlasts any wait of a test on the gate.
pub const LEASE_TIMEOUT: Duration = Duration::from_secs(600);

/// Permits the `gated` handler takes, one per record.
#[derive(Default)]
pub struct Gate {
    permits: Mutex<u64>,
    freed: Condvar,
}

impl Gate {
    /// Lets `n` more records through.
    pub fn release(&self, n: u64) {
        *self.permits.lock().unwrap() += n;
        self.freed.notify_all();
    }

    /// Lets every record through from now on (before a shutdown).
    pub fn open(&self) {
        self.release(u64::MAX / 2);
    }

    fn take(&self) {
        let mut permits = self.permits.lock().unwrap();
        while *permits == 0 {
            permits = self.freed.wait(permits).unwrap();
        }
        *permits -= 1;
    }
}

/// The `gated` handler: one permit per record, then the record unchanged.
pub struct Gated(pub Arc<Gate>);

impl RecordHandler for Gated {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        self.0.take();
        out.push(record.to_vec());
        Ok(())
    }
}

/// Registers the `gated` kind on `runtime`; returns its gate, closed.
pub fn register(runtime: &Runtime) -> Arc<Gate> {
    let gate = Arc::new(Gate::default());
    runtime.register_sliced(GATED, Arc::new(Gated(gate.clone())));
    gate
}
