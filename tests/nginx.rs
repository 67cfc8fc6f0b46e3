//! The nginx router against a real nginx on loopback: the upstream file it
//! writes is tested, reloaded and measured in real traffic.

mod common;

use std::time::Duration;

use common::*;
use cutover::check::CheckContext;
use cutover::router::nginx::{NginxConfig, NginxRouter};
use cutover::router::Router;

fn router(
    n: &Nginx,
    stable: std::net::SocketAddr,
    canary: std::net::SocketAddr,
    test: String,
) -> NginxRouter {
    NginxRouter::new(
        NginxConfig {
            upstream_file: n.upstream_file.clone(),
            upstream: "app".into(),
            stable: stable.to_string(),
            canary: canary.to_string(),
            test,
            reload: n.reload_command(),
        },
        CheckContext {
            kill_grace: Duration::from_secs(1),
            ..Default::default()
        },
    )
}

/// Answers per version over `n` requests once the reload has settled: old
/// workers may still answer the first requests with the old weights, so
/// sample again (at most 10 times) until `accept` holds; the last counts.
fn settled_counts(
    front: std::net::SocketAddr,
    n: usize,
    accept: impl Fn(&std::collections::BTreeMap<String, usize>) -> bool,
) -> std::collections::BTreeMap<String, usize> {
    let mut last = std::collections::BTreeMap::new();
    for _ in 0..10 {
        last = version_counts(front, n);
        if accept(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_written_tested_reloaded_and_measured() {
    if !have_external("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let initial = format!(
        "# cutover canary_weight=0\nupstream app {{\n    server {stable} weight=100;\n    server {canary} down;\n}}\n"
    );
    let n = Nginx::start(dir.path(), &initial);
    let r = router(&n, stable, canary, n.test_command());
    assert_eq!(r.current_weight().await.unwrap(), 0);

    r.set_weight(25).await.unwrap();
    assert_eq!(r.current_weight().await.unwrap(), 25);
    let front = n.front;
    // Reload is graceful: wait (bounded) until no answers come from old workers.
    let counts = tokio::task::spawn_blocking(move || {
        settled_counts(front, 1000, |c| {
            let v2 = c.get("v2").copied().unwrap_or(0);
            (200..=300).contains(&v2)
        })
    })
    .await
    .unwrap();
    let v2 = counts.get("v2").copied().unwrap_or(0);
    let v1 = counts.get("v1").copied().unwrap_or(0);
    assert_eq!(v1 + v2, 1000, "{counts:?}");
    assert!(
        (200..=300).contains(&v2),
        "v2 share not 25% ± 5: {counts:?}"
    );

    r.set_weight(0).await.unwrap();
    assert_eq!(r.current_weight().await.unwrap(), 0);
    let text = std::fs::read_to_string(&n.upstream_file).unwrap();
    assert!(text.contains(&format!("server {canary} down;")), "{text}");
    let counts = tokio::task::spawn_blocking(move || {
        settled_counts(front, 200, |c| c.get("v1") == Some(&200))
    })
    .await
    .unwrap();
    assert_eq!(counts.get("v1"), Some(&200), "{counts:?}");

    r.set_weight(100).await.unwrap();
    let counts = tokio::task::spawn_blocking(move || {
        settled_counts(front, 100, |c| c.get("v2") == Some(&100))
    })
    .await
    .unwrap();
    assert_eq!(counts.get("v2"), Some(&100), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_restores_the_file_and_errors() {
    if !have_external("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let initial = format!(
        "# cutover canary_weight=0\nupstream app {{\n    server {stable} weight=100;\n    server {canary} down;\n}}\n"
    );
    let n = Nginx::start(dir.path(), &initial);
    let good = router(&n, stable, canary, n.test_command());
    good.set_weight(10).await.unwrap();
    let before = std::fs::read(&n.upstream_file).unwrap();

    // The canary address nginx cannot parse makes the real `nginx -t` fail.
    let bad = NginxRouter::new(
        NginxConfig {
            upstream_file: n.upstream_file.clone(),
            upstream: "app".into(),
            stable: stable.to_string(),
            canary: "127.0.0.1:notaport".into(),
            test: n.test_command(),
            reload: n.reload_command(),
        },
        CheckContext {
            kill_grace: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let e = bad.set_weight(50).await.unwrap_err().to_string();
    assert!(e.contains("rejected the upstream for 50%"), "{e}");
    assert!(e.contains("not reloaded"), "{e}");
    assert!(e.contains("invalid port") || e.contains("emerg"), "{e}");
    assert!(e.contains("restored"), "{e}");
    assert_eq!(std::fs::read(&n.upstream_file).unwrap(), before);
    assert_eq!(good.current_weight().await.unwrap(), 10);
    // nginx still serves, with the weights it had.
    let front = n.front;
    let counts = tokio::task::spawn_blocking(move || version_counts(front, 50))
        .await
        .unwrap();
    assert_eq!(counts.get("error"), None, "{counts:?}");
}
