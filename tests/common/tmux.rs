//! tmux for the real binary in a real terminal: a server of our own per
//! test (`tmux -L <unique>`), windows running commands in a directory, keys
//! in with `send-keys`, screens out with `capture-pane`; the server is
//! killed when dropped, pass or fail.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether tmux is here; missing, it says so loudly (and fails under
/// CUTOVER_REQUIRE_EXTERNAL=1).
pub fn available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CUTOVER_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
            "tmux is required (CUTOVER_REQUIRE_EXTERNAL=1) but was not found"
        );
        eprintln!("\n*** SKIPPED: tmux not found; these terminal tests did not run ***\n");
    }
    found
}

pub struct Tmux {
    socket: String,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

impl Tmux {
    pub fn new(name: &str) -> Tmux {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Tmux {
            socket: format!(
                "cutover-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
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

    /// A session `name` (100×30) running `script` (sh) in `dir`; the pane
    /// stays after the script so its last lines can be read.
    pub fn session(&self, name: &str, dir: &Path, script: &str) {
        let script = format!("{script}; echo \"EXIT=$?\"; sleep 600");
        self.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "100",
            "-y",
            "30",
            "-c",
            &dir.display().to_string(),
            "sh",
            "-c",
            &script,
        ]);
    }

    pub fn keys(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    pub fn screen(&self, session: &str) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded) until `session`'s screen contains `text`.
    pub fn wait_for_text(&self, session: &str, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen(session);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {text:?} in {session}; the screen shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill_session(&self, session: &str) {
        self.run(&["kill-session", "-t", session]);
    }
}
