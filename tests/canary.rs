//! The live canary end to end: the demo, analysis rollbacks, the weight split
//! through the built-in router, blue-green, and signals mid-canary.

mod common;

use std::time::Duration;

use common::*;

const DEMO_LIMIT: Duration = Duration::from_secs(300);

fn weights_applied(events: &[serde_json::Value]) -> Vec<u64> {
    events_named(events, "weight_applied")
        .iter()
        .map(|e| e["weight"].as_u64().unwrap())
        .collect()
}

#[test]
fn demo_headless_walks_every_step_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = cutover(
        dir.path(),
        &["demo", "--headless", "--state-dir", state.to_str().unwrap()],
        DEMO_LIMIT,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (_, events) = journal(&state);
    assert_eq!(weights_applied(&events), [5, 25, 50, 100]);
    let approvals = events_named(&events, "approved");
    assert!(
        approvals.iter().any(|a| a["step"] == 25),
        "steps approved: {approvals:?}"
    );
    // Every step baked on passing samples from real traffic.
    let analyses = events_named(&events, "analysis");
    assert!(analyses.len() >= 8, "{} samples", analyses.len());
    for w in [5, 25, 50, 100] {
        assert!(
            analyses.iter().any(|a| a["weight"] == w
                && a["verdict"] == "pass"
                && a["canary"]["requests"].as_u64().unwrap() > 0),
            "no passing sample at {w}%"
        );
    }
    assert!(events_named(&events, "rollback_started").is_empty());
    assert_eq!(events.last().unwrap()["outcome"], "succeeded");
}

#[test]
fn demo_fault_error_is_rolled_back_by_the_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = cutover(
        dir.path(),
        &[
            "demo",
            "--headless",
            "--fault",
            "error",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        DEMO_LIMIT,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (_, events) = journal(&state);
    let rb = events_named(&events, "rollback_started");
    assert_eq!(rb.len(), 1);
    assert_eq!(rb[0]["source"], "analysis");
    // The fault starts at the second step (25%); the rollback follows within a
    // few samples: failure_limit (3) failing ones plus the window catching up.
    let at_25 = events
        .iter()
        .position(|e| e["event"] == "weight_applied" && e["weight"] == 25)
        .unwrap();
    let rb_at = events
        .iter()
        .position(|e| e["event"] == "rollback_started")
        .unwrap();
    let samples_between = events[at_25..rb_at]
        .iter()
        .filter(|e| e["event"] == "analysis")
        .count();
    assert!(
        samples_between <= 6,
        "{samples_between} samples before the rollback"
    );
    assert_eq!(weights_applied(&events), [5, 25, 0]);
    let fin = events_named(&events, "rollback_finished")[0].clone();
    assert_eq!(fin["outcome"], "succeeded", "{fin}");
    assert!(fin["weight_applied_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(events.last().unwrap()["outcome"], "rolled_back");
}

fn canary_plan(
    stable: std::net::SocketAddr,
    canary: std::net::SocketAddr,
    listen: std::net::SocketAddr,
    traffic: &str,
) -> String {
    format!(
        r#"[deployment]
service = "shop"
version = "v2"
previous = "v1"
state_dir = "state"

[[smoke]]
name = "canary answers"
http = "http://{canary}/health"

{traffic}

[traffic.router]
kind = "builtin"
listen = "{listen}"
stable = "{stable}"
canary = "{canary}"

[analysis]
interval = "500ms"
window = "5s"
min_requests = 10
failure_limit = 3
max_error_rate = 0.05

[[verify]]
name = "through the router"
http = "http://{listen}/"

[[rollback]]
name = "stable answers"
http = "http://{stable}/health"
"#
    )
}

#[test]
fn the_split_through_the_router_matches_the_weight() {
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let listen = free_addr();
    // Auto approval with a long bake holds the canary at 25%.
    let traffic = "[traffic]\nsteps = [25, 100]\nbake = \"1h\"\napproval = \"auto\"";
    std::fs::write(
        dir.path().join("deploy.toml"),
        canary_plan(stable, canary, listen, traffic),
    )
    .unwrap();
    let mut run = spawn_cutover(dir.path(), &["run", "--headless"]);
    let state = dir.path().join("state");
    wait_for_event(&state, Duration::from_secs(60), |e| {
        e["event"] == "weight_applied" && e["weight"] == 25
    });
    let mut v2 = 0;
    let mut total = 0;
    for _ in 0..2000 {
        let (status, version) = get_version(listen, "/").expect("a request through the router");
        assert_eq!(status, 200);
        total += 1;
        if version.as_deref() == Some("v2") {
            v2 += 1;
        }
    }
    let share = v2 as f64 * 100.0 / total as f64;
    assert!(
        (20.0..=30.0).contains(&share),
        "v2 answered {share:.1}% of {total} requests at weight 25"
    );
    // SIGTERM holds the traffic where it is and records the run as interrupted.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(wait_exit(&mut run, Duration::from_secs(30)).code(), Some(5));
    let (_, events) = journal(&state);
    let last = events.last().unwrap();
    assert_eq!(last["outcome"], "interrupted");
    assert!(
        last["reason"].as_str().unwrap().contains("SIGTERM"),
        "{last}"
    );
    assert!(events_named(&events, "rollback_started").is_empty());
}

#[test]
fn a_canary_failing_half_its_requests_is_rolled_back_fast() {
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &["--error-rate", "0.5"]);
    let listen = free_addr();
    let traffic = "[traffic]\nsteps = [50, 100]\nbake = \"1h\"\napproval = \"auto\"";
    std::fs::write(
        dir.path().join("deploy.toml"),
        canary_plan(stable, canary, listen, traffic),
    )
    .unwrap();
    let mut run = spawn_cutover(dir.path(), &["run", "--headless"]);
    let state = dir.path().join("state");
    wait_for_event(&state, Duration::from_secs(60), |e| {
        e["event"] == "weight_applied" && e["weight"] == 50
    });
    let _load = Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(120));
    assert_eq!(
        wait_exit(&mut run, Duration::from_secs(120)).code(),
        Some(3)
    );
    let (_, events) = journal(&state);
    let rb = events_named(&events, "rollback_started");
    assert_eq!(rb[0]["source"], "analysis");
    assert!(
        rb[0]["reason"].as_str().unwrap().contains("error rate"),
        "{}",
        rb[0]
    );
    let fin = events_named(&events, "rollback_finished")[0].clone();
    assert_eq!(fin["outcome"], "succeeded", "{fin}");
    let ms = fin["weight_applied_ms"].as_f64().unwrap();
    eprintln!("rollback request to weight 0 applied: {ms:.3} ms");
    assert_eq!(weights_applied(&events), [50, 0]);
    // Stable alone was judged healthy after the rollback.
    let last_analysis = events_named(&events, "analysis")
        .last()
        .cloned()
        .cloned()
        .unwrap();
    assert_eq!(last_analysis["weight"], 0);
    assert_eq!(last_analysis["verdict"], "pass", "{last_analysis}");
    // And the router sends nothing to the canary any more.
    for _ in 0..50 {
        let (_, v) = get_version(listen, "/").unwrap_or((0, None));
        assert_ne!(v.as_deref(), Some("v2"));
    }
}

#[test]
fn blue_green_switches_at_once_and_rolls_back_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let listen = free_addr();
    let traffic = "[traffic]\nstrategy = \"blue-green\"\nbake = \"2s\"\napproval = \"auto\"";
    let plan = canary_plan(stable, canary, listen, traffic).replace(
        "[[verify]]\nname = \"through the router\"\nhttp = \"http://",
        "[[verify]]\nname = \"through the router\"\nexpect_body = \"from v1\"\nhttp = \"http://",
    );
    std::fs::write(dir.path().join("deploy.toml"), plan).unwrap();
    let _load = Traffic::start(listen, Duration::from_millis(20), Duration::from_secs(120));
    let out = cutover(dir.path(), &["run", "--headless"], Duration::from_secs(120));
    // The verify check expects v1, so it fails after the switch: back to 0.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let (_, events) = journal(&dir.path().join("state"));
    assert_eq!(weights_applied(&events), [100, 0]);
    assert_eq!(
        events_named(&events, "rollback_started")[0]["source"],
        "check"
    );
}
