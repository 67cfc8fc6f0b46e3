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
            log_level: LevelFilter::Info,
            log_state: TuiWidgetState::new().set_default_display_level(LevelFilter::Info),
            live_output: None,
        }
    }

    // ----- inputs other than keys -----

    /// Takes the engine's latest snapshot.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot = snapshot;
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
                if self.snapshot.gate.is_some() {
                    Some(Command::Approve)
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
                Some(Command::Rollback {
                    reason: ROLLBACK_REASON.to_string(),
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
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::engine::snapshot::{
        Gate, Outcome, StageName, StageStatus, Strategy, Thresholds, TrafficView,
    };

    fn check(name: &str, status: CheckStatus) -> CheckView {
        CheckView {
            name: name.to_string(),
            kind: "run",
            target: "true".to_string(),
            status,
            duration: None,
            started_at: None,
            attempt: 1,
            optional: false,
            output_tail: Vec::new(),
        }
    }

    fn snapshot() -> Snapshot {
        let stages = StageName::ALL[..7]
            .iter()
            .map(|name| StageView {
                name: *name,
                status: StageStatus::Pending,
                checks: vec![
                    check(&format!("{name} one"), CheckStatus::Passed),
                    check(&format!("{name} two"), CheckStatus::Pending),
                ],
            })
            .collect();
        Snapshot {
            deployment_id: "20250101T000000-checkout-v2".to_string(),
            service: "checkout".to_string(),
            version: "v2".to_string(),
            previous: Some("v1".to_string()),
            environment: Some("production".to_string()),
            operator: "alice".to_string(),
            journal_path: "/tmp/j.jsonl".to_string(),
            started_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
            finished_at: None,
            phase: Phase::Running,
            current_stage: Some(StageName::Traffic),
            stages,
            traffic: Some(TrafficView {
                strategy: Strategy::Canary,
                steps: vec![5, 25, 50, 100],
                router: "builtin",
                current_weight: 25,
                requested_weight: None,
                next_step: Some(50),
                waiting_approval: false,
                paused: false,
                baked: Duration::from_secs(10),
                bake: Duration::from_secs(60),
                rollback_weight_ms: None,
                approval_manual: true,
            }),
            samples: Vec::new(),
            thresholds: Thresholds::default(),
            verdict: None,
            gate: None,
            outcome: None,
            message: None,
            revision: 1,
        }
    }

    fn app() -> App {
        App::new(snapshot(), Theme::no_color())
    }

    fn finished(outcome: Outcome) -> Snapshot {
        let mut s = snapshot();
        s.outcome = Some(outcome);
        s.phase = Phase::Finished;
        s
    }

    #[test]
    fn approve_sends_approve_only_when_something_waits() {
        let mut app = app();
        assert_eq!(app.update(Action::Approve), None);
        assert!(app.notice().is_some());

        let mut s = snapshot();
        s.gate = Some(Gate::Step { from: 25, to: 50 });
        app.apply_snapshot(s);
        assert_eq!(app.update(Action::Approve), Some(Command::Approve));
        assert_eq!(app.notice(), None);
    }

    #[test]
    fn arrows_move_the_pending_weight_from_the_current_one_and_enter_applies_it() {
        let mut app = app();
        assert_eq!(app.update(Action::WeightUp(5)), None);
        assert_eq!(app.update(Action::WeightUp(5)), None);
        assert_eq!(app.update(Action::WeightDown(1)), None);
        assert_eq!(app.pending_weight(), Some(34));
        assert_eq!(app.update(Action::Apply), Some(Command::SetWeight(34)));
        assert_eq!(app.pending_weight(), None);
    }

    #[test]
    fn the_pending_weight_is_clamped_to_0_and_100() {
        let mut app = app();
        for _ in 0..30 {
            app.update(Action::WeightUp(5));
        }
        assert_eq!(app.pending_weight(), Some(100));
        for _ in 0..30 {
            app.update(Action::WeightDown(5));
        }
        assert_eq!(app.pending_weight(), Some(0));
        app.update(Action::WeightDown(1));
        assert_eq!(app.pending_weight(), Some(0));
    }

    #[test]
    fn enter_on_the_current_weight_sends_nothing() {
        let mut app = app();
        app.update(Action::WeightUp(5));
        app.update(Action::WeightDown(5));
        assert_eq!(app.pending_weight(), Some(25));
        assert_eq!(app.update(Action::Apply), None);
        assert_eq!(app.pending_weight(), None);
        assert_eq!(app.update(Action::Apply), None);
    }

    #[test]
    fn esc_drops_the_pending_weight() {
        let mut app = app();
        app.update(Action::WeightUp(5));
        assert_eq!(app.update(Action::Cancel), None);
        assert_eq!(app.pending_weight(), None);
        assert_eq!(app.update(Action::Apply), None);
    }

    #[test]
    fn weight_keys_do_nothing_before_the_traffic_stage() {
        let mut s = snapshot();
        s.traffic = None;
        let mut app = App::new(s, Theme::no_color());
        app.update(Action::WeightUp(5));
        assert_eq!(app.pending_weight(), None);
        assert!(app.notice().is_some());
    }

    #[test]
    fn p_toggles_from_the_paused_flag() {
        let mut app = app();
        assert_eq!(app.update(Action::TogglePause), Some(Command::Pause));
        let mut s = snapshot();
        if let Some(t) = s.traffic.as_mut() {
            t.paused = true;
        }
        app.apply_snapshot(s);
        assert_eq!(app.update(Action::TogglePause), Some(Command::Resume));
    }

    #[test]
    fn capital_r_rolls_back_at_once_even_with_the_quit_dialog_open() {
        let mut app = app();
        app.update(Action::Quit);
        assert!(app.quit_dialog().is_some());
        assert_eq!(
            app.update(Action::Rollback),
            Some(Command::Rollback {
                reason: "operator pressed R".to_string()
            })
        );
    }

    #[test]
    fn rollback_is_not_sent_twice_while_rolling_back() {
        let mut s = snapshot();
        s.phase = Phase::RollingBack;
        let mut app = App::new(s, Theme::no_color());
        assert_eq!(app.update(Action::Rollback), None);
    }

    #[test]
    fn quit_in_progress_asks_and_hold_sends_hold_and_quit_then_waits_for_the_outcome() {
        let mut app = app();
        assert_eq!(app.update(Action::Quit), None);
        assert_eq!(
            app.quit_dialog(),
            Some(QuitDialog::Asking {
                choice: QuitChoice::Stay
            })
        );
        assert_eq!(
            app.update(Action::HoldAndQuit),
            Some(Command::HoldAndQuit {
                reason: "operator quit".to_string()
            })
        );
        assert_eq!(app.quit_dialog(), Some(QuitDialog::Holding));
        assert_eq!(app.exit(), None);

        // A snapshot without an outcome keeps waiting.
        app.apply_snapshot(snapshot());
        assert_eq!(app.exit(), None);
        app.apply_snapshot(finished(Outcome::Interrupted));
        assert_eq!(app.exit(), Some(UiExit::Quit));
    }

    #[test]
    fn enter_in_the_dialog_takes_the_highlighted_choice() {
        let mut app = app();
        app.update(Action::Quit);
        // Stay is highlighted first: enter is the safe answer.
        assert_eq!(app.update(Action::DialogConfirm), None);
        assert_eq!(app.quit_dialog(), None);

        app.update(Action::Quit);
        app.update(Action::DialogSwitch);
        assert!(matches!(
            app.update(Action::DialogConfirm),
            Some(Command::HoldAndQuit { .. })
        ));
    }

    #[test]
    fn stay_closes_the_dialog_without_a_command() {
        let mut app = app();
        app.update(Action::Quit);
        assert_eq!(app.update(Action::Stay), None);
        assert_eq!(app.quit_dialog(), None);
        assert_eq!(app.exit(), None);
    }

    #[test]
    fn quit_after_the_outcome_leaves_at_once() {
        let mut app = App::new(finished(Outcome::RolledBack), Theme::no_color());
        assert_eq!(app.update(Action::Quit), None);
        assert_eq!(app.quit_dialog(), None);
        assert_eq!(app.exit(), Some(UiExit::Quit));
    }

    #[test]
    fn quit_again_while_holding_leaves_without_waiting() {
        let mut app = app();
        app.update(Action::Quit);
        app.update(Action::HoldAndQuit);
        app.update(Action::Quit);
        assert_eq!(app.exit(), Some(UiExit::Quit));
    }

    #[test]
    fn a_hold_that_cannot_reach_a_stopped_engine_still_quits() {
        let mut app = app();
        app.update(Action::Quit);
        let command = app.update(Action::HoldAndQuit);
        let Some(command) = command else {
            panic!("hold and quit expected")
        };
        app.command_not_sent(&command, SendFailure::Gone);
        assert_eq!(app.exit(), Some(UiExit::Quit));
    }

    #[test]
    fn a_busy_engine_reopens_the_dialog_on_hold() {
        let mut app = app();
        app.update(Action::Quit);
        let command = app.update(Action::HoldAndQuit).expect("command");
        app.command_not_sent(&command, SendFailure::Busy);
        assert_eq!(app.exit(), None);
        assert_eq!(
            app.quit_dialog(),
            Some(QuitDialog::Asking {
                choice: QuitChoice::HoldAndExit
            })
        );
        assert!(app.notice().is_some());
    }

    #[test]
    fn steering_keys_send_nothing_after_the_outcome() {
        let mut s = finished(Outcome::Succeeded);
        s.gate = Some(Gate::Step { from: 25, to: 50 });
        let mut app = App::new(s, Theme::no_color());
        for action in [
            Action::Approve,
            Action::TogglePause,
            Action::Rollback,
            Action::WeightUp(5),
            Action::Apply,
        ] {
            assert_eq!(app.update(action), None, "{action:?}");
        }
        assert_eq!(app.pending_weight(), None);
    }

    #[test]
    fn an_outcome_closes_an_open_question_and_drops_the_pending_weight() {
        let mut app = app();
        app.update(Action::WeightUp(5));
        app.update(Action::Quit);
        app.apply_snapshot(finished(Outcome::Succeeded));
        assert_eq!(app.quit_dialog(), None);
        assert_eq!(app.pending_weight(), None);
        assert_eq!(app.exit(), None);
    }

    #[test]
    fn tab_and_shift_tab_cycle_the_focus() {
        let mut app = app();
        assert_eq!(app.focus(), Pane::Checklist);
        app.update(Action::FocusNext);
        assert_eq!(app.focus(), Pane::Traffic);
        app.update(Action::FocusNext);
        assert_eq!(app.focus(), Pane::Logs);
        app.update(Action::FocusNext);
        assert_eq!(app.focus(), Pane::Checklist);
        app.update(Action::FocusPrevious);
        assert_eq!(app.focus(), Pane::Logs);
    }

    #[test]
    fn j_and_k_select_checks_from_the_active_one() {
        let mut app = app();
        // Nothing runs or waits, so the selection follows the last finished check:
        // finalize's first (index 12).
        assert_eq!(app.selected_position(), Some(12));
        app.update(Action::Up);
        assert_eq!(app.selected_position(), Some(11));
        for _ in 0..20 {
            app.update(Action::Down);
        }
        assert_eq!(app.selected_position(), Some(13));
        for _ in 0..20 {
            app.update(Action::Up);
        }
        assert_eq!(app.selected_position(), Some(0));
        let (stage, check) = app.selected_check().expect("a check");
        assert_eq!(stage.name, StageName::Prepare);
        assert_eq!(check.name, "prepare one");
    }

    #[test]
    fn the_selection_follows_the_running_check_until_moved() {
        let mut s = snapshot();
        s.stages[2].checks[1].status = CheckStatus::Running;
        let app = App::new(s, Theme::no_color());
        let (stage, check) = app.selected_check().expect("a check");
        assert_eq!(stage.name, StageName::Deploy);
        assert_eq!(check.name, "deploy two");
    }

    #[test]
    fn up_and_down_in_the_traffic_pane_move_the_slider() {
        let mut app = app();
        app.update(Action::FocusNext);
        app.update(Action::Up);
        assert_eq!(app.pending_weight(), Some(30));
        app.update(Action::Down);
        app.update(Action::Down);
        assert_eq!(app.pending_weight(), Some(20));
    }

    #[test]
    fn help_toggles_and_esc_closes_it_before_dropping_the_weight() {
        let mut app = app();
        app.update(Action::WeightUp(5));
        app.update(Action::ToggleHelp);
        assert!(app.help_open());
        app.update(Action::Cancel);
        assert!(!app.help_open());
        assert_eq!(app.pending_weight(), Some(30));
    }

    #[test]
    fn a_running_check_shows_its_streamed_output_until_the_snapshot_has_a_tail() {
        let mut s = snapshot();
        s.stages[2].checks[1].status = CheckStatus::Running;
        let mut app = App::new(s.clone(), Theme::no_color());
        let live = Arc::new(LiveOutput::default());
        live.push("deploy two", "step 1");
        live.push("deploy two", "step 2");
        app.attach_live_output(Arc::clone(&live));
        let running = &s.stages[2].checks[1];
        assert_eq!(app.output_tail(running, 1), vec!["step 2"]);

        let mut finished = running.clone();
        finished.status = CheckStatus::Passed;
        finished.output_tail = vec!["done".to_string()];
        assert_eq!(app.output_tail(&finished, 5), vec!["done"]);
    }

    #[test]
    fn log_level_steps_and_stops_at_the_ends() {
        let mut app = app();
        assert_eq!(app.log_level(), LevelFilter::Info);
        app.update(Action::LogLevelMore);
        assert_eq!(app.log_level(), LevelFilter::Debug);
        for _ in 0..10 {
            app.update(Action::LogLevelMore);
        }
        assert_eq!(app.log_level(), LevelFilter::Trace);
        for _ in 0..10 {
            app.update(Action::LogLevelLess);
        }
        assert_eq!(app.log_level(), LevelFilter::Error);
    }
}
