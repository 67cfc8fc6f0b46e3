//! Live output of running checks for the checklist's output tail.
//!
//! The engine fills a check's `output_tail` when the check ends; while it runs,
//! its lines only travel as tracing events (target `cutover::output`, fields
//! `check` and `line`). This layer keeps the last lines per check name.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::check::shell::OUTPUT_TARGET;
/// Lines kept per check; the pane never shows more.
const LINES_PER_CHECK: usize = 40;

/// The last output lines of each check, by check name.
#[derive(Debug, Default)]
pub struct LiveOutput {
    lines: Mutex<HashMap<String, VecDeque<String>>>,
}

impl LiveOutput {
    pub fn push(&self, check: &str, line: &str) {
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        let tail = lines.entry(check.to_string()).or_default();
        if tail.len() == LINES_PER_CHECK {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    }

    /// The last `count` lines of `check`, oldest first.
    pub fn tail(&self, check: &str, count: usize) -> Vec<String> {
        let Ok(lines) = self.lines.lock() else {
            return Vec::new();
        };
        lines.get(check).map_or_else(Vec::new, |tail| {
            let skip = tail.len().saturating_sub(count);
            tail.iter().skip(skip).cloned().collect()
        })
    }
}

/// The `check` and `line` fields of an output event.
#[derive(Default)]
struct OutputFields {
    check: Option<String>,
    line: Option<String>,
}

impl tracing::field::Visit for OutputFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "check" => self.check = Some(value.to_string()),
            "line" => self.line = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_debug(&mut self, _field: &tracing::field::Field, _value: &dyn std::fmt::Debug) {}
}

/// Feeds [`LiveOutput`] from the engine's check output events.
pub struct LiveOutputLayer {
    pub store: Arc<LiveOutput>,
}

impl<S: Subscriber> Layer<S> for LiveOutputLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != OUTPUT_TARGET {
            return;
        }
        let mut fields = OutputFields::default();
        event.record(&mut fields);
        if let (Some(check), Some(line)) = (fields.check, fields.line) {
            self.store.push(&check, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn output_events_land_under_their_check_and_others_do_not() {
        let store = Arc::new(LiveOutput::default());
        let subscriber = tracing_subscriber::registry().with(LiveOutputLayer {
            store: Arc::clone(&store),
        });
        tracing::subscriber::with_default(subscriber, || {
            let check = "Run database migrations";
            crate::check::shell::log_output(check, "applying 0041");
            crate::check::shell::log_output(check, "applying 0042");
            tracing::info!(target: "cutover", check = check, line = "not output");
        });
        assert_eq!(
            store.tail("Run database migrations", 5),
            vec!["applying 0041".to_string(), "applying 0042".to_string()]
        );
        assert_eq!(
            store.tail("Run database migrations", 1),
            vec!["applying 0042"]
        );
        assert!(store.tail("Other", 5).is_empty());
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let store = LiveOutput::default();
        for i in 0..100 {
            store.push("smoke", &format!("line {i}"));
        }
        let tail = store.tail("smoke", 100);
        assert_eq!(tail.len(), LINES_PER_CHECK);
        assert_eq!(tail.last().map(String::as_str), Some("line 99"));
    }
}
