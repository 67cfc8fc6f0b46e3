//! The Prometheus source: instant queries per track over the HTTP API.
//! (Placeholder: interface only.)

use std::time::Duration;

use async_trait::async_trait;

use super::{MetricError, MetricSource, TrackPair};

pub struct PrometheusConfig {
    pub url: String,
    pub error_rate: String,
    pub p99_ms: Option<String>,
    pub p50_ms: Option<String>,
    pub requests: String,
    pub canary_version: String,
    pub stable_version: String,
}

pub struct PrometheusSource {
    cfg: PrometheusConfig,
}

impl PrometheusSource {
    pub fn new(cfg: PrometheusConfig) -> Self {
        PrometheusSource { cfg }
    }
}

#[async_trait]
impl MetricSource for PrometheusSource {
    fn kind(&self) -> &'static str {
        "prometheus"
    }
    async fn sample(&self, _window: Duration) -> Result<TrackPair, MetricError> {
        Err(MetricError::new(
            "prometheus",
            format!("{}: not built yet", self.cfg.url),
        ))
    }
}
