//! Render cost of the dashboard: the median time to draw a full 160×48 frame,
//! and the bytes a steady canary view sends to a terminal per second at the
//! dashboard's redraw rate (what an SSH link carries).
//!
//! Run with `cargo bench --bench render`.

#[path = "../tests/dashboard_fixtures/mod.rs"]
mod fixtures;

use std::cell::Cell;
use std::io::{self, BufWriter, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use cutover::ui::event_loop::FRAME_INTERVAL;
use cutover::ui::{draw, App, Theme};
use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

/// Counts what reaches the terminal: bytes and write calls.
#[derive(Default, Clone)]
struct CountingWriter {
    bytes: Rc<Cell<u64>>,
    writes: Rc<Cell<u64>>,
}

impl CountingWriter {
    fn counts(&self) -> (u64, u64) {
        (self.bytes.get(), self.writes.get())
    }
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.set(self.bytes.get() + buf.len() as u64);
        self.writes.set(self.writes.get() + 1);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn app_at(tick: u64) -> App {
    let (snapshot, now) = fixtures::moving_canary(tick);
    let mut app = App::new(snapshot, Theme::color());
    app.set_clock(now);
    app
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median times of a whole frame on the test backend, the snapshot moving
/// between frames: every region rendered, then either the full buffer sent (as
/// after a resize) or only the cells that changed.
fn full_frame_render_time() -> (Duration, Duration) {
    // The test backend cannot fail: its error type is uninhabited.
    let Ok(mut terminal) = Terminal::new(TestBackend::new(160, 48));
    let apps: Vec<App> = (0..200).map(app_at).collect();
    for app in apps.iter().take(20) {
        let Ok(_) = terminal.draw(|frame| draw(frame, app));
    }
    let mut full = Vec::with_capacity(1_000);
    let mut incremental = Vec::with_capacity(1_000);
    for _ in 0..5 {
        for app in &apps {
            let Ok(()) = terminal.clear();
            let started = Instant::now();
            let Ok(_) = terminal.draw(|frame| draw(frame, app));
            full.push(started.elapsed());
        }
        for app in &apps {
            let started = Instant::now();
            let Ok(_) = terminal.draw(|frame| draw(frame, app));
            incremental.push(started.elapsed());
        }
    }
    (median(full), median(incremental))
}

struct Traffic {
    bytes_per_second: f64,
    writes_per_frame: f64,
    first_frame_bytes: u64,
}

/// Simulated seconds of a moving canary through the real backend path
/// (crossterm over a buffered writer), one frame every `frame_every`.
fn bytes_to_terminal(seconds: u64, frame_every: Duration) -> io::Result<Traffic> {
    let width = 160;
    let height = 48;
    let counter = CountingWriter::default();
    let writer = BufWriter::with_capacity(256 * 1024, counter.clone());
    let backend = CrosstermBackend::new(writer);
    let mut terminal = Terminal::with_options(
        backend,
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, width, height)),
        },
    )?;
    terminal.draw(|frame| draw(frame, &app_at(0)))?;
    let (first_frame_bytes, _) = counter.counts();

    let ticks_per_frame = (frame_every.as_millis() / 100).max(1) as u64;
    let frames = seconds * 1000 / frame_every.as_millis() as u64;
    let (before_bytes, before_writes) = counter.counts();
    for frame in 1..=frames {
        let app = app_at(frame * ticks_per_frame);
        terminal.draw(|f| draw(f, &app))?;
    }
    let (bytes, writes) = counter.counts();
    Ok(Traffic {
        bytes_per_second: (bytes - before_bytes) as f64 / seconds as f64,
        writes_per_frame: (writes - before_writes) as f64 / frames as f64,
        first_frame_bytes,
    })
}

fn main() -> io::Result<()> {
    let (full, incremental) = full_frame_render_time();
    println!(
        "frame 160x48 (TestBackend): median {:.1} µs full repaint, {:.1} µs changed cells only",
        full.as_secs_f64() * 1e6,
        incremental.as_secs_f64() * 1e6
    );
    let moving = bytes_to_terminal(120, FRAME_INTERVAL)?;
    println!(
        "moving canary at 10 fps (160x48, crossterm): {:.0} bytes/s, {:.2} writes per frame, first frame {} bytes",
        moving.bytes_per_second, moving.writes_per_frame, moving.first_frame_bytes
    );
    let slow = bytes_to_terminal(120, Duration::from_secs(1))?;
    println!(
        "same canary redrawn at 1 fps: {:.0} bytes/s, {:.2} writes per frame",
        slow.bytes_per_second, slow.writes_per_frame
    );
    Ok(())
}
