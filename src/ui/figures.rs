//! The canary's and stable's error rate and p99 beside their limits, as
//! numbers: the rows of the traffic pane, and the limits the charts draw.
//!
//! A limit here is the one the canary is judged against at a sample: the
//! lower of the absolute limit (`max_error_rate`, `max_p99_ms`) and the
//! relative one (stable's figure plus `max_error_rate_increase`, or times
//! `max_p99_ratio`), the relative one only when stable had `min_requests`.

use ratatui::text::{Line, Span};

use crate::domain::TrackSample;
use crate::engine::snapshot::{AnalysisPoint, Thresholds};

use super::app::App;
use super::text;

/// The two figures the analysis judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// 5xx fraction, in [0, 1].
    ErrorRate,
    /// p99 latency, in milliseconds.
    P99,
}

impl Metric {
    pub fn value(self, track: &TrackSample) -> Option<f64> {
        match self {
            Metric::ErrorRate => track.error_rate,
            Metric::P99 => track.p99_ms,
        }
        .filter(|v| v.is_finite())
    }

    /// A figure as the rows write it: `0.42%`, `4.2%`, `84ms`, `1.2s`.
    pub fn format(self, value: f64) -> String {
        match self {
            Metric::ErrorRate => text::percent(value),
            Metric::P99 => text::millis(value),
        }
    }

    /// A figure as an axis label: `0.5%`, `50%`, `20ms`, `1s`.
    pub fn axis(self, value: f64) -> String {
        match self {
            Metric::ErrorRate => text::axis_percent(value * 100.0),
            Metric::P99 => text::axis_millis(value),
        }
    }

    fn absolute(self, th: &Thresholds) -> Option<f64> {
        match self {
            Metric::ErrorRate => th.max_error_rate,
            Metric::P99 => th.max_p99_ms,
        }
    }

    /// Whether a limit relative to stable is configured.
    pub fn has_relative(self, th: &Thresholds) -> bool {
        match self {
            Metric::ErrorRate => th.max_error_rate_increase.is_some(),
            Metric::P99 => th.max_p99_ratio.is_some(),
        }
    }
}

/// The limit in force at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub value: f64,
    /// The relative limit is the lower one (it binds).
    pub relative: bool,
}

/// The limit the canary is judged against, given stable's figures at that
/// sample (`None`: no sample, only the absolute limit applies).
pub fn limit(metric: Metric, th: &Thresholds, stable: Option<&TrackSample>) -> Option<Limit> {
    let absolute = metric.absolute(th);
    let relative = stable
        .filter(|s| s.requests >= th.min_requests)
        .and_then(|s| {
            let base = metric.value(s)?;
            match metric {
                Metric::ErrorRate => th.max_error_rate_increase.map(|inc| base + inc),
                Metric::P99 => th
                    .max_p99_ratio
                    .filter(|_| base > 0.0)
                    .map(|ratio| base * ratio),
            }
        });
    match (absolute, relative) {
        (Some(a), Some(r)) if r < a => Some(Limit {
            value: r,
            relative: true,
        }),
        (Some(a), _) => Some(Limit {
            value: a,
            relative: false,
        }),
        (None, Some(r)) => Some(Limit {
            value: r,
            relative: true,
        }),
        (None, None) => None,
    }
}

/// The relative rule in words: `stable +0.5 pt`, `3× stable`.
pub fn relative_rule(metric: Metric, th: &Thresholds) -> Option<String> {
    match metric {
        Metric::ErrorRate => th
            .max_error_rate_increase
            .map(|inc| format!("stable +{} pt", trim(inc * 100.0))),
        Metric::P99 => th.max_p99_ratio.map(|r| format!("{}× stable", trim(r))),
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One metric's figures at the latest sample, written for the rows.
struct Figures {
    label_long: &'static str,
    label_short: &'static str,
    canary: String,
    stable: String,
    over: bool,
    limit: String,
    rule: Option<String>,
}

fn figures(metric: Metric, th: &Thresholds, point: Option<&AnalysisPoint>) -> Figures {
    let canary = point.and_then(|p| metric.value(&p.pair.canary));
    let stable = point.and_then(|p| metric.value(&p.pair.stable));
    let limit = limit(metric, th, point.map(|p| &p.pair.stable));
    let dash = || "—".to_string();
    let rule = match limit {
        Some(l) if l.relative => relative_rule(metric, th),
        _ => None,
    };
    let (label_long, label_short) = match metric {
        Metric::ErrorRate => ("error rate", "err"),
        Metric::P99 => ("p99", "p99"),
    };
    Figures {
        label_long,
        label_short,
        canary: canary.map_or_else(dash, |v| metric.format(v)),
        stable: stable.map_or_else(dash, |v| metric.format(v)),
        over: matches!((canary, limit), (Some(v), Some(l)) if v > l.value),
        limit: limit.map_or_else(|| "none".to_string(), |l| metric.format(l.value)),
        rule,
    }
}

/// The rows under the traffic bar: error rate and p99 of canary and stable
/// at the latest sample with the limit in force, `✗` where the canary is
/// over it; as wide as `width` allows, in columns that line up. With
/// `requests`, a third row gives both tracks' request counts.
pub fn rows(app: &App, width: usize, requests: bool) -> Vec<Line<'static>> {
    let s = app.snapshot();
    let theme = app.theme();
    let point = s.samples.last();
    let all = [
        figures(Metric::ErrorRate, &s.thresholds, point),
        figures(Metric::P99, &s.thresholds, point),
    ];
    let canary_w = all
        .iter()
        .map(|f| f.canary.chars().count())
        .max()
        .unwrap_or(0);
    let stable_w = all
        .iter()
        .map(|f| f.stable.chars().count())
        .max()
        .unwrap_or(0);
    // Widest first; the first layout whose rows all fit is taken.
    let layouts: [Layout; 4] = [wide, wide_bare, medium, compact];
    let chosen = layouts
        .iter()
        .map(|layout| {
            all.iter()
                .map(|f| layout(f, canary_w, stable_w))
                .collect::<Vec<_>>()
        })
        .find(|rows| rows.iter().all(|r| width_of(r) <= width))
        .unwrap_or_else(|| all.iter().map(|f| compact(f, canary_w, stable_w)).collect());
    let mut lines: Vec<Line<'static>> = chosen
        .into_iter()
        .map(|parts| {
            Line::from(
                parts
                    .into_iter()
                    .map(|(text, part)| {
                        let style = match part {
                            Part::Label => theme.muted,
                            Part::Canary => theme.canary,
                            Part::Over => theme.failed,
                            Part::Stable => theme.stable,
                            Part::Limit => theme.threshold,
                        };
                        Span::styled(text, style)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    if requests {
        let count = |f: fn(&AnalysisPoint) -> u64| {
            point.map_or_else(|| "—".to_string(), |p| f(p).to_string())
        };
        let line = format!(
            " requests  canary {}  stable {}  min {}",
            count(|p| p.pair.canary.requests),
            count(|p| p.pair.stable.requests),
            s.thresholds.min_requests
        );
        lines.push(Line::styled(text::fit(&line, width), theme.muted));
    }
    lines
}

/// A row's pieces for one metric, given the canary's and stable's column widths.
type Layout = fn(&Figures, usize, usize) -> Vec<(String, Part)>;

/// What a piece of a row shows, for its style.
#[derive(Debug, Clone, Copy)]
enum Part {
    Label,
    Canary,
    Over,
    Stable,
    Limit,
}

fn width_of(parts: &[(String, Part)]) -> usize {
    parts.iter().map(|(t, _)| t.chars().count()).sum()
}

fn pad(text: &str, width: usize) -> String {
    format!("{text:<width$}")
}

fn mark(f: &Figures) -> (String, Part) {
    if f.over {
        ("✗".to_string(), Part::Over)
    } else {
        (" ".to_string(), Part::Label)
    }
}

/// ` error rate  canary 4.2% ✗  stable 0.20%  limit 0.70% (stable +0.5 pt)`
fn wide(f: &Figures, canary_w: usize, stable_w: usize) -> Vec<(String, Part)> {
    let mut limit = f.limit.clone();
    if let Some(rule) = &f.rule {
        limit.push_str(&format!(" ({rule})"));
    }
    vec![
        (format!(" {:<10}  canary ", f.label_long), Part::Label),
        (pad(&f.canary, canary_w), Part::Canary),
        (" ".to_string(), Part::Label),
        mark(f),
        ("  stable ".to_string(), Part::Label),
        (pad(&f.stable, stable_w), Part::Stable),
        ("  limit ".to_string(), Part::Label),
        (limit, Part::Limit),
    ]
}

/// [`wide`] without the relative rule.
fn wide_bare(f: &Figures, canary_w: usize, stable_w: usize) -> Vec<(String, Part)> {
    let mut parts = wide(f, canary_w, stable_w);
    if let Some(last) = parts.last_mut() {
        last.0.clone_from(&f.limit);
    }
    parts
}

/// ` err canary 4.2%✗ stable 0.20% limit 0.70%`: 46 columns at most, the
/// traffic pane's room at 80×24.
fn medium(f: &Figures, canary_w: usize, stable_w: usize) -> Vec<(String, Part)> {
    vec![
        (format!(" {:<3} canary ", f.label_short), Part::Label),
        (pad(&f.canary, canary_w), Part::Canary),
        mark(f),
        (" stable ".to_string(), Part::Label),
        (pad(&f.stable, stable_w), Part::Stable),
        (" limit ".to_string(), Part::Label),
        (f.limit.clone(), Part::Limit),
    ]
}

/// ` err c 4.2%✗ s 0.20% ≤0.70%`
fn compact(f: &Figures, canary_w: usize, stable_w: usize) -> Vec<(String, Part)> {
    vec![
        (format!(" {:<3} c ", f.label_short), Part::Label),
        (pad(&f.canary, canary_w), Part::Canary),
        mark(f),
        (" s ".to_string(), Part::Label),
        (pad(&f.stable, stable_w), Part::Stable),
        (" ≤".to_string(), Part::Label),
        (f.limit.clone(), Part::Limit),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds() -> Thresholds {
        Thresholds {
            sequential: false,
            max_error_rate: Some(0.01),
            max_p99_ms: Some(500.0),
            max_error_rate_increase: Some(0.005),
            max_p99_ratio: Some(3.0),
            min_requests: 10,
        }
    }

    fn stable(requests: u64, error_rate: f64, p99: f64) -> TrackSample {
        TrackSample {
            requests,
            errors: 0,
            error_rate: Some(error_rate),
            p50_ms: None,
            p95_ms: None,
            p99_ms: Some(p99),
            totals: None,
        }
    }

    #[test]
    fn the_lower_limit_binds() {
        let th = thresholds();
        let s = stable(100, 0.002, 7.0);
        let err = limit(Metric::ErrorRate, &th, Some(&s)).unwrap();
        assert!((err.value - 0.007).abs() < 1e-12 && err.relative);
        let p99 = limit(Metric::P99, &th, Some(&s)).unwrap();
        assert!((p99.value - 21.0).abs() < 1e-12 && p99.relative);
        // Stable slow: the absolute limit is lower.
        let slow = stable(100, 0.0, 400.0);
        assert_eq!(
            limit(Metric::P99, &th, Some(&slow)),
            Some(Limit {
                value: 500.0,
                relative: false
            })
        );
    }

    #[test]
    fn relative_limits_need_enough_stable_requests() {
        let th = thresholds();
        let few = stable(3, 0.0, 7.0);
        assert_eq!(
            limit(Metric::P99, &th, Some(&few)).map(|l| l.value),
            Some(500.0)
        );
        assert_eq!(limit(Metric::P99, &th, None).map(|l| l.value), Some(500.0));
        let only_relative = Thresholds {
            max_p99_ms: None,
            ..thresholds()
        };
        assert_eq!(limit(Metric::P99, &only_relative, Some(&few)), None);
    }

    #[test]
    fn rules_read_short() {
        let th = thresholds();
        assert_eq!(
            relative_rule(Metric::ErrorRate, &th).as_deref(),
            Some("stable +0.5 pt")
        );
        assert_eq!(
            relative_rule(Metric::P99, &th).as_deref(),
            Some("3× stable")
        );
    }
}
