//! The built-in metric source: the built-in router's own per-track counts.
//! (Placeholder: interface only.)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{MetricError, MetricSource, Track, TrackPair, TrackSample};

/// Per-track request, 5xx and latency counts over a sliding window.
pub struct TrafficStats {
    _window: Duration,
}

impl TrafficStats {
    pub fn new(window: Duration) -> Self {
        TrafficStats { _window: window }
    }

    /// Records one finished request.
    pub fn record(&self, _track: Track, _status: u16, _latency: Duration) {}

    /// Figures for `track` over the last `window`.
    pub fn window(&self, _track: Track, _window: Duration) -> TrackSample {
        TrackSample::default()
    }
}

pub struct BuiltinSource {
    stats: Arc<TrafficStats>,
}

impl BuiltinSource {
    pub fn new(stats: Arc<TrafficStats>) -> Self {
        BuiltinSource { stats }
    }
}

#[async_trait]
impl MetricSource for BuiltinSource {
    fn kind(&self) -> &'static str {
        "builtin"
    }
    async fn sample(&self, window: Duration) -> Result<TrackPair, MetricError> {
        Ok(TrackPair {
            canary: self.stats.window(Track::Canary, window),
            stable: self.stats.window(Track::Stable, window),
        })
    }
}
