//! Shared helpers for tests that drive the real `cutover` binary.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cutover")
}

/// A free loopback port (bound, then released).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Runs `cutover ARGS` in `dir` with no stdin, waiting at most `limit`.
pub fn cutover(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("SSH_CONNECTION")
        .env("USER", "tester")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cutover");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cutover {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one journal a state dir holds, as JSON values.
pub fn journal(state_dir: &Path) -> (PathBuf, Vec<serde_json::Value>) {
    let dir = state_dir.join("deployments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no journal dir {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|s| s.to_str()) == Some("jsonl"))
        .collect();
    files.sort();
    let path = files.pop().expect("a journal");
    let events = std::fs::read_to_string(&path)
        .expect("read journal")
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
        .collect();
    (path, events)
}

pub fn events_named<'a>(events: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// A child process killed when the guard drops (also when a test fails).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cutover demo-app` on a free port and waits until it answers.
pub fn demo_app(version: &str, extra: &[&str]) -> (ChildGuard, SocketAddr) {
    let addr = free_addr();
    let child = Command::new(bin())
        .args([
            "demo-app",
            "--listen",
            &addr.to_string(),
            "--version",
            version,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo-app");
    let guard = ChildGuard(child);
    wait_for_port(addr);
    (guard, addr)
}

pub fn wait_for_port(addr: SocketAddr) {
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{addr} never opened"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Whether an external server binary can be used; when it is missing, says so
/// loudly, and fails under CUTOVER_REQUIRE_EXTERNAL=1.
pub fn have_external(binary: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(binary).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(binary).is_file();
    if !found {
        if std::env::var("CUTOVER_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!("{binary} is required (CUTOVER_REQUIRE_EXTERNAL=1) but not installed");
        }
        eprintln!("\n*** SKIPPED: {binary} is not installed; install it (see .ci/run) to run this test ***\n");
    }
    found
}

/// A minimal HTTP/1.1 GET over a fresh connection: (status, x-version header).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Option<String>)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let version = text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-version")
            .then(|| v.trim().to_string())
    });
    Ok((status, version))
}

/// Steady requests to `addr` from a thread, about `rps` a second, until dropped
/// (bounded to `limit` in any case).
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Load {
    pub fn start(addr: SocketAddr, rps: u32, limit: Duration) -> Load {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let gap = Duration::from_secs_f64(1.0 / rps.max(1) as f64);
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) && started.elapsed() < limit {
                let _ = http_get(addr, "/");
                sent += 1;
                let due = gap * sent as u32;
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            sent
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `cutover ARGS` in the background (stdout and stderr to files in `dir`).
pub fn spawn_cutover(dir: &Path, args: &[&str]) -> ChildGuard {
    let out = std::fs::File::create(dir.join("cutover.out")).expect("out file");
    let err = std::fs::File::create(dir.join("cutover.err")).expect("err file");
    let child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("SSH_CONNECTION")
        .env("USER", "tester")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn cutover");
    ChildGuard(child)
}

/// Waits until the journal in `state_dir` has an event matching `pred`.
pub fn wait_for_event(
    state_dir: &Path,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        if state_dir.join("deployments").exists() {
            let (_, events) = journal(state_dir);
            if let Some(e) = events.iter().find(|e| pred(e)) {
                return e.clone();
            }
        }
        assert!(started.elapsed() < limit, "no such event within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a child to exit, at most `limit`.
pub fn wait_exit(child: &mut ChildGuard, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            return s.code();
        }
        assert!(started.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
