//! The events of a deployment, as the journal records them (SPEC §5).

use serde::{Deserialize, Serialize};

use crate::domain::{
    CheckOutcome, GateTarget, MemberWeight, Operator, Outcome, RollbackOutcome, RollbackSource,
    StageName, StageOutcome, Strategy, Totals, TrackSample, Verdict, WeightSource,
};

/// How the recovery check after a rollback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryOutcome {
    /// Stable shown back to its rate before the canary (within what the
    /// pass rule states).
    Recovered,
    /// Stable shown still worse than before the canary.
    StillWorse,
    /// Neither, when the baseline ran out or the time limit passed.
    Undecided,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    DeploymentStarted {
        id: String,
        config: String,
        service: String,
        version: String,
        previous: Option<String>,
        environment: Option<String>,
        operator: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        strategy: Option<Strategy>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        steps: Option<Vec<u8>>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        router: Option<String>,
        /// The journal keeps an anchor of its end beside it (a missing anchor
        /// is then a break).
        #[serde(default)]
        anchored: bool,
    },
    StageStarted {
        stage: StageName,
    },
    StageFinished {
        stage: StageName,
        outcome: StageOutcome,
    },
    CheckStarted {
        stage: StageName,
        check: String,
        kind: String,
        attempt: u32,
    },
    CheckFinished {
        stage: StageName,
        check: String,
        outcome: CheckOutcome,
        duration_ms: u64,
        exit_code: Option<i32>,
        output_tail: String,
        message: String,
        attempts: u32,
    },
    Approved {
        stage: StageName,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        step: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        check: Option<String>,
        operator: String,
        /// Who, as the kernel named them (account, uid, SSH client, key).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        by: Option<Operator>,
        /// Under the two-person rule: this approval's number, of `needed`
        /// distinct operators; the gate opens at `needed`.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        count: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        needed: Option<u32>,
        /// A step approved while the sequential judge had not passed it
        /// (inconclusive after the bake): on the operator's own judgement.
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        judge_undecided: bool,
    },
    WeightRequested {
        weight: u8,
        source: WeightSource,
        operator: String,
        /// Who, as the kernel named them (account, uid, SSH client, key).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        by: Option<Operator>,
        /// The release lease's fencing token (its etcd revision) under
        /// which the routers are written; absent with the file lock.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        fence: Option<i64>,
    },
    WeightApplied {
        weight: u8,
        router: String,
        /// From the request to the router confirming it.
        elapsed_ms: f64,
        /// A group: what each member read back, and when it confirmed.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        members: Option<Vec<MemberWeight>>,
        /// A group: milliseconds from the first member's confirmation to
        /// the last one's.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        skew_ms: Option<f64>,
    },
    WeightFailed {
        weight: u8,
        router: String,
        error: String,
        /// A group: what each member read back, or why it did not confirm.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        members: Option<Vec<MemberWeight>>,
    },
    /// The release lease this run holds (`[lock] kind = "etcd"`).
    LockHeld {
        kind: String,
        key: String,
        /// The fencing token: the key's create revision in etcd. Every
        /// later holder of the key has a larger one.
        revision: i64,
        /// This run, as the lease records it (account, host, pid, since).
        holder: String,
        /// The TTL etcd granted, in milliseconds.
        ttl_ms: u64,
    },
    /// The release lease could not be kept: no router is written after this.
    LockLost {
        key: String,
        revision: i64,
        why: String,
    },
    Analysis {
        weight: u8,
        canary: Box<TrackSample>,
        stable: Box<TrackSample>,
        verdict: Verdict,
        reasons: Vec<String>,
        /// The sequential judge's readings and evidence (`method = "sequential"`).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        sequential: Option<crate::judge::kinds::SequentialRecord>,
        /// The built-in router's client connections at this sample: open
        /// ones by phase, and since it started, refusals and evictions at
        /// its cap and timeouts (`None` for other routers).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        connections: Option<Box<crate::domain::ConnectionStats>>,
    },
    Paused {
        operator: String,
        reason: String,
        /// Who, as the kernel named them (account, uid, SSH client, key).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        by: Option<Operator>,
    },
    Resumed {
        operator: String,
        /// Who, as the kernel named them (account, uid, SSH client, key).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        by: Option<Operator>,
    },
    RollbackStarted {
        reason: String,
        source: RollbackSource,
        operator: String,
        /// When it was asked for (the key press, the failing sample); the
        /// rollback's timing starts here.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        requested_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Who, as the kernel named them (account, uid, SSH client, key).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        by: Option<Operator>,
    },
    RollbackFinished {
        outcome: RollbackOutcome,
        /// From the rollback request to weight 0 confirmed by the router.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        weight_applied_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        problem: Option<String>,
    },
    /// A run carried on an unfinished deployment from its journal.
    DeploymentResumed {
        operator: String,
        /// The weight last recorded, and what the router really applied.
        recorded_weight: Option<u8>,
        router_weight: Option<u8>,
    },
    /// A stakeholder notification that could not be delivered (the deployment
    /// went on regardless).
    NotifyFailed {
        notice: String,
        error: String,
        attempts: u32,
    },
    /// Something worth a line in the record (a stale lock taken over, a torn
    /// journal line dropped).
    /// A command an operator may not give (`[operators]`), refused.
    CommandRefused {
        command: String,
        operator: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        by: Option<Operator>,
    },
    /// An approval that was not for the gate open at the time: refused.
    ApprovalRefused {
        /// What the operator approved, as they saw it.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        requested: Option<GateTarget>,
        /// The gate open when it arrived, if any.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        open: Option<GateTarget>,
        operator: String,
        reason: String,
        /// Who, as the kernel named them (account, uid, SSH client, key).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        by: Option<Operator>,
    },
    /// A command started in its own process group (checks, router changes),
    /// so a resumed run can make sure it is gone.
    CommandStarted {
        pgid: i32,
        /// The group leader's start time, in clock ticks since boot (Linux
        /// `/proc/PID/stat` field 22), to tell the group from a later one
        /// that reuses its id.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        start_ticks: Option<u64>,
        what: String,
    },
    /// The command of `pgid` exited (its group may keep background jobs).
    CommandFinished {
        pgid: i32,
    },
    /// A group of an earlier run found alive on resume, and stopped.
    OrphanStopped {
        pgid: i32,
        what: String,
        processes: u32,
    },
    /// The router reads back a weight other than the one on record.
    WeightDrift {
        /// The weight the journal says the router applies.
        expected: u8,
        /// What the router reports (or the split it measured).
        router_weight: u8,
        detail: String,
    },
    /// A step that reached no verdict within `[traffic] step_deadline`.
    StepDeadline {
        weight: u8,
        deadline_ms: u64,
        reason: String,
    },
    /// An open deployment closed by the operator so a new one can start.
    DeploymentAbandoned {
        operator: String,
        reason: String,
    },
    Note {
        message: String,
    },
    /// Something an operator should act on before it acts by itself (a step
    /// near its deadline).
    Warning {
        message: String,
    },
    /// Stable's cumulative counts read every `interval_ms` before the first
    /// step (sequential method): what a recovery after a rollback is
    /// compared with.
    Baseline {
        interval_ms: u64,
        stable: Vec<Totals>,
    },
    /// One reading of stable after a rollback against its baseline; the one
    /// with an `outcome` ends the check.
    Recovery {
        /// Stable's cumulative counts now.
        stable: Totals,
        /// Each kind's evidence (stable now as "canary", the baseline as "stable").
        kinds: Vec<crate::judge::kinds::KindRecord>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        outcome: Option<RecoveryOutcome>,
        /// From the rollback's request to stable shown recovered.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        recovered_ms: Option<f64>,
        summary: String,
    },
    DeploymentFinished {
        outcome: Outcome,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<String>,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::DeploymentStarted { .. } => "deployment_started",
            Event::StageStarted { .. } => "stage_started",
            Event::StageFinished { .. } => "stage_finished",
            Event::CheckStarted { .. } => "check_started",
            Event::CheckFinished { .. } => "check_finished",
            Event::Approved { .. } => "approved",
            Event::WeightRequested { .. } => "weight_requested",
            Event::WeightApplied { .. } => "weight_applied",
            Event::WeightFailed { .. } => "weight_failed",
            Event::LockHeld { .. } => "lock_held",
            Event::LockLost { .. } => "lock_lost",
            Event::Analysis { .. } => "analysis",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::RollbackStarted { .. } => "rollback_started",
            Event::RollbackFinished { .. } => "rollback_finished",
            Event::DeploymentResumed { .. } => "deployment_resumed",
            Event::Note { .. } => "note",
            Event::Warning { .. } => "warning",
            Event::ApprovalRefused { .. } => "approval_refused",
            Event::CommandRefused { .. } => "command_refused",
            Event::CommandStarted { .. } => "command_started",
            Event::CommandFinished { .. } => "command_finished",
            Event::OrphanStopped { .. } => "orphan_stopped",
            Event::WeightDrift { .. } => "weight_drift",
            Event::StepDeadline { .. } => "step_deadline",
            Event::DeploymentAbandoned { .. } => "deployment_abandoned",
            Event::NotifyFailed { .. } => "notify_failed",
            Event::Baseline { .. } => "baseline",
            Event::Recovery { .. } => "recovery",
            Event::DeploymentFinished { .. } => "deployment_finished",
        }
    }
}
