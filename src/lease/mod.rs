//! The release lease: one run of a release at a time across machines, held in
//! etcd with a TTL and keep-alive, with the lock's revision as fencing token.
//!
//! The file lock in [`crate::lock`] serialises runs on one machine only; this
//! module serialises them wherever they start, leaning on etcd's consensus
//! (see [`etcd`] for the protocol). What it owns here is backend-neutral: the
//! options, the state a run watches ([`LeaseState`]), the held handle
//! ([`HeldLease`]) with its cheap [`HeldLease::ensure_held`] check, and errors.
//!
//! # Safety margin and clock assumption
//!
//! etcd expires a lease when its leader has not renewed it for `ttl`. A
//! renewal happens on the server *after* the client sent its keep-alive, so
//! the server's expiry is at least `sent + ttl`, where `sent` is the instant
//! the last acknowledged keep-alive (or the grant) left this process. This
//! holder counts the lease as held only until `sent + ttl − margin` and then
//! turns [`LeaseState::Lost`], for good. The margin must cover:
//! - a write in flight: a caller checks [`HeldLease::ensure_held`] and then
//!   writes to a router; that write must land before the server could expire
//!   the lease, so the margin should exceed the longest router write;
//! - the difference in clock *rates* between this machine and etcd's leader
//!   over one TTL (NTP-disciplined clocks: well under 1 ms/s);
//! - this process being paused (scheduling, swap) between check and write.
//!
//! Only rates matter, not wall-clock offsets: the local deadline is measured
//! on `CLOCK_BOOTTIME` (Linux), a monotonic clock that keeps counting while the
//! machine is suspended, so a laptop that sleeps through its TTL wakes up
//! Lost. (Rust's `Instant` stops during suspend; it is only used for
//! [`LeaseState::Held::expires_by`], for display and timers.) A pause longer
//! than the margin *between* the check and the write cannot be excluded by
//! any lease (Kleppmann, "How to do distributed locking", 2016); the
//! revision is exposed as a fencing token so that a journal, or a store that
//! can compare tokens, can reject a stale writer.
//!
//! # Choosing the TTL
//!
//! While etcd elects a new leader (up to two election timeouts: 2 s with
//! etcd's default 1 s), keep-alives go unanswered. So `ttl − margin −
//! keep_alive_every` must exceed that, or the death of etcd's leader costs the
//! lease: with etcd's defaults use a TTL of 10 s or more (Lost 7.5 s after
//! the last acknowledged keep-alive). A longer TTL also delays the takeover
//! of a crashed run's lease by as much.
//!
//! etcd never expires a lease earlier than `ttl` after a renewal: a new
//! leader extends every lease on election, and without a leader nothing
//! expires. A TTL below etcd's minimum (about 2 s with the default 1 s
//! election timeout) is raised by etcd; the granted TTL is the one used.

pub mod etcd;
mod rpc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

pub use self::etcd::EtcdLease;
pub use crate::record::lock::Holder;

/// The holder record for this process: `operator` (the account), this host,
/// this pid, and the current UTC time (RFC 3339, seconds) as `started`.
pub fn holder_here(operator: &str) -> Holder {
    Holder {
        pid: std::process::id(),
        host: crate::record::lock::hostname(),
        operator: operator.to_string(),
        started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// How a lease is taken and kept.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseOptions {
    /// Lease time-to-live: whole seconds, at least 1 s (etcd grants in
    /// seconds and may raise it to its minimum).
    pub ttl: Duration,
    /// Subtracted from the TTL, counted from the send time of the last
    /// acknowledged keep-alive, to decide the lease is lost (see the module
    /// docs). Default: a quarter of the TTL.
    pub margin: Duration,
    /// Time between keep-alives, and how long one may wait for its answer
    /// before the stream is reopened (possibly on another member). Default:
    /// a third of the TTL, as etcd's own client does.
    pub keep_alive_every: Duration,
    /// Bound on each other etcd request (grant, transaction, watch setup,
    /// revoke). Default: 5 s.
    pub request_timeout: Duration,
    /// When set, a held lease does not refuse at once: the acquire waits up to
    /// this long for the key to be released or expire, then takes it.
    pub wait: Option<Duration>,
}

impl LeaseOptions {
    /// Defaults for `ttl` (see the fields); `ttl` must be whole seconds.
    pub fn new(ttl: Duration) -> LeaseOptions {
        LeaseOptions {
            ttl,
            margin: ttl / 4,
            keep_alive_every: ttl / 3,
            request_timeout: Duration::from_secs(5),
            wait: None,
        }
    }

    /// Waits up to `timeout` for a held lease to be released or to expire.
    pub fn wait_for(mut self, timeout: Duration) -> LeaseOptions {
        self.wait = Some(timeout);
        self
    }

    /// Sets the safety margin.
    pub fn with_margin(mut self, margin: Duration) -> LeaseOptions {
        self.margin = margin;
        self
    }

    /// Checks that a renewal can land before the lease counts as lost.
    ///
    /// # Errors
    /// [`LeaseError::Options`] when the TTL is not whole seconds ≥ 1 s, the
    /// margin or interval is zero, or `keep_alive_every + margin >= ttl`.
    pub fn validate(&self) -> Result<(), LeaseError> {
        let bad = |why: String| Err(LeaseError::Options(why));
        if self.ttl < Duration::from_secs(1) || self.ttl.subsec_nanos() != 0 {
            return bad(format!(
                "ttl {:?} must be whole seconds, at least 1 s",
                self.ttl
            ));
        }
        if self.margin.is_zero() || self.keep_alive_every.is_zero() {
            return bad("margin and keep-alive interval must be above zero".into());
        }
        if self.keep_alive_every + self.margin >= self.ttl {
            return bad(format!(
                "keep-alive every {:?} plus margin {:?} leaves no renewal within ttl {:?}",
                self.keep_alive_every, self.margin, self.ttl
            ));
        }
        Ok(())
    }
}

/// The lease as its holder sees it, published on a `watch` channel.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseState {
    /// Held: `revision` is the fencing token (the key's create revision);
    /// the lease counts as held until `expires_by` (send time of the last
    /// acknowledged keep-alive + TTL − margin) unless renewed before.
    Held { revision: i64, expires_by: Instant },
    /// Lost or released, for good: no router write may follow. `why` says
    /// which, for the journal.
    Lost { why: String },
}

/// A previous holder whose lease expired without a release, replaced by this
/// acquire: worth a journal note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Takeover {
    /// Who held it.
    pub holder: Holder,
    /// Its fencing token (the revision at which it took the key).
    pub revision: i64,
}

/// Why a lease could not be taken, or is no longer held.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another run holds the key: `holder` as it recorded itself.
    #[error("the release lease {key} is held by {holder} (revision {revision}); wait for that run to finish, or for its lease to expire if it crashed")]
    Held {
        key: String,
        holder: Holder,
        revision: i64,
    },
    /// The key is held, but its value is not a holder record.
    #[error(
        "the release lease {key} is held (revision {revision}) by an unknown holder: {value:?}"
    )]
    HeldUnknown {
        key: String,
        revision: i64,
        value: String,
    },
    /// The lease was lost or released: stop writing.
    #[error("the release lease {key} is no longer held: {why}")]
    Lost { key: String, why: String },
    /// etcd answered an operation with an error; `source.kind()` names
    /// etcd's error where it is a known one (such as `LeaseNotFound`).
    #[error("etcd {op} on {key} failed: {source}")]
    Etcd {
        op: &'static str,
        key: String,
        source: etcdv3client::Error,
    },
    /// etcd did not answer an operation in time (all members down, or no quorum).
    #[error("etcd did not answer {op} on {key} within {timeout:?} (endpoints: {endpoints}; last error: {last_error})")]
    Timeout {
        op: &'static str,
        key: String,
        timeout: Duration,
        endpoints: String,
        last_error: String,
    },
    /// The options cannot keep a lease (see [`LeaseOptions::validate`]).
    #[error("invalid lease options: {0}")]
    Options(String),
}

/// Local deadlines use `CLOCK_BOOTTIME` where it exists (it counts suspend).
#[cfg(any(target_os = "linux", target_os = "android"))]
const DEADLINE_CLOCK: nix::time::ClockId = nix::time::ClockId::CLOCK_BOOTTIME;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DEADLINE_CLOCK: nix::time::ClockId = nix::time::ClockId::CLOCK_MONOTONIC;

/// Nanoseconds on the deadline clock; `u64::MAX` (always past any deadline)
/// if the clock cannot be read, so a failure errs towards Lost.
fn clock_ns() -> u64 {
    match nix::time::clock_gettime(DEADLINE_CLOCK) {
        Ok(ts) => u64::try_from(Duration::from(ts).as_nanos()).unwrap_or(u64::MAX),
        Err(_) => u64::MAX,
    }
}

/// When a request left this process, on both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    at: Instant,
    clock_ns: u64,
}

impl Sent {
    pub(crate) fn now() -> Sent {
        Sent {
            at: Instant::now(),
            clock_ns: clock_ns(),
        }
    }
}

/// State shared by the handle, its watchers and the keep-alive task.
pub(crate) struct Shared {
    key: String,
    revision: i64,
    valid_for: Duration,
    state: watch::Sender<LeaseState>,
    /// Deadline-clock nanoseconds after which the lease counts as lost.
    deadline_ns: AtomicU64,
}

impl Shared {
    /// Held from `sent` (the grant's send time) for `ttl − margin`.
    pub(crate) fn new(
        key: &str,
        revision: i64,
        sent: Sent,
        ttl: Duration,
        margin: Duration,
    ) -> Shared {
        let valid_for = ttl.saturating_sub(margin);
        let (state, _) = watch::channel(LeaseState::Held {
            revision,
            expires_by: sent.at + valid_for,
        });
        Shared {
            key: key.to_string(),
            revision,
            valid_for,
            state,
            deadline_ns: AtomicU64::new(deadline(sent, valid_for)),
        }
    }

    /// A keep-alive sent at `sent` was acknowledged. Returns false when the
    /// lease was already lost (Lost is final) or `sent` was past the deadline.
    pub(crate) fn renewed(&self, sent: Sent) -> bool {
        let late = sent.clock_ns >= self.deadline_ns.load(Ordering::Acquire);
        if late {
            self.lose(
                "the lease ran past its safety deadline before etcd acknowledged a keep-alive",
            );
            return false;
        }
        let mut renewed = false;
        self.state.send_if_modified(|state| {
            if let LeaseState::Held { .. } = state {
                self.deadline_ns
                    .fetch_max(deadline(sent, self.valid_for), Ordering::AcqRel);
                *state = LeaseState::Held {
                    revision: self.revision,
                    expires_by: sent.at + self.valid_for,
                };
                renewed = true;
            }
            renewed
        });
        renewed
    }

    /// Turns the lease Lost (once; later reasons are ignored).
    pub(crate) fn lose(&self, why: &str) {
        self.deadline_ns.store(0, Ordering::Release);
        self.state.send_if_modified(|state| match state {
            LeaseState::Held { .. } => {
                *state = LeaseState::Lost {
                    why: why.to_string(),
                };
                true
            }
            LeaseState::Lost { .. } => false,
        });
    }

    /// When the keep-alive task must declare the lease lost, on `Instant`.
    pub(crate) fn expires_by(&self) -> Option<Instant> {
        match &*self.state.borrow() {
            LeaseState::Held { expires_by, .. } => Some(*expires_by),
            LeaseState::Lost { .. } => None,
        }
    }

    fn check(&self) -> Result<i64, LeaseError> {
        if clock_ns() < self.deadline_ns.load(Ordering::Acquire) {
            if let LeaseState::Held { revision, .. } = &*self.state.borrow() {
                return Ok(*revision);
            }
        } else {
            self.lose("no keep-alive acknowledged by etcd within the TTL minus the safety margin");
        }
        match &*self.state.borrow() {
            LeaseState::Lost { why } => Err(LeaseError::Lost {
                key: self.key.clone(),
                why: why.clone(),
            }),
            LeaseState::Held { .. } => Err(LeaseError::Lost {
                key: self.key.clone(),
                why: "past its safety deadline".into(),
            }),
        }
    }
}

fn deadline(sent: Sent, valid_for: Duration) -> u64 {
    let span = u64::try_from(valid_for.as_nanos()).unwrap_or(u64::MAX);
    sent.clock_ns.saturating_add(span)
}

/// Asks the keep-alive task to release the lease; it answers on the inner channel.
pub(crate) type ReleaseRequest = oneshot::Sender<Result<(), LeaseError>>;

/// A held release lease. Keep it for the whole run; check
/// [`HeldLease::ensure_held`] before every router write. Dropping it releases
/// the lease in the background (on the Tokio runtime that acquired it); if
/// the process dies instead, etcd expires the lease after its TTL.
pub struct HeldLease {
    shared: Arc<Shared>,
    holder: Holder,
    lease_id: i64,
    ttl: Duration,
    taken_over: Option<Takeover>,
    release: Option<oneshot::Sender<ReleaseRequest>>,
}

impl HeldLease {
    pub(crate) fn new(
        shared: Arc<Shared>,
        holder: Holder,
        lease_id: i64,
        ttl: Duration,
        taken_over: Option<Takeover>,
        release: oneshot::Sender<ReleaseRequest>,
    ) -> HeldLease {
        HeldLease {
            shared,
            holder,
            lease_id,
            ttl,
            taken_over,
            release: Some(release),
        }
    }

    /// The fencing token: the key's create revision in etcd. etcd's revision
    /// is cluster-wide and only grows, so each later holder of the key has a
    /// larger token. Journal it with every router write.
    pub fn revision(&self) -> i64 {
        self.shared.revision
    }

    /// The etcd key this lease holds.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// Who holds it (this run), as recorded in the key's value.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// etcd's lease ID (for `etcdctl lease timetolive`).
    pub fn lease_id(&self) -> i64 {
        self.lease_id
    }

    /// The TTL etcd granted (it may exceed the one asked for).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The previous holder whose lease expired unreleased, if this acquire
    /// replaced one (a crashed or cut-off run): journal it.
    pub fn taken_over(&self) -> Option<&Takeover> {
        self.taken_over.as_ref()
    }

    /// The current state (a copy).
    pub fn state(&self) -> LeaseState {
        self.shared.state.borrow().clone()
    }

    /// A receiver that wakes on every renewal and on the turn to Lost.
    pub fn subscribe(&self) -> watch::Receiver<LeaseState> {
        self.shared.state.subscribe()
    }

    /// Cheap, synchronous check to make before every router write: reads the
    /// deadline clock and the state, no I/O. Returns the fencing token.
    ///
    /// # Errors
    /// [`LeaseError::Lost`] once the safety deadline has passed (even if the
    /// keep-alive task has not run yet), etcd reported the lease gone, or the
    /// lease was released; from then on it always refuses.
    pub fn ensure_held(&self) -> Result<i64, LeaseError> {
        self.shared.check()
    }

    /// The same check as [`HeldLease::ensure_held`], as a function that
    /// shares this lease's state and outlives the borrow: for a writer that
    /// keeps it apart from the handle (the engine's fence).
    pub fn checker(&self) -> impl Fn() -> Result<i64, LeaseError> + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.check()
    }

    /// Releases the lease: records a clean release for the next holder, then
    /// revokes the lease (deleting the key) in etcd.
    ///
    /// # Errors
    /// [`LeaseError::Etcd`]/[`LeaseError::Timeout`] when etcd could not be
    /// told; the lease then expires after its TTL.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        let Some(release) = self.release.take() else {
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        let gone = || LeaseError::Lost {
            key: self.shared.key.clone(),
            why: "the keep-alive task is gone; the lease expires after its TTL".into(),
        };
        release.send(reply).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            // Nobody waits for the answer; the task releases on its runtime.
            let (reply, _) = oneshot::channel();
            let _ = release.send(reply);
        }
    }
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLease")
            .field("key", &self.shared.key)
            .field("revision", &self.shared.revision)
            .field("lease_id", &self.lease_id)
            .field("holder", &self.holder)
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(ttl_ms: u64, margin_ms: u64, sent: Sent) -> Shared {
        Shared::new(
            "/k",
            7,
            sent,
            Duration::from_millis(ttl_ms),
            Duration::from_millis(margin_ms),
        )
    }

    #[test]
    fn held_until_the_ttl_minus_the_margin_from_the_send_time() {
        let now = Sent::now();
        let s = shared(2000, 500, now);
        assert_eq!(s.check().unwrap(), 7);
        match s.state.borrow().clone() {
            LeaseState::Held { expires_by, .. } => {
                assert_eq!(expires_by, now.at + Duration::from_millis(1500))
            }
            other => panic!("{other:?}"),
        }
        // A grant sent 1.6 s ago: past TTL − margin, so refused at once.
        let old = Sent {
            at: now.at,
            clock_ns: now.clock_ns - 1_600_000_000,
        };
        let s = shared(2000, 500, old);
        assert!(matches!(s.check(), Err(LeaseError::Lost { .. })));
        assert!(matches!(s.state.borrow().clone(), LeaseState::Lost { .. }));
    }

    #[test]
    fn lost_is_final_even_if_a_renewal_is_acknowledged_later() {
        let s = shared(2000, 500, Sent::now());
        s.lose("etcd says the lease is gone");
        assert!(!s.renewed(Sent::now()));
        match s.check() {
            Err(LeaseError::Lost { why, .. }) => assert!(why.contains("gone"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_renewal_sent_past_the_deadline_does_not_revive_the_lease() {
        let now = Sent::now();
        let s = shared(
            2000,
            500,
            Sent {
                at: now.at,
                clock_ns: now.clock_ns - 1_400_000_000,
            },
        );
        let late = Sent {
            at: now.at,
            clock_ns: now.clock_ns + 200_000_000,
        };
        assert!(!s.renewed(late));
        assert!(s.check().is_err());
        // An in-time renewal moves the deadline forward.
        let s = shared(
            2000,
            500,
            Sent {
                at: now.at,
                clock_ns: now.clock_ns - 1_400_000_000,
            },
        );
        assert!(s.renewed(now));
        assert_eq!(s.check().unwrap(), 7);
    }

    #[test]
    fn options_must_leave_room_for_a_renewal() {
        assert!(LeaseOptions::new(Duration::from_secs(2)).validate().is_ok());
        assert!(LeaseOptions::new(Duration::from_millis(1500))
            .validate()
            .is_err());
        let tight = LeaseOptions::new(Duration::from_secs(3)).with_margin(Duration::from_secs(2));
        assert!(matches!(tight.validate(), Err(LeaseError::Options(_))));
    }
}
