//! The etcd v3 requests the release lease makes: one client balanced over
//! the endpoints, retries of requests that found no member ready within a
//! bound, transaction steps, and keep-alive streams.
//!
//! The calls go through `etcdv3client`, which ships etcd's gRPC messages
//! already generated from etcd's `.proto` files, so building needs no
//! `protoc`; its connection is a tonic channel that spreads requests over
//! the endpoints and reconnects to each after a failure.

use std::time::Duration;

use etcdv3client::grpc::TonicClient;
use etcdv3client::pb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcdv3client::pb::request_op::Request;
use etcdv3client::{pb, ErrKind, LeaseKeepAliver};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use super::LeaseError;

/// The etcd v3 client: KV, Lease and Watch calls on one balanced channel.
pub(super) type Client = etcdv3client::Client<TonicClient>;

/// Where requests go and how long each may take, for errors too.
pub(super) struct Target<'a> {
    pub(super) endpoints: &'a [String],
    pub(super) key: &'a str,
    pub(super) timeout: Duration,
}

/// A client for `target`'s endpoints (client URLs; `http://` is assumed
/// when no scheme is given). No I/O: each endpoint connects on first use,
/// within the target's timeout, and reconnects after a failure.
pub(super) fn connect(target: &Target<'_>) -> Result<Client, LeaseError> {
    let failed = |source| LeaseError::Etcd {
        op: "connect",
        key: target.key.to_string(),
        source,
    };
    if target.endpoints.is_empty() {
        return Err(failed(etcdv3client::Error::new(
            ErrKind::Endpoint,
            "no etcd endpoints given",
        )));
    }
    let mut endpoints = Vec::with_capacity(target.endpoints.len());
    for url in target.endpoints {
        let url = if url.contains("://") {
            url.clone()
        } else {
            format!("http://{url}")
        };
        let endpoint = Endpoint::from_shared(url)
            .map_err(|e| failed(etcdv3client::Error::new(ErrKind::Endpoint, e)))?;
        endpoints.push(endpoint.connect_timeout(target.timeout));
    }
    let channel = Channel::balance_list(endpoints.into_iter());
    Ok(Client::with_service(TonicClient::new(channel)))
}

/// Pause between tries of a request that found no member ready.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Whether an error means "try again, maybe on another member": the
/// balancer picked an endpoint that refused the connection, or the member
/// has no leader yet (etcd answers gRPC `Unavailable` to both). etcdv3client
/// gives etcd's own `Unavailable` answers a kind each; any other status
/// (such as a refused connection) keeps only its text, `code: Unavailable`.
fn transient(error: &etcdv3client::Error) -> bool {
    match error.kind() {
        ErrKind::NoLeader
        | ErrKind::LeaderChanged
        | ErrKind::Stopped
        | ErrKind::Timeout
        | ErrKind::TimeoutDueToLeaderFail
        | ErrKind::TimeoutDueToConnectionLost
        | ErrKind::TimeoutWaitAppliedIndex
        | ErrKind::Unhealthy
        | ErrKind::ConnectFailed => true,
        ErrKind::Grpc => {
            let text = error.to_string();
            text.contains("code: Unavailable") || text.contains("Service was not ready")
        }
        _ => false,
    }
}

/// Runs `request` until it answers, retrying transient errors, for at most
/// the target's timeout. Only used for requests that are safe to repeat.
pub(super) async fn bounded<T, F, Fut>(
    target: &Target<'_>,
    op: &'static str,
    mut request: F,
) -> Result<T, LeaseError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcdv3client::Error>>,
{
    let until = tokio::time::Instant::now() + target.timeout;
    let mut last = String::new();
    loop {
        match tokio::time::timeout_at(until, request()).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) if transient(&e) && tokio::time::Instant::now() + RETRY_PAUSE < until => {
                last = e.to_string();
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok(Err(source)) => {
                return Err(LeaseError::Etcd {
                    op,
                    key: target.key.to_string(),
                    source,
                })
            }
            Err(_) => {
                return Err(LeaseError::Timeout {
                    op,
                    key: target.key.to_string(),
                    timeout: target.timeout,
                    endpoints: target.endpoints.join(","),
                    last_error: if last.is_empty() { "none".into() } else { last },
                })
            }
        }
    }
}

/// Transaction step: read `key`.
pub(super) fn get_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Request::RequestRange(pb::RangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

/// Transaction step: write `value` at `key`, attached to `lease` (0: none).
pub(super) fn put_op(key: &str, value: Vec<u8>, lease: i64) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Request::RequestPut(pb::PutRequest {
            key: key.into(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

/// Transaction step: delete `key`.
pub(super) fn delete_op(key: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Request::RequestDeleteRange(pb::DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

/// Transaction guard: `key`'s create revision is `revision` (0: no such key).
pub(super) fn created_at(key: &str, revision: i64) -> pb::Compare {
    pb::Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
    }
}

/// Opens a keep-alive stream for lease `id`: sends the first keep-alive and
/// returns the stream with etcd's answer to it. (etcd sends the stream's
/// headers only with its first answer, so the request must be queued first.)
pub(super) async fn open_keep_alive(
    client: &Client,
    id: i64,
) -> Result<(LeaseKeepAliver, pb::LeaseKeepAliveResponse), etcdv3client::Error> {
    let (requests, pending) = mpsc::channel(1);
    requests
        .send(pb::LeaseKeepAliveRequest { id })
        .await
        .map_err(|e| etcdv3client::Error::new(ErrKind::LeaseRequestFailed, e))?;
    let mut lease = client.lease.clone();
    let answers = lease.lease_keep_alive(ReceiverStream::new(pending)).await?;
    let mut keeper = LeaseKeepAliver::new(id, requests, answers);
    match keeper.message().await? {
        Some(answer) => Ok((keeper, answer)),
        None => Err(etcdv3client::Error::new(
            ErrKind::LeaseRequestFailed,
            "keep-alive stream closed before its first answer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_s_unavailable_answers_are_retried_others_are_not() {
        use tonic::{Code, Status};
        let error = |code, message: &str| etcdv3client::Error::from(Status::new(code, message));
        assert!(transient(&error(
            Code::Unavailable,
            "etcdserver: no leader"
        )));
        assert!(transient(&error(
            Code::Unavailable,
            "etcdserver: request timed out"
        )));
        assert!(!transient(&error(
            Code::NotFound,
            "etcdserver: requested lease not found"
        )));
        assert!(!transient(&error(Code::InvalidArgument, "x")));
        assert!(!transient(&error(Code::DeadlineExceeded, "x")));
    }

    #[tokio::test]
    async fn a_request_to_a_dead_endpoint_is_refused_as_worth_retrying() {
        // A port nobody listens on any more: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let endpoints = [format!("http://127.0.0.1:{port}")];
        let client = connect(&Target {
            endpoints: &endpoints,
            key: "/k",
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        let mut kv = client.kv.clone();
        let refused = kv.range(pb::RangeRequest::default()).await.unwrap_err();
        assert!(transient(&refused), "{refused}");
    }

    #[test]
    fn a_revoked_lease_is_recognised_by_kind() {
        let gone = etcdv3client::Error::from(tonic::Status::new(
            tonic::Code::NotFound,
            "etcdserver: requested lease not found",
        ));
        assert_eq!(gone.kind(), ErrKind::LeaseNotFound);
    }

    #[test]
    fn endpoints_without_a_scheme_or_none_at_all() {
        let try_connect = |endpoints: &[String]| {
            connect(&Target {
                endpoints,
                key: "/k",
                timeout: Duration::from_secs(1),
            })
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _enter = rt.enter();
        assert!(try_connect(&["127.0.0.1:2379".into()]).is_ok());
        assert!(matches!(
            try_connect(&[]),
            Err(LeaseError::Etcd { op: "connect", .. })
        ));
        assert!(matches!(
            try_connect(&["http://bad host".into()]),
            Err(LeaseError::Etcd { op: "connect", .. })
        ));
    }
}
