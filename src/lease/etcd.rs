//! The release lease on etcd's v3 API: a lease with a TTL, a key taken by a
//! transaction, a keep-alive stream, and a record of the last holder.
//!
//! Protocol (etcd v3 API, <https://etcd.io/docs/v3.5/learning/api/>):
//! 1. `LeaseGrant(ttl)` → lease ID and the granted TTL (etcd may raise it).
//! 2. `Txn`: if `create_revision(key) == 0` (the key does not exist), then
//!    `get(record)`, `put(key, holder JSON, lease)`, `put(record, running)`,
//!    `get(key)`; else `get(key)`. The transaction is atomic and serialisable,
//!    so exactly one of any number of concurrent acquirers creates the key.
//!    The key's create revision is the fencing token: etcd's store revision is
//!    a cluster-wide counter that only grows (Kleppmann, "How to do
//!    distributed locking", 2016, on fencing tokens).
//! 3. `LeaseKeepAlive`: one request every `keep_alive_every`, each awaited
//!    before the next, so a response is always matched to its send time;
//!    then `Range(key)`: the key must still carry our create revision and
//!    lease (someone may have deleted it by hand while the lease lives).
//! 4. Release: `Txn` if `create_revision(key) == ours` then
//!    `put(record, released)`, `delete(key)`; then `LeaseRevoke`.
//!
//! The record key (`<key>.last`, no lease) holds the last holder and whether
//! it released. A key gone while its record still says "running" was left by
//! a run whose lease expired (it crashed or lost etcd): the next acquire
//! reports it as a [`Takeover`].
//!
//! The requests themselves (client, retries, transaction steps) are in
//! `rpc.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcdv3client::pb::event::EventType;
use etcdv3client::pb::response_op::Response;
use etcdv3client::pb::watch_create_request::FilterType;
use etcdv3client::{pb, ErrKind, LeaseKeepAliver};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::rpc::{
    bounded, connect, created_at, delete_op, get_op, open_keep_alive, put_op, Client, Target,
};
use super::{HeldLease, Holder, LeaseError, LeaseOptions, ReleaseRequest, Sent, Shared, Takeover};

/// Takes release leases in an etcd cluster.
#[derive(Debug, Clone, Copy)]
pub struct EtcdLease;

/// What the record key says about the last holder.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    holder: Holder,
    released: bool,
}

/// One acquire attempt: taken, or refused with the etcd revision it saw.
enum Attempt {
    Taken(HeldLease),
    Refused { error: LeaseError, seen: i64 },
}

/// Everything the keep-alive task needs about the lease it keeps.
struct Kept {
    client: Client,
    endpoints: Vec<String>,
    key: String,
    record_key: String,
    id: i64,
    revision: i64,
    holder: Holder,
    options: LeaseOptions,
    shared: Arc<Shared>,
}

impl EtcdLease {
    /// Takes `key` for `holder` with a lease of `ttl` (whole seconds) and the
    /// default [`LeaseOptions`]. `endpoints` are client URLs
    /// (`http://host:2379`); requests go to any that answers.
    ///
    /// # Errors
    /// [`LeaseError::Held`] naming the current holder when another run holds
    /// the key; [`LeaseError::Timeout`]/[`LeaseError::Etcd`] when etcd cannot
    /// be reached or refuses; [`LeaseError::Options`] for a bad TTL.
    pub async fn acquire(
        endpoints: &[String],
        key: &str,
        ttl: Duration,
        holder: Holder,
    ) -> Result<HeldLease, LeaseError> {
        Self::acquire_with(endpoints, key, &LeaseOptions::new(ttl), holder).await
    }

    /// Takes `key` with explicit options. With [`LeaseOptions::wait`], a held
    /// key is watched until it is deleted (released or expired) and retried,
    /// until the wait runs out; then the last refusal is returned.
    ///
    /// # Errors
    /// As [`EtcdLease::acquire`].
    pub async fn acquire_with(
        endpoints: &[String],
        key: &str,
        options: &LeaseOptions,
        holder: Holder,
    ) -> Result<HeldLease, LeaseError> {
        options.validate()?;
        let target = Target {
            endpoints,
            key,
            timeout: options.request_timeout,
        };
        let client = connect(&target)?;
        let until = options.wait.map(|wait| Instant::now() + wait);
        loop {
            match try_take(&client, &target, options, &holder).await? {
                Attempt::Taken(held) => return Ok(held),
                Attempt::Refused { error, seen } => match until {
                    Some(until) if Instant::now() < until => {
                        tracing::info!(%error, "waiting for the release lease");
                        wait_for_delete(&client, key, seen, until).await;
                    }
                    _ => return Err(error),
                },
            }
        }
    }
}

fn record_key(key: &str) -> String {
    format!("{key}.last")
}

/// Grants a lease and tries to take the key with it (steps 1–2).
async fn try_take(
    client: &Client,
    target: &Target<'_>,
    options: &LeaseOptions,
    holder: &Holder,
) -> Result<Attempt, LeaseError> {
    let key = target.key;
    let ttl_secs = i64::try_from(options.ttl.as_secs()).unwrap_or(i64::MAX);
    // Before the first try: the lease's TTL starts no earlier than this.
    let sent = Sent::now();
    let grant = bounded(target, "lease grant", || {
        let mut lease = client.lease.clone();
        let request = pb::LeaseGrantRequest {
            ttl: ttl_secs,
            id: 0,
        };
        async move { lease.lease_grant(request).await }
    })
    .await?;
    let id = grant.id;
    // The granted TTL, which etcd may have raised to its minimum, is the one it enforces.
    let ttl = Duration::from_secs(u64::try_from(grant.ttl).unwrap_or(0));
    let record_key = record_key(key);
    let running = json(&Record {
        holder: holder.clone(),
        released: false,
    });
    let txn = pb::TxnRequest {
        compare: vec![created_at(key, 0)],
        success: vec![
            get_op(&record_key),
            put_op(key, json(holder), id),
            put_op(&record_key, running, 0),
            get_op(key),
        ],
        failure: vec![get_op(key)],
    };
    let answer = bounded(target, "take (txn)", || {
        let (mut kv, txn) = (client.kv.clone(), txn.clone());
        async move { kv.txn(txn).await }
    })
    .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            // The key may or may not be ours; without a keep-alive the lease expires anyway.
            revoke_quietly(client, id, options).await;
            return Err(e);
        }
    };
    let seen = answer.header.as_ref().map(|h| h.revision).unwrap_or(0);
    let gets: Vec<&pb::RangeResponse> = answer
        .responses
        .iter()
        .filter_map(|r| match &r.response {
            Some(Response::ResponseRange(get)) => Some(get),
            _ => None,
        })
        .collect();
    let (revision, taken_over) = if answer.succeeded {
        let revision = gets
            .get(1)
            .and_then(|g| g.kvs.first())
            .map(|kv| kv.create_revision)
            .unwrap_or(seen);
        let previous = gets.first().and_then(|g| g.kvs.first());
        let taken_over = previous.and_then(|kv| {
            let record = serde_json::from_slice::<Record>(&kv.value).ok()?;
            (!record.released).then_some(Takeover {
                holder: record.holder,
                revision: kv.mod_revision,
            })
        });
        (revision, taken_over)
    } else {
        let current = gets.first().and_then(|g| g.kvs.first());
        match current {
            // A retried transaction whose first try landed: the key is ours,
            // but what it replaced is no longer known.
            Some(kv) if kv.lease == id => (kv.create_revision, None),
            _ => {
                revoke_quietly(client, id, options).await;
                let error = refusal(key, current);
                return Ok(Attempt::Refused { error, seen });
            }
        }
    };
    if let Some(t) = &taken_over {
        tracing::warn!(previous = %t.holder, revision = t.revision, "took over a release lease that expired unreleased");
    }
    let shared = Arc::new(Shared::new(key, revision, sent, ttl, options.margin));
    let (release, requests) = oneshot::channel();
    let kept = Kept {
        client: client.clone(),
        endpoints: target.endpoints.to_vec(),
        key: key.to_string(),
        record_key,
        id,
        revision,
        holder: holder.clone(),
        options: LeaseOptions {
            ttl,
            ..options.clone()
        },
        shared: shared.clone(),
    };
    tokio::spawn(keep(kept, requests));
    Ok(Attempt::Taken(HeldLease::new(
        shared,
        holder.clone(),
        id,
        ttl,
        taken_over,
        release,
    )))
}

/// The refusal naming whoever holds `key` (its value is their holder record).
fn refusal(key: &str, current: Option<&pb::KeyValue>) -> LeaseError {
    let (revision, value) = current
        .map(|kv| (kv.create_revision, kv.value.as_slice()))
        .unwrap_or((0, &[][..]));
    match serde_json::from_slice::<Holder>(value) {
        Ok(holder) => LeaseError::Held {
            key: key.to_string(),
            holder,
            revision,
        },
        Err(_) => LeaseError::HeldUnknown {
            key: key.to_string(),
            revision,
            value: String::from_utf8_lossy(value).into_owned(),
        },
    }
}

/// JSON bytes of a holder or record (plain structs: encoding cannot fail).
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Waits until `key` is deleted after revision `seen`, the watch fails, or
/// `until` passes; the caller then tries again.
async fn wait_for_delete(client: &Client, key: &str, seen: i64, until: Instant) {
    let mut watcher = client.watch.clone();
    let create = pb::WatchCreateRequest {
        key: key.into(),
        start_revision: seen + 1,
        filters: vec![FilterType::Noput as i32],
        ..Default::default()
    };
    // The request side stays open while the answers are read.
    let (requests, pending) = mpsc::channel::<pb::WatchRequest>(1);
    let watch = async {
        requests
            .send(create.into())
            .await
            .map_err(|e| etcdv3client::Error::new(ErrKind::WatchRequestFailed, e))?;
        let mut stream = watcher.watch(ReceiverStream::new(pending)).await?;
        while let Some(answer) = stream.message().await? {
            let deleted = answer
                .events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32);
            if deleted || answer.canceled {
                break;
            }
        }
        Ok::<(), etcdv3client::Error>(())
    };
    let until = tokio::time::Instant::from_std(until);
    match tokio::time::timeout_at(until, watch).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(e)) => {
            // No busy loop while etcd is away: pause before the next attempt.
            tracing::debug!(error = %e, "watching the release lease failed");
            tokio::time::sleep_until(
                until.min(tokio::time::Instant::now() + Duration::from_millis(250)),
            )
            .await;
        }
    }
}

/// Revokes a lease we will not use; errors only mean it expires on its own.
async fn revoke_quietly(client: &Client, id: i64, options: &LeaseOptions) {
    let mut lease = client.lease.clone();
    let revoke = lease.lease_revoke(pb::LeaseRevokeRequest { id });
    let _ = tokio::time::timeout(options.request_timeout, revoke).await;
}

/// What one renewal came to.
enum Renewal {
    /// Acknowledged; the lease was renewed no earlier than this send time.
    Renewed(Sent),
    /// etcd says the lease does not exist (expired or revoked).
    Gone,
    /// The lease lives but the key is gone or another holder's.
    Replaced,
}

/// The keep-alive task (step 3): renews until released, lost, or gone.
async fn keep(kept: Kept, mut requests: oneshot::Receiver<ReleaseRequest>) {
    let every = kept.options.keep_alive_every;
    let mut stream: Option<LeaseKeepAliver> = None;
    let mut next = Instant::now() + every;
    let mut last_error = String::new();
    let request = loop {
        let Some(expires_by) = kept.shared.expires_by() else {
            break (&mut requests).await.ok();
        };
        let deadline = tokio::time::Instant::from_std(expires_by);
        tokio::select! {
            biased;
            request = &mut requests => break request.ok(),
            () = tokio::time::sleep_until(deadline) => {
                let why = format!(
                    "no keep-alive acknowledged by etcd within {:?} (TTL {:?} minus margin {:?}) of the last one sent{}",
                    kept.options.ttl.saturating_sub(kept.options.margin),
                    kept.options.ttl,
                    kept.options.margin,
                    if last_error.is_empty() { String::new() } else { format!("; last error: {last_error}") },
                );
                tracing::error!(key = %kept.key, %why, "release lease lost");
                kept.shared.lose(&why);
            }
            outcome = renew(&kept, &mut stream, next) => match outcome {
                Ok(Renewal::Renewed(sent)) => {
                    if !last_error.is_empty() {
                        tracing::info!(key = %kept.key, "keep-alive acknowledged again");
                        last_error.clear();
                    }
                    kept.shared.renewed(sent);
                    next = sent.at + every;
                }
                Ok(Renewal::Gone) => {
                    let why = "etcd reports the lease gone (expired or revoked)";
                    tracing::error!(key = %kept.key, why, "release lease lost");
                    kept.shared.lose(why);
                }
                Ok(Renewal::Replaced) => {
                    let why = "the key was deleted or replaced in etcd by someone else";
                    tracing::error!(key = %kept.key, why, "release lease lost");
                    kept.shared.lose(why);
                }
                Err(e) => {
                    tracing::warn!(key = %kept.key, error = %e, "keep-alive failed; reopening");
                    last_error = e;
                    stream = None;
                    next = Instant::now() + (every / 4).min(Duration::from_millis(250));
                }
            },
        }
    };
    drop(stream);
    let result = release(&kept).await;
    kept.shared.lose("released");
    if let Some(reply) = request {
        let _ = reply.send(result);
    }
}

/// One renewal at `next`: a keep-alive, then a read of the key. It counts
/// (from the keep-alive's send time) only if etcd acknowledged the lease and
/// the key still has our create revision: a key deleted by hand while the
/// lease lives would otherwise let a second run in unnoticed. Each step may
/// take `keep_alive_every`; a request refused by a dead member is retried
/// within that (the client's balancer still picks dead endpoints at times).
async fn renew(
    kept: &Kept,
    stream: &mut Option<LeaseKeepAliver>,
    next: Instant,
) -> Result<Renewal, String> {
    tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    let target = Target {
        endpoints: &kept.endpoints,
        key: &kept.key,
        timeout: kept.options.keep_alive_every,
    };
    let sent = Sent::now();
    if let Renewal::Gone = keep_alive(&kept.client, &target, stream, kept.id).await? {
        return Ok(Renewal::Gone);
    }
    let read = pb::RangeRequest {
        key: kept.key.as_bytes().to_vec(),
        ..Default::default()
    };
    let answer = bounded(&target, "read", || {
        let (mut kv, read) = (kept.client.kv.clone(), read.clone());
        async move { kv.range(read).await }
    })
    .await
    .map_err(|e| e.to_string())?;
    match answer.kvs.first() {
        Some(kv) if kv.create_revision == kept.revision && kv.lease == kept.id => {
            Ok(Renewal::Renewed(sent))
        }
        _ => Ok(Renewal::Replaced),
    }
}

/// Sends one keep-alive and awaits its answer within the target's timeout. A
/// stream that fails or stays silent is dropped by the caller, so a late
/// answer is never matched to a later send.
async fn keep_alive(
    client: &Client,
    target: &Target<'_>,
    stream: &mut Option<LeaseKeepAliver>,
    id: i64,
) -> Result<Renewal, String> {
    let within = target.timeout;
    match stream {
        None => {
            let (opened, answer) = bounded(target, "keep-alive", || open_keep_alive(client, id))
                .await
                .map_err(|e| e.to_string())?;
            // etcd answers TTL 0 for a lease it no longer has.
            if answer.ttl <= 0 {
                return Ok(Renewal::Gone);
            }
            *stream = Some(opened);
            Ok(Renewal::Renewed(Sent::now()))
        }
        Some(keeper) => {
            keeper.keep_alive().await.map_err(|e| e.to_string())?;
            match tokio::time::timeout(within, keeper.message()).await {
                Err(_) => Err(format!("no keep-alive answer within {within:?}")),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(None)) => Err("keep-alive stream closed".into()),
                Ok(Ok(Some(answer))) if answer.ttl <= 0 => Ok(Renewal::Gone),
                Ok(Ok(Some(_))) => Ok(Renewal::Renewed(Sent::now())),
            }
        }
    }
}

/// Step 4: records a clean release if the key is still ours, then revokes.
async fn release(kept: &Kept) -> Result<(), LeaseError> {
    let released = json(&Record {
        holder: kept.holder.clone(),
        released: true,
    });
    let txn = pb::TxnRequest {
        compare: vec![created_at(&kept.key, kept.revision)],
        success: vec![put_op(&kept.record_key, released, 0), delete_op(&kept.key)],
        failure: Vec::new(),
    };
    let target = Target {
        endpoints: &kept.endpoints,
        key: &kept.key,
        timeout: kept.options.request_timeout,
    };
    bounded(&target, "release (txn)", || {
        let (mut kv, txn) = (kept.client.kv.clone(), txn.clone());
        async move { kv.txn(txn).await }
    })
    .await?;
    let id = kept.id;
    let revoked = bounded(&target, "lease revoke", || {
        let mut lease = kept.client.lease.clone();
        async move { lease.lease_revoke(pb::LeaseRevokeRequest { id }).await }
    })
    .await;
    match revoked {
        // Already expired: nothing left to revoke.
        Err(LeaseError::Etcd { source, .. }) if source.kind() == ErrKind::LeaseNotFound => Ok(()),
        other => other.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquiring_can_run_on_a_spawned_task() {
        fn sendable<T: Send>(_: &T) {}
        let endpoints = ["http://127.0.0.1:1".to_string()];
        let holder = super::super::holder_here("test");
        let acquire = EtcdLease::acquire(&endpoints, "/k", Duration::from_secs(2), holder);
        sendable(&acquire);
    }
}
