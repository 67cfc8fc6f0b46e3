//! The real binary holding its release lease (`[lock] kind = "etcd"`) on a
//! three-member etcd cluster on loopback: a member killed mid-run (the lease
//! lives on the quorum, the run succeeds); every member stopped (the engine
//! stops writing, holds traffic, records why, exits 5); two runs with
//! separate state dirs on one lease (the second refused naming the first,
//! then taking it over once the first, a detached engine, is killed and its
//! lease expires).
//!
//! The router is a command router writing the weight to a file both runs
//! share, so what reaches "the router" after the lease is gone shows.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::etcd::EtcdCluster;
use common::*;
use cutover::lease::{holder_here, EtcdLease};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(90);
const KEY: &str = "/cutover/shop/production";

fn cluster() -> Option<EtcdCluster> {
    if !have_external("etcd") {
        return None;
    }
    Some(EtcdCluster::start(3))
}

/// A plan in `dir` whose router is the file `weight` and whose lease is
/// `KEY` on `endpoints`; `bake` per step, `wait` for a held lease.
fn write_plan(dir: &Path, weight: &Path, endpoints: &[String], bake: &str, wait: &str) {
    if !weight.exists() {
        std::fs::write(weight, "0\n").expect("weight file");
    }
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    // A healthy canary, as the command source prints it (quotes escaped for TOML).
    let sample = r#"{\"canary\": {\"requests\": 100, \"errors\": 0, \"p99_ms\": 10}, \"stable\": {\"requests\": 100, \"errors\": 0, \"p99_ms\": 10}}"#;
    std::fs::write(
        dir.join("deploy.toml"),
        format!(
            r#"[deployment]
service = "shop"
version = "v2"
previous = "v1"
environment = "production"
state_dir = "state"

[traffic]
steps = [10, 100]
bake = "{bake}"
approval = "auto"

[traffic.router]
kind = "command"
set_weight = "echo $CUTOVER_WEIGHT > '{weight}'"
get_weight = "cat '{weight}'"

[analysis]
interval = "250ms"
method = "threshold"
window = "1s"
min_requests = 1

[analysis.source]
kind = "command"
sample = "echo '{sample}'"

[lock]
kind = "etcd"
endpoints = [{endpoints}]
key = "{KEY}"
ttl = "3s"
wait = "{wait}"
"#,
            weight = weight.display(),
            endpoints = endpoints.join(", "),
        ),
    )
    .expect("write plan");
}

fn run_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("run dir");
    dir
}

fn headless(dir: &Path) -> ChildGuard {
    spawn_cutover(dir, &["run", "--headless", "--auto-approve", "deploy.toml"])
}

fn describe(dir: &Path, cluster: &EtcdCluster) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}\njournal:\n{}\n{}",
        std::fs::read_to_string(dir.join("cutover.stdout")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("cutover.stderr")).unwrap_or_default(),
        journal_so_far(&dir.join("state"))
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        cluster.logs()
    )
}

fn weight_in(file: &Path) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Every router write was journaled under the lease's fencing token.
fn assert_fenced(events: &[Value], revision: &Value) {
    let requested = events_named(events, "weight_requested");
    assert!(!requested.is_empty());
    for e in requested {
        assert_eq!(&e["fence"], revision, "{e}");
    }
}

#[test]
fn an_etcd_member_killed_mid_run_leaves_the_lease_held_and_the_run_succeeds() {
    let Some(mut cluster) = cluster() else { return };
    let root = tempfile::tempdir().unwrap();
    let dir = run_dir(root.path(), "a");
    let weight = root.path().join("weight");
    write_plan(&dir, &weight, &cluster.endpoints(), "4s", "0s");
    let mut run = headless(&dir);
    let state = dir.join("state");
    let held = wait_for_event(&state, PATIENCE, |e| e["event"] == "lock_held");
    wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 10
    });
    let leader = cluster.leader().expect("a leader");
    cluster.kill(leader);
    let status = wait_exit(&mut run, PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", describe(&dir, &cluster));
    let (_, events) = journal(&state);
    assert!(events_named(&events, "lock_lost").is_empty());
    assert_eq!(held["key"], KEY);
    assert_eq!(held["kind"], "etcd");
    assert!(held["revision"].as_i64().is_some_and(|r| r > 0), "{held}");
    assert_fenced(&events, &held["revision"]);
    assert_eq!(weight_in(&weight), "100");
}

#[test]
fn every_etcd_member_stopped_makes_the_engine_stop_writing_hold_and_exit_5() {
    let Some(mut cluster) = cluster() else { return };
    let root = tempfile::tempdir().unwrap();
    let dir = run_dir(root.path(), "a");
    let weight = root.path().join("weight");
    write_plan(&dir, &weight, &cluster.endpoints(), "10m", "0s");
    let mut run = headless(&dir);
    let state = dir.join("state");
    wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 10
    });
    for i in 0..cluster.members.len() {
        cluster.stop(i);
    }
    let status = wait_exit(&mut run, PATIENCE);
    assert_eq!(status.code(), Some(5), "{}", describe(&dir, &cluster));
    let (_, events) = journal(&state);
    let lost = events
        .iter()
        .position(|e| e["event"] == "lock_lost")
        .unwrap_or_else(|| panic!("no lock_lost\n{}", describe(&dir, &cluster)));
    let why = events[lost]["why"].as_str().unwrap();
    assert!(why.contains("no keep-alive acknowledged"), "{why}");
    // Nothing was asked of the router after the lease was gone; it holds 10%.
    assert!(
        events[lost..]
            .iter()
            .all(|e| e["event"] != "weight_requested" && e["event"] != "weight_applied"),
        "{}",
        describe(&dir, &cluster)
    );
    assert_eq!(weight_in(&weight), "10");
    let finished = events_named(&events, "deployment_finished")[0];
    assert_eq!(finished["outcome"], "interrupted");
    assert!(
        finished["reason"]
            .as_str()
            .unwrap()
            .contains("release lease was lost"),
        "{finished}"
    );
}

#[test]
fn a_second_run_is_refused_naming_the_first_then_takes_over_after_a_kill() {
    let Some(cluster) = cluster() else { return };
    let root = tempfile::tempdir().unwrap();
    let weight = root.path().join("weight");
    let first_dir = run_dir(root.path(), "bastion-a");
    let second_dir = run_dir(root.path(), "bastion-b");
    write_plan(&first_dir, &weight, &cluster.endpoints(), "10m", "0s");
    write_plan(&second_dir, &weight, &cluster.endpoints(), "1s", "0s");
    let check = cutover(&second_dir, &["check", "deploy.toml"], PATIENCE);
    assert!(
        text(&check.stdout).contains("lock        etcd lease /cutover/shop/production"),
        "{}",
        text(&check.stdout)
    );

    // The first is a terminal run's detached engine (`cutover engine`).
    let mut first = spawn_cutover(&first_dir, &["engine", "deploy.toml"]);
    let held = wait_for_event(&first_dir.join("state"), PATIENCE, |e| {
        e["event"] == "lock_held"
    });
    wait_for_event(&first_dir.join("state"), PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 10
    });

    // Another shell, another state dir, the same release: refused, naming
    // the holder (account, host, pid, since), before anything is touched.
    let refused = cutover(
        &second_dir,
        &["run", "--headless", "--auto-approve", "deploy.toml"],
        PATIENCE,
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let said = text(&refused.stderr);
    let holder = held["holder"].as_str().unwrap();
    assert!(said.contains(holder), "{said} does not name {holder}");
    assert!(said.contains(&format!("pid {}", first.0.id())), "{said}");
    assert!(said.contains("since"), "{said}");
    assert!(journal_so_far(&second_dir.join("state")).is_empty());
    assert_eq!(weight_in(&weight), "10");

    // The first run dies without a word (kill -9): its lease lives until
    // its TTL runs out, then a waiting run takes it over and says so.
    first.0.kill().expect("kill -9");
    first.0.wait().expect("reap");
    write_plan(&second_dir, &weight, &cluster.endpoints(), "1s", "30s");
    let took = cutover(
        &second_dir,
        &["run", "--headless", "--auto-approve", "deploy.toml"],
        PATIENCE,
    );
    assert_eq!(took.status.code(), Some(0), "{}", text(&took.stderr));
    let (_, events) = journal(&second_dir.join("state"));
    let second_held = events_named(&events, "lock_held")[0];
    assert!(
        second_held["revision"].as_i64() > held["revision"].as_i64(),
        "fencing tokens grow: {held} then {second_held}"
    );
    let note = events_named(&events, "note")
        .into_iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .contains("took over the release lease")
        })
        .unwrap_or_else(|| panic!("no takeover note: {events:?}"));
    let message = note["message"].as_str().unwrap();
    assert!(message.contains(holder), "{message}");
    assert!(message.contains(&held["revision"].to_string()), "{message}");
    assert_fenced(&events, &second_held["revision"]);
    assert_eq!(weight_in(&weight), "100");

    // A run that ended released its lease: the next one takes it at once,
    // and no takeover is reported.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let next = runtime
        .block_on(EtcdLease::acquire(
            &cluster.endpoints(),
            KEY,
            Duration::from_secs(3),
            holder_here("third"),
        ))
        .expect("the lease is free after a clean end");
    assert!(next.taken_over().is_none(), "{:?}", next.taken_over());
    runtime.block_on(next.release()).unwrap();
}
