//! Checks of a stage: what each does, its options and their bounds.

use std::time::Duration;

use crate::config::testing::*;
use crate::config::CheckKind;
use crate::domain::StageName;

fn smoke(body: &str) -> String {
    format!("{HEAD}\n[[smoke]]\nname = \"x\"\n{body}")
}

#[test]
fn each_kind_of_check_validates_with_its_defaults() {
    let p = plan(&format!(
        "{HEAD}[[prepare]]\nname = \"r\"\nrun = \"echo $A\"\nenv = {{ A = \"${{env:CUTOVER_TEST_SECRET}}\" }}\n[[prepare]]\nname = \"h\"\nhttp = \"http://127.0.0.1:1/h?t=${{env:CUTOVER_TEST_SECRET}}\"\nexpect_status = 204\n[[prepare]]\nname = \"t\"\ntcp = \"127.0.0.1:5432\"\n[[prepare]]\nname = \"m\"\nmanual = \"Confirm\"\n"
    ));
    let c = p.checks(StageName::Prepare);
    assert_eq!(c.len(), 4);
    assert_eq!(c[0].timeout, Duration::from_secs(300));
    assert!(matches!(&c[0].kind, CheckKind::Run { env, .. } if env["A"] == SECRET));
    assert_eq!(c[1].timeout, Duration::from_secs(5));
    match &c[1].kind {
        CheckKind::Http {
            display,
            expect_status,
            ..
        } => {
            assert!(!display.contains(SECRET), "{display}");
            assert_eq!(*expect_status, Some(204));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c[1].retry_delay, Duration::from_secs(2));
}

#[test]
fn exactly_one_action() {
    expect(
        &smoke("run = \"true\"\nhttp = \"http://127.0.0.1:1/\"\n"),
        "9:8",
        "exactly one of run, manual, http or tcp",
    );
    expect(&smoke("timeout = \"1s\"\n"), "6:1", "says nothing to do");
}

#[test]
fn options_belong_to_their_kind() {
    expect(
        &smoke("run = \"true\"\nexpect_status = 200\n"),
        "9:17",
        "expect_status applies to http checks only",
    );
    expect(
        &smoke("tcp = \"h:1\"\nenv = { A = \"b\" }\n"),
        "9:7",
        "env applies to run checks only",
    );
    expect(
        &smoke("manual = \"ok?\"\ntimeout = \"5s\"\n"),
        "9:11",
        "timeout does not apply",
    );
}

#[test]
fn timeouts_retries_and_statuses_are_bounded() {
    expect(
        &smoke("run = \"true\"\ntimeout = \"0s\"\n"),
        "9:11",
        "too short: use a duration from 100ms to 24h",
    );
    expect(
        &smoke("run = \"true\"\ntimeout = \"25h\"\n"),
        "9:11",
        "too long",
    );
    expect(
        &smoke("run = \"true\"\nretries = 1001\n"),
        "9:11",
        "from 0 to 1000",
    );
    expect(
        &smoke("run = \"true\"\nretry_delay = \"2h\"\n"),
        "9:15",
        "up to 1h",
    );
    expect(
        &smoke("http = \"http://h/\"\nexpect_status = 65736\n"),
        "9:17",
        "from 100 to 599",
    );
    expect(
        &smoke("run = \"true\"\ntimeout = \"ten seconds\"\n"),
        "9:11",
        "\"30s\"",
    );
}

#[test]
fn names_are_unique_printable_and_short() {
    expect(
        &format!("{HEAD}[[prepare]]\nname = \"a\"\nrun = \"true\"\n[[prepare]]\nname = \"a\"\nrun = \"true\"\n"),
        "9:8",
        "names must be unique within a stage",
    );
    expect(
        &format!("{HEAD}[[prepare]]\nname = \"a\\u001b]0;x\\u0007\"\nrun = \"true\"\n"),
        "6:8",
        "control character",
    );
    expect(
        &format!(
            "{HEAD}[[prepare]]\nname = \"{}\"\nrun = \"true\"\n",
            "n".repeat(201)
        ),
        "6:8",
        "at most 200",
    );
}

#[test]
fn commands_may_span_lines_but_hold_no_escape_or_nul() {
    let p = plan(&smoke("run = '''\nset -e\n\techo ok\n'''\n"));
    assert!(
        matches!(&p.checks(StageName::Smoke)[0].kind, CheckKind::Run { command, .. } if command.contains('\n'))
    );
    expect(
        &smoke("run = \"echo \\u001b[2J\"\n"),
        "8:7",
        "control character other than a tab or line break",
    );
    expect(&smoke("run = \"a\\u0000b\"\n"), "8:7", "NUL");
    expect(&smoke("run = \"  \"\n"), "8:7", "run is empty");
}

#[test]
fn urls_in_errors_lose_their_credentials() {
    let e = errors(&smoke("http = \"ftp://user:pw@host/x?token=abc\"\n"));
    assert!(
        e[0].starts_with("8:8: http = \"ftp://host/x\" is not a URL"),
        "{e:?}"
    );
    let e = errors(&smoke("http = \"http://user:pw@ho st/x?token=abc\"\n"));
    assert!(!e[0].contains("pw") && !e[0].contains("abc"), "{e:?}");
}

#[test]
fn expect_body_is_one_printable_line() {
    expect(
        &smoke("http = \"http://h/\"\nexpect_body = \"ok\\nINFO forged\"\n"),
        "9:15",
        "expect_body holds a control character",
    );
}

#[test]
fn env_names_are_variable_names() {
    expect(
        &smoke("run = \"true\"\nenv = { \"A=B\" = \"c\" }\n"),
        "9:7",
        "not a variable name",
    );
    expect(
        &smoke("run = \"true\"\nenv = { A = \"b\\u0000\" }\n"),
        "9:13",
        "NUL",
    );
}

#[test]
fn an_artifact_is_the_first_check_of_prepare() {
    let sha = "a".repeat(64);
    let p = plan(&format!("{HEAD}[artifact]\npath = \"d.tgz\"\nsha256 = \"{sha}\"\n[[prepare]]\nname = \"x\"\nrun = \"true\"\n"));
    let c = p.checks(StageName::Prepare);
    assert_eq!(c.len(), 2);
    assert!(
        matches!(&c[0].kind, CheckKind::Artifact { path, .. } if path == std::path::Path::new("/base/d.tgz"))
    );
    expect(
        &format!("{HEAD}[artifact]\npath = \"d\"\nsha256 = \"abc\"\n"),
        "7:10",
        "64 hexadecimal digits",
    );
    expect(
        &format!("{HEAD}[artifact]\npath = \"d\"\n"),
        "5:1",
        "[artifact] needs sha256",
    );
}

#[test]
fn a_stage_must_be_a_list_of_tables() {
    // Top-level keys come before the first table.
    expect(
        &format!("smoke = 5\n{HEAD}"),
        "1:9",
        "smoke is a list of checks",
    );
    expect(
        &format!("smoke = [1]\n{HEAD}"),
        "1:10",
        "each [[smoke]] check is a table",
    );
    let p = plan(&format!(
        "smoke = [{{ name = \"a\", run = \"true\" }}]\n{HEAD}"
    ));
    assert_eq!(p.checks(StageName::Smoke).len(), 1);
}
