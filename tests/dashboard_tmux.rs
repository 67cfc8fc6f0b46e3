//! End-to-end: the real binary's dashboard inside tmux, on a plan with a manual
//! check. Keys go in with `send-keys`, the screen comes back with `capture-pane`.
//!
//! Each test has its own tmux server (`tmux -L <unique>`) and temp dir, and the
//! server is killed when the test ends, pass or fail. Without tmux the tests
//! print a SKIP line and pass, unless CUTOVER_REQUIRE_EXTERNAL=1.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long to wait for the screen to show something before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

const PLAN: &str = r#"[deployment]
service = "checkout"
version = "v2"
previous = "v1"
environment = "tmux"
state_dir = "state"

[[prepare]]
name = "Stakeholders notified"
manual = "Tell the team in #releases"

[[prepare]]
name = "Approval recorded"
run = "touch approved-marker && sleep 120"
"#;

/// A tmux server of our own, running `cutover run` in a temp dir; killed on drop.
struct Session {
    socket: String,
    dir: tempfile::TempDir,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        // A detached engine outlives the terminal by design: stop it too.
        common::stop_engine(self.dir.path());
    }
}

fn tmux_available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CUTOVER_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
            "tmux is required (CUTOVER_REQUIRE_EXTERNAL=1) but was not found"
        );
        eprintln!("\n*** SKIP: tmux not found; the dashboard tmux tests did not run ***\n");
    }
    found
}

impl Session {
    fn start(name: &str) -> Session {
        Session::start_with(name, PLAN)
    }

    fn start_with(name: &str, plan: &str) -> Session {
        Session::start_full(name, plan, "", (100, 30), &[])
    }

    /// `cutover run deploy.toml ARGS` (`--foreground` keeps the engine in
    /// the dashboard's process, as the hang-up and signal tests need).
    fn start_args(name: &str, plan: &str, args: &str) -> Session {
        Session::start_full(name, plan, args, (100, 30), &[])
    }

    /// `cutover run` on `plan` in a `width`×`height` terminal, with `env`
    /// (`NAME=value`) added to its environment.
    fn start_sized(name: &str, plan: &str, size: (u16, u16), env: &[&str]) -> Session {
        Session::start_full(name, plan, "", size, env)
    }

    fn start_full(
        name: &str,
        plan: &str,
        args: &str,
        (width, height): (u16, u16),
        env: &[&str],
    ) -> Session {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "cutover-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("deploy.toml"), plan).expect("write plan");
        let session = Session { socket, dir };
        // The pane outlives the binary so its exit status and the restored
        // screen can be read.
        let script = format!(
            "'{}' run deploy.toml {args}; echo \"EXIT=$?\"; sleep 600",
            env!("CARGO_BIN_EXE_cutover")
        );
        let (width, height) = (width.to_string(), height.to_string());
        let dir = session.dir.path().display().to_string();
        let mut args = vec![
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            &width,
            "-y",
            &height,
            "-c",
            &dir,
            "-e",
            "USER=tester",
        ];
        for var in env {
            args.extend(["-e", var]);
        }
        args.extend(["sh", "-c", &script]);
        session.tmux(&args);
        session
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "dash"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-t", "dash"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `ready`; fails with the last screen.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; the screen shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), |s| s.contains(text))
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[test]
fn approving_the_manual_check_moves_the_procedure_on() {
    if !tmux_available() {
        return;
    }
    let session = Session::start("approve");
    session.wait_for_text("WAITING FOR YOU");
    assert!(!session.path().join("approved-marker").exists());
    session.keys(&["a"]);
    // The next check runs only once the engine took the approval.
    let deadline = Instant::now() + PATIENCE;
    while !session.path().join("approved-marker").exists() {
        assert!(
            Instant::now() < deadline,
            "approval never reached the engine; the screen shows:\n{}",
            session.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    session.wait_for("the manual gate to clear", |s| {
        !s.contains("WAITING FOR YOU") && s.contains("Approval recorded")
    });
}

#[test]
fn question_mark_opens_the_help_and_esc_closes_it() {
    if !tmux_available() {
        return;
    }
    let session = Session::start("help");
    session.wait_for_text("WAITING FOR YOU");
    session.keys(&["?"]);
    let help = session.wait_for_text("esc or ? closes");
    assert!(
        help.contains("emergency rollback, at once, no dialog"),
        "{help}"
    );
    assert!(help.contains("shift-tab"), "{help}");
    session.keys(&["Escape"]);
    session.wait_for("the help to close", |s| !s.contains("esc or ? closes"));
}

#[test]
fn quit_mid_deployment_asks_then_holds_and_exits_with_code_5() {
    if !tmux_available() {
        return;
    }
    // In one process, quitting can only hold and stop the run.
    let session = Session::start_args("quit", PLAN, "--foreground");
    session.wait_for_text("WAITING FOR YOU");

    // "stay" keeps the dashboard running.
    session.keys(&["q"]);
    session.wait_for_text("hold traffic and exit");
    session.keys(&["s"]);
    session.wait_for("the dialog to close", |s| {
        !s.contains("hold traffic and exit") && s.contains("WAITING FOR YOU")
    });

    // "hold" records the interruption; the process leaves with SPEC code 5 and
    // the terminal is restored (the shell's line is visible again).
    session.keys(&["q"]);
    session.wait_for_text("hold traffic and exit");
    session.keys(&["h"]);
    let screen = session.wait_for_text("EXIT=5");
    assert!(!screen.contains("WAITING FOR YOU"), "{screen}");
}

#[test]
fn attached_quit_detaches_and_the_deployment_goes_on() {
    if !tmux_available() {
        return;
    }
    let session = Session::start("detach");
    session.wait_for_text("WAITING FOR YOU");
    session.keys(&["q"]);
    session.wait_for_text("hold and detach");
    session.keys(&["d"]);
    let screen = session.wait_for_text("EXIT=6");
    assert!(screen.contains("the deployment goes on"), "{screen}");
    // The engine still waits at the gate; another terminal finds it there.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["status"])
        .current_dir(session.path())
        .output()
        .expect("status");
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("waiting   for prepare check"), "{out}");
}

fn canary_plan(on_disconnect: &str) -> (String, [common::ChildGuard; 2], std::net::SocketAddr) {
    let (v1, stable) = common::demo_app("v1", &[]);
    let (v2, canary) = common::demo_app("v2", &[]);
    let listen = common::free_addr();
    let plan = format!(
        r#"[deployment]
service = "checkout"
version = "v2"
previous = "v1"
state_dir = "state"

[traffic]
steps = [10, 100]
bake = "1h"
approval = "manual"
on_disconnect = "{on_disconnect}"

[traffic.router]
kind = "builtin"
listen = "{listen}"
stable = "{stable}"
canary = "{canary}"

[analysis]
method = "threshold"
interval = "500ms"
window = "5s"
min_requests = 5
"#
    );
    (plan, [v1, v2], listen)
}

/// The pid the state dir's lock names (the running cutover).
fn lock_pid(dir: &Path) -> i32 {
    let text = std::fs::read_to_string(dir.join("state/lock")).expect("lock file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("lock holder");
    v["pid"].as_i64().expect("pid") as i32
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + PATIENCE;
    while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    {
        assert!(
            Instant::now() < deadline,
            "cutover (pid {pid}) still runs after its terminal went away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_slider_moves_the_weight_and_r_rolls_back_at_once() {
    if !tmux_available() {
        return;
    }
    let (plan, _apps, listen) = canary_plan("hold");
    let session = Session::start_with("slider", &plan);
    let state = session.path().join("state");
    common::wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 10
    });
    // The dashboard attaches to the engine it started: keys go once it shows.
    session.wait_for_text("10% canary");
    let _load = common::Traffic::start(listen, Duration::from_millis(25), Duration::from_secs(120));
    // → → moves the pending weight 10 points, enter applies it.
    session.keys(&["Right", "Right"]);
    session.wait_for_text("20%");
    session.keys(&["Enter"]);
    let applied = common::wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 20
    });
    let (_, events) = common::journal(&state);
    let asked = events
        .iter()
        .rev()
        .find(|e| e["event"] == "weight_requested" && e["weight"] == 20)
        .expect("the slider's request");
    assert_eq!(asked["source"], "operator");
    assert_eq!(asked["operator"], common::account());
    assert!(applied["elapsed_ms"].as_f64().is_some());

    session.keys(&["R"]);
    let finished = common::wait_for_event(&state, PATIENCE, |e| e["event"] == "rollback_finished");
    assert_eq!(finished["outcome"], "succeeded", "{finished}");
    let (_, events) = common::journal(&state);
    let started = events
        .iter()
        .find(|e| e["event"] == "rollback_started")
        .unwrap();
    assert_eq!(started["source"], "operator");
    let back = events
        .iter()
        .rev()
        .find(|e| e["event"] == "weight_applied")
        .unwrap();
    assert_eq!(back["weight"], 0);
    eprintln!("R to weight 0: {} ms", finished["weight_applied_ms"]);
    session.wait_for_text("ROLLED BACK");
    session.keys(&["q"]);
    session.wait_for_text("EXIT=3");
}

/// Runs a canary to its first step in tmux, then closes the terminal (kills
/// the tmux server) and waits for cutover to end; the journal it left.
fn close_the_terminal_mid_canary(on_disconnect: &str) -> Vec<serde_json::Value> {
    let (plan, _apps, listen) = canary_plan(on_disconnect);
    // A foreground run: closing its terminal is a hang-up of the engine too.
    let session = Session::start_args(&format!("hangup-{on_disconnect}"), &plan, "--foreground");
    let state = session.path().join("state");
    // Clients keep coming: a rollback is clean only once stable is seen serving.
    let _load = common::Traffic::start(listen, Duration::from_millis(20), Duration::from_secs(60));
    common::wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 10
    });
    let pid = lock_pid(session.path());
    session.tmux(&["kill-server"]);
    wait_gone(pid);
    common::journal(&state).1
}

#[test]
fn closing_the_terminal_holds_traffic_and_closes_the_journal() {
    if !tmux_available() {
        return;
    }
    let events = close_the_terminal_mid_canary("hold");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "deployment_finished");
    assert_eq!(last["outcome"], "interrupted", "{last}");
    assert!(events.iter().all(|e| e["event"] != "rollback_started"));
}

#[test]
fn closing_the_terminal_rolls_back_when_the_plan_says_so() {
    if !tmux_available() {
        return;
    }
    let events = close_the_terminal_mid_canary("rollback");
    let started = events
        .iter()
        .find(|e| e["event"] == "rollback_started")
        .expect("a rollback");
    assert_eq!(started["source"], "signal");
    assert_eq!(events.last().unwrap()["outcome"], "rolled_back");
}

#[test]
fn a_approves_the_next_step_and_p_pauses_and_resumes() {
    if !tmux_available() {
        return;
    }
    let (plan, _apps, listen) = canary_plan("hold");
    let plan = plan.replace("bake = \"1h\"", "bake = \"1s\"");
    let session = Session::start_with("step", &plan);
    let state = session.path().join("state");
    let _load = common::Traffic::start(listen, Duration::from_millis(20), Duration::from_secs(120));
    common::wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 10
    });
    // The dashboard attaches to the engine it started: keys go once it shows.
    session.wait_for_text("10% canary");

    session.keys(&["p"]);
    common::wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "paused" && e["operator"] == common::account().as_str()
    });
    // `p` toggles what the screen shows: resume once it shows paused.
    session.wait_for_text("PAUSED");
    session.keys(&["p"]);
    common::wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "resumed" && e["operator"] == common::account().as_str()
    });

    // Once the step baked, the screen asks; `a` promotes to the next step.
    session.wait_for_text("APPROVE THE NEXT STEP");
    session.keys(&["a"]);
    let approved = common::wait_for_event(&state, PATIENCE, |e| e["event"] == "approved");
    assert_eq!(approved["step"], 100);
    assert_eq!(approved["operator"], common::account());
    let done = common::wait_for_event(&state, Duration::from_secs(60), |e| {
        e["event"] == "deployment_finished"
    });
    assert_eq!(done["outcome"], "succeeded", "{done}");
    session.wait_for_text("SUCCEEDED");
    session.keys(&["q"]);
    session.wait_for_text("EXIT=0");
}

#[test]
fn sigterm_holds_traffic_and_leaves_the_dashboard_with_code_5() {
    if !tmux_available() {
        return;
    }
    let session = Session::start_args("sigterm", PLAN, "--foreground");
    session.wait_for_text("WAITING FOR YOU");
    let pid = lock_pid(session.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal cutover");
    let screen = session.wait_for_text("EXIT=5");
    assert!(
        !screen.contains("WAITING FOR YOU"),
        "the terminal was restored: {screen}"
    );
    let (_, events) = common::journal(&session.path().join("state"));
    let last = events.last().unwrap();
    assert_eq!(last["outcome"], "interrupted");
    assert!(
        last["reason"].as_str().unwrap().contains("SIGTERM"),
        "{last}"
    );
}

/// A canary held at 10% whose figures differ from stable's: canary answers
/// 20% of requests with 5xx and 30 ms late, stable neither.
fn figures_plan() -> (String, [common::ChildGuard; 2], std::net::SocketAddr) {
    let (v1, stable) = common::demo_app("v1", &[]);
    let (v2, canary) = common::demo_app("v2", &["--error-rate", "0.2", "--latency-ms", "30"]);
    let listen = common::free_addr();
    let plan = format!(
        r#"[deployment]
service = "checkout"
version = "v2"
previous = "v1"
state_dir = "state"

[traffic]
steps = [10, 100]
bake = "1h"
approval = "manual"

[traffic.router]
kind = "builtin"
listen = "{listen}"
stable = "{stable}"
canary = "{canary}"

[analysis]
method = "threshold"
interval = "3s"
window = "6s"
min_requests = 5
max_error_rate = 0.9
max_p99_ms = 5000
"#
    );
    (plan, [v1, v2], listen)
}

/// The figure after `name ` on the row of the screen labelled `label`:
/// `canary 20.5%✗` gives `20.5%`.
fn figure_on_screen(screen: &str, label: &str, name: &str) -> Option<String> {
    let row = screen
        .lines()
        .find(|l| l.contains(label) && l.contains("canary ") && l.contains("stable "))?;
    let after = row.split(&format!("{name} ")).nth(1)?;
    let figure: String = after
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '✗')
        .collect();
    Some(figure)
}

/// Reads canary's and stable's error rate and p99 off the screen and
/// compares them with the journal's latest `analysis` event, taken while the
/// journal did not move (a sample every 3 s; the screen redraws within 0.1 s).
fn figures_match_the_journal(size: (u16, u16), env: &[&str]) {
    use cutover::ui::figures::Metric;
    let (plan, _apps, listen) = figures_plan();
    let session = Session::start_sized(&format!("figures-{}x{}", size.0, size.1), &plan, size, env);
    let state = session.path().join("state");
    let _load = common::Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(120));
    // Wait for a sample with both tracks measured.
    common::wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "analysis"
            && e["canary"]["error_rate"].as_f64().is_some()
            && e["stable"]["p99_ms"].as_f64().is_some()
    });
    let latest = || {
        common::journal_so_far(&state)
            .into_iter()
            .rev()
            .find(|e| e["event"] == "analysis")
            .expect("an analysis event")
    };
    let mut compared = 0;
    let deadline = Instant::now() + PATIENCE;
    while compared < 2 {
        assert!(
            Instant::now() < deadline,
            "the journal moved under every capture"
        );
        let before = latest();
        std::thread::sleep(Duration::from_millis(600));
        let screen = session.screen();
        let after = latest();
        if before["seq"] != after["seq"] {
            continue;
        }
        for (label, metric, field) in [
            ("err", Metric::ErrorRate, "error_rate"),
            ("p99", Metric::P99, "p99_ms"),
        ] {
            for track in ["canary", "stable"] {
                let value = after[track][field].as_f64().expect("a figure");
                let want = metric.format(value);
                let got = figure_on_screen(&screen, label, track)
                    .unwrap_or_else(|| panic!("no {track} {label} row:\n{screen}"));
                assert_eq!(
                    got, want,
                    "{track} {field} at seq {}:\n{screen}",
                    after["seq"]
                );
                eprintln!(
                    "seq {}: {track} {field} {got} on screen and in the journal",
                    after["seq"]
                );
            }
        }
        // The canary is over no limit here: no ✗, and the limits are shown.
        assert!(
            screen.contains("90%") && screen.contains("5.0s"),
            "{screen}"
        );
        compared += 1;
        // Wait for the next sample before comparing again.
        common::wait_for_event(&state, PATIENCE, |e| {
            e["event"] == "analysis" && e["seq"].as_u64() > after["seq"].as_u64()
        });
    }
    session.keys(&["R"]);
    session.wait_for_text("ROLLED BACK");
}

#[test]
fn the_figures_on_screen_are_the_journals_at_80_by_24_without_colour() {
    if !tmux_available() {
        return;
    }
    figures_match_the_journal((80, 24), &["NO_COLOR=1"]);
}

#[test]
fn the_figures_on_screen_are_the_journals_at_200_by_60() {
    if !tmux_available() {
        return;
    }
    figures_match_the_journal((200, 60), &[]);
}
