//! The deployment outlives the SSH session: the real binary in tmux, with
//! several clients on one detached engine.

mod common;

use std::path::Path;
use std::time::Duration;

use common::tmux::{self, Tmux};
use common::*;

const PATIENCE: Duration = Duration::from_secs(40);

/// A canary through the built-in router, manual approval, services up.
fn plan(dir: &Path) -> (Vec<ChildGuard>, std::net::SocketAddr) {
    plan_with(dir, "", "")
}

/// The same with more `[traffic]` keys and more tables.
fn plan_with(dir: &Path, traffic: &str, tables: &str) -> (Vec<ChildGuard>, std::net::SocketAddr) {
    let (v1, stable) = demo_app("v1", &[]);
    let (v2, canary) = demo_app("v2", &[]);
    let listen = free_addr();
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
{traffic}

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

{tables}
"#
        ),
    )
    .unwrap();
    (vec![v1, v2], listen)
}

/// Stops the engine when the test ends, pass or fail.
struct EngineGuard<'a>(&'a Path);

impl Drop for EngineGuard<'_> {
    fn drop(&mut self) {
        stop_engine(self.0);
    }
}

fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    cutover(dir, args, PATIENCE)
}

#[test]
fn two_operators_one_release_the_first_link_drops_and_traffic_never_stops() {
    if !tmux::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_apps, listen) = plan(dir.path());
    let _engine = EngineGuard(dir.path());
    let t = Tmux::new("two");
    let bin = bin();
    t.session("first", dir.path(), &format!("'{bin}' run deploy.toml"));
    t.wait_for_text("first", "weight 10%", PATIENCE);
    // Clients come once the router listens; from then on none may fail.
    let load = Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(120));
    t.wait_for_text("first", "APPROVE THE NEXT STEP", PATIENCE);
    // A second operator attaches from another terminal.
    t.session("second", dir.path(), &format!("'{bin}' attach deploy.toml"));
    t.wait_for_text("second", "APPROVE THE NEXT STEP", PATIENCE);
    // The first approves; the second sees the step move.
    t.keys("first", &["a"]);
    t.wait_for_text("second", "weight 50%", PATIENCE);
    // The first operator's link drops: only that dashboard goes.
    t.kill_session("first");
    std::thread::sleep(Duration::from_secs(1));
    let status = cli(dir.path(), &["status"]);
    assert!(
        text(&status.stdout).contains("50% to the canary"),
        "{}",
        text(&status.stdout)
    );
    // A third shell rolls back.
    let out = cli(dir.path(), &["rollback", "--reason", "third shell"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    t.wait_for_text("second", "ROLLED BACK", PATIENCE);
    // The built-in router kept serving through all of it.
    std::thread::sleep(Duration::from_millis(500));
    let (sent, failed) = load.stop_counting();
    assert!(sent > 100, "{sent}");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    let (_, events) = journal(&dir.path().join("state"));
    let approved = &events_named(&events, "approved")[0];
    assert_eq!(approved["by"]["uid"], nix::unistd::getuid().as_raw());
    assert_eq!(approved["by"]["account"], account());
    let started = &events_named(&events, "rollback_started")[0];
    assert_eq!(started["reason"], "third shell");
    assert_eq!(started["by"]["uid"], nix::unistd::getuid().as_raw());
    // `show` tells the story.
    let show = cli(dir.path(), &["show", "last"]);
    assert!(
        text(&show.stdout).contains("third shell"),
        "{}",
        text(&show.stdout)
    );
    t.keys("second", &["q"]);
    t.wait_for_text("second", "EXIT=3", PATIENCE);
}

#[test]
fn an_approval_for_a_gate_that_is_not_open_is_refused_with_the_reason() {
    if !tmux::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_apps, listen) = plan(dir.path());
    let _engine = EngineGuard(dir.path());
    let t = Tmux::new("refuse");
    t.session("op", dir.path(), &format!("'{}' run deploy.toml", bin()));
    let _load = Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(120));
    t.wait_for_text("op", "APPROVE THE NEXT STEP", PATIENCE);
    let out = cli(dir.path(), &["approve", "--step", "100"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the gate open now is the step to 50%"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(dir.path(), &["approve", "--step", "50"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (_, events) = journal(&dir.path().join("state"));
    assert_eq!(events_named(&events, "approval_refused").len(), 1);
}

#[test]
fn a_killed_engine_is_reported_by_attach_and_resumed() {
    if !tmux::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_apps, listen) = plan(dir.path());
    let _engine = EngineGuard(dir.path());
    let t = Tmux::new("killed");
    t.session("op", dir.path(), &format!("'{}' run deploy.toml", bin()));
    let _load = Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(120));
    t.wait_for_text("op", "APPROVE THE NEXT STEP", PATIENCE);
    stop_engine(dir.path());
    t.wait_for_text("op", "EXIT=", PATIENCE);
    let out = cli(dir.path(), &["attach"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is gone") && text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );
    t.session(
        "again",
        dir.path(),
        &format!("'{}' run --resume deploy.toml", bin()),
    );
    t.wait_for_text("again", "APPROVE THE NEXT STEP", PATIENCE);
    let (_, events) = journal(&dir.path().join("state"));
    assert_eq!(events_named(&events, "deployment_resumed").len(), 1);
}

/// The uid and gid of `nobody`/`nogroup`, when this test runs as root and
/// they exist: a second account for the two-person rule.
fn second_account() -> Option<(u32, u32)> {
    if !nix::unistd::getuid().is_root() {
        eprintln!("\n*** SKIPPED: the two-person test needs root to act as a second account ***\n");
        return None;
    }
    let user = nix::unistd::User::from_name("nobody").ok().flatten()?;
    let group = nix::unistd::Group::from_name("nogroup").ok().flatten()?;
    Some((user.uid.as_raw(), group.gid.as_raw()))
}

#[test]
fn the_two_person_rule_refuses_a_second_approval_by_the_same_account() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !tmux::available() {
        return;
    }
    let Some((uid, gid)) = second_account() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The second operator reaches the socket through the group.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    nix::unistd::chown(&state, None, Some(nix::unistd::Gid::from_raw(gid))).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    let (_apps, listen) = plan_with(
        dir.path(),
        "",
        &format!(
            "[operators]\ngroup = \"nogroup\"\napprovers = [\"{}\", \"nobody\"]\napprovals = 2\n",
            account()
        ),
    );
    let _engine = EngineGuard(dir.path());
    let t = Tmux::new("twoperson");
    t.session("op", dir.path(), &format!("'{}' run deploy.toml", bin()));
    t.wait_for_text("op", "weight 10%", PATIENCE);
    let _load = Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(120));
    t.wait_for_text("op", "APPROVE THE NEXT STEP", PATIENCE);
    let out = cli(dir.path(), &["approve", "--step", "50"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 of 2"),
        "{}",
        text(&out.stdout)
    );
    // The same account again is refused, on record.
    let out = cli(dir.path(), &["approve", "--step", "50"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already"),
        "{}",
        text(&out.stderr)
    );
    // The second operator, as the kernel names them.
    let state_arg = state.display().to_string();
    let out = std::process::Command::new(bin())
        .args(["approve", "--step", "50", "--state-dir", &state_arg])
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_for_event(&state, PATIENCE, |e| {
        e["event"] == "weight_applied" && e["weight"] == 50
    });
    let (_, events) = journal(&state);
    let approvals: Vec<_> = events_named(&events, "approved")
        .iter()
        .map(|e| (e["by"]["uid"].as_u64().unwrap(), e["count"].clone()))
        .collect();
    let me = u64::from(nix::unistd::getuid().as_raw());
    assert_eq!(
        approvals,
        [
            (me, serde_json::json!(1)),
            (u64::from(uid), serde_json::json!(2))
        ]
    );
    assert_eq!(events_named(&events, "approval_refused").len(), 1);
}

#[test]
fn with_nobody_attached_on_disconnect_holds_after_the_grace() {
    if !tmux::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_apps, listen) = plan_with(
        dir.path(),
        "approval = \"auto\"\non_disconnect = \"hold\"\nunattended_after = \"2s\"",
        "",
    );
    // approval auto: the step moves by itself while someone watches.
    let text_plan = std::fs::read_to_string(dir.path().join("deploy.toml")).unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        text_plan
            .replacen("approval = \"manual\"\n", "", 1)
            .replace("bake = \"1s\"", "bake = \"30s\""),
    )
    .unwrap();
    let _engine = EngineGuard(dir.path());
    let t = Tmux::new("unattended");
    t.session("op", dir.path(), &format!("'{}' run deploy.toml", bin()));
    t.wait_for_text("op", "weight 10%", PATIENCE);
    let _load = Traffic::start(listen, Duration::from_millis(10), Duration::from_secs(60));
    // The only operator's link drops.
    t.kill_session("op");
    let state = dir.path().join("state");
    let paused = wait_for_event(&state, PATIENCE, |e| e["event"] == "paused");
    assert_eq!(paused["operator"], "unattended");
    assert!(
        paused["reason"]
            .as_str()
            .unwrap()
            .contains("no operator attached for 2s"),
        "{paused}"
    );
    let status = cli(dir.path(), &["status"]);
    assert!(
        text(&status.stdout).contains("paused"),
        "{}",
        text(&status.stdout)
    );
    // An operator comes back and carries on.
    let out = cli(dir.path(), &["resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
