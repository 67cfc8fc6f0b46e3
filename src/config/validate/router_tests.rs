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

fn group(members: &str) -> String {
    format!("{HEAD}[traffic]\nsteps = [100]\n{members}[analysis.source]\nkind = \"command\"\nsample = \"true\"\n")
}

fn member(name: &str, socket: &str) -> String {
    format!(
        "[[traffic.routers]]\nname = \"{name}\"\n{}",
        HAPROXY.replace("/run/h.sock", socket)
    )
}

#[test]
fn a_group_holds_named_routers_of_any_mix() {
    let text = group(&format!(
        "{}{}[[traffic.routers]]\nname = \"edge-ng\"\nkind = \"nginx\"\nupstream_file = \"u.conf\"\nupstream = \"app\"\nstable = \"127.0.0.1:1\"\ncanary = \"127.0.0.1:2\"\n[[traffic.routers]]\nname = \"mesh\"\nkind = \"command\"\nset_weight = \"true\"\n",
        member("lb1", "/run/a.sock"),
        member("lb2", "/run/b.sock")
    ));
    let p = plan(&text);
    let router = &p.traffic.as_ref().unwrap().router;
    assert_eq!(router.router_kind(), RouterKind::Group);
    let kinds: Vec<(&str, &str)> = router
        .members()
        .iter()
        .map(|m| (m.name.as_str(), m.router.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("lb1", "haproxy"),
            ("lb2", "haproxy"),
            ("edge-ng", "nginx"),
            ("mesh", "command")
        ]
    );
    // `check` prints every member.
    let described = p.describe();
    assert!(
        described.contains("a group of 4, moved as one"),
        "{described}"
    );
    assert!(
        described.contains("- lb2: haproxy: runtime API /run/b.sock"),
        "{described}"
    );
}

#[test]
fn a_haproxy_source_sums_a_haproxy_group_and_refuses_a_mixed_one() {
    let both = format!("{}{}", member("lb1", "/a.sock"), member("lb2", "/b.sock"));
    let text =
        format!("{HEAD}[traffic]\nsteps = [100]\n{both}[analysis.source]\nkind = \"haproxy\"\n");
    match plan(&text).analysis.source {
        crate::config::SourcePlan::Haproxy(targets) => {
            let sockets: Vec<&str> = targets.iter().map(|t| t.socket.as_str()).collect();
            assert_eq!(sockets, ["/a.sock", "/b.sock"]);
        }
        other => panic!("{other:?}"),
    }
    let mixed = format!(
        "{HEAD}[traffic]\nsteps = [100]\n{}[[traffic.routers]]\nname = \"mesh\"\nkind = \"command\"\nset_weight = \"true\"\n[analysis.source]\nkind = \"haproxy\"\n",
        member("lb1", "/a.sock")
    );
    let e = errors(&mixed);
    assert!(
        e.iter()
            .any(|e| e.contains("mesh (command) is not haproxy")),
        "{e:?}"
    );
}

#[test]
fn a_group_s_mistakes_are_located() {
    // Both forms at once.
    let text = group(&format!(
        "[traffic.router]\n{HAPROXY}{}",
        member("lb1", "/a")
    ));
    let e = errors(&text);
    assert!(e.iter().any(|e| e.contains("not both")), "{e:?}");
    // A missing name, a taken name, a bad name.
    expect(
        &group(&format!("[[traffic.routers]]\n{HAPROXY}")),
        "7:1",
        "each [[traffic.routers]] member needs name",
    );
    let text = group(&format!("{}{}", member("lb1", "/a"), member("lb1", "/b")));
    expect(
        &text,
        "15:8",
        "name = \"lb1\" is taken by an earlier member",
    );
    expect(&group(&member("lb 1", "/a")), "8:8", "is not a router name");
    // The built-in router cannot be a member.
    expect(
        &group("[[traffic.routers]]\nname = \"x\"\nkind = \"builtin\"\nlisten = \"127.0.0.1:1\"\nstable = \"127.0.0.1:2\"\ncanary = \"127.0.0.1:3\"\n"),
        "9:8",
        "the builtin router cannot be a group member",
    );
    // A member's own keys are checked as a single router's are.
    expect(
        &group("[[traffic.routers]]\nname = \"x\"\nkind = \"command\"\n"),
        "7:1",
        "the command router needs set_weight",
    );
    // A single router has no name.
    expect(
        &router(&format!("name = \"lb1\"\n{HAPROXY}")),
        "8:8",
        "name is for the members of a group",
    );
}
