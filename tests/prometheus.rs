//! The Prometheus source against a real Prometheus scraping sample services
//! on loopback: verdicts on a bad and a healthy canary, and query errors.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cutover::config::AnalysisPlan;
use cutover::domain::Verdict;
use cutover::engine::analysis::judge;
use cutover::metrics::prometheus::{PrometheusConfig, PrometheusSource};
use cutover::metrics::{MetricSource, TrackPair};

const REQUESTS: &str = r#"sum(increase(http_requests_total{version="$version"}[1m]))"#;
const ERROR_RATE: &str = r#"(sum(rate(http_requests_total{version="$version",code=~"5.."}[1m])) or vector(0)) / sum(rate(http_requests_total{version="$version"}[1m]))"#;
const P99_MS: &str = r#"1000 * histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{version="$version"}[1m])))"#;

fn source(url: &str, canary: &str, stable: &str) -> PrometheusSource {
    PrometheusSource::new(PrometheusConfig {
        url: url.to_string(),
        error_rate: ERROR_RATE.into(),
        p99_ms: Some(P99_MS.into()),
        p50_ms: None,
        requests: REQUESTS.into(),
        requests_total: None,
        errors_total: None,
        slow_total: None,
        slow_ms: 500,
        canary_version: canary.into(),
        stable_version: stable.into(),
    })
}

/// Samples until both tracks have data, bounded: `[1m]` rates need a few
/// scrapes before they give a number.
async fn sample_with_data(src: &PrometheusSource) -> TrackPair {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(60) {
        match src.sample(Duration::from_secs(30)).await {
            Ok(pair)
                if pair.canary.requests >= 50
                    && pair.stable.requests >= 50
                    && pair.canary.error_rate.is_some()
                    && pair.stable.error_rate.is_some() =>
            {
                return pair
            }
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no data from Prometheus within 60s; last: {last:?}");
}

fn plan() -> AnalysisPlan {
    AnalysisPlan {
        min_requests: 20,
        max_error_rate: Some(0.05),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_fails_and_a_healthy_one_passes() {
    if !have_external("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, bad) = demo_app("v2", &["--error-rate", "0.2"]);
    let (_v3, good) = demo_app("v3", &[]);
    let prom = start_prometheus(dir.path(), &[stable, bad, good]);
    let _traffic: Vec<Traffic> = [stable, bad, good]
        .into_iter()
        .map(|a| Traffic::start(a, Duration::from_millis(10), Duration::from_secs(120)))
        .collect();

    // Not scraped yet: no data is inconclusive, never a pass.
    let early = source(&prom.url, "v9", "v1")
        .sample(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(early.canary.requests, 0);
    assert_eq!(early.canary.error_rate, None);
    assert_eq!(judge(&early, &plan()).0, Verdict::Inconclusive);

    let pair = sample_with_data(&source(&prom.url, "v2", "v1")).await;
    let rate = pair.canary.error_rate.unwrap();
    assert!((0.1..0.3).contains(&rate), "{pair:?}");
    assert_eq!(pair.stable.error_rate, Some(0.0), "{pair:?}");
    assert!(pair.canary.p99_ms.is_some(), "{pair:?}");
    let (verdict, reasons) = judge(&pair, &plan());
    assert_eq!(verdict, Verdict::Fail, "{reasons:?} {pair:?}");
    assert!(
        reasons.iter().any(|r| r.contains("max_error_rate")),
        "{reasons:?}"
    );

    let pair = sample_with_data(&source(&prom.url, "v3", "v1")).await;
    assert_eq!(pair.canary.error_rate, Some(0.0), "{pair:?}");
    let (verdict, reasons) = judge(&pair, &plan());
    assert_eq!(verdict, Verdict::Pass, "{reasons:?} {pair:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_name_the_query() {
    if !have_external("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let prom = start_prometheus(dir.path(), &[stable]);

    let bad = PrometheusSource::new(PrometheusConfig {
        url: prom.url.clone(),
        error_rate: ERROR_RATE.into(),
        p99_ms: None,
        p50_ms: None,
        // A missing parenthesis.
        requests: r#"sum(rate(http_requests_total{version="$version"}[1m])"#.into(),
        requests_total: None,
        errors_total: None,
        slow_total: None,
        slow_ms: 500,
        canary_version: "v2".into(),
        stable_version: "v1".into(),
    });
    let e = bad
        .sample(Duration::from_secs(30))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(r#"sum(rate(http_requests_total{version="v"#),
        "{e}"
    );
    assert!(e.contains("bad_data"), "{e}");

    // One series per status code (both exist from the first scrape): the
    // query must aggregate.
    let many = PrometheusSource::new(PrometheusConfig {
        url: prom.url.clone(),
        error_rate: ERROR_RATE.into(),
        p99_ms: None,
        p50_ms: None,
        requests: r#"http_requests_total{version="$version"}"#.into(),
        requests_total: None,
        errors_total: None,
        slow_total: None,
        slow_ms: 500,
        canary_version: "v2".into(),
        stable_version: "v1".into(),
    });
    let started = Instant::now();
    let e = loop {
        match many.sample(Duration::from_secs(30)).await {
            Err(e) => break e.to_string(),
            Ok(_) if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Ok(pair) => panic!("never more than one series: {pair:?}"),
        }
    };
    assert!(e.contains("series"), "{e}");
    assert!(e.contains("sum("), "{e}");
}

const REQUESTS_TOTAL: &str = r#"sum(http_requests_total{version="$version"})"#;
const ERRORS_TOTAL: &str =
    r#"sum(http_requests_total{version="$version",code=~"5.."}) or vector(0)"#;
const SLOW_TOTAL: &str = r#"sum(http_request_duration_seconds_count{version="$version"}) - sum(http_request_duration_seconds_bucket{version="$version",le="$slow_seconds"})"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_queries_give_cumulative_counts_and_slow_requests_for_the_sequential_judge() {
    use cutover::judge::kinds::{Judge, JudgeConfig};
    use cutover::judge::{Counts, EventKind, PassPolicy, TrackCounts};
    if !have_external("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, slow) = demo_app("v2", &["--latency-ms", "800", "--error-rate", "0.1"]);
    let prom = start_prometheus(dir.path(), &[stable, slow]);
    let _traffic: Vec<Traffic> = [stable, slow]
        .into_iter()
        .map(|a| Traffic::start(a, Duration::from_millis(10), Duration::from_secs(120)))
        .collect();
    let src = PrometheusSource::new(PrometheusConfig {
        requests_total: Some(REQUESTS_TOTAL.into()),
        errors_total: Some(ERRORS_TOTAL.into()),
        slow_total: Some(SLOW_TOTAL.into()),
        ..source(&prom.url, "v2", "v1").config().clone()
    });
    // No series yet for a version nobody serves: counts of zero.
    let nobody = PrometheusSource::new(PrometheusConfig {
        canary_version: "v9".into(),
        ..src.config().clone()
    });
    let early = nobody.sample(Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        early.canary.totals.map(|t| (t.requests, t.errors, t.slow)),
        Some((0, 0, Some(0)))
    );
    let judge_config = JudgeConfig {
        alpha: 0.01,
        tolerance: 1.0,
        policy: PassPolicy::default(),
        slow_ms: 500,
    };
    let mut judge = Judge::new(judge_config, &[EventKind::Errors, EventKind::Slow]).unwrap();
    let started = Instant::now();
    let mut last: Option<(u64, u64)> = None;
    let mut failed = None;
    while started.elapsed() < Duration::from_secs(90) && failed.is_none() {
        let pair = src.sample(Duration::from_secs(30)).await.unwrap();
        let (c, s) = (pair.canary.totals.unwrap(), pair.stable.totals.unwrap());
        // Cumulative: never going down while the services run.
        if let Some((cr, sr)) = last {
            assert!(c.requests >= cr && s.requests >= sr, "{pair:?}");
        }
        last = Some((c.requests, s.requests));
        // Every canary request took 800 ms: slower than slow_ms (500 ms); none of stable's.
        assert_eq!(c.slow, Some(c.requests), "{pair:?}");
        assert_eq!(s.slow, Some(0), "{pair:?}");
        assert!(c.errors <= c.requests && s.errors == 0, "{pair:?}");
        let kind = |events: u64, stable_events: u64| Counts {
            canary: TrackCounts::new(c.requests, events),
            stable: TrackCounts::new(s.requests, stable_events),
        };
        let record = judge.observe(
            &[
                (EventKind::Errors, kind(c.errors, s.errors)),
                (EventKind::Slow, kind(c.slow.unwrap(), 0)),
            ],
            false,
        );
        if record.failed() {
            failed = Some(record);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let record = failed.expect("the slow canary failed within 90s");
    assert_eq!(record.kinds[1].kind, EventKind::Slow);
    assert_eq!(record.kinds[1].verdict, cutover::judge::Verdict::Fail);
}
