//! The operator's dashboard (ratatui): one view of the engine. It renders the
//! latest `Snapshot`, turns keys into `Command`s sent with `try_send`, and shows
//! the engine's tracing events in a log pane (a ring of lines fed by a layer).

pub mod app;
pub mod charts;
pub mod checklist;
pub mod event_loop;
pub mod evidence;
pub mod figures;
pub mod header;
pub mod help;
pub mod hints;
pub mod input;
pub mod keymap;
pub mod live_output;
pub mod log_ring;
pub mod logs;
pub mod plot;
pub mod quit_dialog;
pub mod screen;
pub mod status;
pub mod terminal;
pub mod text;
pub mod theme;
pub mod traffic;

use std::sync::{Arc, OnceLock};

use chrono::Utc;
use color_eyre::eyre::WrapErr;
use tokio::sync::mpsc;

pub use app::{Action, App};
pub use screen::draw;
pub use theme::Theme;

/// The channels between the dashboard and the engine.
pub struct DashboardIo {
    pub snapshots: tokio::sync::watch::Receiver<crate::engine::Snapshot>,
    pub commands: crate::engine::Commands,
    /// Cancelled by the CLI when the terminal is gone (SIGHUP): stop at once, no busy loop.
    pub hangup: tokio_util::sync::CancellationToken,
    /// Attached to a detached engine: quitting detaches (the release goes on).
    pub attached: bool,
}

/// How the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiExit {
    /// The operator quit (after the outcome, or after the engine held traffic).
    Quit,
    /// The terminal went away; the CLI applies `on_disconnect`.
    HangUp,
}

/// Installs the tracing subscriber feeding the log pane — called before the engine starts.
///
/// The filter comes from `CUTOVER_LOG` (tracing-subscriber syntax), by default
/// `info,cutover=debug`; the pane shows info and up until `+` is pressed there.
pub fn init_logging() {
    LOGGING.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;

        let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,cutover=debug"));
        let live = Arc::new(live_output::LiveOutput::default());
        let ring = Arc::new(log_ring::LogRing::default());
        // Another subscriber may already be installed (tests); keep it.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(log_ring::LogRingLayer {
                ring: Arc::clone(&ring),
            })
            .with(live_output::LiveOutputLayer {
                store: Arc::clone(&live),
            })
            .try_init();
        Logging { live, ring }
    });
}

/// What the subscriber `init_logging` installs catches: the log pane's lines
/// and the output of running checks.
struct Logging {
    live: Arc<live_output::LiveOutput>,
    ring: Arc<log_ring::LogRing>,
}

static LOGGING: OnceLock<Logging> = OnceLock::new();

/// Runs the dashboard on the real terminal until the operator quits or the terminal goes away.
pub async fn run(io: DashboardIo) -> color_eyre::Result<UiExit> {
    let DashboardIo {
        mut snapshots,
        commands,
        hangup,
        attached,
    } = io;
    let mut app = App::new(snapshots.borrow_and_update().clone(), Theme::from_env());
    app.set_attached(attached);
    app.set_clock(Utc::now());
    app.set_utc_offset(*chrono::Local::now().offset());
    if let Some(logging) = LOGGING.get() {
        app.attach_live_output(Arc::clone(&logging.live));
        app.attach_logs(Arc::clone(&logging.ring));
    }

    let mut terminal = terminal::enter().wrap_err("cannot take over the terminal")?;
    let (input_sender, input) = mpsc::channel(64);
    let reader = match input::spawn(input_sender) {
        Ok(reader) => reader,
        Err(error) => {
            let _ = terminal::restore();
            return Err(error).wrap_err("cannot read the terminal");
        }
    };
    let channels = event_loop::Channels {
        snapshots,
        commands,
        hangup,
        input,
    };
    let ended = event_loop::run(&mut terminal, &mut app, channels).await;
    drop(reader);

    match ended {
        Ok(event_loop::LoopEnd::Quit) => {
            drop(terminal);
            terminal::restore().wrap_err("cannot restore the terminal")?;
            Ok(UiExit::Quit)
        }
        Ok(event_loop::LoopEnd::HangUp) => {
            leave_after_hang_up(terminal);
            Ok(UiExit::HangUp)
        }
        // A write that fails because the tty vanished is a hang-up, not an error.
        Err(_) if !terminal::tty_alive() => {
            leave_after_hang_up(terminal);
            Ok(UiExit::HangUp)
        }
        Err(error) => {
            drop(terminal);
            let _ = terminal::restore();
            Err(error).wrap_err("drawing the dashboard failed")
        }
    }
}

/// Restores the terminal only if it is still there; a dead tty is left alone.
fn leave_after_hang_up(dashboard: terminal::DashboardTerminal) {
    if terminal::tty_alive() {
        drop(dashboard);
        let _ = terminal::restore();
    } else {
        terminal::abandon();
        // Dropping would flush the frame buffer and show the cursor on the dead
        // tty, failing loudly on stderr; the process is about to end anyway.
        std::mem::forget(dashboard);
    }
}
