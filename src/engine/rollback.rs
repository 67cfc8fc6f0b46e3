//! Rollback: canary weight to 0 first and read back, then the [[rollback]]
//! checks, then stable seen serving. "Rolled back" is claimed only when all
//! of it is verified; anything unknown makes it `rollback_failed`, saying what.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::snapshot::Phase;
use super::{Engine, Stop};
use crate::domain::{
    CheckOutcome, Operator, Outcome, RollbackOutcome, RollbackSource, StageName, StageOutcome,
    Verdict, WeightSource,
};
use crate::record::Event;

/// Attempts at putting the weight back to 0 before the rollback is failed.
const WEIGHT_ATTEMPTS: u32 = 3;
/// Longest wait for one attempt at weight 0 (set and read back).
const WEIGHT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the verification of stable ended.
enum StableCheck {
    Serving,
    NotServing(String),
    Interrupted(String),
}

impl Engine {
    pub(crate) async fn rollback(
        &mut self,
        reason: String,
        source: RollbackSource,
        operator: Operator,
        requested_at: DateTime<Utc>,
    ) -> (Outcome, Option<String>) {
        self.state.phase = Phase::RollingBack;
        self.state.message = Some(format!("rolling back: {reason}"));
        self.state.rollback_shown = true;
        self.state.rollback_requested_at = Some(requested_at);
        self.state.paused = false;
        self.set_gate(None);
        self.publish();
        // Journal failures from here on are logged by `record`; the rollback goes on.
        let _ = self.record(Event::RollbackStarted {
            reason: reason.clone(),
            source,
            operator: operator.to_string(),
            requested_at: Some(requested_at),
            by: Some(operator.clone()),
        });
        let mut problems: Vec<String> = Vec::new();
        let weight_ms = if self.traffic_touched {
            match self.weight_to_zero(requested_at, &operator).await {
                Ok(ms) => Some(ms),
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            }
        } else {
            None
        };
        let stable_since = Instant::now();

        if let Err(interrupted) = self.rollback_checks(&mut problems).await {
            return interrupted;
        }

        // Stable alone must be seen serving in a window that starts after
        // the weight went to 0.
        if self.traffic_touched && weight_ms.is_some() {
            match self.verify_stable(stable_since).await {
                StableCheck::Serving => self.check_recovery(requested_at).await,
                StableCheck::NotServing(problem) => problems.push(problem),
                StableCheck::Interrupted(why) => {
                    return (
                        Outcome::Interrupted,
                        Some(format!(
                            "rollback interrupted before stable was verified ({why}); resume to finish it"
                        )),
                    )
                }
            }
        }

        let outcome = if problems.is_empty() {
            RollbackOutcome::Succeeded
        } else {
            RollbackOutcome::Failed
        };
        let problem = (!problems.is_empty()).then(|| problems.join("; "));
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

    /// Puts the canary weight to 0 and reads it back; the time from the
    /// request (the key press) to the confirmation, in milliseconds.
    async fn weight_to_zero(
        &mut self,
        requested_at: DateTime<Utc>,
        operator: &Operator,
    ) -> Result<f64, String> {
        let Some(router) = self.router.clone() else {
            return Err("there is no router to put back".into());
        };
        let _ = self.record(Event::WeightRequested {
            weight: 0,
            source: WeightSource::Rollback,
            operator: operator.to_string(),
            by: Some(operator.clone()),
        });
        self.state.requested_weight = Some(0);
        self.publish();
        let mut last_error = String::new();
        for attempt in 1..=WEIGHT_ATTEMPTS {
            let res = tokio::time::timeout(WEIGHT_ATTEMPT_TIMEOUT, async {
                router.set_weight(0).await?;
                router.current_weight().await
            })
            .await;
            match res {
                Ok(Ok(0)) => {
                    let ms = (Utc::now() - requested_at)
                        .num_microseconds()
                        .map(|us| us.max(0) as f64 / 1000.0)
                        .unwrap_or(f64::MAX);
                    self.state.weight = 0;
                    self.state.requested_weight = None;
                    self.state.rollback_weight_ms = Some(ms);
                    let _ = self.record(Event::WeightApplied {
                        weight: 0,
                        router: router.kind().into(),
                        elapsed_ms: ms,
                    });
                    self.publish();
                    return Ok(ms);
                }
                Ok(Ok(w)) => last_error = format!("the router reads back {w}%"),
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => {
                    last_error = format!(
                        "no answer within {}",
                        humantime::format_duration(WEIGHT_ATTEMPT_TIMEOUT)
                    )
                }
            }
            tracing::warn!(target: "cutover", "rollback: weight 0 not applied (attempt {attempt}): {last_error}");
            if attempt < WEIGHT_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
        self.state.requested_weight = None;
        let _ = self.record(Event::WeightFailed {
            weight: 0,
            router: router.kind().into(),
            error: last_error.clone(),
        });
        self.publish();
        Err(format!(
            "traffic could NOT be moved back to stable: {last_error}"
        ))
    }

    /// Runs the [[rollback]] checks; a hold (a signal) interrupts the
    /// rollback, leaving it to be finished by a resume.
    async fn rollback_checks(
        &mut self,
        problems: &mut Vec<String>,
    ) -> Result<(), (Outcome, Option<String>)> {
        let stage = StageName::Rollback;
        if !self.plan.has_stage(stage) {
            self.state.stage = Some(stage);
            let _ = self.record(Event::StageStarted { stage });
            let _ = self.stage_end(stage, StageOutcome::NotConfigured);
            return Ok(());
        }
        if self.stage_begin(stage).is_err() {
            problems.push("the rollback checks could not be recorded".into());
            return Ok(());
        }
        let mut failed = false;
        for i in 0..self.plan.checks(stage).len() {
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
                    return Err((
                        Outcome::Interrupted,
                        Some(format!(
                            "rollback interrupted: {reason}; resume to finish it"
                        )),
                    ));
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
        Ok(())
    }

    /// Stable must be seen serving after the rollback: enough successful
    /// stable requests in a fresh window, else the router's own health view
    /// of the stable server. Anything else is not verified.
    async fn verify_stable(&mut self, since: Instant) -> StableCheck {
        let a = self.plan.analysis.clone();
        let mut rounds = 0u32;
        let result = loop {
            rounds += 1;
            let wait = a
                .interval
                .saturating_mul(rounds)
                .saturating_sub(since.elapsed());
            if let Err(stop) = self.until(tokio::time::sleep(wait)).await {
                return StableCheck::Interrupted(stop_reason(&stop));
            }
            let window = since.elapsed().min(a.window).max(Duration::from_secs(1));
            let sampling = self.sampler(window, false);
            let result = match self.until(sampling).await {
                Ok(r) => r,
                Err(stop) => return StableCheck::Interrupted(stop_reason(&stop)),
            };
            let enough = result.pair.stable.requests >= a.min_requests;
            if result.error.is_some() || enough || since.elapsed() >= a.window {
                break result;
            }
        };
        let stable = &result.pair.stable;
        let mut reasons = Vec::new();
        let verdict = if let Some(e) = &result.error {
            reasons.push(format!("stable could not be sampled: {e}"));
            Verdict::Inconclusive
        } else if stable.requests < a.min_requests {
            reasons.push(format!(
                "stable answered {} requests since the rollback, too few to see it serving (min_requests {})",
                stable.requests, a.min_requests
            ));
            Verdict::Inconclusive
        } else {
            match (stable.error_rate, a.max_error_rate) {
                (Some(rate), _) if !(0.0..=1.0).contains(&rate) => {
                    reasons.push(format!("stable error rate {rate} is not a fraction"));
                    Verdict::Inconclusive
                }
                (Some(rate), Some(max)) if rate > max => {
                    reasons.push(format!(
                        "stable error rate {:.2}% after the rollback is above max_error_rate {:.2}%",
                        rate * 100.0,
                        max * 100.0
                    ));
                    Verdict::Fail
                }
                (None, _) => {
                    reasons.push("no stable error rate since the rollback".into());
                    Verdict::Inconclusive
                }
                _ => Verdict::Pass,
            }
        };
        let _ = self.record(Event::Analysis {
            weight: self.state.weight,
            canary: result.pair.canary.clone(),
            stable: result.pair.stable.clone(),
            verdict,
            reasons: reasons.clone(),
            sequential: None,
        });
        match verdict {
            Verdict::Pass => StableCheck::Serving,
            Verdict::Fail => StableCheck::NotServing(reasons.join("; ")),
            Verdict::Inconclusive => {
                // The router's own health view of the stable server may know.
                let health = match self.router.clone() {
                    Some(r) => r.stable_health().await,
                    None => Ok(None),
                };
                match health {
                    Ok(Some(true)) => {
                        let _ = self.record(Event::Note {
                            message: format!(
                                "stable seen serving by the router's health check ({})",
                                reasons.join("; ")
                            ),
                        });
                        StableCheck::Serving
                    }
                    Ok(Some(false)) => StableCheck::NotServing(format!(
                        "the router's health check reports the stable server DOWN; {}",
                        reasons.join("; ")
                    )),
                    Ok(None) => StableCheck::NotServing(format!(
                        "stable not verified serving, state unknown: {}",
                        reasons.join("; ")
                    )),
                    Err(e) => StableCheck::NotServing(format!(
                        "stable not verified serving ({}), and the router's health view cannot be read: {e}",
                        reasons.join("; ")
                    )),
                }
            }
        }
    }
}

fn stop_reason(stop: &Stop) -> String {
    match stop {
        Stop::Rollback { reason, .. } | Stop::Hold { reason } | Stop::JournalFailed(reason) => {
            reason.clone()
        }
    }
}
