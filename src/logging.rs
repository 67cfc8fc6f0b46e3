//! Plain log lines on stderr for runs without the dashboard: check output as
//! `  | check │ line`, warnings and errors as such, nothing else by default.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Prints check output and warnings to stderr.
pub struct PlainLayer {
    /// Show check output lines (off for JSON runs, where stdout is for machines).
    pub output: bool,
}

/// The `message` field of a tracing event, as text.
#[derive(Default)]
pub struct Message(pub String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for PlainLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let is_output = meta.target() == crate::check::shell::OUTPUT_TARGET;
        if is_output && !self.output {
            return;
        }
        if !is_output && *meta.level() > Level::WARN {
            return;
        }
        let mut m = Message::default();
        event.record(&mut m);
        let line = if is_output {
            format!("  | {}\n", m.0)
        } else if *meta.level() == Level::ERROR {
            format!("error: {}\n", m.0)
        } else {
            format!("warning: {}\n", m.0)
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Installs the plain layer as the global subscriber (once).
pub fn init_plain(output: bool) {
    use tracing_subscriber::prelude::*;
    let _ = tracing_subscriber::registry()
        .with(PlainLayer { output })
        .try_init();
}
