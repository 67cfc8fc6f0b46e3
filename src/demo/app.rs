//! The sample service of SPEC §6 (`cutover demo-app`).
//! (Placeholder: interface only.)

use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct DemoAppConfig {
    pub listen: SocketAddr,
    pub version: String,
    pub error_rate: f64,
    pub latency_ms: u64,
}

/// A running sample service; stops when dropped or on `shutdown`.
pub struct DemoApp {
    local_addr: SocketAddr,
}

impl DemoApp {
    /// Binds `cfg.listen` (port 0 picks a free port) and serves until shut down.
    pub async fn start(cfg: DemoAppConfig) -> std::io::Result<DemoApp> {
        Ok(DemoApp {
            local_addr: cfg.listen,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Changes behaviour while running (what `POST /fault` does).
    pub fn set_fault(&self, _error_rate: Option<f64>, _latency_ms: Option<u64>) {}

    pub fn shutdown(&self) {}
}

/// Serves until ctrl-c or SIGTERM.
pub async fn serve_forever(cfg: DemoAppConfig) -> std::io::Result<()> {
    let _app = DemoApp::start(cfg).await?;
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}
