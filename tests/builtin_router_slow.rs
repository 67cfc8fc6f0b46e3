//! The built-in router against hostile clients, over real HTTP on loopback:
//! slow-header clients closed by the header-read timeout, idle keep-alive
//! connections closed, served requests never cut, normal clients served while
//! hundreds of slow ones are connected, and the connection cap, in process
//! and in the real binary under a low file-descriptor limit.
//!
//! Every server here stops when its handle is dropped, every process when its
//! guard is, also when a test fails and unwinds. Times are generous bounds on
//! "it happened at all", never measurements.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cutover::demo::app::{DemoApp, DemoAppConfig};
use cutover::router::builtin::BuiltinRouter;
use cutover::router::serve::{ConnectionLimits, ConnectionStats};
use cutover::router::Router;
use futures::stream::{self, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

const WINDOW: Duration = Duration::from_secs(60);
/// Far longer than anything here should take, even on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// The start of a request header that never ends.
const SLOW_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: slow\r\nX-a: ";

async fn app(version: &str, latency_ms: u64) -> DemoApp {
    DemoApp::start(DemoAppConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        version: version.to_string(),
        error_rate: 0.0,
        latency_ms,
        admin: None,
    })
    .await
    .expect("demo-app starts")
}

async fn router(v1: &DemoApp, v2: &DemoApp, limits: ConnectionLimits) -> BuiltinRouter {
    let r = BuiltinRouter::start_with(
        "127.0.0.1:0".parse().expect("addr"),
        v1.local_addr(),
        v2.local_addr(),
        WINDOW,
        limits,
    )
    .await
    .expect("router starts");
    r.set_weight(50).await.expect("weight");
    r
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// GETs / `n` times through `router`, 8 at a time; the statuses (0: failed).
async fn hit(addr: SocketAddr, n: usize) -> Vec<u16> {
    let c = client();
    let url = format!("http://{addr}/");
    stream::iter(0..n)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            async move {
                match c.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes().await.map_or(0, |_| status)
                    }
                    Err(_) => 0,
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// Clients that send part of a request header, then a byte at a time.
struct SlowClients {
    readers: Vec<OwnedReadHalf>,
    /// The silent ones' write halves: dropping one would send a FIN.
    _silent: Vec<OwnedWriteHalf>,
    trickle: tokio::task::JoinHandle<()>,
}

impl SlowClients {
    /// Opens `n` connections to `addr`; `silent` more open and send nothing.
    async fn start(addr: SocketAddr, n: usize, silent: usize) -> SlowClients {
        let mut readers = Vec::new();
        let mut writers: Vec<OwnedWriteHalf> = Vec::new();
        let mut quiet = Vec::new();
        for i in 0..n + silent {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (r, mut w) = stream.into_split();
            if i < n {
                // An evicted one is closed: its writes fail, ignored.
                let _ = w.write_all(SLOW_HEAD).await;
                writers.push(w);
            } else {
                quiet.push(w);
            }
            readers.push(r);
        }
        let trickle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                for w in writers.iter_mut() {
                    let _ = w.write_all(b"a").await;
                }
            }
        });
        SlowClients {
            readers,
            _silent: quiet,
            trickle,
        }
    }

    /// Waits (boundedly) for the server to close every connection; how many
    /// it closed.
    async fn closed(&mut self) -> usize {
        let mut closed = 0;
        for r in self.readers.iter_mut() {
            let mut buf = [0u8; 256];
            // End of stream or a reset; bytes would be an answer, not a close.
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(PATIENCE, r.read(&mut buf)).await {
                closed += 1;
            }
        }
        closed
    }
}

impl Drop for SlowClients {
    fn drop(&mut self) {
        self.trickle.abort();
    }
}

/// Polls the router's connection counts until `done` holds (at most PATIENCE).
async fn stats_until(
    router: &BuiltinRouter,
    done: impl Fn(&ConnectionStats) -> bool,
) -> ConnectionStats {
    let started = tokio::time::Instant::now();
    loop {
        let stats = router.connection_stats();
        if done(&stats) || started.elapsed() > PATIENCE {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn slow_header_clients_are_closed_by_the_header_read_timeout() {
    let (v1, v2) = (app("v1", 0).await, app("v2", 0).await);
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let router = router(&v1, &v2, limits).await;
    // 40 trickle a byte every 200 ms, forever; 10 never send anything.
    let mut slow = SlowClients::start(router.local_addr(), 40, 10).await;
    assert_eq!(slow.closed().await, 50, "every slow client is closed");
    let stats = stats_until(&router, |s| s.open == 0).await;
    assert_eq!(stats.header_read_timeouts, 50, "{stats:?}");
    assert_eq!(stats.idle_timeouts, 0, "{stats:?}");
    assert_eq!((stats.evicted_at_cap, stats.rejected_at_cap), (0, 0));
    assert_eq!(stats.open, 0, "{stats:?}");
    // Normal clients send their header at once and are served.
    assert!(hit(router.local_addr(), 50).await.iter().all(|s| *s == 200));
}

/// One kept-alive connection: `GET /` once, then how it ended.
async fn one_request_then_wait(addr: SocketAddr) -> (u16, bool) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get("/")
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(req).await.expect("an answer");
    let status = response.status().as_u16();
    response.into_body().collect().await.expect("body");
    // The connection stays open for more requests until the server closes it.
    let closed = tokio::time::timeout(PATIENCE, conn).await.is_ok();
    (status, closed)
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_and_served_requests_are_not_cut() {
    // The slow app answers after 2.5 s, longer than both timeouts.
    let (v1, slow_v1) = (app("v1", 0).await, app("v1", 2500).await);
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let fast = router(&v1, &v1, limits).await;
    let slow = router(&slow_v1, &slow_v1, limits).await;

    assert_eq!(one_request_then_wait(fast.local_addr()).await, (200, true));
    let stats = stats_until(&fast, |s| s.open == 0).await;
    assert_eq!(
        (stats.idle_timeouts, stats.header_read_timeouts),
        (1, 0),
        "{stats:?}"
    );

    // Busy longer than either timeout: answered whole, then closed when idle.
    assert_eq!(one_request_then_wait(slow.local_addr()).await, (200, true));
    let stats = stats_until(&slow, |s| s.open == 0).await;
    assert_eq!(
        (stats.idle_timeouts, stats.header_read_timeouts),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn normal_clients_are_served_while_hundreds_of_slow_clients_are_connected() {
    let (v1, v2) = (app("v1", 0).await, app("v2", 0).await);
    // Timeouts longer than the test: the slow clients stay connected.
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(600),
        max_connections: Some(2000),
        ..ConnectionLimits::default()
    };
    let router = router(&v1, &v2, limits).await;
    let _slow = SlowClients::start(router.local_addr(), 300, 0).await;
    let before = stats_until(&router, |s| s.reading_header >= 300).await;
    assert_eq!(before.reading_header, 300, "{before:?}");

    let statuses = hit(router.local_addr(), 1000).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 1000, "{} of 1000 served", ok);

    let after = router.connection_stats();
    assert_eq!(after.reading_header, 300, "still connected: {after:?}");
    assert_eq!((after.evicted_at_cap, after.rejected_at_cap), (0, 0));
    assert_eq!(after.header_read_timeouts, 0);
}

/// One `GET /` on a new connection closed after the answer; the status.
fn status_once(addr: SocketAddr) -> Option<u16> {
    common::get_version(addr, "/").map(|(status, _)| status)
}

#[tokio::test]
async fn at_the_cap_slow_clients_make_room_for_normal_ones() {
    let (v1, v2) = (app("v1", 0).await, app("v2", 0).await);
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(600),
        max_connections: Some(8),
        ..ConnectionLimits::default()
    };
    let router = router(&v1, &v2, limits).await;
    let mut slow = SlowClients::start(router.local_addr(), 30, 0).await;
    let stats = stats_until(&router, |s| s.evicted_at_cap >= 22).await;
    assert_eq!((stats.open, stats.evicted_at_cap), (8, 22), "{stats:?}");

    // One connection per request, each taking a slow client's place.
    let addr = router.local_addr();
    let statuses = tokio::task::spawn_blocking(move || {
        (0..100).map(|_| status_once(addr)).collect::<Vec<_>>()
    })
    .await
    .expect("requests");
    assert!(statuses.iter().all(|s| *s == Some(200)), "{statuses:?}");
    let stats = router.connection_stats();
    assert_eq!(stats.rejected_at_cap, 0, "{stats:?}");
    assert!(stats.open <= 8, "{stats:?}");
    // Every slow client was closed to make room.
    drop(router);
    assert_eq!(slow.closed().await, 30);
}

#[tokio::test]
async fn at_the_cap_with_every_connection_served_a_new_one_is_refused() {
    let (v1, v2) = (app("v1", 3000).await, app("v2", 3000).await);
    let limits = ConnectionLimits {
        max_connections: Some(2),
        ..ConnectionLimits::default()
    };
    let router = router(&v1, &v2, limits).await;
    let addr = router.local_addr();
    let served: Vec<_> = (0..2).map(|_| tokio::spawn(hit(addr, 1))).collect();
    let stats = stats_until(&router, |s| s.serving == 2).await;
    assert_eq!(stats.serving, 2, "{stats:?}");

    // A 503 if the socket took it before the close, else just the close.
    let mut third = TcpStream::connect(addr).await.expect("connect");
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, third.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503 "),
        "{answer}"
    );

    for s in served {
        assert_eq!(s.await.expect("task"), [200]);
    }
    let stats = router.connection_stats();
    assert_eq!(
        (stats.rejected_at_cap, stats.evicted_at_cap),
        (1, 0),
        "{stats:?}"
    );
}

/// `cutover run` with the built-in router, in a process allowed `nofile`
/// descriptors; the guard and where the router listens.
fn run_with_fd_limit(
    dir: &std::path::Path,
    nofile: u64,
) -> (common::ChildGuard, SocketAddr, [common::ChildGuard; 2]) {
    use std::os::unix::process::CommandExt;
    let (v1, stable) = common::demo_app("v1", &[]);
    let (v2, canary) = common::demo_app("v2", &[]);
    let listen = common::free_addr();
    std::fs::write(
        dir.join("deploy.toml"),
        format!(
            r#"[deployment]
service = "shop"
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
"#
        ),
    )
    .expect("plan");
    let err = std::fs::File::create(dir.join("cutover.stderr")).expect("stderr file");
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["run", "--headless"])
        .current_dir(dir)
        .env("USER", "tester")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err);
    // SAFETY: setrlimit(2) is async-signal-safe; nothing else runs here.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_NOFILE,
                nofile,
                nofile,
            )
            .map_err(std::io::Error::from)
        });
    }
    let run = common::ChildGuard(cmd.spawn().expect("spawn cutover"));
    common::wait_for_event(&dir.join("state"), PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 50
    });
    (run, listen, [v1, v2])
}

#[test]
fn under_a_low_fd_limit_more_slow_clients_than_descriptors_do_not_stop_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut run, listen, _apps) = run_with_fd_limit(dir.path(), 256);
    assert_eq!(status_once(listen), Some(200), "served before");

    // 400 slow clients: more than the router's 256 descriptors could hold.
    let mut slow = Vec::new();
    for _ in 0..400 {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&listen, Duration::from_secs(5)) {
            use std::io::Write;
            let _ = s.write_all(SLOW_HEAD);
            slow.push(s);
        }
    }
    assert_eq!(slow.len(), 400, "every slow client connected");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in slow.iter_mut() {
                    let _ = s.write_all(b"a");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };

    let mut served = 0;
    for _ in 0..200 {
        if status_once(listen) == Some(200) {
            served += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = trickle.join();
    let stderr = std::fs::read_to_string(dir.path().join("cutover.stderr")).unwrap_or_default();
    assert_eq!(
        served, 200,
        "normal requests served; cutover said:\n{stderr}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    assert_eq!(
        common::wait_exit(&mut run, PATIENCE).code(),
        Some(5),
        "{stderr}"
    );
}
