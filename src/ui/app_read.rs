//! What the render files read of the [`App`]: the snapshot, the clock, the
//! dashboard's own state, and views worked out from them (the selected
//! check, the log lines on screen, whether the slider can act).

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

use crate::domain::StageName;
use crate::engine::snapshot::{CheckStatus, CheckView, Phase, StageView};
use crate::engine::Snapshot;

use super::super::keymap::KeyContext;
use super::super::log_ring::{LogLevel, LogView};
use super::super::theme::Theme;
use super::super::UiExit;
use super::{App, Pane, QuitDialog, NOTICE_SECS};

impl App {
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn theme(&self) -> &Theme {
        &self.theme
    }

    pub fn focus(&self) -> Pane {
        self.focus
    }

    pub fn pending_weight(&self) -> Option<u8> {
        self.pending_weight
    }

    pub fn help_open(&self) -> bool {
        self.help_open
    }

    pub fn quit_dialog(&self) -> Option<QuitDialog> {
        self.quit_dialog
    }

    /// When the operator pressed `R`, until the engine shows the rollback.
    pub fn rollback_requested(&self) -> Option<DateTime<Utc>> {
        self.rollback_requested
    }

    /// The transient notice, until [`NOTICE_SECS`] after it was given.
    pub fn notice(&self) -> Option<&str> {
        self.notice
            .as_ref()
            .filter(|n| self.now - n.at < TimeDelta::seconds(NOTICE_SECS))
            .map(|n| n.text.as_str())
    }

    pub fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// The newest log line shown while the log pane is scrolled; `None` while it follows.
    pub fn log_anchor(&self) -> Option<u64> {
        self.log_anchor
    }

    /// Up to `count` log lines at the pane's level, ending where the pane is scrolled to.
    pub fn log_view(&self, count: usize) -> LogView {
        self.logs
            .as_ref()
            .map(|ring| ring.view(self.log_level, self.log_anchor, count))
            .unwrap_or_default()
    }

    /// The slider moves only when the engine would act on it: the traffic
    /// stage, running, no rollback asked for.
    pub fn slider_can_act(&self) -> bool {
        let s = &self.snapshot;
        s.traffic.is_some()
            && s.current_stage == Some(StageName::Traffic)
            && s.phase == Phase::Running
            && s.outcome.is_none()
            && !self.engine_stopped
            && self.rollback_requested.is_none()
    }

    /// The plan's router is the built-in one, which lives and stops with this process.
    pub fn builtin_router(&self) -> bool {
        self.snapshot
            .traffic
            .as_ref()
            .is_some_and(|t| t.router == "builtin")
    }

    /// The zone clock times are written in.
    pub fn utc_offset(&self) -> FixedOffset {
        self.utc_offset
    }

    /// The engine dropped its channel.
    pub fn engine_has_stopped(&self) -> bool {
        self.engine_stopped
    }

    /// The last `count` output lines of a check: the snapshot's tail once it has
    /// one, else what streamed so far.
    pub fn output_tail(&self, check: &CheckView, count: usize) -> Vec<String> {
        if check.output_tail.is_empty() && check.status == CheckStatus::Running {
            if let Some(live) = &self.live_output {
                return live.tail(&check.name, count);
            }
        }
        let skip = check.output_tail.len().saturating_sub(count);
        check.output_tail[skip..].to_vec()
    }

    /// What the keymap needs to pick a binding.
    pub fn key_context(&self) -> KeyContext {
        KeyContext {
            dialog_open: self.quit_dialog.is_some(),
            logs_focused: self.focus == Pane::Logs,
        }
    }

    /// Set when the dashboard should stop.
    pub fn exit(&self) -> Option<UiExit> {
        self.exit
    }

    /// No outcome yet and the engine still listening.
    pub fn in_progress(&self) -> bool {
        self.snapshot.outcome.is_none() && !self.engine_stopped
    }

    /// Something on screen moves by itself (a spinner), so the clock should tick faster.
    pub fn animating(&self) -> bool {
        self.snapshot.outcome.is_none()
            && self
                .snapshot
                .stages
                .iter()
                .flat_map(|s| &s.checks)
                .any(|c| c.status == CheckStatus::Running)
    }

    /// Every check, in procedure order, with its stage.
    pub fn checks(&self) -> impl Iterator<Item = (&StageView, &CheckView)> {
        self.snapshot
            .stages
            .iter()
            .flat_map(|stage| stage.checks.iter().map(move |check| (stage, check)))
    }

    pub(super) fn check_count(&self) -> usize {
        self.snapshot.stages.iter().map(|s| s.checks.len()).sum()
    }

    /// The check the operator is looking at: the chosen one, else the one running
    /// or waiting, else the last one that finished.
    pub fn selected_position(&self) -> Option<usize> {
        let count = self.check_count();
        if count == 0 {
            return None;
        }
        if let Some(chosen) = self.selected_check {
            return Some(chosen.min(count - 1));
        }
        let statuses: Vec<CheckStatus> = self.checks().map(|(_, c)| c.status).collect();
        let active = statuses
            .iter()
            .position(|s| matches!(s, CheckStatus::Running | CheckStatus::WaitingApproval))
            .or_else(|| {
                statuses
                    .iter()
                    .rposition(|s| !matches!(s, CheckStatus::Pending | CheckStatus::Skipped))
            })
            .unwrap_or(0);
        Some(active)
    }

    /// The selected check and its stage.
    pub fn selected_check(&self) -> Option<(&StageView, &CheckView)> {
        let at = self.selected_position()?;
        self.checks().nth(at)
    }
}
