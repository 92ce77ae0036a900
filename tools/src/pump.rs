//! The one upload pump. `run`/`submit` (a file, a zip member, stdin) and
//! `PUT /api/jobs/{id}/input` (a request body) both stream their records
//! into the job's `Uploader` through [`pump`], so they store the same thing
//! for the same input: a blocking thread cuts records with the input's
//! `RecordSource`, and the async side pushes each item ([`push_item`]: a
//! record with the line it starts on, or a record the reader rejected, with
//! its line and why).
//!
//! **Invariant:** an upload ends only on the reader's end marker (an empty
//! batch). A reader that stops without one (a parser panic) is an error,
//! never the end of the input.

use std::future::Future;

use booster_runtime::{RuntimeError, Uploader};

use crate::formats::{Item, RecordSource};

/// Records the reader hands over at a time.
const BATCH_RECORDS: usize = 1024;

/// Why a pump stopped before the end of its input.
#[derive(Debug)]
pub enum PumpError {
    /// The input could not be read on (the reader's error).
    Read(std::io::Error),
    /// The reader stopped without its end marker (a panic: its text).
    ReaderDied(String),
    /// `stop` resolved first (Ctrl-C).
    Stopped,
    /// The store refused a record (disk full, poisoned): its own error,
    /// which keeps its type on the way to the user.
    Store(RuntimeError),
}

impl std::fmt::Display for PumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PumpError::Read(e) => write!(f, "{e}"),
            PumpError::ReaderDied(why) => f.write_str(why),
            PumpError::Stopped => f.write_str("the upload was stopped"),
            PumpError::Store(e) => write!(f, "{e}"),
        }
    }
}

/// Pushes one parsed item into an upload: a record with the source line
/// it came from, or a record the parser rejected, with its line and why.
pub async fn push_item(uploader: &mut Uploader, item: Item) -> Result<(), RuntimeError> {
    match item {
        Item::Record {
            bytes,
            line,
            separators,
        } => uploader.push_separated(bytes, Some(line), separators).await,
        Item::Rejected { raw, line, message } => uploader.push_rejected(raw, line, message).await,
    }
}

/// Reads `records` to their end on a blocking thread and pushes every item
/// into `uploader`, calling `after_batch` after each batch (progress). An
/// input that stalls (a pipe nobody writes to) never keeps `stop` waiting.
/// The caller finishes the upload on `Ok`, and fails it on `Err`.
pub async fn pump(
    uploader: &mut Uploader,
    mut records: Box<dyn RecordSource>,
    stop: impl Future<Output = ()>,
    mut after_batch: impl FnMut(),
) -> Result<(), PumpError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<Item>>>(8);
    let reader = tokio::task::spawn_blocking(move || loop {
        let mut batch = Vec::with_capacity(BATCH_RECORDS);
        let result = records.next_batch(BATCH_RECORDS, &mut batch);
        let end = matches!(&result, Ok(()) if batch.is_empty()) || result.is_err();
        if tx.blocking_send(result.map(|()| batch)).is_err() || end {
            return;
        }
    });
    tokio::pin!(stop);
    loop {
        let batch = tokio::select! {
            biased;
            () = &mut stop => return Err(PumpError::Stopped),
            batch = rx.recv() => batch,
        };
        let Some(batch) = batch else {
            let why = match reader.await {
                Err(e) if e.is_panic() => format!(
                    "the input reader panicked: {}",
                    panic_text(&*e.into_panic())
                ),
                _ => "the input reader stopped before the end of the input".to_string(),
            };
            return Err(PumpError::ReaderDied(why));
        };
        let batch = batch.map_err(PumpError::Read)?;
        if batch.is_empty() {
            return Ok(());
        }
        for item in batch {
            push_item(uploader, item).await.map_err(PumpError::Store)?;
        }
        after_batch();
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic")
}
