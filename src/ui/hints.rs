//! The key-hint bar: the keymap's short hints for the current context, as many
//! as the width allows, with the key that matters now standing out.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::app::{Action, App, Pane};
use super::keymap::{bindings, Scope};

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    let scopes: &[Scope] = if app.quit_dialog().is_some() {
        &[Scope::QuitDialog]
    } else if app.focus() == Pane::Logs {
        &[Scope::Dashboard, Scope::LogPane]
    } else {
        &[Scope::Dashboard]
    };
    let width = usize::from(area.width);
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for binding in scopes.iter().flat_map(|scope| bindings(*scope)) {
        let Some(hint) = binding.hint else { continue };
        let entry = hint.keys.chars().count() + 1 + hint.text.chars().count() + 2;
        if used + entry > width {
            break;
        }
        used += entry;
        let key_style = if urgent(app, binding.action) {
            theme.key_urgent
        } else {
            theme.key
        };
        spans.push(Span::styled(hint.keys, key_style));
        spans.push(Span::styled(format!(" {}  ", hint.text), theme.hint));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The key the operator most likely needs now.
fn urgent(app: &App, action: Action) -> bool {
    let s = app.snapshot();
    match action {
        Action::Approve => s.gate.is_some() && s.outcome.is_none(),
        Action::Apply => app.pending_weight().is_some(),
        Action::Quit => s.outcome.is_some(),
        _ => false,
    }
}
