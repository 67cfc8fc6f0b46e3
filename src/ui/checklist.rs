//! The procedure checklist: seven stage rows with done/total counts, the checks
//! with status glyph and duration, and the output tail of the selected check.
//!
//! When the pane is too short for every check, only the selected stage's checks
//! are listed (scrolled around the selection) so the output tail keeps room.

use std::time::Duration;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::engine::snapshot::{CheckStatus, CheckTally, CheckView, StageStatus, StageView};

use crate::domain::StageName;

use super::app::{App, Pane};
use super::screen::pane_block;
use super::text;
use super::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    // The stage counter is the header's alone; the title only names the pane.
    let title = Line::from(" procedure ");
    let block = pane_block(title, app.focus() == Pane::Checklist, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let width = usize::from(inner.width);
    let height = usize::from(inner.height);
    // A manual check waiting for the operator gets the room its text needs.
    let needed = app
        .selected_check()
        .filter(|(_, c)| c.status == CheckStatus::WaitingApproval)
        .map_or(0, |(_, c)| text::wrap(&target_text(c), width, "").len());
    let tail_room = (height / 3).min(6).max(needed);
    // The check rows give way to a waiting prompt; otherwise one stays.
    let min_checks = usize::from(needed == 0);
    let mut lines = list_lines(app, width, height, tail_room, min_checks);
    let room = height.saturating_sub(lines.len());
    if room >= 2 {
        // Keep the output tail at the bottom of the pane.
        let tail = output_lines(app, width, room);
        lines.extend(std::iter::repeat_n(Line::default(), room - tail.len()));
        lines.extend(tail);
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Stage rows and the check rows that fit above `tail_room` rows of detail
/// (at least `min_checks` of the selected stage).
fn list_lines(
    app: &App,
    width: usize,
    height: usize,
    tail_room: usize,
    min_checks: usize,
) -> Vec<Line<'static>> {
    let s = app.snapshot();
    let selected = app.selected_position();
    let selected_stage = app.selected_check().map(|(stage, _)| stage.name);
    let total_checks: usize = s.stages.iter().map(|st| st.checks.len()).sum();
    let expand_all = s.stages.len() + total_checks + tail_room <= height;
    let check_room = height
        .saturating_sub(s.stages.len() + tail_room)
        .max(min_checks);

    let mut lines = Vec::with_capacity(height);
    let mut index = 0;
    for stage in &s.stages {
        lines.push(stage_line(app, stage, width));
        let first = index;
        index += stage.checks.len();
        let expanded = expand_all || Some(stage.name) == selected_stage;
        if !expanded || stage.checks.is_empty() {
            continue;
        }
        let (from, to) = if expand_all {
            (0, stage.checks.len())
        } else {
            let at = selected.map_or(0, |p| p.saturating_sub(first));
            visible_window(stage.checks.len(), at, check_room)
        };
        for (offset, check) in stage.checks[from..to].iter().enumerate() {
            let is_selected = selected == Some(first + from + offset);
            lines.push(check_line(app, check, is_selected, width));
        }
    }
    lines.truncate(height);
    lines
}

/// The `[from, to)` range of `len` rows that shows `at` within `room` rows.
fn visible_window(len: usize, at: usize, room: usize) -> (usize, usize) {
    if len <= room {
        return (0, len);
    }
    let from = at.saturating_sub(room / 2).min(len - room);
    (from, from + room)
}

fn stage_line(app: &App, stage: &StageView, width: usize) -> Line<'static> {
    let theme = app.theme();
    let (glyph, style) = stage_mark(app, stage);
    let name = format!("{} {}", stage.name.number(), stage.name);
    let tally = stage.tally();
    let right = match (stage.status, stage.name) {
        (StageStatus::NotConfigured, _) => "not configured".to_string(),
        (_, StageName::Traffic) if tally.total == 0 => app
            .snapshot()
            .traffic
            .as_ref()
            .map(|t| format!("{}% canary", t.current_weight))
            .unwrap_or_default(),
        (StageStatus::Skipped, _) => "skipped".to_string(),
        _ => counts(&tally),
    };
    let name_width = width.saturating_sub(3 + right.chars().count() + 1);
    let name = text::fit(&name, name_width);
    let pad = name_width.saturating_sub(name.chars().count());
    let name_style = if stage.status == StageStatus::Running {
        theme.title
    } else if matches!(
        stage.status,
        StageStatus::Pending | StageStatus::Skipped | StageStatus::NotConfigured
    ) {
        theme.muted
    } else {
        theme.base
    };
    Line::from(vec![
        Span::raw(" "),
        Span::styled(glyph, style),
        Span::raw(" "),
        Span::styled(name, name_style),
        Span::raw(" ".repeat(pad + 1)),
        Span::styled(right, theme.muted),
    ])
}

/// `2/3` passed of all; then what failed and what never ran, so a stage cut
/// short never reads as done: `1/3 ✗1 1 skipped`.
fn counts(tally: &CheckTally) -> String {
    let mut text = format!("{}/{}", tally.passed, tally.total);
    if tally.failed > 0 {
        text.push_str(&format!(" ✗{}", tally.failed));
    }
    if tally.skipped > 0 {
        text.push_str(&format!(" {} skipped", tally.skipped));
    }
    text
}

fn stage_mark(app: &App, stage: &StageView) -> (String, Style) {
    let theme = app.theme();
    let waiting = stage
        .checks
        .iter()
        .any(|c| c.status == CheckStatus::WaitingApproval);
    if stage.status == StageStatus::Running {
        if waiting {
            return ("?".to_string(), theme.waiting);
        }
        return (spinner(app), theme.running);
    }
    let glyph = text::stage_glyph(stage.status).unwrap_or("·");
    let style = match stage.status {
        StageStatus::Passed => theme.passed,
        StageStatus::Warned => theme.warned,
        StageStatus::Failed => theme.failed,
        _ => theme.pending,
    };
    (glyph.to_string(), style)
}

fn spinner(app: &App) -> String {
    text::spinner(app.now().timestamp_millis()).to_string()
}

fn check_line(app: &App, check: &CheckView, selected: bool, width: usize) -> Line<'static> {
    let theme = app.theme();
    let (glyph, glyph_style) = match text::check_glyph(check.status) {
        Some(glyph) => (glyph.to_string(), check_style(theme, check.status)),
        None => (spinner(app), theme.running),
    };
    let duration = check_duration(app, check)
        .map(text::short_duration)
        .unwrap_or_default();
    let mut name = check.name.clone();
    if check.attempt > 1 {
        name.push_str(&format!(" (try {})", check.attempt));
    }
    if check.optional {
        name.push_str(" (optional)");
    }
    let marker = if selected { "▸" } else { " " };
    let name_width = width.saturating_sub(5 + duration.chars().count() + 1);
    let name = text::fit(&name, name_width);
    let pad = name_width.saturating_sub(name.chars().count());
    let row_style = if selected && app.focus() == Pane::Checklist {
        theme.selected
    } else {
        Style::new()
    };
    let name_style = match check.status {
        CheckStatus::Pending | CheckStatus::Skipped => theme.muted,
        CheckStatus::WaitingApproval => theme.waiting,
        CheckStatus::Failed => theme.failed,
        _ => theme.base,
    };
    Line::from(vec![
        Span::styled(format!(" {marker} "), theme.key),
        Span::styled(glyph, glyph_style),
        Span::raw(" "),
        Span::styled(name, name_style),
        Span::raw(" ".repeat(pad + 1)),
        Span::styled(duration, theme.muted),
    ])
    .style(row_style)
}

fn check_style(theme: &Theme, status: CheckStatus) -> Style {
    match status {
        CheckStatus::Passed => theme.passed,
        CheckStatus::Failed => theme.failed,
        CheckStatus::Warned => theme.warned,
        CheckStatus::WaitingApproval => theme.waiting,
        CheckStatus::Running => theme.running,
        CheckStatus::Pending | CheckStatus::Skipped => theme.pending,
    }
}

/// Time so far for a running or waiting check (from the clock), else the recorded time.
fn check_duration(app: &App, check: &CheckView) -> Option<Duration> {
    match (check.status, check.started_at) {
        (CheckStatus::Running | CheckStatus::WaitingApproval, Some(started)) => {
            (app.now() - started).to_std().ok()
        }
        _ => check.duration,
    }
}

/// A rule naming the selected check, what it runs, and the last lines of its output.
fn output_lines(app: &App, width: usize, room: usize) -> Vec<Line<'static>> {
    let theme = app.theme();
    let Some((stage, check)) = app.selected_check() else {
        return Vec::new();
    };
    let target = target_text(check);
    if check.status == CheckStatus::WaitingApproval {
        // What the operator must confirm, in full; the check's own row above
        // names it, so no heading takes a row from the text.
        return text::wrap(&target, width, "")
            .into_iter()
            .take(room)
            .map(|line| Line::styled(line, theme.waiting))
            .collect();
    }
    let heading = format!("─ {} · {} ", stage.name, check.name);
    let heading = text::fit(&heading, width);
    let rule = "─".repeat(width.saturating_sub(heading.chars().count()));
    let mut lines = vec![Line::from(vec![
        Span::styled(heading, theme.title),
        Span::styled(rule, theme.border),
    ])];
    if room >= 3 {
        lines.push(Line::styled(text::fit(&target, width), theme.muted));
    }
    let tail_room = room.saturating_sub(lines.len());
    let tail = app.output_tail(check, tail_room);
    let tail_style = if check.status == CheckStatus::Failed {
        theme.failed
    } else {
        theme.base
    };
    lines.extend(
        tail.iter()
            .map(|line| Line::styled(text::fit(line, width), tail_style)),
    );
    lines
}

/// What a check does, one line: the command, URL, address or prompt.
fn target_text(check: &CheckView) -> String {
    match check.kind.as_str() {
        "run" => format!("$ {}", check.target),
        "http" => format!("GET {}", check.target),
        "tcp" => format!("connect {}", check.target),
        "manual" => format!("confirm: {}", check.target),
        other => format!("{other}: {}", check.target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_never_call_a_skipped_check_done() {
        let tally = |passed, failed, skipped| CheckTally {
            passed,
            warned: 0,
            failed,
            skipped,
            total: passed + failed + skipped,
        };
        assert_eq!(counts(&tally(3, 0, 0)), "3/3");
        assert_eq!(counts(&tally(1, 1, 1)), "1/3 ✗1 1 skipped");
        assert_eq!(counts(&tally(0, 0, 3)), "0/3 3 skipped");
    }

    #[test]
    fn the_window_keeps_the_selection_in_view() {
        assert_eq!(visible_window(3, 2, 5), (0, 3));
        assert_eq!(visible_window(10, 0, 4), (0, 4));
        assert_eq!(visible_window(10, 5, 4), (3, 7));
        assert_eq!(visible_window(10, 9, 4), (6, 10));
    }
}
