//! The key-hint bar: the keymap's hints for what can act now, named for the
//! state (`p resume` while paused, `a carry on` while holding), as many as
//! the width allows, the key that matters now standing out. A transient
//! notice takes the bar for a few seconds, keeping `R` and `q`.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::engine::snapshot::Gate;

use super::app::{Action, App, Pane};
use super::keymap::{bindings, Binding, Scope};
use super::status::{self, RunState};
use super::text;

/// One hint as shown: keys, words, whether it stands out, and how much it
/// matters (0 first) when the bar is short of room.
struct Entry {
    keys: &'static str,
    text: &'static str,
    urgent: bool,
    rank: u8,
}

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    let width = usize::from(area.width);
    let entries = offered(app);
    let cost = |e: &Entry| e.keys.chars().count() + 1 + e.text.chars().count() + 2;
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    let keep_rank = if let Some(notice) = app.notice() {
        // The notice first; only the keys that matter most beside it.
        let essentials: usize = entries.iter().filter(|e| e.rank == 0).map(cost).sum();
        let room = width.saturating_sub(used + essentials + 4);
        let notice = text::fit(&format!("▸ {notice}"), room);
        used += notice.chars().count() + 2;
        spans.push(Span::styled(notice, theme.notice));
        spans.push(Span::raw("  "));
        0
    } else {
        // Drop the least important hints until the rest fit.
        let mut rank = 9;
        while rank > 0
            && entries
                .iter()
                .filter(|e| e.rank <= rank)
                .map(cost)
                .sum::<usize>()
                + used
                > width
        {
            rank -= 1;
        }
        rank
    };
    for entry in entries.iter().filter(|e| e.rank <= keep_rank) {
        let entry_cost = cost(entry);
        if used + entry_cost > width {
            break;
        }
        used += entry_cost;
        let key_style = if entry.urgent {
            theme.key_urgent
        } else {
            theme.key
        };
        spans.push(Span::styled(entry.keys, key_style));
        spans.push(Span::styled(format!(" {}  ", entry.text), theme.hint));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The hints of the keys that act now, in keymap order.
fn offered(app: &App) -> Vec<Entry> {
    let scopes: &[Scope] = if app.quit_dialog().is_some() {
        &[Scope::QuitDialog]
    } else if app.focus() == Pane::Logs {
        &[Scope::Dashboard, Scope::LogPane]
    } else {
        &[Scope::Dashboard]
    };
    scopes
        .iter()
        .flat_map(|scope| bindings(*scope))
        .filter_map(|binding| entry(app, binding))
        .collect()
}

fn entry(app: &App, binding: &Binding) -> Option<Entry> {
    let hint = binding.hint?;
    let s = app.snapshot();
    let state = status::run_state(app);
    let steering = state.steering() && state != RunState::RollbackRequested;
    let plain = |text: &'static str, rank: u8| Entry {
        keys: hint.keys,
        text,
        urgent: false,
        rank,
    };
    let urgent = |text: &'static str| Entry {
        keys: hint.keys,
        text,
        urgent: true,
        rank: 0,
    };
    Some(match binding.action {
        Action::Approve if steering => match s.gate.as_ref()? {
            Gate::Manual { .. } => urgent("confirm"),
            Gate::Step { .. } => urgent("approve"),
            Gate::AnalysisHold { .. } => urgent("carry on"),
        },
        Action::WeightDown(_) if app.slider_can_act() => plain(hint.text, 3),
        Action::Apply if app.pending_weight().is_some() => urgent(hint.text),
        Action::TogglePause if steering => match state {
            RunState::Paused | RunState::Holding => urgent("resume"),
            _ => plain("pause", 2),
        },
        Action::Rollback if steering => plain(hint.text, 0),
        Action::Quit if matches!(state, RunState::Ended(_)) => urgent(hint.text),
        Action::Quit => plain(hint.text, 1),
        Action::FocusNext | Action::ToggleHelp => plain(hint.text, 4),
        Action::LogFollow if app.log_anchor().is_some() => urgent(hint.text),
        Action::LogLevelMore | Action::LogFollow => plain(hint.text, 5),
        Action::HoldAndQuit if app.builtin_router() => urgent("stop & exit"),
        Action::HoldAndQuit => urgent(hint.text),
        Action::Stay | Action::DialogSwitch | Action::DialogConfirm => plain(hint.text, 1),
        _ => return None,
    })
}
