//! Router benchmark: the built-in router next to HAProxy and nginx, and next
//! to talking to the sample service directly, all on loopback.
//!
//! One run starts two sample services and, in front of them, the built-in
//! router, HAProxy and nginx, each a 2-server weighted proxy at 50/50. Every
//! target gets the same load from the same client: `CONNECTIONS` keep-alive
//! connections sending `GET /` back to back for `ROUND` (throughput and the
//! latency of each request under that load), then `GET /` paced at
//! `PACED_RPS` (latency at a moderate rate). Rounds of all targets are
//! interleaved so drift hits them alike; each figure is a median over rounds.
//! The client, the services and the built-in router each run on their own
//! 2-thread runtime, so the kernel schedules them as it does HAProxy's and
//! nginx's processes. Beside the rates, the CPU time each router spends per
//! request in the closed loop (its threads' or processes' time on CPU, from
//! `/proc/…/schedstat`), which other work on the machine disturbs far less
//! than throughput. A server binary that is not installed is skipped with a
//! note. Last, how long `set_weight` takes to apply, idle and under load.

#[path = "../tests/common/mod.rs"]
mod common;

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cutover::demo::app::{DemoApp, DemoAppConfig};
use cutover::router::builtin::BuiltinRouter;
use cutover::router::Router;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tokio::time::Instant;

type BoxError = Box<dyn Error + Send + Sync>;

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_secs(2);
const PACED_RPS: f64 = 1000.0;
const WEIGHT_CALLS: usize = 10_000;
/// The canary's share on every router, in percent.
const WEIGHT: u8 = 50;

fn runtime(name: &str) -> Result<Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()?)
}

fn histogram(high: u64) -> Result<Histogram<u64>, BoxError> {
    Histogram::new_with_bounds(1, high, 3).map_err(|e| format!("histogram: {e:?}").into())
}

/// Whose CPU time counts as a target's.
#[derive(Clone, Copy)]
enum Cpu {
    /// Not measured (the services themselves).
    None,
    /// This process's threads named "router" (the built-in router's runtime).
    RouterThreads,
    /// A process and its children (HAProxy; nginx's master and workers).
    Process(u32),
}

impl Cpu {
    /// Nanoseconds on CPU so far, summed over the threads.
    fn ns(self) -> Option<u64> {
        let tasks = match self {
            Cpu::None => return None,
            Cpu::RouterThreads => threads(std::process::id())
                .into_iter()
                .filter(|(_, tid)| {
                    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                        .is_ok_and(|c| c.starts_with("router"))
                })
                .collect(),
            Cpu::Process(pid) => {
                let mut pids = vec![pid];
                if let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
                    pids.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
                }
                pids.into_iter().flat_map(threads).collect::<Vec<_>>()
            }
        };
        let total = tasks
            .iter()
            .filter_map(|(pid, tid)| {
                let stat =
                    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
                stat.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum();
        Some(total)
    }
}

/// (pid, tid) of every thread of `pid`.
fn threads(pid: u32) -> Vec<(u32, u32)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .map(|tid| (pid, tid))
                .collect()
        })
        .unwrap_or_default()
}

/// One thing the client sends load to.
struct Target {
    name: String,
    addr: SocketAddr,
    /// Whether it splits between the two services (a router).
    routed: bool,
    cpu: Cpu,
    /// CPU µs per request in the closed loop, per round.
    cpu_us: Vec<f64>,
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    paced_p50: Vec<f64>,
    paced_p99: Vec<f64>,
    canary_share: Vec<f64>,
}

impl Target {
    fn new(name: &str, addr: SocketAddr, routed: bool, cpu: Cpu) -> Self {
        Target {
            name: name.to_string(),
            addr,
            routed,
            cpu,
            cpu_us: Vec::new(),
            rps: Vec::new(),
            p50: Vec::new(),
            p99: Vec::new(),
            paced_p50: Vec::new(),
            paced_p99: Vec::new(),
            canary_share: Vec::new(),
        }
    }
}

fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let services = runtime("services")?;
    let routers = runtime("router")?;
    let client = runtime("client")?;

    let config = |version: &str| DemoAppConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        version: version.to_string(),
        error_rate: 0.0,
        latency_ms: 0,
        admin: None,
    };
    let v1 = services.block_on(DemoApp::start(config("v1")))?;
    let v2 = services.block_on(DemoApp::start(config("v2")))?;
    let (stable, canary) = (v1.local_addr(), v2.local_addr());

    let router = routers.block_on(BuiltinRouter::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        stable,
        canary,
        Duration::from_secs(60),
    ))?;
    routers.block_on(router.set_weight(WEIGHT))?;

    let dir = tempfile::tempdir()?;
    let mut targets = vec![
        Target::new("direct to v1", stable, false, Cpu::None),
        Target::new(
            "built-in router",
            router.local_addr(),
            true,
            Cpu::RouterThreads,
        ),
    ];
    let haproxy = if common::have_external("haproxy") {
        let h = start_haproxy(&dir.path().join("haproxy"), stable, canary)?;
        targets.push(Target::new(
            "HAProxy",
            h.front,
            true,
            Cpu::Process(h.child.0.id()),
        ));
        Some(h)
    } else {
        None
    };
    let nginx = if common::have_external("nginx") {
        let n = start_nginx(&dir.path().join("nginx"), stable, canary)?;
        targets.push(Target::new(
            "nginx",
            n.front,
            true,
            Cpu::Process(n.child.0.id()),
        ));
        Some(n)
    } else {
        None
    };

    client.block_on(measure(&mut targets))?;

    let router: Arc<dyn Router> = Arc::new(router);
    let idle = routers.block_on(time_set_weight(router.as_ref(), WEIGHT_CALLS))?;
    // The same while the router is busy: the engine moves the weight under traffic.
    let routed = targets[1].addr;
    let load = client.spawn(closed_loop(routed, CONNECTIONS / 2, Duration::from_secs(2)));
    std::thread::sleep(Duration::from_millis(200));
    let busy = routers.block_on(time_set_weight(router.as_ref(), WEIGHT_CALLS))?;
    client.block_on(load)??;

    report(&mut targets, &idle, &busy);
    println!("took {:.1} s", started.elapsed().as_secs_f64());
    drop((haproxy, nginx));
    Ok(())
}

async fn measure(targets: &mut [Target]) -> Result<(), BoxError> {
    // Warm up connections, allocators and caches on every path.
    for t in targets.iter() {
        closed_loop(t.addr, CONNECTIONS, Duration::from_millis(300)).await?;
    }
    for _ in 0..ROUNDS {
        for t in targets.iter_mut() {
            let cpu_before = t.cpu.ns();
            let run = closed_loop(t.addr, CONNECTIONS, ROUND).await?;
            if let (Some(before), Some(after)) = (cpu_before, t.cpu.ns()) {
                t.cpu_us
                    .push((after - before) as f64 / 1000.0 / run.answered as f64);
            }
            t.rps.push(run.rps);
            t.p50
                .push(run.latency.value_at_quantile(0.50) as f64 / 1000.0);
            t.p99
                .push(run.latency.value_at_quantile(0.99) as f64 / 1000.0);
            t.canary_share.push(run.canary as f64 / run.answered as f64);
        }
    }
    for _ in 0..ROUNDS {
        for t in targets.iter_mut() {
            let h = paced(t.addr, PACED_RPS, ROUND).await?;
            t.paced_p50.push(h.value_at_quantile(0.50) as f64 / 1000.0);
            t.paced_p99.push(h.value_at_quantile(0.99) as f64 / 1000.0);
        }
    }
    Ok(())
}

fn report(targets: &mut [Target], idle: &Histogram<u64>, busy: &Histogram<u64>) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "cutover router benchmark — loopback, {cores} cores shared by client, routers and services"
    );
    println!(
        "medians of {ROUNDS} interleaved rounds of {} s; routers at weight {WEIGHT} over two sample services",
        ROUND.as_secs()
    );
    println!();
    println!(
        "{:<18}{:>45}{:>26}{:>10}",
        "",
        format!("closed loop, {CONNECTIONS} connections"),
        format!("paced {PACED_RPS:.0} req/s"),
        "canary"
    );
    println!(
        "{:<18}{:>12}{:>11}{:>11}{:>11}{:>13}{:>13}{:>10}",
        "", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "p50 ms", "p99 ms", "share"
    );
    let mut rows = Vec::new();
    for t in targets.iter_mut() {
        let row = [
            median(&mut t.rps),
            median(&mut t.p50),
            median(&mut t.p99),
            median(&mut t.paced_p50),
            median(&mut t.paced_p99),
            median(&mut t.canary_share),
            median(&mut t.cpu_us),
        ];
        let share = if t.routed {
            format!("{:.0}%", row[5] * 100.0)
        } else {
            "-".to_string()
        };
        let cpu = if row[6].is_nan() {
            "-".to_string()
        } else {
            format!("{:.1}", row[6])
        };
        println!(
            "{:<18}{:>12.0}{:>11.3}{:>11.3}{:>11}{:>13.3}{:>13.3}{:>10}",
            t.name, row[0], row[1], row[2], cpu, row[3], row[4], share
        );
        rows.push((t.name.clone(), row));
    }
    let builtin = rows.iter().find(|(n, _)| n == "built-in router");
    println!();
    for other in ["HAProxy", "nginx"] {
        let (Some((_, b)), Some((_, o))) = (builtin, rows.iter().find(|(n, _)| n == other)) else {
            continue;
        };
        println!(
            "{:<18}{:>11.2}×{:>10.2}×{:>10.2}×{:>10.2}×{:>12.2}×{:>12.2}×",
            format!("built-in / {other}"),
            b[0] / o[0],
            b[1] / o[1],
            b[2] / o[2],
            b[6] / o[6],
            b[3] / o[3],
            b[4] / o[4]
        );
    }
    println!();
    println!("set_weight(0) on the built-in router, call to applied, {WEIGHT_CALLS} calls each:");
    println!(
        "  router idle   median {:>8} ns   p99 {:>8} ns",
        idle.value_at_quantile(0.5),
        idle.value_at_quantile(0.99)
    );
    println!(
        "  router busy   median {:>8} ns   p99 {:>8} ns",
        busy.value_at_quantile(0.5),
        busy.value_at_quantile(0.99)
    );
    println!();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What one closed-loop run saw.
struct ClosedLoop {
    rps: f64,
    answered: u64,
    /// Answers from the canary (`x-version: v2`).
    canary: u64,
    /// Per request, µs from the send to the whole body.
    latency: Histogram<u64>,
}

/// `connections` keep-alive connections each sending `GET /` back to back
/// for `duration`; every answer must be a 2xx.
async fn closed_loop(
    target: SocketAddr,
    connections: usize,
    duration: Duration,
) -> Result<ClosedLoop, BoxError> {
    let deadline = Instant::now() + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(async move {
            let stream = TcpStream::connect(target).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latency = histogram(60_000_000)?;
            let mut canary = 0u64;
            while Instant::now() < deadline {
                sender.ready().await?;
                let req = Request::get("/")
                    .header("host", target.to_string())
                    .body(Empty::<Bytes>::new())?;
                let sent = Instant::now();
                let response = sender.send_request(req).await?;
                if !response.status().is_success() {
                    return Err(format!("{target} answered {}", response.status()).into());
                }
                if response.headers().get("x-version").map(|v| v.as_bytes()) == Some(b"v2") {
                    canary += 1;
                }
                response.into_body().collect().await?;
                latency.saturating_record(sent.elapsed().as_micros().max(1) as u64);
            }
            Ok::<_, BoxError>((latency, canary))
        });
    }
    let start = Instant::now();
    let mut latency = histogram(60_000_000)?;
    let mut canary = 0;
    while let Some(done) = tasks.join_next().await {
        let (h, c) = done??;
        latency.add(&h).map_err(|e| format!("histogram: {e:?}"))?;
        canary += c;
    }
    let answered = latency.len();
    Ok(ClosedLoop {
        rps: answered as f64 / start.elapsed().as_secs_f64(),
        answered,
        canary,
        latency,
    })
}

/// `GET /` at `rps` evenly paced for `duration`, open loop (a request is sent
/// on time whether or not earlier ones have answered); latency in µs from
/// the send to the whole body.
async fn paced(
    target: SocketAddr,
    rps: f64,
    duration: Duration,
) -> Result<Histogram<u64>, BoxError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let uri: hyper::Uri = format!("http://{target}/").parse()?;
    let total = (rps * duration.as_secs_f64()) as u64;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rps)).await;
        let request = client.get(uri.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let response = request.await?;
            if !response.status().is_success() {
                return Err(format!("{target} answered {}", response.status()).into());
            }
            response.into_body().collect().await?;
            Ok::<Duration, BoxError>(sent.elapsed())
        });
    }
    let mut h = histogram(60_000_000)?;
    while let Some(done) = tasks.join_next().await {
        let took = done??;
        h.saturating_record(took.as_micros().max(1) as u64);
    }
    Ok(h)
}

/// Times `set_weight(0)` from the call to its return (when the weight holds),
/// each after an untimed `set_weight(50)`; checks it really applied.
async fn time_set_weight(router: &dyn Router, calls: usize) -> Result<Histogram<u64>, BoxError> {
    let mut h = histogram(10_000_000_000)?;
    for _ in 0..calls {
        router.set_weight(50).await?;
        let start = std::time::Instant::now();
        router.set_weight(0).await?;
        let took = start.elapsed();
        h.saturating_record(took.as_nanos().max(1) as u64);
        if router.current_weight().await? != 0 {
            return Err("set_weight(0) returned before the weight applied".into());
        }
    }
    router.set_weight(WEIGHT).await?;
    Ok(h)
}

/// A proxy process in its own directory; stopped on drop.
struct External {
    child: common::ChildGuard,
    front: SocketAddr,
}

impl Drop for External {
    fn drop(&mut self) {
        // nginx's master stops its workers on SIGTERM; a SIGKILL (the child
        // guard) would leave them running. HAProxy stops on it as well.
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

fn spawn(binary: &str, args: &[&str], dir: &Path, front: SocketAddr) -> Result<External, BoxError> {
    let log = std::fs::File::create(dir.join("out.log"))?;
    let child = Command::new(common::external_path(binary))
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let child = common::ChildGuard(child);
    common::wait_for_port(front);
    Ok(External { child, front })
}

/// HAProxy with its defaults (a thread per core, server connections reused),
/// round robin over the two services at equal weights.
fn start_haproxy(dir: &Path, stable: SocketAddr, canary: SocketAddr) -> Result<External, BoxError> {
    std::fs::create_dir_all(dir)?;
    let front = common::free_addr();
    let config = dir.join("haproxy.cfg");
    let canary_weight = u32::from(WEIGHT);
    let stable_weight = 100 - canary_weight;
    std::fs::write(
        &config,
        format!(
            "global\n\
             \x20   maxconn 4096\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 2s\n\
             \x20   timeout client 30s\n\
             \x20   timeout server 30s\n\
             frontend web\n\
             \x20   bind {front}\n\
             \x20   default_backend app\n\
             backend app\n\
             \x20   balance roundrobin\n\
             \x20   server v1 {stable} weight {stable_weight}\n\
             \x20   server v2 {canary} weight {canary_weight}\n"
        ),
    )?;
    let config = config.display().to_string();
    spawn("haproxy", &["-f", &config, "-db"], dir, front)
}

/// nginx with a worker per core, kept-alive connections to the services and
/// no access log (HAProxy logs nothing here either); keep-alive without a
/// request limit on both sides, like the other routers.
fn start_nginx(dir: &Path, stable: SocketAddr, canary: SocketAddr) -> Result<External, BoxError> {
    std::fs::create_dir_all(dir)?;
    let front = common::free_addr();
    let conf = dir.join("nginx.conf");
    // Workers of a root master drop to `nobody` unless told otherwise.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir)?) == 0;
    let user = if root { "user root;\n" } else { "" };
    let d = dir.display();
    let canary_weight = u32::from(WEIGHT);
    let stable_weight = 100 - canary_weight;
    std::fs::write(
        &conf,
        format!(
            "{user}daemon off;\n\
             worker_processes auto;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   keepalive_requests 100000000;\n\
             \x20   client_body_temp_path {d}/client_body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             \x20   upstream app {{\n\
             \x20       server {stable} weight={stable_weight};\n\
             \x20       server {canary} weight={canary_weight};\n\
             \x20       keepalive 64;\n\
             \x20       keepalive_requests 100000000;\n\
             \x20   }}\n\
             \x20   server {{\n\
             \x20       listen {front};\n\
             \x20       location / {{\n\
             \x20           proxy_pass http://app;\n\
             \x20           proxy_http_version 1.1;\n\
             \x20           proxy_set_header Connection \"\";\n\
             \x20       }}\n\
             \x20   }}\n\
             }}\n"
        ),
    )?;
    let conf = conf.display().to_string();
    let prefix = d.to_string();
    spawn("nginx", &["-c", &conf, "-p", &prefix], dir, front)
}
