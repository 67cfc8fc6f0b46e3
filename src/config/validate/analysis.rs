//! `[analysis]` and `[analysis.source]`: how often and how far back the
//! canary is sampled, its limits, and where the numbers come from. Each
//! source kind's keys and plan are here, and only here.

use std::ops::Range;

use super::super::error::is_unsafe_char;
use super::super::limits::{self, show, MAX_COMMAND};
use super::super::plan::{
    AnalysisPlan, Deployment, Method, PrometheusConfig, RouterKind, RouterPlan, SourceKind,
    SourcePlan,
};
use super::super::raw::{Located, RawAnalysis, RawSource, S};
use super::{span_of, Choice, Validator};

impl Choice for SourceKind {
    const ALL: &'static [Self] = &SourceKind::ALL;
    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Choice for Method {
    const ALL: &'static [Self] = &Method::ALL;
    fn word(self) -> &'static str {
        self.as_str()
    }
}

/// The keys each source kind reads (besides `kind`), and what it reads.
fn keys(kind: SourceKind) -> (&'static [&'static str], &'static str) {
    match kind {
        SourceKind::Builtin => (&[], "which reads the built-in router's own counts"),
        SourceKind::Prometheus => (
            &[
                "url",
                "error_rate",
                "requests",
                "p99_ms",
                "p50_ms",
                "requests_total",
                "errors_total",
                "slow_total",
            ],
            "which runs PromQL queries",
        ),
        SourceKind::Haproxy => (&[], "which reads the router's `show stat`"),
        SourceKind::Command => (&["sample"], "which runs the sample command"),
    }
}

/// Every key of `[analysis.source]` but `kind`, with where it is written.
fn given(r: &RawSource) -> [(&'static str, Option<Range<usize>>); 9] {
    [
        ("url", span_of(&r.url)),
        ("error_rate", span_of(&r.error_rate)),
        ("requests", span_of(&r.requests)),
        ("requests_total", span_of(&r.requests_total)),
        ("errors_total", span_of(&r.errors_total)),
        ("slow_total", span_of(&r.slow_total)),
        ("p99_ms", span_of(&r.p99_ms)),
        ("p50_ms", span_of(&r.p50_ms)),
        ("sample", span_of(&r.sample)),
    ]
}

/// What the analysis depends on in other sections.
pub(super) struct Inputs<'a> {
    pub analysis: Option<&'a Located<RawAnalysis>>,
    pub source: Option<&'a Located<RawSource>>,
    /// Where `[traffic]` is, when the file has it.
    pub traffic: Option<Range<usize>>,
    /// The router, when it validated.
    pub router: Option<&'a RouterPlan>,
    /// The router kind as written, when it is one.
    pub written_router: Option<RouterKind>,
    /// The deployment, when it validated.
    pub deployment: Option<&'a Deployment>,
}

pub(super) fn validate(v: &mut Validator, i: Inputs) -> AnalysisPlan {
    let d = AnalysisPlan::default();
    let Some(a) = i.analysis else {
        // No method written: the source decides (see `default_method`).
        let unwritten = AnalysisPlan {
            method: Method::Threshold,
            ..d.clone()
        };
        let source = source(v, &i, &unwritten);
        builtin_needs_builtin_router(v, &i, &source);
        return AnalysisPlan {
            method: default_method(&source),
            method_written: false,
            source,
            ..d
        };
    };
    let r = &a.value;
    let written = r.method.is_some();
    // Read as threshold while the source is checked when none is written:
    // a source without counts then falls back to it rather than fail.
    let method = v.choice(&r.method, "method", Method::Threshold);
    let slow_ms = v.whole(&r.slow_ms, "slow_ms", limits::SLOW_MS, d.slow_ms);
    let judged = AnalysisPlan {
        method,
        slow_ms,
        ..d.clone()
    };
    let alpha = real(v, &r.alpha, "alpha", limits::ALPHA, "0.01 is 1%").unwrap_or(d.alpha);
    let tolerance = real(
        v,
        &r.tolerance,
        "tolerance",
        limits::TOLERANCE,
        "1.1: a canary with up to 10% more events than stable counts as the same",
    )
    .unwrap_or(d.tolerance);
    let interval = v.duration(&r.interval, "interval", limits::INTERVAL, d.interval);
    let window = v.duration(&r.window, "window", limits::WINDOW, d.window);
    if window < interval {
        match (&r.window, &r.interval) {
            (Some(w), _) => v.error(
                w.span(),
                format!("window is shorter than interval ({}): samples would miss requests; use at least {}", show(interval), show(interval)),
            ),
            (None, Some(s)) => v.error(
                s.span(),
                format!("interval is longer than window ({} by default): samples would miss requests; set window to at least {}", show(window), show(interval)),
            ),
            (None, None) => {}
        }
    }
    let max_error_rate = match &r.max_error_rate {
        Some(_) => fraction(v, &r.max_error_rate, "max_error_rate"),
        None => d.max_error_rate,
    };
    let source = source(v, &i, &judged);
    builtin_needs_builtin_router(v, &i, &source);
    let method = if written {
        method
    } else {
        default_method(&source)
    };
    AnalysisPlan {
        method,
        method_written: written,
        alpha,
        tolerance,
        slow_ms,
        interval,
        window,
        min_requests: v.whole(
            &r.min_requests,
            "min_requests",
            limits::MIN_REQUESTS,
            d.min_requests,
        ),
        failure_limit: v.whole(
            &r.failure_limit,
            "failure_limit",
            limits::FAILURE_LIMIT,
            d.failure_limit,
        ),
        max_error_rate,
        max_p99_ms: positive(v, &r.max_p99_ms, "max_p99_ms"),
        max_error_rate_increase: fraction(v, &r.max_error_rate_increase, "max_error_rate_increase"),
        max_p99_ratio: positive(v, &r.max_p99_ratio, "max_p99_ratio"),
        source,
    }
}

/// A real number within `range` (`None` when absent or out of it, reported).
fn real(
    v: &mut Validator,
    s: &Option<S<f64>>,
    key: &str,
    range: std::ops::RangeInclusive<f64>,
    example: &str,
) -> Option<f64> {
    let s = s.as_ref()?;
    let x = *s.get_ref();
    if !range.contains(&x) {
        v.error(
            s.span(),
            format!(
                "{key} = {x} is out of range: use a number from {} to {} ({example})",
                range.start(),
                range.end()
            ),
        );
        return None;
    }
    Some(x)
}

fn fraction(v: &mut Validator, s: &Option<S<f64>>, key: &str) -> Option<f64> {
    let s = s.as_ref()?;
    let x = *s.get_ref();
    if !(0.0..=1.0).contains(&x) {
        v.error(
            s.span(),
            format!("{key} = {x} is a fraction: use a number from 0 to 1 (0.01 is 1%)"),
        );
    }
    Some(x)
}

fn positive(v: &mut Validator, s: &Option<S<f64>>, key: &str) -> Option<f64> {
    let s = s.as_ref()?;
    let x = *s.get_ref();
    if !(x > 0.0 && x.is_finite()) {
        v.error(s.span(), format!("{key} = {x}: use a number above 0"));
    }
    Some(x)
}

/// The builtin source reads the built-in router's counts: with another
/// router it would judge nothing.
fn builtin_needs_builtin_router(v: &mut Validator, i: &Inputs, source: &SourcePlan) {
    let (Some(traffic), Some(kind)) = (&i.traffic, i.written_router) else {
        return;
    };
    let written_builtin = match i.source {
        None => true,
        Some(s) => match &s.value.kind {
            None => !s.dropped("kind"),
            Some(k) => k.get_ref() == SourceKind::Builtin.as_str(),
        },
    };
    if written_builtin && matches!(source, SourcePlan::Builtin) && kind != RouterKind::Builtin {
        let at = i
            .analysis
            .map(|a| a.span.clone())
            .unwrap_or(traffic.clone());
        let others: Vec<String> = SourceKind::ALL[1..]
            .iter()
            .map(|k| format!("\"{}\"", k.as_str()))
            .collect();
        v.error(
            at,
            format!("the builtin metric source reads the built-in router's own counts, but the router is kind \"{}\": add [analysis.source] with kind {}", kind.as_str(), others.join(", ")),
        );
    }
}

/// The method of a plan that names none: sequential where the source is
/// known to give cumulative counts (the built-in router, HAProxy, Prometheus
/// with `requests_total` and `errors_total`), else threshold, so a plan
/// written before the sequential judge (a command source printing window
/// figures, Prometheus rate queries) runs as it did.
pub(crate) fn default_method(source: &SourcePlan) -> Method {
    match source {
        SourcePlan::Builtin | SourcePlan::Haproxy(_) => Method::Sequential,
        SourcePlan::Prometheus { queries, .. }
            if queries.requests_total.is_some() && queries.errors_total.is_some() =>
        {
            Method::Sequential
        }
        SourcePlan::Prometheus { .. } | SourcePlan::Command { .. } => Method::Threshold,
    }
}

/// The source of the plan; `a` holds the method and `slow_ms` already read
/// (a Prometheus source needs totals queries for the sequential method).
fn source(v: &mut Validator, i: &Inputs, a: &AnalysisPlan) -> SourcePlan {
    let Some(s) = i.source else {
        return a.source.clone();
    };
    let r = &s.value;
    let kind = match &r.kind {
        None if s.dropped("kind") => return SourcePlan::Builtin,
        None => SourceKind::Builtin,
        Some(k) => match v.parse_choice::<SourceKind>(k, "metric source kind") {
            Some(kind) => kind,
            None => return SourcePlan::Builtin,
        },
    };
    let (allowed, what) = keys(kind);
    for (k, span) in given(r) {
        if let Some(span) = span {
            if !allowed.contains(&k) {
                v.error(
                    span,
                    format!("{k} does not apply to the {} source, {what}", kind.as_str()),
                );
            }
        }
    }
    match kind {
        SourceKind::Builtin => SourcePlan::Builtin,
        SourceKind::Prometheus => prometheus(v, s, i.deployment, a),
        SourceKind::Haproxy => {
            // HAProxy keeps average times only: percentile limits cannot be judged.
            if let Some(a) = i.analysis {
                v.not_here(
                    &[
                        ("max_p99_ms", span_of(&a.value.max_p99_ms)),
                        ("max_p99_ratio", span_of(&a.value.max_p99_ratio)),
                    ],
                    |k| format!("{k} needs percentiles, and HAProxy's stats have average response times only: drop it, or use kind = \"prometheus\" with a p99_ms query"),
                );
            }
            match i.router {
                Some(RouterPlan::Haproxy(target)) => SourcePlan::Haproxy(vec![target.clone()]),
                Some(RouterPlan::Group(members)) => {
                    let others: Vec<String> = members
                        .iter()
                        .filter(|m| !matches!(m.router, RouterPlan::Haproxy(_)))
                        .map(|m| format!("{} ({})", m.name, m.router.kind()))
                        .collect();
                    if others.is_empty() {
                        let targets = members.iter().filter_map(|m| match &m.router {
                            RouterPlan::Haproxy(t) => Some(t.clone()),
                            _ => None,
                        });
                        return SourcePlan::Haproxy(targets.collect());
                    }
                    let at = r.kind.as_ref().map(|k| k.span()).unwrap_or(s.span.clone());
                    v.error(at, format!("the haproxy metric source sums the stats of every router in the group, and {} {} not haproxy: use a prometheus or command source for a mixed group", others.join(", "), if others.len() == 1 { "is" } else { "are" }));
                    SourcePlan::Builtin
                }
                // A broken haproxy router or group is reported as such.
                _ if matches!(
                    i.written_router,
                    Some(RouterKind::Haproxy | RouterKind::Group)
                ) =>
                {
                    SourcePlan::Builtin
                }
                _ => {
                    let at = r.kind.as_ref().map(|k| k.span()).unwrap_or(s.span.clone());
                    v.error(at, "the haproxy metric source reads the haproxy router's stats socket: it needs [traffic.router] kind = \"haproxy\" (or a group of haproxy [[traffic.routers]])");
                    SourcePlan::Builtin
                }
            }
        }
        SourceKind::Command => match &r.sample {
            Some(c) => SourcePlan::Command {
                sample: v.script(c, "sample"),
            },
            None if s.dropped("sample") => SourcePlan::Builtin,
            None => {
                v.error(s.span.clone(), "the command metric source needs sample = \"command printing {\\\"canary\\\": {…}, \\\"stable\\\": {…}} as JSON\"");
                SourcePlan::Builtin
            }
        },
    }
}

fn prometheus(
    v: &mut Validator,
    s: &Located<RawSource>,
    deployment: Option<&Deployment>,
    a: &AnalysisPlan,
) -> SourcePlan {
    let r = &s.value;
    let Some([url, error_rate, requests]) = v.required(
        s,
        [
            (&r.url, "url", "the prometheus source needs url = \"http://127.0.0.1:9090\""),
            (&r.error_rate, "error_rate", "the prometheus source needs an error_rate query (the 5xx fraction of the track `$version`)"),
            (&r.requests, "requests", "the prometheus source needs a requests query (the track's request count over the window)"),
        ],
    ) else {
        return SourcePlan::Builtin;
    };
    let url_value = v
        .url(url, "url", "the http:// URL of a Prometheus server")
        .unwrap_or_default();
    let error_rate = query(v, error_rate, "error_rate");
    let requests = query(v, requests, "requests");
    let p99_ms = r.p99_ms.as_ref().map(|q| query(v, q, "p99_ms"));
    let p50_ms = r.p50_ms.as_ref().map(|q| query(v, q, "p50_ms"));
    let requests_total = r
        .requests_total
        .as_ref()
        .map(|q| query(v, q, "requests_total"));
    let errors_total = r.errors_total.as_ref().map(|q| query(v, q, "errors_total"));
    let slow_total = r.slow_total.as_ref().map(|q| query(v, q, "slow_total"));
    if a.method == Method::Sequential {
        for (key, given, example) in [
            (
                "requests_total",
                &r.requests_total,
                r#"sum(http_requests_total{version="$version"})"#,
            ),
            (
                "errors_total",
                &r.errors_total,
                r#"sum(http_requests_total{version="$version",code=~"5.."}) or vector(0)"#,
            ),
        ] {
            if given.is_none() && !s.dropped(key) {
                v.error(
                    s.span.clone(),
                    format!("the sequential method judges cumulative counts: the prometheus source needs {key} = '{example}', or set [analysis] method = \"threshold\""),
                );
            }
        }
    }
    let Some(deployment) = deployment else {
        return SourcePlan::Builtin;
    };
    let Some(previous) = &deployment.previous else {
        v.error(s.span.clone(), "the prometheus source compares the two versions' series, so [deployment] needs previous = \"…\" (the stable version label)");
        return SourcePlan::Builtin;
    };
    SourcePlan::Prometheus {
        url_display: crate::redact::url_for_display(url.get_ref()),
        queries: Box::new(PrometheusConfig {
            url: url_value,
            error_rate,
            p99_ms,
            p50_ms,
            requests,
            requests_total,
            errors_total,
            slow_total,
            slow_ms: a.slow_ms,
            canary_version: deployment.version.clone(),
            stable_version: previous.clone(),
        }),
    }
}

/// A PromQL query: expanded, line breaks allowed, `$version` required.
fn query(v: &mut Validator, q: &S<String>, key: &str) -> String {
    let Some(text) = v.expand(q) else {
        return String::new();
    };
    if text
        .chars()
        .any(|c| is_unsafe_char(c) && !matches!(c, '\t' | '\n' | '\r'))
    {
        v.error(q.span(), format!("the {key} query holds a control character other than a tab or line break: remove it"));
    }
    if text.len() > MAX_COMMAND {
        v.error(
            q.span(),
            format!("the {key} query is longer than {MAX_COMMAND} bytes"),
        );
    }
    if !text.contains("$version") {
        v.error(q.span(), format!("the {key} query does not use $version, so it cannot tell canary from stable: select the track with a label like {{version=\"$version\"}}"));
    }
    text
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
