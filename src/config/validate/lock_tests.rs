//! `[lock]`: the file lock by default, the etcd lease with its keys.

use std::time::Duration;

use crate::config::testing::*;
use crate::config::{EtcdLock, LockPlan};

const ETCD: &str =
    "[lock]\nkind = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\", \"10.0.0.2:2379\"]\n";

#[test]
fn the_file_lock_is_the_default() {
    assert_eq!(plan(HEAD).lock, LockPlan::File);
    assert_eq!(
        plan(&format!("{HEAD}[lock]\nkind = \"file\"\n")).lock,
        LockPlan::File
    );
}

#[test]
fn an_etcd_lease_takes_its_endpoints_a_key_per_service_and_environment_and_a_ttl() {
    let p = plan(&format!("{HEAD}environment = \"eu prod\"\n{ETCD}"));
    assert_eq!(
        p.lock,
        LockPlan::Etcd(EtcdLock {
            endpoints: vec![
                "http://127.0.0.1:2379".into(),
                "http://10.0.0.2:2379".into()
            ],
            key: "/cutover/svc/eu_prod".into(),
            ttl: Duration::from_secs(10),
            wait: Duration::ZERO,
        })
    );
    let p = plan(&format!(
        "{HEAD}{ETCD}key = \"/locks/svc\"\nttl = \"3s\"\nwait = \"1m\"\n"
    ));
    match p.lock {
        LockPlan::Etcd(e) => {
            assert_eq!(e.key, "/locks/svc");
            assert_eq!(
                (e.ttl, e.wait),
                (Duration::from_secs(3), Duration::from_secs(60))
            );
        }
        other => panic!("{other:?}"),
    }
    let p = plan(&format!("{HEAD}{ETCD}"));
    assert!(matches!(p.lock, LockPlan::Etcd(e) if e.key == "/cutover/svc/default"));
}

#[test]
fn a_wrong_lock_is_located_and_says_what_is_right() {
    expect(
        &format!("{HEAD}[lock]\nkind = \"zookeeper\"\n"),
        "6:8",
        "lock kind = \"zookeeper\" is not known: use \"file\" or \"etcd\"",
    );
    expect(
        &format!("{HEAD}[lock]\nkind = \"etcd\"\n"),
        "5:1",
        "the etcd lock needs endpoints",
    );
    expect(
        &format!("{HEAD}[lock]\nendpoints = [\"http://a:1\"]\n"),
        "6:13",
        "endpoints applies to kind = \"etcd\"",
    );
    expect(
        &format!("{HEAD}{ETCD}ttl = \"1s\"\n"),
        "8:7",
        "ttl = \"1s\" is too short",
    );
    expect(
        &format!("{HEAD}{ETCD}ttl = \"2500ms\"\n"),
        "8:7",
        "not whole seconds",
    );
    expect(
        &format!("{HEAD}{ETCD}key = \"cutover svc\"\n"),
        "8:7",
        "is not a lock key",
    );
    expect(
        &format!("{HEAD}{ETCD}key = \"/a.last\"\n"),
        "8:7",
        "ends in \".last\"",
    );
    expect(
        &format!("{HEAD}[lock]\nkind = \"etcd\"\nendpoints = [\"ftp://x\"]\n"),
        "7:14",
        "not an etcd client URL",
    );
    expect(
        &format!("{HEAD}[lock]\nkind = \"etcd\"\nendpoints = []\n"),
        "7:13",
        "endpoints is empty",
    );
}
