//! The self-contained rehearsal (`cutover demo`): two versions of the sample
//! service, the built-in router and generated traffic on loopback, running the
//! example plan with its addresses replaced by free ports.

pub mod app;
pub mod load;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, CheckKind, Plan, RouterPlan};
use crate::router::builtin::BuiltinRouter;
use crate::router::serve::ConnectionLimits;
use crate::router::BuiltRouter;

/// The example plan, built in for machines without `deploy.example.toml`.
pub const EXAMPLE_PLAN: &str = include_str!("../../deploy.example.toml");

/// Requests per second the demo sends through the router. The sequential
/// judge passes a canary with no errors at all once its own 5xx (and slow)
/// rate is shown below `max_error_rate` (1 %): about 900 canary requests,
/// which a 5 % first step gets in about 45 s at this rate.
pub const DEMO_RPS: u32 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The canary starts failing half its requests.
    Error,
    /// The canary's answers slow down past the latency limit.
    Latency,
}

/// Everything the demo runs beside the engine; stopped when dropped.
pub struct Demo {
    pub plan: Plan,
    pub router: BuiltRouter,
    pub stable: app::DemoApp,
    pub canary: Arc<app::DemoApp>,
    pub load: load::LoadGenerator,
    pub router_addr: SocketAddr,
    builtin: Arc<BuiltinRouter>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.builtin.shutdown();
        self.stable.shutdown();
        self.canary.shutdown();
    }
}

/// Reads `deploy.example.toml` from the working directory, or the built-in copy.
pub fn example_plan(state_dir: &Path) -> Result<Plan, config::ConfigErrors> {
    let local = Path::new("deploy.example.toml");
    let (text, source) = match std::fs::read_to_string(local) {
        Ok(t) => (t, "deploy.example.toml".to_string()),
        Err(_) => (
            EXAMPLE_PLAN.to_string(),
            "deploy.example.toml (built in)".to_string(),
        ),
    };
    let mut plan = config::parse(&text, &source, Path::new("."), &|n| std::env::var(n).ok())?;
    plan.deployment.state_dir = state_dir.to_path_buf();
    Ok(plan)
}

/// A state dir for the demo: the one given, or a new temporary one that is kept.
pub fn state_dir(given: Option<PathBuf>) -> std::io::Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => Ok(tempfile::Builder::new()
            .prefix("cutover-demo-")
            .tempdir()?
            .keep()),
    }
}

/// Starts the services, the router and the traffic, and rewrites the plan's
/// addresses to the ports they took.
pub async fn start(mut plan: Plan) -> color_eyre::Result<Demo> {
    let Some(traffic) = plan.traffic.as_mut() else {
        color_eyre::eyre::bail!("the demo plan has no [traffic] stage");
    };
    let RouterPlan::Builtin {
        listen,
        stable,
        canary,
    } = traffic.router.clone()
    else {
        color_eyre::eyre::bail!("the demo plan must use the builtin router");
    };
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let stable_app = app::DemoApp::start(app::DemoAppConfig {
        listen: loopback,
        version: plan
            .deployment
            .previous
            .clone()
            .unwrap_or_else(|| "stable".into()),
        error_rate: 0.0,
        latency_ms: 5,
        admin: Some(loopback),
    })
    .await?;
    let canary_app = app::DemoApp::start(app::DemoAppConfig {
        listen: loopback,
        version: plan.deployment.version.clone(),
        error_rate: 0.0,
        latency_ms: 5,
        admin: Some(loopback),
    })
    .await?;
    // The services run in this process: each upstream connection costs a
    // descriptor at both ends.
    let limits = ConnectionLimits {
        fds_per_connection: 3,
        ..ConnectionLimits::default()
    };
    let builtin = Arc::new(
        BuiltinRouter::start_with(
            loopback,
            stable_app.local_addr(),
            canary_app.local_addr(),
            plan.analysis.window,
            limits,
        )
        .await?,
    );
    let router_addr = builtin.local_addr();
    let moves = [
        (listen, router_addr),
        (stable, stable_app.local_addr()),
        (canary, canary_app.local_addr()),
    ];
    traffic.router = RouterPlan::Builtin {
        listen: router_addr,
        stable: stable_app.local_addr(),
        canary: canary_app.local_addr(),
    };
    for checks in plan.checks.values_mut() {
        for c in checks.iter_mut() {
            match &mut c.kind {
                CheckKind::Http { url, display, .. } => {
                    *url = readdress(url, &moves);
                    *display = readdress(display, &moves);
                }
                CheckKind::Tcp { addr, display } => {
                    *addr = readdress(addr, &moves);
                    *display = readdress(display, &moves);
                }
                CheckKind::Run { command, .. } => *command = readdress(command, &moves),
                CheckKind::Manual { .. } | CheckKind::Artifact { .. } => {}
            }
        }
    }
    let load = load::LoadGenerator::start(router_addr, DEMO_RPS);
    Ok(Demo {
        plan,
        router: BuiltRouter {
            router: builtin.clone(),
            stats: Some(builtin.stats()),
            listen: Some(router_addr),
            connections: Some(builtin.connections()),
            group: None,
        },
        stable: stable_app,
        canary: Arc::new(canary_app),
        load,
        router_addr,
        builtin,
    })
}

fn readdress(text: &str, moves: &[(SocketAddr, SocketAddr)]) -> String {
    let mut out = text.to_string();
    for (from, to) in moves {
        out = out.replace(&from.to_string(), &to.to_string());
    }
    out
}

/// Makes the canary go bad once the router sends it the plan's second step,
/// with `POST /fault` on the canary's admin listener at `admin`.
pub fn inject_fault(
    fault: Fault,
    plan: &Plan,
    admin: SocketAddr,
    mut snapshots: tokio::sync::watch::Receiver<crate::engine::Snapshot>,
) {
    let at = plan
        .traffic
        .as_ref()
        .and_then(|t| t.steps.get(1).or(t.steps.first()).copied())
        .unwrap_or(100);
    tokio::spawn(async move {
        loop {
            let weight = snapshots
                .borrow_and_update()
                .traffic
                .as_ref()
                .map(|t| t.current_weight)
                .unwrap_or(0);
            if weight >= at {
                let (form, what) = match fault {
                    Fault::Error => ("error_rate=0.5", "fails half its requests"),
                    Fault::Latency => ("latency_ms=800", "answers 800 ms late"),
                };
                match post_fault(admin, form).await {
                    Ok(()) => {
                        tracing::warn!(target: "cutover::demo", "demo fault: the canary now {what}")
                    }
                    Err(e) => {
                        tracing::error!(target: "cutover::demo", "demo fault: POST /fault to {admin} failed: {e}")
                    }
                }
                return;
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    });
}

/// `POST /fault` with `form` to a sample service's admin listener.
async fn post_fault(admin: SocketAddr, form: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(STARTUP)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(format!("http://{admin}/fault"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = response.text().await.unwrap_or_default();
        Err(format!("{status}: {}", body.trim()))
    }
}

/// Time the demo waits for the services before it gives up.
pub const STARTUP: Duration = Duration::from_secs(5);
