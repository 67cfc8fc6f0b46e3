//! Outcomes are what happened, tried through the real binary: interrupted
//! runs resume (whatever signal), nothing of a killed run outlives it, a
//! rollback is clean only when verified, the router is watched, metric values
//! outside their domain never pass, a starved step meets its deadline, and a
//! cut journal is detected.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const LIMIT: Duration = Duration::from_secs(90);

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

fn lines(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn slow_deploy_plan(dir: &Path) {
    write(
        dir,
        "deploy.toml",
        r#"[deployment]
service = "svc"
version = "v2"
state_dir = "state"

[[prepare]]
name = "count"
run = 'echo ran >> prepare.log'

[[deploy]]
name = "slow"
run = 'echo "started $$" >> deploy.log; sleep 3; echo "done $$" >> deploy.log'
"#,
    );
}

#[test]
fn every_signal_interruption_is_resumable_and_a_plain_run_refuses() {
    for (sig, name) in [
        (Signal::SIGTERM, "SIGTERM"),
        (Signal::SIGINT, "SIGINT"),
        (Signal::SIGHUP, "SIGHUP"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        slow_deploy_plan(dir.path());
        let mut run = spawn_cutover(dir.path(), &["run", "--headless"]);
        wait_for_event(&dir.path().join("state"), LIMIT, |e| {
            e["event"] == "check_started" && e["check"] == "slow"
        });
        kill(Pid::from_raw(run.0.id() as i32), sig).unwrap();
        let status = wait_exit(&mut run, LIMIT);
        assert_eq!(status.code(), Some(5), "{name}");

        let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
        assert_eq!(out.status.code(), Some(2), "{name}: a plain run refuses");
        let err = text(&out.stderr);
        assert!(
            err.contains("--resume") && err.contains("--abandon"),
            "{err}"
        );

        let out = cutover(dir.path(), &["run", "--headless", "--resume"], LIMIT);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert_eq!(lines(dir.path(), "prepare.log").len(), 1, "{name}");
        let (_, events) = journal(&dir.path().join("state"));
        assert_eq!(events.last().unwrap()["outcome"], "succeeded", "{name}");
        assert!(
            events_named(&events, "note")
                .iter()
                .any(|n| n["message"].as_str().unwrap().contains("runs again")),
            "{name}: the interrupted check is named"
        );
    }
}

#[test]
fn a_killed_runs_check_is_stopped_before_the_resumed_run_starts_it_again() {
    let dir = tempfile::tempdir().unwrap();
    slow_deploy_plan(dir.path());
    let mut run = spawn_cutover(dir.path(), &["run", "--headless"]);
    wait_for("the slow check to start", LIMIT, || {
        (!lines(dir.path(), "deploy.log").is_empty()).then_some(())
    });
    kill(Pid::from_raw(run.0.id() as i32), Signal::SIGKILL).unwrap();
    let _ = run.0.wait();
    let out = cutover(dir.path(), &["run", "--headless", "--resume"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::thread::sleep(Duration::from_secs(4));
    let log = lines(dir.path(), "deploy.log");
    // The killed run's copy never finished; the resumed copy did, alone.
    assert_eq!(
        log.iter().filter(|l| l.starts_with("done")).count(),
        1,
        "{log:?}"
    );
    let first = log[0].trim_start_matches("started ");
    assert!(
        !log.contains(&format!("done {first}")),
        "the killed run's check lived on: {log:?}"
    );
    let (_, events) = journal(&dir.path().join("state"));
    let started = events_named(&events, "command_started");
    assert!(started.len() >= 2, "each command's group is journaled");
}

#[test]
fn a_killed_runs_slow_router_command_never_lands_after_the_resumed_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    write(dir.path(), "w", "0\n");
    write(dir.path(), "health", "ok\n");
    write(
        dir.path(),
        "deploy.toml",
        &format!(
            r#"[deployment]
service = "svc"
version = "v2"
state_dir = "state"
[traffic]
steps = [10, 50, 100]
bake = "1s"
approval = "auto"
[traffic.router]
kind = "command"
set_weight = 'if [ "$CUTOVER_WEIGHT" = 50 ]; then sleep 4; fi; echo $CUTOVER_WEIGHT > {d}/w; echo $CUTOVER_WEIGHT >> {d}/writes'
get_weight = 'cat {d}/w'
[analysis]
method = "threshold"
interval = "500ms"
min_requests = 1
failure_limit = 1
max_error_rate = 0.05
[analysis.source]
kind = "command"
sample = 'if [ "$(cat {d}/health)" = ok ]; then e=0; else e=50; fi; echo "{{\"canary\": {{\"requests\": 100, \"errors\": $e}}, \"stable\": {{\"requests\": 900, \"errors\": 0}}}}"'
"#
        ),
    );
    let mut run = spawn_cutover(dir.path(), &["run", "--headless"]);
    wait_for_event(&dir.path().join("state"), LIMIT, |e| {
        e["event"] == "weight_requested" && e["weight"] == 50
    });
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(run.0.id() as i32), Signal::SIGKILL).unwrap();
    let _ = run.0.wait();
    write(dir.path(), "health", "bad\n");
    let out = cutover(dir.path(), &["run", "--headless", "--resume"], LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // Longer than the killed command's sleep: nothing lands afterwards.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(lines(dir.path(), "w"), ["0"]);
    assert!(
        !lines(dir.path(), "writes").contains(&"50".to_string()),
        "{:?}",
        lines(dir.path(), "writes")
    );
    let (_, events) = journal(&dir.path().join("state"));
    let last_weight = events_named(&events, "weight_applied")
        .last()
        .map(|e| e["weight"].clone());
    assert_eq!(last_weight, Some(serde_json::json!(0)));
}

/// A traffic plan with a command router writing `w` and a command source
/// printing `sample.json`.
fn command_plan(dir: &Path, traffic: &str, analysis: &str) {
    let d = dir.display().to_string();
    write(dir, "w", "0\n");
    write(
        dir,
        "deploy.toml",
        &format!(
            r#"[deployment]
service = "svc"
version = "v2"
previous = "v1"
state_dir = "state"
[traffic]
{traffic}
[traffic.router]
kind = "command"
set_weight = 'echo $CUTOVER_WEIGHT > {d}/w'
get_weight = 'cat {d}/w'
[analysis]
method = "threshold"
interval = "200ms"
window = "1s"
{analysis}
[analysis.source]
kind = "command"
sample = 'cat {d}/sample.json'
"#
        ),
    );
}

#[test]
fn figures_outside_their_domain_or_no_baseline_never_promote() {
    for (name, sample) in [
        (
            "no-baseline",
            r#"{"canary": {"requests": 500, "errors": 4, "p99_ms": 450}, "stable": {"requests": 0}}"#,
        ),
        (
            "negative",
            r#"{"canary": {"requests": 500, "error_rate": -0.35, "p99_ms": 120}, "stable": {"requests": 2000, "error_rate": 0.001, "p99_ms": 100}}"#,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        command_plan(
            dir.path(),
            "steps = [20, 100]\nbake = \"1s\"\napproval = \"auto\"\nstep_deadline = \"2s\"",
            "min_requests = 20\nmax_error_rate = 0.01\nmax_p99_ms = 500\nmax_error_rate_increase = 0.002\nmax_p99_ratio = 1.5",
        );
        write(dir.path(), "sample.json", sample);
        let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
        let (_, events) = journal(&dir.path().join("state"));
        // The canary's samples (the stable check after a rollback aside).
        let canary_samples: Vec<_> = events
            .iter()
            .take_while(|e| e["event"] != "rollback_started")
            .filter(|e| e["event"] == "analysis")
            .collect();
        assert!(!canary_samples.is_empty(), "{name}");
        assert!(
            canary_samples.iter().all(|a| a["verdict"] != "pass"),
            "{name}: a sample passed"
        );
        assert!(
            !events_named(&events, "weight_applied")
                .iter()
                .any(|e| e["weight"] == 100),
            "{name}: promoted"
        );
        assert_ne!(out.status.code(), Some(0), "{name}");
    }
}

#[test]
fn a_starved_canary_meets_its_step_deadline_then_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    command_plan(
        dir.path(),
        "steps = [10, 100]\nbake = \"1s\"\napproval = \"auto\"\nstep_deadline = \"2s\"",
        "min_requests = 20",
    );
    write(
        dir.path(),
        "sample.json",
        r#"{"canary": {"requests": 3, "errors": 0}, "stable": {"requests": 900, "errors": 0}}"#,
    );
    let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let (_, events) = journal(&dir.path().join("state"));
    assert_eq!(events_named(&events, "step_deadline").len(), 1);
    let started = &events_named(&events, "rollback_started")[0];
    assert!(
        started["reason"]
            .as_str()
            .unwrap()
            .contains("step_deadline"),
        "{started}"
    );
    assert_eq!(lines(dir.path(), "w"), ["0"]);
}

#[test]
fn a_router_that_drifts_from_the_record_is_journaled_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    command_plan(
        dir.path(),
        "steps = [10, 100]\nbake = \"1h\"\napproval = \"auto\"",
        "min_requests = 5",
    );
    write(
        dir.path(),
        "sample.json",
        r#"{"canary": {"requests": 100, "errors": 0}, "stable": {"requests": 900, "errors": 0}}"#,
    );
    let mut run = spawn_cutover(dir.path(), &["run", "--headless"]);
    wait_for_event(&dir.path().join("state"), LIMIT, |e| {
        e["event"] == "weight_applied" && e["weight"] == 10
    });
    // Someone reloads the proxy with its configured weights.
    write(dir.path(), "w", "100\n");
    let status = wait_exit(&mut run, LIMIT);
    assert_eq!(status.code(), Some(3));
    let (_, events) = journal(&dir.path().join("state"));
    let drift = &events_named(&events, "weight_drift")[0];
    assert_eq!(drift["expected"], 10);
    assert_eq!(drift["router_weight"], 100);
    assert_eq!(lines(dir.path(), "w"), ["0"]);
}

#[test]
fn cutting_the_end_of_a_journal_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    slow_deploy_plan(dir.path());
    write(
        dir.path(),
        "deploy.toml",
        "[deployment]\nservice = \"svc\"\nversion = \"v2\"\nstate_dir = \"state\"\n[[prepare]]\nname = \"a\"\nrun = \"true\"\n",
    );
    let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
    assert_eq!(out.status.code(), Some(0));
    let (path, _) = journal(&dir.path().join("state"));
    let text_now = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text_now.lines().collect();
    std::fs::write(&path, format!("{}\n", kept[..kept.len() - 2].join("\n"))).unwrap();
    let out = cutover(dir.path(), &["history", "--verify"], LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("cut off its end"),
        "{}",
        text(&out.stdout)
    );
    let out = cutover(dir.path(), &["history"], LIMIT);
    assert!(
        text(&out.stdout).contains("CHAIN BROKEN"),
        "{}",
        text(&out.stdout)
    );
}
