//! The judge: anytime-valid sequential comparison of canary and stable on event
//! counts (5xx responses, requests slower than `slow_ms`), with a bounded chance
//! of ever rolling back a canary that is no worse than stable.
//!
//! Everything here is pure: no I/O, no clock. A test is a function of the
//! sequence of cumulative counts it was given, so a journal that carries those
//! counts can recompute every verdict (`sequential::replay`).
//!
//! - `sequential`: the e-processes toward "fail" and "pass", the confidence
//!   interval for the canary/stable rate ratio, "≈ N more requests to decide".
//! - `rule`: the pass rule (what a pass may honestly claim) and an
//!   anytime-valid bound on the canary's own event rate.
//! - `kinds`: the engine's judge: one test per event kind at `alpha / kinds`,
//!   the combined verdict, the journal's record of each reading and its replay.
//! - `recovery`: after a rollback, stable now against stable before the first step.
//! - `sim`: a seeded simulation of request streams, for tests and `benches/judge.rs`.
//!
//! The method, its assumptions and the simulation's table are in `docs/analysis.md`.

pub mod kinds;
pub mod recovery;
pub mod rule;
pub mod sequential;
pub mod sim;

use serde::{Deserialize, Serialize};

pub use recovery::{Recovery, RecoveryError};
pub use rule::{canary_rate_upper, verdict, PassBasis, PassPolicy, Verdict};
pub use sequential::{replay, Decision, Evidence, Reading, SequentialTest};

/// One track's cumulative counters since some origin (the source's own start,
/// usually): requests served and, of those, events (5xx responses, or requests
/// slower than `slow_ms`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackCounts {
    /// Requests counted, cumulative.
    pub requests: u64,
    /// Events counted among those requests, cumulative.
    pub events: u64,
}

impl TrackCounts {
    /// Counts from `requests` and `events`.
    pub const fn new(requests: u64, events: u64) -> TrackCounts {
        TrackCounts { requests, events }
    }
}

/// Cumulative counters of both tracks read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// The new version's track.
    pub canary: TrackCounts,
    /// The running version's track (or, for `Recovery`, stable before the first step).
    pub stable: TrackCounts,
}

/// Which track a count belongs to, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    /// The new version.
    Canary,
    /// The running version.
    Stable,
}

impl std::fmt::Display for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Track::Canary => "canary",
            Track::Stable => "stable",
        })
    }
}

/// What an event is. Both kinds are judged by the same test, each with its own
/// `SequentialTest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A response with a 5xx status.
    Errors,
    /// A request slower than `slow_ms`.
    Slow,
}

/// A reading that cannot be evidence. The test's state is left unchanged, so
/// the next valid reading covers the skipped interval too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// A cumulative counter went down: a counter reset (a restarted process, a
    /// re-created target) or a source that reports something else than counts.
    #[error("{track} {what} went down from {from} to {to}: a counter reset, not evidence")]
    CounterDecreased {
        /// The track whose counter went down.
        track: Track,
        /// `"requests"` or `"events"`.
        what: &'static str,
        /// The last accepted value.
        from: u64,
        /// The value read now.
        to: u64,
    },
    /// More events than requests in one interval (or in total): counters read
    /// out of step with each other.
    #[error("{track} counted {events} events in {requests} requests: counters out of step")]
    MoreEventsThanRequests {
        /// The track.
        track: Track,
        /// Requests in the interval.
        requests: u64,
        /// Events in the interval.
        events: u64,
    },
}

/// Settings shared by every test: the bound on false decisions and what counts
/// as "no worse".
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The bound on the chance of ever failing a canary whose event rate is at
    /// most `tolerance` × stable's, over the whole canary however often it is
    /// looked at; the same bound holds for a wrong pass and for the interval
    /// missing the true ratio. In (0, 0.5].
    pub alpha: f64,
    /// The rate ratio canary/stable that still counts as "the same" (1.1: a
    /// canary with up to 10 % more events than stable is not a regression).
    /// In [1, 100]; the default 1.0 (see `docs/analysis.md` for why not 1.1).
    pub tolerance: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            alpha: 0.01,
            tolerance: 1.0,
        }
    }
}

/// Settings out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// `alpha` outside (0, 0.5].
    #[error("alpha must be more than 0 and at most 0.5, not {0}")]
    Alpha(f64),
    /// `tolerance` outside [1, 100].
    #[error("tolerance must be between 1 and 100, not {0}")]
    Tolerance(f64),
}

impl Settings {
    /// Checked settings.
    ///
    /// # Errors
    /// `SettingsError` when `alpha` is outside (0, 0.5] or `tolerance` outside [1, 100].
    pub fn new(alpha: f64, tolerance: f64) -> Result<Settings, SettingsError> {
        if !(alpha > 0.0 && alpha <= 0.5) {
            return Err(SettingsError::Alpha(alpha));
        }
        if !(1.0..=100.0).contains(&tolerance) {
            return Err(SettingsError::Tolerance(tolerance));
        }
        Ok(Settings { alpha, tolerance })
    }

    /// ln(1/alpha): the log-evidence at which a test decides.
    pub fn ln_threshold(&self) -> f64 {
        -self.alpha.ln()
    }
}

/// Evidence from several event kinds judged at once, as one e-value: the mean
/// of the kinds' e-values, given as its natural log.
///
/// The mean of e-processes for the same null is an e-process, so failing when
/// it reaches 1/alpha keeps the chance of a false rollback, over all kinds
/// together, at most alpha. Judging each kind alone at alpha would allow up to
/// alpha per kind. The price: one kind alone needs K/alpha (K kinds).
pub fn ln_mean_evidence(ln_e: &[f64]) -> f64 {
    if ln_e.is_empty() {
        return 0.0;
    }
    sequential::log_sum_exp(ln_e.iter().copied()) - (ln_e.len() as f64).ln()
}
