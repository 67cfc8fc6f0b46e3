//! The traffic split: stable | canary bar at the current weight, the slider's
//! pending weight while the operator moves it, the planned steps, and what the
//! traffic stage waits for (approval, bake time, a pause, the rollback time);
//! with a group of routers, one compact row of each member's weight.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::domain::{MemberWeight, Outcome};
use crate::engine::snapshot::{Phase, TrafficView};

use super::app::{App, Pane};
use super::figures;
use super::screen::pane_block;
use super::status::{self, RunState};
use super::text;

/// Rows the pane takes for a body of `body_height` rows: the bar, the plan,
/// the state, the two rows of figures; one more for request counts and one
/// for the router when there is room; one more for a group's members.
/// `judged`: the sequential judge's rows too (one line at the smallest size,
/// else one per event kind).
pub fn height(body_height: u16, members: bool, judged: bool) -> u16 {
    let base = match body_height {
        ..=23 => 7,
        24..=35 => 8,
        _ => 9,
    };
    base + judge_rows(body_height, judged) + u16::from(members)
}

/// The judge's rows for a body of `body_height` rows.
fn judge_rows(body_height: u16, judged: bool) -> u16 {
    match (judged, body_height) {
        (false, _) => 0,
        (true, ..=23) => 1,
        (true, _) => 2,
    }
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    let s = app.snapshot();
    let title = match &s.traffic {
        Some(t) if t.router == "builtin" => {
            let long = format!(
                " traffic · {} · built-in router (stops when cutover exits) ",
                t.strategy.as_str()
            );
            if long.chars().count() + 2 <= usize::from(area.width) {
                long
            } else {
                format!(" traffic · {} · built-in router ", t.strategy.as_str())
            }
        }
        Some(t) if !t.members.is_empty() => format!(
            " traffic · {} · {} routers moved as one ",
            t.strategy.as_str(),
            t.members.len()
        ),
        Some(t) => format!(" traffic · {} · {} router ", t.strategy.as_str(), t.router),
        None => " traffic ".to_string(),
    };
    let block = pane_block(Line::from(title), app.focus() == Pane::Traffic, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let rows = usize::from(inner.height);

    let judged = if s.thresholds.sequential {
        // The pane's height tells the body's: one judge row at the smallest.
        let members = s.traffic.as_ref().is_some_and(|t| !t.members.is_empty());
        if area.height <= height(23, members, true) {
            1
        } else {
            2
        }
    } else {
        0
    };
    let lines = match &s.traffic {
        Some(traffic) => traffic_lines(app, traffic, width, rows, judged),
        None => vec![
            split_bar(app, 0, width),
            Line::styled(" all traffic on stable: this plan moves none", theme.muted),
        ],
    };
    frame.render_widget(Paragraph::new(lines), inner);
}

fn traffic_lines(
    app: &App,
    traffic: &TrafficView,
    width: usize,
    rows: usize,
    judged: usize,
) -> Vec<Line<'static>> {
    let s = app.snapshot();
    let mut lines = vec![split_bar(app, traffic.current_weight, width)];
    match s.outcome {
        Some(outcome) => lines.extend(ended_lines(app, traffic, outcome, width)),
        None => {
            lines.push(plan_line(app, traffic, width));
            lines.push(status_line(app, traffic, width));
        }
    }
    if !traffic.members.is_empty() {
        lines.push(members_line(app, traffic, width));
    }
    if judged > 0 {
        let mut judge = Vec::new();
        if let Some(r) = &s.recovery {
            let summary = match r.recovered_ms {
                Some(ms) => r.summary.replacen(
                    "stable recovered",
                    &format!("stable recovered in {:.1}s", ms / 1000.0),
                    1,
                ),
                None => r.summary.clone(),
            };
            let style = if summary.contains("still worse") {
                app.theme().failed
            } else {
                app.theme().base
            };
            let line = Line::styled(text::fit(&format!(" {summary}"), width), style);
            if s.outcome.is_some() && lines.len() >= 3 {
                // After the end the recovery says more than the router's note.
                lines[2] = line;
            } else {
                judge.push(line);
            }
        }
        if judge.len() < judged {
            judge.extend(super::evidence::lines(app, width, judged - judge.len()));
        }
        lines.extend(judge.into_iter().take(judged));
    }
    // The figures always fit: where a group's row and the judge's leave no
    // room for them, the plan's line gives way first (the checklist and the
    // bar show where the canary stands), then the rows above them.
    let budget = rows.saturating_sub(2).max(1);
    if lines.len() > budget && s.outcome.is_none() && lines.len() > 1 {
        lines.remove(1);
    }
    lines.truncate(budget);
    // The request counts when there is room.
    let room_for_requests = rows >= lines.len() + 3;
    lines.extend(figures::rows(app, width, room_for_requests));
    if rows > lines.len() && s.outcome.is_none() && traffic.router == "builtin" {
        lines.push(Line::styled(
            text::fit(
                " the built-in router serves only while cutover runs: quitting stops it",
                width,
            ),
            app.theme().muted,
        ));
    }
    lines
}

/// Second row while running: the slider while it moves, else a request in
/// flight, else the plan's steps and the next one.
fn plan_line(app: &App, traffic: &TrafficView, width: usize) -> Line<'static> {
    let theme = app.theme();
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
        return Line::styled(line, theme.pending_weight);
    }
    if let Some(requested) = traffic
        .requested_weight
        .filter(|w| *w != traffic.current_weight)
    {
        return Line::styled(
            format!(" → {requested}% requested, waiting for the router"),
            theme.pending_weight,
        );
    }
    if app.snapshot().phase == Phase::RollingBack {
        let text = match traffic.rollback_weight_ms {
            Some(ms) => format!(" rolling back: weight 0 confirmed in {ms:.0} ms"),
            None => " rolling back: weight 0 requested".to_string(),
        };
        return Line::styled(text, theme.failed);
    }
    steps_line(app, traffic)
}

/// The rows after the end: only what still applies.
fn ended_lines(
    app: &App,
    traffic: &TrafficView,
    outcome: Outcome,
    width: usize,
) -> Vec<Line<'static>> {
    let theme = app.theme();
    let s = app.snapshot();
    let weight = traffic.current_weight;
    let previous = s.previous.as_deref().unwrap_or("stable");
    let first = match outcome {
        Outcome::Succeeded => format!(" {} carries {weight}% of traffic", s.version),
        Outcome::RolledBack => match traffic.rollback_weight_ms {
            Some(ms) => format!(" back on {previous} · weight 0 confirmed in {ms:.0} ms"),
            None => format!(" back on {previous}"),
        },
        Outcome::RollbackFailed => {
            format!(" the rollback failed: the router may still send {weight}% to the canary")
        }
        Outcome::Interrupted => format!(" held at {weight}% · cutover run --resume carries on"),
        Outcome::Failed => " nothing was changed: traffic stayed on stable".to_string(),
    };
    let style = match outcome {
        Outcome::Succeeded => theme.passed,
        Outcome::RollbackFailed => theme.failed,
        _ => theme.base,
    };
    let second = if traffic.router == "builtin" {
        " built-in router: serves until cutover exits".to_string()
    } else if !traffic.members.is_empty() {
        " the routers keep these weights after cutover exits".to_string()
    } else {
        format!(
            " the {} router keeps these weights after cutover exits",
            traffic.router
        )
    };
    vec![
        Line::styled(text::fit(&first, width), style),
        Line::styled(text::fit(&second, width), theme.muted),
    ]
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
    let in_traffic = s.current_stage == Some(crate::domain::StageName::Traffic);
    let mut items = Vec::new();
    if let Some((count, limit, _)) = status::failing(s) {
        items.push((format!("analysis failing {count}/{limit}"), theme.failed));
    }
    match status::run_state(app) {
        RunState::Holding => items.push(("⏸ holding (a carries on)".to_string(), theme.warned)),
        RunState::Paused => items.push(("⏸ paused (p resumes)".to_string(), theme.warned)),
        _ => {}
    }
    if moving && traffic.waiting_approval {
        let undecided = s.thresholds.sequential
            && s.verdict != Some(crate::domain::Verdict::Pass)
            && !matches!(
                s.gate,
                Some(crate::engine::snapshot::Gate::AnalysisHold { .. })
            );
        let to = traffic
            .next_step
            .map(|n| {
                if undecided {
                    format!(" (a advances to {n}% on your call)")
                } else {
                    format!(" (a advances to {n}%)")
                }
            })
            .unwrap_or_default();
        let what = if undecided {
            "judge undecided, waiting for approval"
        } else {
            "waiting for approval"
        };
        items.push((format!("{what}{to}"), theme.waiting));
    } else if moving && in_traffic && s.thresholds.sequential && traffic.baked >= traffic.bake {
        // The sequential bake is time at the step; the judge's pass moves on.
        items.push((
            format!(
                "baked {}, waiting for the judge's pass",
                text::short_duration(traffic.bake)
            ),
            theme.base,
        ));
    } else if moving && in_traffic && !traffic.bake.is_zero() {
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

/// One row of a group's members: each name and the weight it confirmed
/// (or read back) last; a member that did not answer is marked ✗, one at
/// another weight than the group's stands out. When the row is too narrow:
/// how many agree, then the others as far as they fit.
fn members_line(app: &App, traffic: &TrafficView, width: usize) -> Line<'static> {
    let theme = app.theme();
    let current = traffic.current_weight;
    let agrees = |m: &MemberWeight| m.weight == Some(current) && m.error.is_none();
    let entry = |m: &MemberWeight| {
        let (text, style) = match (m.weight, &m.error) {
            (_, Some(_)) => (format!("{} ✗", m.name), theme.failed),
            (Some(w), None) if w == current => (format!("{} {w}", m.name), theme.base),
            (Some(w), None) => (format!("{} {w}", m.name), theme.warned),
            (None, None) => (format!("{} ·", m.name), theme.muted),
        };
        (text, style)
    };
    let label = " routers";
    let all: Vec<(String, ratatui::style::Style)> = traffic.members.iter().map(entry).collect();
    let full: usize = label.len()
        + all
            .iter()
            .map(|(t, _)| 1 + t.chars().count())
            .sum::<usize>();
    let mut spans = vec![Span::styled(label, theme.muted)];
    if full <= width {
        for (text, style) in all {
            spans.push(Span::raw(" "));
            spans.push(Span::styled(text, style));
        }
        return Line::from(spans);
    }
    let agreeing = traffic.members.iter().filter(|m| agrees(m)).count();
    let head = format!(" {agreeing}/{} at {current}%", traffic.members.len());
    let mut used = label.len() + head.chars().count();
    spans.push(Span::styled(head, theme.base));
    let others: Vec<(String, ratatui::style::Style)> = traffic
        .members
        .iter()
        .filter(|m| !agrees(m))
        .map(entry)
        .collect();
    for (i, (text, style)) in others.iter().enumerate() {
        let left = others.len() - i - 1;
        let more = if left > 0 {
            format!(" +{left}")
        } else {
            String::new()
        };
        let cost = 3 + text.chars().count();
        if used + cost + more.chars().count() > width {
            spans.push(Span::styled(format!(" +{}", others.len() - i), theme.muted));
            break;
        }
        spans.push(Span::styled(" · ", theme.muted));
        spans.push(Span::styled(text.clone(), *style));
        used += cost;
    }
    Line::from(spans)
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
