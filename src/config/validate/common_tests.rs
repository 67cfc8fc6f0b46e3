//! What every section shares: `${env:…}` secrets, numbers checked before
//! narrowing, bounded durations, choices, and one error not hiding another.

use crate::config::testing::*;

#[test]
fn env_values_are_secrets_and_errors_quote_the_text_as_written() {
    let p = plan(&format!(
        "{HEAD}environment = \"prod-${{env:CUTOVER_TEST_SECRET}}\"\n"
    ));
    assert_eq!(
        p.deployment.environment.as_deref(),
        Some("prod-s3cr3t-Value-91")
    );
    assert_eq!(p.secrets, vec![SECRET.to_string()]);

    // The value holds ESC: refused, and the message quotes neither.
    let e = errors(&format!(
        "{HEAD}environment = \"${{env:CUTOVER_TEST_ESC}}\"\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("5:15: environment holds a control character"),
        "{e:?}"
    );
}

#[test]
fn unset_short_and_unclosed_env_references_are_refused() {
    expect(
        &format!("{HEAD}environment = \"${{env:CUTOVER_TEST_SURELY_UNSET}}\"\n"),
        "5:15",
        "CUTOVER_TEST_SURELY_UNSET is not set",
    );
    let e = expect_count(
        &format!("{HEAD}environment = \"${{env:CUTOVER_TEST_SHORT}}\"\n"),
        1,
    );
    assert!(
        e[0].contains("\"${env:CUTOVER_TEST_SHORT}\" is shorter than 4 characters"),
        "{e:?}"
    );
    assert!(!e[0].contains("ab1"), "{e:?}");
    expect(
        &format!("{HEAD}environment = \"${{env:CUTOVER_TEST_EMPTY}}\"\n"),
        "5:15",
        "shorter than 4",
    );
    expect(
        &format!("{HEAD}environment = \"${{env:X\"\n"),
        "5:15",
        "unclosed ${env:",
    );
}

#[test]
fn whole_numbers_are_range_checked_before_narrowing() {
    // 2^32 would wrap to 0 as a u32.
    for (key, value) in [
        ("failure_limit", "4294967296"),
        ("failure_limit", "0"),
        ("min_requests", "-1"),
        ("min_requests", "9223372036854775807"),
    ] {
        let e = errors(&format!("{HEAD}{TRAFFIC}[analysis]\n{key} = {value}\n"));
        assert!(
            e[0].starts_with(&format!(
                "13:{}: {key} = {value} is out of range",
                key.len() + 4
            )),
            "{e:?}"
        );
    }
}

#[test]
fn durations_are_bounded_and_never_panic() {
    let cases = [
        (
            "interval",
            "\"1ms\"",
            "too short: use a duration from 100ms to 1h",
        ),
        ("interval", "\"300000000000y\"", "too long"),
        (
            "window",
            "\"30d\"",
            "too long: use a duration from 1s to 1h",
        ),
        (
            "window",
            "\"99999999999999999999s\"",
            "far longer than any duration",
        ),
        ("interval", "\"ten\"", "is not a duration"),
        ("interval", "\"5 parsecs\"", "\"parsecs\" is not a unit"),
    ];
    for (key, value, fragment) in cases {
        let text = format!("{HEAD}{TRAFFIC}[analysis]\n{key} = {value}\n");
        expect(&text, &format!("13:{}", key.len() + 4), fragment);
        for e in errors(&text) {
            assert!(!e.contains("expected number"), "parser words leak: {e}");
        }
    }
}

#[test]
fn choices_name_every_allowed_word() {
    expect(
        &format!(
            "{HEAD}{}",
            TRAFFIC.replace("steps", "on_disconnect = \"panic\"\nsteps")
        ),
        "6:17",
        "on_disconnect = \"panic\" is not known: use \"continue\", \"hold\" or \"rollback\"",
    );
}

#[test]
fn one_mistake_does_not_hide_the_others() {
    // A mistyped required key is reported once (not again as missing), and
    // the errors of other tables and other keys still come.
    let text = "[deployment]\nservice = 5\nversion = \"v2\"\nbogus = 1\n\n[[smoke]]\nname = \"a\"\nrun = \"true\"\ntimeout = \"0s\"\n\n[[smoke]]\nname = \"b\"\nretries = \"3\"\nrun = \"true\"\n\n[analysis]\ninterval = \"1ms\"\n";
    let e = expect_count(text, 5);
    assert!(
        e[0].starts_with("2:11: service: invalid type: integer `5`"),
        "{e:?}"
    );
    assert!(e[1].starts_with("4:1: unknown field `bogus`"), "{e:?}");
    assert!(
        e[2].starts_with("9:11: timeout = \"0s\" is too short"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with("13:11: retries: invalid type: string"),
        "{e:?}"
    );
    assert!(e[4].starts_with("17:12: interval"), "{e:?}");
}

#[test]
fn a_missing_deployment_table_does_not_hide_the_rest() {
    let e = errors("[[smoke]]\nname = \"a\"\nrun = \"true\"\nretries = 5000\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("1:1: the config needs a [deployment] table"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("4:11: retries = 5000 is out of range"),
        "{e:?}"
    );
}

#[test]
fn a_syntax_error_is_located() {
    expect(&format!("{HEAD}environment = \n"), "5:15", "invalid string");
    expect(&format!("{HEAD}[deployment]\n"), "5:1", "duplicate key");
    expect(
        &format!("{HEAD}{TRAFFIC}[analysis]\nfailure_limit = 99999999999999999999\n"),
        "13:17",
        "too large for any setting",
    );
}

#[test]
fn errors_come_in_file_order() {
    let e = errors(&format!("{HEAD}{TRAFFIC}[analysis]\nwindow = \"1h1s\"\ninterval = \"1ms\"\n[notify]\nwebhook = \"ftp://x\"\n"));
    let lines: Vec<usize> = e
        .iter()
        .map(|e| e.split(':').next().unwrap().parse().unwrap())
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "{e:?}");
}
