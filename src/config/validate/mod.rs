//! Validation of the config as written into a [`Plan`]: one module per
//! section; this one holds what they share (locating errors, `${env:…}`
//! expansion and its secrets, text, number, duration and choice rules).

mod analysis;
mod checks;
mod deployment;
mod lock;
mod notify;
mod operators;
mod router;
mod traffic;

use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{is_unsafe_char, quoted, Errors};
use super::limits::{self, DurationBounds};
use super::plan::Plan;
use super::raw::{Located, RawConfig, S};
use crate::redact::MIN_SECRET_LEN;

/// Validates a config read from `errors.text`; `None` when it has errors
/// (all of them are in `errors`).
pub(super) fn plan(
    raw: RawConfig,
    errors: Errors<'_>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, Vec<super::ConfigError>> {
    let source = errors.file.to_string();
    let mut v = Validator {
        errors,
        base,
        env,
        secrets: Vec::new(),
    };
    let deployment = deployment::validate(&mut v, raw.deployment.as_ref());
    let checks = checks::validate(&mut v, raw.artifact.as_ref(), &raw.checks);
    let written_router = match (&raw.router, &raw.routers) {
        (Some(r), None) => router::written_kind(r),
        (None, Some(_)) => Some(super::plan::RouterKind::Group),
        _ => None,
    };
    let traffic = raw.traffic.as_ref().and_then(|t| {
        let routers = traffic::WrittenRouters {
            router: raw.router.as_ref(),
            group: raw.routers.as_ref(),
        };
        traffic::validate(&mut v, t, routers)
    });
    let analysis = analysis::validate(
        &mut v,
        analysis::Inputs {
            analysis: raw.analysis.as_ref(),
            source: raw.source.as_ref(),
            traffic: raw.traffic.as_ref().map(|t| t.span.clone()),
            router: traffic.as_ref().map(|t| &t.router),
            written_router,
            deployment: deployment.as_ref(),
        },
    );
    if let (Some(t), Some(r)) = (&traffic, &raw.traffic) {
        traffic::check_against_analysis(
            &mut v,
            t,
            &r.value,
            &analysis,
            raw.analysis.as_ref().map(|a| &a.value),
        );
    }
    let notify = raw.notify.as_ref().map(|n| notify::validate(&mut v, n));
    let operators = raw
        .operators
        .as_ref()
        .map(|o| operators::validate(&mut v, o))
        .unwrap_or_default();
    let lock = lock::validate(&mut v, raw.lock.as_ref(), deployment.as_ref());
    let Validator {
        errors, secrets, ..
    } = v;
    match deployment {
        Some(deployment) if errors.list.is_empty() => Ok(Plan {
            source,
            deployment,
            checks,
            traffic,
            analysis,
            notify,
            operators,
            lock,
            secrets,
        }),
        _ => Err(errors.into_sorted()),
    }
}

pub(super) struct Validator<'a> {
    errors: Errors<'a>,
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Values that came from `${env:…}`.
    secrets: Vec<String>,
}

/// A closed set of words a key accepts, parsed into an enum.
pub(super) trait Choice: Copy + 'static {
    const ALL: &'static [Self];
    fn word(self) -> &'static str;
}

/// `"a", "b" or "c"`.
pub(super) fn one_of<C: Choice>() -> String {
    let words: Vec<String> = C::ALL.iter().map(|c| format!("\"{}\"", c.word())).collect();
    match words.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl Validator<'_> {
    pub fn error(&mut self, span: Range<usize>, message: impl AsRef<str>) {
        self.errors.at(span, message);
    }

    /// Expands `${env:NAME}` in a non-command string; the expanded parts
    /// are secrets (at least [`MIN_SECRET_LEN`] characters, or refused).
    /// Messages quote the text as written, never a value. `None` when a
    /// reference could not be expanded (reported): the value is unknown, so
    /// no further rule is judged on it.
    pub fn expand(&mut self, s: &S<String>) -> Option<String> {
        let raw = s.get_ref();
        let mut out = String::new();
        let mut ok = true;
        let mut rest = raw.as_str();
        while let Some(start) = rest.find("${env:") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 6..];
            let Some(end) = after.find('}') else {
                self.error(
                    s.span(),
                    "unclosed ${env:…}: write ${env:NAME} with a closing brace",
                );
                return None;
            };
            let name = &after[..end];
            let written = format!("${{env:{}}}", name);
            match (self.env)(name) {
                Some(value) if value.chars().count() >= MIN_SECRET_LEN => {
                    self.secrets.push(value.clone());
                    out.push_str(&value);
                }
                Some(_) => {
                    ok = false;
                    self.error(
                    s.span(),
                    format!(
                        "{} is shorter than {MIN_SECRET_LEN} characters: values from ${{env:…}} are secrets, and one this short could not be masked without masking ordinary text; use a longer value or write this one in the file",
                        quoted(&written)
                    ),
                )
                }
                None => {
                    ok = false;
                    self.error(
                    s.span(),
                    format!(
                        "environment variable {} is not set (referenced as {}); set it or write the value here",
                        quoted(name).trim_matches('"'),
                        quoted(&written)
                    ),
                )
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        ok.then_some(out)
    }

    /// An expanded string shown on one line: no control characters, at most
    /// `max` characters.
    pub fn text(&mut self, s: &S<String>, key: &str, max: usize) -> Option<String> {
        let value = self.expand(s)?;
        self.line_rules(s, &value, key, max);
        Some(value)
    }

    /// Control characters and length of a one-line value (the message
    /// never shows the value, which may hold a secret).
    fn line_rules(&mut self, s: &S<String>, value: &str, key: &str, max: usize) {
        if value.chars().any(is_unsafe_char) {
            self.error(
                s.span(),
                format!("{key} holds a control character: escape sequences and line breaks would reach the terminal and the logs raw; remove it"),
            );
        }
        let n = value.chars().count();
        if n > max {
            self.error(
                s.span(),
                format!("{key} is {n} characters long: use at most {max}"),
            );
        }
    }

    /// A command or query, taken as written (commands get values through
    /// their environment, never pasted in): tabs and line breaks allowed,
    /// other control characters (ESC, NUL) not.
    pub fn script(&mut self, s: &S<String>, key: &str) -> String {
        let value = s.get_ref();
        if value
            .chars()
            .any(|c| is_unsafe_char(c) && !matches!(c, '\t' | '\n' | '\r'))
        {
            self.error(
                s.span(),
                format!("{key} holds a control character other than a tab or line break (an escape sequence or NUL): remove it"),
            );
        }
        if value.trim().is_empty() {
            self.error(s.span(), format!("{key} is empty: write the command"));
        }
        if value.len() > limits::MAX_COMMAND {
            self.error(
                s.span(),
                format!(
                    "{key} is {} bytes long: use at most {} (put a longer script in a file and run that)",
                    value.len(),
                    limits::MAX_COMMAND
                ),
            );
        }
        value.clone()
    }

    /// A path; relative ones are relative to the config file.
    pub fn path(&mut self, s: &S<String>, key: &str) -> PathBuf {
        let Some(p) = self.text(s, key, limits::MAX_TEXT) else {
            return self.base.to_path_buf();
        };
        if p.is_empty() {
            self.error(s.span(), format!("{key} is empty: write a path"));
        }
        self.base.join(p)
    }

    pub fn base(&self) -> &Path {
        self.base
    }

    /// An http:// or https:// URL; messages show it without user info or
    /// query (they carry credentials).
    pub fn url(&mut self, s: &S<String>, key: &str, what: &str) -> Option<String> {
        let url = self.text(s, key, limits::MAX_TEXT)?;
        let shown = quoted(&url_for_message(s.get_ref()));
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.error(
                s.span(),
                format!("{key} = {shown} is not {what}: write it as http://host:port/path"),
            );
        } else if reqwest::Url::parse(&url).is_err() {
            self.error(
                s.span(),
                format!("{key} = {shown} is not a valid URL: write it as http://host:port/path"),
            );
        }
        Some(url)
    }

    pub fn addr(&mut self, s: &S<String>, key: &str) -> Option<SocketAddr> {
        let v = self.text(s, key, limits::MAX_TEXT)?;
        match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    s.span(),
                    format!(
                        "{key} = {} is not an address: write host:port with an IP, like \"127.0.0.1:8080\"",
                        quoted(s.get_ref())
                    ),
                );
                None
            }
        }
    }

    /// A duration within `bounds` (or `default` when absent or wrong).
    pub fn duration(
        &mut self,
        s: &Option<S<String>>,
        key: &str,
        bounds: DurationBounds,
        default: Duration,
    ) -> Duration {
        let Some(s) = s else { return default };
        let written = quoted(s.get_ref());
        match limits::parse_duration(s.get_ref()) {
            Ok(d) if bounds.contains(d) => d,
            Ok(d) => {
                let why = if d < bounds.min {
                    "too short"
                } else {
                    "too long"
                };
                self.error(
                    s.span(),
                    format!(
                        "{key} = {written} is {why}: use a duration {}",
                        bounds.describe()
                    ),
                );
                default
            }
            Err(msg) => {
                self.error(
                    s.span(),
                    format!("{key} = {written} {msg}; {key} is {}", bounds.describe()),
                );
                default
            }
        }
    }

    /// A whole number within `range`, checked before it is narrowed to `T`.
    pub fn whole<T: TryFrom<i64> + Copy>(
        &mut self,
        s: &Option<S<i64>>,
        key: &str,
        range: RangeInclusive<i64>,
        default: T,
    ) -> T {
        let Some(s) = s else { return default };
        let v = *s.get_ref();
        match T::try_from(v) {
            Ok(n) if range.contains(&v) => n,
            _ => {
                self.error(
                    s.span(),
                    format!(
                        "{key} = {v} is out of range: use a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    /// One of a closed set of words; `default` when absent or unknown.
    pub fn choice<C: Choice>(&mut self, s: &Option<S<String>>, key: &str, default: C) -> C {
        match s {
            None => default,
            Some(s) => self.parse_choice(s, key).unwrap_or(default),
        }
    }

    pub fn parse_choice<C: Choice>(&mut self, s: &S<String>, key: &str) -> Option<C> {
        let found = C::ALL.iter().find(|c| c.word() == s.get_ref()).copied();
        if found.is_none() {
            self.error(
                s.span(),
                format!(
                    "{key} = {} is not known: use {}",
                    quoted(s.get_ref()),
                    one_of::<C>()
                ),
            );
        }
        found
    }

    /// The keys a table needs, as `(value, key, what to write)`; each
    /// missing one is reported at the table, unless it was there but
    /// dropped for its own error.
    pub fn required<'s, T, const N: usize>(
        &mut self,
        table: &Located<T>,
        keys: [(&'s Option<S<String>>, &str, &str); N],
    ) -> Option<[&'s S<String>; N]> {
        let mut found = Vec::with_capacity(N);
        for (value, key, what) in keys {
            match value {
                Some(v) => found.push(v),
                None if table.dropped(key) => {}
                None => self.error(table.span.clone(), what),
            }
        }
        found.try_into().ok()
    }

    /// Reports each key given that does not belong here.
    pub fn not_here(
        &mut self,
        keys: &[(&str, Option<Range<usize>>)],
        why: impl Fn(&str) -> String,
    ) {
        for (k, span) in keys {
            if let Some(span) = span {
                self.error(span.clone(), why(k));
            }
        }
    }
}

/// A URL as written, for a message: no user info, query or fragment, even
/// when it does not parse.
fn url_for_message(written: &str) -> String {
    let shown = crate::redact::url_for_display(written);
    // A URL that does not parse keeps its text: drop user info by hand.
    match shown.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let host = match rest[..end].rfind('@') {
                Some(at) => &rest[at + 1..],
                None => rest,
            };
            format!("{scheme}://{host}")
        }
        None => shown,
    }
}

/// The span of an optional value, for [`Validator::not_here`].
pub(super) fn span_of<T>(s: &Option<S<T>>) -> Option<Range<usize>> {
    s.as_ref().map(|s| s.span())
}

#[cfg(test)]
#[path = "common_tests.rs"]
mod tests;
