//! From the `R` byte written to the dashboard's terminal to weight 0
//! confirmed by the router: median and p99 over many presses, through the
//! real binary in a PTY. Three ways: the dashboard attached to a detached
//! engine (the default; the key crosses the control socket), `--foreground`
//! (engine in the dashboard's process), and a detached engine whose router
//! is in the middle of a slow step change (a command router sleeping 3 s)
//! when the key comes.
//!
//! Each press is a whole deployment up to its canary step. The time is the
//! key's delay until the dashboard stamped it (`rollback_started.requested_at`
//! minus the write) plus the engine's own measure from that stamp to weight 0
//! confirmed (`rollback_finished.weight_applied_ms`). `BENCH_PRESSES` sets the
//! presses per way (default 100).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pty::Pty;

const PATIENCE: Duration = Duration::from_secs(60);

fn plan_builtin(dir: &Path, stable: std::net::SocketAddr, canary: std::net::SocketAddr) {
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
window = "1s"
min_requests = 1
"#
        ),
    )
    .expect("plan");
}

fn plan_slow_step(dir: &Path) {
    let d = dir.display().to_string();
    std::fs::write(dir.join("w"), "0\n").expect("w");
    std::fs::write(
        dir.join("deploy.toml"),
        format!(
            r#"[deployment]
service = "bench"
version = "v2"
state_dir = "state"
[traffic]
steps = [10, 50, 100]
bake = "250ms"
approval = "auto"
[traffic.router]
kind = "command"
set_weight = 'echo "start $CUTOVER_WEIGHT" >> {d}/router.log; [ "$CUTOVER_WEIGHT" = 50 ] && sleep 3; echo $CUTOVER_WEIGHT > {d}/w'
get_weight = 'cat {d}/w'
[analysis]
interval = "100ms"
window = "1s"
min_requests = 1
[analysis.source]
kind = "command"
sample = 'echo "{{\"canary\": {{\"requests\": 100, \"errors\": 0}}, \"stable\": {{\"requests\": 900, \"errors\": 0}}}}"'
"#
        ),
    )
    .expect("plan");
}

/// One press; the time from the key's write to weight 0 confirmed.
fn press(dir: &Path, args: &[&str], ready: &dyn Fn(&Path) -> bool) -> Option<Duration> {
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let _ = std::fs::remove_file(dir.join("router.log"));
    let mut pty = Pty::spawn(dir, args, 100, 30, &[]);
    let started = Instant::now();
    while !ready(dir) {
        if started.elapsed() > PATIENCE {
            common::stop_engine(dir);
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // The dashboard is up once it shows the weight.
    pty.wait_until(PATIENCE, |s| s.contains("weight")).ok()?;
    let written = chrono::Utc::now();
    pty.write(b"R");
    let state = dir.join("state");
    let finished = common::wait_for_event(&state, PATIENCE, |e| e["event"] == "rollback_finished");
    let events = common::journal_so_far(&state);
    common::stop_engine(dir);
    drop(pty);
    let started = events.iter().find(|e| e["event"] == "rollback_started")?;
    let requested: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(started["requested_at"].clone()).ok()?;
    let to_stamp = (requested - written).to_std().unwrap_or_default();
    let engine_ms = finished["weight_applied_ms"].as_f64()?;
    Some(to_stamp + Duration::from_secs_f64(engine_ms / 1000.0))
}

fn report(name: &str, mut times: Vec<Duration>) {
    if times.is_empty() {
        println!("{name:<46} no presses measured");
        return;
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<46} n={:<4} median {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
        times.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
}

fn main() {
    let presses: usize = std::env::var("BENCH_PRESSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_v1, stable) = common::demo_app("v1", &[]);
    let (_v2, canary) = common::demo_app("v2", &[]);
    let at_50 = |dir: &Path| {
        common::journal_so_far(&dir.join("state"))
            .iter()
            .any(|e| e["event"] == "weight_applied" && e["weight"] == 50)
    };
    let slow_in_flight = |dir: &Path| {
        std::fs::read_to_string(dir.join("router.log")).is_ok_and(|l| l.contains("start 50"))
    };
    println!("R key byte → weight 0 confirmed by the router ({presses} presses each)");
    plan_builtin(dir.path(), stable, canary);
    let attached: Vec<_> = (0..presses)
        .filter_map(|_| press(dir.path(), &["run", "deploy.toml"], &at_50))
        .collect();
    report("built-in router, dashboard attached to engine", attached);
    let foreground: Vec<_> = (0..presses)
        .filter_map(|_| press(dir.path(), &["run", "--foreground", "deploy.toml"], &at_50))
        .collect();
    report("built-in router, --foreground", foreground);
    plan_slow_step(dir.path());
    let slow: Vec<_> = (0..presses)
        .filter_map(|_| press(dir.path(), &["run", "deploy.toml"], &slow_in_flight))
        .collect();
    report("command router mid-way through a 3 s step", slow);
}
