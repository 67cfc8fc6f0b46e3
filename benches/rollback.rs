//! Rollback benchmark: how long `set_weight(0)` takes to be applied and read
//! back through each router, side by side in one run, and the whole path
//! through the engine: from the operator's `R` (a `Command::Rollback`) to
//! weight 0 confirmed, with the journal lines written and flushed on the way.
//!
//! Each round moves the canary to 25% (not timed), then times
//! `set_weight(0)` followed by `current_weight()` reading 0. The built-in
//! router, HAProxy's runtime API and nginx (write, `nginx -t`, reload) all sit
//! in front of the same two sample services on loopback. A server binary
//! that is not installed is skipped with a note.

#[path = "../tests/common/mod.rs"]
mod common;

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use cutover::check::CheckContext;
use cutover::config::HaproxyTarget;
use cutover::demo::app::{DemoApp, DemoAppConfig};
use cutover::router::builtin::BuiltinRouter;
use cutover::router::haproxy::HaproxyRouter;
use cutover::router::nginx::{NginxConfig, NginxRouter};
use cutover::router::Router;
use tokio::time::Instant;

type BoxError = Box<dyn Error + Send + Sync>;

/// Rounds per router: nginx forks new workers at each reload, so fewer.
const FAST_ROUNDS: usize = 300;
const NGINX_ROUNDS: usize = 40;
/// Each engine round is a whole deployment up to its first canary step.
const ENGINE_ROUNDS: usize = 20;

fn main() -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// Times `rounds` rollbacks through `router`; the durations, sorted.
async fn rollbacks(router: &dyn Router, rounds: usize) -> Result<Vec<Duration>, BoxError> {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        router.set_weight(25).await?;
        let t0 = Instant::now();
        router.set_weight(0).await?;
        let read = router.current_weight().await?;
        let elapsed = t0.elapsed();
        if read != 0 {
            return Err(format!("{} read back {read}% after a rollback", router.kind()).into());
        }
        times.push(elapsed);
    }
    times.sort();
    Ok(times)
}

/// Times `rounds` operator rollbacks through the engine with the built-in
/// router: command sent → `weight_applied` 0 on disk.
async fn engine_rollbacks(
    stable: SocketAddr,
    canary: SocketAddr,
    rounds: usize,
) -> Result<Vec<Duration>, BoxError> {
    use cutover::engine::{Command, EngineOptions};
    use cutover::record::Event;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let dir = tempfile::tempdir()?;
        let text = format!(
            "[deployment]\nservice = \"bench\"\nversion = \"v2\"\nprevious = \"v1\"\nstate_dir = \"state\"\n\n\
             [traffic]\nsteps = [50, 100]\nbake = \"1h\"\napproval = \"auto\"\n\n\
             [traffic.router]\nkind = \"builtin\"\nlisten = \"127.0.0.1:0\"\nstable = \"{stable}\"\ncanary = \"{canary}\"\n\n\
             [analysis]\ninterval = \"100ms\"\nwindow = \"1s\"\nmin_requests = 1\n"
        );
        let plan = cutover::config::parse(&text, "bench.toml", dir.path(), &|_| None)
            .map_err(|e| e.to_string())?;
        let mut handle = cutover::engine::start(
            plan,
            EngineOptions::new(cutover::domain::Operator::named("bench")),
        )
        .await?;
        let mut t0 = None;
        while let Some(record) = handle.records.recv().await {
            match record.event {
                Event::WeightApplied { weight: 50, .. } => {
                    t0 = Some(Instant::now());
                    handle.commands.send(Command::rollback_now("bench")).await?;
                }
                Event::WeightApplied { weight: 0, .. } => {
                    if let Some(t0) = t0 {
                        times.push(t0.elapsed());
                    }
                }
                _ => {}
            }
        }
        handle.task.await?;
    }
    times.sort();
    Ok(times)
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn report(name: &str, what: &str, times: &[Duration]) {
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<10} {:>12} {:>12} {:>12} {:>6}   {what}",
        micros(at(0.5)),
        micros(at(0.99)),
        micros(times[times.len() - 1]),
        times.len()
    );
}

async fn run() -> Result<(), BoxError> {
    let config = |version: &str| DemoAppConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        version: version.to_string(),
        error_rate: 0.0,
        latency_ms: 0,
        admin: None,
    };
    let v1 = DemoApp::start(config("v1")).await?;
    let v2 = DemoApp::start(config("v2")).await?;
    let (stable, canary) = (v1.local_addr(), v2.local_addr());
    let dir = tempfile::tempdir()?;

    println!("rollback: set_weight(0) until current_weight() reads 0, on loopback");
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>6}   how",
        "router", "median", "p99", "max", "calls"
    );

    let builtin = BuiltinRouter::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        stable,
        canary,
        Duration::from_secs(30),
    )
    .await?;
    report(
        "builtin",
        "in-process weight, next request routed by it",
        &rollbacks(&builtin, FAST_ROUNDS).await?,
    );
    report(
        "engine",
        "R → weight 0 confirmed, built-in router, 3 journal lines fsynced",
        &engine_rollbacks(stable, canary, ENGINE_ROUNDS).await?,
    );

    let mut notes = Vec::new();
    if common::have_external("haproxy") {
        let hdir = dir.path().join("haproxy");
        std::fs::create_dir(&hdir)?;
        let h = common::Haproxy::start(&hdir, stable, canary);
        let router = HaproxyRouter::new(HaproxyTarget {
            socket: h.socket.display().to_string(),
            backend: "app".into(),
            stable_server: "v1".into(),
            canary_server: "v2".into(),
        });
        report(
            "haproxy",
            "runtime API: 2 set + 2 get commands, one connection each",
            &rollbacks(&router, FAST_ROUNDS).await?,
        );
    } else {
        notes.push("haproxy: not installed, skipped");
    }

    if common::have_external("nginx") {
        let ndir = dir.path().join("nginx");
        std::fs::create_dir(&ndir)?;
        let initial = format!(
            "# cutover canary_weight=0\nupstream app {{\n    server {stable} weight=100;\n    server {canary} down;\n}}\n"
        );
        let n = common::Nginx::start(&ndir, &initial);
        let router = NginxRouter::new(
            NginxConfig {
                upstream_file: n.upstream_file.clone(),
                upstream: "app".into(),
                stable: stable.to_string(),
                canary: canary.to_string(),
                test: n.test_command(),
                reload: n.reload_command(),
            },
            CheckContext {
                kill_grace: Duration::from_secs(1),
                ..Default::default()
            },
        );
        report(
            "nginx",
            "write + fsync + rename, nginx -t, nginx -s reload (signal sent)",
            &rollbacks(&router, NGINX_ROUNDS).await?,
        );
    } else {
        notes.push("nginx: not installed, skipped");
    }
    for n in notes {
        println!("note: {n}");
    }
    Ok(())
}
