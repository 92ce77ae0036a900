//! Which control action is allowed from which state: the decision table of
//! the job state machine (Rocket Job's states). Everything not listed is
//! refused with `RuntimeError::IllegalTransition`.
//!
//! | action   | scheduled | queued | running      | paused | completed | failed | aborted |
//! |----------|-----------|--------|--------------|--------|-----------|--------|---------|
//! | pause    | yes       | yes    | sliced only  | -      | -         | -      | -       |
//! | resume   | -         | -      | -            | yes    | -         | -      | -       |
//! | abort    | yes       | yes    | yes          | yes    | -         | yes    | -       |
//! | retry    | -         | -      | -            | -      | -         | yes    | -       |
//! | fail     | yes       | yes    | yes          | yes    | -         | -      | -       |
//! | destroy  | yes       | yes    | - (abort it) | yes    | yes       | yes    | yes     |
//! | expire   | yes       | yes (not started) | - | -     | -         | -      | -       |
//!
//! A waiting job (dependencies not completed) may be aborted, failed or
//! destroyed; nothing else.
//!
//! A running simple job cannot be paused: it holds no slices to stop between.

use crate::meta::Control;
use crate::JobState;

pub fn allowed(action: &Control, state: JobState, simple: bool) -> bool {
    use JobState::*;
    match action {
        Control::Pause => matches!(state, Scheduled | Queued) || (state == Running && !simple),
        Control::Resume => state == Paused,
        Control::Abort => matches!(
            state,
            Scheduled | Queued | Running | Paused | Failed | Waiting
        ),
        Control::Retry => state == Failed,
        Control::Fail { .. } => matches!(state, Scheduled | Queued | Running | Paused | Waiting),
        Control::Destroy => state != Running,
        Control::Expire => matches!(state, Scheduled | Queued),
    }
}

/// The actions an operator may take on a job now (`JobStatus::allowed_actions`),
/// in a fixed order: what the table above allows, so a client never guesses.
/// A lost job (its created record was lost) allows none.
pub fn allowed_actions(state: JobState, simple: bool, lost: bool) -> Vec<&'static str> {
    if lost {
        return Vec::new();
    }
    [
        Control::Pause,
        Control::Resume,
        Control::Abort,
        Control::Retry,
        Control::Fail {
            reason: String::new(),
        },
        Control::Destroy,
    ]
    .iter()
    .filter(|a| allowed(a, state, simple))
    .map(Control::verb)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    const ALL: [JobState; 8] = [
        Scheduled, Queued, Running, Paused, Completed, Failed, Aborted, Waiting,
    ];

    fn allowed_from(action: Control, simple: bool) -> Vec<JobState> {
        ALL.into_iter()
            .filter(|s| allowed(&action, *s, simple))
            .collect()
    }

    #[test]
    fn terminal_states_only_allow_destroy_abort_and_retry_of_failed() {
        for s in [Completed, Aborted] {
            assert!(!allowed(&Control::Pause, s, false));
            assert!(!allowed(&Control::Resume, s, false));
            assert!(!allowed(&Control::Abort, s, false));
            assert!(!allowed(&Control::Retry, s, false));
            assert!(allowed(&Control::Destroy, s, false));
        }
        assert_eq!(allowed_from(Control::Retry, false), vec![Failed]);
    }

    #[test]
    fn running_simple_jobs_cannot_pause_but_sliced_can() {
        assert!(!allowed(&Control::Pause, Running, true));
        assert!(allowed(&Control::Pause, Running, false));
    }

    #[test]
    fn allowed_actions_follow_the_table_and_a_lost_job_allows_none() {
        assert_eq!(
            allowed_actions(Running, false, false),
            vec!["pause", "abort", "fail"]
        );
        assert_eq!(allowed_actions(Running, true, false), vec!["abort", "fail"]);
        assert_eq!(
            allowed_actions(Failed, false, false),
            vec!["abort", "retry", "destroy"]
        );
        assert_eq!(allowed_actions(Completed, false, false), vec!["destroy"]);
        assert!(allowed_actions(Failed, false, true).is_empty());
    }

    #[test]
    fn running_jobs_cannot_be_destroyed() {
        assert_eq!(
            allowed_from(Control::Destroy, false),
            vec![Scheduled, Queued, Paused, Completed, Failed, Aborted, Waiting]
        );
    }

    #[test]
    fn a_waiting_job_can_be_aborted_failed_or_destroyed_only() {
        assert_eq!(
            allowed_actions(Waiting, true, false),
            vec!["abort", "fail", "destroy"]
        );
    }
}
