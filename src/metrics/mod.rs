//! Metric sources: how the analysis samples the canary and the stable track.
//!
//! The engine only sees the [`MetricSource`] trait; each source is one file.

pub mod builtin;
pub mod command;
pub mod haproxy;
pub mod prometheus;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use builtin::TrafficStats;

/// Which version a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    Stable,
    Canary,
}

/// One track's figures over the analysis window. `None` means no data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackSample {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Both tracks sampled over the same window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackPair {
    pub canary: TrackSample,
    pub stable: TrackSample,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    #[error("{source_kind} metric source: {message}")]
    Failed {
        source_kind: String,
        message: String,
    },
}

impl MetricError {
    pub fn new(source_kind: &str, message: impl Into<String>) -> Self {
        MetricError::Failed {
            source_kind: source_kind.to_string(),
            message: message.into(),
        }
    }
}

/// Samples both tracks over the last `window`.
#[async_trait]
pub trait MetricSource: Send + Sync {
    fn kind(&self) -> &'static str;
    async fn sample(&self, window: Duration) -> Result<TrackPair, MetricError>;
}

/// Builds the metric source the plan names. The builtin source needs the
/// built-in router's counts.
pub fn build(
    plan: &crate::config::SourcePlan,
    stats: Option<std::sync::Arc<TrafficStats>>,
    ctx: crate::check::CheckContext,
) -> Result<std::sync::Arc<dyn MetricSource>, MetricError> {
    use crate::config::SourcePlan;
    use std::sync::Arc;
    Ok(match plan {
        SourcePlan::Builtin => match stats {
            Some(stats) => Arc::new(builtin::BuiltinSource::new(stats)),
            None => {
                return Err(MetricError::new(
                    "builtin",
                    "the builtin metric source needs the built-in router",
                ))
            }
        },
        SourcePlan::Prometheus { queries, .. } => {
            Arc::new(prometheus::PrometheusSource::new(queries.clone()))
        }
        SourcePlan::Haproxy(target) => Arc::new(haproxy::HaproxySource::new(target.clone())),
        SourcePlan::Command { sample } => {
            Arc::new(command::CommandSource::new(sample.clone(), ctx))
        }
    })
}
