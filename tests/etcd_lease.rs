//! The release lease against a real three-member etcd cluster (Debian's
//! `etcd`), started per test on loopback ports: refusal naming the holder,
//! survival of a member's death, loss before the TTL when etcd is gone, and
//! takeover after a holder is killed.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd::EtcdCluster;
use common::ChildGuard;
use cutover::lease::{holder_here, EtcdLease, Holder, LeaseError, LeaseOptions, LeaseState};
use etcdv3client::{pb, EtcdClient};

const TTL: Duration = Duration::from_secs(2);
const KEY: &str = "/cutover/lease/checkout/production";
const CHILD_ENV: &str = "CUTOVER_TEST_LEASE_CHILD";

fn cluster() -> Option<EtcdCluster> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("cutover=debug")
        .try_init();
    if !common::have_external("etcd") {
        return None;
    }
    Some(EtcdCluster::start(3))
}

/// A holder as if on another bastion.
fn holder(operator: &str, host: &str) -> Holder {
    Holder {
        host: host.into(),
        ..holder_here(operator)
    }
}

/// The index of the member that is the raft leader, asked of the running ones
/// (etcd's `Maintenance/Status` call: each member names itself and the leader).
async fn leader(cluster: &EtcdCluster) -> Option<usize> {
    for (i, member) in cluster.members.iter().enumerate() {
        let Ok(Ok(client)) = tokio::time::timeout(
            Duration::from_secs(1),
            EtcdClient::new(vec![member.client_url.as_str()], None),
        )
        .await
        else {
            continue;
        };
        let mut service = client.service();
        let status = service.unary::<_, pb::StatusResponse>(
            tonic::Request::new(pb::StatusRequest {}),
            http::uri::PathAndQuery::from_static("/etcdserverpb.Maintenance/Status"),
        );
        let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(1), status).await else {
            continue;
        };
        let status = status.into_inner();
        let me = status.header.map(|h| h.member_id);
        if status.leader != 0 && me == Some(status.leader) {
            return Some(i);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_naming_the_first_then_takes_it_after_release() {
    let Some(cluster) = cluster() else { return };
    let endpoints = cluster.endpoints();
    let alice = holder("alice", "bastion-a");
    let first = EtcdLease::acquire(&endpoints, KEY, TTL, alice.clone())
        .await
        .expect("first acquire");
    assert!(first.taken_over().is_none());
    assert_eq!(first.ensure_held().expect("held"), first.revision());

    let bob = holder("bob", "bastion-b");
    let refused = EtcdLease::acquire(&endpoints, KEY, TTL, bob.clone())
        .await
        .expect_err("the lease was given twice");
    match &refused {
        LeaseError::Held {
            holder, revision, ..
        } => {
            assert_eq!(holder, &alice);
            assert_eq!(*revision, first.revision());
        }
        other => panic!("unexpected refusal: {other}"),
    }
    let said = refused.to_string();
    for part in ["alice", "bastion-a", &alice.pid.to_string(), &alice.started] {
        assert!(said.contains(part), "{said:?} does not name {part}");
    }

    // Waiting longer than a TTL does not help while the first keeps its lease alive.
    let waiting = LeaseOptions::new(TTL).wait_for(TTL + Duration::from_secs(1));
    match EtcdLease::acquire_with(&endpoints, KEY, &waiting, bob.clone()).await {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder, alice),
        other => panic!("a kept lease was given away: {other:?}"),
    }
    first.ensure_held().expect("still held after the wait");

    let first_revision = first.revision();
    first.release().await.expect("release");
    let second = EtcdLease::acquire(&endpoints, KEY, TTL, bob)
        .await
        .expect("acquire after release");
    assert!(
        second.taken_over().is_none(),
        "a clean release is no takeover"
    );
    assert!(
        second.revision() > first_revision,
        "fencing tokens grow: {} then {}",
        first_revision,
        second.revision()
    );

    // Dropping the handle releases too (in the background): the next run
    // gets the key without waiting for the TTL and sees no takeover.
    drop(second);
    let waiting = LeaseOptions::new(TTL).wait_for(Duration::from_secs(10));
    let third = EtcdLease::acquire_with(&endpoints, KEY, &waiting, holder("carol", "bastion-c"))
        .await
        .expect("acquire after drop");
    assert!(third.taken_over().is_none(), "{:?}", third.taken_over());
    third.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_hold_leaves_the_lease_held_on_the_quorum() {
    let Some(mut cluster) = cluster() else { return };
    let endpoints = cluster.endpoints();
    // Electing a new leader takes up to two election timeouts (1 s here) without
    // answers to keep-alives: a 3 s lease leaves room for that within TTL − margin.
    let ttl = Duration::from_secs(3);
    let held = EtcdLease::acquire(&endpoints, KEY, ttl, holder("alice", "bastion-a"))
        .await
        .expect("acquire");
    let revision = held.revision();
    let old_leader = leader(&cluster).await.expect("a leader");
    cluster.kill(old_leader);
    let killed = Instant::now();

    // Through more than two TTLs the lease stays held on the two survivors.
    let mut elected = None;
    while killed.elapsed() < 2 * ttl {
        if let Err(e) = held.ensure_held() {
            panic!("lost after a member died: {e}\n{}", cluster.logs());
        }
        if elected.is_none() {
            if let Some(new) = leader(&cluster).await {
                assert_ne!(new, old_leader);
                elected = Some(killed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("a new leader answered {elected:?} after the old one was killed");
    match held.state() {
        LeaseState::Held { revision: r, .. } => assert_eq!(r, revision),
        lost => panic!("{lost:?}"),
    }
    match EtcdLease::acquire(
        &cluster.running_endpoints(),
        KEY,
        TTL,
        holder("bob", "bastion-b"),
    )
    .await
    {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder.operator, "alice"),
        other => panic!("the survivors gave the lease away: {other:?}"),
    }
    held.release().await.expect("release on the quorum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_stopped_turns_the_lease_lost_before_its_ttl_runs_out() {
    let Some(mut cluster) = cluster() else { return };
    let endpoints = cluster.endpoints();
    let options = LeaseOptions::new(TTL);
    let held = EtcdLease::acquire_with(&endpoints, KEY, &options, holder("alice", "bastion-a"))
        .await
        .expect("acquire");
    let mut states = held.subscribe();
    // Let one keep-alive be acknowledged, so the last good one is a renewal.
    tokio::time::timeout(3 * TTL, states.changed())
        .await
        .expect("a renewal within the TTL")
        .expect("state channel");
    let mut last_held = match &*states.borrow_and_update() {
        LeaseState::Held { expires_by, .. } => *expires_by,
        lost => panic!("{lost:?}"),
    };

    for i in 0..cluster.members.len() {
        cluster.stop(i);
    }
    let stopped = Instant::now();
    // Watch the state alone (no ensure_held, which would also turn it Lost).
    let (lost_at, why) = loop {
        tokio::time::timeout(3 * TTL, states.changed())
            .await
            .expect("the lease never turned Lost with etcd gone")
            .expect("state channel");
        let seen = Instant::now();
        match &*states.borrow_and_update() {
            LeaseState::Held { expires_by, .. } => last_held = last_held.max(*expires_by),
            LeaseState::Lost { why } => break (seen, why.clone()),
        }
    };
    // expires_by = send time of the last acknowledged keep-alive + TTL − margin;
    // etcd cannot expire the lease before that send time + TTL.
    let earliest_server_expiry = last_held + options.margin;
    assert!(
        lost_at < earliest_server_expiry,
        "Lost {:?} after the TTL could have run out ({why})",
        lost_at - earliest_server_expiry
    );
    eprintln!(
        "Lost {} ms after every member stopped, {} ms before the earliest server-side expiry: {why}",
        (lost_at - stopped).as_millis(),
        (earliest_server_expiry - lost_at).as_millis()
    );
    assert!(why.contains("no keep-alive acknowledged"), "{why}");
    assert!(matches!(held.ensure_held(), Err(LeaseError::Lost { .. })));

    // etcd comes back (and still has the lease: a new leader extends it):
    // Lost stays Lost; the release then frees the key cleanly.
    for i in 0..cluster.members.len() {
        cluster.restart(i);
    }
    cluster.wait_healthy();
    tokio::time::sleep(TTL).await;
    assert!(matches!(held.ensure_held(), Err(LeaseError::Lost { .. })));
    assert!(matches!(held.state(), LeaseState::Lost { .. }));
    held.release().await.expect("release once etcd is back");
    let next = EtcdLease::acquire(&endpoints, KEY, TTL, holder("bob", "bastion-b"))
        .await
        .expect("acquire after the release");
    assert!(next.taken_over().is_none());
    next.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_s_lease_expires_and_is_taken_over_with_a_report() {
    let Some(cluster) = cluster() else { return };
    let endpoints = cluster.endpoints();
    let exe = std::env::current_exe().expect("test binary");
    let mut child = ChildGuard(
        Command::new(exe)
            .args([
                "a_run_that_holds_the_lease_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, endpoints.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the holding run"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The harness prints "test NAME ... " on the same line first.
            if let Some((_, revision)) = line.split_once("HELD ") {
                let _ = tx.send(revision.trim().parse::<i64>().expect("revision"));
            }
        }
    });
    let child_revision = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the holding run never took the lease");
    let child_pid = child.0.id();

    let bob = holder("bob", "bastion-b");
    match EtcdLease::acquire(&endpoints, KEY, TTL, bob.clone()).await {
        Err(LeaseError::Held {
            holder, revision, ..
        }) => {
            assert_eq!(
                (holder.pid, holder.operator.as_str()),
                (child_pid, "crashing-run")
            );
            assert_eq!(revision, child_revision);
        }
        other => panic!("the lease was given twice: {other:?}"),
    }

    // kill -9: no release, no revoke; the lease lives on until its TTL.
    child.0.kill().expect("kill");
    child.0.wait().expect("reap");
    let killed = Instant::now();
    match EtcdLease::acquire(&endpoints, KEY, TTL, bob.clone()).await {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder.pid, child_pid),
        other => panic!("taken before the dead run's lease expired: {other:?}"),
    }

    let waiting = LeaseOptions::new(TTL).wait_for(5 * TTL);
    let took = EtcdLease::acquire_with(&endpoints, KEY, &waiting, bob)
        .await
        .expect("taken over once the lease expired");
    eprintln!(
        "taken over {} ms after the holder was killed (TTL {} s)",
        killed.elapsed().as_millis(),
        TTL.as_secs()
    );
    let previous = took.taken_over().expect("the takeover is reported");
    assert_eq!(previous.holder.pid, child_pid);
    assert_eq!(previous.holder.operator, "crashing-run");
    assert_eq!(previous.revision, child_revision);
    assert!(took.revision() > child_revision);
    took.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_by_hand_turns_the_lease_lost_and_lets_the_next_run_in() {
    let Some(cluster) = cluster() else { return };
    let endpoints = cluster.endpoints();
    let alice = holder("alice", "bastion-a");
    let held = EtcdLease::acquire(&endpoints, KEY, TTL, alice.clone())
        .await
        .expect("acquire");
    let mut states = held.subscribe();
    // An operator "unsticks" the release with etcdctl del: the lease itself lives on.
    let mut admin = EtcdClient::new(endpoints.clone(), None)
        .await
        .expect("connect");
    admin.delete(KEY).await.expect("delete by hand");
    let why = tokio::time::timeout(2 * TTL, async {
        loop {
            states.changed().await.expect("state channel");
            if let LeaseState::Lost { why } = &*states.borrow_and_update() {
                break why.clone();
            }
        }
    })
    .await
    .expect("the holder never noticed its key was gone");
    assert!(why.contains("deleted or replaced"), "{why}");
    assert!(matches!(held.ensure_held(), Err(LeaseError::Lost { .. })));

    // The next run gets the key, and learns the previous holder never released it.
    let next = EtcdLease::acquire(&endpoints, KEY, TTL, holder("bob", "bastion-b"))
        .await
        .expect("acquire after the key was deleted");
    let previous = next.taken_over().expect("the takeover is reported");
    assert_eq!(previous.holder, alice);
    assert_eq!(previous.revision, held.revision());
    // The lost holder's release must not touch the new holder's key.
    held.release().await.expect("release of the lost lease");
    assert_eq!(next.ensure_held().expect("still held"), next.revision());
    next.release().await.expect("release");
}

/// Not a test: the run that the takeover test starts in a child process and
/// kills with SIGKILL while it holds the lease.
#[test]
#[ignore = "the holding run of a_killed_holder_s_lease_expires_and_is_taken_over_with_a_report"]
fn a_run_that_holds_the_lease_until_killed() {
    let Ok(endpoints) = std::env::var(CHILD_ENV) else {
        eprintln!("only runs as the child of the takeover test");
        return;
    };
    let endpoints: Vec<String> = endpoints.split(',').map(String::from).collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let held = EtcdLease::acquire(&endpoints, KEY, TTL, holder_here("crashing-run"))
            .await
            .expect("the holding run's acquire");
        println!("HELD {}", held.revision());
        // Killed long before this ends.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(held);
    });
}
