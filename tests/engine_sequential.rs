//! The sequential judge in the engine, driven in-process: a stand-in router
//! that records weights, and a stand-in service that sends simulated requests
//! to the canary at the router's weight and writes both tracks' cumulative
//! counts (and the last second's figures) where the command metric source
//! reads them. (The real routers and sources have tests of their own.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover::domain::{Operator, Outcome, RollbackSource, Verdict};
use cutover::engine::{self, EngineHandle, EngineOptions};
use cutover::judge::{EventKind, Reading, Verdict as Call};
use cutover::record::{Event, RecoveryOutcome};
use cutover::router::BuiltRouter;

mod common;
use common::recording::RecordingRouter;

/// One track's counters.
#[derive(Default, Clone, Copy)]
struct Track {
    requests: u64,
    errors: u64,
    slow: u64,
}

/// Error and slow probabilities per request of each track, and what the
/// service has counted.
struct Service {
    canary_errors: f64,
    stable_errors: f64,
    canary_slow: f64,
    canary: Track,
    stable: Track,
    /// Counts of the last ticks (about a second), for the window figures.
    recent: Vec<(Track, Track)>,
    /// Counters go back to zero at the next tick (a restarted process).
    reset: bool,
}

/// Sends `PER_TICK` simulated requests every tick, to the canary at the
/// router's weight, and writes `metrics.json` until dropped.
struct Simulation {
    service: Arc<Mutex<Service>>,
    stop: Arc<AtomicBool>,
}

const PER_TICK: u64 = 100;
const TICK: Duration = Duration::from_millis(20);

impl Simulation {
    fn start(dir: &Path, router: Arc<RecordingRouter>, slow: bool) -> Simulation {
        let service = Arc::new(Mutex::new(Service {
            canary_errors: 0.0,
            stable_errors: 0.0,
            canary_slow: 0.0,
            canary: Track::default(),
            stable: Track::default(),
            recent: Vec::new(),
            reset: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, halt, path) = (service.clone(), stop.clone(), dir.join("metrics.json"));
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(7);
            while !halt.load(Ordering::SeqCst) {
                let share = f64::from(router.weight.load(Ordering::SeqCst)) / 100.0;
                {
                    let mut svc = s.lock().unwrap();
                    if svc.reset {
                        svc.reset = false;
                        svc.canary = Track::default();
                        svc.stable = Track::default();
                    }
                    let (mut c, mut st) = (Track::default(), Track::default());
                    for _ in 0..PER_TICK {
                        let to_canary = rng.f64() < share;
                        let (t, p_err, p_slow) = if to_canary {
                            (&mut c, svc.canary_errors, svc.canary_slow)
                        } else {
                            (&mut st, svc.stable_errors, 0.0)
                        };
                        t.requests += 1;
                        t.errors += u64::from(rng.f64() < p_err);
                        t.slow += u64::from(rng.f64() < p_slow);
                    }
                    let add = |total: &mut Track, t: Track| {
                        total.requests += t.requests;
                        total.errors += t.errors;
                        total.slow += t.slow;
                    };
                    add(&mut svc.canary, c);
                    add(&mut svc.stable, st);
                    svc.recent.push((c, st));
                    let keep = svc.recent.len().saturating_sub(50);
                    svc.recent.drain(..keep);
                    write(&path, &svc, slow);
                }
                std::thread::sleep(TICK);
            }
        });
        Simulation { service, stop }
    }

    fn set(&self, f: impl FnOnce(&mut Service)) {
        f(&mut self.service.lock().unwrap());
    }
}

impl Drop for Simulation {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The JSON the command source reads: the last second's figures and the
/// cumulative totals of each track.
fn write(path: &PathBuf, svc: &Service, slow: bool) {
    let track = |total: Track, pick: &dyn Fn(&(Track, Track)) -> Track| {
        let (n, e) = svc
            .recent
            .iter()
            .map(pick)
            .fold((0, 0), |(n, e), t| (n + t.requests, e + t.errors));
        let slow = if slow {
            format!(r#", "slow": {}"#, total.slow)
        } else {
            String::new()
        };
        format!(
            r#"{{"requests": {n}, "errors": {e}, "p99_ms": 10, "totals": {{"requests": {}, "errors": {}{slow}}}}}"#,
            total.requests, total.errors
        )
    };
    let body = format!(
        r#"{{"canary": {}, "stable": {}}}"#,
        track(svc.canary, &|r| r.0),
        track(svc.stable, &|r| r.1)
    );
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, body).is_ok() {
        let _ = std::fs::rename(tmp, path);
    }
}

/// Starts the engine on a sequential plan with the simulated service, every
/// gate passed by `--auto-approve`.
async fn start(
    dir: &Path,
    traffic: &str,
    analysis: &str,
    before: &str,
    slow: bool,
) -> (EngineHandle, Arc<RecordingRouter>, Simulation) {
    start_with(dir, traffic, analysis, before, slow, true).await
}

/// As [`start`]; `auto_approve` false leaves manual gates to the test.
async fn start_with(
    dir: &Path,
    traffic: &str,
    analysis: &str,
    before: &str,
    slow: bool,
    auto_approve: bool,
) -> (EngineHandle, Arc<RecordingRouter>, Simulation) {
    let text = format!(
        r#"[deployment]
service = "svc"
version = "v2"
previous = "v1"
state_dir = "state"

{before}

{traffic}

[traffic.router]
kind = "command"
set_weight = "true"

[analysis]
method = "sequential"
interval = "100ms"
window = "1s"
min_requests = 10
failure_limit = 3
max_error_rate = 0.05
{analysis}

[analysis.source]
kind = "command"
sample = "cat metrics.json"
"#
    );
    let mut plan =
        cutover::config::parse(&text, "test.toml", dir, &|_| None).expect("a valid plan");
    if let cutover::config::SourcePlan::Command { sample } = &mut plan.analysis.source {
        *sample = format!("cat '{}'", dir.join("metrics.json").display());
    }
    let router = Arc::new(RecordingRouter {
        weight: AtomicU8::new(0),
    });
    let sim = Simulation::start(dir, router.clone(), slow);
    // The first figures are there before the engine reads them.
    std::thread::sleep(TICK * 3);
    let mut opts = EngineOptions::new(Operator::named("tester"));
    opts.auto_approve = auto_approve;
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
        sim,
    )
}

/// Every event until the engine finishes, within `LIMIT`.
async fn all_events(h: &mut EngineHandle) -> (Outcome, Vec<Event>) {
    let mut events = Vec::new();
    let outcome = tokio::time::timeout(LIMIT, h.follow(|r| events.push(r.event.clone())))
        .await
        .expect("the engine finishes in time")
        .expect("the engine task");
    (outcome, events)
}

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_canary_is_rolled_back_at_the_first_sample_that_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    // A bake of an hour and a failure_limit of 3: neither is waited for.
    let (mut h, router, sim) = start(
        dir.path(),
        "[traffic]\nsteps = [10, 50, 100]\nbake = \"1h\"\napproval = \"auto\"",
        "",
        "",
        true,
    )
    .await;
    sim.set(|s| {
        s.stable_errors = 0.01;
        s.canary_errors = 0.3;
    });
    let (outcome, events) = all_events(&mut h).await;
    assert_eq!(outcome, Outcome::RolledBack);
    assert_eq!(router.weight.load(Ordering::SeqCst), 0);
    // The window's guard may fail the first sample at 10% (its first
    // requests); the judge fails at its first reading after the origin, and
    // that sample rolls back: no failure_limit is waited for.
    let failing: Vec<&Event> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Analysis {
                    verdict: Verdict::Fail,
                    sequential: Some(record),
                    ..
                } if record.kinds.iter().any(|k| k.verdict == Call::Fail)
            )
        })
        .collect();
    assert_eq!(
        failing.len(),
        1,
        "rolled back on the judge's first fail: {failing:#?}"
    );
    let guard_fails = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Analysis {
                    verdict: Verdict::Fail,
                    ..
                }
            )
        })
        .count();
    assert!(
        guard_fails < 3,
        "{guard_fails} failing samples: failure_limit decided"
    );
    let Event::Analysis {
        sequential: Some(record),
        weight,
        ..
    } = failing[0]
    else {
        panic!("{:?}", failing[0]);
    };
    assert_eq!(*weight, 10);
    assert_eq!(record.kinds_judged, 2);
    let errors = &record.kinds[0];
    assert_eq!(errors.kind, EventKind::Errors);
    assert_eq!(errors.verdict, Call::Fail);
    // Each of two kinds at alpha / 2: evidence at least 1/0.005.
    assert!(errors.evidence.ln_e_fail >= 200f64.ln(), "{errors:?}");
    assert!(errors.evidence.ratio_low > 1.0, "{errors:?}");
    assert_ne!(record.kinds[1].verdict, Call::Fail);
    let started = events
        .iter()
        .find_map(|e| match e {
            Event::RollbackStarted { reason, source, .. } => Some((reason, source)),
            _ => None,
        })
        .unwrap();
    assert_eq!(*started.1, RollbackSource::Analysis);
    assert!(started.0.contains("reached 1/alpha = 200"), "{}", started.0);
    // The first reading of the canary is its origin, the rest are readings.
    let records: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Analysis {
                sequential: Some(r),
                ..
            } => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert!(matches!(
        records[0].kinds[0].readings[..],
        [Reading::Rebase(_)]
    ));
    assert!(records[1..]
        .iter()
        .all(|r| matches!(r.kinds[0].readings[..], [Reading::Counts(_)] | [])));
    // The journal's records recompute to the same verdicts.
    let again = cutover::judge::kinds::replay(&records, None, None).unwrap();
    for (r, a) in records.iter().zip(&again) {
        assert_eq!(a.failed(), r.failed());
        assert_eq!(
            a.kinds.iter().map(|k| k.2).collect::<Vec<_>>(),
            r.kinds.iter().map(|k| k.verdict).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_canary_passes_each_step_after_its_bake_on_what_was_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, router, _sim) = start(
        dir.path(),
        "[traffic]\nsteps = [10, 50, 100]\nbake = \"500ms\"\napproval = \"auto\"",
        "",
        "",
        false,
    )
    .await;
    let (outcome, events) = all_events(&mut h).await;
    assert_eq!(outcome, Outcome::Succeeded);
    assert_eq!(router.weight.load(Ordering::SeqCst), 100);
    // No slow counts from this source: one kind, at the whole alpha.
    let mut passes_before_steps = 0;
    let mut last_analysis = None;
    for e in &events {
        match e {
            Event::Analysis {
                sequential: Some(r),
                verdict,
                reasons,
                ..
            } => {
                assert_eq!(r.kinds_judged, 1);
                assert_eq!(*verdict == Verdict::Pass, r.passed(), "{reasons:?}");
                assert_ne!(*verdict, Verdict::Fail, "{reasons:?}");
                if r.passed() {
                    assert!(r.baked, "a pass before the bake: {reasons:?}");
                    assert!(
                        reasons.iter().any(|x| x.contains("canary rate at most")),
                        "{reasons:?}"
                    );
                }
                last_analysis = Some(r.clone());
            }
            Event::WeightRequested { weight, .. } if *weight > 10 => {
                assert!(last_analysis.as_ref().is_some_and(|r| r.passed()));
                passes_before_steps += 1;
            }
            _ => {}
        }
    }
    assert_eq!(passes_before_steps, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counter_reset_is_journaled_and_judging_goes_on_from_the_new_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, _router, sim) = start(
        dir.path(),
        "[traffic]\nsteps = [20, 100]\nbake = \"1s\"\napproval = \"auto\"",
        "",
        "",
        false,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.set(|s| s.reset = true);
    let (outcome, events) = all_events(&mut h).await;
    assert_eq!(outcome, Outcome::Succeeded);
    let reset = events
        .iter()
        .find_map(|e| match e {
            Event::Analysis {
                sequential: Some(r),
                reasons,
                ..
            } if r.kinds[0].invalid.is_some() => Some((r.clone(), reasons.clone())),
            _ => None,
        })
        .expect("the reset is journaled");
    let k = &reset.0.kinds[0];
    assert!(k.invalid.as_deref().unwrap().contains("went down"), "{k:?}");
    assert!(
        matches!(k.readings[..], [Reading::Counts(a), Reading::Rebase(b)] if a == b),
        "{k:?}"
    );
    assert!(
        reset.1.iter().any(|r| r.contains("not judged")),
        "{:?}",
        reset.1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_rollback_stable_is_checked_against_its_rate_before_the_first_step() {
    for degraded in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        // A deploy check gives stable a second of traffic on record first.
        let (mut h, router, sim) = start(
            dir.path(),
            "[traffic]\nsteps = [20, 100]\nbake = \"1h\"\napproval = \"auto\"",
            "",
            "[[deploy]]\nname = \"roll out\"\nrun = \"sleep 1.5\"",
            false,
        )
        .await;
        // The faults come with the first step, after the baseline.
        tokio::time::timeout(LIMIT, async {
            while router.weight.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        sim.set(|s| s.canary_errors = 0.5);
        if degraded {
            // A shared dependency: stable goes bad with the canary and stays
            // so, below max_error_rate (it is seen serving) but above its
            // rate before the canary.
            sim.set(|s| s.stable_errors = 0.03);
        }
        let (outcome, events) = all_events(&mut h).await;
        let baseline = events
            .iter()
            .find_map(|e| match e {
                Event::Baseline { stable, .. } => Some(stable.len()),
                _ => None,
            })
            .expect("a baseline");
        assert!(baseline >= 5, "{baseline} baseline readings");
        let last = events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Recovery {
                    outcome,
                    recovered_ms,
                    summary,
                    ..
                } => Some((*outcome, *recovered_ms, summary.clone())),
                _ => None,
            })
            .expect("a recovery check");
        // Stable is seen serving either way: the rollback is clean.
        assert_eq!(outcome, Outcome::RolledBack);
        if degraded {
            assert_eq!(last.0, Some(RecoveryOutcome::StillWorse), "{last:?}");
            assert!(last.2.contains("still worse"), "{}", last.2);
            assert_eq!(last.1, None);
        } else {
            assert_eq!(last.0, Some(RecoveryOutcome::Recovered), "{last:?}");
            assert!(last.1.is_some_and(|ms| ms > 0.0), "{last:?}");
            let shown = h.snapshots.borrow().recovery.clone().expect("shown");
            assert!(shown.done && shown.recovered_ms == last.1, "{shown:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_gate_opens_on_an_undecided_judge_and_the_approval_says_so() {
    use cutover::domain::GateTarget;
    use cutover::engine::snapshot::Gate;
    use cutover::engine::Command;
    let dir = tempfile::tempdir().unwrap();
    // 1% of the simulated traffic: about 50 canary requests a second, with
    // no errors anywhere; the judge needs some 500 to show the canary's rate
    // below max_error_rate, far more than the bake sees.
    let (mut h, router, _sim) = start_with(
        dir.path(),
        "[traffic]\nsteps = [1, 50, 100]\nbake = \"300ms\"\napproval = \"manual\"",
        "",
        "",
        false,
        false,
    )
    .await;
    let gate = tokio::time::timeout(
        LIMIT,
        h.snapshots
            .wait_for(|s| matches!(s.gate, Some(Gate::Step { from: 1, to: 50 }))),
    )
    .await
    .expect("the gate opens after the bake")
    .expect("the engine runs")
    .clone();
    assert_ne!(gate.verdict, Some(Verdict::Pass), "{:?}", gate.message);
    let message = gate.message.clone().unwrap_or_default();
    assert!(message.contains("judge undecided"), "{message}");
    assert_eq!(router.weight.load(Ordering::SeqCst), 1);
    h.commands
        .send(Command::Approve {
            gate: GateTarget::Step { to: 50 },
        })
        .await
        .unwrap();
    // The approval is journaled as the operator's call; a rollback ends it.
    let mut approved = None;
    tokio::time::timeout(LIMIT, async {
        while let Some(r) = h.records.recv().await {
            if let Event::Approved {
                step: Some(50),
                judge_undecided,
                ..
            } = r.event
            {
                approved = Some(judge_undecided);
            }
            if matches!(r.event, Event::WeightApplied { weight: 50, .. }) {
                break;
            }
        }
    })
    .await
    .expect("the step is applied");
    assert_eq!(approved, Some(true));
    h.commands
        .send(Command::Rollback {
            reason: "test".into(),
            requested_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let (outcome, _) = all_events(&mut h).await;
    assert_eq!(outcome, Outcome::RolledBack);
}
