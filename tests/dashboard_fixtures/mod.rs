//! Engine snapshots for the dashboard's screen tests and the render benchmark:
//! one checkout deployment seen at the moments the operator cares about.

#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;

use cutover::domain::{
    MemberWeight, OnFailure, Outcome, StageName, Strategy, TrackPair, TrackSample, Verdict,
};
use cutover::engine::snapshot::{
    AnalysisPoint, CheckStatus, CheckView, EvidenceView, Gate, KindView, Phase, RecoveryView,
    StageStatus, StageView, Thresholds, TrafficView,
};
use cutover::engine::Snapshot;
use cutover::judge::{EventKind, PassBasis, TrackCounts, Verdict as Call};
use cutover::ui::log_ring::{LogLevel, LogRing};

/// 2025-03-14T09:00:00Z, the fixed start of every fixture deployment.
pub fn started_at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_741_942_800, 0).unwrap_or_default()
}

pub fn at(secs: i64) -> DateTime<Utc> {
    started_at() + TimeDelta::seconds(secs)
}

fn check(kind: &'static str, name: &str, target: &str) -> CheckView {
    CheckView {
        name: name.to_string(),
        kind: kind.to_string(),
        target: target.to_string(),
        status: CheckStatus::Pending,
        duration: None,
        started_at: None,
        attempt: 1,
        optional: false,
        output_tail: Vec::new(),
    }
}

fn passed(mut check: CheckView, started: i64, millis: u64) -> CheckView {
    check.status = CheckStatus::Passed;
    check.started_at = Some(at(started));
    check.duration = Some(Duration::from_millis(millis));
    check
}

fn prepare() -> Vec<CheckView> {
    vec![
        check(
            "artifact",
            "Artifact matches what was tested",
            "dist/checkout.tar.gz",
        ),
        check(
            "http",
            "Target environment healthy",
            "http://127.0.0.1:9001/health",
        ),
        check("run", "Rollback procedure known", "test -x ./rollback.sh"),
        check("manual", "Stakeholders notified", PROMPT),
    ]
}

/// The manual check's prompt: longer than any pane is wide.
pub const PROMPT: &str = "Post in #releases that checkout v2.4.1 goes out now, and make sure someone who can fix checkout is on call until the canary is at 100%";

fn checkpoint() -> Vec<CheckView> {
    vec![
        check("run", "Back up orders database", "./backup.sh orders"),
        check("run", "Verify the backup", "./verify-backup.sh orders"),
    ]
}

fn deploy() -> Vec<CheckView> {
    vec![
        check("run", "Start v2.4.1 instances", "./start.sh v2.4.1"),
        check("run", "Run database migrations", "./migrate.sh up"),
        check(
            "http",
            "All instances report v2.4.1",
            "http://127.0.0.1:9002/version",
        ),
    ]
}

fn smoke() -> Vec<CheckView> {
    vec![
        check(
            "http",
            "Critical endpoints answer",
            "http://127.0.0.1:9002/health",
        ),
        check("tcp", "Database reachable", "127.0.0.1:5432"),
        check("run", "Key user flows", "./smoke.sh checkout-flow"),
    ]
}

fn verify() -> Vec<CheckView> {
    vec![
        check("run", "Integration suite", "./integration.sh"),
        check("http", "Monitoring active", "http://127.0.0.1:9090/-/ready"),
    ]
}

fn finalize() -> Vec<CheckView> {
    vec![
        check("run", "Record the release", "./record.sh"),
        check("run", "Stop v2.4.0 instances", "./stop.sh v2.4.0"),
    ]
}

fn rollback() -> Vec<CheckView> {
    vec![
        check("run", "Stop v2.4.1 instances", "./stop.sh v2.4.1"),
        check("http", "Stable answers", "http://127.0.0.1:9001/health"),
        check("run", "Notify the team", "./notify.sh rollback"),
    ]
}

fn stage(name: StageName, status: StageStatus, checks: Vec<CheckView>) -> StageView {
    StageView {
        name,
        status,
        checks,
    }
}

fn all_passed(checks: Vec<CheckView>, from: i64) -> Vec<CheckView> {
    checks
        .into_iter()
        .enumerate()
        .map(|(i, c)| passed(c, from + 3 * i as i64, 1_200 + 700 * i as u64))
        .collect()
}

fn thresholds() -> Thresholds {
    Thresholds {
        max_error_rate: Some(0.01),
        max_p99_ms: Some(500.0),
        max_error_rate_increase: Some(0.005),
        max_p99_ratio: Some(3.0),
        min_requests: 20,
        sequential: false,
    }
}

fn traffic(weight: u8) -> TrafficView {
    let steps = vec![5, 25, 50, 100];
    TrafficView {
        strategy: Strategy::Canary,
        next_step: steps.iter().copied().find(|s| *s > weight),
        steps,
        router: "builtin".to_string(),
        current_weight: weight,
        requested_weight: None,
        waiting_approval: false,
        paused: false,
        baked: Duration::from_secs(40),
        bake: Duration::from_secs(60),
        rollback_weight_ms: None,
        failing: (0, 3),
        approval_manual: true,
        on_failure: OnFailure::Rollback,
        members: Vec::new(),
    }
}

fn track(requests: u64, error_rate: f64, p99_ms: f64) -> TrackSample {
    TrackSample {
        requests,
        errors: (requests as f64 * error_rate).round() as u64,
        error_rate: Some(error_rate),
        p50_ms: Some(p99_ms / 3.0),
        p95_ms: Some(p99_ms * 0.8),
        p99_ms: Some(p99_ms),
        totals: None,
    }
}

/// Analysis samples every 5 s from `from` to `to` seconds; `bad_after` makes the
/// canary go wrong from that second on.
pub fn samples(from: i64, to: i64, weight: u8, bad_after: Option<i64>) -> Vec<AnalysisPoint> {
    (from..=to)
        .step_by(5)
        .map(|t| {
            let wobble = ((t as f64) / 17.0).sin();
            let bad = bad_after.is_some_and(|b| t >= b);
            let canary = if bad {
                track(60, 0.042 + 0.004 * wobble, 640.0 + 40.0 * wobble)
            } else {
                track(60, 0.003 + 0.0015 * wobble, 180.0 + 25.0 * wobble)
            };
            let stable = track(
                240,
                0.002 + 0.001 * wobble.cos(),
                160.0 + 15.0 * wobble.cos(),
            );
            let (verdict, reasons) = if bad {
                (
                    Verdict::Fail,
                    vec!["canary error rate 4.20% above max_error_rate 1.00%".to_string()],
                )
            } else {
                (Verdict::Pass, Vec::new())
            };
            AnalysisPoint {
                t: t as f64,
                at: at(t),
                weight,
                pair: TrackPair { canary, stable },
                verdict,
                reasons,
            }
        })
        .collect()
}

fn base() -> Snapshot {
    Snapshot {
        deployment_id: "20250314T090000-checkout-v2.4.1".to_string(),
        service: "checkout".to_string(),
        version: "v2.4.1".to_string(),
        previous: Some("v2.4.0".to_string()),
        environment: Some("production".to_string()),
        operator: "alice from 10.0.4.17".to_string(),
        journal_path: ".cutover/deployments/20250314T090000-checkout-v2.4.1.jsonl".to_string(),
        started_at: started_at(),
        finished_at: None,
        phase: Phase::Running,
        paused: false,
        current_stage: None,
        stages: vec![
            stage(StageName::Prepare, StageStatus::Pending, prepare()),
            stage(StageName::Checkpoint, StageStatus::Pending, checkpoint()),
            stage(StageName::Deploy, StageStatus::Pending, deploy()),
            stage(StageName::Smoke, StageStatus::Pending, smoke()),
            stage(StageName::Traffic, StageStatus::Pending, Vec::new()),
            stage(StageName::Verify, StageStatus::Pending, verify()),
            stage(StageName::Finalize, StageStatus::Pending, finalize()),
        ],
        // The plan moves traffic: the pane is there from the start, at 0%.
        traffic: Some(TrafficView {
            baked: Duration::ZERO,
            ..traffic(0)
        }),
        samples: Vec::new(),
        thresholds: thresholds(),
        verdict: None,
        gate: None,
        outcome: None,
        message: None,
        rollback_requested_at: None,
        evidence: None,
        recovery: None,
        revision: 1,
    }
}

/// Deploy running: migrations print as they go. Shown at 95 s.
pub fn checks_running() -> (Snapshot, DateTime<Utc>) {
    let mut s = base();
    s.current_stage = Some(StageName::Deploy);
    s.stages[0] = stage(
        StageName::Prepare,
        StageStatus::Passed,
        all_passed(prepare(), 1),
    );
    s.stages[1] = stage(
        StageName::Checkpoint,
        StageStatus::Passed,
        all_passed(checkpoint(), 40),
    );
    let mut checks = deploy();
    checks[0] = passed(checks[0].clone(), 70, 8_400);
    checks[1].status = CheckStatus::Running;
    checks[1].started_at = Some(at(79));
    checks[1].duration = Some(Duration::from_secs(15));
    checks[1].output_tail = vec![
        "applying 0041_add_order_index ... ok".to_string(),
        "applying 0042_split_address ... ok".to_string(),
        "applying 0043_backfill_region ... 61%".to_string(),
    ];
    s.stages[2] = stage(StageName::Deploy, StageStatus::Running, checks);
    s.revision = 40;
    (s, at(95))
}

/// Prepare waits for the operator to confirm a manual check. Shown at 32 s.
pub fn waiting_for_manual_check() -> (Snapshot, DateTime<Utc>) {
    let mut s = base();
    s.current_stage = Some(StageName::Prepare);
    let mut checks = prepare();
    for (i, c) in checks.iter_mut().take(3).enumerate() {
        *c = passed(c.clone(), 1 + 3 * i as i64, 900 + 400 * i as u64);
    }
    checks[3].status = CheckStatus::WaitingApproval;
    checks[3].started_at = Some(at(10));
    s.stages[0] = stage(StageName::Prepare, StageStatus::Running, checks);
    s.gate = Some(Gate::Manual {
        stage: StageName::Prepare,
        check: "Stakeholders notified".to_string(),
        prompt: PROMPT.to_string(),
    });
    s.revision = 12;
    (s, at(32))
}

fn through_smoke(mut s: Snapshot) -> Snapshot {
    s.stages[0] = stage(
        StageName::Prepare,
        StageStatus::Passed,
        all_passed(prepare(), 1),
    );
    s.stages[1] = stage(
        StageName::Checkpoint,
        StageStatus::Passed,
        all_passed(checkpoint(), 40),
    );
    s.stages[2] = stage(
        StageName::Deploy,
        StageStatus::Passed,
        all_passed(deploy(), 70),
    );
    s.stages[3] = stage(
        StageName::Smoke,
        StageStatus::Passed,
        all_passed(smoke(), 150),
    );
    s
}

/// The canary at 25%, healthy, baking; four minutes of samples. Shown at 12 min.
pub fn canary_at_25() -> (Snapshot, DateTime<Utc>) {
    let mut s = through_smoke(base());
    s.current_stage = Some(StageName::Traffic);
    s.stages[4] = stage(StageName::Traffic, StageStatus::Running, Vec::new());
    s.traffic = Some(traffic(25));
    s.samples = samples(420, 715, 25, None);
    s.verdict = Some(Verdict::Pass);
    s.message = Some("canary 25%: analysis pass, baking".to_string());
    s.revision = 310;
    (s, at(720))
}

/// The canary at 25% through a group of `n` HAProxy routers, member `dead`
/// (1-based) unreadable since the last sample.
pub fn group_at_25(n: usize, dead: Option<usize>) -> (Snapshot, DateTime<Utc>) {
    let (mut s, at) = canary_at_25();
    if let Some(t) = s.traffic.as_mut() {
        t.router = "group".into();
        t.members = (1..=n)
            .map(|i| {
                let down = dead == Some(i);
                MemberWeight {
                    name: format!("lb{i}"),
                    router: "haproxy".into(),
                    weight: (!down).then_some(25),
                    confirmed: !down,
                    confirmed_ms: (!down).then_some(1.5),
                    error: down.then(|| "haproxy router: cannot connect".to_string()),
                }
            })
            .collect();
    }
    (s, at)
}

/// The analysis failed at 25%; traffic is back on stable, rollback checks run. At 13 min.
pub fn rolling_back() -> (Snapshot, DateTime<Utc>) {
    let mut s = through_smoke(base());
    s.phase = Phase::RollingBack;
    s.current_stage = Some(StageName::Rollback);
    s.stages[4] = stage(StageName::Traffic, StageStatus::Failed, Vec::new());
    let mut checks = rollback();
    checks[0] = passed(checks[0].clone(), 772, 2_100);
    checks[1].status = CheckStatus::Running;
    checks[1].started_at = Some(at(775));
    checks[1].output_tail = vec!["attempt 1: 200 OK in 12 ms, body ok".to_string()];
    s.stages[5] = stage(StageName::Verify, StageStatus::Skipped, verify());
    s.stages[6] = stage(StageName::Rollback, StageStatus::Running, checks);
    let mut t = traffic(0);
    t.next_step = None;
    t.rollback_weight_ms = Some(184.0);
    t.baked = Duration::ZERO;
    s.traffic = Some(t);
    s.samples = samples(480, 770, 25, Some(740));
    s.verdict = Some(Verdict::Fail);
    s.message = Some("rolling back: analysis failed 3 samples in a row at 25%: canary error rate 4.20% above max_error_rate 1.00%".to_string());
    s.revision = 350;
    (s, at(778))
}

/// The rollback finished cleanly. Finished at 13m05s. As the engine leaves
/// it: verify's checks never ran (skipped), the last stage is the rollback.
pub fn rolled_back() -> (Snapshot, DateTime<Utc>) {
    let (mut s, _) = rolling_back();
    s.phase = Phase::Finished;
    s.current_stage = Some(StageName::Rollback);
    s.stages[5]
        .checks
        .iter_mut()
        .for_each(|c| c.status = CheckStatus::Skipped);
    s.stages[6] = stage(
        StageName::Rollback,
        StageStatus::Passed,
        all_passed(rollback(), 772),
    );
    s.outcome = Some(Outcome::RolledBack);
    s.finished_at = Some(at(785));
    s.message = Some(
        "analysis failed 3 samples in a row at 25%: canary error rate 4.20% above max_error_rate 1.00%"
            .to_string(),
    );
    s.revision = 360;
    (s, at(790))
}

/// The judge's evidence: 5xx heading toward a rollback (1.9× stable so far),
/// slow with no events yet; 400 requests a second.
pub fn evidence(failed: bool) -> EvidenceView {
    let errors = KindView {
        kind: EventKind::Errors,
        to_fail: if failed { 1.0 } else { 0.46 },
        to_pass: if failed { 0.0 } else { 0.12 },
        ratio: Some(if failed { 3.6 } else { 1.9 }),
        ratio_low: if failed { 1.4 } else { 0.62 },
        ratio_high: Some(if failed { 9.8 } else { 5.1 }),
        verdict: if failed {
            Call::Fail
        } else {
            Call::Inconclusive
        },
        more_requests: if failed { None } else { Some(6_400) },
        canary: TrackCounts::new(4_800, if failed { 62 } else { 31 }),
        stable: TrackCounts::new(21_000, 72),
    };
    let slow = KindView {
        kind: EventKind::Slow,
        to_fail: 0.0,
        to_pass: if failed { 0.88 } else { 1.0 },
        ratio: None,
        ratio_low: 0.0,
        ratio_high: None,
        verdict: if failed {
            Call::Inconclusive
        } else {
            Call::Pass(PassBasis::Rate { rate_high: 0.0019 })
        },
        more_requests: if failed { Some(900) } else { None },
        canary: TrackCounts::new(4_800, 0),
        stable: TrackCounts::new(21_000, 0),
    };
    EvidenceView {
        alpha: 0.01,
        tolerance: 1.0,
        slow_ms: 500,
        kinds: vec![errors, slow],
        unavailable: Vec::new(),
        requests_per_s: Some(400.0),
        failed,
        baked: true,
    }
}

/// `canary_at_25` judged by the sequential test: baked, waiting for its pass.
pub fn judged_at_25() -> (Snapshot, DateTime<Utc>) {
    let (mut s, now) = canary_at_25();
    s.thresholds.sequential = true;
    s.verdict = Some(Verdict::Inconclusive);
    s.message = Some("canary 25%: baked, the judge has not passed it yet".to_string());
    if let Some(t) = s.traffic.as_mut() {
        t.baked = t.bake;
    }
    s.evidence = Some(evidence(false));
    (s, now)
}

/// Rolled back by the judge, and stable shown recovered afterwards.
pub fn judged_rolled_back() -> (Snapshot, DateTime<Utc>) {
    let (mut s, now) = rolled_back();
    s.thresholds.sequential = true;
    s.evidence = Some(evidence(true));
    s.message = Some(
        "analysis failed at 25%: 5xx: canary worse than stable, ratio 1.40×–9.80×: evidence 240 reached 1/alpha = 200"
            .to_string(),
    );
    s.recovery = Some(RecoveryView {
        summary: "stable recovered: 5xx at most 1.6× its rate before, slow rate at most 0.21%"
            .to_string(),
        recovered_ms: Some(4_200.0),
        done: true,
    });
    (s, now)
}

/// Every step taken, verified and finalized. Finished at 24m10s.
pub fn succeeded() -> (Snapshot, DateTime<Utc>) {
    let mut s = through_smoke(base());
    s.phase = Phase::Finished;
    s.current_stage = Some(StageName::Finalize);
    s.stages[4] = stage(StageName::Traffic, StageStatus::Passed, Vec::new());
    s.stages[5] = stage(
        StageName::Verify,
        StageStatus::Passed,
        all_passed(verify(), 1_300),
    );
    s.stages[6] = stage(
        StageName::Finalize,
        StageStatus::Passed,
        all_passed(finalize(), 1_400),
    );
    let mut t = traffic(100);
    t.baked = Duration::from_secs(60);
    s.traffic = Some(t);
    s.samples = samples(1_150, 1_440, 100, None);
    s.verdict = Some(Verdict::Pass);
    s.outcome = Some(Outcome::Succeeded);
    s.finished_at = Some(at(1_450));
    s.message = None;
    s.revision = 900;
    (s, at(1_460))
}

/// A canary moving through its steps, one snapshot per `tick` of 100 ms: the
/// weight steps up every 60 s and a sample lands every 5 s (bench input).
pub fn moving_canary(tick: u64) -> (Snapshot, DateTime<Utc>) {
    let (mut s, _) = canary_at_25();
    let secs = 600 + (tick / 10) as i64;
    let weight = [5u8, 25, 50, 100][((tick / 600) % 4) as usize];
    let t = s.traffic.get_or_insert_with(|| traffic(weight));
    t.current_weight = weight;
    t.baked = Duration::from_millis((tick % 600) * 100);
    s.samples = samples(secs - 300, secs - secs % 5, weight, None);
    s.revision = tick;
    let now = started_at() + TimeDelta::milliseconds(600_000 + (tick * 100) as i64);
    (s, now)
}

/// The canary at 25%, paused by the operator. Shown at 12 min.
pub fn paused() -> (Snapshot, DateTime<Utc>) {
    let (mut s, now) = canary_at_25();
    s.paused = true;
    if let Some(t) = s.traffic.as_mut() {
        t.paused = true;
    }
    s.message = Some("paused by the operator".to_string());
    (s, now)
}

/// The step to 50% baked and waits for `a`, while the last two samples
/// failed: the escalation and the gate both show. Shown at 12 min.
pub fn failing_2_of_3() -> (Snapshot, DateTime<Utc>) {
    let (mut s, now) = canary_at_25();
    s.samples = samples(420, 715, 25, Some(710));
    s.verdict = Some(Verdict::Fail);
    s.gate = Some(Gate::Step { from: 25, to: 50 });
    if let Some(t) = s.traffic.as_mut() {
        t.failing = (2, 3);
        t.waiting_approval = true;
        t.baked = t.bake;
    }
    s.message = None;
    (s, now)
}

/// `on_failure = "pause"`: three failing samples held the canary at 25%.
pub fn holding() -> (Snapshot, DateTime<Utc>) {
    let (mut s, now) = canary_at_25();
    s.samples = samples(420, 715, 25, Some(705));
    s.verdict = Some(Verdict::Fail);
    s.paused = true;
    let reason = "analysis failed 3 samples in a row at 25%: canary error rate 4.20% above max_error_rate 1.00%";
    s.gate = Some(Gate::AnalysisHold {
        reason: reason.to_string(),
    });
    if let Some(t) = s.traffic.as_mut() {
        t.failing = (3, 3);
        t.paused = true;
        t.on_failure = OnFailure::Pause;
    }
    s.message = Some(reason.to_string());
    (s, now)
}

/// `R` in prepare: nothing was changed; the stages after it never ran.
pub fn failed_in_prepare() -> (Snapshot, DateTime<Utc>) {
    let (mut s, _) = waiting_for_manual_check();
    s.phase = Phase::Finished;
    s.gate = None;
    s.stages[0].status = StageStatus::Failed;
    s.stages[0].checks[3].status = CheckStatus::Skipped;
    s.stages[0].checks[3].output_tail = vec!["interrupted".to_string()];
    for stage in &mut s.stages[1..] {
        stage.status = StageStatus::Skipped;
        stage
            .checks
            .iter_mut()
            .for_each(|c| c.status = CheckStatus::Skipped);
    }
    s.outcome = Some(Outcome::Failed);
    s.finished_at = Some(at(34));
    s.message = Some("stopped before any change (operator pressed R)".to_string());
    (s, at(40))
}

/// A 3× p99 regression at 25%: stable answers in about 7 ms, the canary in
/// about 23 ms, over 3× stable (the ratio limit) and far under max_p99_ms.
pub fn latency_regression() -> (Snapshot, DateTime<Utc>) {
    let (mut s, now) = canary_at_25();
    s.samples = (420..=715)
        .step_by(5)
        .map(|t| {
            let wobble = ((t as f64) / 13.0).sin();
            let slow = t >= 690;
            let canary = track(
                60,
                0.0,
                if slow {
                    23.0 + wobble
                } else {
                    7.5 + wobble / 2.0
                },
            );
            let stable = track(240, 0.0, 7.0 + wobble.cos() / 2.0);
            let (verdict, reasons) = if slow {
                (
                    Verdict::Fail,
                    vec![
                        "canary p99 23 ms is 3.29× stable's 7 ms, above max_p99_ratio 3"
                            .to_string(),
                    ],
                )
            } else {
                (Verdict::Pass, Vec::new())
            };
            AnalysisPoint {
                t: t as f64,
                at: at(t),
                weight: 25,
                pair: TrackPair { canary, stable },
                verdict,
                reasons,
            }
        })
        .collect();
    s.verdict = Some(Verdict::Fail);
    if let Some(t) = s.traffic.as_mut() {
        t.failing = (1, 3);
    }
    s.message = None;
    (s, now)
}

/// The engine's log lines of a canary at 25%, one of them long enough to wrap.
pub fn log_lines() -> Arc<LogRing> {
    let ring = Arc::new(LogRing::default());
    let lines = [
        (650, LogLevel::Info, "stage traffic started"),
        (655, LogLevel::Info, "weight 25% requested by alice (plan)"),
        (656, LogLevel::Info, "weight 25% applied by the builtin router in 3 ms"),
        (700, LogLevel::Debug, "sampling the builtin metric source over 30s"),
        (705, LogLevel::Info, "analysis at 25%: pass — canary 60 req, 0.30% errors, p99 180ms | stable 240 req, 0.20% errors, p99 160ms"),
        (710, LogLevel::Warn, "analysis at 25%: fail — canary error rate 4.20% above max_error_rate 1.00%; canary p99 640 ms above max_p99_ms 500"),
        (715, LogLevel::Warn, "analysis at 25%: fail — canary error rate 4.20% above max_error_rate 1.00%"),
    ];
    for (secs, level, text) in lines {
        ring.push(at(secs), level, text);
    }
    ring
}
