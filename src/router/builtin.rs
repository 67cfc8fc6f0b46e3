//! The built-in router: an HTTP/1.1 reverse proxy that splits requests by weight
//! and counts each track's requests, 5xx and latency.
//! (Placeholder: interface only.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Router, RouterError};
use crate::metrics::TrafficStats;

pub struct BuiltinRouter {
    stats: Arc<TrafficStats>,
    local_addr: SocketAddr,
}

impl BuiltinRouter {
    /// Binds `listen` (port 0 picks a free port) and starts proxying to `stable`
    /// and `canary` with weight 0. Counts are kept over at least `window`.
    pub async fn start(
        listen: SocketAddr,
        stable: SocketAddr,
        canary: SocketAddr,
        window: Duration,
    ) -> std::io::Result<Self> {
        let _ = (stable, canary);
        Ok(BuiltinRouter {
            stats: Arc::new(TrafficStats::new(window)),
            local_addr: listen,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> Arc<TrafficStats> {
        self.stats.clone()
    }

    /// Stops accepting connections.
    pub fn shutdown(&self) {}
}

#[async_trait]
impl Router for BuiltinRouter {
    fn kind(&self) -> &'static str {
        "builtin"
    }
    async fn set_weight(&self, _weight: u8) -> Result<(), RouterError> {
        Err(RouterError::new("builtin", "not built yet"))
    }
    async fn current_weight(&self) -> Result<u8, RouterError> {
        Ok(0)
    }
}
