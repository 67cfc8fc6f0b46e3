//! The error-rate and p99 charts: canary against stable over the last
//! minutes, with the limit the canary is judged against.
//!
//! Each series has its own shape, so they read without colour: the canary a
//! Braille line, stable a row of `•`, the limit `┄` (a relative limit follows
//! stable). The y axis is scaled to the data and always includes the limit;
//! the x axis is seconds before now, from the samples' own timestamps, so a
//! resumed run lines up with the one before it.

use chrono::{DateTime, Utc};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::engine::snapshot::AnalysisPoint;

use super::app::App;
use super::figures::{self, Metric};
use super::plot::{choose_scale, Plot, Scale};
use super::screen::pane_block;

/// The longest look back, in seconds.
const WINDOW_MAX_SECS: i64 = 300;
/// The legend's glyphs, as the plot draws them.
const CANARY_GLYPH: &str = "⠒";
const STABLE_GLYPH: &str = "•";
const LIMIT_GLYPH: &str = "┄";

pub fn render_error_rate(frame: &mut Frame, area: Rect, app: &App) {
    render(frame, area, app, Metric::ErrorRate);
}

pub fn render_latency(frame: &mut Frame, area: Rect, app: &App) {
    render(frame, area, app, Metric::P99);
}

/// The series of one chart, as (seconds before the end, value).
struct Series {
    canary: Vec<(f64, f64)>,
    stable: Vec<(f64, f64)>,
    limit: Vec<(f64, f64)>,
    /// The limit does not follow stable: a straight line across.
    limit_flat: Option<f64>,
}

fn series(app: &App, metric: Metric, end: DateTime<Utc>, window: f64) -> Series {
    let s = app.snapshot();
    let x = |p: &AnalysisPoint| (p.at - end).num_milliseconds() as f64 / 1000.0;
    let shown: Vec<&AnalysisPoint> = s.samples.iter().filter(|p| x(p) >= -window).collect();
    let values = |track: fn(&AnalysisPoint) -> &crate::domain::TrackSample| {
        shown
            .iter()
            .filter_map(|p| metric.value(track(p)).map(|v| (x(p), v)))
            .collect::<Vec<_>>()
    };
    let th = &s.thresholds;
    // A relative limit follows stable from sample to sample; without one (or
    // before the first sample) the absolute limit is a straight line.
    let limit_flat = if metric.has_relative(th) && !shown.is_empty() {
        None
    } else {
        figures::limit(metric, th, None).map(|l| l.value)
    };
    let limit = if limit_flat.is_some() {
        Vec::new()
    } else {
        shown
            .iter()
            .filter_map(|p| {
                figures::limit(metric, th, Some(&p.pair.stable)).map(|l| (x(p), l.value))
            })
            .collect()
    };
    Series {
        canary: values(|p| &p.pair.canary),
        stable: values(|p| &p.pair.stable),
        limit,
        limit_flat,
    }
}

/// Seconds shown: a minute, two, then five, as the samples grow older.
fn window_secs(app: &App, end: DateTime<Utc>) -> i64 {
    let oldest = app
        .snapshot()
        .samples
        .first()
        .map_or(0, |p| (end - p.at).num_seconds());
    match oldest {
        ..=60 => 60,
        61..=120 => 120,
        _ => WINDOW_MAX_SECS,
    }
}

fn render(frame: &mut Frame, area: Rect, app: &App, metric: Metric) {
    let s = app.snapshot();
    let theme = app.theme();
    // A finished deployment's charts stop at its end.
    let end = s.finished_at.unwrap_or_else(|| app.now());
    let window = window_secs(app, end);
    let data = series(app, metric, end, window as f64);
    let values: Vec<f64> = data
        .canary
        .iter()
        .chain(&data.stable)
        .map(|p| p.1)
        .collect();
    let limits: Vec<f64> = data
        .limit
        .iter()
        .map(|p| p.1)
        .chain(data.limit_flat)
        .collect();
    let floor = match metric {
        Metric::ErrorRate => 0.001,
        Metric::P99 => 1.0,
    };
    // The plot's rows: the pane less its borders and the time axis.
    let rows = area.height.saturating_sub(3).max(1);
    let scale = choose_scale(&values, &limits, floor, rows);

    let wide = area.width >= 48;
    let name = match (metric, wide) {
        (Metric::ErrorRate, true) => "error rate (5xx)",
        (Metric::ErrorRate, false) => "errors",
        (Metric::P99, true) => "p99 latency",
        (Metric::P99, false) => "p99",
    };
    let title = match scale {
        Scale::Log { .. } => format!(" {name} · log "),
        Scale::Linear { .. } => format!(" {name} "),
    };
    let latest = |points: &[(f64, f64)]| points.last().map(|p| metric.format(p.1));
    let limit_now = data
        .limit
        .last()
        .map(|p| p.1)
        .or(data.limit_flat)
        .map(|v| metric.format(v));
    let legend = legend(
        usize::from(area.width.saturating_sub(2)),
        [latest(&data.canary), latest(&data.stable), limit_now],
        app,
    );
    let block = pane_block(Line::from(title), false, theme).title_bottom(legend);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 3 || inner.width < 12 {
        return;
    }

    // Labels: the top, the bottom, and a flat limit on its own row.
    let plot_height = inner.height - 1;
    let probe = Plot {
        area: Rect::new(0, 0, 1, plot_height),
        x: (0.0, 1.0),
        y: scale,
    };
    let mut labels: Vec<(u16, String)> = vec![
        (0, metric.axis(scale.top())),
        (plot_height - 1, bottom_label(metric, scale)),
    ];
    // The limit in force now, labelled on its row.
    if let Some(limit) = data.limit.last().map(|p| p.1).or(data.limit_flat) {
        let row = probe.row_of(limit);
        if row != 0 && row != plot_height - 1 {
            labels.push((row, metric.axis(limit)));
        }
    }
    let gutter = labels
        .iter()
        .map(|(_, l)| l.chars().count())
        .max()
        .unwrap_or(1) as u16;
    let plot = Plot {
        area: Rect::new(
            inner.x + gutter + 1,
            inner.y,
            inner.width - gutter - 1,
            plot_height,
        ),
        x: (-(window as f64), 0.0),
        y: scale,
    };

    let buf = frame.buffer_mut();
    for row in 0..plot_height {
        let labelled = labels.iter().find(|(r, _)| *r == row);
        let (text, tick) = match labelled {
            Some((_, label)) => (label.as_str(), "┤"),
            None => ("", "│"),
        };
        buf.set_string(
            inner.x,
            inner.y + row,
            format!("{text:>w$}", w = usize::from(gutter)),
            theme.muted,
        );
        buf.set_string(inner.x + gutter, inner.y + row, tick, theme.muted);
    }
    x_axis(buf, inner, gutter, plot.area.width, window, app);

    match data.limit_flat {
        Some(limit) => {
            let flat = [(plot.x.0, limit), (plot.x.1, limit)];
            plot.marks(buf, &flat, LIMIT_GLYPH, theme.threshold);
        }
        None => plot.marks(buf, &data.limit, LIMIT_GLYPH, theme.threshold),
    }
    plot.marks(buf, &data.stable, STABLE_GLYPH, theme.stable);
    plot.braille(buf, &data.canary, theme.canary);

    if data.canary.is_empty() && data.stable.is_empty() {
        let in_traffic = s.current_stage == Some(crate::domain::StageName::Traffic);
        let note = if s.traffic.is_none() {
            "no traffic stage in this plan"
        } else if in_traffic {
            "no samples yet"
        } else if plot.area.width >= 24 {
            "from the traffic stage"
        } else {
            "from traffic"
        };
        let middle = Rect::new(
            plot.area.x,
            plot.area.y + plot.area.height / 2,
            plot.area.width,
            1,
        );
        frame.render_widget(
            Paragraph::new(Span::styled(note, theme.muted)).centered(),
            middle,
        );
    }
}

/// The bottom label: 0 on a linear axis, the lowest decade on a log one.
fn bottom_label(metric: Metric, scale: Scale) -> String {
    match scale {
        Scale::Linear { .. } => "0".to_string(),
        Scale::Log { lo, .. } => metric.axis(lo),
    }
}

/// The time axis under the plot: seconds before now, `now` at the right.
fn x_axis(
    buf: &mut ratatui::buffer::Buffer,
    inner: Rect,
    gutter: u16,
    width: u16,
    window: i64,
    app: &App,
) {
    let style = app.theme().muted;
    let y = inner.y + inner.height - 1;
    let x0 = inner.x + gutter;
    buf.set_string(x0, y, format!("└{}", "─".repeat(usize::from(width))), style);
    let left = format!("-{window}s");
    let right = if app.snapshot().finished_at.is_some() {
        "end"
    } else {
        "now"
    };
    let plot_x = x0 + 1;
    buf.set_string(plot_x, y, &left, style);
    let right_x = plot_x + width.saturating_sub(right.len() as u16);
    buf.set_string(right_x, y, right, style);
    let middle = format!("-{}s", window / 2);
    let room = usize::from(width).saturating_sub(left.len() + right.len());
    if room >= middle.len() + 4 {
        let mid_x = plot_x + width / 2 - (middle.len() as u16) / 2;
        buf.set_string(mid_x, y, &middle, style);
    }
}

/// The legend as the chart's bottom title, as long as the width allows:
/// names with the latest values, short names with values, names only.
fn legend(width: usize, values: [Option<String>; 3], app: &App) -> Line<'static> {
    let theme = app.theme();
    let styles = [theme.canary, theme.stable, theme.threshold];
    let glyphs = [CANARY_GLYPH, STABLE_GLYPH, LIMIT_GLYPH];
    let build = |names: [&str; 3], with_values: bool| {
        let mut spans = Vec::new();
        for i in 0..3 {
            if i == 2 && values[2].is_none() {
                break;
            }
            if i > 0 {
                spans.push(Span::raw(" "));
            }
            let text = match (&values[i], with_values) {
                (Some(v), true) => format!("{}{} {v}", glyphs[i], names[i]),
                _ => format!("{}{}", glyphs[i], names[i]),
            };
            spans.push(Span::styled(text, styles[i]));
        }
        Line::from(spans)
    };
    let long = ["canary", "stable", "limit"];
    let short = ["c", "s", "max"];
    [
        build(long, true),
        build(short, true),
        build(long, false),
        build(short, false),
    ]
    .into_iter()
    .find(|line| line.width() <= width)
    .unwrap_or_else(|| build(short, false))
}
