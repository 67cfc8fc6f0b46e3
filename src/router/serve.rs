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

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

/// How long a client gets to send a whole request header: from accept for
/// the first request of a connection, from the first byte for later ones.
/// Progress does not extend it, so a client trickling a byte at a time
/// ("slowloris") is closed at this point however steadily it sends.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a kept-alive connection may wait for the next request's first
/// byte after a response before it is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors left out of the connection cap for the rest of the
/// process: standard streams, the runtime's epoll and event descriptors, the
/// listeners, the journal and lock files, check commands' pipes, notification
/// and metric-source sockets.
pub const DEFAULT_RESERVED_FDS: u64 = 64;
/// File descriptors one client connection may cost: its own socket and one
/// to the upstream (in flight or pooled for reuse).
pub const DEFAULT_FDS_PER_CONNECTION: u64 = 2;
/// The cap when the descriptor limit cannot be read or is unlimited.
const UNLIMITED_CAP: usize = 1 << 20;
/// How long a stopping server lets requests in flight finish.
const DRAIN: Duration = Duration::from_secs(2);
/// Sent, when the socket takes it at once, to a connection refused at the cap.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 42\r\n\
connection: close\r\n\r\n\
too many connections open, try again soon\n";

/// Timeouts and the connection cap of one server; [`Default`] gives the
/// `DEFAULT_*` values and a cap derived from the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Most client connections open at once; `None` derives it from the soft
    /// `RLIMIT_NOFILE` read when the server starts (see [`Self::cap`]).
    pub max_connections: Option<usize>,
    /// See [`DEFAULT_RESERVED_FDS`].
    pub reserved_fds: u64,
    /// See [`DEFAULT_FDS_PER_CONNECTION`]; 3 when the upstreams run in the
    /// same process (their end of each upstream connection counts too).
    pub fds_per_connection: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
            reserved_fds: DEFAULT_RESERVED_FDS,
            fds_per_connection: DEFAULT_FDS_PER_CONNECTION,
        }
    }
}

impl ConnectionLimits {
    /// The cap in force: `max_connections` when set, else
    /// `(RLIMIT_NOFILE − reserved_fds) / fds_per_connection`; at least 1.
    pub fn cap(&self) -> usize {
        match self.max_connections {
            Some(n) => n.max(1),
            None => cap_for(fd_limit(), self.reserved_fds, self.fds_per_connection),
        }
    }
}

/// This process's soft limit on open file descriptors (`getrlimit(2)`,
/// `RLIMIT_NOFILE`); `None` when unlimited or unreadable.
pub fn fd_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _hard)) if soft != RLIM_INFINITY => Some(soft),
        _ => None,
    }
}

fn cap_for(limit: Option<u64>, reserved: u64, per_connection: u64) -> usize {
    let Some(limit) = limit else {
        return UNLIMITED_CAP;
    };
    let cap = limit.saturating_sub(reserved) / per_connection.max(1);
    usize::try_from(cap)
        .unwrap_or(UNLIMITED_CAP)
        .clamp(1, UNLIMITED_CAP)
}

/// A server's client connections: the counts since it started and, for the
/// open ones, what they are doing now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionStats {
    /// The connection cap in force.
    pub max_connections: u64,
    /// Connections open now (the sum of the next three).
    pub open: u64,
    /// Open connections sending a request header now.
    pub reading_header: u64,
    /// Open connections whose request is being served now.
    pub serving: u64,
    /// Open connections waiting in keep-alive for their next request.
    pub idle: u64,
    /// Connections admitted (refused ones are not counted here).
    pub accepted: u64,
    /// New connections refused (503, closed) at the cap because every open
    /// connection was serving a request.
    pub rejected_at_cap: u64,
    /// Connections closed at the cap to admit a new one: each the one that
    /// had been reading a request header longest, else idle longest.
    pub evicted_at_cap: u64,
    /// Connections closed by the header-read timeout.
    pub header_read_timeouts: u64,
    /// Connections closed by the idle keep-alive timeout.
    pub idle_timeouts: u64,
}

/// The open connections of one server and its counters; shared with
/// whoever reads them ([`Self::snapshot`]).
pub struct ConnectionCounters {
    cap: usize,
    epoch: Instant,
    slots: Mutex<Slots>,
    accepted: AtomicU64,
    rejected_at_cap: AtomicU64,
    evicted_at_cap: AtomicU64,
    header_read_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
}

impl std::fmt::Debug for ConnectionCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

#[derive(Default)]
struct Slots {
    next: u64,
    open: HashMap<u64, Arc<Conn>>,
}

impl ConnectionCounters {
    fn new(cap: usize) -> Self {
        ConnectionCounters {
            cap,
            epoch: Instant::now(),
            slots: Mutex::new(Slots::default()),
            accepted: AtomicU64::new(0),
            rejected_at_cap: AtomicU64::new(0),
            evicted_at_cap: AtomicU64::new(0),
            header_read_timeouts: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
        }
    }

    /// The counts now. The open connections are counted under the lock that
    /// admits new ones (a pass over them: for periodic reads, not per
    /// request); the totals are read each on its own.
    pub fn snapshot(&self) -> ConnectionStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut stats = ConnectionStats {
            max_connections: self.cap as u64,
            accepted: get(&self.accepted),
            rejected_at_cap: get(&self.rejected_at_cap),
            evicted_at_cap: get(&self.evicted_at_cap),
            header_read_timeouts: get(&self.header_read_timeouts),
            idle_timeouts: get(&self.idle_timeouts),
            ..ConnectionStats::default()
        };
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for conn in slots.open.values() {
            match conn.phase().0 {
                HEAD => stats.reading_header += 1,
                IDLE => stats.idle += 1,
                _ => stats.serving += 1,
            }
        }
        stats.open = slots.open.len() as u64;
        stats
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A slot for a new connection. At the cap, the connection that has been
    /// reading a request header longest is closed to make room, else the one
    /// idle longest; `None` when every open connection is serving a request.
    fn admit(&self, stop: &CancellationToken) -> Option<(u64, Arc<Conn>)> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.open.len() >= self.cap {
            // Header readers first: a client that is done with a request
            // and keeps its connection for the next is more likely a real one.
            let victim = slots
                .open
                .iter()
                .filter_map(|(id, c)| {
                    let (phase, since) = c.phase();
                    (phase != BUSY).then_some((phase != HEAD, since, *id))
                })
                .min();
            let Some((_, _, id)) = victim else {
                Self::bump(&self.rejected_at_cap);
                return None;
            };
            if let Some(c) = slots.open.remove(&id) {
                c.close.cancel();
            }
            Self::bump(&self.evicted_at_cap);
        }
        let id = slots.next;
        slots.next += 1;
        let conn = Arc::new(Conn {
            state: AtomicU64::new(0),
            epoch: self.epoch,
            close: stop.child_token(),
        });
        conn.enter(HEAD);
        slots.open.insert(id, conn.clone());
        Self::bump(&self.accepted);
        Some((id, conn))
    }

    fn release(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.open.remove(&id);
    }
}

const HEAD: u64 = 0;
const IDLE: u64 = 1;
const BUSY: u64 = 2;

/// One connection's phase and when it began, packed in one word so both are
/// read together: `since_ms << 2 | phase`, ms counted from the server's epoch.
struct Conn {
    state: AtomicU64,
    epoch: Instant,
    /// Cancelled to close the connection at once (eviction), or by the
    /// server's stop, its parent.
    close: CancellationToken,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX >> 2)
    }

    fn enter(&self, phase: u64) {
        self.enter_at(phase, self.now_ms());
    }

    fn enter_at(&self, phase: u64, now_ms: u64) {
        self.state.store((now_ms << 2) | phase, Ordering::Release);
    }

    fn phase(&self) -> (u64, u64) {
        let s = self.state.load(Ordering::Acquire);
        (s & 3, s >> 2)
    }

    /// Bytes arrived: an idle connection starts reading a request header.
    fn on_bytes(&self) {
        let s = self.state.load(Ordering::Relaxed);
        if s & 3 == IDLE {
            // A lost race only means the service already marked it busy.
            let _ = self.state.compare_exchange(
                s,
                (self.now_ms() << 2) | HEAD,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// When to look again, or `Err(phase)` when that phase's timeout has passed.
    fn check(&self, limits: &ConnectionLimits) -> Result<Instant, u64> {
        match self.deadline_ms(limits, self.now_ms())? {
            Some(ms) => Ok(self.epoch + Duration::from_millis(ms)),
            // Served requests have their own limits (the upstream timeout).
            None => {
                let next = limits.header_read_timeout.min(limits.idle_timeout);
                Ok(Instant::now() + next.max(Duration::from_millis(100)))
            }
        }
    }

    /// The current phase's deadline in ms from the epoch (`None`: busy, no
    /// deadline), or `Err(phase)` when it has passed at `now_ms`.
    fn deadline_ms(&self, limits: &ConnectionLimits, now_ms: u64) -> Result<Option<u64>, u64> {
        let (phase, since) = self.phase();
        let limit = match phase {
            HEAD => limits.header_read_timeout,
            IDLE => limits.idle_timeout,
            _ => return Ok(None),
        };
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX >> 3);
        let deadline = since.saturating_add(limit_ms);
        if now_ms >= deadline {
            Err(phase)
        } else {
            Ok(Some(deadline))
        }
    }
}

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
