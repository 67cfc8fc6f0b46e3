//! What the engine relies on in every plan `parse` accepts, checked
//! in-process: durations in bounds, steps valid, numbers usable, names
//! printable and fit for a file name, secrets maskable. Used by the
//! property test and the corpus of found cases.

use super::error::is_unsafe_char;
use super::limits::{self, MAX_ID_PART};
use super::plan::{CheckKind, Plan, RouterPlan, SourcePlan};
use crate::domain::StageName;

/// The first invariant `plan` breaks, if any.
pub fn check(plan: &Plan) -> Result<(), String> {
    let d = &plan.deployment;
    for (what, s, allowed) in [
        (
            "service",
            &d.service,
            limits::is_service_char as fn(char) -> bool,
        ),
        ("version", &d.version, limits::is_version_char),
    ] {
        ensure(!s.is_empty() && s.len() <= MAX_ID_PART, || {
            format!("{what} length {}", s.len())
        })?;
        ensure(s.chars().all(allowed), || format!("{what} {s:?}"))?;
    }
    let id = format!("20250101T000000-{}-{}.jsonl", d.service, d.version);
    ensure(id.len() < 255, || {
        format!("journal name {} bytes", id.len())
    })?;
    for s in d.previous.iter().chain(d.environment.iter()) {
        printable(s)?;
    }
    for stage in StageName::ALL {
        for c in plan.checks(stage) {
            printable(&c.name)?;
            ensure(!c.name.trim().is_empty(), || "empty check name".into())?;
            if !matches!(
                c.kind,
                CheckKind::Manual { .. } | CheckKind::Artifact { .. }
            ) {
                ensure(limits::CHECK_TIMEOUT.contains(c.timeout), || {
                    format!("timeout {:?}", c.timeout)
                })?;
            }
            ensure(limits::RETRY_DELAY.contains(c.retry_delay), || {
                format!("retry_delay {:?}", c.retry_delay)
            })?;
            ensure(c.retries <= 1000, || format!("retries {}", c.retries))?;
            match &c.kind {
                CheckKind::Run { command, env } => {
                    ensure(!command.contains(['\0', '\u{1b}']), || {
                        "command control".into()
                    })?;
                    for (k, v) in env {
                        ensure(
                            !k.is_empty() && !k.contains(['=', '\0']) && !v.contains('\0'),
                            || format!("env {k:?}"),
                        )?;
                    }
                }
                CheckKind::Manual { prompt } => printable(prompt)?,
                CheckKind::Http {
                    url,
                    display,
                    expect_status,
                    ..
                } => {
                    ensure(reqwest::Url::parse(url).is_ok(), || "url".into())?;
                    printable(display)?;
                    ensure(
                        expect_status.is_none_or(|s| (100..=599).contains(&s)),
                        || "status".into(),
                    )?;
                }
                CheckKind::Tcp { display, .. } => printable(display)?,
                CheckKind::Artifact { sha256, .. } => ensure(sha256.len() == 64, || "sha".into())?,
            }
        }
    }
    let a = &plan.analysis;
    ensure(limits::INTERVAL.contains(a.interval), || {
        format!("interval {:?}", a.interval)
    })?;
    ensure(
        limits::WINDOW.contains(a.window) && a.window >= a.interval,
        || format!("window {:?}", a.window),
    )?;
    ensure(a.min_requests >= 1 && a.failure_limit >= 1, || {
        "min_requests/failure_limit".into()
    })?;
    for f in [a.max_error_rate, a.max_error_rate_increase]
        .into_iter()
        .flatten()
    {
        ensure((0.0..=1.0).contains(&f), || format!("fraction {f}"))?;
    }
    for x in [a.max_p99_ms, a.max_p99_ratio].into_iter().flatten() {
        ensure(x > 0.0 && x.is_finite(), || format!("positive {x}"))?;
    }
    if let Some(t) = &plan.traffic {
        ensure(!t.steps.is_empty() && t.steps.last() == Some(&100), || {
            format!("steps {:?}", t.steps)
        })?;
        ensure(
            t.steps.windows(2).all(|w| w[0] < w[1]) && t.steps[0] >= 1,
            || format!("steps {:?}", t.steps),
        )?;
        ensure(limits::BAKE.contains(t.bake), || "bake".into())?;
        ensure(
            limits::STEP_DEADLINE.contains(t.step_deadline) && t.step_deadline >= a.interval,
            || "step_deadline".into(),
        )?;
        ensure(
            limits::UNATTENDED_AFTER.contains(t.unattended_after),
            || "unattended_after".into(),
        )?;
        let singles: Vec<&RouterPlan> = match &t.router {
            RouterPlan::Group(members) => {
                ensure(!members.is_empty(), || "an empty group".into())?;
                for (i, m) in members.iter().enumerate() {
                    ensure(!members[..i].iter().any(|o| o.name == m.name), || {
                        format!("member name {:?} twice", m.name)
                    })?;
                    ensure(
                        !matches!(m.router, RouterPlan::Builtin { .. } | RouterPlan::Group(_)),
                        || format!("member {:?} is {}", m.name, m.router.kind()),
                    )?;
                }
                members.iter().map(|m| &m.router).collect()
            }
            single => vec![single],
        };
        for r in singles {
            if let RouterPlan::Haproxy(h) = r {
                for n in [&h.backend, &h.stable_server, &h.canary_server] {
                    ensure(
                        !n.is_empty() && n.chars().all(limits::is_haproxy_name_char),
                        || format!("haproxy name {n:?}"),
                    )?;
                }
            }
        }
        let builtin_router = matches!(t.router, RouterPlan::Builtin { .. });
        ensure(
            builtin_router || !matches!(a.source, SourcePlan::Builtin),
            || "builtin source without builtin router".into(),
        )?;
    }
    if let super::plan::LockPlan::Etcd(e) = &plan.lock {
        ensure(
            limits::LOCK_TTL.contains(e.ttl) && e.ttl.subsec_nanos() == 0,
            || format!("lock ttl {:?}", e.ttl),
        )?;
        ensure(limits::LOCK_WAIT.contains(e.wait), || "lock wait".into())?;
        ensure(
            !e.endpoints.is_empty() && e.endpoints.len() <= limits::MAX_ENDPOINTS,
            || format!("endpoints {:?}", e.endpoints),
        )?;
        ensure(
            e.key.starts_with('/') && !e.key.chars().any(char::is_whitespace),
            || format!("lock key {:?}", e.key),
        )?;
    }
    for s in &plan.secrets {
        ensure(s.chars().count() >= crate::redact::MIN_SECRET_LEN, || {
            "short secret".into()
        })?;
    }
    Ok(())
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn printable(s: &str) -> Result<(), String> {
    ensure(!s.chars().any(is_unsafe_char), || {
        format!("not printable: {s:?}")
    })
}
