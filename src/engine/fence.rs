//! The release lock as the engine sees it (`[lock] kind = "etcd"`): a cheap
//! check made right before every router write, and what its loss means —
//! journaled once, traffic held where it is, the run stopped as interrupted
//! (exit 5, resumable). The engine never writes to a router after it.

use std::sync::Arc;

use super::{Engine, Stop};
use crate::record::Event;

/// The check made before each router write: `Ok(token)` (the lock's fencing
/// token) while this run holds the lock, `Err(why)` once it is lost, for good.
/// It must not block: no I/O, a clock and a state read.
pub type FenceCheck = Arc<dyn Fn() -> Result<i64, String> + Send + Sync>;

/// The lock this run holds, and its check.
#[derive(Clone)]
pub struct Fence {
    /// "etcd".
    pub kind: String,
    /// The key the lock holds.
    pub key: String,
    /// The fencing token when the run took the lock (the key's create
    /// revision): journaled with every router write.
    pub revision: i64,
    /// This run as the lock records it: account, host, pid, since.
    pub holder: String,
    /// The lock's time-to-live, in milliseconds.
    pub ttl_ms: u64,
    pub check: FenceCheck,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("revision", &self.revision)
            .field("holder", &self.holder)
            .finish()
    }
}

impl Engine {
    /// The lock's check, for a write made later (inside a weight change).
    pub(crate) fn fence_check(&self) -> Option<FenceCheck> {
        self.fence.as_ref().map(|f| Arc::clone(&f.check))
    }

    /// The fencing token to journal with a write about to be made; with no
    /// lock to fence, `None`. A lost lock is the stop it means.
    pub(crate) fn fence_token(&mut self) -> Result<Option<i64>, Stop> {
        let Some(fence) = &self.fence else {
            return Ok(None);
        };
        match (fence.check)() {
            Ok(token) => Ok(Some(token)),
            Err(why) => Err(self.lock_lost(why)),
        }
    }

    /// Journals the lost lock (once), shows it, and gives the stop: traffic
    /// held where it is, the deployment interrupted and resumable.
    pub(crate) fn lock_lost(&mut self, why: String) -> Stop {
        if let (Some(fence), false) = (&self.fence, self.lock_lost) {
            let event = Event::LockLost {
                key: fence.key.clone(),
                revision: fence.revision,
                why: why.clone(),
            };
            self.lock_lost = true;
            if let Err(stop) = self.record(event) {
                return stop;
            }
        }
        let reason = format!(
            "the release lease was lost ({why}): no router is changed any more, traffic is held where it is; `cutover run --resume` carries on once the lease can be taken"
        );
        self.state.message = Some(reason.clone());
        self.publish();
        Stop::Hold { reason }
    }

    /// Journals the lock this run holds, when it opens.
    pub(crate) fn record_lock(&mut self) -> Result<(), Stop> {
        let Some(f) = &self.fence else {
            return Ok(());
        };
        let event = Event::LockHeld {
            kind: f.kind.clone(),
            key: f.key.clone(),
            revision: f.revision,
            holder: f.holder.clone(),
            ttl_ms: f.ttl_ms,
        };
        self.record(event)
    }
}
