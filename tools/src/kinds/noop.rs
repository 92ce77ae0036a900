use booster_runtime::{HandlerError, JobContext, SimpleHandler};

/// A simple job that does nothing and returns its arguments.
pub struct Noop;

impl SimpleHandler for Noop {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        Ok(Some(args.clone()))
    }
}
