//! Metric sources: how the analysis samples the canary and the stable track.
//!
//! The engine only sees the [`MetricSource`] trait; each source is one file.

pub mod builtin;
pub mod command;
pub mod haproxy;
pub mod prometheus;

pub use crate::domain::{Track, TrackPair, TrackSample};
use std::time::Duration;

use async_trait::async_trait;

pub use builtin::TrafficStats;

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
    slow_ms: u64,
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
            Arc::new(prometheus::PrometheusSource::new((**queries).clone()))
        }
        SourcePlan::Haproxy(targets) => Arc::new(haproxy::HaproxySource::summing(targets.clone())),
        SourcePlan::Command { sample } => {
            Arc::new(command::CommandSource::new(sample.clone(), ctx, slow_ms))
        }
    })
}
