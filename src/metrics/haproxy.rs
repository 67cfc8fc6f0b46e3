//! The HAProxy source: per-server request and 5xx counts from `show stat`.
//! (Placeholder: interface only.)

use std::time::Duration;

use async_trait::async_trait;

use super::{MetricError, MetricSource, TrackPair};
use crate::config::HaproxyTarget;

pub struct HaproxySource {
    target: HaproxyTarget,
}

impl HaproxySource {
    pub fn new(target: HaproxyTarget) -> Self {
        HaproxySource { target }
    }
}

#[async_trait]
impl MetricSource for HaproxySource {
    fn kind(&self) -> &'static str {
        "haproxy"
    }
    async fn sample(&self, _window: Duration) -> Result<TrackPair, MetricError> {
        Err(MetricError::new(
            "haproxy",
            format!("{}: not built yet", self.target.socket),
        ))
    }
}
