//! The engine's memory of the deployment, and the [`Snapshot`] built from it
//! at publish time. Decisions read this state, never a published snapshot.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::snapshot::{
    AnalysisPoint, CheckStatus, CheckView, EvidenceView, Gate, Phase, RecoveryView, Snapshot,
    StageStatus, StageView, Thresholds, TrafficView,
};
use crate::config::Plan;
use crate::domain::{Approval, MemberWeight, Outcome, StageName, Verdict};

/// How many analysis samples are kept for the charts.
pub(crate) const SAMPLES_KEPT: usize = 600;

/// What does not change during a run: who, what, where.
#[derive(Debug, Clone)]
pub(crate) struct Fixed {
    pub deployment_id: String,
    pub service: String,
    pub version: String,
    pub previous: Option<String>,
    pub environment: Option<String>,
    pub operator: String,
    pub journal_path: String,
    pub started_at: DateTime<Utc>,
    pub thresholds: Thresholds,
    /// The traffic pane's fixed part, when the plan moves traffic.
    pub traffic: Option<TrafficView>,
}

/// Where the canary stands, as the traffic driver last reported it.
#[derive(Debug, Clone, Default)]
pub(crate) struct CanaryProgress {
    pub baked: Duration,
    pub next_step: Option<u8>,
    pub failing: (u32, u32),
}

/// The engine's state.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub phase: Phase,
    pub stage: Option<StageName>,
    /// All eight stages, in [`StageName::ALL`] order.
    pub stages: Vec<StageView>,
    /// The rollback row replaces finalize once a rollback started.
    pub rollback_shown: bool,
    /// The weight the router confirmed last.
    pub weight: u8,
    /// A weight asked of the router and not yet confirmed.
    pub requested_weight: Option<u8>,
    pub paused: bool,
    pub gate: Option<Gate>,
    pub verdict: Option<Verdict>,
    pub message: Option<String>,
    pub samples: VecDeque<AnalysisPoint>,
    pub canary: CanaryProgress,
    pub rollback_requested_at: Option<DateTime<Utc>>,
    pub rollback_weight_ms: Option<f64>,
    pub outcome: Option<Outcome>,
    pub finished_at: Option<DateTime<Utc>>,
    /// A group's members as they last confirmed or read back.
    pub members: Vec<MemberWeight>,
    pub evidence: Option<EvidenceView>,
    pub recovery: Option<RecoveryView>,
}

impl State {
    /// The state of a plan about to run: every stage pending or not configured.
    pub fn new(plan: &Plan) -> State {
        let stages = StageName::ALL
            .iter()
            .map(|&name| StageView {
                name,
                status: if plan.has_stage(name) {
                    StageStatus::Pending
                } else {
                    StageStatus::NotConfigured
                },
                checks: plan
                    .checks(name)
                    .iter()
                    .map(|c| CheckView {
                        name: c.name.clone(),
                        kind: c.kind.label().to_string(),
                        target: c.kind.target(),
                        status: CheckStatus::Pending,
                        duration: None,
                        started_at: None,
                        attempt: 0,
                        optional: c.optional,
                        output_tail: Vec::new(),
                    })
                    .collect(),
            })
            .collect();
        State {
            phase: Phase::Starting,
            stage: None,
            stages,
            rollback_shown: false,
            weight: 0,
            requested_weight: None,
            paused: false,
            gate: None,
            verdict: None,
            message: None,
            samples: VecDeque::new(),
            canary: CanaryProgress::default(),
            rollback_requested_at: None,
            rollback_weight_ms: None,
            outcome: None,
            finished_at: None,
            members: plan
                .traffic
                .iter()
                .flat_map(|t| t.router.members())
                .map(|m| MemberWeight {
                    name: m.name.clone(),
                    router: m.router.kind().to_string(),
                    weight: None,
                    confirmed: false,
                    confirmed_ms: None,
                    error: None,
                })
                .collect(),
            evidence: None,
            recovery: None,
        }
    }

    pub fn stage_view(&mut self, stage: StageName) -> &mut StageView {
        &mut self.stages[stage.index()]
    }

    pub fn check_view(&mut self, stage: StageName, i: usize) -> &mut CheckView {
        &mut self.stages[stage.index()].checks[i]
    }

    /// Keeps one analysis sample for the charts (bounded).
    pub fn push_sample(&mut self, point: AnalysisPoint) {
        self.samples.push_back(point);
        while self.samples.len() > SAMPLES_KEPT {
            self.samples.pop_front();
        }
    }

    /// Builds what views draw.
    pub fn snapshot(&self, fixed: &Fixed, revision: u64) -> Snapshot {
        let mut stages: Vec<StageView> = self.stages[..StageName::Finalize.index()].to_vec();
        stages.push(if self.rollback_shown {
            self.stages[StageName::Rollback.index()].clone()
        } else {
            self.stages[StageName::Finalize.index()].clone()
        });
        let traffic = fixed.traffic.as_ref().map(|t| {
            let mut t = t.clone();
            t.current_weight = self.weight;
            t.requested_weight = self.requested_weight;
            t.paused = self.paused;
            t.waiting_approval = matches!(self.gate, Some(Gate::Step { .. }));
            // A next step is planned only while the deployment runs.
            t.next_step = if self.phase == Phase::Running {
                self.canary.next_step
            } else {
                None
            };
            t.baked = self.canary.baked;
            t.failing = self.canary.failing;
            t.rollback_weight_ms = self.rollback_weight_ms;
            t.members.clone_from(&self.members);
            t
        });
        Snapshot {
            deployment_id: fixed.deployment_id.clone(),
            service: fixed.service.clone(),
            version: fixed.version.clone(),
            previous: fixed.previous.clone(),
            environment: fixed.environment.clone(),
            operator: fixed.operator.clone(),
            journal_path: fixed.journal_path.clone(),
            started_at: fixed.started_at,
            finished_at: self.finished_at,
            phase: self.phase,
            paused: self.paused,
            current_stage: self.stage,
            stages,
            traffic,
            samples: self.samples.iter().cloned().collect(),
            thresholds: fixed.thresholds.clone(),
            verdict: self.verdict,
            gate: self.gate.clone(),
            outcome: self.outcome,
            message: self.message.clone(),
            rollback_requested_at: self.rollback_requested_at,
            evidence: self.evidence.clone(),
            recovery: self.recovery.clone(),
            revision,
        }
    }
}

impl Fixed {
    pub fn new(
        plan: &Plan,
        id: &str,
        operator: &str,
        journal_path: &str,
        started_at: DateTime<Utc>,
    ) -> Fixed {
        let traffic = plan.traffic.as_ref().map(|t| TrafficView {
            strategy: t.strategy,
            steps: t.steps.clone(),
            router: t.router.kind().to_string(),
            current_weight: 0,
            requested_weight: None,
            next_step: t.steps.first().copied(),
            waiting_approval: false,
            paused: false,
            baked: Duration::ZERO,
            bake: t.bake,
            rollback_weight_ms: None,
            failing: (0, plan.analysis.failure_limit),
            approval_manual: t.approval == Approval::Manual,
            on_failure: t.on_failure,
            members: Vec::new(),
        });
        Fixed {
            deployment_id: id.to_string(),
            service: plan.deployment.service.clone(),
            version: plan.deployment.version.clone(),
            previous: plan.deployment.previous.clone(),
            environment: plan.deployment.environment.clone(),
            operator: operator.to_string(),
            journal_path: journal_path.to_string(),
            started_at,
            thresholds: Thresholds {
                max_error_rate: plan.analysis.max_error_rate,
                max_p99_ms: plan.analysis.max_p99_ms,
                max_error_rate_increase: plan.analysis.max_error_rate_increase,
                max_p99_ratio: plan.analysis.max_p99_ratio,
                min_requests: plan.analysis.min_requests,
                sequential: plan.analysis.method == crate::config::Method::Sequential,
            },
            traffic,
        }
    }
}
