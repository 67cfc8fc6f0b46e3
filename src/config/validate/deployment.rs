//! `[deployment]`: what is deployed (service, versions, environment) and where
//! its record is kept. Service and version name the journal file.

use super::super::error::quoted;
use super::super::limits::{is_service_char, is_version_char, MAX_ID_PART, MAX_NAME};
use super::super::plan::Deployment;
use super::super::raw::{Located, RawDeployment, S};
use super::Validator;

/// The deployment, or `None` when the table or a required key is missing
/// (reported) so that sections depending on it skip what they cannot judge.
pub(super) fn validate(
    v: &mut Validator,
    d: Option<&Located<RawDeployment>>,
) -> Option<Deployment> {
    let Some(d) = d else {
        v.error(
            0..0,
            "the config needs a [deployment] table with service = \"…\" and version = \"…\"",
        );
        return None;
    };
    let at = d.span.clone();
    let r = &d.value;
    let service = match &r.service {
        Some(s) => Some(id_part(
            v,
            s,
            "service",
            is_service_char,
            "letters, digits, '-', '_' and '.'",
        )),
        None if d.dropped("service") => None,
        None => {
            v.error(at.clone(), "[deployment] needs service = \"…\" (the service's name; it names the journal file)");
            None
        }
    };
    let version = match &r.version {
        Some(s) => Some(id_part(
            v,
            s,
            "version",
            is_version_char,
            "letters, digits, '-', '_', '.', '+' and '~'",
        )),
        None if d.dropped("version") => None,
        None => {
            v.error(
                at.clone(),
                "[deployment] needs version = \"…\" (the version being deployed)",
            );
            None
        }
    };
    // The stable track's label: a version too (it is put in queries).
    let previous = r.previous.as_ref().map(|s| {
        id_part(
            v,
            s,
            "previous",
            is_version_char,
            "letters, digits, '-', '_', '.', '+' and '~'",
        )
    });
    let environment = r.environment.as_ref().map(|s| {
        let e = v.text(s, "environment", MAX_NAME);
        let e = e.unwrap_or_else(|| s.get_ref().clone());
        if s.get_ref().trim().is_empty() {
            v.error(
                s.span(),
                "environment is empty: name it, or leave the key out",
            );
        }
        e
    });
    let state_dir = match &r.state_dir {
        Some(s) => v.path(s, "state_dir"),
        None => v.base().join(".cutover"),
    };
    Some(Deployment {
        service: service?,
        version: version?,
        previous,
        environment,
        state_dir,
    })
}

/// A part of the deployment id: non-empty, at most [`MAX_ID_PART`]
/// characters, each one `allowed`.
fn id_part(
    v: &mut Validator,
    s: &S<String>,
    key: &str,
    allowed: fn(char) -> bool,
    allowed_words: &str,
) -> String {
    let Some(value) = v.expand(s) else {
        return String::new();
    };
    let n = value.chars().count();
    if value.trim().is_empty() {
        v.error(s.span(), format!("{key} must not be empty"));
    } else if !value.chars().all(allowed) {
        v.error(
            s.span(),
            format!(
                "{key} = {} may hold only {allowed_words} (it names the deployment's journal file and is shown on screen)",
                quoted(s.get_ref())
            ),
        );
    } else if n > MAX_ID_PART {
        v.error(
            s.span(),
            format!(
                "{key} is {n} characters long: use at most {MAX_ID_PART} (it names the journal file, and file names stop at 255 bytes)"
            ),
        );
    }
    value
}

#[cfg(test)]
#[path = "deployment_tests.rs"]
mod tests;
