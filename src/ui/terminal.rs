//! The real terminal: raw mode and the alternate screen on the way in, restored
//! on the way out, on error and on panic; frames go through one `BufWriter` so
//! each leaves in few writes (SSH links).

use std::io::{self, BufWriter, Stdout, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

/// Big enough for a full 250×70 frame with styles, so a frame is one write.
const FRAME_BUFFER_BYTES: usize = 256 * 1024;

pub type DashboardTerminal = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// Set while the dashboard owns the terminal, so the panic hook knows to restore it.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// Raw mode, alternate screen, hidden cursor.
pub fn enter() -> io::Result<DashboardTerminal> {
    install_panic_hook();
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let mut out = BufWriter::with_capacity(FRAME_BUFFER_BYTES, io::stdout());
    let entered = execute!(out, EnterAlternateScreen, Hide).and_then(|()| out.flush());
    if let Err(error) = entered {
        let _ = restore();
        return Err(error);
    }
    Terminal::new(CrosstermBackend::new(out)).inspect_err(|_| {
        let _ = restore();
    })
}

/// Leaves the alternate screen and raw mode. Does nothing when already restored.
pub fn restore() -> io::Result<()> {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let raw = disable_raw_mode();
    let mut out = io::stdout();
    execute!(out, LeaveAlternateScreen, Show)?;
    out.flush()?;
    raw
}

/// The tty is gone: writing to it would fail or block, so only forget it was ours.
pub fn abandon() {
    ACTIVE.store(false, Ordering::SeqCst);
}

/// Whether the terminal on stdout is still there (not hung up).
pub fn tty_alive() -> bool {
    let fd = io::stdout().as_raw_fd();
    let mut pollfd = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid, initialised pollfd that lives across the call; timeout 0.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    ready >= 0 && pollfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) == 0
}

fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Restore first so the panic message lands on the normal screen.
            let _ = restore();
            previous(info);
        }));
    });
}
