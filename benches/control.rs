//! The detached engine and its clients, measured through the real binary:
//! `cutover rollback` from its start to weight 0 confirmed; `cutover attach`
//! to its first full frame; what one attached client costs in bytes per
//! second (the protocol, and the terminal at 160×48) while a canary moves;
//! and the engine's CPU with 0, 1 and 10 watching clients.
//!
//! The engine runs as `cutover engine deploy.toml` (what a terminal `run`
//! starts), with the built-in router in front of two sample services and
//! ~100 requests/s of load. `BENCH_ROUNDS` sets the rollback rounds (default 30).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pty::Pty;

const PATIENCE: Duration = Duration::from_secs(60);

struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_plan(
    dir: &Path,
    stable: std::net::SocketAddr,
    canary: std::net::SocketAddr,
) -> std::net::SocketAddr {
    let listen = common::free_addr();
    std::fs::write(
        dir.join("deploy.toml"),
        format!(
            r#"[deployment]
service = "bench"
version = "v2"
previous = "v1"
state_dir = "state"
[traffic]
steps = [50, 100]
bake = "1h"
approval = "auto"
[traffic.router]
kind = "builtin"
listen = "{listen}"
stable = "{stable}"
canary = "{canary}"
[analysis]
interval = "250ms"
window = "2s"
min_requests = 1
"#
        ),
    )
    .expect("plan");
    listen
}

/// Starts an engine and waits until it listens with the canary at 50%.
fn start_engine(dir: &Path) -> Engine {
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let child = Command::new(common::bin())
        .args(["engine", "deploy.toml"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("engine");
    let engine = Engine(child);
    common::wait_for_event(&dir.join("state"), PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 50
    });
    common::wait_for("the control socket", PATIENCE, || {
        UnixStream::connect(dir.join("state/control.sock")).ok()
    });
    engine
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// `cutover rollback` from its spawn to weight 0 confirmed, in ms.
fn rollback_round(dir: &Path) -> Option<f64> {
    let _engine = start_engine(dir);
    let spawned = chrono::Utc::now();
    let out = Command::new(common::bin())
        .args(["rollback", "--state-dir", "state"])
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let state = dir.join("state");
    let finished = common::wait_for_event(&state, PATIENCE, |e| e["event"] == "rollback_finished");
    let events = common::journal_so_far(&state);
    let started = events.iter().find(|e| e["event"] == "rollback_started")?;
    let requested: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(started["requested_at"].clone()).ok()?;
    let to_request = (requested - spawned).num_microseconds()? as f64 / 1000.0;
    Some(to_request + finished["weight_applied_ms"].as_f64()?)
}

/// A raw protocol client watching updates; counts the bytes it reads.
fn watcher(dir: &Path) -> std::thread::JoinHandle<u64> {
    let path = dir.join("state/control.sock");
    std::thread::spawn(move || {
        let Ok(mut s) = UnixStream::connect(path) else {
            return 0;
        };
        let _ = writeln!(s, r#"{{"protocol":1,"watch":true}}"#);
        let _ = s.set_read_timeout(Some(Duration::from_secs(12)));
        let mut reader = BufReader::new(s);
        let mut bytes = 0u64;
        let started = Instant::now();
        let mut line = String::new();
        while started.elapsed() < Duration::from_secs(10) {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes += n as u64,
            }
        }
        bytes
    })
}

/// The engine's CPU time (user + system) in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_v1, stable) = common::demo_app("v1", &[]);
    let (_v2, canary) = common::demo_app("v2", &[]);
    let listen = write_plan(dir.path(), stable, canary);
    let _load =
        common::Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(3600));

    let times: Vec<f64> = (0..rounds)
        .filter_map(|_| rollback_round(dir.path()))
        .collect();
    if !times.is_empty() {
        let (median, p99) = stats(times.clone());
        println!(
            "cutover rollback, spawn → weight 0 confirmed   n={:<3} median {median:>8.2} ms   p99 {p99:>8.2} ms",
            times.len()
        );
    }

    let engine = start_engine(dir.path());
    let pid = engine.0.id();
    let mut first_frames = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let pty = Pty::spawn(dir.path(), &["attach"], 160, 48, &[]);
        if pty
            .wait_until(PATIENCE, |s| s.contains("weight 50%"))
            .is_ok()
        {
            first_frames.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    if !first_frames.is_empty() {
        let (median, p99) = stats(first_frames.clone());
        println!(
            "cutover attach → first full frame (160×48)     n={:<3} median {median:>8.2} ms   p99 {p99:>8.2} ms",
            first_frames.len()
        );
    }

    let one = watcher(dir.path()).join().unwrap_or(0);
    println!(
        "one watching client, protocol bytes            {:>8.0} B/s (canary moving, ~100 req/s)",
        one as f64 / 10.0
    );
    let pty = Pty::spawn(dir.path(), &["attach"], 160, 48, &[]);
    let _ = pty.wait_until(PATIENCE, |s| s.contains("weight 50%"));
    let before = pty.bytes_read();
    std::thread::sleep(Duration::from_secs(10));
    println!(
        "one attached dashboard, terminal bytes 160×48  {:>8.0} B/s",
        (pty.bytes_read() - before) as f64 / 10.0
    );
    drop(pty);

    for clients in [0usize, 1, 10] {
        let watchers: Vec<_> = (0..clients).map(|_| watcher(dir.path())).collect();
        std::thread::sleep(Duration::from_millis(500));
        let cpu0 = cpu_seconds(pid);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(8));
        let share = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        for w in watchers {
            let _ = w.join();
        }
        println!(
            "engine CPU with {clients:>2} watching client(s)        {share:>7.2} % of one core"
        );
    }
    drop(engine);
}
