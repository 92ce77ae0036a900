//! The job kinds the scenarios run: the built-in `noop` and `copy` that
//! users run (from booster-tools); `spin-copy`, a `copy` that keeps its
//! worker busy and notes when each slice ends, and `probe`, a no-op that
//! notes when it started, for the priority scenario; `spin`, a simple job
//! that spins its worker for `args.spin_us` microseconds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use booster_runtime::{
    HandlerError, JobContext, RecordHandler, Runtime, SimpleHandler, SliceOutcome,
};

pub use booster_tools::kinds::{COPY, NOOP};

/// `copy` that also busies the worker for `SPIN_PER_RECORD` per record, so a
/// big job keeps every worker saturated long enough to measure priority.
pub const SPIN_COPY: &str = "spin-copy";
pub const SPIN_PER_RECORD: Duration = Duration::from_micros(2);

pub struct SpinCopy;

impl RecordHandler for SpinCopy {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        out.push(record.to_vec());
        Ok(())
    }

    fn process_slice(&self, _job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        spin(SPIN_PER_RECORD * records.len() as u32);
        SLICE_ENDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
        SliceOutcome::Done {
            output: records.to_vec(),
            record_errors: Vec::new(),
        }
    }
}

/// When each `spin-copy` slice's handler returned: its worker is free
/// from then on (but for the commit it sends).
pub static SLICE_ENDS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

/// Simple: notes the moment its handler starts, under `args.probe`.
pub const PROBE: &str = "probe";
/// (probe number, when its handler started), in start order.
pub static PROBE_STARTS: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());

/// Forgets the instants noted so far (a scenario run more than once in
/// one process starts each run clean).
pub fn clear_probe_notes() {
    SLICE_ENDS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    PROBE_STARTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

pub struct Probe;

impl SimpleHandler for Probe {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        let at = Instant::now();
        let probe = args["probe"].as_u64().unwrap_or(u64::MAX);
        PROBE_STARTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((probe, at));
        Ok(None)
    }
}

/// Simple: keeps its worker's CPU busy for `args.spin_us` microseconds.
pub const SPIN: &str = "spin";

pub struct Spin;

impl SimpleHandler for Spin {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        spin(Duration::from_micros(args["spin_us"].as_u64().unwrap_or(0)));
        Ok(None)
    }
}

/// Busy-waits (CPU work, not a sleep) for `d`.
pub fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

pub fn register_all(rt: &Runtime) {
    booster_tools::kinds::register_builtin(rt);
    rt.register_sliced(SPIN_COPY, Arc::new(SpinCopy));
    rt.register_simple(PROBE, Arc::new(Probe));
    rt.register_simple(SPIN, Arc::new(Spin));
}
