//! A pseudo-terminal for driving the real `cutover` binary: the child gets the
//! PTY as its controlling terminal, a thread reads its output into a `vt100`
//! screen model, and tests write keys, resize (TIOCSWINSZ on the master, so the
//! child gets SIGWINCH) and wait, bounded, for text on the screen. Dropping the
//! [`Pty`] kills the child's whole session (also when a test panics).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::pty::{openpty, Winsize};

/// Lines of scrollback the screen model keeps.
const SCROLLBACK: usize = 200;

/// How often the output thread looks at its stop flag while the child is quiet.
const READER_WAKE_MS: i32 = 50;

/// The real binary running in a PTY, with a screen model of what it drew.
pub struct Pty {
    child: Child,
    master: File,
    screen: Arc<Mutex<vt100::Parser>>,
    stop_reading: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    /// Bytes the child wrote to the terminal so far.
    bytes: Arc<AtomicU64>,
}

impl Pty {
    /// Starts `cutover ARGS` in `dir` on a new PTY of `cols`×`rows`, with
    /// `TERM=xterm-256color`, `USER=tester` and then `env` set, and
    /// `SSH_CONNECTION` removed. Panics when the PTY or the child cannot start.
    pub fn spawn(dir: &Path, args: &[&str], cols: u16, rows: u16, env: &[(&str, &str)]) -> Pty {
        let pty = openpty(Some(&winsize(cols, rows)), None).expect("openpty");
        set_cloexec(pty.master.as_raw_fd());
        set_cloexec(pty.slave.as_raw_fd());
        let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the pty slave"));
        let mut command = Command::new(super::bin());
        command
            .args(args)
            .current_dir(dir)
            .env_remove("SSH_CONNECTION")
            .env("TERM", "xterm-256color")
            .env("USER", "tester")
            .envs(env.iter().copied())
            .stdin(slave(&pty.slave))
            .stdout(slave(&pty.slave))
            .stderr(slave(&pty.slave));
        // SAFETY: only async-signal-safe calls between fork and exec: a new
        // session (so the child leads its own process group) whose
        // controlling terminal is the PTY on stdin.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn cutover in a pty");
        // Our copy of the slave must go, or the master never sees the child leave.
        drop(pty.slave);
        let master = File::from(pty.master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            nonzero(rows),
            nonzero(cols),
            SCROLLBACK,
        )));
        let stop_reading = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let reader = {
            let output = master.try_clone().expect("dup the pty master");
            let screen = Arc::clone(&screen);
            let stop = Arc::clone(&stop_reading);
            let bytes = Arc::clone(&bytes);
            std::thread::Builder::new()
                .name("pty-output".to_string())
                .spawn(move || read_output(output, &screen, &stop, &bytes))
                .expect("start the pty output thread")
        };
        Pty {
            child,
            master,
            screen,
            stop_reading,
            reader: Some(reader),
            bytes,
        }
    }

    /// Bytes the child has written to the terminal so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// The child's process id (also its session and process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types `bytes` on the terminal, all in one write.
    pub fn write(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the pty");
    }

    /// Sets the terminal's size: first the screen model (so the redraw that
    /// follows is read at the new size), then TIOCSWINSZ on the master, which
    /// sends SIGWINCH to the child.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.screen
            .lock()
            .expect("screen lock")
            .set_size(nonzero(rows), nonzero(cols));
        let size = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads one valid winsize through the pointer.
        let done = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert!(done == 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Resizes and types `bytes` back to back, with no wait in between.
    pub fn resize_and_write(&mut self, cols: u16, rows: u16, bytes: &[u8]) {
        self.resize(cols, rows);
        self.write(bytes);
    }

    /// The visible screen as text, one line per row.
    pub fn screen(&self) -> String {
        self.screen.lock().expect("screen lock").screen().contents()
    }

    /// Waits until the screen satisfies `ready`, at most `within`; the screen
    /// then, or `Err` with the last screen seen.
    pub fn wait_until(
        &self,
        within: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return Ok(screen);
            }
            if Instant::now() >= deadline {
                return Err(screen);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the screen contains `text`; panics with the screen after `within`.
    pub fn wait_for_text(&self, text: &str, within: Duration) -> String {
        self.wait_until(within, |screen| screen.contains(text))
            .unwrap_or_else(|screen| {
                panic!("no {text:?} on the screen within {within:?}; it shows:\n{screen}")
            })
    }

    /// The child's exit status, if it has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for the child")
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        kill_session(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stop_reading.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Feeds the child's output into the screen model until the PTY closes or
/// `stop` is set.
fn read_output(
    mut master: File,
    screen: &Mutex<vt100::Parser>,
    stop: &AtomicBool,
    bytes: &AtomicU64,
) {
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let mut pollfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid, initialised pollfd that lives across the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, READER_WAKE_MS) };
        if ready <= 0 {
            continue;
        }
        match master.read(&mut buf) {
            // EIO: every slave copy is closed; the child is gone.
            Ok(0) | Err(_) => return,
            Ok(n) => {
                bytes.fetch_add(n as u64, Ordering::SeqCst);
                screen.lock().expect("screen lock").process(&buf[..n]);
            }
        }
    }
}

/// SIGKILL to every process in the session `sid` (the child, its process
/// group and any group it made), so nothing a test started outlives it.
fn kill_session(sid: u32) {
    let Ok(sid) = i32::try_from(sid) else { return };
    // SAFETY: killpg only sends a signal.
    unsafe { libc::killpg(sid, libc::SIGKILL) };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if session_of(pid) == Some(sid) {
            // SAFETY: kill only sends a signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The session id of `pid` from /proc/PID/stat (field 6, after the command
/// name, which may hold spaces and parentheses).
fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // state, ppid, pgrp, session
    after_name.split_whitespace().nth(3)?.parse().ok()
}

fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn nonzero(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).expect("a terminal size is never 0")
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: F_SETFD on a descriptor we own.
    let done = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    assert!(done == 0, "FD_CLOEXEC: {}", std::io::Error::last_os_error());
}
