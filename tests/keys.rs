//! Every key acts at once, exactly once, through the real binary in a PTY:
//! two `a` in one read approve one step (the other is refused, on record),
//! and `R` during a slow step change preempts it: the weight never rises
//! after the key, and the rollback is timed from the key.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pty::Pty;
use common::*;

const PATIENCE: Duration = Duration::from_secs(40);

/// Stops a detached engine when the test ends, pass or fail.
struct EngineGuard<'a>(&'a Path);

impl Drop for EngineGuard<'_> {
    fn drop(&mut self) {
        stop_engine(self.0);
    }
}

#[test]
fn two_approvals_in_one_read_approve_one_step_and_the_next_step_bakes() {
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
steps = [10, 30, 60, 100]
bake = "3s"
approval = "manual"
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
"#
        ),
    )
    .unwrap();
    let _engine = EngineGuard(dir.path());
    let mut pty = Pty::spawn(dir.path(), &["run", "deploy.toml"], 100, 30, &[]);
    pty.wait_for_text("weight 10%", PATIENCE);
    let _load = Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(60));
    pty.wait_for_text("APPROVE THE NEXT STEP", PATIENCE);
    // A double tap (or keys batched by a laggy link): one read, two `a`.
    pty.write(b"aa");
    let state = dir.path().join("state");
    wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 30
    });
    wait_for_event(&state, PATIENCE, |e| e["event"] == "approval_refused");
    // Longer than a few samples, shorter than the bake: still at 30%.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, events) = journal(&state);
    let approved: Vec<_> = events_named(&events, "approved")
        .iter()
        .map(|e| e["step"].clone())
        .collect();
    assert_eq!(
        approved,
        [serde_json::json!(30)],
        "one approval, for the gate shown"
    );
    assert!(
        !events_named(&events, "weight_applied")
            .iter()
            .any(|e| e["weight"] == 60),
        "the step to 30% must bake before anything moves on"
    );
    let refused = &events_named(&events, "approval_refused")[0];
    assert_eq!(refused["requested"]["to"], 30);
}

#[test]
fn r_during_a_slow_step_change_preempts_it_and_the_weight_never_rises() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("w"), "0\n").unwrap();
    std::fs::write(
        dir.path().join("setw.sh"),
        format!(
            "#!/bin/sh\n# a router that takes seconds (kubectl patch, a cloud load balancer)\n\
             echo \"start $CUTOVER_WEIGHT\" >> {d}/router.log\n\
             [ \"$CUTOVER_WEIGHT\" = 0 ] || sleep 4\n\
             echo $CUTOVER_WEIGHT > {d}/w\n\
             echo \"done $CUTOVER_WEIGHT\" >> {d}/router.log\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!(
            r#"[deployment]
service = "shop"
version = "v2"
previous = "v1"
state_dir = "state"
[traffic]
steps = [10, 50, 100]
bake = "1s"
approval = "auto"
[traffic.router]
kind = "command"
set_weight = 'sh {d}/setw.sh'
get_weight = 'cat {d}/w'
[analysis]
method = "threshold"
interval = "250ms"
min_requests = 10
[analysis.source]
kind = "command"
sample = 'echo "{{\"canary\": {{\"requests\": 100, \"errors\": 0, \"p99_ms\": 50}}, \"stable\": {{\"requests\": 900, \"errors\": 0, \"p99_ms\": 50}}}}"'
"#
        ),
    )
    .unwrap();
    let _engine = EngineGuard(dir.path());
    let mut pty = Pty::spawn(dir.path(), &["run", "deploy.toml"], 100, 30, &[]);
    let log = || std::fs::read_to_string(dir.path().join("router.log")).unwrap_or_default();
    wait_for("the step to 50% under way", PATIENCE, || {
        log().contains("start 50").then_some(())
    });
    pty.wait_for_text("weight 10%", PATIENCE);
    let pressed = chrono::Utc::now();
    pty.write(b"R");
    let state = dir.path().join("state");
    let finished = wait_for_event(&state, PATIENCE, |e| e["event"] == "rollback_finished");
    // Longer than the abandoned change would have taken.
    std::thread::sleep(Duration::from_secs(5));
    let log = log();
    assert!(!log.contains("done 50"), "the step landed after R:\n{log}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("w"))
            .unwrap()
            .trim(),
        "0"
    );
    let (_, events) = journal(&state);
    let started = &events_named(&events, "rollback_started")[0];
    assert_eq!(started["source"], "operator");
    // The timing starts at the key press, not when the engine got to it.
    let requested: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(started["requested_at"].clone()).unwrap();
    assert!(
        requested >= pressed - chrono::TimeDelta::seconds(1),
        "{requested} vs {pressed}"
    );
    assert!(
        requested <= pressed + chrono::TimeDelta::seconds(2),
        "{requested} vs {pressed}"
    );
    let abandoned = events_named(&events, "weight_failed");
    assert!(
        abandoned
            .iter()
            .any(|e| e["weight"] == 50 && e["error"].as_str().unwrap().contains("abandoned")),
        "the step in flight is on record as abandoned: {abandoned:?}"
    );
    // Every weight the router confirmed after the key is 0.
    let after: Vec<_> = events
        .iter()
        .skip_while(|e| e["event"] != "rollback_started")
        .filter(|e| e["event"] == "weight_applied")
        .map(|e| e["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(after, [0]);
    assert!(
        finished["weight_applied_ms"].as_f64().is_some(),
        "{finished}"
    );
}
