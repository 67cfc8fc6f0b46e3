//! The one keymap table: key, description, action. The hint bar, the help
//! overlay and key handling all read [`KEYMAP`], so they cannot drift apart.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::Action;

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Anywhere on the dashboard.
    Dashboard,
    /// Only while the log pane has focus (looked up before `Dashboard`).
    LogPane,
    /// Only while the quit dialog is open (replaces `Dashboard`, except the
    /// keys listed in [`DIALOG_PASSTHROUGH`]).
    QuitDialog,
}

impl Scope {
    pub fn heading(self) -> &'static str {
        match self {
            Scope::Dashboard => "dashboard",
            Scope::LogPane => "logs",
            Scope::QuitDialog => "dialog",
        }
    }
}

/// One key: a code plus whether ctrl and shift are held. For character keys the
/// shift state is part of the character (`R`, `?`) and is not compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub shift: bool,
}

const fn plain(code: KeyCode) -> Key {
    Key {
        code,
        ctrl: false,
        shift: false,
    }
}

const fn ch(c: char) -> Key {
    plain(KeyCode::Char(c))
}

const fn shifted(code: KeyCode) -> Key {
    Key {
        code,
        ctrl: false,
        shift: true,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
        shift: false,
    }
}

impl Key {
    pub fn matches(&self, event: &KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let shift = event.modifiers.contains(KeyModifiers::SHIFT);
        match (self.code, event.code) {
            (KeyCode::Char(want), KeyCode::Char(got)) => want == got && self.ctrl == ctrl,
            // Terminals report shift-tab as BackTab, with or without the shift flag.
            (KeyCode::BackTab, KeyCode::BackTab) => !ctrl,
            (want, got) => want == got && self.ctrl == ctrl && self.shift == shift,
        }
    }

    /// How the key is written in the help overlay.
    pub fn label(&self) -> String {
        let name = match self.code {
            KeyCode::Left => "←".to_string(),
            KeyCode::Right => "→".to_string(),
            KeyCode::Up => "↑".to_string(),
            KeyCode::Down => "↓".to_string(),
            KeyCode::Enter => "enter".to_string(),
            KeyCode::Esc => "esc".to_string(),
            KeyCode::Tab => "tab".to_string(),
            KeyCode::BackTab => "shift-tab".to_string(),
            KeyCode::PageUp => "pgup".to_string(),
            KeyCode::PageDown => "pgdn".to_string(),
            KeyCode::Char(c) => c.to_string(),
            other => format!("{other:?}").to_lowercase(),
        };
        match (self.ctrl, self.shift) {
            (true, _) => format!("ctrl-{name}"),
            (false, true) => format!("shift-{name}"),
            (false, false) => name,
        }
    }
}

/// A short entry for the hint bar: the keys as written there and one word or two.
#[derive(Debug, Clone, Copy)]
pub struct Hint {
    pub keys: &'static str,
    pub text: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub scope: Scope,
    pub action: Action,
    pub description: &'static str,
    /// Shown in the hint bar when set; bindings without one are in the help only.
    pub hint: Option<Hint>,
}

const fn hint(keys: &'static str, text: &'static str) -> Option<Hint> {
    Some(Hint { keys, text })
}

/// Every key the dashboard knows.
pub static KEYMAP: &[Binding] = &[
    Binding {
        keys: &[ch('a')],
        scope: Scope::Dashboard,
        action: Action::Approve,
        description: "approve the waiting manual check or the next step",
        hint: hint("a", "approve"),
    },
    Binding {
        keys: &[plain(KeyCode::Left)],
        scope: Scope::Dashboard,
        action: Action::WeightDown(5),
        description: "move the pending canary weight down 5 points",
        hint: hint("←→", "weight"),
    },
    Binding {
        keys: &[plain(KeyCode::Right)],
        scope: Scope::Dashboard,
        action: Action::WeightUp(5),
        description: "move the pending canary weight up 5 points",
        hint: None,
    },
    Binding {
        keys: &[shifted(KeyCode::Left)],
        scope: Scope::Dashboard,
        action: Action::WeightDown(1),
        description: "move the pending canary weight down 1 point",
        hint: None,
    },
    Binding {
        keys: &[shifted(KeyCode::Right)],
        scope: Scope::Dashboard,
        action: Action::WeightUp(1),
        description: "move the pending canary weight up 1 point",
        hint: None,
    },
    Binding {
        keys: &[plain(KeyCode::Enter)],
        scope: Scope::Dashboard,
        action: Action::Apply,
        description: "apply the pending weight (if not the current one)",
        hint: hint("⏎", "apply"),
    },
    Binding {
        keys: &[plain(KeyCode::Esc)],
        scope: Scope::Dashboard,
        action: Action::Cancel,
        description: "drop the pending weight, close the help",
        hint: None,
    },
    Binding {
        keys: &[ch('p')],
        scope: Scope::Dashboard,
        action: Action::TogglePause,
        description: "pause / resume automatic progression",
        hint: hint("p", "pause"),
    },
    Binding {
        keys: &[ch('R')],
        scope: Scope::Dashboard,
        action: Action::Rollback,
        description: "emergency rollback, at once, no dialog",
        hint: hint("R", "rollback"),
    },
    Binding {
        keys: &[plain(KeyCode::Tab)],
        scope: Scope::Dashboard,
        action: Action::FocusNext,
        description: "focus the next pane (checklist, traffic, logs)",
        hint: hint("tab", "focus"),
    },
    Binding {
        keys: &[plain(KeyCode::BackTab)],
        scope: Scope::Dashboard,
        action: Action::FocusPrevious,
        description: "focus the previous pane",
        hint: None,
    },
    Binding {
        keys: &[ch('k'), plain(KeyCode::Up)],
        scope: Scope::Dashboard,
        action: Action::Up,
        description: "up in the focused pane: check, older logs, weight",
        hint: None,
    },
    Binding {
        keys: &[ch('j'), plain(KeyCode::Down)],
        scope: Scope::Dashboard,
        action: Action::Down,
        description: "down in the focused pane: check, newer logs, weight",
        hint: None,
    },
    Binding {
        keys: &[ch('?')],
        scope: Scope::Dashboard,
        action: Action::ToggleHelp,
        description: "show or hide this help",
        hint: hint("?", "help"),
    },
    Binding {
        keys: &[ch('q'), ctrl('c')],
        scope: Scope::Dashboard,
        action: Action::Quit,
        description: "quit; mid-deployment, asks: hold and exit, or stay",
        hint: hint("q", "quit"),
    },
    Binding {
        keys: &[ch('+'), ch('=')],
        scope: Scope::LogPane,
        action: Action::LogLevelMore,
        description: "more detail (info → debug → trace)",
        hint: hint("+-", "level"),
    },
    Binding {
        keys: &[ch('-')],
        scope: Scope::LogPane,
        action: Action::LogLevelLess,
        description: "less detail (down to errors only)",
        hint: None,
    },
    Binding {
        keys: &[ch('G'), plain(KeyCode::End)],
        scope: Scope::LogPane,
        action: Action::LogFollow,
        description: "follow the newest lines again",
        hint: hint("G", "follow"),
    },
    Binding {
        keys: &[ch('d')],
        scope: Scope::QuitDialog,
        action: Action::Detach,
        description: "detach this dashboard; the deployment goes on (attached to a detached engine)",
        hint: hint("d", "detach"),
    },
    Binding {
        keys: &[ch('h')],
        scope: Scope::QuitDialog,
        action: Action::HoldAndQuit,
        description: "hold traffic where it is and exit, resumable (the built-in router stops); attached: pause progression and detach",
        hint: hint("h", "hold & exit"),
    },
    Binding {
        keys: &[ch('s'), plain(KeyCode::Esc)],
        scope: Scope::QuitDialog,
        action: Action::Stay,
        description: "stay on the dashboard",
        hint: hint("s/esc", "stay"),
    },
    Binding {
        keys: &[
            plain(KeyCode::Left),
            plain(KeyCode::Right),
            plain(KeyCode::Tab),
            plain(KeyCode::BackTab),
        ],
        scope: Scope::QuitDialog,
        action: Action::DialogSwitch,
        description: "switch between the choices",
        hint: hint("←→", "choose"),
    },
    Binding {
        keys: &[plain(KeyCode::Enter)],
        scope: Scope::QuitDialog,
        action: Action::DialogConfirm,
        description: "take the highlighted choice",
        hint: hint("⏎", "confirm"),
    },
];

/// Dashboard actions still reachable while the quit dialog is open.
pub const DIALOG_PASSTHROUGH: &[Action] = &[Action::Rollback, Action::Quit, Action::ToggleHelp];

/// What the keymap needs to know about the screen to pick a binding.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyContext {
    pub dialog_open: bool,
    pub logs_focused: bool,
}

/// The action bound to a key press in this context, if any.
pub fn action_for(event: &KeyEvent, context: KeyContext) -> Option<Action> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let find = |scope: Scope| {
        KEYMAP
            .iter()
            .filter(|binding| binding.scope == scope)
            .find(|binding| binding.keys.iter().any(|key| key.matches(event)))
            .map(|binding| binding.action)
    };
    if context.dialog_open {
        return find(Scope::QuitDialog)
            .or_else(|| find(Scope::Dashboard).filter(|a| DIALOG_PASSTHROUGH.contains(a)));
    }
    if context.logs_focused {
        if let Some(action) = find(Scope::LogPane) {
            return Some(action);
        }
    }
    find(Scope::Dashboard)
}

/// Bindings of one scope, in table order.
pub fn bindings(scope: Scope) -> impl Iterator<Item = &'static Binding> {
    KEYMAP.iter().filter(move |binding| binding.scope == scope)
}

/// The keys of a binding as the help overlay writes them ("q ctrl-c").
pub fn keys_label(binding: &Binding) -> String {
    binding
        .keys
        .iter()
        .map(Key::label)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn plain_and_shifted_arrows_move_by_five_and_one() {
        let ctx = KeyContext::default();
        assert_eq!(
            action_for(&press(KeyCode::Right, KeyModifiers::NONE), ctx),
            Some(Action::WeightUp(5))
        );
        assert_eq!(
            action_for(&press(KeyCode::Right, KeyModifiers::SHIFT), ctx),
            Some(Action::WeightUp(1))
        );
        assert_eq!(
            action_for(&press(KeyCode::Left, KeyModifiers::SHIFT), ctx),
            Some(Action::WeightDown(1))
        );
    }

    #[test]
    fn capital_r_is_rollback_and_lowercase_r_is_nothing() {
        let ctx = KeyContext::default();
        assert_eq!(
            action_for(&press(KeyCode::Char('R'), KeyModifiers::SHIFT), ctx),
            Some(Action::Rollback)
        );
        assert_eq!(
            action_for(&press(KeyCode::Char('r'), KeyModifiers::NONE), ctx),
            None
        );
    }

    #[test]
    fn ctrl_c_quits_but_plain_c_does_not() {
        let ctx = KeyContext::default();
        assert_eq!(
            action_for(&press(KeyCode::Char('c'), KeyModifiers::CONTROL), ctx),
            Some(Action::Quit)
        );
        assert_eq!(
            action_for(&press(KeyCode::Char('c'), KeyModifiers::NONE), ctx),
            None
        );
    }

    #[test]
    fn shift_tab_arrives_as_backtab() {
        let ctx = KeyContext::default();
        assert_eq!(
            action_for(&press(KeyCode::BackTab, KeyModifiers::SHIFT), ctx),
            Some(Action::FocusPrevious)
        );
    }

    #[test]
    fn the_dialog_takes_its_own_keys_and_lets_rollback_through() {
        let ctx = KeyContext {
            dialog_open: true,
            logs_focused: false,
        };
        assert_eq!(
            action_for(&press(KeyCode::Esc, KeyModifiers::NONE), ctx),
            Some(Action::Stay)
        );
        assert_eq!(
            action_for(&press(KeyCode::Enter, KeyModifiers::NONE), ctx),
            Some(Action::DialogConfirm)
        );
        assert_eq!(
            action_for(&press(KeyCode::Char('R'), KeyModifiers::SHIFT), ctx),
            Some(Action::Rollback)
        );
        assert_eq!(
            action_for(&press(KeyCode::Char('a'), KeyModifiers::NONE), ctx),
            None
        );
    }

    #[test]
    fn log_keys_only_apply_when_the_log_pane_is_focused() {
        let plus = press(KeyCode::Char('+'), KeyModifiers::NONE);
        assert_eq!(action_for(&plus, KeyContext::default()), None);
        let ctx = KeyContext {
            dialog_open: false,
            logs_focused: true,
        };
        assert_eq!(action_for(&plus, ctx), Some(Action::LogLevelMore));
        // Dashboard keys still work there.
        assert_eq!(
            action_for(&press(KeyCode::Char('a'), KeyModifiers::NONE), ctx),
            Some(Action::Approve)
        );
    }

    #[test]
    fn release_events_are_ignored() {
        let mut event = press(KeyCode::Char('a'), KeyModifiers::NONE);
        event.kind = KeyEventKind::Release;
        assert_eq!(action_for(&event, KeyContext::default()), None);
    }

    #[test]
    fn no_key_is_bound_twice_in_one_scope() {
        for scope in [Scope::Dashboard, Scope::LogPane, Scope::QuitDialog] {
            let keys: Vec<Key> = bindings(scope)
                .flat_map(|b| b.keys.iter().copied())
                .collect();
            for (i, key) in keys.iter().enumerate() {
                assert!(
                    !keys[i + 1..].contains(key),
                    "{} bound twice in {scope:?}",
                    key.label()
                );
            }
        }
    }

    #[test]
    fn every_binding_resolves_to_its_own_action() {
        for binding in KEYMAP {
            let ctx = KeyContext {
                dialog_open: binding.scope == Scope::QuitDialog,
                logs_focused: binding.scope == Scope::LogPane,
            };
            for key in binding.keys {
                let mut modifiers = KeyModifiers::NONE;
                if key.ctrl {
                    modifiers |= KeyModifiers::CONTROL;
                }
                if key.shift {
                    modifiers |= KeyModifiers::SHIFT;
                }
                let event = press(key.code, modifiers);
                assert_eq!(
                    action_for(&event, ctx),
                    Some(binding.action),
                    "key {} in {:?}",
                    key.label(),
                    binding.scope
                );
            }
        }
    }
}
