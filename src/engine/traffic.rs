//! The traffic stage's driver: it does the I/O (router calls, metric samples,
//! the router's read-back) and feeds the results and the operator's commands
//! to the pure canary state machine, then carries out its decisions. A weight
//! change is a future of its own, so `R` is acted on while a slow router
//! works, and the weight never rises after it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;

use super::canary::{Canary, CanaryPlan, Decision, Input};
use super::command::Effect;
use super::snapshot::Gate;
use super::split::{SplitDrift, SplitWatch};
use super::weights::{AfterChange, InFlight, Purpose, ROUTER_TIMEOUT};
use super::{Engine, Stop};
use crate::config::{Method, SourcePlan};
use crate::domain::{
    GateTarget, MemberWeight, Operator, StageName, StageOutcome, TrackPair, WeightSource,
};
use crate::record::Event;
use crate::router::group::common_weight;

/// A group's read-back against the weight on record: unreadable (a member
/// did not answer), the record's weight (every member carries it), or a
/// drift to the first member's other weight, with that member named.
fn group_read(members: &[MemberWeight], expected: u8) -> (Result<u8, String>, Option<String>) {
    if members.iter().any(|m| m.weight.is_none()) {
        return (common_weight(members), None);
    }
    match members.iter().find(|m| m.weight != Some(expected)) {
        Some(m) => {
            let w = m.weight.unwrap_or(expected);
            let detail = format!(
                "router {} of the group reads back {w}% on the analysis interval",
                m.name
            );
            (Ok(w), Some(detail))
        }
        None => (Ok(expected), None),
    }
}

/// A metric sample on its way: both tracks (or why there is none), and the
/// router's weight read back meanwhile (`None` when not read).
type Sampling = Pin<Box<dyn Future<Output = SampleResult> + Send>>;

pub(crate) struct SampleResult {
    pub pair: TrackPair,
    pub error: Option<String>,
    pub router_weight: Option<Result<u8, String>>,
    /// A group's members, each as read back meanwhile.
    pub members: Option<Vec<MemberWeight>>,
}

impl Engine {
    pub(crate) async fn traffic_stage(&mut self) -> Result<(), Stop> {
        let stage = StageName::Traffic;
        if self.resumed_stage(stage).is_some() {
            return Ok(());
        }
        let Some(tp) = self.plan.traffic.clone() else {
            self.state.stage = Some(stage);
            self.record(Event::StageStarted { stage })?;
            self.stage_end(stage, StageOutcome::NotConfigured)?;
            return Ok(());
        };
        self.stage_begin(stage)?;
        // From here on a rollback must put the router back and read it.
        self.traffic_touched = true;
        let weight = self.read_router_at_start().await?;
        let a = self.plan.analysis.clone();
        let mut canary = Canary::new(CanaryPlan {
            strategy: tp.strategy,
            steps: tp.steps.clone(),
            bake: tp.bake,
            approval: tp.approval,
            auto_approve: self.auto_approve,
            on_failure: tp.on_failure,
            failure_limit: a.failure_limit,
            step_deadline: tp.step_deadline,
            bake_is_time_at_step: a.method == Method::Sequential,
        });
        // One sequential test over the whole canary, from its first reading,
        // taken at once; stable's baseline ends here.
        self.sequential = super::judging::Sequential::default();
        self.state.evidence = None;
        let early = self.fill_baseline().await?;
        self.end_baseline()?;
        let resumed = self.resume.as_ref();
        let start = Input::Start {
            weight,
            resumed: resumed.and_then(|p| p.weight).is_some_and(|w| w > 0),
            approved: resumed.and_then(|p| p.approved_step),
        };
        let mut inflight: Option<InFlight> = None;
        // The operator behind the next slider weight, for the journal.
        let mut slider_operator: Option<Operator> = None;
        let first = canary.handle(start);
        self.carry_out(&mut canary, first, &mut inflight, &mut slider_operator)?;
        if self.state.paused {
            canary.handle(Input::Paused(true));
        }
        // A slider weight asked while stable's baseline was read.
        for effect in early {
            if let Effect::SetWeight { weight, operator } = effect {
                slider_operator = Some(operator);
                let decisions = canary.handle(Input::SetWeight(weight));
                self.carry_out(&mut canary, decisions, &mut inflight, &mut slider_operator)?;
            }
        }
        let mut next_sample = tokio::time::Instant::now();
        if a.method == Method::Threshold {
            next_sample += a.interval;
        }
        let mut sampling: Option<Sampling> = None;
        let mut unreadable = 0u32;
        // The split served, where the source is the router's own counts.
        let measurable = self.plan.traffic.as_ref().is_some_and(|t| t.measure_split)
            && matches!(
                self.plan.analysis.source,
                SourcePlan::Builtin | SourcePlan::Haproxy(_)
            );
        let mut split = SplitWatch::default();
        // The weight on record when the sample (and its read-back) began: a
        // read-back from before a change that landed meanwhile says nothing
        // of the weight now.
        let mut sampled_at = self.state.weight;
        while !canary.is_done() {
            self.show_canary(&canary);
            let unattended = self.unattended_deadline();
            let input = tokio::select! {
                biased;
                cmd = self.commands.recv() => match self.interpret(cmd) {
                    Err(stop) => {
                        if let Some(f) = inflight.take() {
                            self.abandon_weight(f.weight, &stop);
                        }
                        return Err(stop);
                    }
                    Ok(Effect::Approved(target, _)) => Some(Input::Approved(target)),
                    Ok(Effect::SetWeight { weight, operator }) => {
                        slider_operator = Some(operator);
                        Some(Input::SetWeight(weight))
                    }
                    Ok(Effect::PauseChanged) => Some(Input::Paused(self.state.paused)),
                    Ok(Effect::Done) => None,
                },
                () = super::attendance::until_deadline(unattended) => {
                    if let Err(stop) = self.on_unattended() {
                        if let Some(f) = inflight.take() {
                            self.abandon_weight(f.weight, &stop);
                        }
                        return Err(stop);
                    }
                    self.state.paused.then_some(Input::Paused(true))
                }
                result = async {
                    match inflight.as_mut() {
                        Some(f) => (&mut f.change).await,
                        None => std::future::pending().await,
                    }
                }, if inflight.is_some() => {
                    let Some(f) = inflight.take() else { continue };
                    match self.weight_result(f, result)? {
                        AfterChange::Input(input) => Some(input),
                        AfterChange::Start(revert) => {
                            inflight = Some(revert);
                            None
                        }
                    }
                }
                () = tokio::time::sleep_until(next_sample), if sampling.is_none() => {
                    next_sample += a.interval;
                    let now = tokio::time::Instant::now();
                    if next_sample < now {
                        next_sample = now + a.interval;
                    }
                    let read_back = inflight.is_none();
                    sampled_at = self.state.weight;
                    sampling = Some(self.sampler(a.window, read_back));
                    None
                }
                result = async {
                    match sampling.as_mut() {
                        Some(s) => s.await,
                        None => std::future::pending().await,
                    }
                }, if sampling.is_some() => {
                    sampling = None;
                    if let (Some(members), None) = (&result.members, &inflight) {
                        if sampled_at == self.state.weight {
                            self.show_members(members);
                        }
                    }
                    let measured = match (&result.error, &inflight) {
                        (None, None) if measurable => split.observe(
                            self.state.weight,
                            result.pair.canary.totals,
                            result.pair.stable.totals,
                        ),
                        _ => {
                            split.reset();
                            None
                        }
                    };
                    let baked = canary.baked_after(a.interval);
                    let mut inputs = vec![self.record_sample(result.pair, result.error, a.interval, baked)?];
                    let read_back = result.router_weight.filter(|_| {
                        inflight.is_none() && sampled_at == self.state.weight
                    });
                    if let Some(read) = read_back {
                        let (read, detail) = match &result.members {
                            Some(members) => group_read(members, self.state.weight),
                            None => (read, None),
                        };
                        inputs.extend(self.watch_router(read, detail, &mut unreadable, a.failure_limit)?);
                    }
                    if let Some(drift) = measured {
                        // A read-back drift this interval already said it.
                        if !inputs.iter().any(|i| matches!(i, Input::Drift { .. })) {
                            inputs.push(self.split_drift(drift)?);
                        }
                    }
                    for input in inputs {
                        let decisive = matches!(input, Input::Sample { decisive: true, .. });
                        let decisions = canary.handle(input);
                        if decisive
                            && decisions
                                .iter()
                                .any(|d| matches!(d, Decision::Rollback { .. } | Decision::Pause { .. }))
                        {
                            // Acted on; a hold the operator approves is not undone by it again.
                            self.sequential.fail_pending = false;
                        }
                        self.carry_out(&mut canary, decisions, &mut inflight, &mut slider_operator)?;
                    }
                    None
                }
            };
            if let Some(input) = input {
                let decisions = canary.handle(input);
                self.carry_out(&mut canary, decisions, &mut inflight, &mut slider_operator)?;
            }
        }
        self.set_gate(None);
        self.state.canary.next_step = None;
        self.stage_end(stage, StageOutcome::Passed)?;
        Ok(())
    }

    /// The router's weight before the first step. A router that cannot be
    /// read is a reason to stop; the rollback then finds out what it can.
    async fn read_router_at_start(&mut self) -> Result<u8, Stop> {
        let Some(router) = self.router.clone() else {
            return Ok(0);
        };
        let read = self
            .until(tokio::time::timeout(
                ROUTER_TIMEOUT,
                router.current_weight(),
            ))
            .await?;
        match read {
            Ok(Ok(w)) => {
                if w != 0 && self.resume.is_none() {
                    tracing::warn!(target: "cutover", "the router already sends {w}% to the canary before the first step");
                }
                self.state.weight = w;
                Ok(w)
            }
            Ok(Err(e)) => Err(self.router_stop(format!("cannot read the router's weight: {e}"))),
            Err(_) => Err(self.router_stop(format!(
                "the router gave no weight within {}",
                humantime::format_duration(ROUTER_TIMEOUT)
            ))),
        }
    }

    /// Carries out the canary's decisions, in order.
    fn carry_out(
        &mut self,
        canary: &mut Canary,
        decisions: Vec<Decision>,
        inflight: &mut Option<InFlight>,
        slider_operator: &mut Option<Operator>,
    ) -> Result<(), Stop> {
        for d in decisions {
            match d {
                Decision::Apply {
                    weight,
                    source,
                    auto_approved,
                } => {
                    if auto_approved {
                        let mut auto = self.operator.clone();
                        auto.account = format!("{} (auto-approve)", auto.account);
                        self.record(Event::Approved {
                            stage: StageName::Traffic,
                            step: Some(weight),
                            check: None,
                            operator: auto.to_string(),
                            by: Some(self.operator.clone()),
                            count: None,
                            needed: None,
                            judge_undecided: false,
                        })?;
                    }
                    let operator = match source {
                        WeightSource::Operator => slider_operator
                            .take()
                            .unwrap_or_else(|| self.operator.clone()),
                        _ => self.operator.clone(),
                    };
                    *inflight =
                        Some(self.request_weight(weight, source, &operator, Purpose::Step)?);
                }
                Decision::OpenGate(target) => {
                    let undecided =
                        self.plan.analysis.method == Method::Sequential && !canary.passed();
                    self.open_gate(target, undecided)
                }
                Decision::Pause { reason } => {
                    self.state.message = Some(reason.clone());
                    self.set_paused(true, super::command::Who::Engine("analysis"), &reason)?;
                }
                Decision::Rollback { reason, source } => {
                    return Err(Stop::Rollback {
                        reason,
                        source,
                        operator: self.operator.clone(),
                        requested_at: Utc::now(),
                    })
                }
                Decision::Warn { reason } => {
                    self.state.message = Some(reason.clone());
                    self.record(Event::Warning { message: reason })?;
                }
                Decision::DeadlinePassed { reason } => {
                    let deadline_ms = self
                        .plan
                        .traffic
                        .as_ref()
                        .map(|t| t.step_deadline.as_millis() as u64)
                        .unwrap_or(0);
                    self.record(Event::StepDeadline {
                        weight: canary.weight(),
                        deadline_ms,
                        reason,
                    })?;
                }
                Decision::Done => {}
            }
        }
        self.show_canary(canary);
        Ok(())
    }

    /// Opens a gate for the operator. `undecided`: a step's gate opened
    /// after the bake while the sequential judge has not passed the step, so
    /// the screen and the notice say the approval is the operator's call.
    fn open_gate(&mut self, target: GateTarget, undecided: bool) {
        let weight = self.state.weight;
        self.set_gate(Some(match &target {
            GateTarget::Step { to } => Gate::Step {
                from: weight,
                to: *to,
            },
            GateTarget::Hold => Gate::AnalysisHold {
                reason: self.state.message.clone().unwrap_or_default(),
            },
            GateTarget::Check { stage, check } => Gate::Manual {
                stage: *stage,
                check: check.clone(),
                prompt: String::new(),
            },
        }));
        if let GateTarget::Step { to } = target {
            let text = if weight == 0 {
                format!("the switch to {to}% waits for the operator")
            } else if undecided {
                format!(
                    "the canary at {weight}% baked; the judge has not passed it yet (no failure shown): next step {to}% on the operator's judgement"
                )
            } else {
                format!("the canary at {weight}% baked healthy: next step {to}%")
            };
            self.notify(crate::notify::NoticeKind::ApprovalNeeded, text);
            if undecided {
                self.state.message = Some(format!(
                    "canary {weight}%: baked, the judge undecided: a approves {to}% on your judgement, or wait for its verdict"
                ));
                tracing::info!(
                    target: "cutover",
                    "step at {weight}% baked, the judge undecided (no failure shown, not yet shown healthy): press a to go to {to}% on your own judgement, or wait for its verdict"
                );
            } else {
                tracing::info!(target: "cutover", "step at {weight}% baked: press a to go to {to}%");
            }
        }
        self.publish();
    }

    /// Shows the canary's progress.
    fn show_canary(&mut self, canary: &Canary) {
        self.state.canary.baked = canary.baked();
        self.state.canary.next_step = canary.next_step();
        self.state.canary.failing = canary.failing();
        self.publish();
    }

    /// Compares the router's read-back with the record: a drift is journaled,
    /// shown, and fed to the canary (which holds and applies `on_failure`).
    /// Journals and shows a measured split that differs from the weight.
    fn split_drift(&mut self, drift: SplitDrift) -> Result<Input, Stop> {
        let measured = drift.measured_weight();
        self.record(Event::WeightDrift {
            expected: drift.expected,
            router_weight: measured,
            detail: format!(
                "measured from the router's own counts: the canary served {} of {} requests ({:.1}%) at a weight of {}%",
                drift.canary, drift.requests, drift.measured, drift.expected
            ),
        })?;
        self.state.message = Some(format!(
            "SPLIT DRIFT: the canary serves {:.0}% of requests, the record says {}%",
            drift.measured, drift.expected
        ));
        Ok(Input::Drift {
            router_weight: measured,
        })
    }

    fn watch_router(
        &mut self,
        read: Result<u8, String>,
        detail: Option<String>,
        unreadable: &mut u32,
        limit: u32,
    ) -> Result<Vec<Input>, Stop> {
        match read {
            Ok(w) if w == self.state.weight => {
                *unreadable = 0;
                Ok(Vec::new())
            }
            Ok(w) => {
                *unreadable = 0;
                let detail = detail.unwrap_or_else(|| {
                    "read back from the router on the analysis interval".to_string()
                });
                self.record(Event::WeightDrift {
                    expected: self.state.weight,
                    router_weight: w,
                    detail,
                })?;
                self.state.message = Some(format!(
                    "WEIGHT DRIFT: the router applies {w}%, the record says {}%",
                    self.state.weight
                ));
                Ok(vec![Input::Drift { router_weight: w }])
            }
            Err(e) => {
                *unreadable += 1;
                tracing::warn!(target: "cutover", "the router's weight cannot be read ({unreadable} in a row): {e}");
                if *unreadable >= limit {
                    *unreadable = 0;
                    return Err(self.router_stop(format!(
                        "the router's weight could not be read {limit} times in a row: {e}"
                    )));
                }
                Ok(Vec::new())
            }
        }
    }

    /// One sample from the metric source, as a future of its own (a failing
    /// or slow source is no data, with the reason), and the router's weight
    /// read back meanwhile when `read_back`.
    pub(crate) fn sampler(&self, window: Duration, read_back: bool) -> Sampling {
        let source = self.source.clone();
        let router = self.router.clone().filter(|_| read_back);
        let group = self.group.clone().filter(|_| read_back);
        let limit = self.plan.analysis.interval.max(Duration::from_secs(2));
        Box::pin(async move {
            let sample = async {
                let Some(source) = source else {
                    return (TrackPair::default(), Some("no metric source".to_string()));
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
            };
            let no_weight = || format!("no weight within {}", humantime::format_duration(limit));
            let read = async {
                if let Some(group) = group {
                    return match tokio::time::timeout(limit, group.read()).await {
                        Ok(members) => (Some(common_weight(&members)), Some(members)),
                        Err(_) => (Some(Err(no_weight())), None),
                    };
                }
                let Some(router) = router else {
                    return (None, None);
                };
                let read = match tokio::time::timeout(limit, router.current_weight()).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(no_weight()),
                };
                (Some(read), None)
            };
            let ((pair, error), (router_weight, members)) = tokio::join!(sample, read);
            SampleResult {
                pair,
                error,
                router_weight,
                members,
            }
        })
    }
}
