//! The HAProxy router and metric source against a real HAProxy on loopback:
//! weights measured in real traffic, error replies, and whole headless runs.

mod common;

use std::time::Duration;

use common::*;
use cutover::config::HaproxyTarget;
use cutover::router::haproxy::HaproxyRouter;
use cutover::router::Router;

const LIMIT: Duration = Duration::from_secs(180);

fn target(h: &Haproxy, stable: &str) -> HaproxyTarget {
    HaproxyTarget {
        socket: h.socket.display().to_string(),
        backend: "app".into(),
        stable_server: stable.into(),
        canary_server: "v2".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_real_traffic_and_roll_back() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let h = Haproxy::start(dir.path(), stable, canary);
    let router = HaproxyRouter::new(target(&h, "v1"));
    assert_eq!(router.current_weight().await.unwrap(), 0);

    router.set_weight(25).await.unwrap();
    assert_eq!(router.current_weight().await.unwrap(), 25);
    assert_eq!((h.weight("v2"), h.weight("v1")), (25, 75));
    let front = h.front;
    let counts = tokio::task::spawn_blocking(move || version_counts(front, 1000))
        .await
        .unwrap();
    let v2 = counts.get("v2").copied().unwrap_or(0);
    let v1 = counts.get("v1").copied().unwrap_or(0);
    assert_eq!(v1 + v2, 1000, "{counts:?}");
    assert!(
        (200..=300).contains(&v2),
        "v2 share not 25% ± 5: {counts:?}"
    );

    router.set_weight(0).await.unwrap();
    assert_eq!(router.current_weight().await.unwrap(), 0);
    assert_eq!((h.weight("v2"), h.weight("v1")), (0, 100));
    let counts = tokio::task::spawn_blocking(move || version_counts(front, 200))
        .await
        .unwrap();
    assert_eq!(counts.get("v1"), Some(&200), "{counts:?}");

    // Canary-only, then back: both directions read back exactly.
    router.set_weight(100).await.unwrap();
    assert_eq!((h.weight("v2"), h.weight("v1")), (100, 0));
    assert_eq!(router.current_weight().await.unwrap(), 100);
}

#[tokio::test]
async fn haproxy_error_replies_surface_clearly() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let h = Haproxy::start(dir.path(), stable, canary);

    let wrong = HaproxyRouter::new(target(&h, "blue"));
    let e = wrong.set_weight(10).await.unwrap_err().to_string();
    assert!(e.contains("backend \"app\" has no server \"blue\""), "{e}");
    let e = wrong.current_weight().await.unwrap_err().to_string();
    assert!(e.contains("no server \"blue\""), "{e}");

    let mut t = target(&h, "v1");
    t.backend = "web".into();
    let e = HaproxyRouter::new(t)
        .set_weight(10)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no backend \"web\""), "{e}");

    // The wrong name was caught before anything moved.
    assert_eq!((h.weight("v2"), h.weight("v1")), (0, 100));

    // Both servers at 0: HAProxy would send traffic nowhere.
    h.command("set server app/v1 weight 0");
    let e = HaproxyRouter::new(target(&h, "v1"))
        .current_weight()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("both have weight 0"), "{e}");
}

fn write_plan(dir: &std::path::Path, h: &Haproxy, source: &str, bake: &str) {
    let analysis =
        "method = \"threshold\"\nmin_requests = 5\nfailure_limit = 2\nmax_error_rate = 0.05";
    write_plan_judged(dir, h, source, bake, analysis);
}

/// A plan through HAProxy whose `[analysis]` holds `analysis` (and a sample
/// every 500ms over 1s).
fn write_plan_judged(dir: &std::path::Path, h: &Haproxy, source: &str, bake: &str, analysis: &str) {
    let plan = format!(
        r#"[deployment]
service = "svc"
version = "v2"
previous = "v1"
state_dir = "state"

[traffic]
strategy = "canary"
steps = [50, 100]
bake = "{bake}"
approval = "auto"

[traffic.router]
kind = "haproxy"
socket = "{sock}"
backend = "app"
stable_server = "v1"
canary_server = "v2"

[analysis]
interval = "500ms"
window = "1s"
{analysis}

[analysis.source]
{source}
"#,
        sock = h.socket.display()
    );
    std::fs::write(dir.join("deploy.toml"), plan).unwrap();
}

fn describe(dir: &std::path::Path, out: &std::process::Output) -> String {
    let events = journal_so_far(&dir.join("state"));
    format!(
        "stdout:\n{}\nstderr:\n{}\njournal:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        events
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[test]
fn headless_run_with_a_healthy_canary_ends_canary_only() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let h = Haproxy::start(dir.path(), stable, canary);
    write_plan(dir.path(), &h, "kind = \"haproxy\"", "2s");
    let traffic = Traffic::start(h.front, Duration::from_millis(5), LIMIT);
    let out = cutover(
        dir.path(),
        &["run", "--headless", "--auto-approve", "deploy.toml"],
        LIMIT,
    );
    let sent = traffic.stop();
    assert_eq!(out.status.code(), Some(0), "{}", describe(dir.path(), &out));
    assert!(sent > 0);
    assert_eq!((h.weight("v2"), h.weight("v1")), (100, 0));
    let (_, events) = journal(&dir.path().join("state"));
    let passes: Vec<_> = events_named(&events, "analysis")
        .into_iter()
        .filter(|e| e["verdict"] == "pass")
        .collect();
    assert!(!passes.is_empty(), "{}", describe(dir.path(), &out));
    // HAProxy has average times only: no percentiles are made up.
    assert!(passes.iter().all(|e| e["canary"]["p99_ms"].is_null()));
    let applied: Vec<_> = events_named(&events, "weight_applied")
        .iter()
        .map(|e| e["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(applied, [50, 100]);
}

#[test]
fn headless_run_with_a_failing_canary_rolls_back_to_stable_only() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &["--error-rate", "0.4"]);
    let h = Haproxy::start(dir.path(), stable, canary);
    write_plan(dir.path(), &h, "kind = \"haproxy\"", "2s");
    let traffic = Traffic::start(h.front, Duration::from_millis(5), LIMIT);
    let out = cutover(
        dir.path(),
        &["run", "--headless", "--auto-approve", "deploy.toml"],
        LIMIT,
    );
    traffic.stop();
    assert_eq!(out.status.code(), Some(3), "{}", describe(dir.path(), &out));
    let (_, events) = journal(&dir.path().join("state"));
    let started = events_named(&events, "rollback_started");
    assert_eq!(started.len(), 1, "{}", describe(dir.path(), &out));
    assert_eq!(started[0]["source"], "analysis");
    let fails = events_named(&events, "analysis")
        .into_iter()
        .filter(|e| e["verdict"] == "fail")
        .count();
    assert!(fails >= 2, "{}", describe(dir.path(), &out));
    assert_eq!(
        events.last().unwrap()["outcome"],
        "rolled_back",
        "{}",
        describe(dir.path(), &out)
    );
    assert_eq!((h.weight("v2"), h.weight("v1")), (0, 100));
}

#[test]
fn a_rollback_onto_a_dead_stable_is_rollback_failed_not_clean() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &["--error-rate", "0.5"]);
    let h = Haproxy::start_checked(dir.path(), stable, canary);
    write_plan(dir.path(), &h, "kind = \"haproxy\"", "5s");
    let traffic = Traffic::start(h.front, Duration::from_millis(10), LIMIT);
    let mut run = spawn_cutover(dir.path(), &["run", "--headless", "deploy.toml"]);
    wait_for_event(&dir.path().join("state"), LIMIT, |e| {
        e["event"] == "weight_applied" && e["weight"] == 50
    });
    // Stable dies while the failing canary is judged.
    drop(v1);
    let status = wait_exit(&mut run, LIMIT);
    traffic.stop();
    let (_, events) = journal(&dir.path().join("state"));
    let all = events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(status.code(), Some(4), "{all}");
    let last = events.last().unwrap();
    assert_eq!(last["outcome"], "rollback_failed", "{all}");
    let finished = &events_named(&events, "rollback_finished")[0];
    assert!(
        finished["problem"].as_str().unwrap().contains("DOWN"),
        "{finished}"
    );
    // Weight 0 was applied and read back: the failure is stable, not the router.
    assert_eq!((h.weight("v2"), h.weight("v1")), (0, 100));
}

#[test]
fn haproxy_killed_mid_canary_never_claims_a_clean_rollback() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let mut h = Haproxy::start(dir.path(), stable, canary);
    // A steady healthy sample, so the step bakes whatever happens to HAProxy,
    // and the next weight change is what meets the dead runtime API.
    let sample = r#"{"canary":{"requests":100,"errors":0},"stable":{"requests":100,"errors":0}}"#;
    write_plan(
        dir.path(),
        &h,
        &format!("kind = \"command\"\nsample = '''echo '{sample}' '''"),
        "4s",
    );
    let state = dir.path().join("state");
    let mut run = spawn_cutover(
        dir.path(),
        &["run", "--headless", "--auto-approve", "deploy.toml"],
    );
    wait_for("the first canary step", LIMIT, || {
        journal_so_far(&state)
            .iter()
            .any(|e| e["event"] == "weight_applied" && e["weight"] == 50)
            .then_some(())
    });
    assert_eq!(h.weight("v2"), 50);
    h.child.0.kill().unwrap();
    h.child.0.wait().unwrap();

    let status = wait_exit(&mut run, LIMIT);
    let stdout = std::fs::read_to_string(dir.path().join("cutover.stdout")).unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("cutover.stderr")).unwrap();
    let all = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(status.code(), Some(4), "{all}");
    assert!(
        all.contains("cannot connect to HAProxy's runtime API"),
        "{all}"
    );
    let (_, events) = journal(&state);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "deployment_finished");
    assert_eq!(last["outcome"], "rollback_failed", "{all}");
    assert!(
        !events.iter().any(|e| e["outcome"] == "rolled_back"),
        "{all}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "weight_failed" && e["weight"] == 0),
        "{all}"
    );
}

/// The analysis through Prometheus scraping both versions every second,
/// with the cumulative counts the sequential judge reads.
fn prometheus_source(url: &str) -> String {
    format!(
        r#"kind = "prometheus"
url = "{url}"
error_rate = '(sum(rate(http_requests_total{{version="$version",code=~"5.."}}[10s])) or vector(0)) / sum(rate(http_requests_total{{version="$version"}}[10s]))'
requests = 'sum(increase(http_requests_total{{version="$version"}}[10s]))'
p99_ms = '1000 * histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{version="$version"}}[10s])))'
requests_total = 'sum(http_requests_total{{version="$version"}})'
errors_total = 'sum(http_requests_total{{version="$version",code=~"5.."}}) or vector(0)'
slow_total = 'sum(http_request_duration_seconds_count{{version="$version"}}) - sum(http_request_duration_seconds_bucket{{version="$version",le="$slow_seconds"}})'"#
    )
}

fn canary_through_haproxy_judged_by_prometheus(
    canary_args: &[&str],
) -> (tempfile::TempDir, std::process::Output, (u32, u32)) {
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", canary_args);
    let h = Haproxy::start(dir.path(), stable, canary);
    let prom = start_prometheus(dir.path(), &[stable, canary]);
    write_plan(dir.path(), &h, &prometheus_source(&prom.url), "4s");
    let traffic = Traffic::start(h.front, Duration::from_millis(5), LIMIT);
    let out = cutover(dir.path(), &["run", "--headless", "deploy.toml"], LIMIT);
    traffic.stop();
    let weights = (h.weight("v2"), h.weight("v1"));
    (dir, out, weights)
}

#[test]
fn a_healthy_canary_through_haproxy_judged_by_prometheus_is_promoted() {
    if !have_external("haproxy") || !have_external("prometheus") {
        return;
    }
    let (dir, out, weights) = canary_through_haproxy_judged_by_prometheus(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(dir.path(), &out));
    // HAProxy's own weights read back canary-only.
    assert_eq!(weights, (100, 0));
    let (_, events) = journal(&dir.path().join("state"));
    let pass = events_named(&events, "analysis")
        .into_iter()
        .find(|e| e["verdict"] == "pass")
        .cloned()
        .expect("a passing sample");
    assert!(pass["canary"]["requests"].as_u64().unwrap() > 0);
    assert!(pass["canary"]["p99_ms"].as_f64().is_some(), "{pass}");
}

#[test]
fn a_canary_failing_40_percent_through_haproxy_is_rolled_back_by_prometheus() {
    if !have_external("haproxy") || !have_external("prometheus") {
        return;
    }
    let (dir, out, weights) = canary_through_haproxy_judged_by_prometheus(&["--error-rate", "0.4"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(dir.path(), &out));
    assert_eq!(weights, (0, 100));
    let (_, events) = journal(&dir.path().join("state"));
    let started = events_named(&events, "rollback_started");
    assert_eq!(
        started[0]["source"],
        "analysis",
        "{}",
        describe(dir.path(), &out)
    );
    assert_eq!(events.last().unwrap()["outcome"], "rolled_back");
}

#[test]
fn sequential_through_haproxys_own_counters_passes_a_healthy_canary_and_rolls_back_a_failing_one() {
    if !have_external("haproxy") {
        return;
    }
    for bad in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (_v1, stable) = demo_app("v1", &[]);
        let extra: &[&str] = if bad { &["--error-rate", "0.2"] } else { &[] };
        let (_v2, canary) = demo_app("v2", extra);
        let h = Haproxy::start(dir.path(), stable, canary);
        // The guards loose (a 25 % limit, 50 samples in a row), so that the
        // judge decides; 25 % is also the rate a canary with no errors must
        // be shown below to pass.
        write_plan_judged(
            dir.path(),
            &h,
            "kind = \"haproxy\"",
            "2s",
            "method = \"sequential\"\nmin_requests = 5\nfailure_limit = 50\nmax_error_rate = 0.25",
        );
        // HAProxy counts no latencies: `check` says the slow kind is not judged.
        let checked = cutover(dir.path(), &["check", "deploy.toml"], LIMIT);
        assert!(
            text(&checked.stdout)
                .contains("slow requests not judged (HAProxy counts no latencies)"),
            "{}",
            text(&checked.stdout)
        );
        let traffic = Traffic::start(h.front, Duration::from_millis(5), LIMIT);
        let out = cutover(
            dir.path(),
            &["run", "--headless", "--auto-approve", "deploy.toml"],
            LIMIT,
        );
        traffic.stop();
        let (_, events) = journal(&dir.path().join("state"));
        let judged: Vec<_> = events_named(&events, "analysis")
            .into_iter()
            .filter(|e| e["sequential"].is_object())
            .collect();
        assert!(!judged.is_empty(), "{}", describe(dir.path(), &out));
        for a in &judged {
            // HAProxy's running totals, one kind only.
            assert!(a["canary"]["totals"]["requests"].as_u64().is_some(), "{a}");
            assert!(a["canary"]["totals"]["slow"].is_null(), "{a}");
            assert_eq!(a["sequential"]["kinds_judged"], 1, "{a}");
            assert_eq!(a["sequential"]["kinds"][0]["kind"], "errors", "{a}");
        }
        if bad {
            assert_eq!(out.status.code(), Some(3), "{}", describe(dir.path(), &out));
            // Few requests a window: the guards may fail samples first, but
            // the rollback is the judge's, on HAProxy's own counters.
            let last = judged.last().unwrap();
            assert_eq!(last["verdict"], "fail", "{}", describe(dir.path(), &out));
            let ln_e = last["sequential"]["kinds"][0]["evidence"]["ln_e_fail"]
                .as_f64()
                .unwrap();
            assert!(ln_e >= 100f64.ln(), "{last}");
            let started = &events_named(&events, "rollback_started")[0];
            assert!(
                started["reason"].as_str().unwrap().contains("1/alpha"),
                "{started}"
            );
            assert_eq!((h.weight("v2"), h.weight("v1")), (0, 100));
        } else {
            assert_eq!(out.status.code(), Some(0), "{}", describe(dir.path(), &out));
            assert!(judged.iter().any(|e| e["verdict"] == "pass"));
            assert_eq!((h.weight("v2"), h.weight("v1")), (100, 0));
            // HAProxy's roundrobin served the weights: no split drift.
            assert!(
                events_named(&events, "weight_drift").is_empty(),
                "{}",
                describe(dir.path(), &out)
            );
        }
    }
}

#[test]
fn sequential_through_haproxy_judged_by_prometheus_counters_rolls_back_a_failing_canary() {
    if !have_external("haproxy") || !have_external("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &["--error-rate", "0.3"]);
    let h = Haproxy::start(dir.path(), stable, canary);
    let prom = start_prometheus(dir.path(), &[stable, canary]);
    write_plan_judged(
        dir.path(),
        &h,
        &prometheus_source(&prom.url),
        "30s",
        "method = \"sequential\"\nmin_requests = 5\nfailure_limit = 50\nmax_error_rate = 0.5",
    );
    let traffic = Traffic::start(h.front, Duration::from_millis(5), LIMIT);
    let out = cutover(dir.path(), &["run", "--headless", "deploy.toml"], LIMIT);
    traffic.stop();
    assert_eq!(out.status.code(), Some(3), "{}", describe(dir.path(), &out));
    assert_eq!((h.weight("v2"), h.weight("v1")), (0, 100));
    let (_, events) = journal(&dir.path().join("state"));
    let started = &events_named(&events, "rollback_started")[0];
    assert!(
        started["reason"].as_str().unwrap().contains("1/alpha"),
        "{started}"
    );
    let fail = events_named(&events, "analysis")
        .into_iter()
        .find(|e| e["verdict"] == "fail")
        .cloned()
        .expect("a failing sample");
    let record = &fail["sequential"];
    // Prometheus' counters, with slow requests from the bucket at slow_ms.
    assert_eq!(record["kinds_judged"], 2, "{fail}");
    assert_eq!(record["kinds"][0]["kind"], "errors", "{fail}");
    assert_eq!(record["kinds"][0]["verdict"], "fail", "{fail}");
    assert_eq!(fail["canary"]["totals"]["slow"], 0, "{fail}");
}

#[test]
fn a_stable_marked_down_by_haproxy_is_a_split_drift_though_the_weight_reads_back_right() {
    if !have_external("haproxy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let h = Haproxy::start_checked(dir.path(), stable, canary);
    let plan = |split: bool| {
        write_plan_judged(
            dir.path(),
            &h,
            "kind = \"haproxy\"",
            "1h",
            "method = \"sequential\"\nmin_requests = 5",
        );
        let path = dir.path().join("deploy.toml");
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "steps = [50, 100]",
            &format!("steps = [10, 100]\nmeasure_split = {split}"),
        );
        std::fs::write(path, text).unwrap();
    };
    plan(true);
    let traffic = Traffic::start(h.front, Duration::from_millis(5), LIMIT);
    let mut run = spawn_cutover(dir.path(), &["run", "--headless", "deploy.toml"]);
    let state = dir.path().join("state");
    wait_for_event(&state, LIMIT, |e| {
        e["event"] == "weight_applied" && e["weight"] == 10
    });
    // HAProxy's checks mark stable down: every request goes to the canary,
    // while both servers' weights still read 90 and 10.
    drop(v1);
    let status = wait_exit(&mut run, LIMIT);
    traffic.stop();
    let (_, events) = journal(&state);
    let all = events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let drift = events_named(&events, "weight_drift");
    assert_eq!(drift.len(), 1, "{all}");
    assert_eq!(drift[0]["expected"], 10, "{all}");
    assert!(drift[0]["router_weight"].as_u64().unwrap() >= 50, "{all}");
    assert!(
        drift[0]["detail"]
            .as_str()
            .unwrap()
            .contains("measured from the router's own counts"),
        "{all}"
    );
    // on_failure = rollback; with stable down the rollback is not clean.
    let seq = |name: &str| events_named(&events, name)[0]["seq"].as_u64().unwrap();
    assert!(seq("weight_drift") < seq("rollback_started"), "{all}");
    assert_eq!(status.code(), Some(4), "{all}");
    assert_eq!(
        events.last().unwrap()["outcome"],
        "rollback_failed",
        "{all}"
    );
    // The plan can turn it off (a router sticky by design); check accepts it.
    plan(false);
    let checked = cutover(dir.path(), &["check", "deploy.toml"], LIMIT);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
}
