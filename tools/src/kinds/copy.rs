use booster_runtime::{HandlerError, JobContext, RecordHandler, SliceOutcome};

/// Each record to the output unchanged.
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

    fn process_slice(&self, _job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        SliceOutcome::Done {
            output: records.to_vec(),
            record_errors: Vec::new(),
        }
    }
}
