//! The traffic stage: canary steps with bake and approval (or a blue-green
//! switch), the analysis loop, and the operator's slider.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::analysis::judge;
use super::event::{Event, RollbackSource, StageOutcome, WeightSource};
use super::snapshot::{AnalysisPoint, Gate, StageName, Strategy, Verdict};
use super::{Command, Engine, Interrupt, Stop, SAMPLES_KEPT};
use crate::config::{Approval, OnFailure};
use crate::metrics::TrackPair;

/// Longest wait for a router to apply and confirm a weight.
const ROUTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A metric sample on its way: both tracks, or why there is no data.
pub(crate) type Sampling =
    std::pin::Pin<Box<dyn std::future::Future<Output = (TrackPair, Option<String>)> + Send>>;

fn next_step_above(steps: &[u8], weight: u8) -> Option<u8> {
    steps.iter().copied().find(|s| *s > weight)
}

impl Engine {
    pub(crate) async fn traffic_stage(&mut self) -> Result<(), Stop> {
        let stage = StageName::Traffic;
        if self.resumed_stage(stage).is_some() {
            return Ok(());
        }
        let Some(tp) = self.plan.traffic.clone() else {
            self.snap.current_stage = Some(stage);
            self.record(Event::StageStarted { stage })?;
            self.stage_end(stage, StageOutcome::NotConfigured)?;
            return Ok(());
        };
        self.stage_begin(stage)?;
        if let Some(router) = self.router.clone() {
            match router.current_weight().await {
                Ok(w) => {
                    if w != 0 {
                        tracing::warn!(target: "cutover", "the router already sends {w}% to the canary before the first step");
                    }
                    self.weight = w;
                }
                Err(e) => {
                    return Err(Stop::Rollback {
                        reason: format!("cannot read the router's weight: {e}"),
                        source: RollbackSource::Check,
                    })
                }
            }
        }
        let a = self.plan.analysis.clone();
        let steps = tp.steps.clone();
        // A blue-green switch under manual approval waits for the operator;
        // a canary's first step goes at once (deploy and smoke passed).
        let mut gate_to: Option<u8> = None;
        let resumed_at = self
            .resume
            .as_ref()
            .and_then(|p| p.weight)
            .filter(|w| *w > 0);
        if let Some(w) = resumed_at {
            // Carry on at the recorded step; the next one still needs its bake
            // (and its approval).
            if self.weight != w {
                self.apply_weight(w, WeightSource::Resume).await?;
            }
        } else if tp.strategy == Strategy::BlueGreen
            && tp.approval == Approval::Manual
            && !self.auto_approve
        {
            gate_to = Some(steps[0]);
            self.notify(
                crate::notify::NoticeKind::ApprovalNeeded,
                format!(
                    "the blue-green switch to {}% waits for the operator",
                    steps[0]
                ),
            );
        } else {
            self.apply_weight(steps[0], WeightSource::Plan).await?;
        }
        let mut baked = Duration::ZERO;
        let mut failing = 0u32;
        let mut blind = 0u32;
        let mut analysis_hold = false;
        let mut next_sample = tokio::time::Instant::now() + a.interval;
        // A sample in flight: the source may be slow, and the operator's keys
        // (R above all) must not wait for it.
        let mut sampling: Option<Sampling> = None;
        loop {
            self.show_traffic(&steps, gate_to, baked, analysis_hold);
            tokio::select! {
                _ = tokio::time::sleep_until(next_sample), if sampling.is_none() => {
                    next_sample += a.interval;
                    let now = tokio::time::Instant::now();
                    if next_sample < now {
                        next_sample = now + a.interval;
                    }
                    sampling = Some(Box::pin(self.sampler(a.window)));
                }
                (pair, error) = async { sampling.as_mut().expect("guarded by the branch condition").await }, if sampling.is_some() => {
                    sampling = None;
                    let (verdict, reasons, source_failed) = self.record_sample(pair, error)?;
                    // A source that keeps failing leaves the analysis blind:
                    // after failure_limit errors in a row it counts as failing.
                    blind = if source_failed { blind + 1 } else { 0 };
                    if source_failed {
                        self.snap.message = Some(format!("metric source failing ({blind} in a row): {}", reasons.join("; ")));
                    }
                    match verdict {
                        Verdict::Pass => {
                            failing = 0;
                            if gate_to.is_none() && !self.paused {
                                baked += a.interval;
                            }
                        }
                        Verdict::Fail => failing += 1,
                        Verdict::Inconclusive => {}
                    }
                    if failing >= a.failure_limit || blind >= a.failure_limit {
                        let reason = if blind >= a.failure_limit {
                            format!(
                                "the metric source failed {blind} samples in a row at {}%: {}",
                                self.weight,
                                reasons.join("; ")
                            )
                        } else {
                            format!(
                                "analysis failed {failing} samples in a row at {}%: {}",
                                self.weight,
                                reasons.join("; ")
                            )
                        };
                        match tp.on_failure {
                            OnFailure::Rollback => {
                                self.rollback_requested_at = Some(Instant::now());
                                return Err(Stop::Rollback { reason, source: RollbackSource::Analysis });
                            }
                            OnFailure::Pause => {
                                if !analysis_hold {
                                    analysis_hold = true;
                                    self.paused = true;
                                    self.record(Event::Paused { operator: "analysis".into(), reason: reason.clone() })?;
                                    self.snap.message = Some(reason);
                                }
                            }
                        }
                    }
                    if baked >= tp.bake && gate_to.is_none() && !self.paused {
                        if self.weight >= 100 {
                            break;
                        }
                        if let Some(next) = next_step_above(&steps, self.weight) {
                            if tp.approval == Approval::Auto || self.auto_approve {
                                if self.auto_approve && tp.approval == Approval::Manual {
                                    self.record(Event::Approved {
                                        stage,
                                        step: Some(next),
                                        check: None,
                                        operator: format!("{} (auto-approve)", self.operator),
                                    })?;
                                }
                                self.apply_weight(next, WeightSource::Plan).await?;
                                baked = Duration::ZERO;
                            } else {
                                gate_to = Some(next);
                                self.notify(
                                    crate::notify::NoticeKind::ApprovalNeeded,
                                    format!("the canary at {}% baked healthy: next step {next}%", self.weight),
                                );
                                tracing::info!(target: "cutover", "step at {}% baked: press a to go to {next}%", self.weight);
                            }
                        }
                    }
                }
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else {
                        return Err(Stop::Hold { reason: "the operator's channel closed".into() });
                    };
                    match cmd {
                        Command::Approve => {
                            if analysis_hold {
                                analysis_hold = false;
                                failing = 0;
                                self.set_paused(false, "operator")?;
                                self.snap.message = None;
                                continue;
                            }
                            let to = gate_to.take().or_else(|| next_step_above(&steps, self.weight));
                            match to {
                                Some(to) => {
                                    self.record(Event::Approved {
                                        stage,
                                        step: Some(to),
                                        check: None,
                                        operator: self.operator.clone(),
                                    })?;
                                    self.apply_weight(to, WeightSource::Plan).await?;
                                    baked = Duration::ZERO;
                                    failing = 0;
                                }
                                None => tracing::info!(target: "cutover", "the canary is at 100%: nothing to approve; the stage ends after its bake"),
                            }
                        }
                        Command::SetWeight(w) => {
                            let w = w.min(100);
                            if w != self.weight {
                                gate_to = None;
                                self.apply_weight(w, WeightSource::Operator).await?;
                                baked = Duration::ZERO;
                                failing = 0;
                            }
                        }
                        Command::Pause => self.set_paused(true, "operator")?,
                        Command::Resume => {
                            analysis_hold = false;
                            self.set_paused(false, "operator")?;
                        }
                        other => {
                            if let Some(Interrupt::Stop(stop)) = self.on_command(Some(other))? {
                                return Err(stop);
                            }
                        }
                    }
                }
            }
        }
        self.snap.gate = None;
        if let Some(t) = &mut self.snap.traffic {
            t.waiting_approval = false;
            t.next_step = None;
        }
        self.stage_end(stage, StageOutcome::Passed)?;
        Ok(())
    }

    fn show_traffic(&mut self, steps: &[u8], gate_to: Option<u8>, baked: Duration, hold: bool) {
        let weight = self.weight;
        self.snap.gate = match (gate_to, hold) {
            (_, true) => Some(Gate::AnalysisHold {
                reason: self.snap.message.clone().unwrap_or_default(),
            }),
            (Some(to), false) => Some(Gate::Step { from: weight, to }),
            (None, false) => None,
        };
        if let Some(t) = &mut self.snap.traffic {
            t.waiting_approval = gate_to.is_some();
            t.next_step = gate_to.or_else(|| next_step_above(steps, weight));
            t.baked = baked;
        }
        self.publish();
    }

    /// Asks the router for a weight and waits until it confirms it. A router
    /// that cannot apply it starts the rollback.
    pub(crate) async fn apply_weight(
        &mut self,
        weight: u8,
        source: WeightSource,
    ) -> Result<(), Stop> {
        let Some(router) = self.router.clone() else {
            return Ok(());
        };
        self.record(Event::WeightRequested {
            weight,
            source,
            operator: self.operator.clone(),
        })?;
        if let Some(t) = &mut self.snap.traffic {
            t.requested_weight = Some(weight);
        }
        self.publish();
        self.traffic_touched = true;
        let t0 = Instant::now();
        let result = tokio::time::timeout(ROUTER_TIMEOUT, async {
            router.set_weight(weight).await?;
            router.current_weight().await
        })
        .await;
        if let Some(t) = &mut self.snap.traffic {
            t.requested_weight = None;
        }
        let error = match result {
            Ok(Ok(w)) if w == weight => {
                self.weight = w;
                self.record(Event::WeightApplied {
                    weight,
                    router: router.kind().into(),
                    elapsed_ms: t0.elapsed().as_secs_f64() * 1000.0,
                })?;
                self.publish();
                return Ok(());
            }
            Ok(Ok(w)) => format!("asked for {weight}% but the router reads back {w}%"),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no answer within {}",
                humantime::format_duration(ROUTER_TIMEOUT)
            ),
        };
        self.record(Event::WeightFailed {
            weight,
            router: router.kind().into(),
            error: error.clone(),
        })?;
        self.publish();
        self.rollback_requested_at = Some(Instant::now());
        Err(Stop::Rollback {
            reason: format!(
                "the {} router could not apply {weight}%: {error}",
                router.kind()
            ),
            source: RollbackSource::Check,
        })
    }

    /// Judges a sample of both tracks, journals and publishes it; also says
    /// whether the source failed to give one.
    pub(crate) fn record_sample(
        &mut self,
        pair: TrackPair,
        error: Option<String>,
    ) -> Result<(Verdict, Vec<String>, bool), Stop> {
        let source_failed = error.is_some();
        let (verdict, reasons) = match error {
            Some(e) => (Verdict::Inconclusive, vec![e]),
            None => judge(&pair, &self.plan.analysis),
        };
        self.record(Event::Analysis {
            weight: self.weight,
            canary: pair.canary.clone(),
            stable: pair.stable.clone(),
            verdict,
            reasons: reasons.clone(),
        })?;
        self.snap.verdict = Some(verdict);
        self.snap.samples.push(AnalysisPoint {
            t: self.started.elapsed().as_secs_f64(),
            at: Utc::now(),
            weight: self.weight,
            pair,
            verdict,
            reasons: reasons.clone(),
        });
        if self.snap.samples.len() > SAMPLES_KEPT {
            let extra = self.snap.samples.len() - SAMPLES_KEPT;
            self.snap.samples.drain(..extra);
        }
        self.publish();
        Ok((verdict, reasons, source_failed))
    }

    /// One sample from the metric source, as a future of its own; a failing
    /// or slow source is no data (with the reason).
    pub(crate) fn sampler(&self, window: Duration) -> Sampling {
        let source = self.source.clone();
        let limit = self.plan.analysis.interval.max(Duration::from_secs(2));
        Box::pin(async move {
            let Some(source) = source else {
                return (TrackPair::default(), Some("no metric source".into()));
            };
            match tokio::time::timeout(limit, source.sample(window)).await {
                Ok(Ok(pair)) => (pair, None),
                Ok(Err(e)) => (TrackPair::default(), Some(e.to_string())),
                Err(_) => (
                    TrackPair::default(),
                    Some(format!(
                        "{} metric source gave no sample within {}",
                        source.kind(),
                        humantime::format_duration(limit)
                    )),
                ),
            }
        })
    }
}
