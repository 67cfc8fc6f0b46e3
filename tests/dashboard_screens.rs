//! Whole-screen snapshots of the dashboard through ratatui's `TestBackend`, at
//! the smallest supported size, a common one and a large one, plus checks of
//! what an operator must be able to read off each screen.

#[path = "dashboard_fixtures/mod.rs"]
mod fixtures;

use chrono::{DateTime, Utc};
use cutover::engine::Snapshot;
use cutover::ui::figures::{self, Metric};
use cutover::ui::{draw, Action, App, Theme};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

fn app_with(fixture: (Snapshot, DateTime<Utc>), theme: Theme) -> App {
    let (snapshot, now) = fixture;
    let mut app = App::new(snapshot, theme);
    app.set_clock(now);
    app.attach_logs(fixtures::log_lines());
    app
}

fn app(fixture: (Snapshot, DateTime<Utc>)) -> App {
    app_with(fixture, Theme::color())
}

fn screen(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    terminal
}

fn text_of(terminal: &Terminal<TestBackend>) -> String {
    terminal.backend().to_string()
}

fn assert_screens(name: &str, app: &App) {
    for (width, height) in SIZES {
        let terminal = screen(app, width, height);
        insta::assert_snapshot!(format!("{name}_{width}x{height}"), terminal.backend());
    }
}

/// Every size's screen as text.
fn screens(app: &App) -> Vec<((u16, u16), String)> {
    SIZES
        .iter()
        .map(|&(w, h)| ((w, h), text_of(&screen(app, w, h))))
        .collect()
}

/// The header's and hint bar's rows (the first three and the last).
fn header_and_hints(text: &str) -> String {
    let rows: Vec<&str> = text.lines().collect();
    let mut out: Vec<&str> = rows.iter().take(4).copied().collect();
    out.extend(rows.last());
    out.join("\n")
}

#[test]
fn checks_running() {
    assert_screens("checks_running", &app(fixtures::checks_running()));
}

#[test]
fn waiting_for_a_manual_check_shows_its_text_in_full() {
    let app = app(fixtures::waiting_for_manual_check());
    assert_screens("waiting_for_manual_check", &app);
    for ((w, h), text) in screens(&app) {
        // The detail area wraps the prompt at word boundaries: every word is there.
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for word in fixtures::PROMPT.split_whitespace() {
            assert!(flat.contains(word), "{word:?} missing at {w}x{h}:\n{text}");
        }
    }
}

#[test]
fn canary_at_25_percent_with_charts() {
    assert_screens("canary_at_25", &app(fixtures::canary_at_25()));
}

#[test]
fn a_group_shows_each_router_s_weight_in_one_row_at_every_size() {
    let app5 = app(fixtures::group_at_25(5, Some(3)));
    for ((w, h), text) in screens(&app5) {
        let row = text
            .lines()
            .find(|l| l.contains("routers lb1"))
            .unwrap_or_else(|| {
                panic!(
                    "no member row at {w}x{h}:
{text}"
                )
            });
        for part in ["lb1 25", "lb2 25", "lb3 ✗", "lb4 25", "lb5 25"] {
            assert!(row.contains(part), "{part} missing at {w}x{h}: {row}");
        }
        assert!(
            text.contains("5 routers moved as one"),
            "{w}x{h}:
{text}"
        );
        // The figures are still there below it.
        assert!(
            text.contains("p99"),
            "{w}x{h}:
{text}"
        );
    }
    // Twenty do not fit one row at 80×24: how many agree, then the odd one.
    let app20 = app(fixtures::group_at_25(20, Some(7)));
    let text = text_of(&screen(&app20, 80, 24));
    let row = text
        .lines()
        .find(|l| l.contains("routers 19/20 at 25%"))
        .unwrap_or_else(|| panic!("no summary row:\n{text}"));
    assert!(row.contains("lb7 ✗"), "{row}");
    for ((w, h), text) in screens(&app20) {
        assert!(text.contains("lb7 ✗"), "{w}x{h}:\n{text}");
    }
}

#[test]
fn a_judged_group_keeps_its_routers_the_judge_and_the_figures_at_every_size() {
    let (mut s, now) = fixtures::group_at_25(5, Some(3));
    s.thresholds.sequential = true;
    s.evidence = Some(fixtures::evidence(false));
    let app = app((s, now));
    for ((w, h), text) in screens(&app) {
        assert!(text.contains("routers lb1"), "{w}x{h}:\n{text}");
        assert!(text.contains("5xx"), "{w}x{h}:\n{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("canary") && l.contains("stable") && l.contains("p99")),
            "no p99 figures at {w}x{h}:\n{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.contains("canary") && l.contains("stable") && l.contains("err")),
            "no error figures at {w}x{h}:\n{text}"
        );
    }
}

#[test]
fn canary_and_stable_figures_and_their_limits_are_on_screen_at_every_size() {
    for fixture in [
        fixtures::canary_at_25(),
        fixtures::failing_2_of_3(),
        fixtures::latency_regression(),
    ] {
        let s = fixture.0.clone();
        let app = app(fixture);
        let last = s.samples.last().expect("samples");
        for ((w, h), text) in screens(&app) {
            for metric in [Metric::ErrorRate, Metric::P99] {
                let canary = metric.format(metric.value(&last.pair.canary).unwrap());
                let stable = metric.format(metric.value(&last.pair.stable).unwrap());
                let limit = figures::limit(metric, &s.thresholds, Some(&last.pair.stable))
                    .map(|l| metric.format(l.value))
                    .unwrap();
                let row = text
                    .lines()
                    .find(|l| l.contains(&format!("canary {canary}")) && l.contains(&limit))
                    .unwrap_or_else(|| {
                        panic!("{metric:?} {canary}/{stable}/{limit} at {w}x{h}:\n{text}")
                    });
                assert!(row.contains(&format!("stable {stable}")), "{row}");
            }
        }
    }
}

#[test]
fn canary_with_the_slider_moved() {
    let mut app = app(fixtures::canary_at_25());
    app.update(Action::FocusNext);
    app.update(Action::WeightUp(5));
    app.update(Action::WeightUp(5));
    let text = text_of(&screen(&app, 120, 40));
    assert!(text.contains("35% pending"), "{text}");
    assert_screens("canary_slider_pending", &app);
}

#[test]
fn paused_is_a_state_in_the_header_and_the_hint_bar() {
    let app = app(fixtures::paused());
    assert_screens("paused", &app);
    for ((w, h), text) in screens(&app) {
        let edges = header_and_hints(&text);
        assert!(edges.contains("PAUSED"), "{w}x{h}:\n{edges}");
        assert!(!edges.contains("running"), "{w}x{h}:\n{edges}");
        assert!(edges.contains("p resume"), "{w}x{h}:\n{edges}");
        assert!(!edges.contains("p pause"), "{w}x{h}:\n{edges}");
    }
}

#[test]
fn holding_is_a_state_with_its_way_out() {
    let app = app(fixtures::holding());
    assert_screens("holding", &app);
    for ((w, h), text) in screens(&app) {
        let edges = header_and_hints(&text);
        assert!(edges.contains("HOLDING"), "{w}x{h}:\n{edges}");
        assert!(edges.contains("a carry on"), "{w}x{h}:\n{edges}");
        assert!(!edges.contains("ANALYSIS FAILING"), "{w}x{h}:\n{edges}");
    }
}

#[test]
fn failing_samples_escalate_before_the_rollback() {
    let app = app(fixtures::failing_2_of_3());
    assert_screens("failing_2_of_3", &app);
    for ((w, h), text) in screens(&app) {
        assert!(
            text.contains("ANALYSIS FAILING 2/3 · rollback at the next · R now"),
            "{w}x{h}:\n{text}"
        );
        // The waiting gate keeps its own line.
        assert!(text.contains("APPROVE THE NEXT STEP"), "{w}x{h}:\n{text}");
        // Failing samples are in the log, not only at info.
        assert!(
            text.contains(" W analysis at 25%: fail"),
            "{w}x{h}:\n{text}"
        );
    }
}

#[test]
fn a_latency_regression_crosses_the_limit_drawn_against_stable() {
    let app = app(fixtures::latency_regression());
    assert_screens("latency_regression", &app);
    let text = text_of(&screen(&app, 120, 40));
    // The axis is scaled to milliseconds, not fixed at a second.
    assert!(!text.contains("1s┤"), "{text}");
    assert!(text.contains("ANALYSIS FAILING 1/3"), "{text}");
}

#[test]
fn rollback_requested_shows_the_moment_r_is_read() {
    let mut app = app(fixtures::canary_at_25());
    app.update(Action::Rollback);
    assert_screens("rollback_requested", &app);
    for ((w, h), text) in screens(&app) {
        assert!(text.contains("ROLLBACK REQUESTED"), "{w}x{h}:\n{text}");
    }
}

#[test]
fn rolling_back() {
    assert_screens("rolling_back", &app(fixtures::rolling_back()));
}

#[test]
fn finished_rolled_back_counts_only_what_ran() {
    let app = app(fixtures::rolled_back());
    assert_screens("finished_rolled_back", &app);
    for ((w, h), text) in screens(&app) {
        let verify = text
            .lines()
            .find(|l| l.contains("6 verify"))
            .unwrap_or_else(|| panic!("no verify row at {w}x{h}"));
        assert!(
            verify.contains("skipped") && !verify.contains("2/2"),
            "{verify}"
        );
        assert_final_screen(&text, (w, h));
        assert!(
            text.contains("serves until cutover exits"),
            "{w}x{h}:\n{text}"
        );
    }
}

#[test]
fn finished_succeeded_says_how_to_roll_back() {
    let mut app = app(fixtures::succeeded());
    assert_screens("finished_succeeded", &app);
    for ((w, h), text) in screens(&app) {
        assert_final_screen(&text, (w, h));
        assert!(
            text.contains("to roll back, deploy v2.4.0 again"),
            "{w}x{h}:\n{text}"
        );
    }
    // R after the end changes neither the outcome nor the journal path.
    app.update(Action::Rollback);
    for ((w, h), text) in screens(&app) {
        assert_final_screen(&text, (w, h));
        assert!(text.contains("SUCCEEDED"), "{w}x{h}:\n{text}");
    }
}

/// What a final screen keeps and drops.
fn assert_final_screen(text: &str, (w, h): (u16, u16)) {
    let (snapshot, _) = fixtures::succeeded();
    assert!(text.contains(&snapshot.journal_path), "{w}x{h}:\n{text}");
    assert!(!text.contains("next 50%"), "{w}x{h}:\n{text}");
    let hints = text.lines().last().unwrap_or_default();
    for gone in ["approve", "weight", "apply", "pause", "rollback"] {
        assert!(!hints.contains(gone), "{gone} at {w}x{h}: {hints}");
    }
    assert!(hints.contains("q quit"), "{w}x{h}: {hints}");
}

#[test]
fn r_in_prepare_leaves_skipped_stages_without_full_counts() {
    let app = app(fixtures::failed_in_prepare());
    assert_screens("failed_in_prepare", &app);
    for ((w, h), text) in screens(&app) {
        assert!(text.contains("3/4 1 skipped"), "{w}x{h}:\n{text}");
        for stage in ["2 checkpoint", "3 deploy", "4 smoke", "6 verify"] {
            let row = text.lines().find(|l| l.contains(stage)).unwrap();
            assert!(row.contains("skipped"), "{row}");
            assert!(!row.contains("2/2") && !row.contains("3/3"), "{row}");
        }
    }
}

#[test]
fn help_open() {
    let mut app = app(fixtures::canary_at_25());
    app.update(Action::ToggleHelp);
    assert_screens("help_open", &app);
}

#[test]
fn the_quit_dialog_does_not_claim_the_built_in_router_holds_traffic() {
    let mut app = app(fixtures::canary_at_25());
    app.update(Action::Quit);
    assert_screens("quit_dialog", &app);
    for ((w, h), text) in screens(&app) {
        assert!(!text.contains("hold traffic and exit"), "{w}x{h}:\n{text}");
        assert!(
            text.contains("built-in router stops with cutover"),
            "{w}x{h}:\n{text}"
        );
    }
    // Another router does hold traffic where it is.
    let (mut snapshot, now) = fixtures::canary_at_25();
    if let Some(t) = snapshot.traffic.as_mut() {
        t.router = "haproxy".to_string();
    }
    let mut haproxy = app_with((snapshot, now), Theme::color());
    haproxy.update(Action::Quit);
    let text = text_of(&screen(&haproxy, 80, 24));
    assert!(text.contains("hold traffic and exit"), "{text}");
}

#[test]
fn the_log_pane_scrolled_and_empty() {
    let mut app = app(fixtures::canary_at_25());
    // Checklist → traffic → logs.
    app.update(Action::FocusNext);
    app.update(Action::FocusNext);
    app.update(Action::Up);
    assert_screens("logs_scrolled", &app);
    let text = text_of(&screen(&app, 80, 24));
    assert!(text.contains("scrolled · 3 newer · G follows"), "{text}");

    app.update(Action::LogFollow);
    app.update(Action::LogLevelLess);
    app.update(Action::LogLevelLess);
    let text = text_of(&screen(&app, 80, 24));
    assert!(text.contains("(nothing at this level)"), "{text}");
}

#[test]
fn log_lines_wrap_at_words_under_their_text() {
    let app = app(fixtures::canary_at_25());
    let text = text_of(&screen(&app, 80, 24));
    let rows: Vec<&str> = text.lines().collect();
    let start = rows
        .iter()
        .position(|l| l.contains("W analysis at 25%: fail — canary error rate 4.20% above"))
        .unwrap_or_else(|| panic!("{text}"));
    // The continuation starts under the text, with a whole word.
    let next = rows[start + 1]
        .trim_start_matches('"')
        .trim_start_matches('│');
    assert!(
        next.starts_with("           max_error_rate"),
        "{next:?}\n{text}"
    );
}

#[test]
fn below_80_by_24_one_line_says_where_the_deployment_stands() {
    let app = app(fixtures::failing_2_of_3());
    for (width, height) in [(79, 24), (60, 20), (40, 10)] {
        let terminal = screen(&app, width, height);
        insta::assert_snapshot!(format!("too_small_{width}x{height}"), terminal.backend());
    }
    let text = text_of(&screen(&app, 79, 30));
    // One line at 79 columns: stage, weight, verdict, the escalation, R.
    let line = text
        .lines()
        .find(|l| l.contains("5/7 traffic"))
        .unwrap_or_else(|| panic!("{text}"));
    for part in [
        "25%",
        "verdict fail",
        "FAILING 2/3 · rollback at the next",
        "R now",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    let app = app_with(fixtures::waiting_for_manual_check(), Theme::color());
    let text = text_of(&screen(&app, 120, 23));
    assert!(
        text.contains("a confirms \"Stakeholders notified\""),
        "{text}"
    );
    assert!(text.contains("R rolls back"), "{text}");
}

#[test]
fn no_color_keeps_canary_stable_and_limit_apart() {
    let app = app_with(fixtures::failing_2_of_3(), Theme::no_color());
    assert_screens("no_color_failing", &app);
    for (width, height) in SIZES {
        let terminal = screen(&app, width, height);
        for cell in terminal.backend().buffer().content() {
            assert_eq!(cell.fg, Color::Reset, "{cell:?}");
            assert_eq!(cell.bg, Color::Reset, "{cell:?}");
        }
        let text = text_of(&terminal);
        let braille = text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c));
        assert!(braille, "no canary line at {width}x{height}");
        assert!(text.contains('•'), "no stable marks at {width}x{height}");
        assert!(text.contains('┄'), "no limit at {width}x{height}");
    }
    for fixture in [fixtures::canary_at_25(), fixtures::rolled_back()] {
        let app = app_with(fixture, Theme::no_color());
        let terminal = screen(&app, 200, 60);
        for cell in terminal.backend().buffer().content() {
            assert_eq!(cell.fg, Color::Reset, "{cell:?}");
            assert_eq!(cell.bg, Color::Reset, "{cell:?}");
        }
    }
}

#[test]
fn the_help_lists_every_binding_of_the_keymap() {
    let mut app = app(fixtures::canary_at_25());
    app.update(Action::ToggleHelp);
    for (width, height) in SIZES {
        let text = text_of(&screen(&app, width, height));
        for binding in cutover::ui::keymap::KEYMAP {
            let keys = cutover::ui::keymap::keys_label(binding);
            assert!(text.contains(&keys), "{keys} missing at {width}x{height}");
        }
    }
}

#[test]
fn the_colour_theme_does_paint() {
    let app = app(fixtures::canary_at_25());
    let terminal = screen(&app, 120, 40);
    assert!(terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|cell| cell.fg == Color::Magenta));
}

#[test]
fn the_sequential_judge_at_25_percent() {
    let app = app(fixtures::judged_at_25());
    assert_screens("judged_at_25", &app);
    for ((w, h), text) in screens(&app) {
        // The meters, the ratio with its interval and the requests to go, in
        // one line at 80×24 and a line per kind above.
        assert!(text.contains("5xx"), "{w}x{h}:\n{text}");
        assert!(text.contains("1.9"), "{w}x{h}:\n{text}");
        assert!(text.contains("0.62–5.1"), "{w}x{h}:\n{text}");
        assert!(
            text.contains("≈6.4k") || text.contains("≈ 6.4k"),
            "{w}x{h}:\n{text}"
        );
        let meter = |l: &&str| l.contains('▱') || l.contains('▰');
        let line = text
            .lines()
            .find(|l| l.contains("5xx") && meter(l))
            .unwrap();
        if (w, h) == (80, 24) {
            assert!(
                line.contains("slow") && line.contains("≈6.4k/16s"),
                "{line}"
            );
        } else {
            assert!(line.contains("≈ 6.4k more requests, 16s"), "{line}");
            let slow = text
                .lines()
                .find(|l| l.contains("slow ") && meter(l))
                .unwrap();
            assert!(slow.contains("pass: canary rate ≤ 0.19%"), "{slow}");
        }
        assert!(
            text.contains("waiting for the judge's pass"),
            "{w}x{h}:\n{text}"
        );
    }
}

#[test]
fn rolled_back_by_the_judge_with_stable_recovered() {
    let app = app(fixtures::judged_rolled_back());
    assert_screens("judged_rolled_back", &app);
    for ((w, h), text) in screens(&app) {
        assert!(
            text.contains("rollback: canary ≥1.4×")
                || text.contains("ROLLBACK: canary ≥ 1.4× stable"),
            "{w}x{h}:\n{text}"
        );
        assert!(
            text.contains("stable recovered in 4.2s"),
            "{w}x{h}:\n{text}"
        );
    }
}
