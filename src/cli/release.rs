//! The release lock a run holds beside its state dir's file lock: with
//! `[lock] kind = "etcd"`, a lease in etcd taken before the engine starts,
//! checked by the engine before every router write (its fence), watched so
//! that its loss stops the run at once, and released when the run ends.

use std::time::Duration;

use crate::config::{LockPlan, Plan};
use crate::domain::Operator;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Command, Commands, Fence, Snapshot};
use crate::lease::{holder_here, EtcdLease, HeldLease, LeaseError, LeaseOptions, LeaseState};

/// Longest wait for etcd to record a clean release when the run ends (it
/// expires after its TTL otherwise).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The etcd release lease this run holds.
pub(super) struct ReleaseLock {
    lease: HeldLease,
}

/// How much longer than usual a detached engine may take to start: the time
/// it may wait for a held lease.
pub(super) fn start_wait(plan: &Plan) -> Duration {
    match &plan.lock {
        LockPlan::Etcd(e) => e.wait + e.ttl,
        LockPlan::File => Duration::ZERO,
    }
}

/// Takes the plan's release lease for `operator`; `None` with the file lock
/// (the state dir's lock is all it needs). With `wait`, a held lease is
/// waited for (released, or expired after a crash) up to that long.
///
/// # Errors
/// A message naming the holder (account, host, pid, since) when another run
/// holds the lease, or saying why etcd could not be asked.
pub(super) async fn acquire(
    plan: &Plan,
    operator: &Operator,
) -> Result<Option<ReleaseLock>, String> {
    let LockPlan::Etcd(e) = &plan.lock else {
        return Ok(None);
    };
    let mut options = LeaseOptions::new(e.ttl);
    if !e.wait.is_zero() {
        options = options.wait_for(e.wait);
    }
    let holder = holder_here(&operator.to_string());
    match EtcdLease::acquire_with(&e.endpoints, &e.key, &options, holder).await {
        Ok(lease) => Ok(Some(ReleaseLock { lease })),
        Err(err @ (LeaseError::Held { .. } | LeaseError::HeldUnknown { .. })) => Err(format!(
            "another run drives this release: {err}{}",
            if e.wait.is_zero() {
                " (or set [lock] wait to wait for it)"
            } else {
                ""
            }
        )),
        Err(err) => Err(format!("cannot take the release lease: {err}")),
    }
}

impl ReleaseLock {
    /// The engine's fence: the lease's check before every router write.
    pub(super) fn fence(&self) -> Fence {
        let check = self.lease.checker();
        Fence {
            kind: "etcd".into(),
            key: self.lease.key().to_string(),
            revision: self.lease.revision(),
            holder: self.lease.holder().to_string(),
            ttl_ms: u64::try_from(self.lease.ttl().as_millis()).unwrap_or(u64::MAX),
            check: std::sync::Arc::new(move || {
                check().map_err(|e| match e {
                    LeaseError::Lost { why, .. } => why,
                    other => other.to_string(),
                })
            }),
        }
    }

    /// A line for the journal when this run took over a lease its previous
    /// holder never released (a crashed or cut-off run).
    pub(super) fn takeover_note(&self) -> Option<String> {
        self.lease.taken_over().map(|t| {
            format!(
                "took over the release lease {} from {} (fencing token {}), whose lease expired without a release: that run crashed or lost etcd",
                self.lease.key(),
                t.holder,
                t.revision
            )
        })
    }

    /// Keeps the lease for the engine: its loss (etcd unreachable for the
    /// TTL less its margin, the lease gone or its key deleted) is sent to the
    /// engine at once, which holds traffic, records why and stops; once the
    /// deployment has its outcome (or the engine is gone) the lease is
    /// released. Await the handle before the process exits.
    pub(super) fn keep(
        self,
        commands: Commands,
        mut snapshots: watch::Receiver<Snapshot>,
    ) -> JoinHandle<()> {
        let mut states = self.lease.subscribe();
        tokio::spawn(async move {
            let mut told = false;
            loop {
                let lost = match &*states.borrow_and_update() {
                    LeaseState::Lost { why } => Some(why.clone()),
                    LeaseState::Held { .. } => None,
                };
                if let (Some(why), false) = (lost, told) {
                    told = true;
                    let _ = commands.send(Command::LockLost { why }).await;
                }
                tokio::select! {
                    changed = states.changed(), if !told => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    // An error: the engine is gone.
                    _ = snapshots.wait_for(|s| s.outcome.is_some()) => break,
                }
            }
            self.release().await;
        })
    }

    /// Records a clean release in etcd (bounded); on failure the lease
    /// expires after its TTL, and the next run reports a takeover.
    pub(super) async fn release(self) {
        let key = self.lease.key().to_string();
        match tokio::time::timeout(RELEASE_TIMEOUT, self.lease.release()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(target: "cutover", "the release lease {key} was not released: {e}")
            }
            Err(_) => {
                tracing::warn!(target: "cutover", "etcd did not confirm the release of {key} in time: it expires after its TTL")
            }
        }
    }
}
