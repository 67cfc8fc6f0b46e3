//! The whole screen: splits the terminal into regions and asks each region's
//! render file to draw itself, then draws the overlays (help, quit dialog).
//!
//! ```text
//! ┌ header: service, versions, environment, operator / stage, weight, verdict, state / banner(s) ┐
//! ├ procedure checklist ──┬ error-rate chart ──────┬ latency chart ─────────────────────────────┤
//! │ stages with counts    │ canary vs stable,      │ p99 canary vs stable, threshold            │
//! │ checks of the stage   │ threshold line         │                                            │
//! │ output tail           ├ traffic split ─────────┴────────────────────────────────────────────┤
//! │                       │ stable ░░░░░░░░░░░░░░░░░███ canary, pending weight, next step       │
//! │                       │ error rate and p99: canary, stable, limit                           │
//! ├ logs (our ring of tracing lines, wrapped) ──────────────────────────────────────────────────┤
//! └ key hints ──────────────────────────────────────────────────────────────────────────────────┘
//! ```

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};
use ratatui::Frame;

use super::app::App;
use super::theme::Theme;
use super::{charts, checklist, header, help, hints, logs, quit_dialog, status, traffic};

/// The smallest terminal the dashboard is laid out for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Where each region goes for a given terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenLayout {
    pub header: Rect,
    pub checklist: Rect,
    pub error_chart: Rect,
    pub latency_chart: Rect,
    pub traffic: Rect,
    pub logs: Rect,
    pub hints: Rect,
}

impl ScreenLayout {
    /// `None` when the terminal is smaller than 80×24. The header takes
    /// `header_height` rows (3, or 4 with two banner lines).
    /// `judged`: the plan judges sequentially (the traffic pane gets the
    /// judge's rows).
    pub fn for_area(area: Rect, header_height: u16, judged: bool) -> Option<ScreenLayout> {
        ScreenLayout::for_area_with(area, header_height, false, judged)
    }

    /// As [`ScreenLayout::for_area`]; `members` gives the traffic pane a row
    /// for a group's routers, `judged` (the plan judges sequentially) the
    /// judge's rows.
    pub fn for_area_with(
        area: Rect,
        header_height: u16,
        members: bool,
        judged: bool,
    ) -> Option<ScreenLayout> {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            return None;
        }
        // Logs grow with the height: 5 rows at 24, 11 at 48, 16 at 70.
        let logs_height = ((area.height - 4) / 4).clamp(5, 20);
        let [header, body, logs, hints] = Layout::vertical([
            Constraint::Length(header_height.clamp(3, 4)),
            Constraint::Min(10),
            Constraint::Length(logs_height),
            Constraint::Length(1),
        ])
        .areas(area);
        // The checklist keeps a readable width; charts take the rest of the room.
        let checklist_width = (area.width * 2 / 5).clamp(32, 64);
        let [checklist, right] =
            Layout::horizontal([Constraint::Length(checklist_width), Constraint::Min(40)])
                .areas(body);
        let [charts, traffic] = Layout::vertical([
            Constraint::Min(6),
            Constraint::Length(traffic::height(body.height, members, judged)),
        ])
        .areas(right);
        let [error_chart, latency_chart] =
            Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(charts);
        Some(ScreenLayout {
            header,
            checklist,
            error_chart,
            latency_chart,
            traffic,
            logs,
            hints,
        })
    }
}

/// Draws the whole dashboard for the app's current state.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let members = app
        .snapshot()
        .traffic
        .as_ref()
        .is_some_and(|t| !t.members.is_empty());
    let judged = app.snapshot().thresholds.sequential;
    let Some(layout) = ScreenLayout::for_area_with(area, header::height(app), members, judged)
    else {
        draw_too_small(frame, area, app);
        return;
    };
    header::render(frame, layout.header, app);
    checklist::render(frame, layout.checklist, app);
    charts::render_error_rate(frame, layout.error_chart, app);
    charts::render_latency(frame, layout.latency_chart, app);
    traffic::render(frame, layout.traffic, app);
    logs::render(frame, layout.logs, app);
    hints::render(frame, layout.hints, app);
    if app.help_open() {
        help::render(frame, area, app);
    }
    if let Some(dialog) = app.quit_dialog() {
        quit_dialog::render(frame, area, app, dialog);
    }
}

/// Below 80×24: where the deployment stands in one line (wrapped only when
/// narrower than the line), then what size the full dashboard needs.
fn draw_too_small(frame: &mut Frame, area: Rect, app: &App) {
    let theme = app.theme();
    let state = status::one_line(app);
    let style = match status::run_state(app) {
        status::RunState::Running | status::RunState::Starting
            if status::escalation(app.snapshot()).is_none() && app.snapshot().gate.is_none() =>
        {
            theme.title
        }
        other => other.style(theme).patch(theme.title),
    };
    let mut lines = vec![Line::styled(state, style)];
    lines.push(Line::styled(
        format!(
            "terminal {}×{}: the dashboard needs {MIN_WIDTH}×{MIN_HEIGHT}",
            area.width, area.height
        ),
        theme.muted,
    ));
    if let Some(notice) = app.notice() {
        lines.push(Line::styled(format!("▸ {notice}"), theme.notice));
    }
    let width = usize::from(area.width.max(1));
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum();
    let rows = u16::try_from(rows).unwrap_or(u16::MAX);
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: true });
    let top = area.height.saturating_sub(rows) / 2;
    let text_area = Rect::new(area.x, area.y + top, area.width, area.height - top);
    frame.render_widget(paragraph, text_area);
}

/// The bordered block every pane uses; the focused pane's border stands out.
pub fn pane_block<'a>(title: Line<'a>, focused: bool, theme: &Theme) -> Block<'a> {
    let (border, border_type) = if focused {
        (theme.border_focused, BorderType::Thick)
    } else {
        (theme.border, BorderType::Plain)
    };
    Block::bordered()
        .border_style(border)
        .border_type(border_type)
        .title(title.style(Style::new().patch(theme.title)))
}

/// A centered rectangle of at most `width`×`height` inside `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_80_by_24_there_is_no_layout() {
        assert!(ScreenLayout::for_area(Rect::new(0, 0, 79, 24), 3, false).is_none());
        assert!(ScreenLayout::for_area(Rect::new(0, 0, 80, 23), 3, false).is_none());
        assert!(ScreenLayout::for_area(Rect::new(0, 0, 80, 24), 3, false).is_some());
    }

    #[test]
    fn regions_tile_the_screen_without_overlap() {
        for (w, h, header) in [
            (80, 24, 3),
            (80, 24, 4),
            (120, 40, 3),
            (200, 60, 4),
            (250, 70, 3),
        ] {
            let area = Rect::new(0, 0, w, h);
            let l = ScreenLayout::for_area(area, header, w > 100).expect("layout");
            let regions = [
                l.header,
                l.checklist,
                l.error_chart,
                l.latency_chart,
                l.traffic,
                l.logs,
                l.hints,
            ];
            let covered: u32 = regions.iter().map(|r| r.area()).sum();
            assert_eq!(covered, area.area(), "{w}x{h}");
            for (i, a) in regions.iter().enumerate() {
                assert!(area.contains(a.as_position()), "{w}x{h}");
                for b in &regions[i + 1..] {
                    assert!(!a.intersects(*b), "{a:?} overlaps {b:?} at {w}x{h}");
                }
            }
        }
    }

    #[test]
    fn larger_terminals_give_the_charts_and_logs_more_room() {
        let small = ScreenLayout::for_area(Rect::new(0, 0, 80, 24), 3, false).expect("layout");
        let large = ScreenLayout::for_area(Rect::new(0, 0, 250, 70), 3, false).expect("layout");
        assert!(large.error_chart.width > small.error_chart.width * 3);
        assert!(large.error_chart.height > small.error_chart.height * 3);
        assert!(large.logs.height > small.logs.height * 2);
        assert!(small.error_chart.width >= 22 && small.error_chart.height >= 7);
        // With two banner lines the charts keep a plot of their own.
        let tall_header =
            ScreenLayout::for_area(Rect::new(0, 0, 80, 24), 4, false).expect("layout");
        assert!(tall_header.error_chart.height >= 6);
        // A group's row of routers too.
        let group =
            ScreenLayout::for_area_with(Rect::new(0, 0, 80, 24), 4, true, false).expect("layout");
        assert!(group.error_chart.height >= 5 && group.traffic.height == 8);
        // And the judge's row beside it.
        let both =
            ScreenLayout::for_area_with(Rect::new(0, 0, 80, 24), 4, true, true).expect("layout");
        assert!(
            both.error_chart.height >= 6 && both.traffic.height >= 8,
            "{both:?}"
        );
    }
}
