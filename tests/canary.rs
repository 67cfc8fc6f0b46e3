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

/// `cutover replay` of the state dir's last deployment: its output, and
/// whether it exited 0.
fn replay(dir: &std::path::Path, state: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["replay", "--state-dir", state.to_str().unwrap(), "last"];
    args.extend(extra);
    let out = cutover(dir, &args, Duration::from_secs(60));
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// The analyses with the sequential judge's record.
fn judged(events: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    events_named(events, "analysis")
        .into_iter()
        .filter(|a| a["sequential"].is_object())
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
    // The sequential judge passed every step, after its bake, on what it
    // showed: with no errors and no slow requests anywhere, the canary's own
    // rates below max_error_rate.
    let analyses = judged(&events);
    assert!(analyses.len() >= 8, "{} samples", analyses.len());
    for w in [5, 25, 50, 100] {
        let pass = analyses
            .iter()
            .find(|a| a["weight"] == w && a["verdict"] == "pass")
            .unwrap_or_else(|| panic!("no passing sample at {w}%"));
        let record = &pass["sequential"];
        assert_eq!(record["baked"], true, "{pass}");
        assert_eq!(record["kinds_judged"], 2, "{pass}");
        for kind in record["kinds"].as_array().unwrap() {
            assert_eq!(kind["verdict"], "pass", "{kind}");
            assert_eq!(kind["basis"], "rate", "{kind}");
            assert!(kind["rate_high"].as_f64().unwrap() <= 0.01, "{kind}");
        }
        assert!(pass["canary"]["totals"]["requests"].as_u64().unwrap() > 0);
    }
    assert!(analyses.iter().all(|a| a["verdict"] != "fail"));
    // The built-in router's own connection counts ride along with each
    // sample: the demo's load was admitted, none refused at the cap.
    let accepted: Vec<u64> = analyses
        .iter()
        .map(|a| {
            let c = &a["connections"];
            assert!(c["max_connections"].as_u64().unwrap() > 0, "{a}");
            assert_eq!(c["rejected_at_cap"], 0, "{a}");
            c["accepted"].as_u64().unwrap()
        })
        .collect();
    assert!(accepted.windows(2).all(|w| w[0] <= w[1]), "{accepted:?}");
    assert!(accepted.last().is_some_and(|n| *n > 0), "{accepted:?}");
    assert!(events_named(&events, "rollback_started").is_empty());
    assert_eq!(events.last().unwrap()["outcome"], "succeeded");
    // Every verdict recomputes from the journal's counts.
    let (ok, said) = replay(dir.path(), &state, &[]);
    assert!(ok, "{said}");
    assert!(
        said.contains("every verdict and evidence figure identical"),
        "{said}"
    );
    assert!(said.contains("the judge never failed the canary"), "{said}");
}

/// The demo with `fault`, rolled back by the sequential judge on `kind`.
fn demo_fault_is_rolled_back_by_the_judge(fault: &str, kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = cutover(
        dir.path(),
        &[
            "demo",
            "--headless",
            "--fault",
            fault,
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
    assert!(
        rb[0]["reason"]
            .as_str()
            .unwrap()
            .contains("reached 1/alpha"),
        "{}",
        rb[0]
    );
    // The fault starts at the second step (25%); the first analysis that
    // fails is the judge's, with evidence past 1/alpha (alpha / 2 per kind):
    // nothing waits for failure_limit or the bake.
    let at_25 = events
        .iter()
        .position(|e| e["event"] == "weight_applied" && e["weight"] == 25)
        .unwrap();
    let rb_at = events
        .iter()
        .position(|e| e["event"] == "rollback_started")
        .unwrap();
    let failing: Vec<&serde_json::Value> = events[at_25..rb_at]
        .iter()
        .filter(|e| e["event"] == "analysis" && e["verdict"] == "fail")
        .collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    let record = &failing[0]["sequential"];
    let judged_kind = record["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .unwrap();
    assert_eq!(judged_kind["verdict"], "fail", "{judged_kind}");
    let ln_e = judged_kind["evidence"]["ln_e_fail"].as_f64().unwrap();
    assert!(ln_e >= (2.0 / 0.01f64).ln(), "{judged_kind}");
    assert_eq!(weights_applied(&events), [5, 25, 0]);
    let fin = events_named(&events, "rollback_finished")[0].clone();
    assert_eq!(fin["outcome"], "succeeded", "{fin}");
    assert!(fin["weight_applied_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(events.last().unwrap()["outcome"], "rolled_back");
    // The demo's stages before traffic take milliseconds: stable's baseline
    // was read on before the first step, long enough that stable after the
    // rollback is shown back to its rate before (not left undecided).
    let baseline = &events_named(&events, "baseline")[0];
    let readings = baseline["stable"].as_array().unwrap();
    let served = readings.last().unwrap()["requests"].as_u64().unwrap()
        - readings[0]["requests"].as_u64().unwrap();
    assert!(served >= 2000, "{baseline}");
    let recovered = events_named(&events, "recovery")
        .into_iter()
        .find(|r| !r["outcome"].is_null())
        .unwrap_or_else(|| panic!("no recovery outcome"));
    assert_eq!(recovered["outcome"], "recovered", "{recovered}");
    // Replayed from the journal: the same verdicts; a tolerance of 100 (a
    // canary up to 100× stable's rate counts as the same) would not have
    // rolled this one back at that analysis.
    let (ok, said) = replay(dir.path(), &state, &[]);
    assert!(ok, "{said}");
    assert!(
        said.contains("every verdict and evidence figure identical"),
        "{said}"
    );
    let seq = failing[0]["seq"].as_u64().unwrap();
    assert!(
        said.contains(&format!("failed the canary at #{seq} ")),
        "{said}"
    );
    let (ok, said) = replay(dir.path(), &state, &["--tolerance", "100"]);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("#{seq} ")) && said.contains("journal fail → inconclusive"),
        "{said}"
    );
}

#[test]
fn demo_fault_error_is_rolled_back_by_the_sequential_judge() {
    demo_fault_is_rolled_back_by_the_judge("error", "errors");
}

#[test]
fn demo_fault_latency_is_rolled_back_by_the_sequential_judge() {
    demo_fault_is_rolled_back_by_the_judge("latency", "slow");
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
method = "threshold"
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
