//! The canary's decisions as a pure state machine: the traffic stage's state
//! plus one input (a confirmed weight, an analysis verdict, an operator's
//! approval, slider, pause or resume) gives the decisions to carry out (apply
//! a weight, open a gate, pause, roll back, warn, done). No I/O and no clock:
//! the traffic driver does the I/O and feeds the results back in.

use std::time::Duration;

use crate::domain::{
    Approval, GateTarget, OnFailure, RollbackSource, Strategy, Verdict, WeightSource,
};

/// What the traffic stage was asked to do (from the plan and the run's flags).
#[derive(Debug, Clone)]
pub struct CanaryPlan {
    pub strategy: Strategy,
    /// Strictly increasing percents ending at 100.
    pub steps: Vec<u8>,
    /// Least healthy time per step.
    pub bake: Duration,
    pub approval: Approval,
    /// `--auto-approve`: manual gates pass by themselves, on record.
    pub auto_approve: bool,
    pub on_failure: OnFailure,
    /// Failing samples in a row (or source failures) before `on_failure`.
    pub failure_limit: u32,
    /// A step with no verdict for this long: `on_failure`.
    pub step_deadline: Duration,
    /// The sequential judge: the bake is time at the step without a failing
    /// sample (the judge passes only once it is over), and the step advances
    /// on a pass only. Otherwise the bake is time on passing samples.
    pub bake_is_time_at_step: bool,
}

/// One thing that happened, fed to [`Canary::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The stage starts with the router at `weight` (read back). `resumed`
    /// carries on an interrupted deployment at that weight; `approved` is a
    /// step approved before the interruption and not yet applied.
    Start {
        weight: u8,
        resumed: bool,
        approved: Option<u8>,
    },
    /// The router confirmed `weight`.
    WeightConfirmed(u8),
    /// A group's change was not confirmed by every member, and every member
    /// was put back to `weight` (the step before): `on_failure` applies.
    WeightReverted { weight: u8, reason: String },
    /// One analysis sample over `interval` of time.
    Sample {
        verdict: Verdict,
        /// A fail that needs no more samples: the sequential judge's evidence
        /// reached 1/alpha (`failure_limit` does not apply).
        decisive: bool,
        /// The metric source gave no sample (an error, a timeout).
        source_failed: bool,
        reasons: Vec<String>,
        interval: Duration,
    },
    /// The router's real weight differs from the confirmed one.
    Drift { router_weight: u8 },
    /// The operator approved this gate (the engine checked it was open).
    Approved(GateTarget),
    /// The operator moved the slider.
    SetWeight(u8),
    /// Automatic progression paused or resumed.
    Paused(bool),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Ask the router for `weight` and report back with `WeightConfirmed`.
    Apply {
        weight: u8,
        source: WeightSource,
        /// A manual gate passed by `--auto-approve` (journal it as such).
        auto_approved: bool,
    },
    /// Wait for the operator's approval of this gate.
    OpenGate(GateTarget),
    /// `on_failure = "pause"`: hold the weight and wait for the operator.
    Pause { reason: String },
    Rollback {
        reason: String,
        /// The analysis (failing samples, no verdict), or a router (drift,
        /// a group's step reverted).
        source: RollbackSource,
    },
    /// Worth a line on screen and in the journal.
    Warn { reason: String },
    /// The step deadline passed with no verdict (journal it, then the
    /// `Pause` or `Rollback` that follows applies).
    DeadlinePassed { reason: String },
    /// The canary carries all traffic and has baked: the stage is done.
    Done,
}

/// The traffic stage's state.
#[derive(Debug, Clone)]
pub struct Canary {
    plan: CanaryPlan,
    /// The weight the router confirmed last.
    weight: u8,
    /// A weight asked of the router and not yet confirmed.
    pending: Option<u8>,
    /// Healthy time accumulated at this weight.
    baked: Duration,
    /// Time at this weight without a verdict toward the next one.
    undecided: Duration,
    deadline_warned: bool,
    failing: u32,
    blind: u32,
    gate: Option<GateTarget>,
    paused: bool,
    /// The analysis paused progression (`on_failure = "pause"`).
    held: bool,
    /// The last sample at this step passed.
    last_pass: bool,
    /// The last sample at this step was judged and neither passed nor
    /// failed (the source answered; the judge needs more requests).
    last_undecided: bool,
    done: bool,
}

impl Canary {
    pub fn new(plan: CanaryPlan) -> Canary {
        Canary {
            plan,
            weight: 0,
            pending: None,
            baked: Duration::ZERO,
            undecided: Duration::ZERO,
            deadline_warned: false,
            failing: 0,
            blind: 0,
            gate: None,
            paused: false,
            held: false,
            last_pass: false,
            last_undecided: false,
            done: false,
        }
    }

    pub fn weight(&self) -> u8 {
        self.weight
    }
    pub fn pending(&self) -> Option<u8> {
        self.pending
    }
    pub fn baked(&self) -> Duration {
        self.baked
    }
    pub fn gate(&self) -> Option<&GateTarget> {
        self.gate.as_ref()
    }
    /// Failing samples in a row so far, and the limit.
    pub fn failing(&self) -> (u32, u32) {
        (self.failing.max(self.blind), self.plan.failure_limit)
    }
    pub fn is_done(&self) -> bool {
        self.done
    }
    pub fn held(&self) -> bool {
        self.held
    }
    /// The last sample at this step passed (with the sequential judge: the
    /// judge passed the step).
    pub fn passed(&self) -> bool {
        self.last_pass
    }

    /// Whether the bake is over once a sample over `interval` is counted:
    /// what the sequential judge is told, since it passes only after the bake.
    pub fn baked_after(&self, interval: Duration) -> bool {
        self.baked.saturating_add(interval) >= self.plan.bake
    }

    /// The next planned step above the current weight.
    pub fn next_step(&self) -> Option<u8> {
        let base = self.pending.unwrap_or(self.weight);
        self.plan.steps.iter().copied().find(|s| *s > base)
    }

    fn manual(&self) -> bool {
        self.plan.approval == Approval::Manual && !self.plan.auto_approve
    }

    fn apply(&mut self, weight: u8, source: WeightSource, auto_approved: bool) -> Decision {
        self.pending = Some(weight);
        self.gate = None;
        Decision::Apply {
            weight,
            source,
            auto_approved,
        }
    }

    fn reset_step(&mut self) {
        self.baked = Duration::ZERO;
        self.undecided = Duration::ZERO;
        self.deadline_warned = false;
        self.failing = 0;
        self.blind = 0;
        self.last_pass = false;
        self.last_undecided = false;
    }

    /// Takes one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Decision> {
        if self.done {
            return Vec::new();
        }
        match input {
            Input::Start {
                weight,
                resumed,
                approved,
            } => self.start(weight, resumed, approved),
            Input::WeightConfirmed(w) => {
                self.pending = None;
                self.weight = w;
                self.reset_step();
                Vec::new()
            }
            Input::WeightReverted { weight, reason } => {
                self.pending = None;
                self.weight = weight;
                self.reset_step();
                self.failure(reason, RollbackSource::Check)
            }
            Input::Sample {
                verdict,
                decisive,
                source_failed,
                reasons,
                interval,
            } => self.sample(verdict, decisive, source_failed, reasons, interval),
            Input::Drift { router_weight } => {
                let reason = format!(
                    "the router applies {router_weight}% but {}% is on record: progression held",
                    self.weight
                );
                self.failure(reason, RollbackSource::Check)
            }
            Input::Approved(target) => self.approved(target),
            Input::SetWeight(w) => {
                if self.pending.is_some() {
                    return vec![Decision::Warn {
                        reason: format!(
                            "weight {w}% not applied: a weight change is still in flight"
                        ),
                    }];
                }
                if w == self.weight {
                    return Vec::new();
                }
                self.held = false;
                vec![self.apply(w, WeightSource::Operator, false)]
            }
            Input::Paused(p) => {
                self.paused = p;
                if !p {
                    if self.gate == Some(GateTarget::Hold) {
                        self.gate = None;
                    }
                    self.held = false;
                    self.failing = 0;
                    self.blind = 0;
                    return self.advance_if_baked();
                }
                Vec::new()
            }
        }
    }

    fn start(&mut self, weight: u8, resumed: bool, approved: Option<u8>) -> Vec<Decision> {
        self.weight = weight;
        if let Some(to) = approved.filter(|to| *to > weight) {
            return vec![self.apply(to, WeightSource::Resume, false)];
        }
        if resumed && weight > 0 {
            // Carry on at the recorded step; it bakes (and is approved) again.
            return Vec::new();
        }
        let first = self.plan.steps.first().copied().unwrap_or(100);
        if self.plan.strategy == Strategy::BlueGreen && self.manual() {
            // The switch waits for the operator; a canary's first step goes
            // at once (deploy and smoke passed).
            let gate = GateTarget::Step { to: first };
            self.gate = Some(gate.clone());
            return vec![Decision::OpenGate(gate)];
        }
        let auto = self.plan.strategy == Strategy::BlueGreen && self.plan.auto_approve;
        vec![self.apply(first, WeightSource::Plan, auto)]
    }

    fn sample(
        &mut self,
        verdict: Verdict,
        decisive: bool,
        source_failed: bool,
        reasons: Vec<String>,
        interval: Duration,
    ) -> Vec<Decision> {
        if self.pending.is_some() {
            // The weight is changing: this sample judges neither step.
            return Vec::new();
        }
        self.blind = if source_failed { self.blind + 1 } else { 0 };
        self.last_pass = verdict == Verdict::Pass;
        self.last_undecided = verdict == Verdict::Inconclusive && !source_failed;
        let mut out = Vec::new();
        let counting = self.gate.is_none() && !self.paused;
        match verdict {
            Verdict::Pass => {
                self.failing = 0;
                if counting {
                    self.baked = self.baked.saturating_add(interval);
                    self.undecided = Duration::ZERO;
                    self.deadline_warned = false;
                }
            }
            Verdict::Fail => self.failing += 1,
            Verdict::Inconclusive => {
                if counting {
                    self.undecided = self.undecided.saturating_add(interval);
                    if self.plan.bake_is_time_at_step && !source_failed {
                        self.baked = self.baked.saturating_add(interval);
                    }
                }
            }
        }
        if decisive && verdict == Verdict::Fail {
            out.extend(self.failure(
                format!(
                    "analysis failed at {}%: {}",
                    self.weight,
                    reasons.join("; ")
                ),
                RollbackSource::Analysis,
            ));
            return out;
        }
        let limit = self.plan.failure_limit;
        if self.blind >= limit {
            out.extend(self.failure(
                format!(
                    "the metric source failed {} samples in a row at {}%: {}",
                    self.blind,
                    self.weight,
                    reasons.join("; ")
                ),
                RollbackSource::Analysis,
            ));
            return out;
        }
        if self.failing >= limit {
            out.extend(self.failure(
                format!(
                    "analysis failed {} samples in a row at {}%: {}",
                    self.failing,
                    self.weight,
                    reasons.join("; ")
                ),
                RollbackSource::Analysis,
            ));
            return out;
        }
        let deadline = self.plan.step_deadline;
        if !deadline.is_zero() && self.undecided >= deadline {
            let reason = format!(
                "no verdict at {}% for {} (step_deadline): {}",
                self.weight,
                humantime::format_duration(deadline),
                if reasons.is_empty() {
                    "the analysis stayed inconclusive".to_string()
                } else {
                    reasons.join("; ")
                }
            );
            self.undecided = Duration::ZERO;
            out.push(Decision::DeadlinePassed {
                reason: reason.clone(),
            });
            out.extend(self.failure(reason, RollbackSource::Analysis));
            return out;
        }
        // Warned early enough to act on: half the deadline, at most 30 s in.
        let warn_after = (deadline / 2).min(Duration::from_secs(30));
        if !deadline.is_zero() && !self.deadline_warned && self.undecided >= warn_after {
            self.deadline_warned = true;
            out.push(Decision::Warn {
                reason: format!(
                    "no verdict at {}% for {} ({}): on_failure = \"{}\" applies at {}",
                    self.weight,
                    humantime::format_duration(self.undecided),
                    if reasons.is_empty() {
                        "inconclusive".to_string()
                    } else {
                        reasons.join("; ")
                    },
                    self.plan.on_failure.as_str(),
                    humantime::format_duration(deadline)
                ),
            });
        }
        out.extend(self.advance_if_baked());
        out
    }

    /// `on_failure`: roll back, or hold once and wait for the operator.
    fn failure(&mut self, reason: String, source: RollbackSource) -> Vec<Decision> {
        match self.plan.on_failure {
            OnFailure::Rollback => vec![Decision::Rollback { reason, source }],
            OnFailure::Pause if self.held => Vec::new(),
            OnFailure::Pause => {
                self.held = true;
                self.paused = true;
                self.gate = Some(GateTarget::Hold);
                vec![
                    Decision::Pause {
                        reason: reason.clone(),
                    },
                    Decision::OpenGate(GateTarget::Hold),
                ]
            }
        }
    }

    /// After the bake: the next step, or its gate. With the sequential judge
    /// an automatic step waits for the judge's pass; a manual gate opens on
    /// a pass, or on a step the judge still calls undecided (the operator
    /// then approves on their own judgement, which the approval records) —
    /// never after a failing or blind sample, and at 100% only on a pass.
    fn advance_if_baked(&mut self) -> Vec<Decision> {
        let judged_enough = self.last_pass
            || (self.manual() && self.last_undecided && self.weight < 100 && self.failing == 0);
        if self.baked < self.plan.bake
            || self.gate.is_some()
            || self.paused
            || self.pending.is_some()
            || (self.plan.bake_is_time_at_step && !judged_enough)
        {
            return Vec::new();
        }
        if self.weight >= 100 {
            self.done = true;
            return vec![Decision::Done];
        }
        let Some(next) = self.next_step() else {
            return Vec::new();
        };
        if self.manual() {
            let gate = GateTarget::Step { to: next };
            self.gate = Some(gate.clone());
            return vec![Decision::OpenGate(gate)];
        }
        let auto = self.plan.approval == Approval::Manual && self.plan.auto_approve;
        vec![self.apply(next, WeightSource::Plan, auto)]
    }

    fn approved(&mut self, target: GateTarget) -> Vec<Decision> {
        if self.gate.as_ref() != Some(&target) {
            return vec![Decision::Warn {
                reason: format!("approval of {target} does not match the canary's gate"),
            }];
        }
        self.gate = None;
        match target {
            GateTarget::Step { to } => vec![self.apply(to, WeightSource::Plan, false)],
            GateTarget::Hold => {
                self.held = false;
                self.paused = false;
                self.failing = 0;
                self.blind = 0;
                self.advance_if_baked()
            }
            GateTarget::Check { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
#[path = "canary_tests.rs"]
mod tests;
