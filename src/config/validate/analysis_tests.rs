//! `[analysis]` and `[analysis.source]`: sampling bounds, limits, sources.

use std::time::Duration;

use crate::config::testing::*;
use crate::config::SourcePlan;

fn analysis(body: &str) -> String {
    format!("{HEAD}{TRAFFIC}[analysis]\n{body}")
}

#[test]
fn bounds_of_sampling() {
    let a = plan(&analysis("interval = \"100ms\"\nwindow = \"1h\"\n")).analysis;
    assert_eq!(
        (a.interval, a.window),
        (Duration::from_millis(100), Duration::from_secs(3600))
    );
    expect(
        &analysis("interval = \"99ms\"\n"),
        "13:12",
        "from 100ms to 1h",
    );
    expect(&analysis("window = \"61m\"\n"), "13:10", "from 1s to 1h");
    expect(
        &analysis("interval = \"10s\"\nwindow = \"5s\"\n"),
        "14:10",
        "window is shorter than interval (10s)",
    );
    expect(
        &analysis("interval = \"40s\"\n"),
        "13:12",
        "interval is longer than window (30s by default)",
    );
}

#[test]
fn limits_are_fractions_or_positive() {
    expect(
        &analysis("max_error_rate = 1.5\n"),
        "13:18",
        "is a fraction",
    );
    expect(
        &analysis("max_error_rate_increase = nan\n"),
        "13:27",
        "is a fraction",
    );
    expect(&analysis("max_p99_ms = 0\n"), "13:14", "above 0");
    expect(&analysis("max_p99_ratio = inf\n"), "13:17", "above 0");
    expect(
        &analysis("min_requests = 1.5\n"),
        "13:16",
        "expected a whole number",
    );
}

#[test]
fn a_builtin_source_needs_the_builtin_router() {
    let text = format!("{HEAD}[traffic]\nsteps = [100]\n[traffic.router]\nkind = \"command\"\nset_weight = \"true\"\n[analysis]\ninterval = \"1s\"\n");
    expect(&text, "10:1", "the builtin metric source reads the built-in router's own counts, but the router is kind \"command\"");
}

#[test]
fn source_keys_belong_to_their_kind() {
    expect(
        &analysis("[analysis.source]\nkind = \"builtin\"\nsample = \"x\"\n"),
        "15:10",
        "sample does not apply to the builtin source",
    );
    expect(
        &analysis("[analysis.source]\nkind = \"graphite\"\n"),
        "14:8",
        "use \"builtin\", \"prometheus\", \"haproxy\" or \"command\"",
    );
    expect(
        &analysis("[analysis.source]\nkind = \"command\"\n"),
        "13:1",
        "needs sample",
    );
}

#[test]
fn prometheus_queries_select_the_track_and_urls_hide_credentials() {
    let q = "error_rate = 'rate(x{version=\"$version\"}[1m])'\nrequests = 'sum(x{version=\"$version\"})'\nmethod_free = 1\n";
    let q = &q.replace(
        "method_free = 1\n",
        "requests_total = 'sum(x{version=\"$version\"})'\nerrors_total = 'sum(x{version=\"$version\",code=~\"5..\"})'\n",
    );
    let p = plan(&analysis(&format!("[analysis.source]\nkind = \"prometheus\"\nurl = \"http://u:${{env:CUTOVER_TEST_SECRET}}@127.0.0.1:9090/?x=1\"\n{q}")));
    match &p.analysis.source {
        SourcePlan::Prometheus {
            url_display,
            queries,
        } => {
            assert_eq!(url_display, "http://127.0.0.1:9090/");
            assert!(queries.url.contains(SECRET));
            assert!(queries.requests_total.is_some() && queries.errors_total.is_some());
            assert_eq!(
                (queries.slow_total.as_deref(), queries.slow_ms),
                (None, 500)
            );
            assert_eq!(
                (
                    queries.canary_version.as_str(),
                    queries.stable_version.as_str()
                ),
                ("v2", "v1")
            );
        }
        other => panic!("{other:?}"),
    }
    expect(
        &analysis(&format!(
            "[analysis.source]\nkind = \"prometheus\"\nurl = \"http://127.0.0.1:9090\"\n{}",
            q.replace("$version", "canary")
        )),
        "16:14",
        "does not use $version",
    );
    let e = errors(&analysis(&format!(
        "[analysis.source]\nkind = \"prometheus\"\nurl = \"gopher://u:pw@h/?token=t\"\n{q}"
    )));
    assert!(
        e[0].starts_with("15:7: url = \"gopher://h/\" is not the http:// URL"),
        "{e:?}"
    );
    let no_previous = analysis(&format!(
        "[analysis.source]\nkind = \"prometheus\"\nurl = \"http://h:1\"\n{q}"
    ))
    .replace("previous = \"v1\"\n", "");
    expect(&no_previous, "12:1", "needs previous");
}

#[test]
fn haproxy_source_needs_the_haproxy_router_and_no_percentiles() {
    expect(
        &analysis("[analysis.source]\nkind = \"haproxy\"\n"),
        "14:8",
        "needs [traffic.router] kind = \"haproxy\"",
    );
    let text = format!("{HEAD}[traffic]\nsteps = [100]\n[traffic.router]\nkind = \"haproxy\"\nsocket = \"/s\"\nbackend = \"b\"\nstable_server = \"s\"\ncanary_server = \"c\"\n[analysis]\nmax_p99_ms = 5\n[analysis.source]\nkind = \"haproxy\"\n");
    expect(&text, "14:14", "max_p99_ms needs percentiles");
    // A broken haproxy router is reported once, as such.
    let broken = text
        .replace("backend = \"b\"\n", "")
        .replace("max_p99_ms = 5\n", "");
    let e = expect_count(&broken, 1);
    assert!(e[0].contains("needs backend"), "{e:?}");
}

#[test]
fn the_method_and_the_judges_settings() {
    use crate::config::Method;
    let d = plan(&analysis("interval = \"1s\"\n")).analysis;
    assert_eq!(
        (d.method, d.alpha, d.tolerance, d.slow_ms),
        (Method::Sequential, 0.01, 1.0, 500)
    );
    let a = plan(&analysis(
        "method = \"threshold\"\nalpha = 0.05\ntolerance = 1.1\nslow_ms = 250\n",
    ))
    .analysis;
    assert_eq!(
        (a.method, a.alpha, a.tolerance, a.slow_ms),
        (Method::Threshold, 0.05, 1.1, 250)
    );
    expect(
        &analysis("method = \"bayesian\"\n"),
        "13:10",
        "use \"sequential\" or \"threshold\"",
    );
    expect(
        &analysis("alpha = 0.5\n"),
        "13:9",
        "alpha = 0.5 is out of range: use a number from 0.0001 to 0.2",
    );
    expect(&analysis("alpha = 0\n"), "13:9", "from 0.0001 to 0.2");
    expect(
        &analysis("tolerance = 0.9\n"),
        "13:13",
        "tolerance = 0.9 is out of range: use a number from 1 to 100",
    );
    expect(&analysis("tolerance = nan\n"), "13:13", "from 1 to 100");
    expect(
        &analysis("slow_ms = 0\n"),
        "13:11",
        "slow_ms = 0 is out of range: use a whole number from 1 to 3600000",
    );
    expect(&analysis("slow_ms = \"500ms\"\n"), "13:11", "expected");
}

#[test]
fn a_sequential_prometheus_source_needs_totals_queries() {
    let base = "[analysis.source]\nkind = \"prometheus\"\nurl = \"http://127.0.0.1:9090\"\nerror_rate = 'rate(x{version=\"$version\"}[1m])'\nrequests = 'sum(x{version=\"$version\"})'\n";
    let e = errors(&analysis(&format!("method = \"sequential\"\n{base}")));
    assert!(e.len() == 2, "{e:?}");
    assert!(e[0].starts_with("14:1: the sequential method judges cumulative counts: the prometheus source needs requests_total"), "{e:?}");
    assert!(e[1].contains("needs errors_total"), "{e:?}");
    // The threshold method reads windows only; with no method written, a
    // source without totals is judged by it (a plan from before the judge).
    plan(&analysis(&format!("method = \"threshold\"\n{base}")));
    let unwritten = plan(&analysis(base)).analysis;
    assert_eq!(
        (unwritten.method, unwritten.method_written),
        (crate::config::Method::Threshold, false)
    );
    // Totals, with a slow count whose bucket follows slow_ms.
    let p = plan(&analysis(&format!(
        "slow_ms = 250\n{base}requests_total = 'sum(x{{version=\"$version\"}})'\nerrors_total = 'sum(x{{version=\"$version\",code=~\"5..\"}})'\nslow_total = 'sum(c{{version=\"$version\"}}) - sum(b{{version=\"$version\",le=\"$slow_seconds\"}})'\n"
    )));
    // With totals, the unwritten method is the sequential one.
    assert_eq!(p.analysis.method, crate::config::Method::Sequential);
    match &p.analysis.source {
        SourcePlan::Prometheus { queries, .. } => {
            assert!(queries
                .slow_total
                .as_deref()
                .is_some_and(|q| q.contains("$slow_seconds")));
            assert_eq!(queries.slow_ms, 250);
        }
        other => panic!("{other:?}"),
    }
    expect(
        &analysis(&format!(
            "{base}requests_total = 'sum(x)'\nerrors_total = 'sum(y{{version=\"$version\"}})'\n"
        )),
        "18:18",
        "the requests_total query does not use $version",
    );
    expect(
        &analysis("[analysis.source]\nkind = \"builtin\"\nslow_total = \"x\"\n"),
        "15:14",
        "slow_total does not apply to the builtin source",
    );
}

#[test]
fn with_no_method_written_the_source_chooses() {
    use crate::config::Method;
    let command = "[analysis.source]\nkind = \"command\"\nsample = \"./sample\"\n";
    // A command's output is unknown until it runs: threshold, as before the
    // judge, unless the plan says the command prints totals.
    let a = plan(&analysis(command)).analysis;
    assert_eq!((a.method, a.method_written), (Method::Threshold, false));
    let a = plan(&analysis(&format!("method = \"sequential\"\n{command}"))).analysis;
    assert_eq!((a.method, a.method_written), (Method::Sequential, true));
    // The built-in router counts every request: sequential, with or
    // without an [analysis] table.
    let a = plan(&analysis("interval = \"1s\"\n")).analysis;
    assert_eq!((a.method, a.method_written), (Method::Sequential, false));
    let a = plan(&format!("{HEAD}{TRAFFIC}")).analysis;
    assert_eq!(a.method, Method::Sequential);
    let a = plan(&format!("{HEAD}{TRAFFIC}{command}")).analysis;
    assert_eq!(a.method, Method::Threshold);
}
