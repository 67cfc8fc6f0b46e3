//! Invalid configs: each exits 2 naming FILE:LINE:COL with a useful message,
//! and nothing is executed.

mod common;

use std::time::Duration;

use common::*;

const HEAD: &str = "[deployment]\nservice = \"svc\"\nversion = \"v2\"\n";

fn check(body: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.toml"), format!("{HEAD}{body}")).unwrap();
    let out = cutover(dir.path(), &["check", "plan.toml"], Duration::from_secs(30));
    assert!(
        !dir.path().join("marker").exists(),
        "a check must execute nothing"
    );
    (out.status.code().unwrap_or(-1), text(&out.stderr))
}

#[test]
fn the_example_plan_is_valid_and_printed() {
    let out = cutover(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &["check", "deploy.example.toml"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    for stage in [
        "prepare",
        "checkpoint",
        "deploy",
        "smoke",
        "traffic",
        "verify",
        "finalize",
        "rollback",
    ] {
        assert!(plan.contains(stage), "{stage} missing from:\n{plan}");
    }
    assert!(plan.contains("5% → 25% → 50% → 100%"), "{plan}");
}

#[test]
fn a_typo_in_a_key_is_named_with_its_position() {
    let (code, err) = check("enviroment = \"prod\"\n");
    assert_eq!(code, 2);
    assert!(
        err.starts_with("plan.toml:4:1: unknown field `enviroment`"),
        "{err}"
    );
    assert!(
        err.contains("`environment`"),
        "the right key is suggested: {err}"
    );
}

#[test]
fn a_check_with_run_and_http_is_refused() {
    let (code, err) = check(
        "\n[[smoke]]\nname = \"x\"\nrun = \"touch marker\"\nhttp = \"http://127.0.0.1:1/\"\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("plan.toml:8:8:"), "{err}");
    assert!(
        err.contains("exactly one of run, manual, http or tcp"),
        "{err}"
    );
}

#[test]
fn a_bad_duration_is_refused() {
    let (code, err) =
        check("\n[[smoke]]\nname = \"x\"\nrun = \"true\"\ntimeout = \"ten seconds\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("plan.toml:8:11:"), "{err}");
    assert!(err.contains("\"30s\""), "{err}");
}

#[test]
fn decreasing_steps_are_refused() {
    let body = "\n[traffic]\nsteps = [50, 25]\n[traffic.router]\nkind = \"builtin\"\nlisten = \"127.0.0.1:1\"\nstable = \"127.0.0.1:2\"\ncanary = \"127.0.0.1:3\"\n";
    let (code, err) = check(body);
    assert_eq!(code, 2);
    assert!(err.contains("plan.toml:6:14:"), "{err}");
    assert!(err.contains("strictly increase"), "{err}");
    let (code, err) = check(&body.replace("[50, 25]", "[10, 50]"));
    assert_eq!(code, 2);
    assert!(err.contains("end at 100"), "{err}");
}

#[test]
fn duplicate_names_missing_keys_and_env_are_refused() {
    let (code, err) = check(
        "\n[[prepare]]\nname = \"a\"\nrun = \"true\"\n[[prepare]]\nname = \"a\"\nrun = \"true\"\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("plan.toml:9:8:") && err.contains("unique"),
        "{err}"
    );

    let (code, err) =
        check("\n[traffic]\n[traffic.router]\nkind = \"builtin\"\nlisten = \"127.0.0.1:1\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("needs stable"), "{err}");

    let (code, err) =
        check("\n[[smoke]]\nname = \"x\"\nhttp = \"http://${env:CUTOVER_TEST_SURELY_UNSET}/\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("CUTOVER_TEST_SURELY_UNSET is not set"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cutover(dir.path(), &["check"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("deploy.toml"));
}
