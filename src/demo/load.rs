//! Steady generated traffic for the demo.
//! (Placeholder: interface only.)

use std::net::SocketAddr;

/// Sends about `rps` GET / requests a second to `target` until dropped.
pub struct LoadGenerator {}

impl LoadGenerator {
    pub fn start(target: SocketAddr, rps: u32) -> LoadGenerator {
        let _ = (target, rps);
        LoadGenerator {}
    }

    /// Requests sent and answers received so far, by status class.
    pub fn counts(&self) -> LoadCounts {
        LoadCounts::default()
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoadCounts {
    pub sent: u64,
    pub ok: u64,
    pub server_errors: u64,
    pub failed: u64,
}
