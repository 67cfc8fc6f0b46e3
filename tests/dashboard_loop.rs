//! The dashboard loop driven without a terminal: keys go in as input events,
//! snapshots through the watch channel, commands come out of the mpsc channel.

#[path = "dashboard_fixtures/mod.rs"]
mod fixtures;

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use cutover::domain::{GateTarget, Operator, Outcome, StageName};
use cutover::engine::snapshot::Phase;
use cutover::engine::{Command, Commands, Envelope, Snapshot};
use cutover::ui::event_loop::{self, Channels, LoopEnd};
use cutover::ui::input::Input;
use cutover::ui::{App, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A guard against a hung loop, not a timing assertion.
const GUARD: Duration = Duration::from_secs(20);

struct Harness {
    snapshots: watch::Sender<Snapshot>,
    commands: mpsc::Receiver<Envelope>,
    input: mpsc::Sender<Input>,
    hangup: CancellationToken,
    ended: tokio::task::JoinHandle<(LoopEnd, String)>,
}

fn start(snapshot: Snapshot) -> Harness {
    let (snapshot_tx, snapshot_rx) = watch::channel(snapshot.clone());
    let (command_tx, command_rx) = mpsc::channel(8);
    let (input_tx, input_rx) = mpsc::channel(8);
    let hangup = CancellationToken::new();
    let channels = Channels {
        snapshots: snapshot_rx,
        commands: Commands::new(command_tx, Operator::named("tester")),
        hangup: hangup.clone(),
        input: input_rx,
    };
    let ended = tokio::spawn(async move {
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
        let mut app = App::new(snapshot, Theme::no_color());
        let end = event_loop::run(&mut terminal, &mut app, channels)
            .await
            .unwrap();
        (end, terminal.backend().to_string())
    });
    Harness {
        snapshots: snapshot_tx,
        commands: command_rx,
        input: input_tx,
        hangup,
        ended,
    }
}

fn key(code: KeyCode) -> Input {
    Input::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

impl Harness {
    async fn press(&self, code: KeyCode) {
        self.input.send(key(code)).await.unwrap();
    }

    async fn next_command(&mut self) -> Command {
        tokio::time::timeout(GUARD, self.commands.recv())
            .await
            .expect("a command")
            .expect("the loop is running")
            .command
    }

    async fn end(self) -> (LoopEnd, String) {
        tokio::time::timeout(GUARD, self.ended)
            .await
            .expect("the loop ends")
            .unwrap()
    }
}

#[tokio::test]
async fn a_approves_the_waiting_manual_check() {
    let (snapshot, _) = fixtures::waiting_for_manual_check();
    let mut h = start(snapshot);
    h.press(KeyCode::Char('a')).await;
    assert!(
        matches!(
            h.next_command().await,
            Command::Approve {
                gate: GateTarget::Check {
                    stage: StageName::Prepare,
                    ..
                }
            }
        ),
        "the approval names the manual check on screen"
    );
    h.hangup.cancel();
    assert_eq!(h.end().await.0, LoopEnd::HangUp);
}

#[tokio::test]
async fn the_slider_sends_the_pending_weight_on_enter() {
    let (snapshot, _) = fixtures::canary_at_25();
    let mut h = start(snapshot);
    h.press(KeyCode::Right).await;
    h.input
        .send(Input::Key(KeyEvent::new(
            KeyCode::Right,
            KeyModifiers::SHIFT,
        )))
        .await
        .unwrap();
    h.press(KeyCode::Enter).await;
    assert_eq!(h.next_command().await, Command::SetWeight(31));
    h.hangup.cancel();
    h.end().await;
}

#[tokio::test]
async fn quitting_mid_deployment_holds_traffic_and_waits_for_the_engine() {
    let (snapshot, _) = fixtures::canary_at_25();
    let mut h = start(snapshot.clone());
    h.press(KeyCode::Char('q')).await;
    h.press(KeyCode::Char('h')).await;
    assert_eq!(
        h.next_command().await,
        Command::HoldAndQuit {
            reason: "operator quit".to_string()
        }
    );
    // The engine records the interruption and publishes it; only then the loop ends.
    let mut interrupted = snapshot;
    interrupted.outcome = Some(Outcome::Interrupted);
    interrupted.phase = Phase::Finished;
    interrupted.revision += 1;
    h.snapshots.send(interrupted).unwrap();
    assert_eq!(h.end().await.0, LoopEnd::Quit);
}

#[tokio::test]
async fn after_the_outcome_the_final_state_stays_until_q() {
    let (snapshot, _) = fixtures::rolled_back();
    let h = start(snapshot);
    // Another key does not end the loop; the outcome stays on screen.
    h.press(KeyCode::Char('a')).await;
    h.press(KeyCode::Char('q')).await;
    let (end, screen) = h.end().await;
    assert_eq!(end, LoopEnd::Quit);
    assert!(screen.contains("ROLLED BACK"), "{screen}");
}

#[tokio::test]
async fn a_vanished_terminal_ends_the_loop_as_a_hang_up() {
    let (snapshot, _) = fixtures::canary_at_25();
    let h = start(snapshot);
    h.input.send(Input::Gone).await.unwrap();
    assert_eq!(h.end().await.0, LoopEnd::HangUp);
}

#[tokio::test]
async fn a_closed_input_channel_is_a_hang_up_too() {
    let (snapshot, _) = fixtures::canary_at_25();
    let Harness {
        snapshots: _snapshots,
        commands: _commands,
        input,
        hangup: _hangup,
        ended,
    } = start(snapshot);
    drop(input);
    let (end, _) = tokio::time::timeout(GUARD, ended).await.unwrap().unwrap();
    assert_eq!(end, LoopEnd::HangUp);
}

#[tokio::test]
async fn rollback_goes_out_at_once_while_the_quit_dialog_is_open() {
    let (snapshot, _) = fixtures::canary_at_25();
    let mut h = start(snapshot);
    h.press(KeyCode::Char('q')).await;
    h.press(KeyCode::Char('R')).await;
    assert!(matches!(
        h.next_command().await,
        Command::Rollback { reason, .. } if reason == "operator pressed R"
    ));
    h.hangup.cancel();
    h.end().await;
}

#[tokio::test]
async fn keys_act_on_the_newest_snapshot() {
    let (snapshot, _) = fixtures::checks_running();
    let h = start(snapshot);
    let (rolled_back, _) = fixtures::rolled_back();
    h.snapshots.send(rolled_back).unwrap();
    h.press(KeyCode::Char('q')).await;
    // `q` quits at once only if the rolled-back snapshot was taken before the key;
    // mid-deployment it would open the quit dialog and the loop would go on.
    assert_eq!(h.end().await.0, LoopEnd::Quit);
}
