//! The engine end to end through the real binary: headless runs, failure
//! policy, command timeouts, large output, the journal and history.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(120);

fn write_plan(dir: &std::path::Path, body: &str) {
    let plan = format!(
        "[deployment]\nservice = \"svc\"\nversion = \"v2\"\nprevious = \"v1\"\nstate_dir = \"state\"\n\n{body}"
    );
    std::fs::write(dir.join("deploy.toml"), plan).expect("write plan");
}

#[test]
fn headless_run_with_shell_http_and_tcp_checks_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, addr) = demo_app("v1", &[]);
    write_plan(
        dir.path(),
        &format!(
            r#"
[[prepare]]
name = "shell"
run = 'echo "deploying $CUTOVER_SERVICE $CUTOVER_VERSION from $CUTOVER_PREVIOUS in $CUTOVER_STAGE"'

[[prepare]]
name = "health"
http = "http://{addr}/health"

[[deploy]]
name = "port open"
tcp = "{addr}"

[[smoke]]
name = "body"
http = "http://{addr}/"
expect_body = "hello from v1"

[[verify]]
name = "status"
http = "http://{addr}/health"
expect_status = 200

[[finalize]]
name = "done"
run = "true"
"#
        ),
    );
    let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(
        stderr_has(&out, "deploying svc v2 from v1 in prepare"),
        "{}",
        text(&out.stderr)
    );

    let (path, events) = journal(&dir.path().join("state"));
    // seq runs 1..n, every line is hashed, the chain verifies.
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], (i + 1) as u64);
        assert_eq!(e["hash"].as_str().map(str::len), Some(64));
    }
    let last = events.last().unwrap();
    assert_eq!(last["event"], "deployment_finished");
    assert_eq!(last["outcome"], "succeeded");
    // Stages in the procedure's order, each started before it finished.
    let order: Vec<String> = events_named(&events, "stage_started")
        .iter()
        .map(|e| e["stage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        [
            "prepare",
            "checkpoint",
            "deploy",
            "smoke",
            "traffic",
            "verify",
            "finalize"
        ]
    );
    let passed: Vec<&str> = events_named(&events, "check_finished")
        .iter()
        .map(|e| {
            assert_eq!(e["outcome"], "passed", "{e}");
            e["check"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        passed,
        ["shell", "health", "port open", "body", "status", "done"]
    );
    // One line per event on stdout, in journal order.
    assert_eq!(stdout.lines().count(), events.len(), "{stdout}");

    let verify = cutover(dir.path(), &["history", "--verify"], LIMIT);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    assert!(text(&verify.stdout).contains(&format!("{} lines", events.len())));
    assert!(path.exists());
}

fn stderr_has(out: &std::process::Output, needle: &str) -> bool {
    text(&out.stderr).contains(needle)
}

#[test]
fn json_events_are_the_journal_lines() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), "[[prepare]]\nname = \"ok\"\nrun = \"true\"\n");
    let out = cutover(dir.path(), &["run", "--headless", "--json"], LIMIT);
    assert_eq!(out.status.code(), Some(0));
    let (path, _) = journal(&dir.path().join("state"));
    assert_eq!(text(&out.stdout), std::fs::read_to_string(path).unwrap());
}

#[test]
fn failing_smoke_check_rolls_back_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        r#"
[[deploy]]
name = "start"
run = "true"

[[smoke]]
name = "broken endpoint"
run = "echo 'HTTP 503 from /checkout' >&2; exit 7"

[[smoke]]
name = "never reached"
run = "true"

[[rollback]]
name = "undo"
run = "echo undoing $CUTOVER_VERSION"
"#,
    );
    let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let (_, events) = journal(&dir.path().join("state"));
    let failed = events_named(&events, "check_finished")
        .into_iter()
        .find(|e| e["check"] == "broken endpoint")
        .cloned()
        .unwrap();
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["exit_code"], 7);
    assert!(failed["output_tail"].as_str().unwrap().contains("HTTP 503"));
    assert!(events_named(&events, "check_started")
        .iter()
        .all(|e| e["check"] != "never reached"));
    let rb = events_named(&events, "rollback_started");
    assert_eq!(rb.len(), 1);
    assert_eq!(rb[0]["source"], "check");
    let undo = events_named(&events, "check_finished")
        .into_iter()
        .find(|e| e["check"] == "undo")
        .cloned()
        .unwrap();
    assert_eq!(undo["stage"], "rollback");
    assert_eq!(undo["outcome"], "passed");
    assert_eq!(
        events_named(&events, "rollback_finished")[0]["outcome"],
        "succeeded"
    );
    assert_eq!(events.last().unwrap()["outcome"], "rolled_back");
}

#[test]
fn failing_prepare_check_fails_with_exit_1_and_starts_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        r#"
[[prepare]]
name = "approved"
run = "exit 1"

[[checkpoint]]
name = "backup"
run = "touch should-not-exist"

[[rollback]]
name = "undo"
run = "touch should-not-exist"
"#,
    );
    let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
    assert_eq!(out.status.code(), Some(1));
    let (_, events) = journal(&dir.path().join("state"));
    let stages: Vec<&str> = events_named(&events, "stage_started")
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["prepare"]);
    assert!(events_named(&events, "rollback_started").is_empty());
    assert_eq!(events.last().unwrap()["outcome"], "failed");
    assert!(!dir.path().join("should-not-exist").exists());
}

#[test]
fn optional_check_only_warns_and_retries_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        r#"
[[prepare]]
name = "flaky"
run = 'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; test $n -ge 3'
retries = 3
retry_delay = "10ms"

[[prepare]]
name = "nice to have"
run = "exit 1"
optional = true
"#,
    );
    let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let (_, events) = journal(&dir.path().join("state"));
    let finished = events_named(&events, "check_finished");
    assert_eq!(finished[0]["attempts"], 3);
    assert_eq!(finished[0]["outcome"], "passed");
    assert_eq!(finished[1]["outcome"], "warned");
    let prepare_done = events_named(&events, "stage_finished")
        .into_iter()
        .find(|e| e["stage"] == "prepare")
        .cloned()
        .unwrap();
    assert_eq!(prepare_done["outcome"], "warned");
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let cmdline = e.path().join("cmdline");
            if let Ok(raw) = std::fs::read(&cmdline) {
                let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                if line.contains(needle) && !stat.contains(") Z ") {
                    found.push(format!("{}: {line}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    found
}

#[test]
fn a_command_that_times_out_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    // A sleep length no other process on the machine uses.
    let secs = format!("600.{}", std::process::id());
    write_plan(
        dir.path(),
        &format!(
            r#"
[[prepare]]
name = "hangs"
run = "sleep {secs} & sleep {secs}"
timeout = "1s"
"#
        ),
    );
    let out = cutover(dir.path(), &["run", "--headless"], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    let (_, events) = journal(&dir.path().join("state"));
    let f = events_named(&events, "check_finished")[0].clone();
    assert!(f["message"].as_str().unwrap().contains("timed out"), "{f}");
    // The group was killed; give the kernel a moment to reap.
    let mut left = processes_with(&format!("sleep {secs}"));
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = processes_with(&format!("sleep {secs}"));
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_hundred_thousand_lines_of_output_keep_their_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        r#"
[[prepare]]
name = "chatty"
run = "seq 1 100000"
"#,
    );
    let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("  | chatty │ 100000"));
    let (_, events) = journal(&dir.path().join("state"));
    let f = events_named(&events, "check_finished")[0].clone();
    let tail = f["output_tail"].as_str().unwrap();
    assert!(tail.ends_with("99999\n100000"), "{tail}");
    assert!(tail.lines().count() <= 20);
    assert!(f["message"].as_str().unwrap().contains("100000 lines"));
}

#[test]
fn a_manual_gate_without_auto_approve_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        r#"
[[prepare]]
name = "Change reviewed"
manual = "Someone read the diff"
"#,
    );
    let out = cutover(dir.path(), &["run", "--headless"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("prepare check \"Change reviewed\""), "{err}");
    assert!(err.contains("--auto-approve"), "{err}");
    assert!(!dir.path().join("state").exists(), "nothing may be started");

    let out = cutover(dir.path(), &["run", "--headless", "--auto-approve"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let (_, events) = journal(&dir.path().join("state"));
    let a = events_named(&events, "approved")[0].clone();
    assert_eq!(a["check"], "Change reviewed");
    assert_eq!(a["operator"], format!("{} (auto-approve)", account()));
}

#[test]
fn history_lists_each_outcome() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), "[[prepare]]\nname = \"ok\"\nrun = \"true\"\n");
    assert_eq!(
        cutover(dir.path(), &["run", "--headless"], LIMIT)
            .status
            .code(),
        Some(0)
    );
    // Ids carry the second; the next run must not share it.
    std::thread::sleep(Duration::from_millis(1100));
    write_plan(dir.path(), "[[prepare]]\nname = \"no\"\nrun = \"false\"\n");
    assert_eq!(
        cutover(dir.path(), &["run", "--headless"], LIMIT)
            .status
            .code(),
        Some(1)
    );

    let out = cutover(dir.path(), &["history"], LIMIT);
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    assert!(
        table.contains("succeeded") && table.contains("failed"),
        "{table}"
    );
    assert!(table.contains("v1 → v2"), "{table}");

    let out = cutover(dir.path(), &["history", "--json"], LIMIT);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded", "failed"]);

    // An edited journal is named by --verify.
    let (path, _) = journal(&dir.path().join("state"));
    let body = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, body.replacen("\"no\"", "\"ok\"", 1)).unwrap();
    let out = cutover(dir.path(), &["history", "--verify"], LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("BAD"), "{}", text(&out.stdout));
}
