//! The record of deployments: the events, the journal that holds them (hash
//! chained, fsynced, anchored), the one typed reader, the state-dir lock, where
//! an open deployment stands for a resume, and the history and stories told
//! from journals.

mod describe;
pub mod event;
pub mod history;
pub mod journal;
pub mod lock;
pub mod reader;
pub mod recorder;
pub mod resume;
pub mod state_dir;
pub mod story;

use std::io;
use std::path::Path;

pub use event::{Event, RecoveryOutcome};
pub use reader::{Entry, JournalRead};

/// One journaled event, as written.
#[derive(Debug, Clone)]
pub struct Record {
    pub event: Event,
    pub line: journal::Line,
}

/// Every journal of a state dir, read, ordered by when each deployment
/// started (file names sort by second only, so two runs in one second could
/// be misordered by name). Journals without a start come first, by name.
pub fn read_all(state_dir: &Path) -> io::Result<Vec<JournalRead>> {
    let mut all = Vec::new();
    for path in journal::list(state_dir)? {
        all.push(reader::read(&path)?);
    }
    all.sort_by(|a, b| {
        a.started_at()
            .cmp(&b.started_at())
            .then_with(|| a.path.cmp(&b.path))
    });
    Ok(all)
}

/// The open deployment of a state dir (never finished, or interrupted), if
/// the newest one is open.
pub fn open_deployment(state_dir: &Path) -> io::Result<Option<JournalRead>> {
    Ok(read_all(state_dir)?
        .into_iter()
        .rfind(|j| j.started_at().is_some())
        .filter(JournalRead::is_open))
}
