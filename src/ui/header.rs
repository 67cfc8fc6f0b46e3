//! The header: who deploys what where, where the procedure is, and one banner
//! line for what needs the operator's eye (outcome, rollback, a waiting gate).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::engine::snapshot::{Gate, Phase};

use crate::domain::{Outcome, Verdict};

use super::app::App;
use super::text;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let [identity, progress, banner] = Layout::vertical([Constraint::Length(1); 3]).areas(area);
    frame.render_widget(Paragraph::new(identity_line(app)), identity);
    frame.render_widget(Paragraph::new(progress_line(app)), progress);
    let (message, style) = banner_text(app);
    let width = usize::from(banner.width);
    frame.render_widget(
        Paragraph::new(text::fit(&message, width)).style(style),
        banner,
    );
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
    let stage = match s.current_stage {
        Some(stage) => format!("{}/7 {}", stage.number(), stage),
        None if s.outcome.is_some() => "done".to_string(),
        None => "starting".to_string(),
    };
    let weight = s
        .traffic
        .as_ref()
        .map_or_else(|| "0%".to_string(), |t| format!("{}%", t.current_weight));
    let (verdict, verdict_style) = match s.verdict {
        Some(Verdict::Pass) => ("pass", theme.passed),
        Some(Verdict::Fail) => ("fail", theme.failed),
        Some(Verdict::Inconclusive) => ("inconclusive", theme.warned),
        None => ("—", theme.muted),
    };
    let end = s.finished_at.unwrap_or_else(|| app.now());
    let elapsed = (end - s.started_at).to_std().unwrap_or_default();
    let phase = match (s.phase, s.outcome) {
        (_, Some(Outcome::RolledBack)) => "rolled back",
        (_, Some(Outcome::RollbackFailed)) => "rollback failed",
        (_, Some(outcome)) => outcome.as_str(),
        (Phase::Starting, None) => "starting",
        (Phase::Running, None) => "running",
        (Phase::RollingBack, None) => "rolling back",
        (Phase::Finished, None) => "finished",
    };
    Line::from(vec![
        Span::raw(" "),
        label("stage "),
        Span::styled(stage, theme.title),
        label("  weight "),
        Span::styled(weight, theme.canary),
        label("  verdict "),
        Span::styled(verdict, verdict_style),
        label("  elapsed "),
        Span::styled(text::clock(elapsed), theme.title),
        label("  "),
        Span::styled(phase, phase_style(app)),
    ])
}

fn phase_style(app: &App) -> Style {
    let theme = app.theme();
    match (app.snapshot().phase, app.snapshot().outcome) {
        (_, Some(Outcome::Succeeded)) => theme.passed,
        (_, Some(Outcome::Interrupted)) => theme.warned,
        (_, Some(_)) | (Phase::RollingBack, None) => theme.failed,
        _ => theme.running,
    }
}

/// The one line that says what matters most right now, and its style.
fn banner_text(app: &App) -> (String, Style) {
    let s = app.snapshot();
    let theme = app.theme();
    if let Some(notice) = app.notice() {
        return (format!(" ▸ {notice}"), theme.notice);
    }
    if let Some(outcome) = s.outcome {
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
        return (
            format!(
                " {}{took} · q exits{reason} · journal {}",
                text::outcome_title(outcome),
                s.journal_path
            ),
            style,
        );
    }
    if s.phase == Phase::RollingBack {
        let reason = s.message.as_deref().unwrap_or("rollback requested");
        return (format!(" ⟲ ROLLING BACK: {reason}"), theme.banner_bad);
    }
    match &s.gate {
        Some(Gate::Manual { check, prompt, .. }) => {
            return (
                format!(" ? WAITING FOR YOU · a confirms · {check}: {prompt}"),
                theme.banner_alert,
            );
        }
        Some(Gate::Step { from, to }) => {
            return (
                format!(" ? APPROVE THE NEXT STEP · a advances {from}% → {to}% · R rolls back"),
                theme.banner_alert,
            );
        }
        Some(Gate::AnalysisHold { reason }) => {
            return (
                format!(" ! ANALYSIS FAILED, HOLDING · a carries on · R rolls back · {reason}"),
                theme.banner_bad,
            );
        }
        None => {}
    }
    match &s.message {
        Some(message) => (format!(" {message}"), theme.hint),
        None => (String::new(), theme.base),
    }
}
