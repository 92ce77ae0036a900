//! The job kinds the scenarios run: the built-in `noop` and `copy` that
//! users run (from booster-tools), and `spin-copy`, a `copy` that keeps its
//! worker busy, for the priority scenario.

use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_runtime::{HandlerError, JobContext, RecordHandler, Runtime, SliceOutcome};

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
        let until = Instant::now() + SPIN_PER_RECORD * records.len() as u32;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        SliceOutcome::Done {
            output: records.to_vec(),
            record_errors: Vec::new(),
        }
    }
}

pub fn register_all(rt: &Runtime) {
    booster_tools::kinds::register_builtin(rt);
    rt.register_sliced(SPIN_COPY, Arc::new(SpinCopy));
}
