//! One run per state dir: an exclusive `flock` on `<state_dir>/lock`, holding
//! who runs (pid, host, operator, start). The kernel drops the lock when the
//! process dies, so a stale lock file is simply taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Who holds (or held) the lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub operator: String,
    pub started: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} (pid {}, since {})",
            self.operator, self.host, self.pid, self.started
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another cutover run holds {path}: {holder}; wait for it to finish, or stop it (it holds traffic and can be resumed)")]
    Held { path: String, holder: Holder },
    #[error("another cutover run holds {path}")]
    HeldUnknown { path: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process dies).
pub struct StateLock {
    lock: Flock<File>,
    path: PathBuf,
    /// The previous holder, when its process died without releasing the file.
    pub stale: Option<Holder>,
    leave_as_found: bool,
}

impl StateLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Nothing was done under this lock: on release, put the stale holder's
    /// record back, so the run that does take over still reports it.
    pub fn leave_as_found(&mut self) {
        self.leave_as_found = true;
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // A clean release leaves no holder behind to be reported as stale.
        let _ = self.lock.set_len(0);
        if let (true, Some(stale)) = (self.leave_as_found, &self.stale) {
            if let Ok(body) = serde_json::to_string(stale) {
                let _ = self.lock.seek(SeekFrom::Start(0));
                let _ = self.lock.write_all(body.as_bytes());
            }
        }
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Takes the lock of `state_dir` (created 0700 if needed).
pub fn acquire(state_dir: &Path, operator: &str) -> Result<StateLock, LockError> {
    let path = state_dir.join("lock");
    let io = |source: std::io::Error| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    super::state_dir::ensure(state_dir).map_err(io)?;
    let file = super::state_dir::open_or_create(
        &path,
        OpenOptions::new().read(true).write(true).truncate(false),
    )
    .map_err(io)?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, _)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(match serde_json::from_str::<Holder>(&text) {
                Ok(holder) => LockError::Held {
                    path: path.display().to_string(),
                    holder,
                },
                Err(_) => LockError::HeldUnknown {
                    path: path.display().to_string(),
                },
            });
        }
    };
    let mut previous = String::new();
    let _ = lock.read_to_string(&mut previous);
    let stale = serde_json::from_str::<Holder>(&previous).ok();
    let me = Holder {
        pid: std::process::id(),
        host: hostname(),
        operator: operator.to_string(),
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let body = serde_json::to_string(&me).map_err(|e| io(std::io::Error::other(e)))?;
    lock.set_len(0).map_err(io)?;
    lock.seek(SeekFrom::Start(0)).map_err(io)?;
    lock.write_all(body.as_bytes()).map_err(io)?;
    lock.sync_data().map_err(io)?;
    Ok(StateLock {
        lock,
        path,
        stale,
        leave_as_found: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "alice").unwrap();
        assert!(first.stale.is_none());
        match acquire(dir.path(), "bob") {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder.operator, "alice");
                assert_eq!(holder.pid, std::process::id());
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("the lock was given twice"),
        }
        drop(first);
        // Released cleanly: nothing stale.
        let again = acquire(dir.path(), "bob").unwrap();
        assert!(again.stale.is_none());
        // A holder whose process died leaves its record: reported as stale.
        std::mem::forget(again);
        let path = dir.path().join("lock");
        let text = std::fs::read_to_string(&path).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let held = Flock::lock(file, FlockArg::LockExclusiveNonblock);
        assert!(held.is_err(), "still held by the forgotten lock");
        assert!(text.contains("bob"));
    }
}
