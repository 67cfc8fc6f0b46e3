//! Rollback: canary weight to 0 first and read back, then the [[rollback]]
//! checks, then stable seen serving. "Rolled back" is claimed only when all
//! of it is verified; anything unknown makes it `rollback_failed`, saying what.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::snapshot::Phase;
use super::{Engine, Stop};
use crate::domain::{
    CheckOutcome, MemberWeight, Operator, Outcome, RollbackOutcome, RollbackSource, StageName,
    StageOutcome, Verdict, WeightSource,
};
use crate::record::Event;
use crate::router::group::RouterGroup;

/// Attempts at putting the weight back to 0 before the rollback is failed.
const WEIGHT_ATTEMPTS: u32 = 3;
/// Longest wait for one attempt at weight 0 (set and read back).
const WEIGHT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why weight 0 was not confirmed.
enum ZeroFailed {
    /// The router (or members of the group) did not confirm it.
    Router(String),
    /// The release lock was lost: nothing more may be written.
    Fenced(String),
}

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
                Err(ZeroFailed::Router(problem)) => {
                    problems.push(problem);
                    None
                }
                // Left as it is, the rollback is resumed once the lock can be taken.
                Err(ZeroFailed::Fenced(why)) => {
                    return (
                        Outcome::Interrupted,
                        Some(format!(
                            "rollback interrupted before weight 0: {why}; resume to finish it"
                        )),
                    )
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

    /// Puts the canary weight to 0 and reads it back (from every member of a
    /// group); the time from the request (the key press) to the confirmation,
    /// in milliseconds. The release lock is checked before every attempt.
    async fn weight_to_zero(
        &mut self,
        requested_at: DateTime<Utc>,
        operator: &Operator,
    ) -> Result<f64, ZeroFailed> {
        let Some(router) = self.router.clone() else {
            return Err(ZeroFailed::Router("there is no router to put back".into()));
        };
        let fence = self
            .fence_token()
            .map_err(|stop| ZeroFailed::Fenced(stop_reason(&stop)))?;
        let _ = self.record(Event::WeightRequested {
            weight: 0,
            source: WeightSource::Rollback,
            operator: operator.to_string(),
            by: Some(operator.clone()),
            fence,
        });
        self.state.requested_weight = Some(0);
        self.publish();
        if let Some(group) = self.group.clone() {
            return self.group_to_zero(group, requested_at).await;
        }
        let mut last_error = String::new();
        for attempt in 1..=WEIGHT_ATTEMPTS {
            self.fence_token()
                .map_err(|stop| ZeroFailed::Fenced(stop_reason(&stop)))?;
            let res = tokio::time::timeout(WEIGHT_ATTEMPT_TIMEOUT, async {
                router.set_weight(0).await?;
                router.current_weight().await
            })
            .await;
            match res {
                Ok(Ok(0)) => {
                    let ms = since_ms(requested_at);
                    self.zero_confirmed(ms, router.kind(), None, None);
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
            members: None,
        });
        self.publish();
        Err(ZeroFailed::Router(format!(
            "traffic could NOT be moved back to stable: {last_error}"
        )))
    }

    /// Weight 0 pushed to every member of a group that has not confirmed it
    /// yet, up to [`WEIGHT_ATTEMPTS`] times; the members that never confirm
    /// are named.
    async fn group_to_zero(
        &mut self,
        group: Arc<RouterGroup>,
        requested_at: DateTime<Utc>,
    ) -> Result<f64, ZeroFailed> {
        let first = Instant::now();
        let mut members: Vec<MemberWeight> = Vec::new();
        for attempt in 1..=WEIGHT_ATTEMPTS {
            self.fence_token()
                .map_err(|stop| ZeroFailed::Fenced(stop_reason(&stop)))?;
            let offset = first.elapsed().as_secs_f64() * 1000.0;
            let done: Vec<String> = members
                .iter()
                .filter(|m| m.confirmed)
                .map(|m| m.name.clone())
                .collect();
            let change = group
                .apply_to(0, WEIGHT_ATTEMPT_TIMEOUT, |name| {
                    !done.iter().any(|d| d == name)
                })
                .await;
            for mut m in change.members {
                m.confirmed_ms = m.confirmed_ms.map(|t| t + offset);
                match members.iter_mut().find(|o| o.name == m.name) {
                    Some(o) => *o = m,
                    None => members.push(m),
                }
            }
            self.show_members(&members);
            if members.iter().all(|m| m.confirmed) {
                let times = members.iter().filter_map(|m| m.confirmed_ms);
                let skew = times.clone().fold(f64::MIN, f64::max) - times.fold(f64::MAX, f64::min);
                let ms = since_ms(requested_at);
                self.zero_confirmed(ms, "group", Some(members), Some(skew.max(0.0)));
                return Ok(ms);
            }
            let waiting: Vec<String> = members
                .iter()
                .filter(|m| !m.confirmed)
                .map(MemberWeight::describe_failure)
                .collect();
            tracing::warn!(target: "cutover", "rollback: weight 0 not confirmed by {} (attempt {attempt})", waiting.join(", "));
            if attempt < WEIGHT_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
        let failed: Vec<String> = members
            .iter()
            .filter(|m| !m.confirmed)
            .map(MemberWeight::describe_failure)
            .collect();
        let error = format!(
            "0% not confirmed by {} of {} routers: {}",
            failed.len(),
            members.len(),
            failed.join(", ")
        );
        self.state.requested_weight = None;
        let _ = self.record(Event::WeightFailed {
            weight: 0,
            router: "group".into(),
            error: error.clone(),
            members: Some(members),
        });
        self.publish();
        Err(ZeroFailed::Router(format!(
            "traffic could NOT be moved back to stable on every router: {error}"
        )))
    }

    /// Weight 0 confirmed `ms` after the request: journaled and shown.
    fn zero_confirmed(
        &mut self,
        ms: f64,
        router: &str,
        members: Option<Vec<MemberWeight>>,
        skew_ms: Option<f64>,
    ) {
        self.state.weight = 0;
        self.state.requested_weight = None;
        self.state.rollback_weight_ms = Some(ms);
        let _ = self.record(Event::WeightApplied {
            weight: 0,
            router: router.into(),
            elapsed_ms: ms,
            members,
            skew_ms,
        });
        self.publish();
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
            canary: Box::new(result.pair.canary.clone()),
            stable: Box::new(result.pair.stable.clone()),
            verdict,
            reasons: reasons.clone(),
            sequential: None,
            connections: self.connections.as_ref().map(|c| Box::new(c.snapshot())),
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

/// Milliseconds from `at` (a key press) to now; never negative.
fn since_ms(at: DateTime<Utc>) -> f64 {
    (Utc::now() - at)
        .num_microseconds()
        .map(|us| us.max(0) as f64 / 1000.0)
        .unwrap_or(f64::MAX)
}

fn stop_reason(stop: &Stop) -> String {
    match stop {
        Stop::Rollback { reason, .. } | Stop::Hold { reason } | Stop::JournalFailed(reason) => {
            reason.clone()
        }
    }
}
