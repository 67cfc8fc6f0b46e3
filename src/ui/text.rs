//! How durations, rates, latencies and statuses are written on screen.

use std::time::Duration;

use crate::engine::snapshot::{CheckStatus, StageStatus};

use crate::domain::Outcome;

/// `4.2s`, `12s`, `3m05s`, `1h02m`: short, for the checklist.
pub fn short_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs < 10 {
        format!("{:.1}s", duration.as_secs_f64())
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// `03:12` or `1:03:12`: a running clock for the header.
pub fn clock(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, (secs % 3600) / 60, secs % 60)
    } else {
        format!("{:02}:{:02}", secs / 60, secs % 60)
    }
}

/// An error fraction as a percentage: `0.42%`, `4.2%`, `12%`.
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p == 0.0 {
        "0%".to_string()
    } else if p < 1.0 {
        format!("{p:.2}%")
    } else if p < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// A latency: `7.3ms`, `84.4ms`, `640ms`, `1.2s` (a tenth under 100 ms, so
/// a figure just over a limit never reads the same as the limit).
pub fn millis(ms: f64) -> String {
    if ms < 100.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

/// Braille spinner frames, advanced by the clock so rendering stays deterministic.
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// The spinner frame for this instant (one frame per 250 ms).
pub fn spinner(millis_since_start: i64) -> &'static str {
    let frame = millis_since_start
        .div_euclid(250)
        .rem_euclid(SPINNER.len() as i64);
    SPINNER[usize::try_from(frame).unwrap_or(0)]
}

/// The glyph of a finished or waiting check; `None` while running (a spinner is drawn).
pub fn check_glyph(status: CheckStatus) -> Option<&'static str> {
    match status {
        CheckStatus::Pending => Some("·"),
        CheckStatus::Running => None,
        CheckStatus::WaitingApproval => Some("?"),
        CheckStatus::Passed => Some("✓"),
        CheckStatus::Failed => Some("✗"),
        CheckStatus::Warned => Some("!"),
        CheckStatus::Skipped => Some("-"),
    }
}

pub fn stage_glyph(status: StageStatus) -> Option<&'static str> {
    match status {
        StageStatus::Pending => Some("·"),
        StageStatus::Running => None,
        StageStatus::Passed => Some("✓"),
        StageStatus::Warned => Some("!"),
        StageStatus::Failed => Some("✗"),
        StageStatus::Skipped => Some("-"),
        StageStatus::NotConfigured => Some("-"),
    }
}

/// The outcome as the banner says it.
pub fn outcome_title(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "SUCCEEDED",
        Outcome::Failed => "FAILED",
        Outcome::RolledBack => "ROLLED BACK",
        Outcome::RollbackFailed => "ROLLBACK FAILED: act now",
        Outcome::Interrupted => "INTERRUPTED (traffic held, resumable)",
    }
}

/// `text` broken at spaces into lines of at most `width` columns (a word
/// longer than that is cut); continuation lines start with `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    if width == 0 {
        return Vec::new();
    }
    let options = textwrap::Options::new(width)
        .subsequent_indent(indent)
        .break_words(true);
    textwrap::wrap(text, options)
        .into_iter()
        .map(std::borrow::Cow::into_owned)
        .collect()
}

/// An axis label for a percentage (`0.5%`, `2%`, `50%`): no trailing zeros.
pub fn axis_percent(percent: f64) -> String {
    let text = format!("{percent:.2}");
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// An axis label for a latency (`5ms`, `200ms`, `1s`, `2.5s`).
pub fn axis_millis(ms: f64) -> String {
    if ms >= 1000.0 {
        let secs = format!("{:.1}", ms / 1000.0);
        format!("{}s", secs.trim_end_matches('0').trim_end_matches('.'))
    } else if ms >= 1.0 {
        format!("{ms:.0}ms")
    } else {
        let text = format!("{ms:.2}");
        format!("{}ms", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// Cuts `text` to `width` columns, marking the cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(short_duration(Duration::from_millis(4_150)), "4.2s");
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(short_duration(Duration::from_secs(3_720)), "1h02m");
        assert_eq!(clock(Duration::from_secs(192)), "03:12");
        assert_eq!(clock(Duration::from_secs(3_792)), "1:03:12");
    }

    #[test]
    fn rates_and_latencies_read_short() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.0042), "0.42%");
        assert_eq!(percent(0.042), "4.2%");
        assert_eq!(percent(0.12), "12%");
        assert_eq!(millis(84.44), "84.4ms");
        assert_eq!(millis(640.2), "640ms");
        assert_eq!(millis(1_250.0), "1.2s");
    }

    #[test]
    fn wrapping_breaks_at_spaces_with_a_hanging_indent() {
        assert_eq!(
            wrap("analysis at 25%: pass canary 112 req", 16, "  "),
            vec!["analysis at 25%:", "  pass canary", "  112 req"]
        );
        assert_eq!(wrap("abcdefghij", 4, ""), vec!["abcd", "efgh", "ij"]);
        assert!(wrap("anything", 0, "").is_empty());
    }

    #[test]
    fn axis_labels_drop_trailing_zeros() {
        assert_eq!(axis_percent(0.5), "0.5%");
        assert_eq!(axis_percent(2.0), "2%");
        assert_eq!(axis_percent(50.0), "50%");
        assert_eq!(axis_percent(0.1), "0.1%");
        assert_eq!(axis_millis(5.0), "5ms");
        assert_eq!(axis_millis(1000.0), "1s");
        assert_eq!(axis_millis(2500.0), "2.5s");
        assert_eq!(axis_millis(0.5), "0.5ms");
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("migrations", 20), "migrations");
        assert_eq!(fit("migrations", 5), "migr…");
        assert_eq!(fit("migrations", 0), "");
    }

    #[test]
    fn the_spinner_advances_every_quarter_second() {
        assert_eq!(spinner(0), spinner(249));
        assert_ne!(spinner(0), spinner(250));
        assert_eq!(spinner(0), spinner(2_500));
    }
}
