//! The error-rate and latency charts: canary against stable over the last
//! minutes, the threshold in force drawn as a line, Braille markers.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use crate::domain::TrackSample;
use crate::engine::snapshot::AnalysisPoint;

use super::app::App;
use super::screen::pane_block;
use super::text;

/// How far back the charts look.
const WINDOW_SECS: f64 = 300.0;

/// One chart's description: what to plot and how to write its values.
struct Series {
    title_long: &'static str,
    title_short: &'static str,
    value: fn(&TrackSample) -> Option<f64>,
    threshold: Option<f64>,
    /// The smallest top of the y axis, so a flat line at zero still reads.
    floor: f64,
    format: fn(f64) -> String,
}

pub fn render_error_rate(frame: &mut Frame, area: Rect, app: &App) {
    let series = Series {
        title_long: "error rate (5xx)",
        title_short: "errors",
        value: |t| t.error_rate.map(|r| r * 100.0),
        threshold: app.snapshot().thresholds.max_error_rate.map(|r| r * 100.0),
        floor: 1.0,
        format: |p| text::percent(p / 100.0),
    };
    render_series(frame, area, app, &series);
}

pub fn render_latency(frame: &mut Frame, area: Rect, app: &App) {
    let series = Series {
        title_long: "p99 latency",
        title_short: "p99",
        value: |t| t.p99_ms,
        threshold: app.snapshot().thresholds.max_p99_ms,
        floor: 100.0,
        format: text::millis,
    };
    render_series(frame, area, app, &series);
}

fn render_series(frame: &mut Frame, area: Rect, app: &App, series: &Series) {
    let s = app.snapshot();
    let theme = app.theme();
    // A finished deployment's charts stop at its end.
    let end = s.finished_at.unwrap_or_else(|| app.now());
    let now_t = (end - s.started_at).num_milliseconds() as f64 / 1000.0;
    let last_t = s.samples.last().map_or(0.0, |p| p.t);
    let x_max = now_t.max(last_t).max(60.0);
    let x_min = (x_max - WINDOW_SECS).max(0.0);
    let in_window: Vec<&AnalysisPoint> = s.samples.iter().filter(|p| p.t >= x_min).collect();
    let canary: Vec<(f64, f64)> = points(&in_window, |p| (series.value)(&p.pair.canary));
    let stable: Vec<(f64, f64)> = points(&in_window, |p| (series.value)(&p.pair.stable));

    let highest = canary
        .iter()
        .chain(&stable)
        .map(|(_, y)| *y)
        .chain(series.threshold)
        .fold(series.floor, f64::max);
    let y_max = nice_ceiling(highest * 1.2);

    let wide = area.width >= 48;
    let title = if wide {
        series.title_long
    } else {
        series.title_short
    };
    let latest = |values: &[(f64, f64)]| values.last().map(|(_, y)| (series.format)(*y));
    let legend = legend(
        usize::from(area.width.saturating_sub(2)),
        latest(&canary),
        latest(&stable),
        series.threshold.map(series.format),
        theme,
    );
    let block = pane_block(Line::from(format!(" {title} ")), false, theme).title_bottom(legend);

    let threshold_line: Vec<(f64, f64)> = series
        .threshold
        .map(|y| vec![(x_min, y), (x_max, y)])
        .unwrap_or_default();
    let mut datasets = Vec::with_capacity(3);
    if !threshold_line.is_empty() {
        datasets.push(
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(theme.threshold)
                .data(&threshold_line),
        );
    }
    datasets.push(
        Dataset::default()
            .marker(theme.stable_marker)
            .graph_type(GraphType::Line)
            .style(theme.stable)
            .data(&stable),
    );
    datasets.push(
        Dataset::default()
            .marker(theme.canary_marker)
            .graph_type(GraphType::Line)
            .style(theme.canary)
            .data(&canary),
    );

    let clock = |t: f64| text::clock(std::time::Duration::from_secs_f64(t.max(0.0)));
    let x_labels = if wide {
        vec![clock(x_min), clock((x_min + x_max) / 2.0), clock(x_max)]
    } else {
        vec![clock(x_min), clock(x_max)]
    };
    let y_labels = vec!["0".to_string(), (series.format)(y_max)];
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .bounds([x_min, x_max])
                .labels(x_labels)
                .style(theme.muted),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels(y_labels)
                .style(theme.muted),
        );
    frame.render_widget(chart, area);

    if canary.is_empty() && stable.is_empty() {
        let note = if s.traffic.is_some() {
            "no samples yet"
        } else {
            "from the traffic stage"
        };
        let middle = Rect::new(area.x + 1, area.y + area.height / 2, area.width - 2, 1);
        frame.render_widget(
            Paragraph::new(Span::styled(note, theme.muted)).centered(),
            middle,
        );
    }
}

fn points(
    samples: &[&AnalysisPoint],
    value: impl Fn(&AnalysisPoint) -> Option<f64>,
) -> Vec<(f64, f64)> {
    samples
        .iter()
        .filter_map(|p| value(p).map(|y| (p.t, y)))
        .collect()
}

/// The legend as the chart's bottom title, as long as the width allows.
fn legend(
    width: usize,
    canary: Option<String>,
    stable: Option<String>,
    limit: Option<String>,
    theme: &crate::ui::theme::Theme,
) -> Line<'static> {
    let entry = |mark: &str, name: &str, value: &Option<String>, style: Style, with_value: bool| {
        let text = match (with_value, value) {
            (true, Some(v)) => format!("{mark}{name} {v}"),
            _ => format!("{mark}{name}"),
        };
        Span::styled(text, style)
    };
    let build = |with_value: bool, short: bool| {
        let names = if short {
            ["c", "s", "max"]
        } else {
            ["canary", "stable", "limit"]
        };
        let mut spans = vec![
            entry("━", names[0], &canary, theme.canary, with_value),
            Span::raw(" "),
            entry("━", names[1], &stable, theme.stable, with_value),
        ];
        if limit.is_some() {
            spans.push(Span::raw(" "));
            spans.push(entry("┄", names[2], &limit, theme.threshold, with_value));
        }
        Line::from(spans)
    };
    [build(true, false), build(false, false), build(false, true)]
        .into_iter()
        .find(|line| line.width() <= width)
        .unwrap_or_else(|| build(false, true))
}

/// Rounds up to 1, 2 or 5 times a power of ten, so axis labels read cleanly.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    let scaled = value / magnitude;
    let step = if scaled <= 1.0 {
        1.0
    } else if scaled <= 2.0 {
        2.0
    } else if scaled <= 5.0 {
        5.0
    } else {
        10.0
    };
    step * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_round_up_to_1_2_5() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(600.0), 1000.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn the_legend_drops_values_then_shortens_names_to_fit() {
        let theme = crate::ui::theme::Theme::no_color();
        let full = legend(
            60,
            Some("2.1%".into()),
            Some("0.4%".into()),
            Some("1%".into()),
            &theme,
        );
        assert!(full.to_string().contains("canary 2.1%"));
        let names = legend(
            22,
            Some("2.1%".into()),
            Some("0.4%".into()),
            Some("1%".into()),
            &theme,
        );
        assert_eq!(names.to_string(), "━canary ━stable ┄limit");
        let short = legend(10, None, None, Some("1%".into()), &theme);
        assert_eq!(short.to_string(), "━c ━s ┄max");
    }
}
