//! A remote commit's answer once its lease has begun committing: due when
//! the lease ends, published to every call waiting for it and kept for a
//! retry (`Fleet::answered`).
//!
//! The call that made the commit waits for the answer itself, on the
//! store's callback, with no task between (session 18: a task of its own
//! for every commit, and a blocking thread of its own for the commit, cost
//! the node four thread hand-offs a slice). A call can be cancelled while
//! it waits (its connection drops); its retry must still get the answer,
//! so a wait dropped unfinished hands itself to a task of its own then,
//! and only then.

use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use super::{answer_to, CommitAnswer};
use crate::dispatch::CommitEnd;
use crate::shared::Shared;

/// The answer a committing remote lease owes: its lease's end comes on
/// `on_end`; the answer goes out on `tx` (to every call waiting) and into
/// `Fleet::answered`.
pub(super) struct AnswerDue {
    pub(super) shared: Arc<Shared>,
    pub(super) epoch: u64,
    /// The remote process whose commit it is.
    pub(super) worker: u64,
    /// Input records of the slice (0 for other work): its process's rate.
    pub(super) records: u64,
    /// A batch of simple jobs, whose partly replaced outcome is accepted.
    pub(super) simple: bool,
    /// None once the answer is published, or handed to a task.
    pub(super) wait: Option<Wait>,
    /// Dropped unfinished: hand the wait to a task (the call was
    /// cancelled), or, for the task's own (the node is shutting down),
    /// only take the commit out of `Fleet::committing`.
    pub(super) on_drop: OnDrop,
}

pub(super) type Wait = (
    oneshot::Receiver<CommitEnd>,
    watch::Sender<Option<CommitAnswer>>,
);

#[derive(Clone, Copy)]
pub(super) enum OnDrop {
    HandToTask,
    Forget,
}

impl AnswerDue {
    /// Waits for the lease's end and publishes the answer.
    pub(super) async fn answer(mut self) -> CommitAnswer {
        let (on_end, _) = self.wait.as_mut().expect("published only here");
        let end = on_end.await;
        let (_, tx) = self.wait.take().expect("taken only here and on drop");
        let answer = answer_to(self.epoch, self.simple, end);
        let mut st = self.shared.state.lock();
        st.book
            .fleet
            .note_answer(self.epoch, self.worker, answer.clone(), self.records);
        let _ = tx.send(Some(answer.clone()));
        answer
    }
}

impl Drop for AnswerDue {
    fn drop(&mut self) {
        let Some(wait) = self.wait.take() else {
            return;
        };
        let runtime = tokio::runtime::Handle::try_current();
        match (self.on_drop, runtime) {
            (OnDrop::HandToTask, Ok(runtime)) => {
                let due = AnswerDue {
                    shared: self.shared.clone(),
                    wait: Some(wait),
                    on_drop: OnDrop::Forget,
                    ..*self
                };
                runtime.spawn(async move {
                    due.answer().await;
                });
            }
            // Shutting down: the calls waiting are told so (`tx` drops).
            _ => drop(
                self.shared
                    .state
                    .lock()
                    .book
                    .fleet
                    .committing
                    .remove(&self.epoch),
            ),
        }
    }
}
