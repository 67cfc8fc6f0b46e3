//! The walk through the stages, and each check with its retries (SPEC §1).

use std::time::Instant;

use chrono::Utc;

use crate::record::Event;

use super::command::Effect;
use super::snapshot::{CheckStatus, Gate, StageStatus};
use super::{Engine, Stop};
use crate::check;
use crate::config::CheckKind;
use crate::domain::{CheckOutcome, GateTarget, Operator, RollbackSource, StageName, StageOutcome};

/// How the walk ended when no stop cut it short.
pub(crate) enum End {
    Succeeded,
    /// Failed before anything was changed.
    Failed(String),
}

pub(crate) fn stage_status(outcome: StageOutcome) -> StageStatus {
    match outcome {
        StageOutcome::Passed => StageStatus::Passed,
        StageOutcome::Warned => StageStatus::Warned,
        StageOutcome::Failed | StageOutcome::Interrupted => StageStatus::Failed,
        StageOutcome::Skipped => StageStatus::Skipped,
        StageOutcome::NotConfigured => StageStatus::NotConfigured,
    }
}

pub(crate) enum StageResult {
    Passed,
    Warned,
    Failed(String),
}

impl Engine {
    pub(crate) async fn walk(&mut self) -> Result<End, Stop> {
        self.start_baseline();
        for stage in [StageName::Prepare, StageName::Checkpoint] {
            match self.run_stage(stage).await {
                Ok(StageResult::Failed(reason)) => return Ok(End::Failed(reason)),
                Ok(_) => {}
                Err(Stop::Rollback { reason, .. }) => {
                    // Nothing was changed yet: there is nothing to roll back.
                    self.close_open_stage();
                    return Ok(End::Failed(format!("stopped before any change ({reason})")));
                }
                Err(stop) => return Err(stop),
            }
        }
        for stage in [StageName::Deploy, StageName::Smoke] {
            if let StageResult::Failed(reason) = self.run_stage(stage).await? {
                return Err(self.check_rollback(reason));
            }
        }
        self.traffic_stage().await?;
        if let StageResult::Failed(reason) = self.run_stage(StageName::Verify).await? {
            return Err(self.check_rollback(reason));
        }
        // The new version carries all traffic and is verified: a failing
        // finalize check is reported, not a reason to roll back.
        if let StageResult::Failed(reason) = self.run_stage(StageName::Finalize).await? {
            tracing::warn!(target: "cutover", "finalize did not complete: {reason}");
            self.state.message = Some(format!("finalize did not complete: {reason}"));
        }
        Ok(End::Succeeded)
    }

    /// A failed check starts the rollback, by the engine's own operator.
    fn check_rollback(&self, reason: String) -> Stop {
        Stop::Rollback {
            reason,
            source: RollbackSource::Check,
            operator: self.operator.clone(),
            requested_at: Utc::now(),
        }
    }

    pub(crate) fn stage_begin(&mut self, stage: StageName) -> Result<(), Stop> {
        self.state.stage = Some(stage);
        self.state.stage_view(stage).status = StageStatus::Running;
        self.record(Event::StageStarted { stage })?;
        self.publish();
        Ok(())
    }

    pub(crate) fn stage_end(
        &mut self,
        stage: StageName,
        outcome: StageOutcome,
    ) -> Result<(), Stop> {
        self.state.stage_view(stage).status = stage_status(outcome);
        self.record(Event::StageFinished { stage, outcome })?;
        self.publish();
        Ok(())
    }

    /// Runs every check of a stage in order; the first failure ends the stage.
    pub(crate) async fn run_stage(&mut self, stage: StageName) -> Result<StageResult, Stop> {
        if let Some(outcome) = self.resumed_stage(stage) {
            return Ok(match outcome {
                StageOutcome::Failed => {
                    StageResult::Failed(format!("{stage} failed before the interruption"))
                }
                StageOutcome::Warned => StageResult::Warned,
                _ => StageResult::Passed,
            });
        }
        if !self.plan.has_stage(stage) {
            self.state.stage = Some(stage);
            self.record(Event::StageStarted { stage })?;
            self.stage_end(stage, StageOutcome::NotConfigured)?;
            return Ok(StageResult::Passed);
        }
        self.stage_begin(stage)?;
        let mut warned = false;
        let n = self.plan.checks(stage).len();
        for i in 0..n {
            self.wait_unpaused().await?;
            match self.run_check(stage, i).await? {
                CheckOutcome::Passed => {}
                CheckOutcome::Warned => warned = true,
                _ => {
                    for j in i + 1..n {
                        self.state.check_view(stage, j).status = CheckStatus::Skipped;
                    }
                    let name = self.plan.checks(stage)[i].name.clone();
                    let msg = self.state.stages[stage.index()].checks[i]
                        .output_tail
                        .first()
                        .cloned()
                        .unwrap_or_default();
                    self.stage_end(stage, StageOutcome::Failed)?;
                    return Ok(StageResult::Failed(format!(
                        "{stage} check \"{name}\" failed: {msg}"
                    )));
                }
            }
        }
        let outcome = if warned {
            StageOutcome::Warned
        } else {
            StageOutcome::Passed
        };
        self.stage_end(stage, outcome)?;
        Ok(if warned {
            StageResult::Warned
        } else {
            StageResult::Passed
        })
    }

    /// One check with its retries; the result is journaled.
    pub(crate) async fn run_check(
        &mut self,
        stage: StageName,
        i: usize,
    ) -> Result<CheckOutcome, Stop> {
        let spec = self.plan.checks(stage)[i].clone();
        let done_before = self
            .resume
            .as_ref()
            .is_some_and(|p| p.checks_done.contains(&(stage, spec.name.clone())));
        if done_before && stage != StageName::Rollback {
            // Completed before the interruption: never run twice.
            self.state.check_view(stage, i).status = CheckStatus::Passed;
            self.publish();
            return Ok(CheckOutcome::Passed);
        }
        let mut ctx = self.ctx.clone();
        ctx.env
            .insert("CUTOVER_STAGE".into(), stage.as_str().into());
        let started = Instant::now();
        let attempts_allowed = spec.retries + 1;
        let mut last = check::Attempt::fail("not run");
        let mut attempts = 0;
        for attempt in 1..=attempts_allowed {
            attempts = attempt;
            {
                let v = self.state.check_view(stage, i);
                v.status = CheckStatus::Running;
                v.attempt = attempt;
                if attempt == 1 {
                    v.started_at = Some(Utc::now());
                }
            }
            self.record(Event::CheckStarted {
                stage,
                check: spec.name.clone(),
                kind: spec.kind.label().into(),
                attempt,
            })?;
            self.publish();
            last = match &spec.kind {
                CheckKind::Manual { prompt } => {
                    let operator = self.wait_manual(stage, i, &spec.name, prompt).await?;
                    check::Attempt::pass(format!("confirmed by {operator}"))
                }
                _ => {
                    let (s, c, name) = (spec.clone(), ctx.clone(), spec.name.clone());
                    let fut = async move { check::attempt(&s, &c, &name).await };
                    self.until(fut).await?
                }
            };
            if last.passed {
                break;
            }
            if attempt < attempts_allowed {
                tracing::warn!(
                    target: "cutover",
                    "{stage} / {}: attempt {attempt} failed ({}); retrying in {}",
                    spec.name,
                    last.message,
                    humantime::format_duration(spec.retry_delay)
                );
                self.until(tokio::time::sleep(spec.retry_delay)).await?;
            }
        }
        let outcome = if last.passed {
            CheckOutcome::Passed
        } else if spec.optional {
            CheckOutcome::Warned
        } else {
            CheckOutcome::Failed
        };
        let duration = started.elapsed();
        {
            let v = self.state.check_view(stage, i);
            v.status = match outcome {
                CheckOutcome::Passed => CheckStatus::Passed,
                CheckOutcome::Warned => CheckStatus::Warned,
                CheckOutcome::Failed => CheckStatus::Failed,
                CheckOutcome::Skipped => CheckStatus::Skipped,
            };
            v.duration = Some(duration);
            let mut tail = vec![last.message.clone()];
            tail.extend(last.tail.iter().cloned());
            v.output_tail = tail;
        }
        self.record(Event::CheckFinished {
            stage,
            check: spec.name.clone(),
            outcome,
            duration_ms: duration.as_millis() as u64,
            exit_code: last.exit_code,
            output_tail: last.tail.join("\n"),
            message: last.message.clone(),
            attempts,
        })?;
        self.publish();
        Ok(outcome)
    }

    /// The recorded outcome of a stage finished before a resumption.
    pub(crate) fn resumed_stage(&self, stage: StageName) -> Option<StageOutcome> {
        self.resume
            .as_ref()
            .and_then(|p| p.stages_done.get(&stage).copied())
    }

    /// Waits for the operator to confirm a manual check; returns who did.
    async fn wait_manual(
        &mut self,
        stage: StageName,
        i: usize,
        name: &str,
        prompt: &str,
    ) -> Result<Operator, Stop> {
        if self.auto_approve {
            let mut auto = self.operator.clone();
            auto.account = format!("{} (auto-approve)", auto.account);
            self.record(Event::Approved {
                stage,
                step: None,
                check: Some(name.to_string()),
                operator: auto.to_string(),
                by: Some(self.operator.clone()),
                count: None,
                needed: None,
                judge_undecided: false,
            })?;
            return Ok(auto);
        }
        self.state.check_view(stage, i).status = CheckStatus::WaitingApproval;
        self.set_gate(Some(Gate::Manual {
            stage,
            check: name.to_string(),
            prompt: prompt.to_string(),
        }));
        self.publish();
        self.notify(
            crate::notify::NoticeKind::ApprovalNeeded,
            format!("{stage} check \"{name}\": {prompt}"),
        );
        tracing::info!(target: "cutover", "waiting for the operator: {stage} / {name}: {prompt} (press a to confirm)");
        let target = GateTarget::Check {
            stage,
            check: name.to_string(),
        };
        let operator = loop {
            match self.next_command().await {
                Ok(Effect::Approved(t, operator)) if t == target => break operator,
                Ok(_) => {}
                Err(stop) => {
                    self.set_gate(None);
                    return Err(stop);
                }
            }
        };
        self.state.check_view(stage, i).status = CheckStatus::Running;
        Ok(operator)
    }
}
