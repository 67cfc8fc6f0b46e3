//! The words of the field, shared by the plan, the engine, the record and the
//! views: stages, strategies, policies, verdicts, outcomes, tracks and their
//! samples, gates. Each enum has one spelling on the wire (journal, snapshot,
//! socket), given by its serde attributes and returned by `as_str`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The procedure's stages, in order (SPEC §1). `Finalize` and `Rollback` share
/// the seventh row of the checklist; `Ord` follows the procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    Prepare,
    Checkpoint,
    Deploy,
    Smoke,
    Traffic,
    Verify,
    Finalize,
    Rollback,
}

impl StageName {
    pub const ALL: [StageName; 8] = [
        StageName::Prepare,
        StageName::Checkpoint,
        StageName::Deploy,
        StageName::Smoke,
        StageName::Traffic,
        StageName::Verify,
        StageName::Finalize,
        StageName::Rollback,
    ];

    /// The stages that are lists of checks in the config, in config order.
    pub const WITH_CHECKS: [StageName; 7] = [
        StageName::Prepare,
        StageName::Checkpoint,
        StageName::Deploy,
        StageName::Smoke,
        StageName::Verify,
        StageName::Finalize,
        StageName::Rollback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Prepare => "prepare",
            StageName::Checkpoint => "checkpoint",
            StageName::Deploy => "deploy",
            StageName::Smoke => "smoke",
            StageName::Traffic => "traffic",
            StageName::Verify => "verify",
            StageName::Finalize => "finalize",
            StageName::Rollback => "rollback",
        }
    }

    /// 1-based position in the procedure (finalize and rollback are both 7).
    pub fn number(self) -> usize {
        match self {
            StageName::Rollback => 7,
            other => other as usize + 1,
        }
    }

    /// Index into a list of all eight stages in [`StageName::ALL`] order.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How traffic moves to the new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// In steps of increasing weight, each baked and judged.
    Canary,
    /// All at once (one step to 100%).
    BlueGreen,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue-green",
        }
    }
}

/// Who moves a baked canary to its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// The operator approves each step once it has baked.
    Manual,
    /// The step advances by itself once it has baked healthy.
    Auto,
}

impl Approval {
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Manual => "manual",
            Approval::Auto => "auto",
        }
    }
}

/// What a failing analysis (or a step past its deadline) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    Rollback,
    /// Hold the weight and wait for the operator.
    Pause,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Pause => "pause",
        }
    }
}

/// What happens when no operator is left to steer (a hang-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDisconnect {
    /// Carry on as planned.
    Continue,
    /// Hold traffic where it is.
    Hold,
    /// Put traffic back on stable.
    Rollback,
}

impl OnDisconnect {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDisconnect::Continue => "continue",
            OnDisconnect::Hold => "hold",
            OnDisconnect::Rollback => "rollback",
        }
    }
}

/// The analysis's judgement of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Too little or invalid data: holds the step, never counts as a pass.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// How a deployment ended (SPEC §2 and §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// Failed before any change.
    Failed,
    /// Traffic back on stable, verified.
    RolledBack,
    /// The rollback itself failed or could not be verified: a human must act.
    RollbackFailed,
    /// Stopped with traffic held where it was; resumable.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled_back",
            Outcome::RollbackFailed => "rollback_failed",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Whether this outcome closes the deployment (`interrupted` leaves it
    /// open to `--resume`).
    pub fn is_final(self) -> bool {
        self != Outcome::Interrupted
    }
}

/// How a stage ended, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    Passed,
    Warned,
    Failed,
    Skipped,
    NotConfigured,
    Interrupted,
}

impl StageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StageOutcome::Passed => "passed",
            StageOutcome::Warned => "warned",
            StageOutcome::Failed => "failed",
            StageOutcome::Skipped => "skipped",
            StageOutcome::NotConfigured => "not_configured",
            StageOutcome::Interrupted => "interrupted",
        }
    }
}

/// How a check ended, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Passed,
    Failed,
    /// An optional check failed: a warning.
    Warned,
    Skipped,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Passed => "passed",
            CheckOutcome::Failed => "failed",
            CheckOutcome::Warned => "warned",
            CheckOutcome::Skipped => "skipped",
        }
    }
}

/// Who asked for a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightSource {
    Plan,
    Operator,
    Rollback,
    Resume,
    /// A group's step that not every member confirmed, put back on all.
    Revert,
}

impl WeightSource {
    pub fn as_str(self) -> &'static str {
        match self {
            WeightSource::Plan => "plan",
            WeightSource::Operator => "operator",
            WeightSource::Rollback => "rollback",
            WeightSource::Resume => "resume",
            WeightSource::Revert => "revert",
        }
    }
}

/// What started a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackSource {
    Operator,
    Analysis,
    Check,
    Signal,
    /// Nobody steering was attached for `unattended_after` (`on_disconnect`).
    Unattended,
}

impl RollbackSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackSource::Operator => "operator",
            RollbackSource::Analysis => "analysis",
            RollbackSource::Check => "check",
            RollbackSource::Signal => "signal",
            RollbackSource::Unattended => "unattended",
        }
    }
}

/// How a rollback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackOutcome {
    /// Weight 0 read back and stable seen serving.
    Succeeded,
    Failed,
}

impl RollbackOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackOutcome::Succeeded => "succeeded",
            RollbackOutcome::Failed => "failed",
        }
    }
}

/// One router of a group, after a weight change (or a read): what it reads
/// back and when it confirmed, or why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberWeight {
    /// The member's `name` in `[[traffic.routers]]`.
    pub name: String,
    /// Its kind: "haproxy", "nginx" or "command".
    pub router: String,
    /// The canary weight it read back (percent), when it answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weight: Option<u8>,
    /// It read back the weight asked for.
    pub confirmed: bool,
    /// Milliseconds from the start of the change to this member's
    /// confirmation (set and read back).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confirmed_ms: Option<f64>,
    /// Why it did not confirm: its error, a timeout, or a different weight.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

impl MemberWeight {
    /// "lb3 (haproxy: cannot connect …)" for a member that did not confirm.
    pub fn describe_failure(&self) -> String {
        match (&self.error, self.weight) {
            (Some(e), _) => format!("{} ({e})", self.name),
            (None, Some(w)) => format!("{} (reads back {w}%)", self.name),
            (None, None) => format!("{} (no answer)", self.name),
        }
    }
}

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
    /// Requests answered in the window.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// `errors / requests`, a fraction in [0, 1].
    pub error_rate: Option<f64>,
    /// Latency percentiles, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The track's cumulative counters since the source's own origin (a
    /// process start, a scrape target's counters), for the sequential judge;
    /// `None` when the source gives none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub totals: Option<Totals>,
}

/// One track's cumulative counters, read at one moment. They only grow; a
/// counter that goes down is a reset (a restarted process), never evidence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests answered.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Of which slower than `[analysis] slow_ms`; `None` when the source
    /// cannot tell (HAProxy keeps no per-request latencies).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub slow: Option<u64>,
}

/// Both tracks sampled over the same window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackPair {
    pub canary: TrackSample,
    pub stable: TrackSample,
}

/// What an approval is for: the gate the operator was shown. The engine
/// refuses an approval whose target is not the gate open now.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum GateTarget {
    /// A manual check of a stage.
    Check { stage: StageName, check: String },
    /// A canary step (or the blue-green switch) to `to` percent.
    Step { to: u8 },
    /// An analysis hold (`on_failure = "pause"`): approving carries on.
    Hold,
}

impl fmt::Display for GateTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateTarget::Check { stage, check } => write!(f, "{stage} check \"{check}\""),
            GateTarget::Step { to } => write!(f, "the step to {to}%"),
            GateTarget::Hold => f.write_str("the analysis hold"),
        }
    }
}

/// Who acts: an account, as the kernel names it for a local client, with the
/// SSH client address and login key fingerprint when known.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operator {
    /// The account name.
    pub account: String,
    /// The numeric uid, when it came from the kernel (socket peer credentials
    /// or this process's own uid).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uid: Option<u32>,
    /// The SSH client address (`SSH_CONNECTION`'s first field), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ssh_client: Option<String>,
    /// The fingerprint of the key used to log in (sshd `ExposeAuthInfo`), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_fingerprint: Option<String>,
}

impl Operator {
    /// An operator known by name only (tests, an automatic actor).
    pub fn named(account: impl Into<String>) -> Operator {
        Operator {
            account: account.into(),
            uid: None,
            ssh_client: None,
            key_fingerprint: None,
        }
    }
}

impl fmt::Display for Operator {
    /// `account`, or `account@client` when the SSH client address is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ssh_client {
            Some(client) => write!(f, "{}@{client}", self.account),
            None => f.write_str(&self.account),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_order_as_the_procedure() {
        let mut shuffled = vec![
            StageName::Verify,
            StageName::Prepare,
            StageName::Traffic,
            StageName::Rollback,
        ];
        shuffled.sort();
        assert_eq!(
            shuffled,
            vec![
                StageName::Prepare,
                StageName::Traffic,
                StageName::Verify,
                StageName::Rollback
            ]
        );
    }

    #[test]
    fn one_spelling_on_the_wire() {
        let wire = |v: serde_json::Value| v.as_str().map(str::to_string);
        assert_eq!(
            wire(serde_json::json!(Strategy::BlueGreen)).as_deref(),
            Some(Strategy::BlueGreen.as_str())
        );
        for o in [
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::RolledBack,
            Outcome::RollbackFailed,
            Outcome::Interrupted,
        ] {
            assert_eq!(wire(serde_json::json!(o)).as_deref(), Some(o.as_str()));
        }
        for s in StageName::ALL {
            assert_eq!(wire(serde_json::json!(s)).as_deref(), Some(s.as_str()));
        }
        for d in [
            OnDisconnect::Continue,
            OnDisconnect::Hold,
            OnDisconnect::Rollback,
        ] {
            assert_eq!(wire(serde_json::json!(d)).as_deref(), Some(d.as_str()));
        }
        assert_eq!(
            wire(serde_json::json!(StageOutcome::NotConfigured)).as_deref(),
            Some("not_configured")
        );
    }
}

/// The built-in router's client connections: the counts since it started
/// and, for the open ones, what they are doing now (journaled with each
/// `analysis` sample).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// The connection cap in force.
    pub max_connections: u64,
    /// Connections open now (the sum of the next three).
    pub open: u64,
    /// Open connections sending a request header now.
    pub reading_header: u64,
    /// Open connections whose request is being served now.
    pub serving: u64,
    /// Open connections waiting in keep-alive for their next request.
    pub idle: u64,
    /// Connections admitted (refused ones are not counted here).
    pub accepted: u64,
    /// New connections refused (503, closed) at the cap because every open
    /// connection was serving a request.
    pub rejected_at_cap: u64,
    /// Connections closed at the cap to admit a new one: each the one that
    /// had been reading a request header longest, else idle longest.
    pub evicted_at_cap: u64,
    /// Connections closed by the header-read timeout.
    pub header_read_timeouts: u64,
    /// Connections closed by the idle keep-alive timeout.
    pub idle_timeouts: u64,
}
