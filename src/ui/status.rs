//! Where the deployment stands, as the screen says it: the header, the hint
//! bar, the quit dialog and the one-line view of a small terminal all read
//! these, so they never disagree. Everything here is read from the snapshot
//! (and the operator's own `R`); nothing is worked out anew.

use ratatui::style::Style;

use crate::domain::{OnFailure, Outcome, Verdict};
use crate::engine::snapshot::{Gate, Phase};
use crate::engine::Snapshot;

use super::app::App;
use super::text;
use super::theme::Theme;

/// The state word of the header and the hint bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Starting,
    Running,
    /// Automatic progression paused (`p`); the analysis keeps watching.
    Paused,
    /// The analysis failed with `on_failure = "pause"`: the weight is held
    /// until the operator decides.
    Holding,
    /// `R` was read; the engine has not shown the rollback yet.
    RollbackRequested,
    RollingBack,
    Ended(Outcome),
    /// The engine stopped without an outcome on screen.
    EngineStopped,
}

pub fn run_state(app: &App) -> RunState {
    let s = app.snapshot();
    if let Some(outcome) = s.outcome {
        return RunState::Ended(outcome);
    }
    if s.phase == Phase::RollingBack {
        return RunState::RollingBack;
    }
    if app.rollback_requested().is_some() {
        return RunState::RollbackRequested;
    }
    if app.engine_has_stopped() {
        return RunState::EngineStopped;
    }
    if matches!(s.gate, Some(Gate::AnalysisHold { .. })) {
        return RunState::Holding;
    }
    if s.paused {
        return RunState::Paused;
    }
    match s.phase {
        Phase::Starting => RunState::Starting,
        _ => RunState::Running,
    }
}

impl RunState {
    /// How the header names it.
    pub fn word(self) -> &'static str {
        match self {
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Paused => "PAUSED",
            RunState::Holding => "HOLDING",
            RunState::RollbackRequested => "ROLLBACK REQUESTED",
            RunState::RollingBack => "ROLLING BACK",
            RunState::Ended(Outcome::Succeeded) => "succeeded",
            RunState::Ended(Outcome::Failed) => "failed",
            RunState::Ended(Outcome::RolledBack) => "rolled back",
            RunState::Ended(Outcome::RollbackFailed) => "ROLLBACK FAILED",
            RunState::Ended(Outcome::Interrupted) => "interrupted",
            RunState::EngineStopped => "engine stopped",
        }
    }

    pub fn style(self, theme: &Theme) -> Style {
        match self {
            RunState::Starting | RunState::Running => theme.running,
            RunState::Paused | RunState::Holding => theme.warned,
            RunState::Ended(Outcome::Succeeded) => theme.passed,
            RunState::Ended(Outcome::Interrupted) | RunState::EngineStopped => theme.warned,
            RunState::RollbackRequested | RunState::RollingBack | RunState::Ended(_) => {
                theme.failed
            }
        }
    }

    /// The deployment still runs and the operator can steer it.
    pub fn steering(self) -> bool {
        !matches!(
            self,
            RunState::Ended(_) | RunState::EngineStopped | RunState::RollingBack
        )
    }
}

/// "5/7 traffic", or "—" before the first stage.
pub fn stage_position(s: &Snapshot) -> String {
    match s.current_stage {
        Some(stage) => format!("{}/7 {stage}", stage.number()),
        None => "—".to_string(),
    }
}

/// The verdict word of the latest analysis sample, and its style.
pub fn verdict(s: &Snapshot, theme: &Theme) -> (&'static str, Style) {
    match s.verdict {
        Some(Verdict::Pass) => ("pass", theme.passed),
        Some(Verdict::Fail) => ("fail", theme.failed),
        Some(Verdict::Inconclusive) => ("inconclusive", theme.warned),
        None => ("—", theme.muted),
    }
}

/// Failing samples in a row while the canary still runs, before
/// `failure_limit` acts: the count, the limit and what the limit does.
pub fn failing(s: &Snapshot) -> Option<(u32, u32, OnFailure)> {
    let t = s.traffic.as_ref()?;
    let (count, limit) = t.failing;
    let running = s.phase == Phase::Running && s.outcome.is_none();
    let held = matches!(s.gate, Some(Gate::AnalysisHold { .. }));
    (running && !held && count >= 1).then_some((count, limit, t.on_failure))
}

/// "analysis failing 2/3 · rollback at the next · R now", from the first
/// failing sample on.
pub fn escalation(s: &Snapshot) -> Option<String> {
    let (count, limit, on_failure) = failing(s)?;
    let action = match on_failure {
        OnFailure::Rollback => "rollback",
        OnFailure::Pause => "hold",
    };
    let left = limit.saturating_sub(count);
    let when = if left <= 1 {
        format!("{action} at the next")
    } else {
        format!("{action} after {left} more")
    };
    Some(format!("analysis failing {count}/{limit} · {when} · R now"))
}

/// What the operator is asked for, short: the small terminal's line.
pub fn gate_short(s: &Snapshot) -> Option<String> {
    if s.outcome.is_some() {
        return None;
    }
    Some(match s.gate.as_ref()? {
        Gate::Manual { check, .. } => format!("WAITING: a confirms \"{check}\""),
        Gate::Step { from, to } => format!("WAITING: a approves {from}% → {to}%"),
        Gate::AnalysisHold { .. } => "HOLDING: a carries on".to_string(),
    })
}

/// The one line a terminal smaller than 80×24 shows: stage, weight,
/// verdict, state, the waiting gate or the escalation, and the `R` hint.
pub fn one_line(app: &App) -> String {
    let s = app.snapshot();
    let state = run_state(app);
    let weight = s.traffic.as_ref().map_or(0, |t| t.current_weight);
    let (verdict, _) = verdict(s, app.theme());
    let mut parts = vec![
        stage_position(s),
        format!("{weight}%"),
        format!("verdict {verdict}"),
    ];
    match state {
        RunState::Ended(outcome) => parts.push(text::outcome_title(outcome).to_string()),
        RunState::Running | RunState::Starting => {}
        other => parts.push(other.word().to_string()),
    }
    // Short, so the line fits a terminal just under 80 columns.
    let escalation = escalation(s).map(|e| e.replacen("analysis failing", "FAILING", 1));
    let asks_for_r = escalation.is_some();
    parts.extend(escalation.or_else(|| gate_short(s)));
    if matches!(state, RunState::Ended(_)) {
        parts.push("q quits".to_string());
    } else if state.steering() && state != RunState::RollbackRequested && !asks_for_r {
        parts.push("R rolls back".to_string());
    }
    parts.join(" · ")
}
