//! The engine's published state: what every view (dashboard, headless, tests) reads.
//!
//! A `Snapshot` is a plain value sent on a `watch` channel; views never see the
//! engine's internals and never block it.

use crate::domain::{
    GateTarget, MemberWeight, OnFailure, Outcome, StageName, Strategy, TrackPair, Verdict,
};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Pending,
    Running,
    Passed,
    /// Passed with a warning from an optional check.
    Warned,
    Failed,
    /// Not reached (an earlier stage failed or the deployment ended).
    Skipped,
    /// The config leaves this stage out; it passes.
    NotConfigured,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pending,
    Running,
    /// A manual check waiting for the operator's `a`.
    WaitingApproval,
    Passed,
    Failed,
    Warned,
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckView {
    pub name: String,
    /// "run", "http", "tcp", "manual" or "artifact".
    pub kind: String,
    /// What the check does, one line (command, URL, address or prompt).
    pub target: String,
    pub status: CheckStatus,
    /// Set while running (time so far at publication) and when finished.
    pub duration: Option<Duration>,
    pub started_at: Option<DateTime<Utc>>,
    pub attempt: u32,
    pub optional: bool,
    /// Last lines of output (run) or the failure message.
    pub output_tail: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageView {
    pub name: StageName,
    pub status: StageStatus,
    pub checks: Vec<CheckView>,
}

/// How a stage's checks stand: each check counted once, by its status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckTally {
    /// Passed, or passed with a warning (an optional check that failed).
    pub passed: usize,
    /// Of which warned.
    pub warned: usize,
    pub failed: usize,
    /// Never ran: the stage was cut short or the deployment ended first.
    pub skipped: usize,
    pub total: usize,
}

impl StageView {
    /// The stage's checks counted by how they ended; a skipped check never
    /// counts as done.
    pub fn tally(&self) -> CheckTally {
        let mut tally = CheckTally {
            total: self.checks.len(),
            ..CheckTally::default()
        };
        for check in &self.checks {
            match check.status {
                CheckStatus::Passed => tally.passed += 1,
                CheckStatus::Warned => {
                    tally.passed += 1;
                    tally.warned += 1;
                }
                CheckStatus::Failed => tally.failed += 1,
                CheckStatus::Skipped => tally.skipped += 1,
                CheckStatus::Pending | CheckStatus::Running | CheckStatus::WaitingApproval => {}
            }
        }
        tally
    }
}

/// One analysis sample, kept for the charts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalysisPoint {
    /// Seconds since the deployment started (`started_at`, also across a resume).
    pub t: f64,
    /// When the sample was taken; charts place samples by this.
    pub at: DateTime<Utc>,
    pub weight: u8,
    pub pair: TrackPair,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

/// The analysis limits in force (`[analysis]`), drawn on the charts and
/// written beside the figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Thresholds {
    /// Canary 5xx fraction, in [0, 1].
    pub max_error_rate: Option<f64>,
    /// Canary p99 latency, in milliseconds.
    pub max_p99_ms: Option<f64>,
    /// Canary error rate minus stable's, a fraction (0.005 = half a point).
    #[serde(default)]
    pub max_error_rate_increase: Option<f64>,
    /// Canary p99 divided by stable's.
    #[serde(default)]
    pub max_p99_ratio: Option<f64>,
    /// Requests a track needs in the window to be judged; the relative limits
    /// apply only when stable has this many.
    #[serde(default)]
    pub min_requests: u64,
    /// The sequential judge decides; the limits are guards.
    #[serde(default)]
    pub sequential: bool,
}

/// The traffic stage as the traffic-split pane shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrafficView {
    pub strategy: Strategy,
    pub steps: Vec<u8>,
    pub router: String,
    /// Weight the router applies now (percent to the canary).
    pub current_weight: u8,
    /// A weight asked for and not yet confirmed by the router.
    pub requested_weight: Option<u8>,
    /// The next planned step above the current weight.
    pub next_step: Option<u8>,
    pub waiting_approval: bool,
    pub paused: bool,
    /// Healthy bake time accumulated at this step, and the bake asked for.
    pub baked: Duration,
    pub bake: Duration,
    /// Time from the last rollback request (the key press) to weight 0
    /// confirmed, in milliseconds.
    pub rollback_weight_ms: Option<f64>,
    /// Failing samples in a row at this step, and `failure_limit`.
    pub failing: (u32, u32),
    pub approval_manual: bool,
    /// What reaching `failure_limit` does.
    #[serde(default = "default_on_failure")]
    pub on_failure: OnFailure,
    /// A group of routers (`[[traffic.routers]]`): each member as it last
    /// confirmed or read back (`weight` `None` until it answered); empty for
    /// a single router.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberWeight>,
}

fn default_on_failure() -> OnFailure {
    OnFailure::Rollback
}

/// What the engine waits for from the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Gate {
    /// A manual check: `a` confirms it.
    Manual {
        stage: StageName,
        check: String,
        prompt: String,
    },
    /// A canary step: `a` advances to `to` percent.
    Step { from: u8, to: u8 },
    /// Analysis failed with on_failure = "pause": the operator decides.
    AnalysisHold { reason: String },
}

/// Where the deployment is, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Running,
    RollingBack,
    Finished,
}

/// Everything a view needs to draw the deployment, published after each change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub deployment_id: String,
    pub service: String,
    pub version: String,
    pub previous: Option<String>,
    pub environment: Option<String>,
    pub operator: String,
    pub journal_path: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub phase: Phase,
    /// Automatic progression is paused (by the operator, or by the analysis
    /// with `on_failure = "pause"`): between checks, or at the canary's step.
    #[serde(default)]
    pub paused: bool,
    pub current_stage: Option<StageName>,
    /// Seven rows: prepare .. verify, then finalize or (once started) rollback.
    pub stages: Vec<StageView>,
    pub traffic: Option<TrafficView>,
    /// Recent analysis samples, oldest first (bounded).
    pub samples: Vec<AnalysisPoint>,
    pub thresholds: Thresholds,
    pub verdict: Option<Verdict>,
    pub gate: Option<Gate>,
    pub outcome: Option<Outcome>,
    /// The latest message worth a line on screen (failure reason, rollback cause...).
    pub message: Option<String>,
    /// When an operator asked for the rollback under way (the key press).
    pub rollback_requested_at: Option<DateTime<Utc>>,
    /// The sequential judge's evidence at the last sample (`None` with the
    /// threshold method, or before the first counts).
    #[serde(default)]
    pub evidence: Option<EvidenceView>,
    /// Stable after a rollback, against its own rate before the first step.
    #[serde(default)]
    pub recovery: Option<RecoveryView>,
    /// Bumped on every publication, so views can tell a change cheaply.
    pub revision: u64,
}

/// The sequential judge as the screen shows it: per event kind, how close the
/// evidence is to a rollback and to a pass, the canary/stable ratio with its
/// interval, and about how many requests are left to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceView {
    /// The bound on false rollbacks over all kinds.
    pub alpha: f64,
    /// The ratio that counts as the same.
    pub tolerance: f64,
    /// What a slow request is, in milliseconds.
    pub slow_ms: u64,
    /// Each kind judged, in order (5xx first).
    pub kinds: Vec<KindView>,
    /// Kinds the source cannot count, and why ("slow: HAProxy counts no latencies").
    pub unavailable: Vec<String>,
    /// Both tracks' requests per second over the last interval.
    pub requests_per_s: Option<f64>,
    /// The judge failed the canary (it stands).
    pub failed: bool,
    /// The step's bake was over at the last sample.
    pub baked: bool,
}

/// One event kind's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindView {
    pub kind: crate::judge::EventKind,
    /// The fail evidence as a fraction of the way to 1/(alpha/kinds), in
    /// [0, 1] on a log scale (1: rolled back).
    pub to_fail: f64,
    /// The furthest pass basis' progress, in [0, 1] on a log scale (1: passes;
    /// the bake and `min_requests` aside).
    pub to_pass: f64,
    /// The canary/stable event-rate ratio that fits best (`None` before any
    /// event), and its anytime-valid `1 − alpha` interval (`ratio_high`
    /// `None`: unbounded).
    pub ratio: Option<f64>,
    pub ratio_low: f64,
    pub ratio_high: Option<f64>,
    pub verdict: crate::judge::Verdict,
    /// About how many more requests (both tracks) to a decision.
    pub more_requests: Option<u64>,
    /// Requests and events judged since the canary started.
    pub canary: crate::judge::TrackCounts,
    pub stable: crate::judge::TrackCounts,
}

/// The recovery check after a rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryView {
    /// "recovered: at most 1.6× the baseline", "still worse than before", …
    pub summary: String,
    /// From the rollback's request to the reading that showed stable
    /// recovered, in milliseconds.
    pub recovered_ms: Option<f64>,
    /// The check is over (decided, or out of baseline).
    pub done: bool,
}

impl Gate {
    /// What an approval of this gate names.
    pub fn target(&self) -> GateTarget {
        match self {
            Gate::Manual { stage, check, .. } => GateTarget::Check {
                stage: *stage,
                check: check.clone(),
            },
            Gate::Step { to, .. } => GateTarget::Step { to: *to },
            Gate::AnalysisHold { .. } => GateTarget::Hold,
        }
    }
}

impl Snapshot {
    pub fn stage(&self, name: StageName) -> Option<&StageView> {
        self.stages.iter().find(|s| s.name == name)
    }
}
