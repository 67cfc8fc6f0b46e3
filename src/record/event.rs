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
        canary: TrackSample,
        stable: TrackSample,
        verdict: Verdict,
        reasons: Vec<String>,
        /// The sequential judge's readings and evidence (`method = "sequential"`).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        sequential: Option<crate::judge::kinds::SequentialRecord>,
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

    /// One human line, for headless output and logs.
    pub fn describe(&self) -> String {
        fn pct(r: Option<f64>) -> String {
            r.map(|r| format!("{:.2}%", r * 100.0))
                .unwrap_or_else(|| "-".into())
        }
        fn ms(v: Option<f64>) -> String {
            v.map(|v| format!("{v:.0}ms")).unwrap_or_else(|| "-".into())
        }
        match self {
            Event::DeploymentStarted {
                id,
                service,
                version,
                previous,
                environment,
                operator,
                ..
            } => format!(
                "deployment {id} started: {service} {} → {version}{} by {operator}",
                previous.as_deref().unwrap_or("?"),
                environment
                    .as_ref()
                    .map(|e| format!(" in {e}"))
                    .unwrap_or_default()
            ),
            Event::StageStarted { stage } => format!("{stage}: started"),
            Event::StageFinished { stage, outcome } => {
                format!("{stage}: {}", outcome.as_str().replace('_', " "))
            }
            Event::CheckStarted {
                stage,
                check,
                attempt,
                ..
            } => {
                if *attempt > 1 {
                    format!("{stage} / {check}: attempt {attempt}")
                } else {
                    format!("{stage} / {check}: running")
                }
            }
            Event::CheckFinished {
                stage,
                check,
                outcome,
                duration_ms,
                message,
                ..
            } => format!(
                "{stage} / {check}: {} in {duration_ms} ms ({message})",
                outcome.as_str().replace('_', " ")
            ),
            Event::Approved {
                stage,
                step,
                check,
                operator,
                count,
                needed,
                ..
            } => match (step, check) {
                (Some(s), _) => match (count, needed) {
                    (Some(c), Some(n)) if n > &1 => format!(
                        "{stage}: step to {s}% approved by {operator} ({c} of {n} operators)"
                    ),
                    _ => format!("{stage}: step to {s}% approved by {operator}"),
                },
                (_, Some(c)) => format!("{stage} / {c}: confirmed by {operator}"),
                _ => format!("{stage}: approved by {operator}"),
            },
            Event::WeightRequested {
                weight,
                source,
                operator,
                ..
            } => format!(
                "weight {weight}% requested ({}, {operator})",
                source.as_str().replace('_', " ")
            ),
            Event::WeightApplied {
                weight,
                router,
                elapsed_ms,
                members,
                skew_ms,
            } => match members {
                Some(m) if m.iter().all(|m| m.confirmed) => format!(
                    "weight {weight}% applied by all {} routers in {elapsed_ms:.2} ms (skew {:.2} ms)",
                    m.len(),
                    skew_ms.unwrap_or(0.0)
                ),
                Some(m) => format!(
                    "weight {weight}% applied by {} of {} routers in {elapsed_ms:.2} ms (not reached: {})",
                    m.iter().filter(|m| m.confirmed).count(),
                    m.len(),
                    m.iter()
                        .filter(|m| !m.confirmed)
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => {
                    format!("weight {weight}% applied by the {router} router in {elapsed_ms:.2} ms")
                }
            },
            Event::WeightFailed {
                weight, router, error, ..
            } => format!("weight {weight}% NOT applied by the {router} router: {error}"),
            Event::LockHeld {
                kind,
                key,
                revision,
                holder,
                ttl_ms,
            } => format!(
                "{kind} release lease {key} held by {holder} (fencing token {revision}, ttl {} s)",
                ttl_ms / 1000
            ),
            Event::LockLost { key, revision, why } => format!(
                "RELEASE LEASE LOST: {key} (fencing token {revision}): {why}; no router is changed from here on"
            ),
            Event::Analysis {
                weight,
                canary,
                stable,
                verdict,
                reasons,
                ..
            } => {
                let mut s = format!(
                    "analysis at {weight}%: {} — canary {} req, {} errors, p99 {} | stable {} req, {} errors, p99 {}",
                    verdict.as_str(),
                    canary.requests,
                    pct(canary.error_rate),
                    ms(canary.p99_ms),
                    stable.requests,
                    pct(stable.error_rate),
                    ms(stable.p99_ms)
                );
                if !reasons.is_empty() {
                    s.push_str(" — ");
                    s.push_str(&reasons.join("; "));
                }
                s
            }
            Event::Paused {
                operator, reason, ..
            } => format!("paused by {operator}: {reason}"),
            Event::Resumed { operator, .. } => format!("resumed by {operator}"),
            Event::RollbackStarted {
                reason,
                source,
                operator,
                ..
            } => format!(
                "ROLLBACK started ({}, {operator}): {reason}",
                source.as_str().replace('_', " ")
            ),
            Event::RollbackFinished {
                outcome,
                weight_applied_ms,
                problem,
            } => {
                let mut s = format!("rollback {}", outcome.as_str().replace('_', " "));
                if let Some(ms) = weight_applied_ms {
                    s.push_str(&format!(
                        ": traffic back on stable {ms:.2} ms after the request"
                    ));
                }
                if let Some(p) = problem {
                    s.push_str(&format!(" — {p}"));
                }
                s
            }
            Event::DeploymentResumed {
                operator,
                recorded_weight,
                router_weight,
            } => {
                let mut s = format!("deployment resumed by {operator}");
                match (recorded_weight, router_weight) {
                    (Some(r), Some(w)) if r != w => s.push_str(&format!(
                        " — the journal says {r}% but the router applies {w}%"
                    )),
                    (Some(r), _) => s.push_str(&format!(" at {r}%")),
                    _ => {}
                }
                s
            }
            Event::Note { message } => format!("note: {message}"),
            Event::Warning { message } => format!("WARNING: {message}"),
            Event::Baseline {
                interval_ms,
                stable,
            } => format!(
                "baseline: stable read {} times, every {interval_ms} ms, before the first step",
                stable.len()
            ),
            Event::Recovery {
                summary,
                recovered_ms,
                ..
            } => match recovered_ms {
                Some(ms) => format!("{summary} ({:.1}s after the rollback request)", ms / 1000.0),
                None => summary.clone(),
            },
            Event::ApprovalRefused {
                requested,
                operator,
                reason,
                ..
            } => match requested {
                Some(gate) => format!("approval of {gate} by {operator} refused: {reason}"),
                None => format!("approval by {operator} refused: {reason}"),
            },
            Event::CommandRefused {
                command,
                operator,
                reason,
                ..
            } => format!("{command} by {operator} refused: {reason}"),
            Event::CommandStarted { pgid, what, .. } => {
                format!("{what}: started (process group {pgid})")
            }
            Event::CommandFinished { pgid } => format!("process group {pgid}: command exited"),
            Event::OrphanStopped {
                pgid,
                what,
                processes,
            } => format!(
                "{what}: process group {pgid} of an earlier run was still alive ({processes} process(es)): stopped"
            ),
            Event::WeightDrift {
                expected,
                router_weight,
                detail,
            } => format!(
                "WEIGHT DRIFT: the journal says {expected}% but the router applies {router_weight}% ({detail})"
            ),
            Event::StepDeadline {
                weight,
                deadline_ms,
                reason,
            } => format!(
                "step at {weight}% reached no verdict within {}: {reason}",
                crate::record::story::format_duration_ms(Some(*deadline_ms))
            ),
            Event::DeploymentAbandoned { operator, reason } => {
                format!("deployment abandoned by {operator}: {reason}")
            }
            Event::NotifyFailed {
                notice,
                error,
                attempts,
            } => {
                format!("notification {notice} not delivered after {attempts} attempt(s): {error}")
            }
            Event::DeploymentFinished {
                outcome,
                duration_ms,
                reason,
            } => {
                let mut s = format!(
                    "deployment finished: {} after {:.1}s",
                    outcome.as_str(),
                    *duration_ms as f64 / 1000.0
                );
                if let Some(r) = reason {
                    s.push_str(&format!(" — {r}"));
                }
                s
            }
        }
    }
}
