//! The config as written: the TOML document read table by table into strict
//! serde structs with spans, before validation.
//!
//! Each table (each check of a stage too) is read on its own, and a key that
//! is unknown or of the wrong type is reported and dropped before the table
//! is read again, so one mistake does not hide the others. Required keys are
//! `Option` here: the validator names each missing one.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::Deserialize;
use toml_edit::{ImDocument, InlineTable, Item, Value};

use super::error::{printable, Errors};
use crate::domain::StageName;

pub type S<T> = toml::Spanned<T>;

/// A table as read, and where its header (or first key) is.
#[derive(Debug)]
pub struct Located<T> {
    pub span: Range<usize>,
    pub value: T,
    /// Keys dropped for being unknown or mistyped (already reported): a
    /// required one among them is not reported again as missing.
    pub dropped: Vec<String>,
}

impl<T> Located<T> {
    /// Whether `key` was written but dropped for its own (reported) error.
    pub fn dropped(&self, key: &str) -> bool {
        self.dropped.iter().any(|d| d == key)
    }
}

/// Every table of the file that could be read.
#[derive(Debug, Default)]
pub struct RawConfig {
    pub deployment: Option<Located<RawDeployment>>,
    pub artifact: Option<Located<RawArtifact>>,
    /// The check stages the file has, in file order.
    pub checks: Vec<(StageName, Vec<Located<RawCheck>>)>,
    pub traffic: Option<Located<RawTraffic>>,
    /// `[traffic.router]`.
    pub router: Option<Located<RawRouter>>,
    /// `[[traffic.routers]]`: where the list starts, and each member.
    pub routers: Option<(Range<usize>, Vec<Located<RawRouter>>)>,
    pub analysis: Option<Located<RawAnalysis>>,
    /// `[analysis.source]`.
    pub source: Option<Located<RawSource>>,
    pub notify: Option<Located<RawNotify>>,
    pub operators: Option<Located<RawOperators>>,
    pub lock: Option<Located<RawLock>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub service: Option<S<String>>,
    pub version: Option<S<String>>,
    pub previous: Option<S<String>>,
    pub environment: Option<S<String>>,
    pub state_dir: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArtifact {
    pub path: Option<S<String>>,
    pub sha256: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Option<S<String>>,
    pub run: Option<S<String>>,
    pub manual: Option<S<String>>,
    pub http: Option<S<String>>,
    pub tcp: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub retries: Option<S<i64>>,
    pub retry_delay: Option<S<String>>,
    pub expect_status: Option<S<i64>>,
    pub expect_body: Option<S<String>>,
    pub optional: Option<bool>,
    pub env: Option<S<BTreeMap<String, S<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pub strategy: Option<S<String>>,
    pub steps: Option<S<Vec<S<i64>>>>,
    pub bake: Option<S<String>>,
    pub approval: Option<S<String>>,
    pub on_failure: Option<S<String>>,
    pub on_disconnect: Option<S<String>>,
    pub unattended_after: Option<S<String>>,
    pub step_deadline: Option<S<String>>,
    pub measure_split: Option<S<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    /// A `[[traffic.routers]]` member's name.
    pub name: Option<S<String>>,
    pub kind: Option<S<String>>,
    pub listen: Option<S<String>>,
    pub stable: Option<S<String>>,
    pub canary: Option<S<String>>,
    pub socket: Option<S<String>>,
    pub backend: Option<S<String>>,
    pub stable_server: Option<S<String>>,
    pub canary_server: Option<S<String>>,
    pub upstream_file: Option<S<String>>,
    pub upstream: Option<S<String>>,
    pub test: Option<S<String>>,
    pub reload: Option<S<String>>,
    pub set_weight: Option<S<String>>,
    pub get_weight: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnalysis {
    pub method: Option<S<String>>,
    pub alpha: Option<S<f64>>,
    pub tolerance: Option<S<f64>>,
    pub slow_ms: Option<S<i64>>,
    pub interval: Option<S<String>>,
    pub window: Option<S<String>>,
    pub min_requests: Option<S<i64>>,
    pub failure_limit: Option<S<i64>>,
    pub max_error_rate: Option<S<f64>>,
    pub max_p99_ms: Option<S<f64>>,
    pub max_error_rate_increase: Option<S<f64>>,
    pub max_p99_ratio: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub kind: Option<S<String>>,
    pub url: Option<S<String>>,
    pub error_rate: Option<S<String>>,
    pub p99_ms: Option<S<String>>,
    pub p50_ms: Option<S<String>>,
    pub requests: Option<S<String>>,
    pub requests_total: Option<S<String>>,
    pub errors_total: Option<S<String>>,
    pub slow_total: Option<S<String>>,
    pub sample: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub webhook: Option<S<String>>,
    pub format: Option<S<String>>,
    pub secret: Option<S<String>>,
    pub events: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperators {
    pub group: Option<S<String>>,
    pub approvers: Option<S<Vec<S<String>>>>,
    pub approvals: Option<S<i64>>,
    pub self_approval: Option<S<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLock {
    pub kind: Option<S<String>>,
    pub endpoints: Option<S<Vec<S<String>>>>,
    pub key: Option<S<String>>,
    pub ttl: Option<S<String>>,
    pub wait: Option<S<String>>,
}

/// The top-level tables a config may have.
const TABLES: [&str; 14] = [
    "deployment",
    "artifact",
    "prepare",
    "checkpoint",
    "deploy",
    "smoke",
    "traffic",
    "verify",
    "finalize",
    "rollback",
    "analysis",
    "notify",
    "operators",
    "lock",
];

/// Reads `text` table by table; `None` when it is not TOML at all.
pub fn read(text: &str, errors: &mut Errors) -> Option<RawConfig> {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            errors.at(e.span().unwrap_or(0..0), explain(e.message()));
            return None;
        }
    };
    let root = doc.as_table();
    let mut raw = RawConfig::default();
    for (key, item) in root.iter() {
        let key_span = root.key(key).and_then(|k| k.span()).unwrap_or(0..0);
        let at = header_start(text, item.span(), key_span.clone());
        let item = item.clone();
        let stage = StageName::WITH_CHECKS
            .into_iter()
            .find(|s| s.as_str() == key);
        match key {
            "deployment" => raw.deployment = table(item, at, key, errors),
            "artifact" => raw.artifact = table(item, at, key, errors),
            "traffic" => {
                let (item, router) = split(item, "router", text);
                let (item, routers) = split(item, "routers", text);
                raw.traffic = table(item, at, key, errors);
                raw.router = router.and_then(|(r, at)| table(r, at, "traffic.router", errors));
                raw.routers = routers.map(|(r, at)| (at.clone(), router_list(r, at, errors)));
            }
            "analysis" => {
                let (item, source) = split(item, "source", text);
                raw.analysis = table(item, at, key, errors);
                raw.source = source.and_then(|(s, at)| table(s, at, "analysis.source", errors));
            }
            "notify" => raw.notify = table(item, at, key, errors),
            "operators" => raw.operators = table(item, at, key, errors),
            "lock" => raw.lock = table(item, at, key, errors),
            _ => match stage {
                Some(stage) => raw
                    .checks
                    .push((stage, check_list(item, at, stage, errors))),
                None => errors.at(
                    if item.is_table() || item.is_array_of_tables() {
                        at
                    } else {
                        key_span
                    },
                    format!(
                        "unknown table `{}`, the tables allowed here are {}",
                        printable(key),
                        TABLES.map(|t| format!("`{t}`")).join(", ")
                    ),
                ),
            },
        }
    }
    Some(raw)
}

/// Where a table starts: its `[header]`, or for a table made implicitly by
/// `[name.sub]`, the '[' before the key.
fn header_start(text: &str, item: Option<Range<usize>>, key: Range<usize>) -> Range<usize> {
    if let Some(span) = item {
        return span;
    }
    let line_start = text[..key.start.min(text.len())]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    match text[line_start..key.start.min(text.len())].rfind('[') {
        Some(i) => line_start + i..key.end,
        None => key,
    }
}

/// Takes the sub-table `name` out of a table item.
fn split(item: Item, name: &str, text: &str) -> (Item, Option<(Item, Range<usize>)>) {
    match item {
        Item::Table(mut t) => {
            let key_span = t.key(name).and_then(|k| k.span()).unwrap_or(0..0);
            let sub = t.remove(name).map(|sub| {
                let at = header_start(text, sub.span(), key_span);
                (sub, at)
            });
            (Item::Table(t), sub)
        }
        Item::Value(Value::InlineTable(mut t)) => {
            let key_span = t.key(name).and_then(|k| k.span()).unwrap_or(0..0);
            let sub = t.remove(name).map(|sub| {
                let at = sub.span().unwrap_or(key_span);
                (Item::Value(sub), at)
            });
            (Item::Value(Value::InlineTable(t)), sub)
        }
        other => (other, None),
    }
}

fn table<T: DeserializeOwned>(
    item: Item,
    at: Range<usize>,
    name: &str,
    errors: &mut Errors,
) -> Option<Located<T>> {
    let (span, type_name) = (item.span(), item.type_name());
    let t = match item {
        Item::Table(t) => Some(t.into_inline_table()),
        Item::Value(Value::InlineTable(t)) => Some(t),
        _ => None,
    };
    match t {
        Some(t) => read_table(t, errors).map(|(value, dropped)| Located {
            span: at,
            value,
            dropped,
        }),
        None => {
            errors.at(
                span.unwrap_or(at),
                format!(
                    "`{name}` must be a table, written [{name}] with its keys on the lines below, not {}",
                    type_name
                ),
            );
            None
        }
    }
}

fn check_list(
    item: Item,
    at: Range<usize>,
    stage: StageName,
    errors: &mut Errors,
) -> Vec<Located<RawCheck>> {
    table_list(
        item,
        at,
        errors,
        &format!("each [[{stage}]] check is a table with a name"),
        &format!("{stage} is a list of checks: write each as [[{stage}]] with name = \"…\" and run, manual, http or tcp"),
    )
}

/// `[[traffic.routers]]`: each member a table like `[traffic.router]`.
fn router_list(item: Item, at: Range<usize>, errors: &mut Errors) -> Vec<Located<RawRouter>> {
    table_list(
        item,
        at,
        errors,
        "each [[traffic.routers]] member is a table with a name and a kind",
        "traffic.routers is a list of routers: write each as [[traffic.routers]] with name = \"…\" and the keys of a [traffic.router]",
    )
}

/// An array of tables (`[[x]]`, or `x = [{…}, …]`), each read as a `T`
/// with its span. An element that is not a table is reported as
/// "`each_is`, not <its type>"; a value that is not an array as `not_a_list`.
fn table_list<T: DeserializeOwned>(
    item: Item,
    at: Range<usize>,
    errors: &mut Errors,
    each_is: &str,
    not_a_list: &str,
) -> Vec<Located<T>> {
    let mut out = Vec::new();
    let mut one = |t: InlineTable, span: Range<usize>, errors: &mut Errors| {
        if let Some((value, dropped)) = read_table(t, errors) {
            out.push(Located {
                span,
                value,
                dropped,
            });
        }
    };
    match item {
        Item::ArrayOfTables(list) => {
            for t in list {
                let span = t.span().unwrap_or(at.clone());
                one(t.into_inline_table(), span, errors);
            }
        }
        Item::Value(Value::Array(list)) => {
            for v in list {
                let span = v.span().unwrap_or(at.clone());
                match v {
                    Value::InlineTable(t) => one(t, span, errors),
                    other => errors.at(span, format!("{each_is}, not {}", other.type_name())),
                }
            }
        }
        other => errors.at(other.span().unwrap_or(at), not_a_list),
    }
    out
}

/// Reads one table, reporting and dropping each unknown or mistyped key
/// until the rest reads.
fn read_table<T: DeserializeOwned>(
    mut t: InlineTable,
    errors: &mut Errors,
) -> Option<(T, Vec<String>)> {
    let mut dropped = Vec::new();
    // Each round drops one key, so this ends.
    loop {
        let value = Value::InlineTable(t.clone());
        let e = match T::deserialize(value.into_deserializer()) {
            Ok(v) => return Some((v, dropped)),
            Err(e) => e,
        };
        let span = e.span().unwrap_or(0..0);
        let culprit = t.iter().find_map(|(k, v)| {
            let in_key = t.key(k).and_then(|k| k.span()).is_some_and(|s| s == span);
            let in_value = v
                .span()
                .is_some_and(|s| s.start <= span.start && span.start < s.end);
            (in_key || in_value).then(|| (k.to_string(), in_value))
        });
        match culprit {
            Some((key, true)) => {
                errors.at(span, format!("{key}: {}", explain(e.message())));
                t.remove(&key);
                dropped.push(key);
            }
            Some((key, false)) => {
                errors.at(span, explain(e.message()));
                t.remove(&key);
                dropped.push(key);
            }
            None => {
                errors.at(span, explain(e.message()));
                return None;
            }
        }
    }
}

/// Adds what would be right to the parser's and serde's terse messages.
pub fn explain(message: &str) -> String {
    let message = message.trim();
    if message.starts_with("unknown field") {
        // serde lists the expected keys already: "unknown field `x`, expected one of ..."
        return message
            .replace("expected one of", "the keys allowed here are")
            .replace(", expected `", ", the key allowed here is `");
    }
    if message.contains("too large to fit") {
        return "this number is too large for any setting: see the key's range in deploy.example.toml"
            .to_string();
    }
    let message = message
        .replace("expected i64", "expected a whole number")
        .replace("expected f64", "expected a number")
        .replace("expected a string", "expected a string in quotes")
        .replace("expected a boolean", "expected true or false");
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}
