//! Live output of running checks for the checklist's output tail.
//!
//! The engine fills a check's `output_tail` when the check ends; while it runs,
//! its lines only travel as tracing events (target `cutover::output`, message
//! `check │ line`). This layer keeps the last lines per check name.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Target of the engine's check output events.
pub const OUTPUT_TARGET: &str = "cutover::output";
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

/// Feeds [`LiveOutput`] from the engine's check output events.
pub struct LiveOutputLayer {
    pub store: Arc<LiveOutput>,
}

impl<S: Subscriber> Layer<S> for LiveOutputLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != OUTPUT_TARGET {
            return;
        }
        let mut message = crate::logging::Message::default();
        event.record(&mut message);
        if let Some((check, text)) = crate::check::shell::split_output_message(&message.0) {
            self.store.push(check, text);
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
            let line = |l: &str| crate::check::shell::output_message(check, l);
            tracing::info!(target: "cutover::output", "{}", line("applying 0041"));
            tracing::info!(target: "cutover::output", "{}", line("applying 0042"));
            tracing::info!(target: "cutover", "{}", line("not output"));
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
