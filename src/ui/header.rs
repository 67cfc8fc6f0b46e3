//! The header: who deploys what where, where the procedure is and in what
//! state, and one or two banner lines for what needs the operator's eye: the
//! outcome and journal, a rollback, a failing analysis, a waiting gate.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::domain::{Outcome, Verdict};
use crate::engine::snapshot::Gate;

use super::app::App;
use super::status::{self, RunState};
use super::text;

/// At most this many banner lines (an alert and a gate, or the outcome and the journal).
const BANNER_LINES: usize = 2;

/// Rows the header needs now: identity, progress, and the banner lines (at least one).
pub fn height(app: &App) -> u16 {
    2 + banner_lines(app).len().max(1) as u16
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let width = usize::from(area.width);
    let mut lines = vec![identity_line(app), progress_line(app)];
    for (message, style) in banner_lines(app) {
        lines.push(Line::styled(text::fit(&message, width), style));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn identity_line(app: &App) -> Line<'static> {
    let s = app.snapshot();
    let theme = app.theme();
    let mut spans = vec![
        Span::styled(" cutover ", theme.key),
        Span::raw(" "),
        Span::styled(s.service.clone(), theme.title),
        Span::raw("  "),
    ];
    if let Some(previous) = &s.previous {
        spans.push(Span::styled(previous.clone(), theme.stable));
        spans.push(Span::styled(" → ", theme.muted));
    }
    spans.push(Span::styled(s.version.clone(), theme.canary));
    if let Some(environment) = &s.environment {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(environment.clone(), theme.title));
    }
    spans.push(Span::styled("  operator ", theme.muted));
    spans.push(Span::raw(s.operator.clone()));
    Line::from(spans)
}

fn progress_line(app: &App) -> Line<'static> {
    let s = app.snapshot();
    let theme = app.theme();
    let label = |text: &'static str| Span::styled(text, theme.muted);
    let mut weight = s
        .traffic
        .as_ref()
        .map_or_else(|| "0%".to_string(), |t| format!("{}%", t.current_weight));
    if let Some(to) = s
        .traffic
        .as_ref()
        .and_then(|t| t.requested_weight.filter(|w| *w != t.current_weight))
    {
        weight.push_str(&format!(" → {to}%"));
    }
    let (verdict, verdict_style) = status::verdict(s, theme);
    let end = s.finished_at.unwrap_or_else(|| app.now());
    let elapsed = (end - s.started_at).to_std().unwrap_or_default();
    let state = status::run_state(app);
    Line::from(vec![
        Span::raw(" "),
        label("stage "),
        Span::styled(status::stage_position(s), theme.title),
        label("  weight "),
        Span::styled(weight, theme.canary),
        label("  verdict "),
        Span::styled(verdict, verdict_style),
        label("  elapsed "),
        Span::styled(text::clock(elapsed), theme.title),
        label("  "),
        Span::styled(state.word(), state.style(theme)),
    ])
}

/// The lines that say what matters most right now, most urgent first.
pub fn banner_lines(app: &App) -> Vec<(String, Style)> {
    let s = app.snapshot();
    let theme = app.theme();
    let state = status::run_state(app);
    let mut lines = Vec::new();
    match state {
        RunState::Ended(outcome) => return ended_lines(app, outcome),
        RunState::RollingBack => {
            let reason = s.message.as_deref().unwrap_or("rollback requested");
            let reason = reason.strip_prefix("rolling back: ").unwrap_or(reason);
            lines.push((format!(" ⟲ ROLLING BACK: {reason}"), theme.banner_bad));
            return lines;
        }
        RunState::RollbackRequested => {
            let at = app
                .rollback_requested()
                .map(|t| {
                    t.with_timezone(&app.utc_offset())
                        .format(" at %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            lines.push((
                format!(" ⟲ ROLLBACK REQUESTED{at} · traffic goes back to stable"),
                theme.banner_bad,
            ));
            return lines;
        }
        _ => {}
    }
    let reasons = s
        .samples
        .last()
        .filter(|p| p.verdict == Verdict::Fail && !p.reasons.is_empty())
        .map(|p| format!(" · {}", p.reasons.join("; ")))
        .unwrap_or_default();
    if let Some(line) = status::escalation(s) {
        // "ANALYSIS FAILING 2/3 · rollback at the next · R now · <why>"
        let (head, rest) = line.split_once(" · ").unwrap_or((line.as_str(), ""));
        lines.push((
            format!(" ! {} · {rest}{reasons}", head.to_uppercase()),
            theme.banner_bad,
        ));
    }
    match &s.gate {
        Some(Gate::Manual { check, prompt, .. }) => lines.push((
            format!(" ? WAITING FOR YOU · a confirms · {check}: {prompt}"),
            theme.banner_alert,
        )),
        Some(Gate::Step { from, to }) => lines.push((
            format!(" ? APPROVE THE NEXT STEP · a advances {from}% → {to}% · R rolls back"),
            theme.banner_alert,
        )),
        Some(Gate::AnalysisHold { reason }) => {
            let weight = s.traffic.as_ref().map_or(0, |t| t.current_weight);
            lines.push((
                format!(" ! HOLDING AT {weight}%: ANALYSIS FAILED · a carries on · R rolls back · {reason}"),
                theme.banner_bad,
            ));
        }
        None => {}
    }
    if lines.is_empty() && state == RunState::Paused {
        lines.push((
            " ⏸ PAUSED by the operator · p resumes · R rolls back".to_string(),
            theme.banner_alert,
        ));
    }
    if lines.is_empty() {
        if let Some(message) = &s.message {
            lines.push((format!(" {message}"), theme.hint));
        }
    }
    lines.truncate(BANNER_LINES);
    lines
}

/// The final screen's two lines: the outcome with its reason, then the
/// journal and what still applies.
fn ended_lines(app: &App, outcome: Outcome) -> Vec<(String, Style)> {
    let s = app.snapshot();
    let theme = app.theme();
    let took = s
        .finished_at
        .map(|end| (end - s.started_at).to_std().unwrap_or_default())
        .map(|d| format!(" after {}", text::short_duration(d)))
        .unwrap_or_default();
    let reason = s
        .message
        .as_ref()
        .map(|m| format!(" · {m}"))
        .unwrap_or_default();
    let style = match outcome {
        Outcome::Succeeded => theme.banner_good,
        Outcome::Interrupted => theme.banner_alert,
        _ => theme.banner_bad,
    };
    let (first, second) = after_the_end(app, outcome);
    let mut headline = format!(" {}{took}{reason}", text::outcome_title(outcome));
    if let Some(advice) = first {
        headline.push_str(&format!(" · {advice}"));
    }
    let mut journal = format!(" journal {}", s.journal_path);
    if let Some(note) = second {
        journal.push_str(&format!(" · {note}"));
    }
    vec![(headline, style), (journal, theme.title)]
}

/// What still applies after the end, for the outcome's line and for the
/// journal's line: how to roll back a success, how to carry on an
/// interruption, what the built-in router does until cutover exits.
pub fn after_the_end(app: &App, outcome: Outcome) -> (Option<String>, Option<String>) {
    let s = app.snapshot();
    let previous = s.previous.as_deref().unwrap_or("the previous version");
    let first = match outcome {
        Outcome::Succeeded => Some(format!(
            "to roll back, deploy {previous} again with cutover run"
        )),
        Outcome::Interrupted => Some("cutover run --resume carries on".to_string()),
        _ => None,
    };
    let second = match outcome {
        _ if !app.builtin_router() => None,
        Outcome::Succeeded => Some(format!(
            "the built-in router serves {} until cutover exits",
            s.version
        )),
        Outcome::RolledBack => {
            Some("the built-in router serves stable until cutover exits".to_string())
        }
        _ => Some("the built-in router stops when cutover exits".to_string()),
    };
    (first, second)
}
