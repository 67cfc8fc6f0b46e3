//! `App::update` without a terminal: every key's meaning in context.
use std::time::Duration;

use chrono::TimeZone;

use super::*;
use crate::domain::{Outcome, StageName, Strategy};
use crate::engine::snapshot::{
    CheckStatus, CheckView, Gate, StageStatus, StageView, Thresholds, TrafficView,
};

fn check(name: &str, status: CheckStatus) -> CheckView {
    CheckView {
        name: name.to_string(),
        kind: "run".to_string(),
        target: "true".to_string(),
        status,
        duration: None,
        started_at: None,
        attempt: 1,
        optional: false,
        output_tail: Vec::new(),
    }
}

fn snapshot() -> Snapshot {
    let stages = StageName::ALL[..7]
        .iter()
        .map(|name| StageView {
            name: *name,
            status: StageStatus::Pending,
            checks: vec![
                check(&format!("{name} one"), CheckStatus::Passed),
                check(&format!("{name} two"), CheckStatus::Pending),
            ],
        })
        .collect();
    Snapshot {
        deployment_id: "20250101T000000-checkout-v2".to_string(),
        service: "checkout".to_string(),
        version: "v2".to_string(),
        previous: Some("v1".to_string()),
        environment: Some("production".to_string()),
        operator: "alice".to_string(),
        journal_path: "/tmp/j.jsonl".to_string(),
        started_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        finished_at: None,
        phase: Phase::Running,
        paused: false,
        current_stage: Some(StageName::Traffic),
        stages,
        traffic: Some(TrafficView {
            strategy: Strategy::Canary,
            steps: vec![5, 25, 50, 100],
            router: "builtin".to_string(),
            current_weight: 25,
            requested_weight: None,
            next_step: Some(50),
            waiting_approval: false,
            paused: false,
            baked: Duration::from_secs(10),
            bake: Duration::from_secs(60),
            rollback_weight_ms: None,
            failing: (0, 3),
            approval_manual: true,
            on_failure: crate::domain::OnFailure::Rollback,
            members: Vec::new(),
        }),
        samples: Vec::new(),
        thresholds: Thresholds::default(),
        verdict: None,
        gate: None,
        outcome: None,
        message: None,
        rollback_requested_at: None,
        evidence: None,
        recovery: None,
        revision: 1,
    }
}

fn app() -> App {
    App::new(snapshot(), Theme::no_color())
}

fn finished(outcome: Outcome) -> Snapshot {
    let mut s = snapshot();
    s.outcome = Some(outcome);
    s.phase = Phase::Finished;
    s
}

#[test]
fn approve_sends_approve_only_when_something_waits() {
    let mut app = app();
    assert_eq!(app.update(Action::Approve), None);
    assert!(app.notice().is_some());

    let mut s = snapshot();
    s.gate = Some(Gate::Step { from: 25, to: 50 });
    app.apply_snapshot(s);
    assert_eq!(
        app.update(Action::Approve),
        Some(Command::Approve {
            gate: crate::domain::GateTarget::Step { to: 50 }
        })
    );
    assert_eq!(app.notice(), None);
}

#[test]
fn arrows_move_the_pending_weight_from_the_current_one_and_enter_applies_it() {
    let mut app = app();
    assert_eq!(app.update(Action::WeightUp(5)), None);
    assert_eq!(app.update(Action::WeightUp(5)), None);
    assert_eq!(app.update(Action::WeightDown(1)), None);
    assert_eq!(app.pending_weight(), Some(34));
    assert_eq!(app.update(Action::Apply), Some(Command::SetWeight(34)));
    assert_eq!(app.pending_weight(), None);
}

#[test]
fn the_pending_weight_is_clamped_to_0_and_100() {
    let mut app = app();
    for _ in 0..30 {
        app.update(Action::WeightUp(5));
    }
    assert_eq!(app.pending_weight(), Some(100));
    for _ in 0..30 {
        app.update(Action::WeightDown(5));
    }
    assert_eq!(app.pending_weight(), Some(0));
    app.update(Action::WeightDown(1));
    assert_eq!(app.pending_weight(), Some(0));
}

#[test]
fn enter_on_the_current_weight_sends_nothing() {
    let mut app = app();
    app.update(Action::WeightUp(5));
    app.update(Action::WeightDown(5));
    assert_eq!(app.pending_weight(), Some(25));
    assert_eq!(app.update(Action::Apply), None);
    assert_eq!(app.pending_weight(), None);
    assert_eq!(app.update(Action::Apply), None);
}

#[test]
fn esc_drops_the_pending_weight() {
    let mut app = app();
    app.update(Action::WeightUp(5));
    assert_eq!(app.update(Action::Cancel), None);
    assert_eq!(app.pending_weight(), None);
    assert_eq!(app.update(Action::Apply), None);
}

#[test]
fn weight_keys_do_nothing_before_the_traffic_stage() {
    let mut s = snapshot();
    s.traffic = None;
    let mut app = App::new(s, Theme::no_color());
    app.update(Action::WeightUp(5));
    assert_eq!(app.pending_weight(), None);
    assert!(app.notice().is_some());
}

#[test]
fn p_toggles_from_the_paused_flag() {
    let mut app = app();
    assert_eq!(app.update(Action::TogglePause), Some(Command::Pause));
    let mut s = snapshot();
    if let Some(t) = s.traffic.as_mut() {
        t.paused = true;
    }
    app.apply_snapshot(s);
    assert_eq!(app.update(Action::TogglePause), Some(Command::Resume));
}

#[test]
fn capital_r_rolls_back_at_once_even_with_the_quit_dialog_open() {
    let mut app = app();
    app.update(Action::Quit);
    assert!(app.quit_dialog().is_some());
    assert_eq!(
        app.update(Action::Rollback),
        Some(Command::Rollback {
            reason: "operator pressed R".to_string(),
            requested_at: app.rollback_requested().expect("R is shown at once"),
        })
    );
}

#[test]
fn rollback_is_not_sent_twice_while_rolling_back() {
    let mut s = snapshot();
    s.phase = Phase::RollingBack;
    let mut app = App::new(s, Theme::no_color());
    assert_eq!(app.update(Action::Rollback), None);
}

#[test]
fn quit_in_progress_asks_and_hold_sends_hold_and_quit_then_waits_for_the_outcome() {
    let mut app = app();
    assert_eq!(app.update(Action::Quit), None);
    assert_eq!(
        app.quit_dialog(),
        Some(QuitDialog::Asking {
            choice: QuitChoice::Stay
        })
    );
    assert_eq!(
        app.update(Action::HoldAndQuit),
        Some(Command::HoldAndQuit {
            reason: "operator quit".to_string()
        })
    );
    assert_eq!(app.quit_dialog(), Some(QuitDialog::Holding));
    assert_eq!(app.exit(), None);

    // A snapshot without an outcome keeps waiting.
    app.apply_snapshot(snapshot());
    assert_eq!(app.exit(), None);
    app.apply_snapshot(finished(Outcome::Interrupted));
    assert_eq!(app.exit(), Some(UiExit::Quit));
}

#[test]
fn enter_in_the_dialog_takes_the_highlighted_choice() {
    let mut app = app();
    app.update(Action::Quit);
    // Stay is highlighted first: enter is the safe answer.
    assert_eq!(app.update(Action::DialogConfirm), None);
    assert_eq!(app.quit_dialog(), None);

    app.update(Action::Quit);
    app.update(Action::DialogSwitch);
    assert!(matches!(
        app.update(Action::DialogConfirm),
        Some(Command::HoldAndQuit { .. })
    ));
}

#[test]
fn stay_closes_the_dialog_without_a_command() {
    let mut app = app();
    app.update(Action::Quit);
    assert_eq!(app.update(Action::Stay), None);
    assert_eq!(app.quit_dialog(), None);
    assert_eq!(app.exit(), None);
}

#[test]
fn quit_after_the_outcome_leaves_at_once() {
    let mut app = App::new(finished(Outcome::RolledBack), Theme::no_color());
    assert_eq!(app.update(Action::Quit), None);
    assert_eq!(app.quit_dialog(), None);
    assert_eq!(app.exit(), Some(UiExit::Quit));
}

#[test]
fn quit_again_while_holding_leaves_without_waiting() {
    let mut app = app();
    app.update(Action::Quit);
    app.update(Action::HoldAndQuit);
    app.update(Action::Quit);
    assert_eq!(app.exit(), Some(UiExit::Quit));
}

#[test]
fn a_hold_that_cannot_reach_a_stopped_engine_still_quits() {
    let mut app = app();
    app.update(Action::Quit);
    let command = app.update(Action::HoldAndQuit);
    let Some(command) = command else {
        panic!("hold and quit expected")
    };
    app.command_not_sent(&command, SendFailure::Gone);
    assert_eq!(app.exit(), Some(UiExit::Quit));
}

#[test]
fn a_busy_engine_reopens_the_dialog_on_hold() {
    let mut app = app();
    app.update(Action::Quit);
    let command = app.update(Action::HoldAndQuit).expect("command");
    app.command_not_sent(&command, SendFailure::Busy);
    assert_eq!(app.exit(), None);
    assert_eq!(
        app.quit_dialog(),
        Some(QuitDialog::Asking {
            choice: QuitChoice::HoldAndExit
        })
    );
    assert!(app.notice().is_some());
}

#[test]
fn steering_keys_send_nothing_after_the_outcome() {
    let mut s = finished(Outcome::Succeeded);
    s.gate = Some(Gate::Step { from: 25, to: 50 });
    let mut app = App::new(s, Theme::no_color());
    for action in [
        Action::Approve,
        Action::TogglePause,
        Action::Rollback,
        Action::WeightUp(5),
        Action::Apply,
    ] {
        assert_eq!(app.update(action), None, "{action:?}");
    }
    assert_eq!(app.pending_weight(), None);
}

#[test]
fn an_outcome_closes_an_open_question_and_drops_the_pending_weight() {
    let mut app = app();
    app.update(Action::WeightUp(5));
    app.update(Action::Quit);
    app.apply_snapshot(finished(Outcome::Succeeded));
    assert_eq!(app.quit_dialog(), None);
    assert_eq!(app.pending_weight(), None);
    assert_eq!(app.exit(), None);
}

#[test]
fn tab_and_shift_tab_cycle_the_focus() {
    let mut app = app();
    assert_eq!(app.focus(), Pane::Checklist);
    app.update(Action::FocusNext);
    assert_eq!(app.focus(), Pane::Traffic);
    app.update(Action::FocusNext);
    assert_eq!(app.focus(), Pane::Logs);
    app.update(Action::FocusNext);
    assert_eq!(app.focus(), Pane::Checklist);
    app.update(Action::FocusPrevious);
    assert_eq!(app.focus(), Pane::Logs);
}

#[test]
fn j_and_k_select_checks_from_the_active_one() {
    let mut app = app();
    // Nothing runs or waits, so the selection follows the last finished check:
    // finalize's first (index 12).
    assert_eq!(app.selected_position(), Some(12));
    app.update(Action::Up);
    assert_eq!(app.selected_position(), Some(11));
    for _ in 0..20 {
        app.update(Action::Down);
    }
    assert_eq!(app.selected_position(), Some(13));
    for _ in 0..20 {
        app.update(Action::Up);
    }
    assert_eq!(app.selected_position(), Some(0));
    let (stage, check) = app.selected_check().expect("a check");
    assert_eq!(stage.name, StageName::Prepare);
    assert_eq!(check.name, "prepare one");
}

#[test]
fn the_selection_follows_the_running_check_until_moved() {
    let mut s = snapshot();
    s.stages[2].checks[1].status = CheckStatus::Running;
    let app = App::new(s, Theme::no_color());
    let (stage, check) = app.selected_check().expect("a check");
    assert_eq!(stage.name, StageName::Deploy);
    assert_eq!(check.name, "deploy two");
}

#[test]
fn up_and_down_in_the_traffic_pane_move_the_slider() {
    let mut app = app();
    app.update(Action::FocusNext);
    app.update(Action::Up);
    assert_eq!(app.pending_weight(), Some(30));
    app.update(Action::Down);
    app.update(Action::Down);
    assert_eq!(app.pending_weight(), Some(20));
}

#[test]
fn help_toggles_and_esc_closes_it_before_dropping_the_weight() {
    let mut app = app();
    app.update(Action::WeightUp(5));
    app.update(Action::ToggleHelp);
    assert!(app.help_open());
    app.update(Action::Cancel);
    assert!(!app.help_open());
    assert_eq!(app.pending_weight(), Some(30));
}

#[test]
fn a_running_check_shows_its_streamed_output_until_the_snapshot_has_a_tail() {
    let mut s = snapshot();
    s.stages[2].checks[1].status = CheckStatus::Running;
    let mut app = App::new(s.clone(), Theme::no_color());
    let live = Arc::new(LiveOutput::default());
    live.push("deploy two", "step 1");
    live.push("deploy two", "step 2");
    app.attach_live_output(Arc::clone(&live));
    let running = &s.stages[2].checks[1];
    assert_eq!(app.output_tail(running, 1), vec!["step 2"]);

    let mut finished = running.clone();
    finished.status = CheckStatus::Passed;
    finished.output_tail = vec!["done".to_string()];
    assert_eq!(app.output_tail(&finished, 5), vec!["done"]);
}

#[test]
fn log_level_steps_and_stops_at_the_ends() {
    let mut app = app();
    assert_eq!(app.log_level(), LogLevel::Info);
    app.update(Action::LogLevelMore);
    assert_eq!(app.log_level(), LogLevel::Debug);
    for _ in 0..10 {
        app.update(Action::LogLevelMore);
    }
    assert_eq!(app.log_level(), LogLevel::Trace);
    for _ in 0..10 {
        app.update(Action::LogLevelLess);
    }
    assert_eq!(app.log_level(), LogLevel::Error);
}

#[test]
fn a_notice_fades_after_a_few_seconds() {
    let mut app = app();
    let start = app.now();
    app.update(Action::Approve);
    assert!(app.notice().is_some());
    app.set_clock(start + chrono::TimeDelta::seconds(NOTICE_SECS - 1));
    assert!(app.notice().is_some());
    app.set_clock(start + chrono::TimeDelta::seconds(NOTICE_SECS));
    assert_eq!(app.notice(), None);
}

#[test]
fn the_slider_moves_only_in_the_running_traffic_stage() {
    let mut before = snapshot();
    before.current_stage = Some(StageName::Smoke);
    let mut app = App::new(before, Theme::no_color());
    app.update(Action::WeightUp(5));
    assert_eq!(app.pending_weight(), None);
    assert!(app.notice().is_some_and(|n| n.contains("traffic stage")));

    let mut rolling = snapshot();
    rolling.phase = Phase::RollingBack;
    let mut app = App::new(rolling, Theme::no_color());
    app.update(Action::WeightUp(5));
    assert_eq!(app.pending_weight(), None);

    // A weight moved in time is dropped when the stage ends under it.
    let mut app = app_with(snapshot());
    app.update(Action::WeightUp(5));
    assert_eq!(app.pending_weight(), Some(30));
    let mut after = snapshot();
    after.current_stage = Some(StageName::Verify);
    app.apply_snapshot(after);
    assert_eq!(app.update(Action::Apply), None);
}

fn app_with(s: Snapshot) -> App {
    App::new(s, Theme::no_color())
}

#[test]
fn r_after_the_end_sends_nothing_and_keeps_the_outcome() {
    let mut app = app_with(finished(Outcome::Succeeded));
    assert_eq!(app.update(Action::Rollback), None);
    assert_eq!(app.snapshot().outcome, Some(Outcome::Succeeded));
    assert_eq!(app.rollback_requested(), None);
    assert!(app.notice().is_some_and(|n| n.contains("deploy v1 again")));
}

#[test]
fn r_is_shown_as_requested_until_the_engine_rolls_back() {
    let mut app = app();
    assert!(matches!(
        app.update(Action::Rollback),
        Some(Command::Rollback { .. })
    ));
    assert!(app.rollback_requested().is_some());
    assert_eq!(
        crate::ui::status::run_state(&app),
        crate::ui::status::RunState::RollbackRequested
    );
    // Keys that would move traffic are refused once R is in.
    app.update(Action::WeightUp(5));
    assert_eq!(app.pending_weight(), None);
    app.apply_snapshot(snapshot());
    assert!(app.rollback_requested().is_some());
    let mut rolling = snapshot();
    rolling.phase = Phase::RollingBack;
    app.apply_snapshot(rolling);
    assert_eq!(app.rollback_requested(), None);
}

#[test]
fn a_refused_approval_is_noticed_beside_the_open_gate() {
    let mut s = snapshot();
    s.gate = Some(Gate::Step { from: 25, to: 50 });
    let mut app = app_with(s.clone());
    s.message =
        Some("approval of the step to 100% refused: the gate open now is the step to 50%".into());
    app.apply_snapshot(s);
    assert!(app.notice().is_some_and(|n| n.contains("refused")));
}

#[test]
fn the_log_pane_scrolls_back_and_g_follows_again() {
    let ring = Arc::new(LogRing::default());
    for i in 0..20 {
        ring.push(Utc::now(), LogLevel::Info, format!("line {i}"));
    }
    let mut app = app();
    app.attach_logs(Arc::clone(&ring));
    app.update(Action::FocusNext);
    app.update(Action::FocusNext);
    assert_eq!(app.focus(), Pane::Logs);
    app.update(Action::Up);
    assert_eq!(app.log_anchor(), Some(17));
    ring.push(Utc::now(), LogLevel::Info, "newer");
    let view = app.log_view(5);
    assert_eq!(view.lines.last().map(|l| l.seq), Some(17));
    assert_eq!(view.newer, 4);
    app.update(Action::LogFollow);
    assert_eq!(app.log_anchor(), None);
    assert_eq!(app.log_view(1).lines[0].text, "newer");
}

#[test]
fn attached_the_dialog_offers_detach_hold_and_detach_and_stay() {
    let mut app = app();
    app.set_attached(true);
    assert_eq!(
        app.quit_choices(),
        &[
            QuitChoice::Detach,
            QuitChoice::HoldAndExit,
            QuitChoice::Stay
        ]
    );
    app.update(Action::Quit);
    // Detach: no command, the engine goes on; the dashboard leaves.
    assert_eq!(app.update(Action::Detach), None);
    assert_eq!(app.exit(), Some(UiExit::Quit));

    let mut app = App::new(snapshot(), Theme::no_color());
    app.set_attached(true);
    app.update(Action::Quit);
    // Hold and detach: progression paused, then the dashboard leaves.
    assert_eq!(app.update(Action::HoldAndQuit), Some(Command::Pause));
    assert_eq!(app.exit(), Some(UiExit::Quit));
}

#[test]
fn in_one_process_detach_means_nothing_and_hold_stops_the_run() {
    let mut app = app();
    assert_eq!(
        app.quit_choices(),
        &[QuitChoice::HoldAndExit, QuitChoice::Stay]
    );
    app.update(Action::Quit);
    assert_eq!(app.update(Action::Detach), None);
    assert_eq!(app.exit(), None);
    assert!(matches!(
        app.update(Action::HoldAndQuit),
        Some(Command::HoldAndQuit { .. })
    ));
}
