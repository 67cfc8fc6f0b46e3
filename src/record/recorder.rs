//! The one writer of a deployment's journal while it runs, shared by the
//! engine and what runs on its behalf (a command's process group is
//! journaled the moment it starts): each event is masked, appended and
//! fsynced, then logged and forwarded to the views, in one order.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::journal::Journal;
use super::{Entry, Event, Record};
use crate::domain::CheckOutcome;

/// The journal could not be written; nothing may go on unrecorded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

struct Inner {
    journal: Journal,
    broken: Option<String>,
    records: mpsc::UnboundedSender<Record>,
}

pub struct Recorder {
    inner: Mutex<Inner>,
    path: PathBuf,
    /// Whether lines are masked (then what is forwarded is re-read from the
    /// line, so views see exactly what was journaled).
    masked: bool,
}

impl Recorder {
    /// Writes into `journal`; every event written goes to `records` too.
    pub fn new(journal: Journal, masked: bool, records: mpsc::UnboundedSender<Record>) -> Recorder {
        Recorder {
            path: journal.path().to_path_buf(),
            inner: Mutex::new(Inner {
                journal,
                broken: None,
                records,
            }),
            masked,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the journal stopped taking lines, if it did.
    pub fn broken(&self) -> Option<String> {
        self.lock().broken.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves at worst a line unwritten,
        // which the chain then shows; the journal stays usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Journals an event (flushed to disk, secrets masked), then logs and
    /// forwards what was journaled.
    pub fn record(&self, event: Event) -> Result<(), RecordError> {
        let mut inner = self.lock();
        if let Some(why) = &inner.broken {
            return Err(RecordError(why.clone()));
        }
        match inner.journal.append(&event) {
            Ok(line) => {
                let event = if self.masked {
                    serde_json::from_str::<Entry>(&line.text)
                        .map(|e| e.event)
                        .unwrap_or(event)
                } else {
                    event
                };
                log(&event);
                let _ = inner.records.send(Record { event, line });
                Ok(())
            }
            Err(e) => {
                let msg = format!(
                    "cannot write the journal {}: {e}; stopping with traffic held where it is",
                    self.path.display()
                );
                tracing::error!(target: "cutover", "{msg}");
                inner.broken = Some(msg.clone());
                Err(RecordError(msg))
            }
        }
    }
}

/// One log line per event: warnings for what an operator must see.
fn log(event: &Event) {
    let text = event.describe();
    match event {
        Event::RollbackStarted { .. }
        | Event::WeightFailed { .. }
        | Event::LockLost { .. }
        | Event::WeightDrift { .. }
        | Event::StepDeadline { .. }
        | Event::ApprovalRefused { .. }
        | Event::OrphanStopped { .. }
        | Event::Warning { .. }
        | Event::CheckFinished {
            outcome: CheckOutcome::Failed,
            ..
        }
        // A failing sample counts toward on_failure: never only info.
        | Event::Analysis {
            verdict: crate::domain::Verdict::Fail,
            ..
        } => tracing::warn!(target: "cutover", "{text}"),
        Event::CommandStarted { .. } | Event::CommandFinished { .. } => {
            tracing::debug!(target: "cutover", "{text}")
        }
        _ => tracing::info!(target: "cutover", "{text}"),
    }
}
