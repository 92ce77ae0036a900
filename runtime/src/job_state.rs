//! `JobState`: the one place the state words live. The CLI, the HTTP API,
//! the dashboard's JSON, the metrics and the reports all spell a state with
//! `as_str` and read one with `FromStr`, so a new state is added here once.

use serde::{Deserialize, Serialize};

/// Where a job is in its life. `ALL` lists every state in the order counts
/// are kept and shown (`Metrics::jobs_by_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Scheduled,
    Queued,
    Running,
    Paused,
    Completed,
    Failed,
    Aborted,
    /// Created with dependencies that have not completed (`JobSpec::after`).
    Waiting,
}

impl JobState {
    /// Every state, in display order; `ALL[s.index()] == s`.
    pub const ALL: [JobState; 8] = [
        JobState::Scheduled,
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Completed,
        JobState::Failed,
        JobState::Aborted,
        JobState::Waiting,
    ];

    /// The word for the state, as the CLI, the API and the dashboard show it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Aborted => "aborted",
            JobState::Waiting => "waiting",
        }
    }

    /// Completed, failed or aborted: nothing more will run.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Aborted
        )
    }

    /// The state's place in `ALL` (for per-state counters).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {given:?}; use one of: scheduled, queued, running, paused, completed, failed, aborted, waiting")]
pub struct UnknownState {
    pub given: String,
}

impl std::str::FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<JobState, UnknownState> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState { given: s.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_word_parses_back_to_its_state() {
        for (i, s) in JobState::ALL.into_iter().enumerate() {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
            assert_eq!(s.index(), i);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(
                json,
                format!("\"{}\"", s.as_str()),
                "serde spells it the same"
            );
        }
    }

    #[test]
    fn unknown_state_word_names_the_choices() {
        let err = "done".parse::<JobState>().unwrap_err().to_string();
        assert!(
            err.contains("\"done\"") && err.contains("completed"),
            "{err}"
        );
    }

    #[test]
    fn only_completed_failed_and_aborted_are_finished() {
        let finished: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_finished())
            .collect();
        assert_eq!(
            finished,
            [JobState::Completed, JobState::Failed, JobState::Aborted]
        );
    }
}
