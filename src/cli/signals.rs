//! The one signal task: SIGINT, SIGTERM and SIGHUP become engine commands
//! (traffic held, or for a hang-up what `on_disconnect` says), and the
//! dashboard is told to leave: at once on a hang-up (the terminal is gone),
//! once the engine has recorded its outcome otherwise.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind as UnixSignal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::{Command, Commands, SignalKind, Snapshot};

/// Longest wait for the engine to record its outcome after SIGTERM/SIGINT
/// before the dashboard leaves anyway.
const OUTCOME_WAIT: Duration = Duration::from_secs(30);

/// Starts the signal task; the returned token is cancelled when the
/// dashboard should leave.
pub fn spawn(commands: Commands, snapshots: watch::Receiver<Snapshot>) -> CancellationToken {
    let leave = CancellationToken::new();
    let token = leave.clone();
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(UnixSignal::interrupt()),
            signal(UnixSignal::terminate()),
            signal(UnixSignal::hangup()),
        ) else {
            tracing::warn!(target: "cutover", "cannot watch signals: SIGTERM, SIGINT and SIGHUP will end the process without holding traffic");
            return;
        };
        loop {
            let kind = tokio::select! {
                _ = int.recv() => SignalKind::Interrupt,
                _ = term.recv() => SignalKind::Terminate,
                _ = hup.recv() => SignalKind::Hangup,
            };
            let engine_open = commands.send(Command::Signal(kind)).await.is_ok();
            if kind == SignalKind::Hangup || !engine_open {
                token.cancel();
                continue;
            }
            let token = token.clone();
            let mut outcome = snapshots.clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(OUTCOME_WAIT, outcome.wait_for(|s| s.outcome.is_some()))
                        .await;
                token.cancel();
            });
        }
    });
    leave
}

/// For an attached dashboard: any of SIGINT, SIGTERM, SIGHUP only detaches
/// it (the deployment goes on in its engine).
pub fn leave_on_any() -> CancellationToken {
    let leave = CancellationToken::new();
    let token = leave.clone();
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(UnixSignal::interrupt()),
            signal(UnixSignal::terminate()),
            signal(UnixSignal::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        token.cancel();
    });
    leave
}
