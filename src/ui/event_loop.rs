//! The dashboard loop: keys, snapshots and a slow clock in; frames out, coalesced
//! to at most ten a second and about one a second when nothing moves.

use std::time::Duration;

use chrono::Utc;
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::engine::{Command, Commands, Snapshot};

use super::app::{App, SendFailure};
use super::input::Input;
use super::keymap;
use super::screen;

/// Shortest time between two frames (10 fps).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(100);
/// Redraw period while a spinner turns.
const TICK_ANIMATED: Duration = Duration::from_millis(250);
/// Redraw period otherwise (the elapsed clock).
const TICK_IDLE: Duration = Duration::from_secs(1);

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    Quit,
    /// The terminal went away (input EOF or error, a failed write, or the CLI's hang-up token).
    HangUp,
}

pub struct Channels {
    pub snapshots: watch::Receiver<Snapshot>,
    pub commands: Commands,
    pub hangup: CancellationToken,
    pub input: mpsc::Receiver<Input>,
}

/// Runs until the operator quits or the terminal goes away. Generic over the
/// backend so it can run against a test backend.
pub async fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut channels: Channels,
) -> Result<LoopEnd, B::Error> {
    let mut dirty = true;
    let mut next_frame = Instant::now();
    let mut engine_open = true;
    loop {
        if dirty && Instant::now() >= next_frame {
            app.set_clock(Utc::now());
            terminal.draw(|frame| screen::draw(frame, app))?;
            dirty = false;
            next_frame = Instant::now() + FRAME_INTERVAL;
        }
        if let Some(exit) = app.exit() {
            return Ok(match exit {
                super::UiExit::Quit => LoopEnd::Quit,
                super::UiExit::HangUp => LoopEnd::HangUp,
            });
        }
        let tick = if app.animating() {
            TICK_ANIMATED
        } else {
            TICK_IDLE
        };
        tokio::select! {
            biased;
            () = channels.hangup.cancelled() => return Ok(LoopEnd::HangUp),
            // Snapshots before keys, so a key acts on the newest state.
            changed = channels.snapshots.changed(), if engine_open => {
                match changed {
                    Ok(()) => {
                        // Only the latest snapshot matters; older ones were never seen.
                        let latest = channels.snapshots.borrow_and_update().clone();
                        app.set_clock(Utc::now());
                        app.apply_snapshot(latest);
                    }
                    Err(_) => {
                        engine_open = false;
                        app.engine_stopped();
                    }
                }
                dirty = true;
            }
            input = channels.input.recv() => match input {
                Some(Input::Key(key)) => {
                    if let Some(action) = keymap::action_for(&key, app.key_context()) {
                        // A notice given now fades from now.
                        app.set_clock(Utc::now());
                        if let Some(command) = app.update(action) {
                            send(&channels.commands, command, app);
                        }
                        dirty = true;
                    }
                }
                Some(Input::Resize) => dirty = true,
                Some(Input::Gone) | None => return Ok(LoopEnd::HangUp),
            },
            () = sleep_until(next_frame), if dirty => {}
            () = sleep(tick) => dirty = true,
        }
    }
}

/// Hands a command to the engine without waiting for it.
fn send(commands: &Commands, command: Command, app: &mut App) {
    tracing::debug!(target: "cutover::ui", ?command, "operator command");
    match commands.try_send(command) {
        Ok(()) => {}
        Err(TrySendError::Full(command)) => app.command_not_sent(&command, SendFailure::Busy),
        Err(TrySendError::Closed(command)) => app.command_not_sent(&command, SendFailure::Gone),
    }
}
