//! Shared helpers for tests that drive the real `cutover` binary.
#![allow(dead_code)]

pub mod etcd;
pub mod pty;
pub mod recording;
pub mod tmux;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cutover")
}

/// The account this test process runs as, as the kernel names it: the
/// operator cutover records (it does not take `$USER`'s word for it).
pub fn account() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
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

/// Starts `cutover demo-app` with an admin listener (`POST /fault`) on free
/// ports; the service and the admin address.
pub fn demo_app_with_admin(version: &str, extra: &[&str]) -> (ChildGuard, SocketAddr, SocketAddr) {
    let admin = free_addr();
    let admin_arg = admin.to_string();
    let mut args = vec!["--admin", admin_arg.as_str()];
    args.extend_from_slice(extra);
    let (guard, addr) = demo_app(version, &args);
    wait_for_port(admin);
    (guard, addr, admin)
}

/// `POST /fault` with `form` as the body; the status, or `None` when the
/// request failed.
pub fn post_fault(addr: SocketAddr, form: &str) -> Option<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "POST /fault HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
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

/// One plain HTTP/1.1 GET on a new connection: the status and the
/// `x-version` header, or `None` when the request failed.
pub fn get_version(addr: SocketAddr, path: &str) -> Option<(u16, Option<String>)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let version = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("x-version")
            .then(|| v.trim().to_string())
    });
    Some((status, version))
}

/// Sends `n` requests and counts the answers per `x-version`
/// (failed requests under "error").
pub fn version_counts(addr: SocketAddr, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let key = match get_version(addr, "/") {
            Some((_, Some(v))) => v,
            _ => "error".to_string(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Steady background requests to `addr` until dropped (and at most `limit`).
pub struct Traffic {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, usize)>>,
}

impl Traffic {
    pub fn start(addr: SocketAddr, pause: Duration, limit: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let (mut sent, mut failed) = (0, 0);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < limit {
                match get_version(addr, "/") {
                    Some((status, _)) if status < 500 => {}
                    _ => failed += 1,
                }
                sent += 1;
                std::thread::sleep(pause);
            }
            (sent, failed)
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns how many requests were sent.
    pub fn stop(mut self) -> usize {
        self.halt().0
    }

    /// Stops and returns how many requests were sent and how many failed
    /// (no answer, or a 5xx).
    pub fn stop_counting(mut self) -> (usize, usize) {
        self.halt()
    }

    fn halt(&mut self) -> (usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or((0, 0))
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Starts `cutover ARGS` in `dir` in the background, output to files in `dir`.
pub fn spawn_cutover(dir: &Path, args: &[&str]) -> ChildGuard {
    let out = std::fs::File::create(dir.join("cutover.stdout")).expect("stdout file");
    let err = std::fs::File::create(dir.join("cutover.stderr")).expect("stderr file");
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

/// The events journaled so far (complete lines only), or none yet.
pub fn journal_so_far(state_dir: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("deployments")) else {
        return Vec::new();
    };
    let Some(path) = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().and_then(|s| s.to_str()) == Some("jsonl"))
    else {
        return Vec::new();
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `f` every 50 ms until it gives a value, failing after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "gave up waiting for {what} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a background child to exit, killing it after `limit`.
pub fn wait_exit(child: &mut ChildGuard, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            return s;
        }
        if started.elapsed() > limit {
            let _ = child.0.kill();
            let _ = child.0.wait();
            panic!("process still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The path of a server binary, from PATH or /usr/sbin.
pub fn external_path(binary: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(binary))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| Path::new("/usr/sbin").join(binary))
}

/// A real HAProxy in front of two servers, `app/v1` (stable) and `app/v2`
/// (canary), with its runtime API on a unix socket at admin level.
pub struct Haproxy {
    pub child: ChildGuard,
    pub socket: PathBuf,
    pub front: SocketAddr,
    pub config: PathBuf,
}

impl Haproxy {
    pub fn start(dir: &Path, stable: SocketAddr, canary: SocketAddr) -> Haproxy {
        Haproxy::start_with(dir, stable, canary, "")
    }

    /// HAProxy whose servers are health-checked (`GET /health` every 300 ms,
    /// down after 2 failures): its own view of whether stable serves.
    pub fn start_checked(dir: &Path, stable: SocketAddr, canary: SocketAddr) -> Haproxy {
        Haproxy::start_with(dir, stable, canary, " check inter 300ms fall 2 rise 2")
    }

    fn start_with(dir: &Path, stable: SocketAddr, canary: SocketAddr, check: &str) -> Haproxy {
        let socket = dir.join("admin.sock");
        let front = free_addr();
        let config = dir.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n\
                 \x20   stats socket {sock} mode 600 level admin\n\
                 \x20   stats timeout 30s\n\
                 defaults\n\
                 \x20   mode http\n\
                 \x20   timeout connect 2s\n\
                 \x20   timeout client 10s\n\
                 \x20   timeout server 10s\n\
                 frontend web\n\
                 \x20   bind {front}\n\
                 \x20   default_backend app\n\
                 backend app\n\
                 \x20   balance roundrobin\n\
                 \x20   option httpchk GET /health\n\
                 \x20   server v1 {stable} weight 100{check}\n\
                 \x20   server v2 {canary} weight 0{check}\n",
                sock = socket.display()
            ),
        )
        .expect("write haproxy.cfg");
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("haproxy log");
        let child = Command::new(external_path("haproxy"))
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        let child = ChildGuard(child);
        wait_for_port(front);
        wait_for("the HAProxy stats socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&socket).ok()
        });
        Haproxy {
            child,
            socket,
            front,
            config,
        }
    }

    /// Sends one runtime API command and returns the reply.
    pub fn command(&self, command: &str) -> String {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).expect("stats socket");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        writeln!(s, "{command}").expect("send");
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("reply");
        reply
    }

    /// `get weight app/<server>` as a number.
    pub fn weight(&self, server: &str) -> u32 {
        let reply = self.command(&format!("get weight app/{server}"));
        reply
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("get weight app/{server}: {reply:?}"))
    }
}

/// A real nginx (master and workers as this user) proxying to the upstream
/// in `upstream.conf`, which the nginx router owns.
pub struct Nginx {
    pub child: ChildGuard,
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub upstream_file: PathBuf,
    pub front: SocketAddr,
}

impl Nginx {
    /// The test command for the router.
    pub fn test_command(&self) -> String {
        format!(
            "{} -t -q -c {} -p {}",
            external_path("nginx").display(),
            self.conf.display(),
            self.dir.display()
        )
    }

    pub fn reload_command(&self) -> String {
        format!(
            "{} -s reload -c {} -p {}",
            external_path("nginx").display(),
            self.conf.display(),
            self.dir.display()
        )
    }

    /// Starts nginx with `upstream` (an upstream file's text) already in place.
    pub fn start(dir: &Path, upstream: &str) -> Nginx {
        let front = free_addr();
        let conf = dir.join("nginx.conf");
        let upstream_file = dir.join("upstream.conf");
        std::fs::write(&upstream_file, upstream).expect("write upstream");
        // Workers of a root master drop to `nobody` unless told otherwise.
        // (The temp dir belongs to this user, so its owner says who we are.)
        let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir).expect("dir")) == 0;
        let user = if root { "user root;\n" } else { "" };
        let d = dir.display();
        std::fs::write(
            &conf,
            format!(
                "{user}daemon off;\n\
                 worker_processes 1;\n\
                 pid {d}/nginx.pid;\n\
                 error_log {d}/error.log notice;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                 \x20   access_log {d}/access.log;\n\
                 \x20   client_body_temp_path {d}/client_body;\n\
                 \x20   proxy_temp_path {d}/proxy;\n\
                 \x20   include {up};\n\
                 \x20   server {{\n\
                 \x20       listen {front};\n\
                 \x20       location / {{ proxy_pass http://app; }}\n\
                 \x20   }}\n\
                 }}\n",
                up = upstream_file.display()
            ),
        )
        .expect("write nginx.conf");
        let log = std::fs::File::create(dir.join("nginx.out")).expect("nginx log");
        let child = Command::new(external_path("nginx"))
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn nginx");
        let child = ChildGuard(child);
        wait_for_port(front);
        Nginx {
            child,
            dir: dir.to_path_buf(),
            conf,
            upstream_file,
            front,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master stops its workers on SIGQUIT/SIGTERM; a SIGKILL (the
        // child guard) would leave them running.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until the journal in `state_dir` has an event matching `pred`.
pub fn wait_for_event(
    state_dir: &Path,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for("a journal event", limit, || {
        journal_so_far(state_dir).into_iter().find(|e| pred(e))
    })
}

/// A real Prometheus scraping `targets` every second; stopped on drop.
pub struct Prometheus {
    _child: ChildGuard,
    pub url: String,
}

pub fn start_prometheus(dir: &Path, targets: &[SocketAddr]) -> Prometheus {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
    let listen = free_addr();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(external_path("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn prometheus");
    let child = ChildGuard(child);
    wait_for("Prometheus to be ready", Duration::from_secs(60), || {
        get_version(listen, "/-/ready").filter(|(s, _)| *s == 200)
    });
    Prometheus {
        _child: child,
        url: format!("http://{listen}"),
    }
}

/// Stops the engine holding `<dir>/state`'s lock (a detached run's engine
/// outlives its terminal), if any is still alive.
pub fn stop_engine(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("state/lock")) else {
        return;
    };
    let Some(pid) = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["pid"].as_i64())
    else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    // Only a cutover engine (a stale record's pid may be reused by now).
    let is_engine = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("engine"));
    if is_engine && pid.as_raw() as u32 != std::process::id() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}
