//! The log pane's lines: a bounded ring of (time, level, text), fed by a
//! tracing layer. The pane reads only this list, so lines from an engine in
//! another process can fill it the same way.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept; older ones fall off.
pub const LINES_KEPT: usize = 2_000;
/// Characters kept of one line, so a flood never costs a frame its time.
pub const LINE_CHARS: usize = 4_000;

/// A line's severity, most severe first (`Ord` follows: `Error < Trace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// From the least detail to the most, as `+` steps through them.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// One letter for the pane's gutter.
    pub fn letter(self) -> char {
        match self {
            LogLevel::Error => 'E',
            LogLevel::Warn => 'W',
            LogLevel::Info => 'I',
            LogLevel::Debug => 'D',
            LogLevel::Trace => 'T',
        }
    }

    fn from_tracing(level: tracing::Level) -> LogLevel {
        match level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Position in the log, from 1, never reused: a scrolled view holds on to it.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    pub text: String,
}

/// What the pane shows: the lines ending at the anchor, and how many newer
/// ones the anchor hides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogView {
    /// Oldest first, at most the number asked for.
    pub lines: Vec<LogLine>,
    /// Lines at the level newer than the last one shown (0 when following).
    pub newer: usize,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    last_seq: u64,
}

/// The log lines, shared between the tracing layer and the dashboard.
#[derive(Debug, Default)]
pub struct LogRing {
    ring: Mutex<Ring>,
}

impl LogRing {
    /// Appends a line (the oldest falls off past [`LINES_KEPT`]); returns its
    /// `seq`. Control characters are written out (`\u{1b}`), never sent to
    /// the terminal; a line past [`LINE_CHARS`] is cut.
    pub fn push(&self, at: DateTime<Utc>, level: LogLevel, text: impl AsRef<str>) -> u64 {
        let text = printable(text.as_ref());
        let Ok(mut ring) = self.ring.lock() else {
            return 0;
        };
        ring.last_seq += 1;
        let seq = ring.last_seq;
        if ring.lines.len() == LINES_KEPT {
            ring.lines.pop_front();
        }
        ring.lines.push_back(LogLine {
            seq,
            at,
            level,
            text,
        });
        seq
    }

    /// Up to `count` lines at `level` or more severe, ending at `anchor`
    /// (inclusive) or at the newest line when `anchor` is `None`.
    pub fn view(&self, level: LogLevel, anchor: Option<u64>, count: usize) -> LogView {
        let Ok(ring) = self.ring.lock() else {
            return LogView::default();
        };
        let visible = |l: &&LogLine| l.level <= level;
        let end = anchor.unwrap_or(u64::MAX);
        let newer = ring
            .lines
            .iter()
            .rev()
            .take_while(|l| l.seq > end)
            .filter(visible)
            .count();
        let mut lines: Vec<LogLine> = ring
            .lines
            .iter()
            .rev()
            .filter(|l| l.seq <= end)
            .filter(visible)
            .take(count)
            .cloned()
            .collect();
        lines.reverse();
        LogView { lines, newer }
    }

    /// The anchor `entries` lines at `level` away from `anchor` (`None`: the
    /// newest), backwards when `back`. `None` when that passes the newest
    /// line: the view follows again.
    pub fn step(
        &self,
        level: LogLevel,
        anchor: Option<u64>,
        entries: usize,
        back: bool,
    ) -> Option<u64> {
        let Ok(ring) = self.ring.lock() else {
            return anchor;
        };
        let seqs: Vec<u64> = ring
            .lines
            .iter()
            .filter(|l| l.level <= level)
            .map(|l| l.seq)
            .collect();
        let last = seqs.len().checked_sub(1)?;
        let at = match anchor {
            None => last,
            // The newest line at or before the anchor (the anchor may have
            // fallen off the ring or be at another level).
            Some(a) => seqs.iter().rposition(|s| *s <= a).unwrap_or(0),
        };
        if back {
            Some(seqs[at.saturating_sub(entries)])
        } else if at + entries >= last {
            None
        } else {
            Some(seqs[at + entries])
        }
    }
}

/// `text` safe to draw: tabs as spaces, other control characters escaped,
/// at most [`LINE_CHARS`] characters.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(LINE_CHARS));
    for (i, c) in text.chars().enumerate() {
        if i == LINE_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// Feeds a [`LogRing`] from tracing events: the message, then any other
/// fields as `name=value`.
pub struct LogRingLayer {
    pub ring: Arc<LogRing>,
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl tracing::field::Visit for Text {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for LogRingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = Text::default();
        event.record(&mut text);
        if event.metadata().target() == crate::check::shell::OUTPUT_TARGET {
            // Check output carries its text in the message already.
            text.fields.clear();
        }
        text.message.push_str(&text.fields);
        self.ring.push(
            Utc::now(),
            LogLevel::from_tracing(*event.metadata().level()),
            text.message,
        );
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn ring_of(levels: &[LogLevel]) -> LogRing {
        let ring = LogRing::default();
        for (i, level) in levels.iter().enumerate() {
            ring.push(Utc::now(), *level, format!("line {}", i + 1));
        }
        ring
    }

    #[test]
    fn a_view_filters_by_level_and_counts_what_the_anchor_hides() {
        use LogLevel::*;
        let ring = ring_of(&[Info, Warn, Debug, Info, Error, Info]);
        let follow = ring.view(Info, None, 10);
        let seqs: Vec<u64> = follow.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, vec![1, 2, 4, 5, 6]);
        assert_eq!(follow.newer, 0);
        let scrolled = ring.view(Info, Some(2), 10);
        assert_eq!(scrolled.lines.len(), 2);
        assert_eq!(scrolled.newer, 3);
        assert_eq!(ring.view(Warn, None, 10).lines.len(), 2);
        assert_eq!(ring.view(Info, None, 2).lines[0].seq, 5);
    }

    #[test]
    fn stepping_back_anchors_and_stepping_past_the_newest_follows() {
        use LogLevel::*;
        let ring = ring_of(&[Info, Info, Debug, Info, Info]);
        let back = ring.step(Info, None, 2, true);
        assert_eq!(back, Some(2));
        assert_eq!(ring.step(Info, back, 10, true), Some(1));
        assert_eq!(ring.step(Info, Some(1), 1, false), Some(2));
        assert_eq!(ring.step(Info, Some(2), 5, false), None);
        assert_eq!(LogRing::default().step(Info, None, 1, true), None);
    }

    #[test]
    fn lines_are_made_safe_to_draw() {
        let ring = LogRing::default();
        ring.push(Utc::now(), LogLevel::Info, "a\x1b[2Jb\tc");
        ring.push(Utc::now(), LogLevel::Info, "x".repeat(LINE_CHARS * 2));
        let lines = ring.view(LogLevel::Info, None, 2).lines;
        assert_eq!(lines[0].text, "a\\u{1b}[2Jb c");
        assert_eq!(lines[1].text.chars().count(), LINE_CHARS + 1);
    }

    #[test]
    fn the_ring_keeps_the_newest_lines() {
        let ring = LogRing::default();
        for i in 0..LINES_KEPT + 10 {
            ring.push(Utc::now(), LogLevel::Info, format!("{i}"));
        }
        let view = ring.view(LogLevel::Trace, None, usize::MAX);
        assert_eq!(view.lines.len(), LINES_KEPT);
        assert_eq!(view.lines[0].seq, 11);
    }

    #[test]
    fn tracing_events_land_with_their_level_and_fields() {
        let ring = Arc::new(LogRing::default());
        let subscriber = tracing_subscriber::registry().with(LogRingLayer {
            ring: Arc::clone(&ring),
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "cutover", "analysis at 25%: fail");
            tracing::debug!(target: "cutover::ui", weight = 30, "operator command");
        });
        let lines = ring.view(LogLevel::Trace, None, 10).lines;
        assert_eq!(lines[0].level, LogLevel::Warn);
        assert_eq!(lines[0].text, "analysis at 25%: fail");
        assert_eq!(lines[1].text, "operator command weight=30");
    }
}
