//! Whole-screen snapshots of the dashboard through ratatui's `TestBackend`, at
//! the smallest supported size and a common large one.

#[path = "dashboard_fixtures/mod.rs"]
mod fixtures;

use chrono::{DateTime, Utc};
use cutover::engine::Snapshot;
use cutover::ui::{draw, Action, App, Theme};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn app(fixture: (Snapshot, DateTime<Utc>)) -> App {
    let (snapshot, now) = fixture;
    let mut app = App::new(snapshot, Theme::color());
    app.set_clock(now);
    app
}

fn screen(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, app)).unwrap();
    terminal
}

fn assert_screens(name: &str, app: &App) {
    for (width, height) in SIZES {
        let terminal = screen(app, width, height);
        insta::assert_snapshot!(format!("{name}_{width}x{height}"), terminal.backend());
    }
}

fn text_of(terminal: &Terminal<TestBackend>) -> String {
    terminal.backend().to_string()
}

#[test]
fn checks_running() {
    let app = app(fixtures::checks_running());
    assert_screens("checks_running", &app);
}

#[test]
fn waiting_for_a_manual_check() {
    let app = app(fixtures::waiting_for_manual_check());
    assert_screens("waiting_for_manual_check", &app);
}

#[test]
fn canary_at_25_percent_with_charts() {
    let app = app(fixtures::canary_at_25());
    assert_screens("canary_at_25", &app);
}

#[test]
fn canary_with_the_slider_moved() {
    let mut app = app(fixtures::canary_at_25());
    app.update(Action::FocusNext);
    app.update(Action::WeightUp(5));
    app.update(Action::WeightUp(5));
    let text = text_of(&screen(&app, 160, 48));
    assert!(text.contains("35% pending"), "{text}");
    assert_screens("canary_slider_pending", &app);
}

#[test]
fn rolling_back() {
    let app = app(fixtures::rolling_back());
    assert_screens("rolling_back", &app);
}

#[test]
fn finished_rolled_back() {
    let app = app(fixtures::rolled_back());
    assert_screens("finished_rolled_back", &app);
}

#[test]
fn finished_succeeded() {
    let app = app(fixtures::succeeded());
    assert_screens("finished_succeeded", &app);
}

#[test]
fn help_open() {
    let mut app = app(fixtures::canary_at_25());
    app.update(Action::ToggleHelp);
    assert_screens("help_open", &app);
}

#[test]
fn quit_dialog() {
    let mut app = app(fixtures::canary_at_25());
    app.update(Action::Quit);
    assert_screens("quit_dialog", &app);
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
fn below_80_by_24_the_screen_says_it_is_too_small() {
    let app = app(fixtures::canary_at_25());
    let text = text_of(&screen(&app, 79, 30));
    assert!(text.contains("terminal too small (need 80×24"), "{text}");
    let text = text_of(&screen(&app, 120, 23));
    assert!(text.contains("terminal too small (need 80×24"), "{text}");
}

#[test]
fn no_color_paints_no_colour() {
    for fixture in [fixtures::canary_at_25(), fixtures::rolled_back()] {
        let (snapshot, now) = fixture;
        let mut app = App::new(snapshot, Theme::no_color());
        app.set_clock(now);
        let terminal = screen(&app, 160, 48);
        for cell in terminal.backend().buffer().content() {
            assert_eq!(cell.fg, Color::Reset, "{cell:?}");
            assert_eq!(cell.bg, Color::Reset, "{cell:?}");
        }
    }
}

#[test]
fn the_colour_theme_does_paint() {
    let app = app(fixtures::canary_at_25());
    let terminal = screen(&app, 160, 48);
    assert!(terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|cell| cell.fg == Color::Magenta));
}
