//! `[traffic.router]`: each kind's keys, and names that cannot carry syntax.

use crate::config::testing::*;
use crate::config::{RouterKind, RouterPlan};

fn router(body: &str) -> String {
    format!("{HEAD}[traffic]\nsteps = [100]\n[traffic.router]\n{body}[analysis.source]\nkind = \"command\"\nsample = \"true\"\n")
}

const HAPROXY: &str = "kind = \"haproxy\"\nsocket = \"/run/h.sock\"\nbackend = \"app\"\nstable_server = \"v1\"\ncanary_server = \"v2\"\n";

#[test]
fn every_kind_validates() {
    let p = plan(&router(HAPROXY));
    match &p.traffic.unwrap().router {
        RouterPlan::Haproxy(h) => {
            assert_eq!(
                (h.backend.as_str(), h.canary_server.as_str()),
                ("app", "v2")
            )
        }
        other => panic!("{other:?}"),
    }
    let p = plan(&router("kind = \"haproxy\"\nsocket = \"h.sock\"\nbackend = \"app\"\nstable_server = \"v1:8080\"\ncanary_server = \"v2.x_y-z\"\n"));
    assert!(
        matches!(&p.traffic.unwrap().router, RouterPlan::Haproxy(h) if h.socket == "/base/h.sock")
    );
    let p = plan(&router("kind = \"nginx\"\nupstream_file = \"u.conf\"\nupstream = \"app\"\nstable = \"127.0.0.1:1\"\ncanary = \"[::1]:2\"\n"));
    assert_eq!(p.traffic.unwrap().router.router_kind(), RouterKind::Nginx);
    let p = plan(&router(
        "kind = \"command\"\nset_weight = \"echo $CUTOVER_WEIGHT\"\n",
    ));
    assert_eq!(p.traffic.unwrap().router.kind(), "command");
}

#[test]
fn haproxy_names_cannot_carry_a_second_command() {
    let text = router(&HAPROXY.replace(
        "canary_server = \"v2\"",
        "canary_server = \"v2 weight 100; set server app/v1 weight 0\"",
    ));
    let e = expect_count(&text, 1);
    assert!(e[0].starts_with("12:17: canary_server = \"v2 weight 100; set server app/v1 weight 0\" is not an HAProxy name"), "{e:?}");
    for bad in ["app\\n", "a;b", "a b", "", "a/b", "a#b"] {
        expect(
            &router(&HAPROXY.replace("\"app\"", &format!("\"{bad}\""))),
            "10:11",
            "not an HAProxy name",
        );
    }
    // From the environment: checked as expanded, quoted as written.
    let e = errors(&router(
        &HAPROXY.replace("\"v1\"", "\"${env:CUTOVER_TEST_ESC}\""),
    ));
    assert!(
        e.iter()
            .any(|e| e.contains("\"${env:CUTOVER_TEST_ESC}\" is not an HAProxy name")),
        "{e:?}"
    );
}

#[test]
fn keys_of_another_kind_are_named() {
    expect(
        &router("kind = \"builtin\"\nlisten = \"127.0.0.1:1\"\nstable = \"127.0.0.1:2\"\ncanary = \"127.0.0.1:3\"\nbackend = \"app\"\n"),
        "12:11",
        "backend does not apply to a \"builtin\" router: its keys are listen, stable, canary",
    );
}

#[test]
fn unknown_or_missing_kinds_list_every_kind() {
    expect(
        &router("kind = \"envoy\"\n"),
        "8:8",
        "use \"builtin\", \"haproxy\", \"nginx\" or \"command\"",
    );
    expect(
        &router("listen = \"127.0.0.1:1\"\n"),
        "7:1",
        "[traffic.router] needs kind = \"builtin\", \"haproxy\", \"nginx\" or \"command\"",
    );
}

#[test]
fn each_missing_key_is_named_once() {
    let e = expect_count(&router("kind = \"builtin\"\nlisten = \"127.0.0.1:1\"\n"), 2);
    assert!(e[0].contains("needs stable"), "{e:?}");
    assert!(e[1].contains("needs canary"), "{e:?}");
    expect(&router("kind = \"builtin\"\nlisten = \"localhost\"\nstable = \"127.0.0.1:2\"\ncanary = \"127.0.0.1:3\"\n"), "9:10", "not an address");
}

#[test]
fn nginx_names_and_servers_hold_no_syntax() {
    let base = "kind = \"nginx\"\nupstream_file = \"u.conf\"\nupstream = \"app\"\nstable = \"127.0.0.1:1\"\ncanary = \"127.0.0.1:2\"\n";
    expect(
        &router(&base.replace("\"app\"", "\"app { }\"")),
        "10:12",
        "not an nginx upstream name",
    );
    expect(
        &router(&base.replace("\"127.0.0.1:2\"", "\"127.0.0.1:2; server evil:1\"")),
        "12:10",
        "not a server address nginx accepts",
    );
    expect(
        &router(&base.replace("\"127.0.0.1:2\"", "\"127.0.0.1:2 #\"")),
        "12:10",
        "not a server address",
    );
}

#[test]
fn router_commands_hold_no_escape() {
    expect(
        &router("kind = \"command\"\nset_weight = \"x\\u001b\"\n"),
        "9:14",
        "control character",
    );
}
