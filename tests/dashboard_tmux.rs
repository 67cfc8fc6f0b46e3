//! End-to-end: the real binary's dashboard inside tmux, on a plan with a manual
//! check. Keys go in with `send-keys`, the screen comes back with `capture-pane`.
//!
//! Each test has its own tmux server (`tmux -L <unique>`) and temp dir, and the
//! server is killed when the test ends, pass or fail. Without tmux the tests
//! print a SKIP line and pass, unless CUTOVER_REQUIRE_EXTERNAL=1.

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
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "cutover-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("deploy.toml"), PLAN).expect("write plan");
        let session = Session { socket, dir };
        // The pane outlives the binary so its exit status and the restored
        // screen can be read.
        let script = format!(
            "'{}' run deploy.toml; echo \"EXIT=$?\"; sleep 600",
            env!("CARGO_BIN_EXE_cutover")
        );
        session.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            "100",
            "-y",
            "30",
            "-c",
            &session.dir.path().display().to_string(),
            "-e",
            "USER=tester",
            "sh",
            "-c",
            &script,
        ]);
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
    let session = Session::start("quit");
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
