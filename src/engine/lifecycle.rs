//! A deployment from its first line to its last: opening (new or resumed),
//! the walk, the stop policy (rollback, hold), and the finish.

use std::time::Duration;

use chrono::Utc;

use super::procedure::{self, End};
use super::snapshot::{CheckStatus, Phase, StageStatus};
use super::{Engine, Stop};
use crate::domain::{Outcome, StageOutcome, WeightSource};
use crate::notify::NoticeKind;
use crate::record::resume::ResumePoint;
use crate::record::Event;

impl Engine {
    pub(crate) async fn run(mut self) -> Outcome {
        self.state.phase = Phase::Running;
        let opened = match self.resume.clone() {
            None => {
                let started = self.started_event();
                let r = self.record(started);
                if r.is_ok() {
                    self.notify(NoticeKind::Started, "deployment started".into());
                }
                r
            }
            Some(point) => self.record_resumed(&point).await,
        };
        let opened = opened.and_then(|()| {
            self.record_lock()?;
            for message in std::mem::take(&mut self.notes) {
                self.record(Event::Note { message })?;
            }
            Ok(())
        });
        let resumed_rollback = self.resume.as_ref().and_then(|p| p.rollback.clone());
        let walked = match (opened, resumed_rollback) {
            (Err(stop), _) => Err(stop),
            // A rollback was under way: it is finished first, whatever else.
            (Ok(()), Some((reason, source))) => Err(Stop::Rollback {
                reason: format!("{reason} (resumed)"),
                source,
                operator: self.operator.clone(),
                requested_at: Utc::now(),
            }),
            (Ok(()), None) => self.walk().await,
        };
        let (outcome, reason) = match walked {
            Ok(End::Succeeded) => (Outcome::Succeeded, None),
            Ok(End::Failed(reason)) => (Outcome::Failed, Some(reason)),
            Err(Stop::Rollback {
                reason,
                source,
                operator,
                requested_at,
            }) => {
                self.close_open_stage();
                self.rollback(reason, source, operator, requested_at).await
            }
            Err(Stop::Hold { reason }) => {
                self.close_open_stage();
                (Outcome::Interrupted, Some(reason))
            }
            Err(Stop::JournalFailed(reason)) => (Outcome::Interrupted, Some(reason)),
        };
        self.finish(outcome, reason).await;
        outcome
    }

    fn started_event(&self) -> Event {
        let t = self.plan.traffic.as_ref();
        Event::DeploymentStarted {
            id: self.id.clone(),
            config: self.plan.source.clone(),
            service: self.plan.deployment.service.clone(),
            version: self.plan.deployment.version.clone(),
            previous: self.plan.deployment.previous.clone(),
            environment: self.plan.deployment.environment.clone(),
            operator: self.operator.to_string(),
            strategy: t.map(|t| t.strategy),
            steps: t.map(|t| t.steps.clone()),
            router: t.map(|t| t.router.kind().to_string()),
            anchored: true,
        }
    }

    /// Records the resumption, makes the router carry what the record says,
    /// and shows what was done before it.
    async fn record_resumed(&mut self, point: &ResumePoint) -> Result<(), Stop> {
        self.stop_orphans(point).await?;
        let router_weight = match &self.router {
            Some(r) => r.current_weight().await.ok(),
            None => None,
        };
        self.record(Event::DeploymentResumed {
            operator: self.operator.to_string(),
            recorded_weight: point.weight,
            router_weight,
        })?;
        if let Some(w) = router_weight {
            self.state.weight = w;
        }
        if point.weight.unwrap_or(0) > 0 || router_weight.unwrap_or(0) > 0 {
            self.traffic_touched = true;
        }
        // The operator's pause survives the interruption.
        if point.paused {
            self.state.paused = true;
        }
        // The router must carry what the record says before anything goes on
        // (a new built-in router starts at 0; a later stage's checks go
        // through it). A rollback under way sets its own weight.
        if let (Some(w), None) = (point.weight, &point.rollback) {
            if router_weight != Some(w) {
                self.apply_weight_now(w, WeightSource::Resume).await?;
            }
        }
        for (stage, outcome) in &point.stages_done {
            self.state.stage_view(*stage).status = procedure::stage_status(*outcome);
        }
        for v in &mut self.state.stages {
            for c in &mut v.checks {
                if point.checks_done.contains(&(v.name, c.name.clone())) {
                    c.status = CheckStatus::Passed;
                    c.output_tail = vec!["done before the interruption".into()];
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// Before anything runs again, whatever is left of the earlier run's
    /// unfinished commands is stopped (and journaled); checks it interrupted
    /// are named, since they run again.
    async fn stop_orphans(&mut self, point: &ResumePoint) -> Result<(), Stop> {
        let grace = self.ctx.kill_grace;
        for group in &point.unfinished_groups {
            let (pgid, since) = (group.pgid, group.start_ticks);
            let found = tokio::task::spawn_blocking(move || {
                crate::check::process::stop_orphans(pgid, since, grace)
            })
            .await
            .unwrap_or(0);
            if found > 0 {
                self.record(Event::OrphanStopped {
                    pgid,
                    what: group.what.clone(),
                    processes: found as u32,
                })?;
            }
        }
        for (stage, check) in &point.interrupted_checks {
            self.record(Event::Note {
                message: format!(
                    "{stage} check \"{check}\" was cut off by the interruption before it finished: it runs again"
                ),
            })?;
        }
        Ok(())
    }

    /// A stage left running by a stop is recorded as interrupted.
    pub(crate) fn close_open_stage(&mut self) {
        let Some(stage) = self.state.stage else {
            return;
        };
        if self.state.stage_view(stage).status == StageStatus::Running {
            for c in &mut self.state.stage_view(stage).checks {
                if matches!(
                    c.status,
                    CheckStatus::Running | CheckStatus::WaitingApproval
                ) {
                    c.status = CheckStatus::Skipped;
                    c.output_tail.push("interrupted".into());
                }
            }
            self.state.stage_view(stage).status = StageStatus::Failed;
            let _ = self.record(Event::StageFinished {
                stage,
                outcome: StageOutcome::Interrupted,
            });
        }
        self.set_gate(None);
    }

    async fn finish(&mut self, outcome: Outcome, reason: Option<String>) {
        for v in &mut self.state.stages {
            if v.status == StageStatus::Pending {
                v.status = StageStatus::Skipped;
            }
            for c in &mut v.checks {
                if c.status == CheckStatus::Pending {
                    c.status = CheckStatus::Skipped;
                }
            }
        }
        let duration_ms = (Utc::now() - self.fixed.started_at)
            .num_milliseconds()
            .max(0) as u64;
        if !self.journal_broken() {
            let _ = self.record(Event::DeploymentFinished {
                outcome,
                duration_ms,
                reason: reason.clone(),
            });
        }
        self.state.phase = Phase::Finished;
        self.state.outcome = Some(outcome);
        self.state.finished_at = Some(Utc::now());
        self.set_gate(None);
        self.state.requested_weight = None;
        if reason.is_some() && !self.journal_broken() {
            self.state.message.clone_from(&reason);
        }
        self.publish();
        let why = reason.unwrap_or_default();
        match outcome {
            Outcome::Succeeded => self.notify(
                NoticeKind::Succeeded,
                format!(
                    "done in {}",
                    crate::record::story::format_duration_ms(Some(duration_ms))
                ),
            ),
            Outcome::RolledBack => self.notify(NoticeKind::RolledBack, why),
            Outcome::Failed => self.notify(NoticeKind::Failed, why),
            Outcome::RollbackFailed => self.notify(
                NoticeKind::Failed,
                format!("the rollback itself failed, a human must act: {why}"),
            ),
            Outcome::Interrupted => {}
        }
        // The outcome and its duration are on record already; delivery only
        // delays the exit, by a bounded time.
        if let Some(n) = &mut self.notifier {
            n.flush(Duration::from_secs(10)).await;
        }
        if !self.journal_broken() {
            self.record_notify_failures();
            if let Err(e) = crate::record::story::write_summary(self.recorder.path()) {
                tracing::warn!(target: "cutover", "cannot write the summary beside the journal: {e}");
            }
        }
    }
}
