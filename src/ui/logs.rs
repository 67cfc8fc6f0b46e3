//! The log pane: tui-logger's widget over the engine's tracing events (check
//! output and decisions), with the level filter and scroll state kept by `App`.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::Frame;
use tui_logger::{TuiLoggerLevelOutput, TuiLoggerWidget};

use super::app::{App, Pane};
use super::screen::pane_block;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    let focused = app.focus() == Pane::Logs;
    let level = app.log_level().as_str().to_lowercase();
    let title = if focused {
        format!(" logs · {level} · j/k scroll · +/- level ")
    } else {
        format!(" logs · {level} ")
    };
    let widget = TuiLoggerWidget::default()
        .block(pane_block(Line::from(title), focused, theme))
        .state(app.log_state())
        .output_timestamp(Some("%H:%M:%S".to_string()))
        .output_level(Some(TuiLoggerLevelOutput::Abbreviated))
        .output_target(false)
        .output_file(false)
        .output_line(false)
        .output_separator(' ')
        .style(theme.base)
        .style_error(theme.log_error)
        .style_warn(theme.log_warn)
        .style_info(theme.log_info)
        .style_debug(theme.log_debug)
        .style_trace(theme.log_trace);
    frame.render_widget(widget, area);
}
