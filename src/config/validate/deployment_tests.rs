//! `[deployment]`: names fit for a file name and a terminal.

use crate::config::testing::*;

fn deployment(service: &str, version: &str) -> String {
    format!("[deployment]\nservice = \"{service}\"\nversion = \"{version}\"\n")
}

#[test]
fn a_plain_deployment_validates_with_defaults() {
    let p = plan(&deployment("checkout", "v2.4.1+build.7~rc1"));
    assert_eq!(p.deployment.service, "checkout");
    assert_eq!(p.deployment.version, "v2.4.1+build.7~rc1");
    assert_eq!(
        p.deployment.state_dir,
        std::path::Path::new("/base/.cutover")
    );
    assert!(p.traffic.is_none());
}

#[test]
fn versions_hold_only_file_name_characters() {
    for bad in ["v2\\u001b[2J", "v2\\u0000", "v 2", "v2/..", "v2\\nx", "é"] {
        expect(
            &deployment("svc", bad),
            "3:11",
            "may hold only letters, digits",
        );
    }
    expect(
        &deployment("s/vc", "v2"),
        "2:11",
        "may hold only letters, digits, '-', '_' and '.'",
    );
    expect(&deployment("", "v2"), "2:11", "service must not be empty");
}

#[test]
fn names_are_bounded_so_the_journal_file_name_fits() {
    let long = "9".repeat(101);
    let e = expect_count(&deployment("svc", &long), 1);
    assert!(
        e[0].starts_with("3:11: version is 101 characters long: use at most 100"),
        "{e:?}"
    );
    expect(&deployment(&"s".repeat(101), "v2"), "2:11", "at most 100");
    // 100 of each still leaves a file name under 255 bytes.
    let p = plan(&deployment(&"s".repeat(100), &"9".repeat(100)));
    let id = format!(
        "20250101T000000-{}-{}.jsonl",
        p.deployment.service, p.deployment.version
    );
    assert!(id.len() < 255);
}

#[test]
fn previous_and_environment_are_checked_too() {
    expect(
        &format!("{}previous = \"v1\\\"}}\"\n", deployment("svc", "v2")),
        "4:12",
        "previous = \"v1\\\"}\" may hold only",
    );
    expect(
        &format!(
            "{}environment = \"prod\\nINFO forged\"\n",
            deployment("svc", "v2")
        ),
        "4:15",
        "environment holds a control character",
    );
    expect(
        &format!(
            "{}environment = \"{}\"\n",
            deployment("svc", "v2"),
            "e".repeat(201)
        ),
        "4:15",
        "at most 200",
    );
}

#[test]
fn missing_keys_are_named_at_the_table() {
    let e = expect_count("[deployment]\nstate_dir = \"s\"\n", 2);
    assert!(e[0].starts_with("1:1: [deployment] needs service"), "{e:?}");
    assert!(e[1].starts_with("1:1: [deployment] needs version"), "{e:?}");
    expect(
        "[deployment]\nservice = \"s\"\nversion = \"v\"\nstate_dir = \"a\\u0000b\"\n",
        "4:13",
        "control character",
    );
}

#[test]
fn a_misspelt_key_lists_the_right_ones() {
    expect(
        &format!("{}enviroment = \"prod\"\n", deployment("svc", "v2")),
        "4:1",
        "unknown field `enviroment`, the keys allowed here are `service`, `version`, `previous`, `environment`, `state_dir`",
    );
}
