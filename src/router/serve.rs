//! The HTTP/1.1 server loop under the built-in router and the sample service:
//! one task accepts, one task per connection, with a header-read timeout, an
//! idle keep-alive timeout and a cap on open client connections kept below
//! the process's file-descriptor limit, so slow or idle clients cannot hold
//! the descriptors that served clients need.
//!
//! Each connection is in one of three phases: reading a request header
//! (`head`), serving a request (`busy`: from the parsed header until the
//! response body is done) or waiting for the next request (`idle`). A
//! watchdog per connection closes it when `head` lasts longer than the
//! header-read timeout or `idle` longer than the idle timeout. At the cap a
//! new connection takes the place of the connection that has been in `head`
//! longest, or else in `idle` longest; when every open connection is `busy`,
//! the new one is refused with a 503 and closed. Served requests are never
//! cut.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use super::connections::{
    fd_limit, ConnectionCounters, ConnectionLimits, ConnectionStats, DEFAULT_FDS_PER_CONNECTION,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_RESERVED_FDS,
};
use super::connections::{Conn, BUSY, DRAIN, HEAD, IDLE, REFUSED};

/// Serves HTTP/1.1 on `listener` until `stop` is cancelled, within `limits`:
/// one task accepts, one task per connection. `make` builds the service of a
/// connection from the peer's address. On stop, idle connections close at
/// once and requests in flight get a short grace period. Returns the
/// server's connection counters.
pub(crate) fn spawn_http1<F, S, B>(
    listener: TcpListener,
    make: F,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> Arc<ConnectionCounters>
where
    F: Fn(SocketAddr) -> S + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let counters = Arc::new(ConnectionCounters::new(limits.cap()));
    let registry = counters.clone();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors despite the cap (something else
                        // in the process holds them): back off rather than
                        // spin, and keep serving the open connections.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some((id, conn)) = registry.admit(&stop) else {
                // Whatever the socket takes without waiting; then closed.
                let _ = stream.try_write(REFUSED);
                continue;
            };
            // Small request/response pairs: do not wait to fill a segment.
            let _ = stream.set_nodelay(true);
            let service = Tracked {
                inner: make(peer),
                conn: conn.clone(),
            };
            tokio::spawn(serve_connection(
                stream,
                service,
                conn,
                id,
                registry.clone(),
                limits,
                stop.clone(),
            ));
        }
    });
    counters
}

async fn serve_connection<S, B>(
    stream: TcpStream,
    service: Tracked<S>,
    conn: Arc<Conn>,
    id: u64,
    registry: Arc<ConnectionCounters>,
    limits: ConnectionLimits,
    stop: CancellationToken,
) where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    let io = TokioIo::new(Watched {
        io: stream,
        conn: conn.clone(),
    });
    // The timeouts are the watchdog's below: hyper's own header timer also
    // runs while a kept-alive connection waits, which is the idle timeout's.
    let http = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(http);
    let first = conn.check(&limits).unwrap_or_else(|_| Instant::now());
    let watchdog = tokio::time::sleep_until(first);
    tokio::pin!(watchdog);
    let end = loop {
        tokio::select! {
            biased;
            _ = http.as_mut() => break End::Done,
            _ = conn.close.cancelled() => break End::Closed,
            _ = watchdog.as_mut() => match conn.check(&limits) {
                Ok(next) => watchdog.as_mut().reset(next),
                Err(phase) => break End::Expired(phase),
            },
        }
    };
    match end {
        End::Expired(HEAD) => ConnectionCounters::bump(&registry.header_read_timeouts),
        End::Expired(_) => ConnectionCounters::bump(&registry.idle_timeouts),
        End::Closed if stop.is_cancelled() => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, http).await;
        }
        // Done, or evicted (counted then): the socket closes on return.
        End::Closed | End::Done => {}
    }
    registry.release(id);
}

/// Why a connection's task ends.
enum End {
    /// The client closed, or the connection failed.
    Done,
    /// Evicted at the cap, or the server stops.
    Closed,
    /// The timeout of this phase passed.
    Expired(u64),
}

/// The client socket, telling its connection when bytes arrive.
struct Watched {
    io: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.on_bytes();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Marks its connection busy from the parsed request header until the
/// response body is done.
struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

/// Puts its connection back to idle when dropped.
struct BusyGuard(Arc<Conn>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.enter(IDLE);
    }
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.conn.state.store(BUSY, Ordering::Release);
        TrackedFuture {
            inner: self.inner.call(req),
            busy: Some(BusyGuard(self.conn.clone())),
        }
    }
}

pin_project! {
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        busy: Option<BusyGuard>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx));
        let busy = this.busy.take();
        Poll::Ready(response.map(|r| r.map(|inner| TrackedBody { inner, busy })))
    }
}

pin_project! {
    /// A response body that ends its request's busy phase when it is done.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        busy: Option<BusyGuard>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            this.busy.take();
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

#[cfg(test)]
mod tests {
    use super::super::connections::{cap_for, UNLIMITED_CAP};
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_and_counts_upstream_sockets() {
        assert_eq!(cap_for(Some(1024), 64, 2), 480);
        assert_eq!(cap_for(Some(256), 64, 2), 96);
        assert_eq!(cap_for(Some(256), 64, 3), 64);
        // A limit below the reserve still serves one connection.
        assert_eq!(cap_for(Some(32), 64, 2), 1);
        assert_eq!(cap_for(None, 64, 2), UNLIMITED_CAP);
        assert_eq!(cap_for(Some(1000), 0, 0), 1000);
        let fixed = ConnectionLimits {
            max_connections: Some(7),
            ..ConnectionLimits::default()
        };
        assert_eq!(fixed.cap(), 7);
    }

    #[test]
    fn the_refusal_is_a_whole_http_response() {
        let text = std::str::from_utf8(REFUSED).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        assert_eq!(length, body.len());
        assert!(head.starts_with("HTTP/1.1 503 "));
    }

    fn registry(cap: usize) -> ConnectionCounters {
        ConnectionCounters::new(cap)
    }

    #[test]
    fn at_the_cap_the_longest_waiting_unserved_connection_makes_room() {
        let stop = CancellationToken::new();
        let r = registry(3);
        let (_, a) = r.admit(&stop).expect("a");
        let (_, b) = r.admit(&stop).expect("b");
        let (_, c) = r.admit(&stop).expect("c");
        a.enter_at(BUSY, 0);
        c.enter_at(IDLE, 5);
        b.enter_at(HEAD, 10);
        // a is served; b is reading a header, c (idle longer) only waits.
        let (_, d) = r.admit(&stop).expect("d evicts b");
        assert!(b.close.is_cancelled());
        assert!(!a.close.is_cancelled() && !c.close.is_cancelled());
        // Everyone busy: the next one is refused, nobody is closed.
        for conn in [&c, &d] {
            conn.enter_at(BUSY, 30);
        }
        assert!(r.admit(&stop).is_none());
        assert!(!a.close.is_cancelled() && !c.close.is_cancelled() && !d.close.is_cancelled());
        let stats = r.snapshot();
        assert_eq!(
            (stats.accepted, stats.evicted_at_cap, stats.rejected_at_cap),
            (4, 1, 1)
        );
        assert_eq!(
            (stats.open, stats.serving, stats.max_connections),
            (3, 3, 3)
        );
        // With nobody reading a header, the one idle longest makes room.
        c.enter_at(IDLE, 40);
        d.enter_at(IDLE, 35);
        let (_, e) = r.admit(&stop).expect("e evicts d");
        assert!(d.close.is_cancelled() && !c.close.is_cancelled());
        // A connection that ends frees its slot.
        r.release(0);
        assert!(r.admit(&stop).is_some());
        assert!(!c.close.is_cancelled() && !e.close.is_cancelled());
        // Stopping the server closes every connection.
        stop.cancel();
        assert!(c.close.is_cancelled() && e.close.is_cancelled());
    }

    #[test]
    fn each_phase_has_its_own_deadline() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(10_000),
            idle_timeout: Duration::from_millis(60_000),
            ..ConnectionLimits::default()
        };
        let r = registry(10);
        let (_, c) = r.admit(&CancellationToken::new()).expect("admitted");
        c.enter_at(HEAD, 1_000);
        assert_eq!(c.deadline_ms(&limits, 10_999), Ok(Some(11_000)));
        assert_eq!(c.deadline_ms(&limits, 11_000), Err(HEAD));

        // A served request has no deadline here.
        c.enter_at(BUSY, 11_000);
        assert_eq!(c.deadline_ms(&limits, 500_000), Ok(None));

        // Idle after the response, for the idle timeout.
        c.enter_at(IDLE, 500_000);
        assert_eq!(c.deadline_ms(&limits, 559_999), Ok(Some(560_000)));
        assert_eq!(c.deadline_ms(&limits, 560_000), Err(IDLE));

        // The next request's first byte starts the header clock; later bytes
        // do not extend it.
        c.on_bytes();
        let (phase, since) = c.phase();
        assert_eq!(phase, HEAD);
        c.on_bytes();
        assert_eq!(c.phase(), (HEAD, since));
        assert_eq!(
            c.deadline_ms(&limits, since + 9_999),
            Ok(Some(since + 10_000))
        );
        assert_eq!(c.deadline_ms(&limits, since + 10_000), Err(HEAD));

        // A busy connection stays busy whatever arrives (a request body).
        c.enter_at(BUSY, 0);
        c.on_bytes();
        assert_eq!(c.phase().0, BUSY);
    }
}
