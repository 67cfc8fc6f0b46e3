//! The built-in router: an HTTP/1.1 reverse proxy that splits requests between
//! the stable and the canary upstream by weight and counts each track's
//! requests, 5xx and latency into [`TrafficStats`]. Client connections are
//! served by [`super::serve`], within its timeouts and connection cap.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::serve::{spawn_http1, BoxError, ConnectionCounters, ConnectionLimits, ConnectionStats};
use super::{Router, RouterError};
use crate::domain::Track;
use crate::metrics::TrafficStats;

/// Response header naming the track that answered.
pub const TRACK_HEADER: &str = "x-cutover-track";

/// An upstream that has not answered by then gets a 504 in its name.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Loopback or a LAN answers a connect at once; anything slower is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pooled upstream connections unused this long are closed.
const UPSTREAM_POOL_IDLE: Duration = Duration::from_secs(30);

/// The weight and the choice of track per request.
///
/// The choice is deterministic: within every 100 consecutive requests exactly
/// `weight` go to the canary, spread evenly, so the split is exact over a few
/// hundred requests instead of only on average.
struct Split {
    weight: AtomicU8,
    seq: AtomicU64,
}

impl Split {
    fn new(weight: u8) -> Self {
        Split {
            weight: AtomicU8::new(weight),
            seq: AtomicU64::new(0),
        }
    }

    fn pick(&self) -> Track {
        let weight = u64::from(self.weight.load(Ordering::Acquire));
        let k = self.seq.fetch_add(1, Ordering::Relaxed) % 100;
        // Request k is the canary's when it crosses the next whole multiple of
        // 100/weight: an even spread, weight times per hundred.
        if (k + 1) * weight / 100 > k * weight / 100 {
            Track::Canary
        } else {
            Track::Stable
        }
    }
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Shared by every connection of one router.
struct Proxy {
    client: Client<HttpConnector, Incoming>,
    stable: SocketAddr,
    canary: SocketAddr,
    split: Split,
    stats: Arc<TrafficStats>,
}

impl Proxy {
    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<RecordedBody>, Infallible> {
        let start = Instant::now();
        let track = self.split.pick();
        let upstream = match track {
            Track::Stable => self.stable,
            Track::Canary => self.canary,
        };
        let record = Record {
            stats: self.stats.clone(),
            track,
            status: 0,
            start,
        };
        let response = match self.forward(req, upstream, peer).await {
            Ok(response) => response,
            Err((status, why)) => {
                tracing::debug!("{track:?} upstream {upstream}: {why}");
                let text = format!("{} from the {track:?} upstream {upstream}: {why}\n", status);
                let mut response = Response::new(
                    Full::new(Bytes::from(text))
                        .map_err(|never| match never {})
                        .boxed(),
                );
                *response.status_mut() = status;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
        };
        let (mut parts, body) = response.into_parts();
        parts.headers.insert(
            HeaderName::from_static(TRACK_HEADER),
            HeaderValue::from_static(match track {
                Track::Stable => "stable",
                Track::Canary => "canary",
            }),
        );
        let record = Record {
            status: parts.status.as_u16(),
            ..record
        };
        Ok(Response::from_parts(
            parts,
            RecordedBody {
                inner: body,
                record: Some(record),
            },
        ))
    }

    /// Sends `req` to `upstream`; an error is the status to answer instead.
    async fn forward(
        &self,
        req: Request<Incoming>,
        upstream: SocketAddr,
        peer: SocketAddr,
    ) -> Result<Response<BoxBody<Bytes, BoxError>>, (StatusCode, String)> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(upstream.to_string())
            .path_and_query(path)
            .build()
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad request target: {e}")))?;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
            parts
                .headers
                .append(HeaderName::from_static("x-forwarded-for"), v);
        }
        let sent = tokio::time::timeout(
            UPSTREAM_TIMEOUT,
            self.client.request(Request::from_parts(parts, body)),
        )
        .await;
        match sent {
            Err(_) => Err((
                StatusCode::GATEWAY_TIMEOUT,
                format!("no answer within {}s", UPSTREAM_TIMEOUT.as_secs()),
            )),
            Ok(Err(e)) => Err((StatusCode::BAD_GATEWAY, error_chain(&e))),
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(
                    parts,
                    body.map_err(BoxError::from).boxed(),
                ))
            }
        }
    }
}

/// An error and its causes on one line ("client error (Connect): ... refused").
fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What to record when a response is over.
struct Record {
    stats: Arc<TrafficStats>,
    track: Track,
    status: u16,
    start: Instant,
}

/// A response body that records its request when it has been sent whole,
/// failed, or been dropped (the client went away), so latency covers the body.
struct RecordedBody {
    inner: BoxBody<Bytes, BoxError>,
    record: Option<Record>,
}

impl RecordedBody {
    fn finish(&mut self, failed: bool) {
        if let Some(r) = self.record.take() {
            // A body cut off upstream is the upstream's failure.
            let status = if failed { 502 } else { r.status };
            r.stats.record(r.track, status, r.start.elapsed());
        }
    }
}

impl Drop for RecordedBody {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl Body for RecordedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(false),
            Poll::Ready(Some(Err(_))) => self.finish(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The built-in router. Stops when dropped or on [`BuiltinRouter::shutdown`].
pub struct BuiltinRouter {
    stats: Arc<TrafficStats>,
    connections: Arc<ConnectionCounters>,
    local_addr: SocketAddr,
    proxy: Arc<Proxy>,
    stop: CancellationToken,
}

impl BuiltinRouter {
    /// Binds `listen` (port 0 picks a free port) and starts proxying to `stable`
    /// and `canary` with weight 0, within the default [`ConnectionLimits`].
    /// Counts are kept over at least `window`.
    pub async fn start(
        listen: SocketAddr,
        stable: SocketAddr,
        canary: SocketAddr,
        window: Duration,
    ) -> std::io::Result<Self> {
        Self::start_with(listen, stable, canary, window, ConnectionLimits::default()).await
    }

    /// [`Self::start`] with other timeouts or connection cap. The cap is
    /// fixed here, from `limits` and the descriptor limit at this moment.
    pub async fn start_with(
        listen: SocketAddr,
        stable: SocketAddr,
        canary: SocketAddr,
        window: Duration,
        limits: ConnectionLimits,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let stats = Arc::new(TrafficStats::new(window));

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(UPSTREAM_POOL_IDLE)
            .build(connector);

        let proxy = Arc::new(Proxy {
            client,
            stable,
            canary,
            split: Split::new(0),
            stats: stats.clone(),
        });
        let stop = CancellationToken::new();
        let shared = proxy.clone();
        let connections = spawn_http1(
            listener,
            move |peer| {
                let proxy = shared.clone();
                service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { proxy.handle(req, peer).await }
                })
            },
            limits,
            stop.clone(),
        );
        tracing::debug!(
            "builtin router on {local_addr}: stable {stable}, canary {canary}, at most {} connections",
            connections.snapshot().max_connections
        );
        Ok(BuiltinRouter {
            stats,
            connections,
            local_addr,
            proxy,
            stop,
        })
    }

    /// Where clients connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The upstream of each track.
    pub fn upstreams(&self) -> (SocketAddr, SocketAddr) {
        (self.proxy.stable, self.proxy.canary)
    }

    /// Requests, 5xx and latency per track.
    pub fn stats(&self) -> Arc<TrafficStats> {
        self.stats.clone()
    }

    /// The client connections' counters (cap, open, refused, evicted, closed
    /// by each timeout), live.
    pub fn connections(&self) -> Arc<ConnectionCounters> {
        self.connections.clone()
    }

    /// The client connections' counts now.
    pub fn connection_stats(&self) -> ConnectionStats {
        self.connections.snapshot()
    }

    /// Stops accepting connections; idle ones close at once, requests in
    /// flight get a short grace period.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for BuiltinRouter {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait]
impl Router for BuiltinRouter {
    fn kind(&self) -> &'static str {
        "builtin"
    }

    async fn set_weight(&self, weight: u8) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(RouterError::new(
                "builtin",
                format!("weight {weight} is out of range: it is a percent, 0 to 100"),
            ));
        }
        // The next request's pick loads it: applied once stored.
        self.proxy.split.weight.store(weight, Ordering::Release);
        Ok(())
    }

    async fn current_weight(&self) -> Result<u8, RouterError> {
        Ok(self.proxy.split.weight.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary_picks(split: &Split, n: usize) -> usize {
        (0..n).filter(|_| split.pick() == Track::Canary).count()
    }

    #[test]
    fn every_hundred_requests_hold_exactly_the_weight() {
        for weight in 0..=100u8 {
            let split = Split::new(weight);
            assert_eq!(
                canary_picks(&split, 100),
                usize::from(weight),
                "weight {weight}"
            );
            assert_eq!(
                canary_picks(&split, 300),
                3 * usize::from(weight),
                "weight {weight}"
            );
        }
    }

    #[test]
    fn any_run_of_requests_is_within_one_of_the_weight() {
        // Starting anywhere in the sequence, n requests carry n*w/100 canary
        // picks give or take one: the spread is even, not bunched.
        for weight in [1u8, 5, 25, 33, 50, 67, 99] {
            let split = Split::new(weight);
            let _ = canary_picks(&split, 37);
            for n in [10usize, 40, 170] {
                let want = n as f64 * f64::from(weight) / 100.0;
                let got = canary_picks(&split, n) as f64;
                assert!(
                    (got - want).abs() <= 1.0,
                    "weight {weight}, n {n}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn a_new_weight_holds_from_the_next_pick() {
        let split = Split::new(100);
        assert_eq!(split.pick(), Track::Canary);
        split.weight.store(0, Ordering::Release);
        assert_eq!(canary_picks(&split, 1000), 0);
        split.weight.store(100, Ordering::Release);
        assert_eq!(canary_picks(&split, 1000), 1000);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_end_to_end_ones_kept() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-trace-hop"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-trace-hop", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-request-id"]);
    }
}
