//! The canary's every path, without I/O: bake, gate, inconclusive, failing,
//! slider, pause, resume, rollback, deadline, approval targeting.

use super::*;

const S: Duration = Duration::from_secs(1);

fn plan(approval: Approval, on_failure: OnFailure) -> CanaryPlan {
    CanaryPlan {
        strategy: Strategy::Canary,
        steps: vec![10, 50, 100],
        bake: Duration::from_secs(3),
        approval,
        auto_approve: false,
        on_failure,
        failure_limit: 2,
        step_deadline: Duration::from_secs(10),
        bake_is_time_at_step: false,
    }
}

fn sample(verdict: Verdict) -> Input {
    Input::Sample {
        verdict,
        decisive: false,
        source_failed: false,
        reasons: vec!["why".into()],
        interval: S,
    }
}

fn apply(weight: u8, source: WeightSource) -> Decision {
    Decision::Apply {
        weight,
        source,
        auto_approved: false,
    }
}

/// A canary started and confirmed at its first step.
fn at_first_step(p: CanaryPlan) -> Canary {
    let mut c = Canary::new(p);
    let d = c.handle(Input::Start {
        weight: 0,
        resumed: false,
        approved: None,
    });
    assert_eq!(d, vec![apply(10, WeightSource::Plan)]);
    assert_eq!(c.handle(Input::WeightConfirmed(10)), vec![]);
    c
}

#[test]
fn a_step_bakes_then_opens_its_gate_and_an_approval_moves_on() {
    let mut c = at_first_step(plan(Approval::Manual, OnFailure::Rollback));
    assert_eq!(c.handle(sample(Verdict::Pass)), vec![]);
    assert_eq!(c.handle(sample(Verdict::Pass)), vec![]);
    let gate = GateTarget::Step { to: 50 };
    assert_eq!(
        c.handle(sample(Verdict::Pass)),
        vec![Decision::OpenGate(gate.clone())]
    );
    // Waiting at the gate, more healthy samples open nothing new.
    assert_eq!(c.handle(sample(Verdict::Pass)), vec![]);
    assert_eq!(
        c.handle(Input::Approved(gate)),
        vec![apply(50, WeightSource::Plan)]
    );
    assert_eq!(c.gate(), None);
}

#[test]
fn an_approval_for_another_gate_moves_nothing() {
    let mut c = at_first_step(plan(Approval::Manual, OnFailure::Rollback));
    for _ in 0..3 {
        c.handle(sample(Verdict::Pass));
    }
    let d = c.handle(Input::Approved(GateTarget::Step { to: 100 }));
    assert!(matches!(d.as_slice(), [Decision::Warn { .. }]), "{d:?}");
    assert_eq!(c.gate(), Some(&GateTarget::Step { to: 50 }));
    assert_eq!(c.pending(), None);
}

#[test]
fn a_second_approval_while_the_step_changes_cannot_skip_its_bake() {
    let mut c = at_first_step(plan(Approval::Manual, OnFailure::Rollback));
    for _ in 0..3 {
        c.handle(sample(Verdict::Pass));
    }
    let gate = GateTarget::Step { to: 50 };
    c.handle(Input::Approved(gate.clone()));
    // The same key again: there is no gate now.
    let d = c.handle(Input::Approved(gate));
    assert!(matches!(d.as_slice(), [Decision::Warn { .. }]), "{d:?}");
    c.handle(Input::WeightConfirmed(50));
    // The new step has not baked: no gate until three passing samples.
    assert_eq!(c.handle(sample(Verdict::Pass)), vec![]);
    assert_eq!(c.gate(), None);
}

#[test]
fn auto_approval_advances_after_the_bake_and_ends_at_100() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    c.handle(sample(Verdict::Pass));
    c.handle(sample(Verdict::Pass));
    assert_eq!(
        c.handle(sample(Verdict::Pass)),
        vec![apply(50, WeightSource::Plan)]
    );
    c.handle(Input::WeightConfirmed(50));
    for _ in 0..2 {
        c.handle(sample(Verdict::Pass));
    }
    assert_eq!(
        c.handle(sample(Verdict::Pass)),
        vec![apply(100, WeightSource::Plan)]
    );
    c.handle(Input::WeightConfirmed(100));
    c.handle(sample(Verdict::Pass));
    c.handle(sample(Verdict::Pass));
    assert_eq!(c.handle(sample(Verdict::Pass)), vec![Decision::Done]);
    assert!(c.is_done());
}

#[test]
fn auto_approve_passes_a_manual_gate_on_record() {
    let mut p = plan(Approval::Manual, OnFailure::Rollback);
    p.auto_approve = true;
    let mut c = at_first_step(p);
    c.handle(sample(Verdict::Pass));
    c.handle(sample(Verdict::Pass));
    assert_eq!(
        c.handle(sample(Verdict::Pass)),
        vec![Decision::Apply {
            weight: 50,
            source: WeightSource::Plan,
            auto_approved: true
        }]
    );
}

#[test]
fn inconclusive_holds_the_step_and_does_not_bake() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    for _ in 0..4 {
        assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    }
    assert_eq!(c.baked(), Duration::ZERO);
    assert_eq!(c.pending(), None);
}

#[test]
fn a_step_past_its_deadline_warns_then_fails() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    let mut warned = false;
    for i in 1..=10 {
        let d = c.handle(sample(Verdict::Inconclusive));
        // Half the 10 s deadline (under the 30 s cap).
        if i == 5 {
            assert!(matches!(d.as_slice(), [Decision::Warn { .. }]), "{d:?}");
            warned = true;
        } else if i < 10 {
            assert_eq!(d, vec![], "sample {i}");
        } else {
            assert!(
                matches!(
                    d.as_slice(),
                    [Decision::DeadlinePassed { .. }, Decision::Rollback { .. }]
                ),
                "{d:?}"
            );
        }
    }
    assert!(warned);
}

#[test]
fn failing_samples_in_a_row_roll_back_and_a_pass_resets_the_count() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    assert_eq!(c.handle(sample(Verdict::Fail)), vec![]);
    assert_eq!(c.failing(), (1, 2));
    c.handle(sample(Verdict::Pass));
    assert_eq!(c.handle(sample(Verdict::Fail)), vec![]);
    let d = c.handle(sample(Verdict::Fail));
    assert!(matches!(d.as_slice(), [Decision::Rollback { .. }]), "{d:?}");
}

#[test]
fn a_blind_source_counts_as_failing() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    let blind = || Input::Sample {
        verdict: Verdict::Inconclusive,
        decisive: false,
        source_failed: true,
        reasons: vec!["connection refused".into()],
        interval: S,
    };
    assert_eq!(c.handle(blind()), vec![]);
    let d = c.handle(blind());
    assert!(
        matches!(&d[..], [Decision::Rollback { reason, .. }] if reason.contains("metric source")),
        "{d:?}"
    );
}

#[test]
fn on_failure_pause_holds_once_and_an_approval_of_the_hold_carries_on() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Pause));
    c.handle(sample(Verdict::Fail));
    let d = c.handle(sample(Verdict::Fail));
    assert!(
        matches!(
            d.as_slice(),
            [Decision::Pause { .. }, Decision::OpenGate(GateTarget::Hold)]
        ),
        "{d:?}"
    );
    assert!(c.held());
    // Still failing: no second pause.
    assert_eq!(c.handle(sample(Verdict::Fail)), vec![]);
    assert_eq!(c.handle(Input::Approved(GateTarget::Hold)), vec![]);
    assert!(!c.held());
    assert_eq!(c.gate(), None);
}

#[test]
fn resume_after_an_analysis_hold_clears_it() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Pause));
    c.handle(sample(Verdict::Fail));
    c.handle(sample(Verdict::Fail));
    c.handle(Input::Paused(false));
    assert!(!c.held());
    assert_eq!(c.gate(), None);
}

#[test]
fn pause_stops_the_bake_and_resume_advances_a_baked_step() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    c.handle(sample(Verdict::Pass));
    c.handle(sample(Verdict::Pass));
    c.handle(Input::Paused(true));
    assert_eq!(c.handle(sample(Verdict::Pass)), vec![]);
    assert_eq!(c.baked(), Duration::from_secs(2));
    c.handle(Input::Paused(false));
    assert_eq!(
        c.handle(sample(Verdict::Pass)),
        vec![apply(50, WeightSource::Plan)]
    );
}

#[test]
fn the_slider_applies_at_once_closes_the_gate_and_restarts_the_bake() {
    let mut c = at_first_step(plan(Approval::Manual, OnFailure::Rollback));
    for _ in 0..3 {
        c.handle(sample(Verdict::Pass));
    }
    assert!(c.gate().is_some());
    assert_eq!(
        c.handle(Input::SetWeight(30)),
        vec![apply(30, WeightSource::Operator)]
    );
    assert_eq!(c.gate(), None);
    c.handle(Input::WeightConfirmed(30));
    assert_eq!(c.baked(), Duration::ZERO);
    assert_eq!(c.next_step(), Some(50));
    // A second move while one is in flight is refused, not queued.
    c.handle(Input::SetWeight(40));
    let d = c.handle(Input::SetWeight(45));
    assert!(matches!(d.as_slice(), [Decision::Warn { .. }]), "{d:?}");
}

#[test]
fn samples_during_a_weight_change_judge_neither_step() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    c.handle(Input::SetWeight(30));
    assert_eq!(c.handle(sample(Verdict::Fail)), vec![]);
    assert_eq!(c.handle(sample(Verdict::Fail)), vec![]);
    assert_eq!(c.failing(), (0, 2));
}

#[test]
fn drift_triggers_on_failure() {
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    let d = c.handle(Input::Drift { router_weight: 100 });
    assert!(
        matches!(&d[..], [Decision::Rollback { reason, .. }] if reason.contains("100%")),
        "{d:?}"
    );
}

#[test]
fn blue_green_under_manual_approval_waits_for_the_switch() {
    let mut p = plan(Approval::Manual, OnFailure::Rollback);
    p.strategy = Strategy::BlueGreen;
    p.steps = vec![100];
    let mut c = Canary::new(p);
    let gate = GateTarget::Step { to: 100 };
    assert_eq!(
        c.handle(Input::Start {
            weight: 0,
            resumed: false,
            approved: None
        }),
        vec![Decision::OpenGate(gate.clone())]
    );
    assert_eq!(
        c.handle(Input::Approved(gate)),
        vec![apply(100, WeightSource::Plan)]
    );
}

#[test]
fn a_resumed_canary_carries_on_at_its_weight_or_applies_an_approved_step() {
    let mut c = Canary::new(plan(Approval::Manual, OnFailure::Rollback));
    assert_eq!(
        c.handle(Input::Start {
            weight: 50,
            resumed: true,
            approved: None
        }),
        vec![]
    );
    assert_eq!(c.weight(), 50);
    assert_eq!(c.next_step(), Some(100));
    let mut c = Canary::new(plan(Approval::Manual, OnFailure::Rollback));
    assert_eq!(
        c.handle(Input::Start {
            weight: 10,
            resumed: true,
            approved: Some(50)
        }),
        vec![apply(50, WeightSource::Resume)]
    );
}

#[test]
fn a_step_put_back_on_a_group_applies_on_failure_at_the_weight_before() {
    // Rollback: the router's failure starts it, as a check's would.
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Rollback));
    for _ in 0..3 {
        c.handle(sample(Verdict::Pass));
    }
    assert_eq!(c.pending(), Some(50));
    let d = c.handle(Input::WeightReverted {
        weight: 10,
        reason: "lb3 did not confirm 50%".into(),
    });
    assert!(
        matches!(&d[..], [Decision::Rollback { reason, source: RollbackSource::Check }] if reason.contains("lb3")),
        "{d:?}"
    );
    assert_eq!((c.weight(), c.pending()), (10, None));

    // Pause: held at the weight before, the operator decides; an approval
    // of the hold bakes the step again before the next try.
    let mut c = at_first_step(plan(Approval::Auto, OnFailure::Pause));
    for _ in 0..3 {
        c.handle(sample(Verdict::Pass));
    }
    let d = c.handle(Input::WeightReverted {
        weight: 10,
        reason: "lb3 did not confirm 50%".into(),
    });
    assert!(
        matches!(
            &d[..],
            [Decision::Pause { .. }, Decision::OpenGate(GateTarget::Hold)]
        ),
        "{d:?}"
    );
    assert_eq!(
        (c.weight(), c.pending(), c.baked()),
        (10, None, Duration::ZERO)
    );
    assert_eq!(c.handle(Input::Approved(GateTarget::Hold)), vec![]);
    for _ in 0..2 {
        assert_eq!(c.handle(sample(Verdict::Pass)), vec![]);
    }
    assert_eq!(
        c.handle(sample(Verdict::Pass)),
        vec![apply(50, WeightSource::Plan)]
    );
}

fn sequential(approval: Approval, on_failure: OnFailure) -> CanaryPlan {
    CanaryPlan {
        bake_is_time_at_step: true,
        ..plan(approval, on_failure)
    }
}

fn decisive_fail() -> Input {
    Input::Sample {
        verdict: Verdict::Fail,
        decisive: true,
        source_failed: false,
        reasons: vec!["errors: evidence reached 1/alpha".into()],
        interval: S,
    }
}

#[test]
fn sequential_a_decisive_fail_rolls_back_at_once_before_the_bake() {
    let mut c = at_first_step(sequential(Approval::Auto, OnFailure::Rollback));
    assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    let d = c.handle(decisive_fail());
    assert!(
        matches!(&d[..], [Decision::Rollback { reason, source: RollbackSource::Analysis }] if reason.contains("1/alpha")),
        "{d:?}"
    );
    // With on_failure = "pause": held at once, and not again until approved.
    let mut c = at_first_step(sequential(Approval::Auto, OnFailure::Pause));
    let d = c.handle(decisive_fail());
    assert!(
        matches!(
            &d[..],
            [Decision::Pause { .. }, Decision::OpenGate(GateTarget::Hold)]
        ),
        "{d:?}"
    );
    assert_eq!(c.handle(decisive_fail()), vec![]);
    // Ignored while a weight change is in flight: the driver repeats it.
    let mut c = at_first_step(sequential(Approval::Auto, OnFailure::Rollback));
    c.handle(Input::SetWeight(20));
    assert_eq!(c.handle(decisive_fail()), vec![]);
}

#[test]
fn sequential_the_bake_is_time_at_the_step_and_only_a_pass_advances() {
    let mut c = at_first_step(sequential(Approval::Auto, OnFailure::Rollback));
    // Inconclusive samples bake the step (the judge passes only after it).
    assert!(!c.baked_after(S));
    assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    assert!(c.baked_after(S));
    assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    assert_eq!(c.baked(), 3 * S);
    // Baked, still inconclusive: held until the judge passes.
    assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    assert_eq!(
        c.handle(sample(Verdict::Pass)),
        vec![apply(50, WeightSource::Plan)]
    );
    // A guard's fail (not decisive) counts toward failure_limit as before,
    // and bakes nothing.
    c.handle(Input::WeightConfirmed(50));
    assert_eq!(c.handle(sample(Verdict::Fail)), vec![]);
    assert_eq!(c.baked(), Duration::ZERO);
    let d = c.handle(sample(Verdict::Fail));
    assert!(matches!(&d[..], [Decision::Rollback { .. }]), "{d:?}");
    // A source that fails bakes nothing either.
    let mut c = at_first_step(sequential(Approval::Auto, OnFailure::Rollback));
    c.handle(Input::Sample {
        verdict: Verdict::Inconclusive,
        decisive: false,
        source_failed: true,
        reasons: vec![],
        interval: S,
    });
    assert_eq!(c.baked(), Duration::ZERO);
    // Resuming after a pause does not advance on an inconclusive step.
    let mut c = at_first_step(sequential(Approval::Auto, OnFailure::Rollback));
    for _ in 0..4 {
        c.handle(sample(Verdict::Inconclusive));
    }
    c.handle(Input::Paused(true));
    assert_eq!(c.handle(Input::Paused(false)), vec![]);
}

#[test]
fn sequential_a_manual_gate_opens_on_an_undecided_judge_but_not_on_a_failing_or_blind_one() {
    let gate = |to| vec![Decision::OpenGate(GateTarget::Step { to })];
    // Baked and undecided: the operator may approve on their own judgement.
    let mut c = at_first_step(sequential(Approval::Manual, OnFailure::Rollback));
    for _ in 0..2 {
        assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    }
    assert_eq!(c.handle(sample(Verdict::Inconclusive)), gate(50));
    assert!(!c.passed());
    // One approval moves one step; the next step bakes again.
    assert_eq!(
        c.handle(Input::Approved(GateTarget::Step { to: 50 })),
        vec![apply(50, WeightSource::Plan)]
    );
    c.handle(Input::WeightConfirmed(50));
    assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    assert_eq!(
        c.handle(Input::Approved(GateTarget::Step { to: 100 }))
            .len(),
        1,
        "a gate that is not open is refused (warned)"
    );
    assert_eq!(c.pending(), None);

    // A guard failing at the end of the bake keeps the gate shut.
    let mut c = at_first_step(sequential(Approval::Manual, OnFailure::Rollback));
    for _ in 0..2 {
        c.handle(sample(Verdict::Inconclusive));
    }
    assert_eq!(c.handle(sample(Verdict::Fail)), vec![]);
    assert_eq!(c.gate(), None);
    // So does a source that gave nothing.
    let mut c = at_first_step(sequential(Approval::Manual, OnFailure::Rollback));
    for _ in 0..2 {
        c.handle(sample(Verdict::Inconclusive));
    }
    let blind = Input::Sample {
        verdict: Verdict::Inconclusive,
        decisive: false,
        source_failed: true,
        reasons: vec![],
        interval: S,
    };
    assert_eq!(c.handle(blind.clone()), vec![]);
    assert_eq!(c.gate(), None);
    // An automatic plan still waits for the judge's pass.
    let mut c = at_first_step(sequential(Approval::Auto, OnFailure::Rollback));
    for _ in 0..4 {
        assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    }
    // And at 100% the stage ends on a pass only.
    let mut c = at_first_step(sequential(Approval::Manual, OnFailure::Rollback));
    c.handle(Input::SetWeight(100));
    c.handle(Input::WeightConfirmed(100));
    for _ in 0..4 {
        assert_eq!(c.handle(sample(Verdict::Inconclusive)), vec![]);
    }
    assert!(!c.is_done());
    assert_eq!(c.handle(sample(Verdict::Pass)), vec![Decision::Done]);
}
