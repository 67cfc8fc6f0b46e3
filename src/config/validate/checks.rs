//! `[artifact]` and the checks of each stage (`[[prepare]]` … `[[rollback]]`):
//! names, what each does (run, manual, http, tcp), its options and bounds.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::super::error::quoted;
use super::super::limits::{self, MAX_NAME, MAX_TEXT};
use super::super::plan::{CheckKind, CheckSpec, StageKey};
use super::super::raw::{Located, RawArtifact, RawCheck, S};
use super::{one_of, span_of, Choice, Validator};
use crate::domain::StageName;

/// What a check does: the key that says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Run,
    Manual,
    Http,
    Tcp,
}

impl Choice for Action {
    const ALL: &'static [Self] = &[Action::Run, Action::Manual, Action::Http, Action::Tcp];
    fn word(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Manual => "manual",
            Action::Http => "http",
            Action::Tcp => "tcp",
        }
    }
}

impl Action {
    fn given(r: &RawCheck) -> Vec<(Action, &S<String>)> {
        [
            (Action::Run, &r.run),
            (Action::Manual, &r.manual),
            (Action::Http, &r.http),
            (Action::Tcp, &r.tcp),
        ]
        .into_iter()
        .filter_map(|(a, s)| s.as_ref().map(|s| (a, s)))
        .collect()
    }

    fn default_timeout(self) -> Duration {
        match self {
            Action::Run => Duration::from_secs(300),
            _ => Duration::from_secs(5),
        }
    }
}

/// The checks of every stage the file has, artifact first in prepare.
pub(super) fn validate(
    v: &mut Validator,
    artifact: Option<&Located<RawArtifact>>,
    stages: &[(StageName, Vec<Located<RawCheck>>)],
) -> BTreeMap<StageKey, Vec<CheckSpec>> {
    let mut checks: BTreeMap<StageKey, Vec<CheckSpec>> = BTreeMap::new();
    if let Some(a) = artifact {
        if let Some(spec) = artifact_check(v, a) {
            checks.insert(StageKey::from(StageName::Prepare), vec![spec]);
        }
    }
    for (stage, list) in stages {
        let mut names = HashSet::new();
        let mut specs = Vec::new();
        for c in list {
            if let Some(spec) = check(v, *stage, c, &mut names) {
                specs.push(spec);
            }
        }
        checks
            .entry(StageKey::from(*stage))
            .or_default()
            .extend(specs);
    }
    checks
}

fn artifact_check(v: &mut Validator, a: &Located<RawArtifact>) -> Option<CheckSpec> {
    let [path, sha] = v.required(
        a,
        [
            (
                &a.value.path,
                "path",
                "[artifact] needs path = \"…\" (the file that was tested)",
            ),
            (
                &a.value.sha256,
                "sha256",
                "[artifact] needs sha256 = \"…\" (its digest, from `sha256sum FILE`)",
            ),
        ],
    )?;
    let path = v.path(path, "path");
    let sha256 = v
        .text(sha, "sha256", MAX_TEXT)
        .map(|s| s.to_ascii_lowercase());
    let sha256 = sha256.unwrap_or_default();
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        v.error(
            sha.span(),
            "sha256 must be 64 hexadecimal digits (the output of `sha256sum FILE`)",
        );
    }
    Some(CheckSpec {
        name: "Artifact matches what was tested".to_string(),
        kind: CheckKind::Artifact { path, sha256 },
        timeout: Duration::from_secs(300),
        retries: 0,
        retry_delay: Duration::ZERO,
        optional: false,
    })
}

fn check(
    v: &mut Validator,
    stage: StageName,
    c: &Located<RawCheck>,
    names: &mut HashSet<String>,
) -> Option<CheckSpec> {
    let r = &c.value;
    let name = match &r.name {
        Some(n) => {
            let name = v.text(n, "name", MAX_NAME);
            let name = name.unwrap_or_default();
            if n.get_ref().trim().is_empty() {
                v.error(n.span(), "a check's name must not be empty");
            } else if !names.insert(name.clone()) {
                v.error(
                    n.span(),
                    format!("a check named {} is already in [[{stage}]]: names must be unique within a stage", quoted(n.get_ref())),
                );
            }
            name
        }
        None if c.dropped("name") => String::new(),
        None => {
            v.error(
                c.span.clone(),
                format!("this [[{stage}]] check has no name: add name = \"…\""),
            );
            String::new()
        }
    };
    let shown = quoted(r.name.as_ref().map(|n| n.get_ref().as_str()).unwrap_or(""));
    let given = Action::given(r);
    let words = one_of::<Action>().replace('"', "");
    let (action, value) = match given.as_slice() {
        [one] => *one,
        [] if ["run", "manual", "http", "tcp"]
            .iter()
            .any(|k| c.dropped(k)) =>
        {
            return None
        }
        [] => {
            v.error(
                c.span.clone(),
                format!("check {shown} says nothing to do: give exactly one of {words}"),
            );
            return None;
        }
        [_, (_, second), ..] => {
            let keys: Vec<&str> = given.iter().map(|(a, _)| a.word()).collect();
            v.error(
                second.span(),
                format!(
                    "check {shown} has {}: give exactly one of {words}",
                    keys.join(" and ")
                ),
            );
            return None;
        }
    };
    let not_for = |only: Action| {
        let shown = shown.clone();
        move |opt: &str| {
            format!(
                "{opt} applies to {} checks only, and {shown} is a {} check",
                only.word(),
                action.word()
            )
        }
    };
    if action != Action::Http {
        v.not_here(
            &[
                ("expect_status", span_of(&r.expect_status)),
                ("expect_body", span_of(&r.expect_body)),
            ],
            not_for(Action::Http),
        );
    }
    if action != Action::Run {
        v.not_here(&[("env", span_of(&r.env))], not_for(Action::Run));
    }
    if action == Action::Manual {
        v.not_here(&[("timeout", span_of(&r.timeout))], |_| {
            "a manual check waits for the operator: timeout does not apply".to_string()
        });
    }
    let kind = match action {
        Action::Run => CheckKind::Run {
            command: v.script(value, "run"),
            env: run_env(v, r),
        },
        Action::Manual => CheckKind::Manual {
            prompt: v.text(value, "manual", MAX_TEXT).unwrap_or_default(),
        },
        Action::Http => CheckKind::Http {
            url: v.url(value, "http", "a URL").unwrap_or_default(),
            display: value.get_ref().clone(),
            expect_status: r.expect_status.as_ref().map(|_| {
                v.whole(
                    &r.expect_status,
                    "expect_status",
                    limits::HTTP_STATUS,
                    200u16,
                )
            }),
            // Quoted in the failure message: one printable line.
            expect_body: r
                .expect_body
                .as_ref()
                .map(|b| v.text(b, "expect_body", MAX_TEXT).unwrap_or_default()),
        },
        Action::Tcp => {
            let addr = v.text(value, "tcp", MAX_TEXT);
            let port_ok = addr.is_none()
                || addr
                    .as_deref()
                    .and_then(|a| a.rsplit_once(':'))
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                v.error(
                    value.span(),
                    format!(
                        "tcp = {} needs host:port, like \"127.0.0.1:5432\"",
                        quoted(value.get_ref())
                    ),
                );
            }
            CheckKind::Tcp {
                addr: addr.unwrap_or_default(),
                display: value.get_ref().clone(),
            }
        }
    };
    Some(CheckSpec {
        name,
        kind,
        timeout: v.duration(
            &r.timeout,
            "timeout",
            limits::CHECK_TIMEOUT,
            action.default_timeout(),
        ),
        retries: v.whole(&r.retries, "retries", limits::RETRIES, 0u32),
        retry_delay: v.duration(
            &r.retry_delay,
            "retry_delay",
            limits::RETRY_DELAY,
            Duration::from_secs(2),
        ),
        optional: r.optional.unwrap_or(false),
    })
}

/// `env = { KEY = "value" }` of a run check: names a shell can export,
/// values without NUL (which no environment can hold).
fn run_env(v: &mut Validator, r: &RawCheck) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(e) = &r.env else { return env };
    for (k, val) in e.get_ref() {
        let name_ok = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            v.error(
                e.span(),
                format!("env key {} is not a variable name: use letters, digits and '_', not starting with a digit", quoted(k)),
            );
        }
        let value = v.expand(val).unwrap_or_default();
        if value.contains('\0') {
            v.error(
                val.span(),
                format!("env {k} holds a NUL character, which no environment can carry: remove it"),
            );
        }
        env.insert(k.clone(), value);
    }
    env
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
