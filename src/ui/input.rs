//! Terminal input on its own thread, which owns the tty: it polls the tty, a
//! SIGWINCH self-pipe and a stop pipe together, reads every byte the tty holds
//! and parses the bytes with terminput (crossterm's parser as a library) into
//! crossterm key events.
//!
//! crossterm's own reader is not used: its edge-triggered wake-up could take
//! the tty's readiness on a resize without reading the bytes, so a key waited
//! for the next key. Here `poll(2)` is level-triggered and nothing else reads
//! the tty, so a byte that arrived is read at the next wake-up, and parsed and
//! delivered then. A hang-up (POLLHUP/POLLERR, a read of 0 bytes, EIO) ends
//! reading with [`Input::Gone`] instead of spinning.

use std::io::{self, IsTerminal, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use terminput::{
    Event, KeyCode as TermKeyCode, KeyEventKind as TermKind, KeyModifiers as TermModifiers,
};
use tokio::sync::mpsc;

/// What the input thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A key press, as crossterm reports it.
    Key(KeyEvent),
    /// The terminal changed size (SIGWINCH); redraw.
    Resize,
    /// The terminal is gone; nothing more will come.
    Gone,
}

/// How long bytes that may begin an escape sequence (a lone ESC, or `ESC [`
/// cut between two reads) wait for the rest, from when they arrived: then a
/// lone ESC is the Esc key and any other unfinished sequence is dropped. Every
/// other key leaves at once. A terminal writes a key's sequence in one write,
/// so its rest follows far sooner (vim's `ttimeoutlen` and tmux's
/// `escape-time` play the same part).
pub const ESCAPE_WAIT: Duration = Duration::from_millis(25);

/// Bytes taken from the tty per `read(2)`; more waiting is read at the next
/// (immediate) wake-up.
const READ_CHUNK: usize = 4096;

/// The running input thread. Dropping it closes the stop pipe, which wakes the
/// thread at once; it then stops without reading the tty again.
pub struct InputReader {
    _stop: UnixStream,
}

/// Starts reading keys from the terminal: stdin if it is a tty, else `/dev/tty`
/// (where crossterm puts the terminal in raw mode).
///
/// Errors: the tty cannot be opened or duplicated, the pipes cannot be made,
/// the SIGWINCH handler cannot be installed, or the thread cannot start.
pub fn spawn(events: mpsc::Sender<Input>) -> io::Result<InputReader> {
    let tty: OwnedFd = if io::stdin().is_terminal() {
        io::stdin().as_fd().try_clone_to_owned()?
    } else {
        std::fs::File::open("/dev/tty")?.into()
    };
    spawn_on(tty, events)
}

/// Starts the input thread on `tty`, which it owns and closes when it stops.
fn spawn_on(tty: OwnedFd, events: mpsc::Sender<Input>) -> io::Result<InputReader> {
    let (winch, winch_writer) = UnixStream::pair()?;
    winch.set_nonblocking(true)?;
    let (stop, stop_keeper) = UnixStream::pair()?;
    // The handler owns the writing end and closes it when unregistered.
    let handler = signal_hook::low_level::pipe::register(libc::SIGWINCH, winch_writer)?;
    let started = thread::Builder::new()
        .name("cutover-input".to_string())
        .spawn(move || {
            let pipes = Pipes { winch, stop };
            read_until_gone(tty.as_fd(), &pipes, &events);
            signal_hook::low_level::unregister(handler);
        });
    if let Err(error) = started {
        signal_hook::low_level::unregister(handler);
        return Err(error);
    }
    Ok(InputReader { _stop: stop_keeper })
}

/// The thread's other wake-up sources besides the tty.
struct Pipes {
    /// A byte arrives for each SIGWINCH.
    winch: UnixStream,
    /// Readable (end of file) once the [`InputReader`] is dropped.
    stop: UnixStream,
}

/// What one `poll(2)` reported.
#[derive(Default)]
struct Ready {
    tty_readable: bool,
    tty_hung_up: bool,
    resized: bool,
    stopped: bool,
}

fn read_until_gone(tty: BorrowedFd<'_>, pipes: &Pipes, events: &mpsc::Sender<Input>) {
    let mut decoder = KeyDecoder::new();
    let mut buf = [0u8; READ_CHUNK];
    // When held bytes (a lone ESC, a cut sequence) stop waiting for the rest:
    // counted from when holding began, so later keys cannot keep them waiting.
    let mut settle_at: Option<Instant> = None;
    loop {
        let ready = match wait(tty, pipes, settle_at) {
            Ok(ready) => ready,
            Err(_) => {
                let _ = events.blocking_send(Input::Gone);
                return;
            }
        };
        if ready.stopped {
            return;
        }
        if ready.resized {
            drain(&pipes.winch);
            if events.blocking_send(Input::Resize).is_err() {
                return;
            }
        }
        if ready.tty_readable {
            match read_tty(tty, &mut buf) {
                // The tty's file is shared with stdout: if something made it
                // non-blocking, an empty read says nothing about a hang-up.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Ok(0) | Err(_) => {
                    let _ = events.blocking_send(Input::Gone);
                    return;
                }
                Ok(read) => {
                    if !deliver(decoder.feed(&buf[..read]), events) {
                        return;
                    }
                    settle_at = match (decoder.is_holding(), settle_at) {
                        (false, _) => None,
                        (true, None) => Some(Instant::now() + ESCAPE_WAIT),
                        (true, held_since) => held_since,
                    };
                }
            }
        } else if ready.tty_hung_up {
            let _ = events.blocking_send(Input::Gone);
            return;
        }
        if settle_at.is_some_and(|at| Instant::now() >= at) {
            settle_at = None;
            if !deliver(decoder.settle(), events) {
                return;
            }
        }
    }
}

/// Sends keys in order; false when the dashboard has stopped listening.
fn deliver(keys: Vec<KeyEvent>, events: &mpsc::Sender<Input>) -> bool {
    keys.into_iter()
        .all(|key| events.blocking_send(Input::Key(key)).is_ok())
}

/// Waits until the tty or a pipe has something, or until `settle_at`.
fn wait(tty: BorrowedFd<'_>, pipes: &Pipes, settle_at: Option<Instant>) -> io::Result<Ready> {
    let timeout_ms = settle_at.map_or(-1, |at| {
        let left = at.saturating_duration_since(Instant::now());
        // Round up so the wake-up is never before `at`.
        i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    let watch = |fd: i32| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [
        watch(tty.as_raw_fd()),
        watch(pipes.winch.as_raw_fd()),
        watch(pipes.stop.as_raw_fd()),
    ];
    // SAFETY: three valid, initialised pollfds that live across the call.
    let result = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout_ms) };
    if result < 0 {
        let error = io::Error::last_os_error();
        // A signal (SIGWINCH among them) interrupted the wait: look again.
        return if error.kind() == io::ErrorKind::Interrupted {
            Ok(Ready::default())
        } else {
            Err(error)
        };
    }
    let [tty_fd, winch_fd, stop_fd] = fds;
    let gone = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
    Ok(Ready {
        tty_readable: tty_fd.revents & libc::POLLIN != 0,
        tty_hung_up: tty_fd.revents & gone != 0,
        resized: winch_fd.revents & libc::POLLIN != 0,
        stopped: stop_fd.revents != 0,
    })
}

/// One `read(2)` of what the tty holds (poll said there is something).
fn read_tty(tty: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes during the call.
        let read = unsafe { libc::read(tty.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if let Ok(read) = usize::try_from(read) {
            return Ok(read);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Empties the non-blocking SIGWINCH pipe; several signals make one resize.
fn drain(mut pipe: &UnixStream) {
    let mut sink = [0u8; 64];
    while matches!(pipe.read(&mut sink), Ok(n) if n > 0) {}
}

/// Turns terminal input bytes into crossterm key events with terminput's
/// parser (crossterm's own escape-sequence parser, kept as a library).
///
/// Bytes are fed as they arrive and handed to the parser one at a time, as
/// crossterm's reader does: a complete key leaves at once, a report the
/// terminal sends (mouse, focus, device attributes) or an unknown sequence is
/// dropped, and an unfinished sequence is held. A lone ESC is held too, since
/// it may start a sequence cut between two reads; [`KeyDecoder::settle`] says
/// no more is coming and makes it the Esc key.
#[derive(Debug, Default)]
pub struct KeyDecoder {
    /// Bytes of the event being read; never a complete event.
    pending: Vec<u8>,
}

const ESC: u8 = 0x1b;

impl KeyDecoder {
    pub fn new() -> Self {
        KeyDecoder::default()
    }

    /// The keys completed by `bytes`, in order. An unfinished sequence at the
    /// end (a lone ESC too) is held for the next call.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<KeyEvent> {
        let mut keys = Vec::new();
        for &byte in bytes {
            self.pending.push(byte);
            // Alone, ESC is Esc or the start of a sequence: the next byte (or
            // settling) decides.
            if self.pending == [ESC] {
                continue;
            }
            match Event::parse_from(&self.pending) {
                Ok(None) => {}
                Ok(Some(event)) => {
                    keys.extend(crossterm_key(event));
                    self.pending.clear();
                }
                Err(_) => self.pending.clear(),
            }
        }
        keys
    }

    /// Whether bytes are held, waiting for the rest of a sequence.
    pub fn is_holding(&self) -> bool {
        !self.pending.is_empty()
    }

    /// No more bytes came: a held lone ESC is the Esc key; any other
    /// unfinished sequence whose rest never came is no key and is dropped.
    pub fn settle(&mut self) -> Vec<KeyEvent> {
        let lone_esc = self.pending == [ESC];
        self.pending.clear();
        if lone_esc {
            vec![KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)]
        } else {
            Vec::new()
        }
    }
}

/// The crossterm form of a terminput key event (the same fields, as
/// crossterm's reader reports them); anything but a key gives `None`.
fn crossterm_key(event: Event) -> Option<KeyEvent> {
    let Event::Key(key) = event else {
        return None;
    };
    let mut held = KeyModifiers::empty();
    for (terminput, crossterm) in [
        (TermModifiers::SHIFT, KeyModifiers::SHIFT),
        (TermModifiers::CTRL, KeyModifiers::CONTROL),
        (TermModifiers::ALT, KeyModifiers::ALT),
        (TermModifiers::SUPER, KeyModifiers::SUPER),
        (TermModifiers::HYPER, KeyModifiers::HYPER),
        (TermModifiers::META, KeyModifiers::META),
    ] {
        if key.modifiers.contains(terminput) {
            held |= crossterm;
        }
    }
    let code = match key.code {
        TermKeyCode::Char(c) => KeyCode::Char(c),
        // crossterm names shift-tab apart.
        TermKeyCode::Tab if held.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
        TermKeyCode::Tab => KeyCode::Tab,
        TermKeyCode::Enter => KeyCode::Enter,
        TermKeyCode::Esc => KeyCode::Esc,
        TermKeyCode::Backspace => KeyCode::Backspace,
        TermKeyCode::Delete => KeyCode::Delete,
        TermKeyCode::Insert => KeyCode::Insert,
        TermKeyCode::Home => KeyCode::Home,
        TermKeyCode::End => KeyCode::End,
        TermKeyCode::PageUp => KeyCode::PageUp,
        TermKeyCode::PageDown => KeyCode::PageDown,
        TermKeyCode::Up => KeyCode::Up,
        TermKeyCode::Down => KeyCode::Down,
        TermKeyCode::Left => KeyCode::Left,
        TermKeyCode::Right => KeyCode::Right,
        TermKeyCode::F(n) => KeyCode::F(n),
        _ => return None,
    };
    let kind = match key.kind {
        TermKind::Press => KeyEventKind::Press,
        TermKind::Repeat => KeyEventKind::Repeat,
        TermKind::Release => KeyEventKind::Release,
    };
    Some(KeyEvent::new_with_kind(code, held, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn with(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    /// Everything `bytes` makes once nothing more comes.
    fn decode(bytes: &[u8]) -> Vec<KeyEvent> {
        let mut decoder = KeyDecoder::new();
        let mut keys = decoder.feed(bytes);
        keys.extend(decoder.settle());
        keys
    }

    #[test]
    fn reports_and_unknown_sequences_are_no_keys() {
        for report in [
            &b"\x1b[?1;2c"[..], // device attributes
            b"\x1b[I",          // focus gained
            b"\x1b[<0;3;4M",    // SGR mouse press
            b"\x1b[M aR",       // X10 mouse press
            b"\x1b[12;40R",     // cursor position (read as a function key)
            b"\x1b[99X",        // unknown
        ] {
            let keys = decode(report);
            assert!(
                keys.iter().all(|k| !matches!(k.code, KeyCode::Char(_))),
                "{report:?} gave {keys:?}"
            );
        }
        // What follows a dropped sequence is read as usual.
        assert_eq!(decode(b"\x1b[99Xa"), [key(KeyCode::Char('a'))]);
    }

    #[test]
    fn a_cut_sequence_whose_rest_never_comes_is_dropped_on_settling() {
        let mut decoder = KeyDecoder::new();
        assert!(decoder.feed(b"\x1b[1;").is_empty());
        assert!(decoder.is_holding());
        assert!(decoder.settle().is_empty());
        assert!(!decoder.is_holding());
        assert_eq!(decoder.feed(b"?"), [key(KeyCode::Char('?'))]);
    }

    #[test]
    fn letters_and_punctuation_are_chars() {
        assert_eq!(decode(b"a"), [key(KeyCode::Char('a'))]);
        assert_eq!(decode(b"?"), [key(KeyCode::Char('?'))]);
        assert_eq!(
            decode(b"R"),
            [with(KeyCode::Char('R'), KeyModifiers::SHIFT)]
        );
    }

    #[test]
    fn a_complete_key_is_delivered_without_settling() {
        let mut decoder = KeyDecoder::new();
        assert_eq!(decoder.feed(b"R")[0].code, KeyCode::Char('R'));
        assert_eq!(decoder.feed(b"\x1b[A"), [key(KeyCode::Up)]);
        assert_eq!(decoder.feed(b"\x03")[0].code, KeyCode::Char('c'));
        assert!(!decoder.is_holding());
        assert!(decoder.settle().is_empty());
    }

    #[test]
    fn arrows_in_normal_and_application_mode() {
        assert_eq!(decode(b"\x1b[A"), [key(KeyCode::Up)]);
        assert_eq!(decode(b"\x1b[B"), [key(KeyCode::Down)]);
        assert_eq!(decode(b"\x1b[C"), [key(KeyCode::Right)]);
        assert_eq!(decode(b"\x1b[D"), [key(KeyCode::Left)]);
        assert_eq!(decode(b"\x1bOD"), [key(KeyCode::Left)]);
        assert_eq!(decode(b"\x1bOC"), [key(KeyCode::Right)]);
    }

    #[test]
    fn shift_arrows_carry_shift() {
        assert_eq!(
            decode(b"\x1b[1;2D"),
            [with(KeyCode::Left, KeyModifiers::SHIFT)]
        );
        assert_eq!(
            decode(b"\x1b[1;2C"),
            [with(KeyCode::Right, KeyModifiers::SHIFT)]
        );
    }

    #[test]
    fn enter_tab_and_shift_tab() {
        assert_eq!(decode(b"\r"), [key(KeyCode::Enter)]);
        assert_eq!(decode(b"\t"), [key(KeyCode::Tab)]);
        assert_eq!(
            decode(b"\x1b[Z"),
            [with(KeyCode::BackTab, KeyModifiers::SHIFT)]
        );
    }

    #[test]
    fn ctrl_c_is_c_with_control() {
        assert_eq!(
            decode(b"\x03"),
            [with(KeyCode::Char('c'), KeyModifiers::CONTROL)]
        );
    }

    #[test]
    fn a_lone_esc_is_held_until_settled_then_is_esc() {
        let mut decoder = KeyDecoder::new();
        assert!(decoder.feed(b"\x1b").is_empty());
        assert!(decoder.is_holding());
        assert_eq!(decoder.settle(), [key(KeyCode::Esc)]);
        assert!(decoder.settle().is_empty());
    }

    #[test]
    fn several_keys_in_one_read_come_out_in_order() {
        assert_eq!(
            decode(b"a?\x1b[1;2CR\r\x1b[D\t\x03"),
            [
                key(KeyCode::Char('a')),
                key(KeyCode::Char('?')),
                with(KeyCode::Right, KeyModifiers::SHIFT),
                with(KeyCode::Char('R'), KeyModifiers::SHIFT),
                key(KeyCode::Enter),
                key(KeyCode::Left),
                key(KeyCode::Tab),
                with(KeyCode::Char('c'), KeyModifiers::CONTROL),
            ]
        );
    }

    #[test]
    fn a_sequence_split_across_two_reads_is_one_key() {
        let mut decoder = KeyDecoder::new();
        assert!(decoder.feed(b"\x1b[").is_empty());
        assert_eq!(decoder.feed(b"A"), [key(KeyCode::Up)]);

        assert_eq!(decoder.feed(b"?\x1b[1;"), [key(KeyCode::Char('?'))]);
        assert_eq!(
            decoder.feed(b"2D"),
            [with(KeyCode::Left, KeyModifiers::SHIFT)]
        );
        assert!(decoder.settle().is_empty());

        assert!(decoder.feed(b"\x1b").is_empty());
        assert_eq!(decoder.feed(b"[Z")[0].code, KeyCode::BackTab);
    }

    #[test]
    fn esc_then_a_key_in_a_later_read_after_settling_is_two_keys() {
        let mut decoder = KeyDecoder::new();
        assert!(decoder.feed(b"\x1b").is_empty());
        assert_eq!(decoder.settle(), [key(KeyCode::Esc)]);
        assert_eq!(decoder.feed(b"?"), [key(KeyCode::Char('?'))]);
    }

    /// The input thread on a real pseudo-terminal in raw mode.
    struct OnPty {
        master: Option<std::fs::File>,
        keys: mpsc::Receiver<Input>,
        reader: Option<InputReader>,
        runtime: tokio::runtime::Runtime,
    }

    /// Generous bound for something the thread should do at once; only a
    /// lost or stuck input waits this long.
    const PATIENCE: Duration = Duration::from_secs(5);

    impl OnPty {
        fn start() -> OnPty {
            use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
            let pty = nix::pty::openpty(None, None).expect("openpty");
            let mut raw = tcgetattr(&pty.slave).expect("tcgetattr");
            cfmakeraw(&mut raw);
            tcsetattr(&pty.slave, SetArg::TCSANOW, &raw).expect("raw mode");
            let (sender, keys) = mpsc::channel(64);
            let reader = spawn_on(pty.slave, sender).expect("spawn");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            OnPty {
                master: Some(pty.master.into()),
                keys,
                reader: Some(reader),
                runtime,
            }
        }

        fn type_bytes(&mut self, bytes: &[u8]) {
            use std::io::Write;
            let master = self.master.as_mut().expect("the pty is open");
            master.write_all(bytes).expect("write to the pty");
        }

        /// The next report, or `None` when the thread ended; panics after PATIENCE.
        fn next(&mut self) -> Option<Input> {
            let keys = &mut self.keys;
            self.runtime
                .block_on(async { tokio::time::timeout(PATIENCE, keys.recv()).await })
                .expect("the input thread reported nothing within the bound")
        }

        /// The next report other than a resize (other tests raise SIGWINCH too).
        fn next_not_resize(&mut self) -> Option<Input> {
            loop {
                match self.next() {
                    Some(Input::Resize) => continue,
                    other => return other,
                }
            }
        }
    }

    #[test]
    fn keys_typed_on_the_tty_arrive_in_order_and_a_lone_esc_arrives_alone() {
        let mut pty = OnPty::start();
        pty.type_bytes(b"?R\x1b[1;2D");
        assert_eq!(
            pty.next_not_resize(),
            Some(Input::Key(key(KeyCode::Char('?'))))
        );
        assert_eq!(
            pty.next_not_resize(),
            Some(Input::Key(with(KeyCode::Char('R'), KeyModifiers::SHIFT)))
        );
        assert_eq!(
            pty.next_not_resize(),
            Some(Input::Key(with(KeyCode::Left, KeyModifiers::SHIFT)))
        );
        // Nothing follows the ESC; it still arrives, as Esc.
        pty.type_bytes(b"\x1b");
        assert_eq!(pty.next_not_resize(), Some(Input::Key(key(KeyCode::Esc))));
        pty.type_bytes(b"a");
        assert_eq!(
            pty.next_not_resize(),
            Some(Input::Key(key(KeyCode::Char('a'))))
        );
    }

    #[test]
    fn a_key_sent_with_a_resize_arrives_with_it() {
        let mut pty = OnPty::start();
        for _ in 0..50 {
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGWINCH).expect("raise");
            pty.type_bytes(b"?");
            let mut resized = false;
            loop {
                match pty.next() {
                    Some(Input::Resize) => resized = true,
                    Some(Input::Key(k)) if k.code == KeyCode::Char('?') => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
            if !resized {
                assert_eq!(pty.next(), Some(Input::Resize));
            }
        }
    }

    #[test]
    fn a_hung_up_tty_ends_reading_with_gone() {
        let mut pty = OnPty::start();
        pty.type_bytes(b"a");
        assert_eq!(
            pty.next_not_resize(),
            Some(Input::Key(key(KeyCode::Char('a'))))
        );
        // Closing the master side is the terminal going away.
        drop(pty.master.take());
        assert_eq!(pty.next_not_resize(), Some(Input::Gone));
        // The thread has ended (its sender is gone), so it cannot spin.
        assert_eq!(pty.next_not_resize(), None);
    }

    #[test]
    fn dropping_the_reader_stops_the_thread() {
        let mut pty = OnPty::start();
        drop(pty.reader.take());
        assert_eq!(pty.next_not_resize(), None);
    }
}
