//! The `?` help overlay: every binding of the keymap, one row each.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::app::App;
use super::keymap::{keys_label, Scope, KEYMAP};
use super::screen::{centered, pane_block};
use super::text;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    let keys_width = KEYMAP
        .iter()
        .map(|b| keys_label(b).chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let width = area.width.saturating_sub(4).min(96);
    let height = u16::try_from(KEYMAP.len() + 2)
        .unwrap_or(u16::MAX)
        .min(area.height);
    let popup = centered(area, width, height);
    let block = pane_block(Line::from(" keys · esc or ? closes "), true, theme);
    let inner = block.inner(popup);
    let description_width = usize::from(inner.width).saturating_sub(keys_width + 1);

    let lines: Vec<Line> = KEYMAP
        .iter()
        .map(|binding| {
            let scope = match binding.scope {
                Scope::Dashboard => String::new(),
                other => format!("{}: ", other.heading()),
            };
            let description = text::fit(
                &format!("{scope}{}", binding.description),
                description_width,
            );
            Line::from(vec![
                Span::styled(format!(" {:<keys_width$}", keys_label(binding)), theme.key),
                Span::styled(description, theme.base),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(block).style(theme.dialog),
        popup,
    );
}
