//! The engine's log lines for attached dashboards: a tracing layer in the
//! engine process that sends each event as a [`LogLine`] to every client,
//! and the replay of such lines as local tracing events in the dashboard.

use std::fmt::Write as _;

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::protocol::LogLine;

/// Sends every event at debug level and above to `lines`.
pub struct BroadcastLayer {
    pub lines: broadcast::Sender<LogLine>,
}

#[derive(Default)]
struct Fields {
    message: String,
    check: Option<String>,
    line: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "check" => self.check = Some(value.to_string()),
            "line" => self.line = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S: Subscriber> Layer<S> for BroadcastLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > Level::DEBUG || self.lines.receiver_count() == 0 {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let _ = self.lines.send(LogLine {
            ts: chrono::Utc::now(),
            level: level_name(meta.level()).to_string(),
            target: meta.target().to_string(),
            text: crate::redact::text(&f.message),
            check: f.check,
            line: f.line.map(|l| crate::redact::text(&l)),
        });
    }
}

/// Emits an engine's log line as a local tracing event, so the attached
/// dashboard's log pane and live output show it as if it were local.
pub fn replay(line: &LogLine) {
    let output = line.target == crate::check::shell::OUTPUT_TARGET;
    if let (true, Some(check), Some(text)) = (output, &line.check, &line.line) {
        crate::check::shell::log_output(check, text);
        return;
    }
    let text = &line.text;
    match line.level.as_str() {
        "error" => tracing::error!(target: "cutover", "{text}"),
        "warn" => tracing::warn!(target: "cutover", "{text}"),
        "info" => tracing::info!(target: "cutover", "{text}"),
        _ => tracing::debug!(target: "cutover", "{text}"),
    }
}
