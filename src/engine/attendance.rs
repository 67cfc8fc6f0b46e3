//! Nobody watching: a detached engine counts the steering operators attached
//! to it; with none for `unattended_after` (or a gate left waiting that long)
//! `on_disconnect` decides: carry on, hold, or roll back. Journaled.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::{Engine, Phase, Stop};
use crate::domain::{OnDisconnect, RollbackSource};
use crate::record::Event;

/// Grace before `on_disconnect` applies when the plan names none.
pub(crate) const DEFAULT_UNATTENDED_AFTER: Duration = Duration::from_secs(120);

/// What the engine knows of who is watching.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attendance {
    /// Counted only for a detached engine (its socket tells it); `None`
    /// in a foreground or headless run.
    pub controllers: Option<usize>,
    /// Since when nobody steering has been attached.
    pub alone_since: Option<Instant>,
    /// When the gate open now opened.
    pub gate_since: Option<Instant>,
    /// The policy was applied for this stretch of absence (or this gate).
    pub applied: bool,
}

impl Engine {
    fn unattended_after(&self) -> Duration {
        self.plan
            .traffic
            .as_ref()
            .map(|t| t.unattended_after)
            .unwrap_or(DEFAULT_UNATTENDED_AFTER)
    }

    /// The socket's count of steering operators changed.
    pub(crate) fn attended(&mut self, controllers: usize) {
        let was = self.attendance.controllers;
        self.attendance.controllers = Some(controllers);
        if controllers == 0 {
            if was != Some(0) {
                self.attendance.alone_since = Some(Instant::now());
                self.attendance.applied = false;
            }
        } else {
            self.attendance.alone_since = None;
            self.attendance.applied = false;
        }
    }

    /// A gate opened (or closed): its age counts toward the dead-man's switch.
    pub(crate) fn gate_opened(&mut self, open: bool) {
        self.attendance.gate_since = open.then(Instant::now);
        if open {
            self.attendance.applied = false;
        }
    }

    /// When `on_disconnect` is next due, if ever.
    pub(crate) fn unattended_deadline(&self) -> Option<Instant> {
        let a = &self.attendance;
        if a.controllers.is_none() || a.applied || self.state.phase != Phase::Running {
            return None;
        }
        let grace = self.unattended_after();
        let alone = a.alone_since.map(|t| t + grace);
        let gate = a.gate_since.map(|t| t + grace);
        match (alone, gate) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    /// The grace passed with nobody steering, or a gate waited that long.
    pub(crate) fn on_unattended(&mut self) -> Result<(), Stop> {
        self.attendance.applied = true;
        let grace = humantime::format_duration(self.unattended_after());
        let why = if self.attendance.alone_since.is_some() {
            format!("no operator attached for {grace}")
        } else {
            format!("a gate waited {grace} for an operator")
        };
        let policy = self
            .plan
            .traffic
            .as_ref()
            .map(|t| t.on_disconnect)
            .unwrap_or(OnDisconnect::Hold);
        let reason = format!("{why}: on_disconnect = \"{}\"", policy.as_str());
        match policy {
            OnDisconnect::Continue => {
                self.record(Event::Note {
                    message: format!("{reason}: carrying on as planned"),
                })?;
                Ok(())
            }
            OnDisconnect::Hold => {
                self.state.message = Some(format!("{reason}: progression held"));
                self.set_paused(true, super::command::Who::Engine("unattended"), &reason)
            }
            OnDisconnect::Rollback => Err(Stop::Rollback {
                reason,
                source: RollbackSource::Unattended,
                operator: self.operator.clone(),
                requested_at: Utc::now(),
            }),
        }
    }
}

/// Resolves at `at`, or never.
pub(crate) async fn until_deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
