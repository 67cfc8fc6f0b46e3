//! The traffic split: stable | canary bar at the current weight, the slider's
//! pending weight while the operator moves it, the planned steps, and what the
//! traffic stage waits for (approval, bake time, a pause, the rollback time).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::engine::snapshot::{TrafficView, Verdict};

use super::app::{App, Pane};
use super::screen::pane_block;
use super::text;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    let s = app.snapshot();
    let title = match &s.traffic {
        Some(t) => format!(" traffic · {} · {} router ", t.strategy.as_str(), t.router),
        None => " traffic ".to_string(),
    };
    let block = pane_block(Line::from(title), app.focus() == Pane::Traffic, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);

    let lines = match &s.traffic {
        Some(traffic) => traffic_lines(app, traffic, width),
        None => vec![
            split_bar(app, 0, width),
            Line::styled(
                " all traffic on stable until the traffic stage",
                theme.muted,
            ),
        ],
    };
    frame.render_widget(Paragraph::new(lines), inner);
}

fn traffic_lines(app: &App, traffic: &TrafficView, width: usize) -> Vec<Line<'static>> {
    let theme = app.theme();
    let mut lines = vec![split_bar(app, traffic.current_weight, width)];

    // Second line: the slider while it moves, else a request in flight, else the plan.
    if let Some(pending) = app.pending_weight() {
        let at = bar_offset(pending, width);
        let label = format!("▲ {pending}% pending · enter applies · esc drops");
        let short = format!("▲ {pending}% pending");
        let label = if at + label.chars().count() <= width {
            label
        } else {
            short
        };
        let at = at.min(width.saturating_sub(label.chars().count()));
        lines.push(Line::from(vec![
            Span::raw(" ".repeat(at)),
            Span::styled(label, theme.pending_weight),
        ]));
    } else if let Some(requested) = traffic
        .requested_weight
        .filter(|w| *w != traffic.current_weight)
    {
        lines.push(Line::styled(
            format!(" → {requested}% requested, waiting for the router"),
            theme.pending_weight,
        ));
    } else {
        lines.push(steps_line(app, traffic));
    }

    lines.push(status_line(app, traffic));
    if let Some(line) = analysis_line(app, width) {
        lines.push(line);
    }
    lines
}

/// Columns inside the bar where `weight` percent falls.
fn bar_offset(weight: u8, width: usize) -> usize {
    let (left, bar, _) = bar_geometry(width);
    left + bar * usize::from(weight) / 100
}

/// Widths of the left label, the bar and the right label.
fn bar_geometry(width: usize) -> (usize, usize, usize) {
    let left = " stable 100% ".len();
    let right = " 100% canary".len();
    (left, width.saturating_sub(left + right), right)
}

fn split_bar(app: &App, weight: u8, width: usize) -> Line<'static> {
    let theme = app.theme();
    let (_, bar, _) = bar_geometry(width);
    let canary_cells = (bar * usize::from(weight) + 50) / 100;
    let canary_cells = if weight > 0 { canary_cells.max(1) } else { 0 };
    let stable_cells = bar - canary_cells.min(bar);
    Line::from(vec![
        Span::styled(format!(" stable {:>3}% ", 100 - weight), theme.stable),
        Span::styled("░".repeat(stable_cells), theme.stable),
        Span::styled("█".repeat(canary_cells.min(bar)), theme.canary),
        Span::styled(format!(" {weight:>3}% canary"), theme.canary),
    ])
}

fn steps_line(app: &App, traffic: &TrafficView) -> Line<'static> {
    let theme = app.theme();
    let mut spans = vec![Span::styled(" steps ", theme.muted)];
    for step in &traffic.steps {
        let style = if *step == traffic.current_weight {
            theme.title
        } else if *step < traffic.current_weight {
            theme.muted
        } else {
            theme.base
        };
        let label = if *step == traffic.current_weight {
            format!("[{step}]")
        } else {
            step.to_string()
        };
        spans.push(Span::styled(label, style));
        spans.push(Span::raw(" "));
    }
    match traffic.next_step {
        Some(next) => {
            spans.push(Span::styled("· next ", theme.muted));
            spans.push(Span::styled(format!("{next}%"), theme.canary));
        }
        None => spans.push(Span::styled("· last step", theme.muted)),
    }
    Line::from(spans)
}

fn status_line(app: &App, traffic: &TrafficView) -> Line<'static> {
    let theme = app.theme();
    let mut spans = vec![Span::raw(" ")];
    let mut push = |text: String, style| {
        if spans.len() > 1 {
            spans.push(Span::styled(" · ", theme.muted));
        }
        spans.push(Span::styled(text, style));
    };
    if let Some(ms) = traffic.rollback_weight_ms {
        push(
            format!("rollback: weight applied in {ms:.0} ms"),
            theme.warned,
        );
    }
    if traffic.paused {
        push("⏸ paused (p resumes)".to_string(), theme.warned);
    }
    if traffic.waiting_approval {
        let to = traffic
            .next_step
            .map(|n| format!(" (a advances to {n}%)"))
            .unwrap_or_default();
        push(format!("waiting for approval{to}"), theme.waiting);
    } else if !traffic.bake.is_zero() && app.snapshot().outcome.is_none() {
        push(
            format!(
                "baked {} of {}",
                text::short_duration(traffic.baked),
                text::short_duration(traffic.bake)
            ),
            theme.base,
        );
    }
    let approval = if traffic.approval_manual {
        "manual approval"
    } else {
        "auto approval"
    };
    push(approval.to_string(), theme.muted);
    Line::from(spans)
}

/// The latest sample in words: figures when healthy, the reasons when not.
fn analysis_line(app: &App, width: usize) -> Option<Line<'static>> {
    let theme = app.theme();
    let point = app.snapshot().samples.last()?;
    let (label, style) = match point.verdict {
        Verdict::Pass => ("pass", theme.passed),
        Verdict::Fail => ("fail", theme.failed),
        Verdict::Inconclusive => ("inconclusive", theme.warned),
    };
    let detail = if point.reasons.is_empty() {
        let c = &point.pair.canary;
        format!(
            "canary {} req · stable {} req",
            c.requests, point.pair.stable.requests
        )
    } else {
        point.reasons.join("; ")
    };
    let detail = text::fit(&detail, width.saturating_sub(label.len() + 12));
    Some(Line::from(vec![
        Span::styled(" analysis ", theme.muted),
        Span::styled(label, style),
        Span::styled(format!(" · {detail}"), theme.hint),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slider_marker_sits_over_its_weight() {
        let (left, bar, _) = bar_geometry(60);
        assert_eq!(bar_offset(0, 60), left);
        assert_eq!(bar_offset(100, 60), left + bar);
        assert_eq!(bar_offset(50, 60), left + bar / 2);
    }
}
