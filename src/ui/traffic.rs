//! The traffic split: stable | canary bar at the current weight, the slider's
//! pending weight while the operator moves it, the planned steps, and what the
//! traffic stage waits for (approval, bake time, a pause, the rollback time).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::engine::snapshot::{Phase, TrafficView};

use crate::domain::Verdict;

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
        // The marker points at the stable | canary boundary the weight would give.
        let at = bar_offset(pending, width);
        let long = format!("{pending}% pending · enter applies · esc drops");
        let short = format!("{pending}% pending");
        let fits_right = |label: &str| at + 2 + label.chars().count() <= width;
        let line = if fits_right(&long) {
            format!("{}▲ {long}", " ".repeat(at))
        } else if fits_right(&short) {
            format!("{}▲ {short}", " ".repeat(at))
        } else {
            let label = format!("{short} ▲");
            let start = (at + 1).saturating_sub(label.chars().count());
            format!("{}{label}", " ".repeat(start))
        };
        lines.push(Line::styled(line, theme.pending_weight));
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

    lines.push(status_line(app, traffic, width));
    if let Some(line) = analysis_line(app, width) {
        lines.push(line);
    }
    lines
}

/// The column where the bar's stable part ends at `weight` percent to the canary
/// (the canary fills the bar from the right).
fn bar_offset(weight: u8, width: usize) -> usize {
    let (left, bar, _) = bar_geometry(width);
    left + bar - canary_cells(weight, bar)
}

fn canary_cells(weight: u8, bar: usize) -> usize {
    let cells = (bar * usize::from(weight) + 50) / 100;
    if weight > 0 {
        cells.clamp(1, bar)
    } else {
        0
    }
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
    let canary = canary_cells(weight, bar);
    let stable_cells = bar - canary;
    Line::from(vec![
        Span::styled(format!(" stable {:>3}% ", 100 - weight), theme.stable),
        Span::styled("░".repeat(stable_cells), theme.stable),
        Span::styled("█".repeat(canary), theme.canary),
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
    let last = traffic.steps.last().copied();
    match traffic.next_step {
        Some(next) => {
            spans.push(Span::styled("· next ", theme.muted));
            spans.push(Span::styled(format!("{next}%"), theme.canary));
        }
        None if last == Some(traffic.current_weight) => {
            spans.push(Span::styled("· last step", theme.muted));
        }
        None => {}
    }
    Line::from(spans)
}

fn status_line(app: &App, traffic: &TrafficView, width: usize) -> Line<'static> {
    let theme = app.theme();
    let s = app.snapshot();
    let moving = s.outcome.is_none() && s.phase != Phase::RollingBack;
    let mut items = Vec::new();
    if let Some(ms) = traffic.rollback_weight_ms {
        items.push((
            format!("rollback: weight applied in {ms:.0} ms"),
            theme.warned,
        ));
    }
    if traffic.paused {
        items.push(("⏸ paused (p resumes)".to_string(), theme.warned));
    }
    if moving && traffic.waiting_approval {
        let to = traffic
            .next_step
            .map(|n| format!(" (a advances to {n}%)"))
            .unwrap_or_default();
        items.push((format!("waiting for approval{to}"), theme.waiting));
    } else if moving && !traffic.bake.is_zero() {
        items.push((
            format!(
                "baked {} of {}",
                text::short_duration(traffic.baked),
                text::short_duration(traffic.bake)
            ),
            theme.base,
        ));
    }
    if moving {
        let approval = if traffic.approval_manual {
            "manual approval"
        } else {
            "auto approval"
        };
        items.push((approval.to_string(), theme.muted));
    }
    // As many items as fit, in order of importance.
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (text, style) in items {
        let separator = if spans.len() > 1 { 3 } else { 0 };
        let cost = separator + text.chars().count();
        if used + cost > width {
            break;
        }
        if separator > 0 {
            spans.push(Span::styled(" · ", theme.muted));
        }
        used += cost;
        spans.push(Span::styled(text, style));
    }
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
    // " analysis " + label + " · " + detail
    let detail = text::fit(&detail, width.saturating_sub(10 + label.len() + 3));
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
        // The canary grows from the right end of the bar.
        assert_eq!(bar_offset(0, 60), left + bar);
        assert_eq!(bar_offset(100, 60), left);
        assert_eq!(bar_offset(50, 60), left + bar / 2);
        assert!(bar_offset(35, 60) < bar_offset(25, 60));
    }
}
