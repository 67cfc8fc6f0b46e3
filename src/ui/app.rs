//! The dashboard's own state (focus, pending weight, dialogs) beside the latest
//! engine snapshot, and `App::update`: operator actions in, engine commands out.
//!
//! Nothing here touches the terminal or the engine: `update` is pure, so key
//! handling is tested without either.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tui_logger::{LevelFilter, TuiWidgetEvent, TuiWidgetState};

use crate::engine::snapshot::{CheckStatus, CheckView, Phase, StageView};
use crate::engine::{Command, Snapshot};

use super::keymap::KeyContext;
use super::live_output::LiveOutput;
use super::theme::Theme;
use super::UiExit;

/// What the operator asked for, decoded from a key by the keymap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    WeightUp(u8),
    WeightDown(u8),
    Apply,
    Cancel,
    TogglePause,
    Rollback,
    FocusNext,
    FocusPrevious,
    Up,
    Down,
    ToggleHelp,
    Quit,
    LogLevelMore,
    LogLevelLess,
    LogFollow,
    HoldAndQuit,
    Stay,
    DialogSwitch,
    DialogConfirm,
}

/// The panes that take focus, in `tab` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Checklist,
    Traffic,
    Logs,
}

impl Pane {
    const ORDER: [Pane; 3] = [Pane::Checklist, Pane::Traffic, Pane::Logs];

    fn step(self, forward: bool) -> Pane {
        let i = Pane::ORDER.iter().position(|p| *p == self).unwrap_or(0);
        let n = Pane::ORDER.len();
        let next = if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        };
        Pane::ORDER[next]
    }
}

/// The two answers of the quit dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitChoice {
    HoldAndExit,
    Stay,
}

/// The quit dialog: asking, or waiting for the engine to record the interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitDialog {
    Asking { choice: QuitChoice },
    Holding,
}

/// Log levels the log pane steps through with `+` and `-`.
const LOG_LEVELS: [LevelFilter; 5] = [
    LevelFilter::Error,
    LevelFilter::Warn,
    LevelFilter::Info,
    LevelFilter::Debug,
    LevelFilter::Trace,
];

const ROLLBACK_REASON: &str = "operator pressed R";
const QUIT_REASON: &str = "operator quit";

/// Why a command did not reach the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// The engine's queue is full; the operator may press again.
    Busy,
    /// The engine has stopped.
    Gone,
}

pub struct App {
    snapshot: Snapshot,
    now: DateTime<Utc>,
    theme: Theme,
    focus: Pane,
    pending_weight: Option<u8>,
    /// `None` follows the active check; set once the operator moves the selection.
    selected_check: Option<usize>,
    help_open: bool,
    quit_dialog: Option<QuitDialog>,
    engine_stopped: bool,
    exit: Option<UiExit>,
    notice: Option<String>,
    /// `R` was pressed and the engine has not yet shown the rollback.
    rollback_requested: Option<DateTime<Utc>>,
    log_level: LevelFilter,
    log_state: TuiWidgetState,
    live_output: Option<Arc<LiveOutput>>,
}

impl App {
    pub fn new(snapshot: Snapshot, theme: Theme) -> App {
        let now = snapshot.finished_at.unwrap_or(snapshot.started_at);
        App {
            snapshot,
            now,
            theme,
            focus: Pane::Checklist,
            pending_weight: None,
            selected_check: None,
            help_open: false,
            quit_dialog: None,
            engine_stopped: false,
            exit: None,
            notice: None,
            rollback_requested: None,
            log_level: LevelFilter::Info,
            log_state: TuiWidgetState::new().set_default_display_level(LevelFilter::Info),
            live_output: None,
        }
    }

    // ----- inputs other than keys -----

    /// Takes the engine's latest snapshot.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot = snapshot;
        if self.snapshot.phase != Phase::Running {
            self.rollback_requested = None;
        }
        if self.snapshot.outcome.is_some() {
            self.pending_weight = None;
            match self.quit_dialog {
                Some(QuitDialog::Holding) => self.exit = Some(UiExit::Quit),
                // Nothing left to hold: `q` now quits at once.
                Some(QuitDialog::Asking { .. }) => self.quit_dialog = None,
                None => {}
            }
        }
    }

    /// Sets the clock the screen shows (elapsed time, spinners, chart window).
    pub fn set_clock(&mut self, now: DateTime<Utc>) {
        self.now = now;
    }

    /// Lets the checklist show a running check's output as it streams.
    pub fn attach_live_output(&mut self, live: Arc<LiveOutput>) {
        self.live_output = Some(live);
    }

    /// The engine dropped its snapshot channel: it has stopped.
    pub fn engine_stopped(&mut self) {
        self.engine_stopped = true;
        if self.quit_dialog == Some(QuitDialog::Holding) {
            self.exit = Some(UiExit::Quit);
        }
    }

    /// A command could not be sent; say so, or leave if the engine is gone while quitting.
    pub fn command_not_sent(&mut self, command: &Command, failure: SendFailure) {
        match failure {
            SendFailure::Busy => {
                if matches!(command, Command::HoldAndQuit { .. }) {
                    self.quit_dialog = Some(QuitDialog::Asking {
                        choice: QuitChoice::HoldAndExit,
                    });
                }
                self.notice = Some("the engine is busy; press the key again".to_string());
            }
            SendFailure::Gone => {
                self.engine_stopped();
                if matches!(command, Command::HoldAndQuit { .. }) {
                    self.exit = Some(UiExit::Quit);
                } else {
                    self.notice = Some("the engine has stopped; q quits".to_string());
                }
            }
        }
    }

    // ----- the pure key handler -----

    /// Applies one operator action; returns the command to send to the engine, if any.
    pub fn update(&mut self, action: Action) -> Option<Command> {
        self.notice = None;
        if self.exit.is_some() {
            return None;
        }
        match action {
            Action::Approve => {
                if !self.steerable() {
                    return None;
                }
                if let Some(gate) = &self.snapshot.gate {
                    // The approval names the gate on screen; the engine
                    // refuses it if another gate is open by then.
                    Some(Command::Approve {
                        gate: gate.target(),
                    })
                } else {
                    self.note("nothing is waiting for approval");
                    None
                }
            }
            Action::WeightUp(points) => {
                self.nudge_weight(i16::from(points));
                None
            }
            Action::WeightDown(points) => {
                self.nudge_weight(-i16::from(points));
                None
            }
            Action::Apply => self.apply_pending_weight(),
            Action::Cancel => {
                if self.help_open {
                    self.help_open = false;
                } else if self.pending_weight.is_some() {
                    self.pending_weight = None;
                } else if self.focus == Pane::Logs {
                    self.log_state.transition(TuiWidgetEvent::EscapeKey);
                }
                None
            }
            Action::TogglePause => {
                if !self.steerable() {
                    return None;
                }
                let paused = self.snapshot.traffic.as_ref().is_some_and(|t| t.paused);
                Some(if paused {
                    Command::Resume
                } else {
                    Command::Pause
                })
            }
            Action::Rollback => {
                if !self.steerable() {
                    return None;
                }
                if self.snapshot.phase == Phase::RollingBack {
                    self.note("already rolling back");
                    return None;
                }
                let requested_at = Utc::now();
                self.rollback_requested = Some(requested_at);
                Some(Command::Rollback {
                    reason: ROLLBACK_REASON.to_string(),
                    requested_at,
                })
            }
            Action::FocusNext => {
                self.focus = self.focus.step(true);
                None
            }
            Action::FocusPrevious => {
                self.focus = self.focus.step(false);
                None
            }
            Action::Up => self.move_in_pane(true),
            Action::Down => self.move_in_pane(false),
            Action::ToggleHelp => {
                self.help_open = !self.help_open;
                None
            }
            Action::Quit => {
                match self.quit_dialog {
                    // The operator insists while the engine records the hold.
                    Some(QuitDialog::Holding) => self.exit = Some(UiExit::Quit),
                    Some(QuitDialog::Asking { .. }) => {
                        self.note("h holds traffic and exits, s stays");
                    }
                    None if self.in_progress() => {
                        self.help_open = false;
                        self.quit_dialog = Some(QuitDialog::Asking {
                            choice: QuitChoice::Stay,
                        });
                    }
                    None => self.exit = Some(UiExit::Quit),
                }
                None
            }
            Action::HoldAndQuit => self.choose(QuitChoice::HoldAndExit),
            Action::Stay => self.choose(QuitChoice::Stay),
            Action::DialogSwitch => {
                if let Some(QuitDialog::Asking { choice }) = self.quit_dialog {
                    let choice = match choice {
                        QuitChoice::HoldAndExit => QuitChoice::Stay,
                        QuitChoice::Stay => QuitChoice::HoldAndExit,
                    };
                    self.quit_dialog = Some(QuitDialog::Asking { choice });
                }
                None
            }
            Action::DialogConfirm => match self.quit_dialog {
                Some(QuitDialog::Asking { choice }) => self.choose(choice),
                _ => None,
            },
            Action::LogLevelMore => {
                self.step_log_level(true);
                None
            }
            Action::LogLevelLess => {
                self.step_log_level(false);
                None
            }
            Action::LogFollow => {
                self.log_state.transition(TuiWidgetEvent::EscapeKey);
                None
            }
        }
    }

    fn choose(&mut self, choice: QuitChoice) -> Option<Command> {
        if !matches!(self.quit_dialog, Some(QuitDialog::Asking { .. })) {
            return None;
        }
        match choice {
            QuitChoice::Stay => {
                self.quit_dialog = None;
                None
            }
            QuitChoice::HoldAndExit => {
                self.quit_dialog = Some(QuitDialog::Holding);
                Some(Command::HoldAndQuit {
                    reason: QUIT_REASON.to_string(),
                })
            }
        }
    }

    fn note(&mut self, text: &str) {
        self.notice = Some(text.to_string());
    }

    /// Steering keys only make sense while the deployment runs and the engine listens.
    fn steerable(&mut self) -> bool {
        if self.snapshot.outcome.is_some() {
            self.note("the deployment has ended; q quits");
            false
        } else if self.engine_stopped {
            self.note("the engine has stopped; q quits");
            false
        } else {
            true
        }
    }

    fn nudge_weight(&mut self, delta: i16) {
        if !self.steerable() {
            return;
        }
        let Some(traffic) = self.snapshot.traffic.as_ref() else {
            self.note("traffic is not being shifted yet");
            return;
        };
        let base = self.pending_weight.unwrap_or(traffic.current_weight);
        let moved = (i16::from(base) + delta).clamp(0, 100);
        self.pending_weight = u8::try_from(moved).ok();
    }

    fn apply_pending_weight(&mut self) -> Option<Command> {
        let pending = self.pending_weight.take()?;
        if !self.steerable() {
            return None;
        }
        let current = self.snapshot.traffic.as_ref()?.current_weight;
        if pending == current {
            self.note("that is the current weight already");
            None
        } else {
            Some(Command::SetWeight(pending))
        }
    }

    fn move_in_pane(&mut self, up: bool) -> Option<Command> {
        match self.focus {
            Pane::Checklist => {
                let count = self.check_count();
                if count > 0 {
                    let at = self.selected_position().unwrap_or(0);
                    let next = if up {
                        at.saturating_sub(1)
                    } else {
                        (at + 1).min(count - 1)
                    };
                    self.selected_check = Some(next);
                }
            }
            Pane::Traffic => self.nudge_weight(if up { 5 } else { -5 }),
            Pane::Logs => self.log_state.transition(if up {
                TuiWidgetEvent::PrevPageKey
            } else {
                TuiWidgetEvent::NextPageKey
            }),
        }
        None
    }

    fn step_log_level(&mut self, more: bool) {
        let at = LOG_LEVELS
            .iter()
            .position(|l| *l == self.log_level)
            .unwrap_or(2);
        let next = if more {
            (at + 1).min(LOG_LEVELS.len() - 1)
        } else {
            at.saturating_sub(1)
        };
        self.log_level = LOG_LEVELS[next];
        // The widget state keeps its level privately; a fresh one carries the new level.
        self.log_state = TuiWidgetState::new().set_default_display_level(self.log_level);
    }

    // ----- what the render files read -----

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

    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    pub fn log_level(&self) -> LevelFilter {
        self.log_level
    }

    pub fn log_state(&self) -> &TuiWidgetState {
        &self.log_state
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

    fn check_count(&self) -> usize {
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

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
