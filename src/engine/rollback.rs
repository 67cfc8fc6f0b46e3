//! Rollback: canary weight to 0 first and confirmed, then the [[rollback]]
//! checks, then stable verified healthy in a fresh window.

use std::time::{Duration, Instant};

use super::event::{
    CheckOutcome, Event, RollbackOutcome, RollbackSource, StageOutcome, WeightSource,
};
use super::snapshot::{Outcome, Phase, StageName, Verdict};
use super::{Engine, Stop};

/// Attempts at putting the weight back to 0 before the rollback is failed.
const WEIGHT_ATTEMPTS: u32 = 3;

impl Engine {
    pub(crate) async fn rollback(
        &mut self,
        reason: String,
        source: RollbackSource,
    ) -> (Outcome, Option<String>) {
        let requested = self
            .rollback_requested_at
            .take()
            .unwrap_or_else(Instant::now);
        self.snap.phase = Phase::RollingBack;
        self.snap.message = Some(format!("rolling back: {reason}"));
        self.rollback_shown = true;
        self.paused = false;
        // Journal failures from here on are logged by `record`; the rollback goes on.
        let _ = self.record(Event::RollbackStarted {
            reason: reason.clone(),
            source,
            operator: self.operator.clone(),
        });
        let mut problems: Vec<String> = Vec::new();
        let mut weight_ms = None;

        if self.traffic_touched {
            if let Some(router) = self.router.clone() {
                let _ = self.record(Event::WeightRequested {
                    weight: 0,
                    source: WeightSource::Rollback,
                    operator: self.operator.clone(),
                });
                let mut last_error = String::new();
                for attempt in 1..=WEIGHT_ATTEMPTS {
                    let res = tokio::time::timeout(Duration::from_secs(10), async {
                        router.set_weight(0).await?;
                        router.current_weight().await
                    })
                    .await;
                    match res {
                        Ok(Ok(0)) => {
                            let ms = requested.elapsed().as_secs_f64() * 1000.0;
                            weight_ms = Some(ms);
                            self.weight = 0;
                            self.stable_since = Some(Instant::now());
                            if let Some(t) = &mut self.snap.traffic {
                                t.rollback_weight_ms = Some(ms);
                            }
                            let _ = self.record(Event::WeightApplied {
                                weight: 0,
                                router: router.kind().into(),
                                elapsed_ms: ms,
                            });
                            break;
                        }
                        Ok(Ok(w)) => last_error = format!("the router reads back {w}%"),
                        Ok(Err(e)) => last_error = e.to_string(),
                        Err(_) => last_error = "no answer within 10s".into(),
                    }
                    tracing::warn!(target: "cutover", "rollback: weight 0 not applied (attempt {attempt}): {last_error}");
                    if attempt < WEIGHT_ATTEMPTS {
                        tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    }
                }
                if weight_ms.is_none() {
                    let _ = self.record(Event::WeightFailed {
                        weight: 0,
                        router: router.kind().into(),
                        error: last_error.clone(),
                    });
                    problems.push(format!(
                        "traffic could NOT be moved back to stable: {last_error}"
                    ));
                }
            }
        }
        self.publish();

        // The [[rollback]] checks.
        let stage = StageName::Rollback;
        if self.plan.has_stage(stage) {
            if self.stage_begin(stage).is_ok() {
                let n = self.plan.checks(stage).len();
                let mut failed = false;
                for i in 0..n {
                    match self.run_check(stage, i).await {
                        Ok(CheckOutcome::Failed) => {
                            failed = true;
                            problems.push(format!(
                                "rollback check \"{}\" failed",
                                self.plan.checks(stage)[i].name
                            ));
                        }
                        Ok(_) => {}
                        Err(Stop::Hold { reason }) => {
                            self.close_open_stage();
                            return (
                                Outcome::Interrupted,
                                Some(format!("rollback interrupted: {reason}")),
                            );
                        }
                        Err(Stop::JournalFailed(e)) => {
                            problems.push(e);
                            break;
                        }
                        Err(Stop::Rollback { .. }) => {}
                    }
                }
                let outcome = if failed {
                    StageOutcome::Failed
                } else {
                    StageOutcome::Passed
                };
                let _ = self.stage_end(stage, outcome);
            }
        } else {
            self.snap.current_stage = Some(stage);
            let _ = self.record(Event::StageStarted { stage });
            let _ = self.stage_end(stage, StageOutcome::NotConfigured);
        }

        // Stable alone must be healthy in a window that starts after the rollback.
        if let (Some(since), true) = (self.stable_since, self.source.is_some()) {
            if let Err(problem) = self.verify_stable(since).await {
                problems.push(problem);
            }
        }

        let outcome = if problems.is_empty() {
            RollbackOutcome::Succeeded
        } else {
            RollbackOutcome::Failed
        };
        let problem = if problems.is_empty() {
            None
        } else {
            Some(problems.join("; "))
        };
        let _ = self.record(Event::RollbackFinished {
            outcome,
            weight_applied_ms: weight_ms,
            problem: problem.clone(),
        });
        match outcome {
            RollbackOutcome::Succeeded => (Outcome::RolledBack, Some(reason)),
            RollbackOutcome::Failed => (
                Outcome::RollbackFailed,
                Some(format!(
                    "{reason}; rollback failed: {}",
                    problem.unwrap_or_default()
                )),
            ),
        }
    }

    /// Samples stable alone, every interval after the rollback, until the fresh
    /// window holds enough requests to judge it (or a whole window passed).
    async fn verify_stable(&mut self, since: Instant) -> Result<(), String> {
        let interval = self.plan.analysis.interval;
        let mut rounds = 0u32;
        let (pair, error) = loop {
            rounds += 1;
            let wait = (interval * rounds).saturating_sub(since.elapsed());
            if self.until(tokio::time::sleep(wait), false).await.is_err() {
                return Ok(());
            }
            let window = since.elapsed().min(self.plan.analysis.window);
            let (pair, error) = self.sampler(window).await;
            let enough = pair.stable.requests >= self.plan.analysis.min_requests;
            if error.is_some() || enough || since.elapsed() >= self.plan.analysis.window {
                break (pair, error);
            }
        };
        let a = &self.plan.analysis;
        let stable = &pair.stable;
        let (verdict, reasons) = if let Some(e) = error {
            (Verdict::Inconclusive, vec![e])
        } else if stable.requests < a.min_requests {
            (
                Verdict::Inconclusive,
                vec![format!(
                    "stable had {} requests since the rollback, too few to verify it (min_requests {})",
                    stable.requests, a.min_requests
                )],
            )
        } else {
            match (stable.error_rate, a.max_error_rate) {
                (Some(rate), Some(max)) if rate > max => (
                    Verdict::Fail,
                    vec![format!(
                        "stable error rate {:.2}% after the rollback is above max_error_rate {:.2}%",
                        rate * 100.0,
                        max * 100.0
                    )],
                ),
                _ => (Verdict::Pass, vec![]),
            }
        };
        let _ = self.record(Event::Analysis {
            weight: self.weight,
            canary: pair.canary.clone(),
            stable: pair.stable.clone(),
            verdict,
            reasons: reasons.clone(),
        });
        if verdict == Verdict::Fail {
            return Err(reasons.join("; "));
        }
        if verdict == Verdict::Inconclusive {
            tracing::warn!(target: "cutover", "stable not verified after the rollback: {}", reasons.join("; "));
        }
        Ok(())
    }
}
