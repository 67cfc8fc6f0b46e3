//! Steady generated traffic for the demo: `GET /` at an even pace, with a
//! bounded number of requests in flight, counted by outcome.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// More requests than this in flight means the target is stalling; further
/// ticks are skipped rather than piling up connections.
const MAX_IN_FLIGHT: usize = 64;
/// A request not answered by then counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests sent and answers received so far, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadCounts {
    pub sent: u64,
    /// 1xx, 2xx and 3xx answers.
    pub ok: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// No answer: connection refused or reset, or the timeout.
    pub failed: u64,
    /// Not sent because too many requests were already in flight.
    pub skipped: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

/// Sends about `rps` GET / requests a second to `target` until dropped.
pub struct LoadGenerator {
    target: SocketAddr,
    counters: Arc<Counters>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl LoadGenerator {
    /// Starts sending at once; must be called inside a tokio runtime.
    /// `rps` 0 sends nothing.
    pub fn start(target: SocketAddr, rps: u32) -> LoadGenerator {
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(target, rps, counters.clone(), stop.clone()));
        LoadGenerator {
            target,
            counters,
            stop,
            task,
        }
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Requests sent and answers received so far, by outcome.
    pub fn counts(&self) -> LoadCounts {
        let c = &self.counters;
        LoadCounts {
            sent: c.sent.load(Ordering::Relaxed),
            ok: c.ok.load(Ordering::Relaxed),
            client_errors: c.client_errors.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
        }
    }

    /// Stops sending; requests in flight are abandoned.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        self.stop.cancel();
        // Aborting drops the task's JoinSet, which aborts requests in flight.
        self.task.abort();
    }
}

async fn run(target: SocketAddr, rps: u32, counters: Arc<Counters>, stop: CancellationToken) {
    let uri: Uri = match format!("http://{target}/").parse() {
        Ok(uri) => uri,
        Err(e) => {
            tracing::warn!("load generator: no URI for {target}: {e}");
            return;
        }
    };
    if rps == 0 {
        return;
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut in_flight = JoinSet::new();

    let rps = f64::from(rps);
    // After a stall (a suspended process, a busy machine) catch up at most
    // a tenth of a second's worth at once instead of a burst of the backlog.
    let max_backlog = (rps / 10.0).ceil() as u64 + 1;
    let start = Instant::now();
    let mut issued: u64 = 0;
    loop {
        let due = (start.elapsed().as_secs_f64() * rps) as u64 + 1;
        if due > issued + max_backlog {
            issued = due - max_backlog;
        }
        while issued < due {
            issued += 1;
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                counters.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let request = client.get(uri.clone());
            let counters = counters.clone();
            in_flight.spawn(async move {
                let answered = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let response = request.await?;
                    let status = response.status();
                    // Reading the body whole lets the connection be reused.
                    response.into_body().collect().await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(status)
                })
                .await;
                let counter = match answered {
                    Ok(Ok(status)) if status.is_server_error() => &counters.server_errors,
                    Ok(Ok(status)) if status.is_client_error() => &counters.client_errors,
                    Ok(Ok(_)) => &counters.ok,
                    Ok(Err(_)) | Err(_) => &counters.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
        }
        while in_flight.try_join_next().is_some() {}
        let next = start + Duration::from_secs_f64(issued as f64 / rps);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_requests_count_as_failed_and_stop_ends_the_task() {
        // A port that was free a moment ago: connections are refused.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let load = LoadGenerator::start(dead, 200);
        let mut counts = load.counts();
        for _ in 0..500 {
            counts = load.counts();
            if counts.failed >= 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(counts.failed >= 5, "{counts:?}");
        assert_eq!(counts.ok + counts.server_errors + counts.client_errors, 0);

        // `stop` ends the task: nothing is sent after it has returned.
        let counters = load.counters.clone();
        let mut load = load;
        load.stop();
        tokio::time::timeout(Duration::from_secs(30), &mut load.task)
            .await
            .expect("the task ends after stop")
            .expect("the task did not panic");
        let sent = counters.sent.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(counters.sent.load(Ordering::Relaxed), sent);
    }

    #[tokio::test]
    async fn dropping_ends_the_task_and_its_requests() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let load = LoadGenerator::start(dead, 500);
        let counters = load.counters.clone();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(load);
        // The task and every request task hold the counters; once they are
        // all gone, only this reference is left.
        for _ in 0..3000 {
            if Arc::strong_count(&counters) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(Arc::strong_count(&counters), 1);
    }

    #[tokio::test]
    async fn zero_rate_sends_nothing() {
        let load = LoadGenerator::start("127.0.0.1:9".parse().expect("addr"), 0);
        tokio::task::yield_now().await;
        assert_eq!(load.counts(), LoadCounts::default());
    }
}
