//! Router benchmark: what the built-in router costs on loopback, next to
//! talking to the sample service directly.
//!
//! One run starts two sample services and a router in front of them, then
//! measures throughput over concurrent keep-alive connections, latency at a
//! paced 1,000 requests a second, and how long `set_weight` takes to apply.
//! Each figure is a median over rounds (or over many calls), and the rounds
//! of direct and routed traffic are interleaved so drift hits both alike.

use std::error::Error;
use std::net::SocketAddr;
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
use tokio::task::JoinSet;
use tokio::time::Instant;

type BoxError = Box<dyn Error + Send + Sync>;

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 3;
const THROUGHPUT_ROUND: Duration = Duration::from_secs(2);
const PACED_RPS: f64 = 1000.0;
const PACED_ROUND: Duration = Duration::from_secs(2);
const WEIGHT_CALLS: usize = 10_000;

fn main() -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

fn histogram(high: u64) -> Result<Histogram<u64>, BoxError> {
    Histogram::new_with_bounds(1, high, 3).map_err(|e| format!("histogram: {e:?}").into())
}

async fn run() -> Result<(), BoxError> {
    let started = Instant::now();
    let config = |version: &str| DemoAppConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        version: version.to_string(),
        error_rate: 0.0,
        latency_ms: 0,
    };
    let v1 = DemoApp::start(config("v1")).await?;
    let v2 = DemoApp::start(config("v2")).await?;
    let router = BuiltinRouter::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        v1.local_addr(),
        v2.local_addr(),
        Duration::from_secs(60),
    )
    .await?;
    // Both upstreams in use, as during a canary.
    router.set_weight(50).await?;
    let direct = v1.local_addr();
    let routed = router.local_addr();

    // Warm up connections, allocators and caches on both paths.
    closed_loop(direct, CONNECTIONS, Duration::from_millis(300)).await?;
    closed_loop(routed, CONNECTIONS, Duration::from_millis(300)).await?;

    let mut direct_rps = Vec::new();
    let mut routed_rps = Vec::new();
    for _ in 0..ROUNDS {
        direct_rps.push(closed_loop(direct, CONNECTIONS, THROUGHPUT_ROUND).await?);
        routed_rps.push(closed_loop(routed, CONNECTIONS, THROUGHPUT_ROUND).await?);
    }

    let mut direct_p50 = Vec::new();
    let mut direct_p99 = Vec::new();
    let mut routed_p50 = Vec::new();
    let mut routed_p99 = Vec::new();
    for _ in 0..ROUNDS {
        let h = paced(direct, PACED_RPS, PACED_ROUND).await?;
        direct_p50.push(h.value_at_quantile(0.50) as f64 / 1000.0);
        direct_p99.push(h.value_at_quantile(0.99) as f64 / 1000.0);
        let h = paced(routed, PACED_RPS, PACED_ROUND).await?;
        routed_p50.push(h.value_at_quantile(0.50) as f64 / 1000.0);
        routed_p99.push(h.value_at_quantile(0.99) as f64 / 1000.0);
    }

    let router: Arc<dyn Router> = Arc::new(router);
    let idle = time_set_weight(router.as_ref(), WEIGHT_CALLS).await?;
    // The same while the router is busy: the engine moves the weight under traffic.
    let load = tokio::spawn(closed_loop(routed, CONNECTIONS / 2, Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = time_set_weight(router.as_ref(), WEIGHT_CALLS).await?;
    load.await??;

    let (d_rps, r_rps) = (median(&mut direct_rps), median(&mut routed_rps));
    let (d50, r50) = (median(&mut direct_p50), median(&mut routed_p50));
    let (d99, r99) = (median(&mut direct_p99), median(&mut routed_p99));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "cutover router benchmark — loopback, {cores} cores shared by client, router and services"
    );
    println!(
        "medians of {ROUNDS} interleaved rounds; router at weight 50 over two sample services"
    );
    println!();
    println!("{:<44}{:>12}{:>12}{:>12}", "", "direct", "router", "change");
    println!(
        "{:<44}{:>12.0}{:>12.0}{:>11.0}%",
        format!("throughput, {CONNECTIONS} connections (req/s)"),
        d_rps,
        r_rps,
        (r_rps / d_rps - 1.0) * 100.0
    );
    println!(
        "{:<44}{:>12.3}{:>12.3}{:>+12.3}",
        format!("latency at {PACED_RPS:.0} req/s, p50 (ms)"),
        d50,
        r50,
        r50 - d50
    );
    println!(
        "{:<44}{:>12.3}{:>12.3}{:>+12.3}",
        format!("latency at {PACED_RPS:.0} req/s, p99 (ms)"),
        d99,
        r99,
        r99 - d99
    );
    println!();
    println!("set_weight(0), call to applied, {WEIGHT_CALLS} calls each:");
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
    println!("took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `connections` keep-alive connections each sending `GET /` back to back
/// for `duration`; the answered requests per second.
async fn closed_loop(
    target: SocketAddr,
    connections: usize,
    duration: Duration,
) -> Result<f64, BoxError> {
    let deadline = Instant::now() + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(async move {
            let stream = TcpStream::connect(target).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut answered = 0u64;
            while Instant::now() < deadline {
                sender.ready().await?;
                let req = Request::get("/")
                    .header("host", target.to_string())
                    .body(Empty::<Bytes>::new())?;
                let response = sender.send_request(req).await?;
                if !response.status().is_success() {
                    return Err(format!("{target} answered {}", response.status()).into());
                }
                response.into_body().collect().await?;
                answered += 1;
            }
            Ok::<u64, BoxError>(answered)
        });
    }
    let start = Instant::now();
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
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
    Ok(h)
}
