//! Helpers for the config's unit tests: plans from text, errors as
//! "LINE:COL: message", a fixed environment holding secrets.

use std::path::Path;

use super::{parse, Plan};

/// A `[deployment]` table that validates (lines 1-4).
pub const HEAD: &str = "[deployment]\nservice = \"svc\"\nversion = \"v2\"\nprevious = \"v1\"\n";

/// A `[traffic]` with a builtin router that validates.
pub const TRAFFIC: &str = "[traffic]\nsteps = [10, 100]\n[traffic.router]\nkind = \"builtin\"\nlisten = \"127.0.0.1:1\"\nstable = \"127.0.0.1:2\"\ncanary = \"127.0.0.1:3\"\n";

/// A secret value the tests' environment holds; it must appear in no error.
pub const SECRET: &str = "s3cr3t-Value-91";

/// The environment the tests see.
pub fn env(name: &str) -> Option<String> {
    match name {
        "CUTOVER_TEST_SECRET" => Some(SECRET.to_string()),
        "CUTOVER_TEST_SHORT" => Some("ab1".to_string()),
        "CUTOVER_TEST_EMPTY" => Some(String::new()),
        "CUTOVER_TEST_ESC" => Some(format!("{SECRET}\u{1b}[2J")),
        _ => None,
    }
}

pub fn try_plan(text: &str) -> Result<Plan, Vec<String>> {
    parse(text, "p.toml", Path::new("/base"), &env).map_err(|e| {
        e.0.iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect()
    })
}

/// The plan of a text that must validate.
pub fn plan(text: &str) -> Plan {
    match try_plan(text) {
        Ok(p) => p,
        Err(errors) => panic!(
            "expected a valid plan, got:\n{}\n---\n{text}",
            errors.join("\n")
        ),
    }
}

/// Every error of a text that must not validate, as "LINE:COL: message";
/// none shows the secret.
pub fn errors(text: &str) -> Vec<String> {
    match try_plan(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => {
            for e in &errors {
                assert!(!e.contains(SECRET), "a secret in an error: {e}");
                assert!(
                    !e.chars().any(char::is_control),
                    "a control character: {e:?}"
                );
            }
            errors
        }
    }
}

/// Asserts an error at `at` ("LINE:COL") whose message holds `fragment`.
pub fn expect(text: &str, at: &str, fragment: &str) {
    let errors = errors(text);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{at}: ")) && e.contains(fragment)),
        "no error at {at} holding {fragment:?} in:\n{}",
        errors.join("\n")
    );
}

/// Asserts exactly `n` errors.
pub fn expect_count(text: &str, n: usize) -> Vec<String> {
    let errors = errors(text);
    assert_eq!(errors.len(), n, "{}", errors.join("\n"));
    errors
}
