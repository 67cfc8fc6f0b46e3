//! `[lock]`: how runs of one release are kept to one at a time. `kind =
//! "file"` (the default) is a lock file in the state dir; `kind = "etcd"` is
//! a release lease in etcd with `endpoints`, a `key` per service and
//! environment, a `ttl` and how long to `wait` for a held lease.

use std::time::Duration;

use super::super::error::quoted;
use super::super::limits::{self, MAX_ENDPOINTS, MAX_LOCK_KEY, MAX_TEXT};
use super::super::plan::{Deployment, EtcdLock, LockPlan};
use super::super::raw::{Located, RawLock};
use super::{span_of, Choice, Validator};

/// The `[lock] kind`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockKind {
    File,
    Etcd,
}

impl Choice for LockKind {
    const ALL: &'static [Self] = &[LockKind::File, LockKind::Etcd];
    fn word(self) -> &'static str {
        match self {
            LockKind::File => "file",
            LockKind::Etcd => "etcd",
        }
    }
}

/// Default `[lock] ttl`: etcd's leader election (up to two election
/// timeouts, 2 s by default) must fit within the TTL less its margins.
const TTL: Duration = Duration::from_secs(10);

/// The lock plan; the file lock when `[lock]` is absent or wrong (reported).
pub(super) fn validate(
    v: &mut Validator,
    l: Option<&Located<RawLock>>,
    deployment: Option<&Deployment>,
) -> LockPlan {
    let Some(l) = l else {
        return LockPlan::File;
    };
    let r = &l.value;
    let kind = v.choice(&r.kind, "lock kind", LockKind::File);
    if kind == LockKind::File {
        v.not_here(
            &[
                ("endpoints", span_of(&r.endpoints)),
                ("key", span_of(&r.key)),
                ("ttl", span_of(&r.ttl)),
                ("wait", span_of(&r.wait)),
            ],
            |k| format!("{k} applies to kind = \"etcd\": the file lock is <state_dir>/lock on this machine; set kind = \"etcd\" or drop {k}"),
        );
        return LockPlan::File;
    }
    let endpoints = endpoints(v, l);
    let key = match &r.key {
        Some(k) => key(v, k),
        None => deployment.map(default_key),
    };
    let ttl = v.duration(&r.ttl, "ttl", limits::LOCK_TTL, TTL);
    if let Some(t) = &r.ttl {
        if ttl.subsec_nanos() != 0 {
            v.error(
                t.span(),
                format!(
                    "ttl = {} is not whole seconds: etcd grants leases in seconds; write it like \"10s\"",
                    quoted(t.get_ref())
                ),
            );
        }
    }
    let wait = v.duration(&r.wait, "wait", limits::LOCK_WAIT, Duration::ZERO);
    match (endpoints, key) {
        (Some(endpoints), Some(key)) => LockPlan::Etcd(EtcdLock {
            endpoints,
            key,
            ttl,
            wait,
        }),
        _ => LockPlan::File,
    }
}

/// `/cutover/<service>/<environment>`, the environment's other characters
/// as '_' (`default` when there is none).
fn default_key(d: &Deployment) -> String {
    let environment: String = match d.environment.as_deref() {
        Some(e) if !e.is_empty() => e
            .chars()
            .map(|c| if limits::is_service_char(c) { c } else { '_' })
            .collect(),
        _ => "default".into(),
    };
    format!("/cutover/{}/{environment}", d.service)
}

/// etcd client URLs: http(s)://host:port, or host:port (http assumed).
fn endpoints(v: &mut Validator, l: &Located<RawLock>) -> Option<Vec<String>> {
    let Some(list) = &l.value.endpoints else {
        if !l.dropped("endpoints") {
            v.error(
                l.span.clone(),
                "the etcd lock needs endpoints = [\"http://127.0.0.1:2379\", …] (the client URLs of the etcd members)",
            );
        }
        return None;
    };
    if list.get_ref().is_empty() {
        v.error(
            list.span(),
            "endpoints is empty: list the client URLs of the etcd members, like [\"http://10.0.0.1:2379\"]",
        );
        return None;
    }
    if list.get_ref().len() > MAX_ENDPOINTS {
        v.error(
            list.span(),
            format!(
                "endpoints lists {} members: use at most {MAX_ENDPOINTS}",
                list.get_ref().len()
            ),
        );
    }
    let mut out = Vec::new();
    let mut ok = true;
    for e in list.get_ref() {
        let Some(text) = v.text(e, "endpoint", MAX_TEXT) else {
            ok = false;
            continue;
        };
        let url = if text.contains("://") {
            text.clone()
        } else {
            format!("http://{text}")
        };
        let valid = (url.starts_with("http://") || url.starts_with("https://"))
            && reqwest::Url::parse(&url).is_ok_and(|u| u.host_str().is_some());
        if !valid {
            v.error(
                e.span(),
                format!(
                    "endpoint {} is not an etcd client URL: write http://host:2379",
                    quoted(e.get_ref())
                ),
            );
            ok = false;
        }
        out.push(url);
    }
    ok.then_some(out)
}

/// An etcd key: printable, starting with '/', no spaces.
fn key(v: &mut Validator, k: &super::super::raw::S<String>) -> Option<String> {
    let key = v.text(k, "key", MAX_LOCK_KEY)?;
    if !key.starts_with('/') || key.len() < 2 || key.chars().any(char::is_whitespace) {
        v.error(
            k.span(),
            format!(
                "key = {} is not a lock key: write a path without spaces, one per service and environment, like \"/cutover/checkout/production\"",
                quoted(k.get_ref())
            ),
        );
        return None;
    }
    // The lease keeps a record of its last holder at `<key>.last`.
    if key.ends_with(".last") {
        v.error(
            k.span(),
            "key ends in \".last\", the name cutover gives the record beside each lock key: choose another key",
        );
        return None;
    }
    Some(key)
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
