//! The dashboard's own state (focus, pending weight, dialogs) beside the latest
//! engine snapshot, and `App::update`: operator actions in, engine commands out.
//!
//! Nothing here touches the terminal or the engine: `update` is pure, so key
//! handling is tested without either.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Offset, Utc};

use crate::domain::Outcome;
use crate::engine::snapshot::Phase;
use crate::engine::{Command, Snapshot};

use super::live_output::LiveOutput;
use super::log_ring::{LogLevel, LogRing};
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
    /// Leave the dashboard; the deployment goes on in its engine.
    Detach,
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

/// The answers of the quit dialog. Attached to a detached engine it offers
/// detach (the release goes on), hold and detach (progression paused), stay;
/// in one process, hold and exit (resumable), stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitChoice {
    Detach,
    HoldAndExit,
    Stay,
}

/// The quit dialog: asking, or waiting for the engine to record the interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitDialog {
    Asking { choice: QuitChoice },
    Holding,
}

/// How long a transient notice stays on the hint bar.
pub const NOTICE_SECS: i64 = 5;
/// Log lines one `j`/`k` moves the log pane by.
const LOG_STEP: usize = 3;

/// A line for the hint bar that fades by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Notice {
    text: String,
    at: DateTime<Utc>,
}

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
    /// This dashboard is attached to a detached engine: quitting detaches.
    attached: bool,
    engine_stopped: bool,
    exit: Option<UiExit>,
    notice: Option<Notice>,
    /// `R` was pressed and the engine has not yet shown the rollback.
    rollback_requested: Option<DateTime<Utc>>,
    log_level: LogLevel,
    /// The newest log line shown while the pane is scrolled; `None` follows.
    log_anchor: Option<u64>,
    logs: Option<Arc<LogRing>>,
    live_output: Option<Arc<LiveOutput>>,
    /// The operator's time zone for clock times on screen (UTC until set).
    utc_offset: FixedOffset,
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
            attached: false,
            engine_stopped: false,
            exit: None,
            notice: None,
            rollback_requested: None,
            log_level: LogLevel::Info,
            log_anchor: None,
            logs: None,
            live_output: None,
            utc_offset: Utc.fix(),
        }
    }

    // ----- inputs other than keys -----

    /// Takes the engine's latest snapshot. A new engine message (a refused
    /// approval, a slider refused) becomes a notice while a gate holds the
    /// banner, so it is seen without hiding the gate.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let new_message = snapshot.message.is_some() && snapshot.message != self.snapshot.message;
        if new_message && snapshot.gate.is_some() && snapshot.outcome.is_none() {
            if let Some(message) = &snapshot.message {
                self.note(message);
            }
        }
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

    /// Clock times on screen (log lines, the moment of `R`) in this zone.
    pub fn set_utc_offset(&mut self, offset: FixedOffset) {
        self.utc_offset = offset;
    }

    /// Feeds the log pane from these lines.
    pub fn attach_logs(&mut self, ring: Arc<LogRing>) {
        self.logs = Some(ring);
    }

    /// The dashboard is attached to a detached engine (quitting detaches).
    pub fn set_attached(&mut self, attached: bool) {
        self.attached = attached;
    }

    pub fn attached(&self) -> bool {
        self.attached
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
                self.note("the engine is busy; press the key again");
            }
            SendFailure::Gone => {
                self.engine_stopped();
                if matches!(command, Command::HoldAndQuit { .. }) {
                    self.exit = Some(UiExit::Quit);
                } else {
                    self.note("the engine has stopped; q quits");
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
                    self.log_anchor = None;
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
                if let Some(outcome) = self.snapshot.outcome {
                    let why = match outcome {
                        Outcome::Succeeded => format!(
                            "the deployment has ended; to roll back, deploy {} again with cutover run",
                            self.snapshot.previous.as_deref().unwrap_or("the previous version")
                        ),
                        _ => "the deployment has ended; R does nothing now".to_string(),
                    };
                    self.note(&why);
                    return None;
                }
                if !self.steerable() {
                    return None;
                }
                if self.snapshot.phase == Phase::RollingBack {
                    self.note("already rolling back");
                    return None;
                }
                // The clock was set as the key was read: the rollback's
                // timing starts at the key press.
                let requested_at = self.now;
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
                    let choices = self.quit_choices();
                    let at = choices.iter().position(|c| *c == choice).unwrap_or(0);
                    let choice = choices[(at + 1) % choices.len()];
                    self.quit_dialog = Some(QuitDialog::Asking { choice });
                }
                None
            }
            Action::Detach => self.choose(QuitChoice::Detach),
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
                self.log_anchor = None;
                None
            }
        }
    }

    /// The dialog's choices, in the order `tab` walks them.
    pub fn quit_choices(&self) -> &'static [QuitChoice] {
        if self.attached {
            &[
                QuitChoice::Detach,
                QuitChoice::HoldAndExit,
                QuitChoice::Stay,
            ]
        } else {
            &[QuitChoice::HoldAndExit, QuitChoice::Stay]
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
            // The engine goes on: only this dashboard leaves.
            QuitChoice::Detach if self.attached => {
                self.quit_dialog = None;
                self.exit = Some(UiExit::Quit);
                None
            }
            QuitChoice::Detach => None,
            // Attached: progression paused, traffic held where it is; the
            // engine stays for the next operator to resume.
            QuitChoice::HoldAndExit if self.attached => {
                self.quit_dialog = None;
                self.exit = Some(UiExit::Quit);
                Some(Command::Pause)
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
        self.notice = Some(Notice {
            text: text.to_string(),
            at: self.now,
        });
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
        if !self.slider_can_act() {
            self.note("the slider acts during the traffic stage, while it runs");
            return;
        }
        let Some(traffic) = self.snapshot.traffic.as_ref() else {
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
        if !self.slider_can_act() {
            self.note("the slider acts during the traffic stage, while it runs");
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
            Pane::Logs => {
                if let Some(ring) = &self.logs {
                    self.log_anchor = ring.step(self.log_level, self.log_anchor, LOG_STEP, up);
                }
            }
        }
        None
    }

    fn step_log_level(&mut self, more: bool) {
        let levels = LogLevel::ALL;
        let at = levels
            .iter()
            .position(|l| *l == self.log_level)
            .unwrap_or(2);
        let next = if more {
            (at + 1).min(levels.len() - 1)
        } else {
            at.saturating_sub(1)
        };
        self.log_level = levels[next];
    }
}

#[path = "app_read.rs"]
mod read;

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
