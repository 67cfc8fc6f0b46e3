//! The built-in router's connection bookkeeping: the limits (timeouts, a cap
//! below the process's file-descriptor limit), each open connection's phase
//! (`head`, `busy`, `idle`) and since when, the counters the journal reports,
//! and who gives way at the cap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
pub(super) const UNLIMITED_CAP: usize = 1 << 20;
/// How long a stopping server lets requests in flight finish.
pub(super) const DRAIN: Duration = Duration::from_secs(2);
/// Sent, when the socket takes it at once, to a connection refused at the cap.
pub(super) const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
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

pub(super) fn cap_for(limit: Option<u64>, reserved: u64, per_connection: u64) -> usize {
    let Some(limit) = limit else {
        return UNLIMITED_CAP;
    };
    let cap = limit.saturating_sub(reserved) / per_connection.max(1);
    usize::try_from(cap)
        .unwrap_or(UNLIMITED_CAP)
        .clamp(1, UNLIMITED_CAP)
}

pub use crate::domain::ConnectionStats;

/// The open connections of one server and its counters; shared with
/// whoever reads them ([`Self::snapshot`]).
pub struct ConnectionCounters {
    pub(super) cap: usize,
    pub(super) epoch: Instant,
    pub(super) slots: Mutex<Slots>,
    pub(super) accepted: AtomicU64,
    pub(super) rejected_at_cap: AtomicU64,
    pub(super) evicted_at_cap: AtomicU64,
    pub(super) header_read_timeouts: AtomicU64,
    pub(super) idle_timeouts: AtomicU64,
}

impl std::fmt::Debug for ConnectionCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

#[derive(Default)]
pub(super) struct Slots {
    pub(super) next: u64,
    pub(super) open: HashMap<u64, Arc<Conn>>,
}

impl ConnectionCounters {
    pub(super) fn new(cap: usize) -> Self {
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

    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A slot for a new connection. At the cap, the connection that has been
    /// reading a request header longest is closed to make room, else the one
    /// idle longest; `None` when every open connection is serving a request.
    pub(super) fn admit(&self, stop: &CancellationToken) -> Option<(u64, Arc<Conn>)> {
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

    pub(super) fn release(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.open.remove(&id);
    }
}

pub(super) const HEAD: u64 = 0;
pub(super) const IDLE: u64 = 1;
pub(super) const BUSY: u64 = 2;

/// One connection's phase and when it began, packed in one word so both are
/// read together: `since_ms << 2 | phase`, ms counted from the server's epoch.
pub(super) struct Conn {
    pub(super) state: AtomicU64,
    pub(super) epoch: Instant,
    /// Cancelled to close the connection at once (eviction), or by the
    /// server's stop, its parent.
    pub(super) close: CancellationToken,
}

impl Conn {
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX >> 2)
    }

    pub(super) fn enter(&self, phase: u64) {
        self.enter_at(phase, self.now_ms());
    }

    pub(super) fn enter_at(&self, phase: u64, now_ms: u64) {
        self.state.store((now_ms << 2) | phase, Ordering::Release);
    }

    pub(super) fn phase(&self) -> (u64, u64) {
        let s = self.state.load(Ordering::Acquire);
        (s & 3, s >> 2)
    }

    /// Bytes arrived: an idle connection starts reading a request header.
    pub(super) fn on_bytes(&self) {
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
    pub(super) fn check(&self, limits: &ConnectionLimits) -> Result<Instant, u64> {
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
    pub(super) fn deadline_ms(
        &self,
        limits: &ConnectionLimits,
        now_ms: u64,
    ) -> Result<Option<u64>, u64> {
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
