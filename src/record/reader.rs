//! The one reader of journals: every line parsed into a typed [`Event`], so
//! resume, `history`, `show` and `replay` read the same thing, and renaming an
//! event field fails to compile in each of them rather than silently breaking one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::Event;

/// One journal line, typed: `seq`, `ts`, the event and its fields (SPEC §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
}

/// Why reading stopped before the end of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadProblem {
    /// 1-based line number.
    pub line: u64,
    pub message: String,
}

/// A journal as read: its complete, parsable lines in order, and what stopped
/// the read early, if anything.
#[derive(Debug, Clone)]
pub struct JournalRead {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
    pub problem: Option<ReadProblem>,
}

impl JournalRead {
    /// The deployment id (from `deployment_started`, else the file name).
    pub fn id(&self) -> String {
        match self.entries.first().map(|e| &e.event) {
            Some(Event::DeploymentStarted { id, .. }) => id.clone(),
            _ => file_id(&self.path),
        }
    }

    /// When the deployment started (the first line's time).
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        match self.entries.first() {
            Some(Entry {
                ts,
                event: Event::DeploymentStarted { .. },
                ..
            }) => Some(*ts),
            _ => None,
        }
    }

    /// The outcome of the last `deployment_finished`, if any.
    pub fn last_outcome(&self) -> Option<crate::domain::Outcome> {
        self.entries.iter().rev().find_map(|e| match &e.event {
            Event::DeploymentFinished { outcome, .. } => Some(*outcome),
            _ => None,
        })
    }

    /// Whether the deployment is still open: never finished, or last
    /// finished as `interrupted` (resumable) and not abandoned since.
    pub fn is_open(&self) -> bool {
        let abandoned = self
            .entries
            .iter()
            .any(|e| matches!(e.event, Event::DeploymentAbandoned { .. }));
        self.started_at().is_some()
            && !abandoned
            && self.last_outcome().is_none_or(|o| !o.is_final())
    }
}

/// The file name without `.jsonl`.
pub fn file_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a journal. A torn last line (no newline) or a line that is not a
/// known event ends the read and is reported in `problem`; the lines before
/// it are returned. I/O errors are errors.
pub fn read(path: &Path) -> io::Result<JournalRead> {
    let bytes = fs::read(path)?;
    let mut entries = Vec::new();
    let mut problem = None;
    let mut line_no = 0u64;
    let mut rest: &[u8] = &bytes;
    while !rest.is_empty() {
        line_no += 1;
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            problem = Some(ReadProblem {
                line: line_no,
                message: "the last line is torn (no newline): the writer stopped mid-line".into(),
            });
            break;
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        match serde_json::from_slice::<Entry>(line) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                problem = Some(ReadProblem {
                    line: line_no,
                    message: format!("not a journal event: {e}"),
                });
                break;
            }
        }
    }
    Ok(JournalRead {
        path: path.to_path_buf(),
        entries,
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Outcome;
    use crate::record::journal::Journal;

    fn started() -> Event {
        Event::DeploymentStarted {
            id: "x".into(),
            config: "p.toml".into(),
            service: "svc".into(),
            version: "v2".into(),
            previous: None,
            environment: None,
            operator: "alice".into(),
            strategy: None,
            steps: None,
            router: None,
            anchored: true,
        }
    }

    fn finished(outcome: Outcome) -> Event {
        Event::DeploymentFinished {
            outcome,
            duration_ms: 5,
            reason: None,
        }
    }

    #[test]
    fn written_events_read_back_typed_and_interrupted_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "x").unwrap();
        j.append(&started()).unwrap();
        let path = j.path().to_path_buf();
        let r = read(&path).unwrap();
        assert_eq!(r.entries.len(), 1);
        assert!(r.is_open());
        assert_eq!(r.id(), "x");

        j.append(&finished(Outcome::Interrupted)).unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.last_outcome(), Some(Outcome::Interrupted));
        assert!(r.is_open(), "interrupted is resumable");

        j.append(&finished(Outcome::RolledBack)).unwrap();
        let r = read(&path).unwrap();
        assert!(!r.is_open());
        assert_eq!(r.entries[2].seq, 3);
        assert!(r.problem.is_none());
    }

    #[test]
    fn a_torn_or_unknown_line_stops_the_read_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(dir.path(), "x").unwrap();
        j.append(&started()).unwrap();
        let path = j.path().to_path_buf();
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("{text}{{\"seq\":2,\"ts\":\"2025-01")).unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.problem.as_ref().map(|p| p.line), Some(2));
        fs::write(
            &path,
            format!("{text}{{\"seq\":2,\"ts\":\"2025-01-01T00:00:00Z\",\"event\":\"nope\"}}\n"),
        )
        .unwrap();
        let r = read(&path).unwrap();
        assert!(r.problem.unwrap().message.contains("not a journal event"));
    }
}
