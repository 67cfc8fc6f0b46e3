//! The sample service over real HTTP on loopback: answers, /metrics, and
//! POST /fault on the admin listener only.
//!
//! Every app here stops when its `DemoApp` is dropped, which also happens when
//! a test fails and unwinds; the binary's is killed by its guard.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use cutover::demo::app::{DemoApp, DemoAppConfig};

async fn start(version: &str) -> DemoApp {
    DemoApp::start(DemoAppConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        version: version.to_string(),
        error_rate: 0.0,
        latency_ms: 0,
        admin: Some("127.0.0.1:0".parse().expect("addr")),
    })
    .await
    .expect("demo-app starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn url(app: &DemoApp, path: &str) -> String {
    format!("http://{}{path}", app.local_addr())
}

/// A URL on the app's admin listener.
fn admin(app: &DemoApp, path: &str) -> String {
    let addr = app.admin_addr().expect("an admin listener");
    format!("http://{addr}{path}")
}

/// GETs / `n` times; the statuses in order.
async fn hit(client: &reqwest::Client, app: &DemoApp, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        let r = client.get(url(app, "/")).send().await.expect("GET /");
        statuses.push(r.status().as_u16());
        r.bytes().await.expect("body");
    }
    statuses
}

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough that a malformed line fails.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label=value");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted label value");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {name:?}"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

async fn metrics(client: &reqwest::Client, app: &DemoApp) -> Vec<Sample> {
    let r = client
        .get(url(app, "/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    parse_metrics(&r.text().await.expect("text"))
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "one {name}{labels:?} in {samples:?}");
    found[0].value
}

fn requests(samples: &[Sample], version: &str, code: &str) -> f64 {
    value(
        samples,
        "http_requests_total",
        &[("version", version), ("code", code)],
    )
}

fn bucket(samples: &[Sample], version: &str, le: &str) -> f64 {
    value(
        samples,
        "http_request_duration_seconds_bucket",
        &[("version", version), ("le", le)],
    )
}

#[tokio::test]
async fn answers_hello_health_and_not_found() {
    let app = start("v1").await;
    let c = client();
    let r = c.get(url(&app, "/")).send().await.expect("GET /");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-version"], "v1");
    assert_eq!(r.text().await.expect("body"), "hello from v1");

    let r = c
        .get(url(&app, "/health"))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(r.status(), 200);

    let r = c
        .get(url(&app, "/nowhere"))
        .send()
        .await
        .expect("GET /nowhere");
    assert_eq!(r.status(), 404);

    let r = c.delete(url(&app, "/")).send().await.expect("DELETE /");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    app.shutdown();
}

#[tokio::test]
async fn the_service_port_has_no_fault_endpoint() {
    let app = start("v1").await;
    let c = client();
    for query in ["error_rate=1", "latency_ms=600000"] {
        let r = c
            .post(url(&app, &format!("/fault?{query}")))
            .form(&[("error_rate", "1")])
            .send()
            .await
            .expect("POST /fault");
        assert_eq!(r.status(), 404, "{query}");
    }
    let r = c.get(url(&app, "/fault")).send().await.expect("GET /fault");
    assert_eq!(r.status(), 404);
    assert_eq!(app.fault(), (0.0, 0));
    assert!(hit(&c, &app, 10).await.iter().all(|s| *s == 200));

    // The admin listener serves /fault and nothing else.
    let r = c
        .get(admin(&app, "/fault"))
        .send()
        .await
        .expect("GET /fault");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    for path in ["/", "/metrics", "/health"] {
        let r = c.get(admin(&app, path)).send().await.expect("GET");
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn an_admin_address_off_loopback_is_refused() {
    let e = DemoApp::start(DemoAppConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        version: "v1".into(),
        error_rate: 0.0,
        latency_ms: 0,
        admin: Some("0.0.0.0:0".parse().expect("addr")),
    })
    .await
    .err()
    .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("loopback"), "{e}");

    // Without an admin address there is no fault endpoint at all.
    let app = DemoApp::start(DemoAppConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        version: "v1".into(),
        error_rate: 0.0,
        latency_ms: 0,
        admin: None,
    })
    .await
    .expect("starts");
    assert_eq!(app.admin_addr(), None);
}

#[test]
fn the_binary_serves_faults_on_its_admin_address_only() {
    let (_app, addr, admin) = common::demo_app_with_admin("v3", &[]);
    assert_eq!(common::post_fault(addr, "error_rate=1"), Some(404));
    assert_eq!(common::get_version(addr, "/").map(|(s, _)| s), Some(200));
    assert_eq!(common::post_fault(admin, "error_rate=1"), Some(200));
    assert_eq!(
        common::get_version(addr, "/"),
        Some((500, Some("v3".into())))
    );
}

#[tokio::test]
async fn metrics_parse_and_count_requests_and_500s() {
    let app = start("v1").await;
    let c = client();

    // The 5xx series is there before any error, at 0.
    let m = metrics(&c, &app).await;
    assert_eq!(requests(&m, "v1", "200"), 0.0);
    assert_eq!(requests(&m, "v1", "500"), 0.0);
    assert_eq!(bucket(&m, "v1", "+Inf"), 0.0);

    assert!(hit(&c, &app, 12).await.iter().all(|s| *s == 200));
    app.set_fault(Some(1.0), None);
    assert!(hit(&c, &app, 5).await.iter().all(|s| *s == 500));
    // Health checks and scrapes are not the application's traffic.
    c.get(url(&app, "/health"))
        .send()
        .await
        .expect("GET /health");

    let m = metrics(&c, &app).await;
    assert_eq!(requests(&m, "v1", "200"), 12.0);
    assert_eq!(requests(&m, "v1", "500"), 5.0);
    let count = value(
        &m,
        "http_request_duration_seconds_count",
        &[("version", "v1")],
    );
    assert_eq!(count, 17.0);
    assert_eq!(bucket(&m, "v1", "+Inf"), 17.0);
    let sum = value(
        &m,
        "http_request_duration_seconds_sum",
        &[("version", "v1")],
    );
    assert!(sum >= 0.0);

    // Buckets are cumulative: never decreasing with `le`, ending at +Inf.
    let mut les: Vec<(f64, f64)> = m
        .iter()
        .filter(|s| s.name == "http_request_duration_seconds_bucket")
        .map(|s| {
            let le = &s.labels["le"];
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            (bound, s.value)
        })
        .collect();
    assert!(les.len() >= 5, "{les:?}");
    les.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(les.windows(2).all(|w| w[0].1 <= w[1].1), "{les:?}");
}

#[tokio::test]
async fn post_fault_changes_the_error_rate() {
    let app = start("v2").await;
    let c = client();

    // As a query parameter.
    let r = c
        .post(admin(&app, "/fault?error_rate=1"))
        .send()
        .await
        .expect("POST /fault");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(app.fault().0, 1.0);
    let failing = hit(&c, &app, 20).await;
    assert!(failing.iter().all(|s| *s == 500), "{failing:?}");

    // As a form body.
    let r = c
        .post(admin(&app, "/fault"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("error_rate=0")
        .send()
        .await
        .expect("POST /fault");
    assert_eq!(r.status(), 200);
    let healthy = hit(&c, &app, 20).await;
    assert!(healthy.iter().all(|s| *s == 200), "{healthy:?}");

    // A fraction fails about that often: 400 requests at 0.5 put the count
    // of failures far (8 standard deviations) inside 120..=280.
    let r = c
        .post(admin(&app, "/fault"))
        .form(&[("error_rate", "0.5")])
        .send()
        .await
        .expect("POST /fault");
    assert_eq!(r.status(), 200);
    let mixed = hit(&c, &app, 400).await;
    let failures = mixed.iter().filter(|s| **s == 500).count();
    assert!((120..=280).contains(&failures), "{failures} of 400 failed");

    let m = metrics(&c, &app).await;
    assert_eq!(requests(&m, "v2", "500"), (20 + failures) as f64);
}

#[tokio::test]
async fn post_fault_adds_latency() {
    let app = start("v1").await;
    let c = client();
    let r = c
        .post(admin(&app, "/fault"))
        .form(&[("latency_ms", "60")])
        .send()
        .await
        .expect("POST /fault");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.expect("body"),
        "error_rate=0 latency_ms=60\n"
    );
    hit(&c, &app, 3).await;
    // Every answer waited at least 60 ms: none falls in the 50 ms bucket.
    let m = metrics(&c, &app).await;
    assert_eq!(bucket(&m, "v1", "0.05"), 0.0);
    assert_eq!(bucket(&m, "v1", "+Inf"), 3.0);
    let sum = value(
        &m,
        "http_request_duration_seconds_sum",
        &[("version", "v1")],
    );
    assert!(sum >= 0.18, "sum {sum}");
}

#[tokio::test]
async fn bad_fault_values_get_400_with_the_reason() {
    let app = start("v1").await;
    let c = client();
    let cases = [
        ("error_rate=1.5", "error_rate must be a number from 0 to 1"),
        ("error_rate=lots", "error_rate must be a number from 0 to 1"),
        ("latency_ms=-5", "latency_ms must be a whole number"),
        ("latency=5", "unknown parameter \"latency\""),
        ("", "nothing to change"),
    ];
    for (query, reason) in cases {
        let r = c
            .post(admin(&app, &format!("/fault?{query}")))
            .send()
            .await
            .expect("POST /fault");
        assert_eq!(r.status(), 400, "{query}");
        let body = r.text().await.expect("body");
        assert!(body.contains(reason), "{query}: {body}");
    }
    let r = c
        .post(admin(&app, "/fault"))
        .header("content-type", "application/json")
        .body(r#"{"error_rate":1}"#)
        .send()
        .await
        .expect("POST /fault");
    assert_eq!(r.status(), 415);
    // Nothing was changed by the refused requests.
    assert_eq!(app.fault(), (0.0, 0));
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let app = start("v1").await;
    let addr: SocketAddr = app.local_addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    app.shutdown();
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "still accepting on {addr} after shutdown");
}

#[tokio::test]
async fn an_oversized_fault_body_is_refused() {
    let app = start("v1").await;
    let body = format!("error_rate=1&{}", "x".repeat(10_000));
    let r = client()
        .post(admin(&app, "/fault"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST /fault");
    assert_eq!(r.status(), 413);
    assert_eq!(app.fault(), (0.0, 0));
}
