//! A group of five real HAProxy instances (`[[traffic.routers]]`) in front of
//! the same two sample services, driven by the real binary's engine
//! (`cutover engine`) and steered over its socket: every step moved on all
//! five and read back from each one's own stats socket; one killed
//! mid-canary (the step put back on the others, then `on_failure`); one
//! killed before a rollback (`rollback_failed`, naming it).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(60);
const MEMBERS: usize = 5;

/// Five HAProxy instances, each with its own stats socket and front.
struct Fleet {
    members: Vec<Haproxy>,
    _apps: Vec<ChildGuard>,
    _traffic: Vec<Traffic>,
}

impl Fleet {
    fn start(dir: &Path) -> Fleet {
        let (v1, stable) = demo_app("v1", &[]);
        let (v2, canary) = demo_app("v2", &[]);
        let members: Vec<Haproxy> = (1..=MEMBERS)
            .map(|i| {
                let d = dir.join(format!("lb{i}"));
                std::fs::create_dir_all(&d).expect("member dir");
                Haproxy::start(&d, stable, canary)
            })
            .collect();
        let traffic = members
            .iter()
            .map(|h| Traffic::start(h.front, Duration::from_millis(4), Duration::from_secs(240)))
            .collect();
        Fleet {
            members,
            _apps: vec![v1, v2],
            _traffic: traffic,
        }
    }

    /// (canary, stable) weights as each member's own stats socket says.
    fn weights(&self, skip: Option<usize>) -> Vec<(usize, u32, u32)> {
        self.members
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i + 1) != skip)
            .map(|(i, h)| (i + 1, h.weight("v2"), h.weight("v1")))
            .collect()
    }

    /// Kills member `n` (1-based): its stats socket stops answering.
    fn kill(&mut self, n: usize) {
        let child = &mut self.members[n - 1].child.0;
        child.kill().expect("kill haproxy");
        child.wait().expect("reap haproxy");
    }
}

/// The plan: a canary through the five, approved step by step over the
/// socket, judged on the sum of the five's HAProxy stats.
fn write_plan(dir: &Path, fleet: &Fleet, on_failure: &str) {
    let mut routers = String::new();
    for (i, h) in fleet.members.iter().enumerate() {
        routers.push_str(&format!(
            "[[traffic.routers]]\nname = \"lb{}\"\nkind = \"haproxy\"\nsocket = \"{}\"\nbackend = \"app\"\nstable_server = \"v1\"\ncanary_server = \"v2\"\n\n",
            i + 1,
            h.socket.display()
        ));
    }
    std::fs::write(
        dir.join("deploy.toml"),
        format!(
            r#"[deployment]
service = "shop"
version = "v2"
previous = "v1"
state_dir = "state"

[traffic]
steps = [10, 50, 100]
bake = "1s"
approval = "manual"
on_failure = "{on_failure}"

{routers}[analysis]
interval = "500ms"
window = "1s"
min_requests = 3
failure_limit = 50
max_error_rate = 0.05

[analysis.source]
kind = "haproxy"
"#
        ),
    )
    .expect("write plan");
}

fn describe(dir: &Path) -> String {
    let events = journal_so_far(&dir.join("state"));
    format!(
        "engine stderr:\n{}\njournal:\n{}",
        std::fs::read_to_string(dir.join("cutover.stderr")).unwrap_or_default(),
        events
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// Waits until the engine's open gate is the step to `to`.
fn wait_gate(dir: &Path, to: u64) {
    wait_for(&format!("the gate to {to}%"), PATIENCE, || {
        let out = cutover(dir, &["status", "--json"], PATIENCE);
        let s: Value = serde_json::from_slice(&out.stdout).ok()?;
        (s["gate"]["kind"] == "step" && s["gate"]["to"] == to).then_some(())
    });
}

fn approve(dir: &Path, to: u64) {
    let out = cutover(dir, &["approve", "--step", &to.to_string()], PATIENCE);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stderr),
        describe(dir)
    );
}

/// The journal's `weight_applied` for `weight`: every member confirmed it,
/// with the group's skew.
fn assert_applied_by_all(dir: &Path, weight: u64) {
    let e = wait_for_event(&dir.join("state"), PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == weight
    });
    let members = e["members"].as_array().expect("members journaled");
    assert_eq!(members.len(), MEMBERS, "{e}");
    for (i, m) in members.iter().enumerate() {
        assert_eq!(m["name"], format!("lb{}", i + 1), "{e}");
        assert_eq!(m["weight"], weight, "{e}");
        assert_eq!(m["confirmed"], true, "{e}");
        assert!(m["confirmed_ms"].as_f64().is_some(), "{e}");
    }
    assert!(e["skew_ms"].as_f64().is_some_and(|s| s >= 0.0), "{e}");
}

fn engine(dir: &Path) -> ChildGuard {
    spawn_cutover(dir, &["engine", "deploy.toml"])
}

#[test]
fn five_haproxy_instances_carry_the_same_weight_at_every_step() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path());
    write_plan(dir.path(), &fleet, "rollback");
    let check = cutover(dir.path(), &["check", "deploy.toml"], PATIENCE);
    let printed = text(&check.stdout);
    assert!(printed.contains("a group of 5, moved as one"), "{printed}");
    assert!(printed.contains("summed over the 5 routers"), "{printed}");

    let mut engine = engine(dir.path());
    for (step, next) in [(10, Some(50)), (50, Some(100)), (100, None)] {
        assert_applied_by_all(dir.path(), step);
        if let Some(next) = next {
            wait_gate(dir.path(), next);
        }
        // Read from each HAProxy's own stats socket while the step holds.
        for (n, canary, stable) in fleet.weights(None) {
            assert_eq!(
                (canary, stable),
                (step as u32, 100 - step as u32),
                "lb{n} at step {step}\n{}",
                describe(dir.path())
            );
        }
        if let Some(next) = next {
            approve(dir.path(), next);
        }
    }
    let status = wait_exit(&mut engine, PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", describe(dir.path()));
    let (_, events) = journal(&dir.path().join("state"));
    let requested: Vec<u64> = events_named(&events, "weight_requested")
        .iter()
        .map(|e| e["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(requested, [10, 50, 100]);
    // The analysis judged the five's summed stats.
    let passes = events_named(&events, "analysis")
        .into_iter()
        .filter(|e| e["verdict"] == "pass")
        .count();
    assert!(passes > 0, "{}", describe(dir.path()));
}

#[test]
fn a_router_killed_mid_canary_puts_the_step_back_on_the_others_then_on_failure_holds() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(dir.path());
    write_plan(dir.path(), &fleet, "pause");
    let _engine = engine(dir.path());
    assert_applied_by_all(dir.path(), 10);
    wait_gate(dir.path(), 50);
    fleet.kill(3);
    approve(dir.path(), 50);

    // Put back on the four that answer, then on_failure = "pause" holds.
    let state = dir.path().join("state");
    wait_for_event(&state, PATIENCE, |e| e["event"] == "paused");
    let events = journal_so_far(&state);
    let failed = events
        .iter()
        .find(|e| e["event"] == "weight_failed" && e["weight"] == 50)
        .unwrap_or_else(|| panic!("no failed step\n{}", describe(dir.path())));
    let members = failed["members"].as_array().expect("members");
    let unconfirmed: Vec<&str> = members
        .iter()
        .filter(|m| m["confirmed"] == false)
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(unconfirmed, ["lb3"], "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("lb3"),
        "{failed}"
    );
    let revert = events
        .iter()
        .position(|e| e["event"] == "weight_requested" && e["source"] == "revert")
        .unwrap_or_else(|| panic!("no revert\n{}", describe(dir.path())));
    assert_eq!(events[revert]["weight"], 10);
    let back = events[revert..]
        .iter()
        .find(|e| e["event"] == "weight_applied")
        .expect("the revert applied");
    assert_eq!(back["weight"], 10, "{back}");
    let note = events[revert..]
        .iter()
        .find(|e| e["event"] == "note")
        .expect("a note on the revert");
    let message = note["message"].as_str().unwrap();
    assert!(
        message.contains("put back to 10% on 4 of 5 routers"),
        "{message}"
    );
    assert!(message.contains("not reached: lb3"), "{message}");
    // The four that answer carry 10% again, read from their own sockets.
    for (n, canary, stable) in fleet.weights(Some(3)) {
        assert_eq!(
            (canary, stable),
            (10, 90),
            "lb{n}\n{}",
            describe(dir.path())
        );
    }
    // Held for the operator, who sees the dead router.
    let out = cutover(dir.path(), &["status"], PATIENCE);
    let said = text(&out.stdout);
    assert!(said.contains("paused"), "{said}");
    assert!(said.contains("lb3 unreachable"), "{said}");
}

#[test]
fn a_rollback_with_a_router_dead_ends_rollback_failed_naming_it() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(dir.path());
    write_plan(dir.path(), &fleet, "rollback");
    let mut engine = engine(dir.path());
    assert_applied_by_all(dir.path(), 10);
    wait_gate(dir.path(), 50);
    fleet.kill(2);
    let out = cutover(
        dir.path(),
        &["rollback", "--reason", "the operator rolls back"],
        PATIENCE,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status = wait_exit(&mut engine, PATIENCE);
    assert_eq!(status.code(), Some(4), "{}", describe(dir.path()));

    let (_, events) = journal(&dir.path().join("state"));
    let finished = events_named(&events, "deployment_finished")[0];
    assert_eq!(finished["outcome"], "rollback_failed");
    let reason = finished["reason"].as_str().unwrap();
    assert!(reason.contains("lb2"), "{reason}");
    assert!(
        !reason.contains("lb1 ("),
        "only the dead one is named: {reason}"
    );
    let failed = events
        .iter()
        .rfind(|e| e["event"] == "weight_failed" && e["weight"] == 0)
        .expect("weight 0 not confirmed");
    let unconfirmed: Vec<&str> = failed["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["confirmed"] == false)
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(unconfirmed, ["lb2"], "{failed}");
    // 0 was pushed to every one that answers.
    for (n, canary, stable) in fleet.weights(Some(2)) {
        assert_eq!((canary, stable), (0, 100), "lb{n}");
    }
}

#[test]
fn a_router_changed_by_hand_is_a_drift_naming_it() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path());
    write_plan(dir.path(), &fleet, "rollback");
    let mut engine = engine(dir.path());
    assert_applied_by_all(dir.path(), 10);
    wait_gate(dir.path(), 50);
    // Someone moves lb4 on its own: 30 against 90 is 25% to the canary.
    fleet.members[3].command("set server app/v2 weight 30");
    let drift = wait_for_event(&dir.path().join("state"), PATIENCE, |e| {
        e["event"] == "weight_drift"
    });
    assert_eq!(
        (drift["expected"].as_u64(), drift["router_weight"].as_u64()),
        (Some(10), Some(25))
    );
    assert!(drift["detail"].as_str().unwrap().contains("lb4"), "{drift}");
    // on_failure = "rollback": every member back to 0, stable seen serving.
    let status = wait_exit(&mut engine, PATIENCE);
    assert_eq!(status.code(), Some(3), "{}", describe(dir.path()));
    for (n, canary, stable) in fleet.weights(None) {
        assert_eq!((canary, stable), (0, 100), "lb{n}");
    }
}
