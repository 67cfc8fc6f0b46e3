//! The deployment plan: the config file loaded with bounds, read table by
//! table, validated section by section with FILE:LINE:COL errors, with
//! `${env:NAME}` expanded into secrets, and the [`Plan`] the engine runs.
//!
//! - `plan`: the validated types the rest of the crate uses;
//! - `load`: reading a file or text into a plan;
//! - `raw`: the TOML as written, table by table, with spans;
//! - `validate`: one module per section (deployment, checks, traffic,
//!   router and router groups, analysis, notify, lock);
//! - `limits`: the bounds every value keeps so that `run` can honour what
//!   `check` accepts;
//! - `error`: located, printable errors;
//! - `describe`: the plan as `cutover check` prints it.

mod describe;
mod error;
pub mod limits;
mod load;
mod plan;
mod raw;
mod validate;

pub use error::{line_col, ConfigError, ConfigErrors};
pub use limits::parse_duration;
pub use load::{load, parse, parse_bytes, MAX_CONFIG_BYTES};
pub use plan::{
    redact, AnalysisPlan, CheckKind, CheckSpec, Deployment, EtcdLock, GroupMember, HaproxyTarget,
    LockPlan, Method, NginxConfig, NotifyFormat, NotifyPlan, OperatorsPlan, Plan, PrometheusConfig,
    RouterKind, RouterPlan, SourceKind, SourcePlan, StageKey, TrafficPlan, NOTIFY_EVENTS,
};

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod invariants;
#[cfg(test)]
mod testing;
