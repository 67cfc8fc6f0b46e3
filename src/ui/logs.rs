//! The log pane over the log ring: the newest lines at the chosen level,
//! each wrapped at word boundaries under its text (a hanging indent past the
//! time and level), a marker while scrolled, and a word when a level is empty.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::{App, Pane};
use super::log_ring::{LogLevel, LogLine};
use super::screen::pane_block;
use super::text;
use super::theme::Theme;

/// `HH:MM:SS L `: the columns before a line's text.
const GUTTER: usize = 11;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    let focused = app.focus() == Pane::Logs;
    let level = app.log_level().as_str();
    let title = if focused {
        format!(" logs · {level} · j/k scroll · +/- level ")
    } else {
        format!(" logs · {level} ")
    };
    let mut block = pane_block(Line::from(title), focused, theme);
    let height = usize::from(area.height.saturating_sub(2));
    let view = app.log_view(height.max(1));
    if app.log_anchor().is_some() {
        let marker = format!(" scrolled · {} newer · G follows ", view.newer);
        block = block.title_bottom(Line::styled(marker, theme.notice).right_aligned());
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);

    if view.lines.is_empty() {
        let empty = Line::styled(" (nothing at this level)", theme.muted);
        frame.render_widget(Paragraph::new(empty), inner);
        return;
    }
    // Newest at the bottom: wrap from the newest back until the pane is full.
    let mut rows: Vec<Line<'static>> = Vec::with_capacity(height);
    for line in view.lines.iter().rev() {
        let mut wrapped = entry_rows(line, width, theme, app.utc_offset());
        wrapped.reverse();
        rows.extend(wrapped);
        if rows.len() >= height {
            break;
        }
    }
    rows.truncate(height);
    rows.reverse();
    frame.render_widget(Paragraph::new(rows), inner);
}

/// One log line as rows: the time and level, then the text wrapped at word
/// boundaries, continuation rows indented under the text.
fn entry_rows(
    line: &LogLine,
    width: usize,
    theme: &Theme,
    offset: chrono::FixedOffset,
) -> Vec<Line<'static>> {
    let style = level_style(line.level, theme);
    let text_width = width.saturating_sub(GUTTER).max(8);
    let wrapped = text::wrap(&line.text, text_width, "");
    let wrapped = if wrapped.is_empty() {
        vec![String::new()]
    } else {
        wrapped
    };
    let time = app_time(line.at, offset);
    wrapped
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                Line::from(vec![
                    Span::styled(time.clone(), theme.muted),
                    Span::styled(format!("{} ", line.level.letter()), style),
                    Span::styled(part, style),
                ])
            } else {
                Line::from(vec![
                    Span::raw(" ".repeat(GUTTER)),
                    Span::styled(part, style),
                ])
            }
        })
        .collect()
}

/// `HH:MM:SS ` in the operator's time zone.
fn app_time(at: chrono::DateTime<chrono::Utc>, offset: chrono::FixedOffset) -> String {
    at.with_timezone(&offset).format("%H:%M:%S ").to_string()
}

fn level_style(level: LogLevel, theme: &Theme) -> Style {
    match level {
        LogLevel::Error => theme.log_error,
        LogLevel::Warn => theme.log_warn,
        LogLevel::Info => theme.log_info,
        LogLevel::Debug => theme.log_debug,
        LogLevel::Trace => theme.log_trace,
    }
}
