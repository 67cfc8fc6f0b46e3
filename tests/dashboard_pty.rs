//! End-to-end in a pseudo-terminal: the real dashboard (`cutover demo`) gets
//! resizes and keys interleaved, back to back, and every key must act.
//!
//! `?` toggles the help overlay (esc also closes it), so a key that acted shows
//! on the screen; one that did not within [`ACT_WITHIN`] counts as late, and
//! as lost if it never does. The resize goes out as TIOCSWINSZ on the PTY
//! master, so the dashboard gets a real SIGWINCH.

mod common;

use std::time::Duration;

use common::pty::Pty;

/// The help overlay's title.
const HELP_OPEN: &str = "keys · esc or ? closes";
/// The hint bar, drawn on the last row of every frame.
const HINT_BAR_END: &str = "q quit";
/// The header, drawn on the first row of every frame.
const HEADER: &str = "cutover";

/// Generous bound for a key to act; past it the key counts as late.
const ACT_WITHIN: Duration = Duration::from_secs(3);
/// How long a late key may still take before it counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(10);
/// How long the demo may take to draw its first frame.
const START_WITHIN: Duration = Duration::from_secs(30);

const ROUNDS: usize = 200;
/// Misses (late or lost keys) after which the test stops early: enough to
/// show the fault without waiting out every round.
const ENOUGH_MISSES: usize = 5;
const SIZES: [(u16, u16); 2] = [(100, 30), (120, 40)];

/// `cutover demo` in a PTY of 100×30 with its state in a temp dir, drawn.
fn start_demo() -> (tempfile::TempDir, std::path::PathBuf, Pty) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let state_arg = state.display().to_string();
    let (cols, rows) = SIZES[0];
    let pty = Pty::spawn(
        dir.path(),
        &["demo", "--state-dir", &state_arg],
        cols,
        rows,
        &[],
    );
    pty.wait_until(START_WITHIN, |screen| whole_frame(screen, rows))
        .unwrap_or_else(|screen| panic!("the dashboard never drew; the screen shows:\n{screen}"));
    (dir, state, pty)
}

/// Whether `screen` is a whole frame drawn for `rows` rows: the header on the
/// first row and the hint bar on the last. A screen model resized before the
/// dashboard redrew fails this (rows are blank, cut or scrolled away).
fn whole_frame(screen: &str, rows: u16) -> bool {
    let lines: Vec<&str> = screen.split('\n').collect();
    lines.len() == usize::from(rows)
        && lines.first().is_some_and(|l| l.contains(HEADER))
        && lines
            .last()
            .is_some_and(|l| l.trim_end().ends_with(HINT_BAR_END))
}

/// A whole frame at `rows` rows with the help open or closed as wanted.
fn shows(screen: &str, rows: u16, help_open: bool) -> bool {
    whole_frame(screen, rows) && screen.contains(HELP_OPEN) == help_open
}

#[test]
fn every_key_pressed_around_a_resize_acts() {
    let (_dir, _state, mut pty) = start_demo();
    let mut help_open = false;
    let mut late = Vec::new();
    let mut lost = Vec::new();
    let mut rounds = 0;
    for round in 0..ROUNDS {
        if late.len() + lost.len() >= ENOUGH_MISSES {
            break;
        }
        rounds += 1;
        let (cols, rows) = SIZES[(round + 1) % SIZES.len()];
        // Closing alternates between `?` and a lone ESC (no byte follows it).
        let key: &[u8] = if help_open && round % 4 == 1 {
            b"\x1b"
        } else {
            b"?"
        };
        let how = match round % 3 {
            0 => {
                pty.resize_and_write(cols, rows, key);
                "resize then key, back to back"
            }
            1 => {
                pty.write(key);
                pty.resize(cols, rows);
                "key then resize, back to back"
            }
            _ => {
                pty.resize(cols, rows);
                pty.wait_until(ACT_WITHIN, |s| whole_frame(s, rows))
                    .unwrap_or_else(|s| panic!("round {round}: no redraw after the resize:\n{s}"));
                pty.write(key);
                "key after the redraw"
            }
        };
        let want = !help_open;
        if pty
            .wait_until(ACT_WITHIN, |s| shows(s, rows, want))
            .is_err()
        {
            match pty.wait_until(LOST_AFTER, |s| shows(s, rows, want)) {
                Ok(_) => late.push((round, how)),
                Err(screen) => {
                    lost.push((round, how));
                    // Go on from what the screen shows.
                    help_open = screen.contains(HELP_OPEN);
                    continue;
                }
            }
        }
        help_open = want;
    }
    assert!(
        late.is_empty() && lost.is_empty(),
        "of {rounds} keys, {} acted late (after {ACT_WITHIN:?}): {late:?}; {} never acted: {lost:?}",
        late.len(),
        lost.len()
    );
}

#[test]
fn r_right_after_a_resize_starts_the_rollback() {
    let (_dir, state, mut pty) = start_demo();
    // Confirm the one manual check; the demo then deploys and moves the first
    // traffic step, after which R is a real rollback (before it, R only stops).
    pty.wait_for_text("WAITING FOR YOU", START_WITHIN);
    pty.write(b"a");
    common::wait_for_event(&state, START_WITHIN, |e| {
        e["event"] == "weight_applied" && e["weight"].as_u64().is_some_and(|w| w > 0)
    });
    let (cols, rows) = SIZES[1];
    pty.resize_and_write(cols, rows, b"R");
    // The journal is written by the engine after the key acted: allow more.
    let started = common::wait_for_event(&state, LOST_AFTER, |e| e["event"] == "rollback_started");
    assert_eq!(started["source"], "operator", "{started}");
    assert_eq!(started["operator"], common::account(), "{started}");
    let finished =
        common::wait_for_event(&state, START_WITHIN, |e| e["event"] == "rollback_finished");
    assert_eq!(finished["outcome"], "succeeded", "{finished}");
}
