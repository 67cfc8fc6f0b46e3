//! The config file as written: strict serde structs with spans, before validation.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub deployment: S<RawDeployment>,
    pub artifact: Option<S<RawArtifact>>,
    pub prepare: Option<Vec<S<RawCheck>>>,
    pub checkpoint: Option<Vec<S<RawCheck>>>,
    pub deploy: Option<Vec<S<RawCheck>>>,
    pub smoke: Option<Vec<S<RawCheck>>>,
    pub verify: Option<Vec<S<RawCheck>>>,
    pub finalize: Option<Vec<S<RawCheck>>>,
    pub rollback: Option<Vec<S<RawCheck>>>,
    // Not spanned: a table made implicitly by [traffic.router] or
    // [analysis.source] cannot carry a span; `table_span` finds its header.
    pub traffic: Option<RawTraffic>,
    pub analysis: Option<RawAnalysis>,
    pub notify: Option<S<RawNotify>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub service: S<String>,
    pub version: S<String>,
    pub previous: Option<S<String>>,
    pub environment: Option<S<String>>,
    pub state_dir: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArtifact {
    pub path: S<String>,
    pub sha256: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Option<S<String>>,
    pub run: Option<S<String>>,
    pub manual: Option<S<String>>,
    pub http: Option<S<String>>,
    pub tcp: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub retries: Option<S<i64>>,
    pub retry_delay: Option<S<String>>,
    pub expect_status: Option<S<i64>>,
    pub expect_body: Option<S<String>>,
    pub optional: Option<bool>,
    pub env: Option<S<BTreeMap<String, S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pub strategy: Option<S<String>>,
    pub steps: Option<S<Vec<S<i64>>>>,
    pub bake: Option<S<String>>,
    pub approval: Option<S<String>>,
    pub on_failure: Option<S<String>>,
    pub on_disconnect: Option<S<String>>,
    pub step_deadline: Option<S<String>>,
    pub router: Option<S<RawRouter>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    pub kind: Option<S<String>>,
    pub listen: Option<S<String>>,
    pub stable: Option<S<String>>,
    pub canary: Option<S<String>>,
    pub socket: Option<S<String>>,
    pub backend: Option<S<String>>,
    pub stable_server: Option<S<String>>,
    pub canary_server: Option<S<String>>,
    pub upstream_file: Option<S<String>>,
    pub upstream: Option<S<String>>,
    pub test: Option<S<String>>,
    pub reload: Option<S<String>>,
    pub set_weight: Option<S<String>>,
    pub get_weight: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnalysis {
    pub interval: Option<S<String>>,
    pub window: Option<S<String>>,
    pub min_requests: Option<S<i64>>,
    pub failure_limit: Option<S<i64>>,
    pub max_error_rate: Option<S<f64>>,
    pub max_p99_ms: Option<S<f64>>,
    pub max_error_rate_increase: Option<S<f64>>,
    pub max_p99_ratio: Option<S<f64>>,
    pub source: Option<S<RawSource>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub kind: Option<S<String>>,
    pub url: Option<S<String>>,
    pub error_rate: Option<S<String>>,
    pub p99_ms: Option<S<String>>,
    pub p50_ms: Option<S<String>>,
    pub requests: Option<S<String>>,
    pub sample: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub webhook: S<String>,
    pub format: Option<S<String>>,
    pub secret: Option<S<String>>,
    pub events: Option<S<Vec<S<String>>>>,
}
