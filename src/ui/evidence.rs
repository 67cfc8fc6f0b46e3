//! The sequential judge's rows of the traffic pane: per event kind a meter of
//! how close the evidence is to a pass (left, green) and to a rollback
//! (right, red), the canary/stable rate ratio with its interval, and about how
//! many more requests (and how long at the current traffic) to a decision.
//! At 80×24 all of it is one line; larger screens get a line per kind.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::engine::snapshot::{EvidenceView, KindView};
use crate::judge::{EventKind, PassBasis, Verdict};

use super::app::App;
use super::text;

/// A kind's name on screen.
fn name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Errors => "5xx",
        EventKind::Slow => "slow",
    }
}

/// A ratio in two significant figures: `0.41`, `1.3`, `12`.
pub fn ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}")
    } else if r >= 1.0 {
        format!("{r:.1}")
    } else if r > 0.0 {
        format!("{r:.2}")
    } else {
        "0".to_string()
    }
}

/// `low–high`, `low–∞`.
fn interval(k: &KindView) -> String {
    match k.ratio_high {
        Some(h) => format!("{}–{}", ratio(k.ratio_low), ratio(h)),
        None => format!("{}–∞", ratio(k.ratio_low)),
    }
}

/// A count of requests: `950`, `2.1k`, `1.2M`.
pub fn count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=99_999 => format!("{:.1}k", n as f64 / 1e3),
        100_000..=999_999 => format!("{:.0}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Requests left to a decision: toward a fail if some kind heads there (the
/// first to get there decides), else toward a pass (every kind must pass).
pub fn decide_in(view: &EvidenceView) -> Option<u64> {
    let undecided = || {
        view.kinds
            .iter()
            .filter(|k| k.verdict == Verdict::Inconclusive)
    };
    let failing = undecided()
        .filter(|k| k.ratio.is_some_and(|r| r > view.tolerance))
        .filter_map(|k| k.more_requests)
        .min();
    if failing.is_some() {
        return failing;
    }
    let mut most = None;
    for k in undecided() {
        most = Some(most.unwrap_or(0).max(k.more_requests?));
    }
    most
}

/// "≈2.1k req 40s" (or without the time when the rate is unknown).
fn more(view: &EvidenceView, short: bool) -> Option<String> {
    let n = decide_in(view)?;
    let time = view
        .requests_per_s
        .filter(|r| *r > 0.0)
        .map(|r| text::short_duration(std::time::Duration::from_secs_f64(n as f64 / r)));
    Some(match (short, time) {
        (true, Some(t)) => format!("≈{}/{t}", count(n)),
        (true, None) => format!("≈{}", count(n)),
        (false, Some(t)) => format!("≈ {} more requests, {t}", count(n)),
        (false, None) => format!("≈ {} more requests", count(n)),
    })
}

/// The meter: `half` cells toward a pass (growing leftwards), a bar, `half`
/// cells toward a rollback (growing rightwards).
fn meter(app: &App, k: &KindView, half: usize, ends: bool) -> Vec<Span<'static>> {
    let theme = app.theme();
    let cells = |f: f64| ((f * half as f64).round() as usize).min(half);
    let pass = cells(k.to_pass);
    let fail = cells(k.to_fail);
    let mut spans = Vec::new();
    if ends {
        spans.push(Span::styled("✓", theme.passed));
    }
    spans.push(Span::styled("▱".repeat(half - pass), theme.muted));
    spans.push(Span::styled("▰".repeat(pass), theme.passed));
    spans.push(Span::styled("┃", theme.muted));
    spans.push(Span::styled("▰".repeat(fail), theme.failed));
    spans.push(Span::styled("▱".repeat(half - fail), theme.muted));
    if ends {
        spans.push(Span::styled("✗", theme.failed));
    }
    spans
}

/// What a decided kind states; `None` while undecided.
fn stated(k: &KindView) -> Option<String> {
    match k.verdict {
        Verdict::Fail => Some(format!("ROLLBACK: canary ≥ {}× stable", ratio(k.ratio_low))),
        Verdict::Pass(PassBasis::Shown) => Some("pass: canary below stable".into()),
        Verdict::Pass(PassBasis::Bounded { ratio_high }) => {
            Some(format!("pass: canary ≤ {}× stable", ratio(ratio_high)))
        }
        Verdict::Pass(PassBasis::Rate { rate_high }) => {
            Some(format!("pass: canary rate ≤ {}", text::percent(rate_high)))
        }
        Verdict::Inconclusive => None,
    }
}

fn width_of(spans: &[Span]) -> usize {
    spans.iter().map(|s| s.content.chars().count()).sum()
}

/// Appends `text` when it still fits in `width`.
fn push_fitting(spans: &mut Vec<Span<'static>>, text: String, style: Style, width: usize) {
    if width_of(spans) + 1 + text.chars().count() <= width {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(text, style));
    }
}

/// The judge's rows: one line when `rows` is 1, else one per kind (plus one
/// naming a kind the source cannot count), at most `rows`.
pub fn lines(app: &App, width: usize, rows: usize) -> Vec<Line<'static>> {
    let theme = app.theme();
    let Some(view) = app.snapshot().evidence.as_ref() else {
        return vec![Line::styled(
            text::fit(" judge: waiting for the first counts", width),
            theme.muted,
        )];
    };
    if rows <= 1 {
        return vec![one_line(app, view, width)];
    }
    let mut out: Vec<Line<'static>> = view
        .kinds
        .iter()
        .take(rows)
        .map(|k| kind_line(app, view, k, width))
        .collect();
    for why in &view.unavailable {
        if out.len() < rows {
            out.push(Line::styled(
                text::fit(&format!(" {why}: not judged"), width),
                theme.muted,
            ));
        }
    }
    out
}

/// " 5xx  ✓▱▱▰▰┃▰▱▱▱✗ 1.3× (0.40–4.1) · ≈ 2.1k more requests, 40s".
fn kind_line(app: &App, view: &EvidenceView, k: &KindView, width: usize) -> Line<'static> {
    let theme = app.theme();
    let mut spans = vec![Span::styled(format!(" {:<4} ", name(k.kind)), theme.title)];
    spans.extend(meter(app, k, 4, true));
    match stated(k) {
        Some(s) => {
            let style = if k.verdict == Verdict::Fail {
                theme.failed
            } else {
                theme.passed
            };
            push_fitting(&mut spans, s, style, width);
        }
        None => {
            match k.ratio {
                Some(r) => push_fitting(
                    &mut spans,
                    format!("{}× ({})", ratio(r), interval(k)),
                    theme.base,
                    width,
                ),
                None => push_fitting(
                    &mut spans,
                    format!(
                        "no events in {} requests",
                        count(k.canary.requests + k.stable.requests)
                    ),
                    theme.muted,
                    width,
                ),
            }
            let wait = if app.snapshot().outcome.is_some() {
                None
            } else if k.more_requests == Some(0) && !view.baked {
                Some("pass after the bake".to_string())
            } else {
                k.more_requests.map(|n| {
                    let time = view.requests_per_s.filter(|r| *r > 0.0).map(|r| {
                        text::short_duration(std::time::Duration::from_secs_f64(n as f64 / r))
                    });
                    match time {
                        Some(t) => format!("≈ {} more requests, {t}", count(n)),
                        None => format!("≈ {} more requests", count(n)),
                    }
                })
            };
            if let Some(w) = wait {
                push_fitting(&mut spans, format!("· {w}"), theme.muted, width);
            }
        }
    }
    Line::from(spans)
}

/// All kinds in one line: " 5xx ▱▰┃▰▱ slow ▱▱┃▱▱ 1.3×(0.4–4.1) ≈2.1k/40s".
fn one_line(app: &App, view: &EvidenceView, width: usize) -> Line<'static> {
    let theme = app.theme();
    let mut spans = vec![Span::raw("")];
    for k in &view.kinds {
        spans.push(Span::styled(format!(" {}", name(k.kind)), theme.title));
        spans.push(Span::raw(" "));
        spans.extend(meter(app, k, 2, false));
    }
    // The kind nearest a rollback, else the first with a ratio, speaks.
    let lead = view
        .kinds
        .iter()
        .max_by(|a, b| a.to_fail.total_cmp(&b.to_fail))
        .filter(|k| k.to_fail > 0.0 || k.verdict == Verdict::Fail)
        .or_else(|| view.kinds.iter().find(|k| k.ratio.is_some()));
    if let Some(k) = view.kinds.iter().find(|k| k.verdict == Verdict::Fail) {
        push_fitting(
            &mut spans,
            format!("rollback: canary ≥{}×", ratio(k.ratio_low)),
            theme.failed,
            width,
        );
    } else if view
        .kinds
        .iter()
        .all(|k| matches!(k.verdict, Verdict::Pass(_)))
    {
        push_fitting(&mut spans, "pass".into(), theme.passed, width);
    } else {
        if let Some(k) = lead.filter(|k| k.ratio.is_some()) {
            let r = k.ratio.map(ratio).unwrap_or_default();
            push_fitting(
                &mut spans,
                format!("{r}×({})", interval(k)),
                theme.base,
                width,
            );
        }
        if let Some(m) = more(view, true) {
            push_fitting(&mut spans, m, theme.muted, width);
        }
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_short() {
        assert_eq!(ratio(0.0), "0");
        assert_eq!(ratio(0.412), "0.41");
        assert_eq!(ratio(1.34), "1.3");
        assert_eq!(ratio(12.4), "12");
        assert_eq!(count(950), "950");
        assert_eq!(count(2_140), "2.1k");
        assert_eq!(count(250_000), "250k");
        assert_eq!(count(1_200_000), "1.2M");
    }
}
