//! The traffic stage's decisions, driven in-process: a stand-in router that
//! records weights and a command metric source reading figures the test
//! writes. (The real routers and sources have tests of their own.)

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cutover::domain::{GateTarget, Operator, Outcome, RollbackSource, Verdict, WeightSource};
use cutover::engine::snapshot::Gate;
use cutover::engine::{self, Command, EngineHandle, EngineOptions, Fence};
use cutover::record::Event;
use cutover::router::BuiltRouter;

mod common;
use common::recording::RecordingRouter;

const HEALTHY: &str = r#"{"canary":{"requests":100,"errors":0,"p99_ms":10},"stable":{"requests":300,"errors":0,"p99_ms":10}}"#;
const FAILING: &str = r#"{"canary":{"requests":100,"errors":40,"p99_ms":10},"stable":{"requests":300,"errors":0,"p99_ms":10}}"#;
const THIN: &str = r#"{"canary":{"requests":2,"errors":0,"p99_ms":10},"stable":{"requests":300,"errors":0,"p99_ms":10}}"#;

/// Starts the engine on a traffic-only plan; the metric figures are read from
/// `metrics.json` in `dir` at every sample.
async fn start(
    dir: &Path,
    traffic: &str,
    auto_approve: bool,
) -> (EngineHandle, Arc<RecordingRouter>) {
    start_fenced(dir, traffic, auto_approve, None).await
}

/// As [`start`], the release lock's fence given to the engine.
async fn start_fenced(
    dir: &Path,
    traffic: &str,
    auto_approve: bool,
    fence: Option<Fence>,
) -> (EngineHandle, Arc<RecordingRouter>) {
    let text = format!(
        r#"[deployment]
service = "svc"
version = "v2"
previous = "v1"
state_dir = "state"

{traffic}

[traffic.router]
kind = "command"
set_weight = "true"

[analysis]
method = "threshold"
interval = "100ms"
window = "1s"
min_requests = 10
failure_limit = 3
max_error_rate = 0.05

[analysis.source]
kind = "command"
sample = "cat metrics.json"
"#
    );
    let mut plan =
        cutover::config::parse(&text, "test.toml", dir, &|_| None).expect("a valid plan");
    // The sample command runs in the working directory: give it an absolute path.
    if let cutover::config::SourcePlan::Command { sample } = &mut plan.analysis.source {
        *sample = format!("cat '{}'", dir.join("metrics.json").display());
    }
    let router = Arc::new(RecordingRouter {
        weight: AtomicU8::new(0),
    });
    let mut opts = EngineOptions::new(Operator::named("tester"));
    opts.auto_approve = auto_approve;
    opts.fence = fence;
    opts.router = Some(BuiltRouter {
        router: router.clone(),
        stats: None,
        listen: None,
        connections: None,
        group: None,
    });
    (
        engine::start(plan, opts).await.expect("engine starts"),
        router,
    )
}

fn set_metrics(dir: &Path, body: &str) {
    let tmp = dir.join("metrics.tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(tmp, dir.join("metrics.json")).unwrap();
}

/// Reads records until one matches, at most `limit`.
async fn until_event(
    handle: &mut EngineHandle,
    limit: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(limit, async {
        loop {
            let record = handle.records.recv().await.expect("the engine is running");
            if pred(&record.event) {
                return record.event;
            }
        }
    })
    .await
    .expect("the event in time")
}

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn manual_approval_waits_after_the_bake_then_promotes() {
    let dir = tempfile::tempdir().unwrap();
    set_metrics(dir.path(), HEALTHY);
    let (mut h, router) = start(
        dir.path(),
        "[traffic]\nsteps = [10, 50, 100]\nbake = \"300ms\"\napproval = \"manual\"",
        false,
    )
    .await;
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 10, .. })
    })
    .await;
    // Baked: the snapshot shows the gate, and nothing moves on by itself.
    tokio::time::timeout(
        LIMIT,
        h.snapshots
            .wait_for(|s| matches!(s.gate, Some(Gate::Step { from: 10, to: 50 }))),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(router.weight.load(Ordering::SeqCst), 10);
    h.commands
        .send(Command::Approve {
            gate: GateTarget::Step { to: 50 },
        })
        .await
        .unwrap();
    let approved = until_event(&mut h, LIMIT, |e| matches!(e, Event::Approved { .. })).await;
    assert!(
        matches!(approved, Event::Approved { step: Some(50), ref operator, .. } if operator == "tester")
    );
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 50, .. })
    })
    .await;
    // The next gate opens only once the step to 50% has baked.
    let gate = tokio::time::timeout(
        LIMIT,
        h.snapshots
            .wait_for(|s| matches!(s.gate, Some(Gate::Step { from: 50, to: 100 }))),
    )
    .await
    .unwrap()
    .map(|_| ());
    if gate.is_err() {
        let mut rest = Vec::new();
        while let Ok(r) = h.records.try_recv() {
            rest.push(r.event.describe());
        }
        panic!(
            "the engine ended before the gate to 100%: {:?}\n{}",
            h.task.await,
            rest.join("\n")
        );
    }
    h.commands
        .send(Command::Approve {
            gate: GateTarget::Step { to: 100 },
        })
        .await
        .unwrap();
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 100, .. })
    })
    .await;
    assert_eq!(h.task.await.unwrap(), Outcome::Succeeded);
    assert_eq!(router.weight.load(Ordering::SeqCst), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_little_traffic_holds_the_step_and_never_promotes() {
    let dir = tempfile::tempdir().unwrap();
    set_metrics(dir.path(), THIN);
    let (mut h, router) = start(
        dir.path(),
        "[traffic]\nsteps = [10, 100]\nbake = \"200ms\"\napproval = \"auto\"",
        false,
    )
    .await;
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 10, .. })
    })
    .await;
    // Many inconclusive samples later, still at the first step.
    for _ in 0..8 {
        let e = until_event(&mut h, LIMIT, |e| matches!(e, Event::Analysis { .. })).await;
        assert!(matches!(
            e,
            Event::Analysis {
                verdict: Verdict::Inconclusive,
                ..
            }
        ));
    }
    assert_eq!(router.weight.load(Ordering::SeqCst), 10);
    // Enough traffic again: the bake completes and the canary is promoted.
    set_metrics(dir.path(), HEALTHY);
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 100, .. })
    })
    .await;
    assert_eq!(h.task.await.unwrap(), Outcome::Succeeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_pause_holds_the_weight_for_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    set_metrics(dir.path(), HEALTHY);
    let (mut h, router) = start(
        dir.path(),
        "[traffic]\nsteps = [25, 100]\nbake = \"10s\"\napproval = \"auto\"\non_failure = \"pause\"",
        false,
    )
    .await;
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 25, .. })
    })
    .await;
    set_metrics(dir.path(), FAILING);
    let paused = until_event(&mut h, LIMIT, |e| matches!(e, Event::Paused { .. })).await;
    assert!(
        matches!(paused, Event::Paused { ref operator, ref reason, .. } if operator == "analysis" && reason.contains("error rate"))
    );
    tokio::time::timeout(
        LIMIT,
        h.snapshots
            .wait_for(|s| matches!(s.gate, Some(Gate::AnalysisHold { .. }))),
    )
    .await
    .unwrap()
    .unwrap();
    // Held, not rolled back, while the analysis keeps failing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(router.weight.load(Ordering::SeqCst), 25);
    // The operator decides: here, roll back.
    h.commands
        .send(Command::rollback_now("operator pressed R"))
        .await
        .unwrap();
    let started = until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::RollbackStarted { .. })
    })
    .await;
    assert!(matches!(
        started,
        Event::RollbackStarted {
            source: RollbackSource::Operator,
            ..
        }
    ));
    assert_eq!(h.task.await.unwrap(), Outcome::RolledBack);
    assert_eq!(router.weight.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blind_metric_source_triggers_the_rollback() {
    let dir = tempfile::tempdir().unwrap();
    set_metrics(dir.path(), HEALTHY);
    let (mut h, router) = start(
        dir.path(),
        "[traffic]\nsteps = [25, 100]\nbake = \"10s\"\napproval = \"auto\"",
        false,
    )
    .await;
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 25, .. })
    })
    .await;
    std::fs::remove_file(dir.path().join("metrics.json")).unwrap();
    let started = until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::RollbackStarted { .. })
    })
    .await;
    match started {
        Event::RollbackStarted { reason, source, .. } => {
            assert_eq!(source, RollbackSource::Analysis);
            assert!(
                reason.contains("metric source failed 3 samples in a row"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Weight 0 is confirmed, but with the metric source blind stable cannot
    // be seen serving, and this router has no health view: not a clean
    // rollback, and the outcome says so.
    assert_eq!(h.task.await.unwrap(), Outcome::RollbackFailed);
    assert_eq!(router.weight.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_slider_is_journaled_and_restarts_the_bake() {
    let dir = tempfile::tempdir().unwrap();
    set_metrics(dir.path(), HEALTHY);
    let (mut h, router) = start(
        dir.path(),
        "[traffic]\nsteps = [10, 50, 100]\nbake = \"1h\"\napproval = \"auto\"",
        false,
    )
    .await;
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 10, .. })
    })
    .await;
    h.commands.send(Command::SetWeight(30)).await.unwrap();
    let asked = until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightRequested { weight: 30, .. })
    })
    .await;
    assert!(
        matches!(asked, Event::WeightRequested { source: WeightSource::Operator, ref operator, .. } if operator == "tester")
    );
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 30, .. })
    })
    .await;
    assert_eq!(router.weight.load(Ordering::SeqCst), 30);
    // The next planned step is now the one above the operator's weight.
    tokio::time::timeout(
        LIMIT,
        h.snapshots.wait_for(|s| {
            s.traffic
                .as_ref()
                .is_some_and(|t| t.next_step == Some(50) && t.current_weight == 30)
        }),
    )
    .await
    .unwrap()
    .unwrap();
    h.commands
        .send(Command::HoldAndQuit {
            reason: "test done".into(),
        })
        .await
        .unwrap();
    assert_eq!(h.task.await.unwrap(), Outcome::Interrupted);
    // Held where it was.
    assert_eq!(router.weight.load(Ordering::SeqCst), 30);
}

/// A release lock the test can take away: the fence refuses once `lost`.
fn fence(lost: Arc<AtomicBool>) -> Fence {
    Fence {
        kind: "etcd".into(),
        key: "/cutover/svc/default".into(),
        revision: 42,
        holder: "tester on here (pid 1, since now)".into(),
        ttl_ms: 3000,
        check: Arc::new(move || {
            if lost.load(Ordering::SeqCst) {
                Err("no keep-alive acknowledged".into())
            } else {
                Ok(42)
            }
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_lock_refuses_the_next_step_before_it_is_written_and_holds() {
    let dir = tempfile::tempdir().unwrap();
    set_metrics(dir.path(), HEALTHY);
    let lost = Arc::new(AtomicBool::new(false));
    let (mut h, router) = start_fenced(
        dir.path(),
        "[traffic]\nsteps = [10, 50, 100]\nbake = \"300ms\"\napproval = \"auto\"",
        false,
        Some(fence(lost.clone())),
    )
    .await;
    let held = until_event(&mut h, LIMIT, |e| matches!(e, Event::LockHeld { .. })).await;
    assert!(matches!(held, Event::LockHeld { revision: 42, .. }));
    let requested = until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightRequested { weight: 10, .. })
    })
    .await;
    assert!(matches!(
        requested,
        Event::WeightRequested {
            fence: Some(42),
            ..
        }
    ));
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 10, .. })
    })
    .await;
    // The lease goes while the step bakes; nobody tells the engine: the
    // fence alone stops the next write.
    lost.store(true, Ordering::SeqCst);
    let gone = until_event(&mut h, LIMIT, |e| matches!(e, Event::LockLost { .. })).await;
    assert!(
        matches!(gone, Event::LockLost { ref why, revision: 42, .. } if why.contains("keep-alive"))
    );
    assert_eq!(h.task.await.unwrap(), Outcome::Interrupted);
    assert_eq!(router.weight.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_after_the_lock_is_lost_writes_nothing_and_stays_resumable() {
    let dir = tempfile::tempdir().unwrap();
    set_metrics(dir.path(), HEALTHY);
    let lost = Arc::new(AtomicBool::new(false));
    let (mut h, router) = start_fenced(
        dir.path(),
        "[traffic]\nsteps = [10, 100]\nbake = \"1h\"\napproval = \"auto\"",
        false,
        Some(fence(lost.clone())),
    )
    .await;
    until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::WeightApplied { weight: 10, .. })
    })
    .await;
    lost.store(true, Ordering::SeqCst);
    h.commands.send(Command::rollback_now("R")).await.unwrap();
    until_event(&mut h, LIMIT, |e| matches!(e, Event::LockLost { .. })).await;
    let finished = until_event(&mut h, LIMIT, |e| {
        matches!(e, Event::DeploymentFinished { .. })
    })
    .await;
    assert!(
        matches!(finished, Event::DeploymentFinished { outcome: Outcome::Interrupted, ref reason, .. } if reason.as_deref().is_some_and(|r| r.contains("resume"))),
        "{finished:?}"
    );
    assert_eq!(router.weight.load(Ordering::SeqCst), 10);
    // The journal still has the rollback under way: a resume finishes it.
    let read = cutover::record::reader::read(&h.journal_path).expect("journal");
    let point = cutover::record::resume::ResumePoint::from_journal(&read).expect("a point");
    assert!(point.rollback.is_some());
}
