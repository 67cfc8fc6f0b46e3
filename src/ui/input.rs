//! Terminal input on its own thread, watching the tty itself for hang-up.
//!
//! crossterm's reader retries forever when the tty returns EOF or an error (a
//! dead SSH link), spinning at 100% CPU. So this thread polls the tty first and
//! only asks crossterm to parse when bytes are really there; POLLHUP, an error
//! or a readable tty with nothing to read ends the reading and reports `Gone`.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossterm::event::{self, Event, KeyEvent};
use tokio::sync::mpsc;

/// What the input thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Key(KeyEvent),
    Resize,
    /// The terminal is gone; nothing more will come.
    Gone,
}

/// How long the thread sleeps in `poll` before checking whether it should stop.
const WAKE_EVERY_MS: i32 = 200;

/// The running input thread; dropping it asks the thread to stop.
pub struct InputReader {
    stop: Arc<AtomicBool>,
}

impl Drop for InputReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts reading keys from the terminal crossterm reads (stdin if it is a tty,
/// else `/dev/tty`).
pub fn spawn(events: mpsc::Sender<Input>) -> io::Result<InputReader> {
    let tty = if io::stdin().is_terminal() {
        None
    } else {
        Some(File::open("/dev/tty")?)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    thread::Builder::new()
        .name("cutover-input".to_string())
        .spawn(move || {
            let fd = tty
                .as_ref()
                .map_or_else(|| io::stdin().as_raw_fd(), AsRawFd::as_raw_fd);
            read_until_gone(fd, &events, &stop_flag);
        })?;
    Ok(InputReader { stop })
}

fn read_until_gone(fd: RawFd, events: &mpsc::Sender<Input>, stop: &AtomicBool) {
    let mut size = crossterm::terminal::size().ok();
    while !stop.load(Ordering::SeqCst) {
        let delivered = match wait_readable(fd) {
            Ok(Readiness::Timeout) => {
                // SIGWINCH is not seen here; compare sizes instead.
                let now = crossterm::terminal::size().ok();
                if now.is_some() && now != size {
                    size = now;
                    events.blocking_send(Input::Resize).is_ok()
                } else {
                    true
                }
            }
            Ok(Readiness::Readable) if bytes_waiting(fd) > 0 => drain_events(events),
            // Readable with nothing to read is end-of-file; the rest is a hang-up.
            Ok(Readiness::Readable | Readiness::HungUp) | Err(_) => {
                let _ = events.blocking_send(Input::Gone);
                false
            }
        };
        if !delivered {
            return;
        }
    }
}

/// Hands every event crossterm has parsed to the dashboard; false when it should stop.
fn drain_events(events: &mpsc::Sender<Input>) -> bool {
    loop {
        match event::poll(Duration::ZERO) {
            Ok(false) => return true,
            Ok(true) => {}
            Err(_) => {
                let _ = events.blocking_send(Input::Gone);
                return false;
            }
        }
        let input = match event::read() {
            Ok(Event::Key(key)) => Input::Key(key),
            Ok(Event::Resize(..)) => Input::Resize,
            Ok(_) => continue,
            Err(_) => Input::Gone,
        };
        let gone = input == Input::Gone;
        if events.blocking_send(input).is_err() || gone {
            return false;
        }
    }
}

enum Readiness {
    Timeout,
    Readable,
    HungUp,
}

fn wait_readable(fd: RawFd) -> io::Result<Readiness> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid, initialised pollfd that lives across the call.
    let ready = unsafe { libc::poll(&mut pollfd, 1, WAKE_EVERY_MS) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        return if error.kind() == io::ErrorKind::Interrupted {
            Ok(Readiness::Timeout)
        } else {
            Err(error)
        };
    }
    if ready == 0 {
        return Ok(Readiness::Timeout);
    }
    if pollfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return Ok(Readiness::HungUp);
    }
    Ok(Readiness::Readable)
}

/// Bytes the tty holds for reading (FIONREAD); 0 on error.
fn bytes_waiting(fd: RawFd) -> libc::c_int {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the valid pointer passed.
    let result = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut count) };
    if result < 0 {
        0
    } else {
        count
    }
}
