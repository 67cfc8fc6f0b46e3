//! The built-in router over real HTTP on loopback, in front of two sample
//! services: the weighted split, weight changes, a dead upstream, shutdown.
//!
//! Every server here stops when its handle is dropped, which also happens
//! when a test fails and unwinds.

use std::net::SocketAddr;
use std::time::Duration;

use cutover::demo::app::{DemoApp, DemoAppConfig};
use cutover::metrics::builtin::BuiltinSource;
use cutover::metrics::{MetricSource, Track, TrackSample};
use cutover::router::builtin::BuiltinRouter;
use cutover::router::Router;
use futures::stream::{self, StreamExt};

const WINDOW: Duration = Duration::from_secs(60);

async fn app(version: &str) -> DemoApp {
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

async fn router(stable: SocketAddr, canary: SocketAddr) -> BuiltinRouter {
    BuiltinRouter::start("127.0.0.1:0".parse().expect("addr"), stable, canary, WINDOW)
        .await
        .expect("router starts")
}

/// A port nothing listens on: it was free a moment ago.
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// One answer through the router.
#[derive(Debug)]
struct Answer {
    status: u16,
    version: Option<String>,
    track: Option<String>,
}

/// GETs / `n` times through `router`, 8 at a time.
async fn hit(router: &BuiltinRouter, n: usize) -> Vec<Answer> {
    let c = client();
    let url = format!("http://{}/", router.local_addr());
    stream::iter(0..n)
        .map(|_| {
            let c = c.clone();
            let url = url.clone();
            async move {
                let r = c.get(&url).send().await.expect("GET / through the router");
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .map(|v| v.to_str().expect("ascii").to_string())
                };
                let answer = Answer {
                    status: r.status().as_u16(),
                    version: header("x-version"),
                    track: header("x-cutover-track"),
                };
                r.bytes().await.expect("body");
                answer
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

fn from(answers: &[Answer], version: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.version.as_deref() == Some(version))
        .count()
}

/// The router records a request when the response body is done, which can be
/// a moment after the client has it: wait (boundedly) for `want` requests.
async fn stats_settled(router: &BuiltinRouter, track: Track, want: u64) -> TrackSample {
    let stats = router.stats();
    let mut sample = stats.window(track, WINDOW);
    for _ in 0..500 {
        if sample.requests >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        sample = stats.window(track, WINDOW);
    }
    sample
}

#[tokio::test]
async fn weight_25_sends_a_quarter_to_the_canary() {
    let (v1, v2) = (app("v1").await, app("v2").await);
    let router = router(v1.local_addr(), v2.local_addr()).await;
    router.set_weight(25).await.expect("set weight");
    assert_eq!(router.current_weight().await.expect("weight"), 25);

    let answers = hit(&router, 2000).await;
    assert!(answers.iter().all(|a| a.status == 200));
    let canary = from(&answers, "v2");
    assert_eq!(canary + from(&answers, "v1"), 2000);
    assert!((400..=600).contains(&canary), "{canary} of 2000 from v2");
    // The track header names the upstream that answered.
    for a in &answers {
        let want = if a.version.as_deref() == Some("v2") {
            "canary"
        } else {
            "stable"
        };
        assert_eq!(a.track.as_deref(), Some(want), "{a:?}");
    }

    let c = stats_settled(&router, Track::Canary, canary as u64).await;
    let s = stats_settled(&router, Track::Stable, (2000 - canary) as u64).await;
    assert_eq!(c.requests, canary as u64);
    assert_eq!(s.requests, (2000 - canary) as u64);
    assert_eq!((c.errors, s.errors), (0, 0));
    assert_eq!(c.error_rate, Some(0.0));
    assert!(c.p50_ms.is_some() && c.p99_ms.is_some(), "{c:?}");
}

#[tokio::test]
async fn weight_0_sends_nothing_to_the_canary_and_100_everything() {
    let (v1, v2) = (app("v1").await, app("v2").await);
    let router = router(v1.local_addr(), v2.local_addr()).await;
    // A new router starts at 0.
    assert_eq!(router.current_weight().await.expect("weight"), 0);
    let answers = hit(&router, 300).await;
    assert_eq!(from(&answers, "v1"), 300);
    assert_eq!(from(&answers, "v2"), 0);
    assert_eq!(
        stats_settled(&router, Track::Stable, 300).await.requests,
        300
    );
    assert_eq!(
        router.stats().window(Track::Canary, WINDOW),
        TrackSample::default()
    );

    router.set_weight(100).await.expect("set weight");
    let answers = hit(&router, 200).await;
    assert_eq!(from(&answers, "v2"), 200);
}

#[tokio::test]
async fn a_new_weight_holds_from_the_next_request() {
    let (v1, v2) = (app("v1").await, app("v2").await);
    let router = router(v1.local_addr(), v2.local_addr()).await;
    for (weight, version) in [(100, "v2"), (0, "v1"), (100, "v2"), (0, "v1")] {
        router.set_weight(weight).await.expect("set weight");
        let answers = hit(&router, 1).await;
        assert_eq!(
            answers[0].version.as_deref(),
            Some(version),
            "weight {weight}"
        );
    }
}

#[tokio::test]
async fn weight_above_100_is_refused_and_changes_nothing() {
    let (v1, v2) = (app("v1").await, app("v2").await);
    let router = router(v1.local_addr(), v2.local_addr()).await;
    router.set_weight(40).await.expect("set weight");
    let e = router.set_weight(101).await.expect_err("101 is refused");
    assert!(e.to_string().contains("101"), "{e}");
    assert_eq!(router.current_weight().await.expect("weight"), 40);
}

#[tokio::test]
async fn a_dead_canary_gets_502s_counted_as_canary_errors() {
    let v1 = app("v1").await;
    let router = router(v1.local_addr(), dead_addr()).await;
    router.set_weight(50).await.expect("set weight");

    let answers = hit(&router, 200).await;
    let bad: Vec<&Answer> = answers.iter().filter(|a| a.status == 502).collect();
    // The split is exact per hundred requests: half of them went to the canary.
    assert_eq!(bad.len(), 100);
    assert!(bad.iter().all(|a| a.track.as_deref() == Some("canary")));
    assert_eq!(from(&answers, "v1"), 100);

    let c = stats_settled(&router, Track::Canary, 100).await;
    assert_eq!((c.requests, c.errors, c.error_rate), (100, 100, Some(1.0)));
    let s = stats_settled(&router, Track::Stable, 100).await;
    assert_eq!((s.requests, s.errors), (100, 0));

    // The metric source reads the same counts.
    let pair = BuiltinSource::new(router.stats())
        .sample(WINDOW)
        .await
        .expect("sample");
    assert_eq!(pair.canary.errors, 100);
    assert_eq!(pair.stable.errors, 0);
}

#[tokio::test]
async fn upstream_5xx_count_as_errors_of_their_track() {
    let (v1, v2) = (app("v1").await, app("v2").await);
    v2.set_fault(Some(1.0), None);
    let router = router(v1.local_addr(), v2.local_addr()).await;
    router.set_weight(20).await.expect("set weight");
    let answers = hit(&router, 100).await;
    assert_eq!(answers.iter().filter(|a| a.status == 500).count(), 20);
    let c = stats_settled(&router, Track::Canary, 20).await;
    assert_eq!((c.requests, c.errors), (20, 20));
    let s = stats_settled(&router, Track::Stable, 80).await;
    assert_eq!((s.requests, s.errors), (80, 0));
}

#[tokio::test]
async fn method_path_query_headers_and_body_are_forwarded() {
    let (v1, v2) = (app("v1").await, app("v2").await);
    // A router whose stable upstream is v1's admin listener, so a POST with a
    // query and a form body has somewhere to land.
    let admin = v1.admin_addr().expect("admin listener");
    let to_admin = router(admin, v2.local_addr()).await;
    let c = client();
    let base = format!("http://{}", to_admin.local_addr());
    let r = c
        .post(format!("{base}/fault?latency_ms=0"))
        .form(&[("error_rate", "1")])
        .send()
        .await
        .expect("POST /fault");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "error_rate=1 latency_ms=0\n");
    assert_eq!(v1.fault(), (1.0, 0));
    assert_eq!(v2.fault(), (0.0, 0));

    // The content type is forwarded: the app refuses JSON.
    let r = c
        .post(format!("{base}/fault"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST /fault");
    assert_eq!(r.status(), 415);

    // In front of the service ports, /fault is not there: clients of the
    // router cannot change how the services behave.
    let router = router(v1.local_addr(), v2.local_addr()).await;
    router.set_weight(50).await.expect("set weight");
    let base = format!("http://{}", router.local_addr());
    for _ in 0..4 {
        let r = c
            .post(format!("{base}/fault?error_rate=0"))
            .form(&[("latency_ms", "500")])
            .send()
            .await
            .expect("POST /fault");
        assert_eq!(r.status(), 404);
    }
    assert_eq!((v1.fault(), v2.fault()), ((1.0, 0), (0.0, 0)));

    // The upstream's own status, headers and body come back as they are.
    let r = c
        .get(format!("{base}/missing?x=1"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 404);
    assert!(r.text().await.expect("body").starts_with("not found"));
    router.set_weight(0).await.expect("set weight");
    let r = c.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["x-version"], "v1");
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let (v1, v2) = (app("v1").await, app("v2").await);
    let router = router(v1.local_addr(), v2.local_addr()).await;
    let addr = router.local_addr();
    assert_eq!(hit(&router, 1).await[0].status, 200);
    router.shutdown();
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
async fn dropping_the_router_stops_it() {
    let (v1, v2) = (app("v1").await, app("v2").await);
    let router = router(v1.local_addr(), v2.local_addr()).await;
    let addr = router.local_addr();
    assert_eq!(hit(&router, 1).await[0].status, 200);
    drop(router);
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "still accepting on {addr} after the router was dropped"
    );
}
