//! Loading: only regular files of bounded size, read without blocking;
//! invalid UTF-8 located.

use std::path::Path;

use super::*;

fn file_error(path: &Path) -> String {
    let e = load(path).expect_err("refused").0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].is_file_level(), "{e:?}");
    e[0].message.clone()
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("plan.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Opening a FIFO for reading blocks until a writer comes: load must
    // return anyway (a hang fails the test run).
    assert!(file_error(&fifo).contains("is a FIFO"));
}

#[test]
fn devices_and_directories_are_refused() {
    assert!(file_error(Path::new("/dev/zero")).contains("is a device"));
    let dir = tempfile::tempdir().unwrap();
    assert!(file_error(dir.path()).contains("is a directory"));
    assert!(file_error(&dir.path().join("absent.toml")).contains("cannot read the config file"));
}

#[test]
fn a_file_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, "#".repeat(MAX_CONFIG_BYTES as usize + 1)).unwrap();
    assert!(file_error(&path).contains("larger than 1024 KiB"));
    std::fs::write(&path, "#".repeat(MAX_CONFIG_BYTES as usize)).unwrap();
    // At the cap it is read (and found to be no plan).
    assert!(!load(&path).unwrap_err().0[0].is_file_level());
}

#[test]
fn invalid_utf8_is_located() {
    let e = parse_bytes(
        b"[deployment]\nservice = \"s\"\nversion = \"v\xc3\xa9\xff\"\n",
        "p.toml",
        Path::new("."),
        &|_| None,
    )
    .unwrap_err()
    .0;
    assert_eq!((e[0].line, e[0].col), (3, 14), "{e:?}");
    assert!(e[0].message.contains("invalid UTF-8"), "{e:?}");
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(
        &path,
        "[deployment]\nservice = \"s\"\nversion = \"v2\"\nstate_dir = \"st\"\n",
    )
    .unwrap();
    let p = load(&path).unwrap();
    assert_eq!(p.deployment.state_dir, dir.path().join("st"));
    assert_eq!(p.source, path.display().to_string());
}

#[test]
fn the_example_plan_is_valid() {
    let text = include_str!("../../deploy.example.toml");
    let p = parse(text, "deploy.example.toml", Path::new("."), &|_| None).unwrap();
    assert_eq!(p.traffic.unwrap().steps, vec![5, 25, 50, 100]);
}
