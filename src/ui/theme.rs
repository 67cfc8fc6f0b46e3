//! The dashboard's named styles, with a colour variant and a `NO_COLOR` variant.
//!
//! Every render file takes its styles from here, so colour never leaks past this
//! struct and the no-colour variant stays readable (glyphs and modifiers carry
//! the meaning there).

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;

/// Named styles for every region of the screen.
#[derive(Debug, Clone)]
pub struct Theme {
    pub base: Style,
    pub title: Style,
    pub muted: Style,
    pub border: Style,
    pub border_focused: Style,
    pub selected: Style,
    pub key: Style,
    pub key_urgent: Style,
    pub hint: Style,
    pub notice: Style,
    pub passed: Style,
    pub failed: Style,
    pub warned: Style,
    pub running: Style,
    pub waiting: Style,
    pub pending: Style,
    pub skipped: Style,
    pub canary: Style,
    pub stable: Style,
    pub threshold: Style,
    pub pending_weight: Style,
    pub banner_good: Style,
    pub banner_bad: Style,
    pub banner_alert: Style,
    pub dialog: Style,
    pub log_error: Style,
    pub log_warn: Style,
    pub log_info: Style,
    pub log_debug: Style,
    pub log_trace: Style,
    /// Marker of the stable track's series; differs from the canary's without colour.
    pub stable_marker: Marker,
    pub canary_marker: Marker,
}

impl Theme {
    /// The colour theme, or the no-colour one when `NO_COLOR` is set and not empty
    /// (<https://no-color.org>).
    pub fn from_env() -> Theme {
        match std::env::var_os("NO_COLOR") {
            Some(value) if !value.is_empty() => Theme::no_color(),
            _ => Theme::color(),
        }
    }

    pub fn color() -> Theme {
        let bold = Modifier::BOLD;
        Theme {
            base: Style::new(),
            title: Style::new().add_modifier(bold),
            muted: Style::new().fg(Color::DarkGray),
            border: Style::new().fg(Color::DarkGray),
            border_focused: Style::new().fg(Color::Cyan),
            selected: Style::new().bg(Color::DarkGray).add_modifier(bold),
            key: Style::new().fg(Color::Cyan).add_modifier(bold),
            key_urgent: Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(bold),
            hint: Style::new().fg(Color::Gray),
            notice: Style::new().fg(Color::Yellow).add_modifier(bold),
            passed: Style::new().fg(Color::Green),
            failed: Style::new().fg(Color::Red).add_modifier(bold),
            warned: Style::new().fg(Color::Yellow),
            running: Style::new().fg(Color::Cyan),
            waiting: Style::new().fg(Color::Yellow).add_modifier(bold),
            pending: Style::new().fg(Color::DarkGray),
            skipped: Style::new().fg(Color::DarkGray),
            canary: Style::new().fg(Color::Magenta),
            stable: Style::new().fg(Color::Blue),
            threshold: Style::new().fg(Color::Red),
            pending_weight: Style::new().fg(Color::Yellow).add_modifier(bold),
            banner_good: Style::new()
                .fg(Color::Black)
                .bg(Color::Green)
                .add_modifier(bold),
            banner_bad: Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(bold),
            banner_alert: Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(bold),
            dialog: Style::new().fg(Color::White).bg(Color::Black),
            log_error: Style::new().fg(Color::Red),
            log_warn: Style::new().fg(Color::Yellow),
            log_info: Style::new(),
            log_debug: Style::new().fg(Color::DarkGray),
            log_trace: Style::new().fg(Color::DarkGray),
            stable_marker: Marker::Braille,
            canary_marker: Marker::Braille,
        }
    }

    /// No colour at all: bold, reverse and dim only.
    pub fn no_color() -> Theme {
        let plain = Style::new();
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let reversed = Style::new().add_modifier(Modifier::REVERSED);
        let dim = Style::new().add_modifier(Modifier::DIM);
        Theme {
            base: plain,
            title: bold,
            muted: dim,
            border: plain,
            border_focused: bold,
            selected: reversed,
            key: bold,
            key_urgent: reversed.add_modifier(Modifier::BOLD),
            hint: plain,
            notice: bold,
            passed: plain,
            failed: bold,
            warned: bold,
            running: plain,
            waiting: bold,
            pending: dim,
            skipped: dim,
            canary: bold,
            stable: plain,
            threshold: plain,
            pending_weight: bold,
            banner_good: reversed,
            banner_bad: reversed.add_modifier(Modifier::BOLD),
            banner_alert: reversed,
            dialog: plain,
            log_error: bold,
            log_warn: bold,
            log_info: plain,
            log_debug: dim,
            log_trace: dim,
            stable_marker: Marker::Dot,
            canary_marker: Marker::Braille,
        }
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::color()
    }
}
