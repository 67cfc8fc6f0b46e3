//! Faults met by operators: a killed process resumed, a second run refused by
//! the lock, a hook that ignores SIGTERM, a router that fails every other call,
//! a state dir that cannot be written.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn plan(
    stable: std::net::SocketAddr,
    canary: std::net::SocketAddr,
    listen: std::net::SocketAddr,
) -> String {
    format!(
        r#"[deployment]
service = "shop"
version = "v2"
previous = "v1"
state_dir = "state"

[[prepare]]
name = "counted"
run = 'echo x >> prepare-runs'

[[deploy]]
name = "deploy once"
run = 'echo x >> deploy-runs'

[[smoke]]
name = "canary answers"
http = "http://{canary}/health"

[traffic]
steps = [10, 50, 100]
bake = "2s"
approval = "auto"

[traffic.router]
kind = "builtin"
listen = "{listen}"
stable = "{stable}"
canary = "{canary}"

[analysis]
method = "threshold"
interval = "500ms"
window = "3s"
min_requests = 5

[[verify]]
name = "through the router"
http = "http://{listen}/"
"#
    )
}

#[test]
fn killed_mid_canary_then_resumed_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let listen = free_addr();
    std::fs::write(dir.path().join("deploy.toml"), plan(stable, canary, listen)).unwrap();
    let state = dir.path().join("state");
    let _load = Traffic::start(listen, Duration::from_millis(16), Duration::from_secs(240));

    let mut first = spawn_cutover(dir.path(), &["run", "--headless"]);
    wait_for_event(&state, Duration::from_secs(90), |e| {
        e["event"] == "weight_applied" && e["weight"] == 50
    });
    kill(Pid::from_raw(first.0.id() as i32), Signal::SIGKILL).unwrap();
    let _ = first.0.wait();

    // A plain run refuses while the deployment is unfinished, and says why.
    let out = cutover(dir.path(), &["run", "--headless"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("unfinished") && err.contains("--resume") && err.contains("--abandon"),
        "{err}"
    );

    let out = cutover(
        dir.path(),
        &["run", "--headless", "--resume"],
        Duration::from_secs(180),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let (_, events) = journal(&state);
    assert_eq!(events_named(&events, "deployment_started").len(), 1);
    let resumed = events_named(&events, "deployment_resumed");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["recorded_weight"], 50);
    // The new process's router started at 0: the difference is on record and
    // the recorded weight is restored before anything moves on.
    assert_eq!(resumed[0]["router_weight"], 0);
    let restore = events_named(&events, "weight_requested")
        .into_iter()
        .find(|e| e["source"] == "resume")
        .cloned()
        .expect("a resume weight request");
    assert_eq!(restore["weight"], 50);
    // The lock of the killed process was taken over, on record.
    assert!(events_named(&events, "note")
        .iter()
        .any(|n| n["message"].as_str().unwrap().contains("lock")));
    // Nothing done twice.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("prepare-runs"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("deploy-runs"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    let weights: Vec<u64> = events_named(&events, "weight_applied")
        .iter()
        .map(|e| e["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [10, 50, 50, 100]);
    assert_eq!(events.last().unwrap()["outcome"], "succeeded");
    let out = cutover(
        dir.path(),
        &["history", "--verify"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

/// Writes a plan whose one prepare check runs `command`.
fn one_check_plan(dir: &std::path::Path, name: &str, command: &str) {
    std::fs::write(
        dir.join("deploy.toml"),
        format!("[deployment]\nservice = \"s\"\nversion = \"v2\"\nstate_dir = \"state\"\n\n[[prepare]]\nname = \"{name}\"\nrun = \"{command}\"\n"),
    )
    .unwrap();
}

/// Starts a headless run of a plan whose check sleeps, once the check runs.
fn start_a_slow_run(dir: &std::path::Path) -> ChildGuard {
    one_check_plan(dir, "slow", "sleep 30");
    let run = spawn_cutover(dir, &["run", "--headless"]);
    wait_for_event(&dir.join("state"), Duration::from_secs(30), |e| {
        e["event"] == "check_started"
    });
    run
}

#[test]
fn abandon_closes_the_unfinished_journal_and_starts_anew() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_a_slow_run(dir.path());
    kill(Pid::from_raw(first.0.id() as i32), Signal::SIGKILL).unwrap();
    let _ = first.0.wait();
    std::thread::sleep(Duration::from_millis(1100));
    one_check_plan(dir.path(), "quick", "true");
    let out = cutover(
        dir.path(),
        &["run", "--headless", "--abandon"],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = cutover(dir.path(), &["history", "--json"], Duration::from_secs(30));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["interrupted", "succeeded"]);
    let out = cutover(
        dir.path(),
        &["history", "--verify"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn a_second_run_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut first = start_a_slow_run(dir.path());
    let out = cutover(dir.path(), &["run", "--headless"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{} on", account()))
            && err.contains(&format!("pid {}", first.0.id())),
        "{err}"
    );
    // SIGTERM: traffic held, journal closed as interrupted, exit 5.
    kill(Pid::from_raw(first.0.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(
        wait_exit(&mut first, Duration::from_secs(30)).code(),
        Some(5)
    );
    let (_, events) = journal(&state);
    assert_eq!(events.last().unwrap()["outcome"], "interrupted");
}

#[test]
fn a_hook_that_ignores_sigterm_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let secs = format!("700.{}", std::process::id());
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!("[deployment]\nservice = \"s\"\nversion = \"v2\"\nstate_dir = \"state\"\n\n[[prepare]]\nname = \"stubborn\"\nrun = \"trap '' TERM; sleep {secs}; sleep {secs}\"\ntimeout = \"1s\"\n"),
    )
    .unwrap();
    let out = cutover(dir.path(), &["run", "--headless"], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ignored SIGTERM"),
        "{}",
        text(&out.stderr)
    );
    let (_, events) = journal(&dir.path().join("state"));
    let f = events_named(&events, "check_finished")[0].clone();
    assert!(f["message"].as_str().unwrap().contains("timed out"));
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {secs}")])
        .output();
    if let Ok(ps) = ps {
        assert!(
            text(&ps.stdout).trim().is_empty(),
            "left behind: {}",
            text(&ps.stdout)
        );
    }
}

#[test]
fn a_router_failing_every_other_call_ends_in_a_clean_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let sample = r#"echo '{"canary":{"requests":100,"errors":0,"p99_ms":5},"stable":{"requests":100,"errors":0,"p99_ms":5}}'"#;
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!(
            r#"[deployment]
service = "s"
version = "v2"
state_dir = "state"

[traffic]
steps = [50, 100]
bake = "1s"
approval = "auto"

[traffic.router]
kind = "command"
# Every second call fails; the weight is kept in a file.
set_weight = 'n=$(cat calls 2>/dev/null || echo 0); n=$((n+1)); echo $n > calls; if [ $((n % 2)) -eq 0 ]; then echo "gateway busy" >&2; exit 1; fi; echo $CUTOVER_WEIGHT > weight'
get_weight = 'cat weight'

[analysis]
method = "threshold"
interval = "200ms"
window = "1s"

[analysis.source]
kind = "command"
sample = '''{sample}'''
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("weight"), "0\n").unwrap();
    let out = cutover(dir.path(), &["run", "--headless"], Duration::from_secs(60));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (_, events) = journal(&dir.path().join("state"));
    let failed = events_named(&events, "weight_failed");
    assert_eq!(failed[0]["weight"], 100);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("gateway busy"),
        "{}",
        failed[0]
    );
    let weights: Vec<u64> = events_named(&events, "weight_applied")
        .iter()
        .map(|e| e["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [50, 0]);
    assert_eq!(
        events_named(&events, "rollback_finished")[0]["outcome"],
        "succeeded"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("weight"))
            .unwrap()
            .trim(),
        "0"
    );
}

#[test]
fn a_state_dir_that_cannot_be_written_stops_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[deployment]\nservice = \"s\"\nversion = \"v2\"\nstate_dir = \"not-a-dir/state\"\n\n[[prepare]]\nname = \"x\"\nrun = \"touch ran\"\n",
    )
    .unwrap();
    let out = cutover(dir.path(), &["run", "--headless"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not-a-dir"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn secrets_stay_out_of_the_journal_the_output_and_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, addr) = demo_app("v1", &[]);
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!(
            "[deployment]\nservice = \"s\"\nversion = \"v2\"\nstate_dir = \"state\"\n\n[[prepare]]\nname = \"with token\"\nhttp = \"http://{addr}/health?token=${{env:CUTOVER_TEST_TOKEN}}\"\n\n[[prepare]]\nname = \"echo\"\nrun = 'echo \"key is $API_KEY\"'\nenv = {{ API_KEY = \"${{env:CUTOVER_TEST_TOKEN}}\" }}\n"
        ),
    )
    .unwrap();
    let secret = "s3cr3t-value-91827";
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .current_dir(dir.path())
            .env("CUTOVER_TEST_TOKEN", secret)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout) + &text(&out.stderr))
    };
    let (code, plan_text) = run(&["check"]);
    assert_eq!(code, Some(0), "{plan_text}");
    assert!(!plan_text.contains(secret), "{plan_text}");
    let (code, output) = run(&["run", "--headless"]);
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains(secret), "{output}");
    assert!(output.contains("key is ••••••"), "{output}");
    let (path, _) = journal(&dir.path().join("state"));
    let body = std::fs::read_to_string(path).unwrap();
    assert!(!body.contains(secret));
}

#[test]
fn a_journal_that_cannot_be_written_stops_the_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan =
        String::from("[deployment]\nservice = \"s\"\nversion = \"v2\"\nstate_dir = \"state\"\n");
    for i in 0..60 {
        plan.push_str(&format!(
            "\n[[prepare]]\nname = \"step {i}\"\nrun = \"touch ran-{i}\"\n"
        ));
    }
    std::fs::write(dir.path().join("deploy.toml"), plan).unwrap();
    // A file size limit makes the journal's writes fail part-way (EFBIG), as a
    // full disk would; SIGXFSZ is ignored so the write error is what is seen.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 16; exec '{}' run --headless",
            bin()
        ))
        .current_dir(dir.path())
        .env("USER", "tester")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("cannot write the journal"), "{stderr}");
    // It stopped instead of carrying on unrecorded.
    assert!(
        !dir.path().join("ran-59").exists(),
        "the run went on after the journal failed"
    );
    // The write that failed left a torn line: reported, not silently dropped.
    // (When the size limit falls exactly between two lines nothing is torn,
    // and the journal ends cleanly at its last whole line.)
    let journal_len = std::fs::read_dir(dir.path().join("state/deployments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read(p).unwrap())
        .unwrap();
    let verify = cutover(
        dir.path(),
        &["history", "--verify"],
        Duration::from_secs(30),
    );
    if journal_len.last() == Some(&b'\n') {
        assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    } else {
        assert_eq!(verify.status.code(), Some(1));
        assert!(
            text(&verify.stdout).contains("torn"),
            "{}",
            text(&verify.stdout)
        );
    }
    let events = journal_so_far(&dir.path().join("state"));
    let ran = (0..60)
        .filter(|i| dir.path().join(format!("ran-{i}")).exists())
        .count();
    let recorded = events
        .iter()
        .filter(|e| e["event"] == "check_finished")
        .count();
    // Every check that ran is on record, but for at most the one in flight.
    assert!(ran <= recorded + 1, "{ran} checks ran, {recorded} recorded");
}

#[test]
fn resumed_after_the_traffic_stage_the_router_carries_the_recorded_weight() {
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let listen = free_addr();
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!(
            r#"[deployment]
service = "shop"
version = "v2"
previous = "v1"
state_dir = "state"

[traffic]
steps = [100]
bake = "1s"
approval = "auto"

[traffic.router]
kind = "builtin"
listen = "{listen}"
stable = "{stable}"
canary = "{canary}"

[analysis]
method = "threshold"
interval = "250ms"
window = "2s"
min_requests = 3

[[verify]]
name = "slow suite"
run = "sleep 3"

[[verify]]
name = "new version answers through the router"
http = "http://{listen}/"
expect_body = "hello from v2"
"#
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let _load = Traffic::start(listen, Duration::from_millis(20), Duration::from_secs(120));
    let mut first = spawn_cutover(dir.path(), &["run", "--headless"]);
    wait_for_event(&state, Duration::from_secs(60), |e| {
        e["event"] == "check_started" && e["check"] == "slow suite"
    });
    kill(Pid::from_raw(first.0.id() as i32), Signal::SIGKILL).unwrap();
    let _ = first.0.wait();

    // The new process's built-in router starts at 0: the resume restores 100%
    // before the verify checks go through it.
    let out = cutover(
        dir.path(),
        &["run", "--headless", "--resume"],
        Duration::from_secs(120),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (_, events) = journal(&state);
    let restore = events
        .iter()
        .find(|e| e["event"] == "weight_requested" && e["source"] == "resume")
        .expect("the recorded weight restored");
    assert_eq!(restore["weight"], 100);
    // The traffic stage was not walked again.
    let traffic_starts = events
        .iter()
        .filter(|e| e["event"] == "stage_started" && e["stage"] == "traffic")
        .count();
    assert_eq!(traffic_starts, 1);
    assert_eq!(events.last().unwrap()["outcome"], "succeeded");
}
