//! Invalid configs: `cutover check` exits 2 naming FILE:LINE:COL with a
//! message that says what is right, shows no secret and no control
//! character, and executes nothing.
//!
//! Each file under `tests/invalid_configs/` is one bad config. Its first
//! lines are comments saying what it shows and what `check` must print:
//! `# expect: LINE:COL: fragment` (an error at that place holding the
//! fragment; several allowed), `# errors: N` (exactly N errors) and
//! `# absent: text` (text that must appear nowhere in the output).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Values of the variables the fixtures may reference.
const SECRET: &str = "fixture-secret-value";
const SHORT: &str = "ab1";

struct Fixture {
    path: PathBuf,
    expects: Vec<(String, String)>,
    count: Option<usize>,
    absent: Vec<String>,
}

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid_configs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let mut f = Fixture {
                path: path.clone(),
                expects: Vec::new(),
                count: None,
                absent: vec![SECRET.to_string()],
            };
            for line in text.lines().take_while(|l| l.starts_with('#')) {
                if let Some(e) = line.strip_prefix("# expect: ") {
                    let mut parts = e.splitn(3, ':');
                    let (l, c, frag) = (
                        parts.next().unwrap(),
                        parts.next().unwrap(),
                        parts.next().unwrap(),
                    );
                    f.expects
                        .push((format!("{l}:{c}"), frag.trim().to_string()));
                } else if let Some(n) = line.strip_prefix("# errors: ") {
                    f.count = Some(n.trim().parse().unwrap());
                } else if let Some(a) = line.strip_prefix("# absent: ") {
                    f.absent.push(a.trim().to_string());
                }
            }
            assert!(
                !f.expects.is_empty(),
                "{}: no `# expect:` line",
                path.display()
            );
            f
        })
        .collect()
}

/// Runs `cutover check` on a copy of the fixture in an empty directory.
fn check(f: &Fixture) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let name = f.path.file_name().unwrap().to_str().unwrap();
    std::fs::copy(&f.path, dir.path().join(name)).unwrap();
    let mut cmd = std::process::Command::new(bin());
    let out = cmd
        .args(["check", name])
        .current_dir(dir.path())
        .env("CUTOVER_FIXTURE_SECRET", SECRET)
        .env("CUTOVER_FIXTURE_SHORT", SHORT)
        .env("CUTOVER_FIXTURE_ESC", format!("{SECRET}\u{1b}[2J"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    let all = format!("{}{err}", text(&out.stdout));
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit {:?}, not 2", out.status.code()));
    }
    for (at, fragment) in &f.expects {
        let prefix = format!("{name}:{at}: ");
        if !err
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(fragment.as_str()))
        {
            problems.push(format!("no error at {at} holding {fragment:?}"));
        }
    }
    if let Some(n) = f.count {
        let found = err
            .lines()
            .filter(|l| l.starts_with(&format!("{name}:")))
            .count();
        if found != n {
            problems.push(format!("{found} errors, not {n}"));
        }
    }
    for a in &f.absent {
        if all.contains(a.as_str()) {
            problems.push(format!("{a:?} appears in the output"));
        }
    }
    if all.chars().any(|c| c.is_control() && c != '\n') {
        problems.push("a control character in the output".to_string());
    }
    if !text(&out.stdout).is_empty() {
        problems.push("a plan was printed".to_string());
    }
    if dir.path().join("marker").exists() {
        problems.push("a check was executed".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}\n{err}", problems.join("; ")))
    }
}

#[test]
fn every_invalid_config_is_refused_at_its_place() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 30, "fixtures missing: {}", fixtures.len());
    let failures: Vec<String> = fixtures.iter().filter_map(|f| check(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_example_plan_is_valid_and_printed() {
    let out = cutover(
        Path::new(env!("CARGO_MANIFEST_DIR")),
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
fn a_missing_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cutover(dir.path(), &["check"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("deploy.toml"));
}

/// `check` on something that is not a plan file: exit 2 with the reason,
/// at once (the helper fails the test if it hangs).
fn refused(dir: &Path, arg: &str, reason: &str) {
    let out = cutover(dir, &["check", arg], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.starts_with(&format!("{arg}: {reason}")), "{err}");
}

#[test]
fn fifos_devices_directories_and_huge_files_are_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    nix::unistd::mkfifo(&dir.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    refused(dir.path(), "fifo", "is a FIFO");
    refused(dir.path(), "/dev/zero", "is a device");
    refused(dir.path(), ".", "is a directory");
    std::fs::write(dir.path().join("big.toml"), "#".repeat(1024 * 1024 + 1)).unwrap();
    refused(dir.path(), "big.toml", "is larger than 1024 KiB");
    // A symlink to a plan is followed: it is the plan.
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy.example.toml"),
        dir.path().join("link.toml"),
    )
    .unwrap();
    let out = cutover(dir.path(), &["check", "link.toml"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
