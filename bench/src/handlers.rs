//! The job kinds the scenarios run. Trivial on purpose: the harness measures
//! the runtime, not the handler. (When booster-tools exposes its built-in
//! `copy` as a library, `copy` here can be replaced by it.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_runtime::{HandlerError, JobContext, RecordHandler, Runtime, SimpleHandler};

pub const NOOP: &str = "noop";
pub const COPY: &str = "copy";
/// `copy` that also busies the worker for `SPIN_PER_RECORD` per record, so a
/// big job keeps every worker saturated long enough to measure priority.
pub const SPIN_COPY: &str = "spin-copy";
pub const SPIN_PER_RECORD: Duration = Duration::from_micros(2);

/// Simple job that does nothing and returns nothing.
pub struct Noop;

impl SimpleHandler for Noop {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        Ok(None)
    }
}

/// Sliced handler: each record out as it came in.
pub struct Copy;

impl RecordHandler for Copy {
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

pub struct SpinCopy;

impl RecordHandler for SpinCopy {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        let until = Instant::now() + SPIN_PER_RECORD;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        out.push(record.to_vec());
        Ok(())
    }
}

pub fn register_all(rt: &Runtime) {
    rt.register_simple(NOOP, Arc::new(Noop));
    rt.register_sliced(COPY, Arc::new(Copy));
    rt.register_sliced(SPIN_COPY, Arc::new(SpinCopy));
}
