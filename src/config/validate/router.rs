//! `[traffic.router]`, or `[[traffic.routers]]` for a group: how traffic is
//! moved. Each kind's keys, required keys and plan are here, and only here:
//! adding a router adds a [`RouterKind`] and one arm to each match below.

use std::ops::Range;

use super::super::error::quoted;
use super::super::limits::{
    is_haproxy_name_char, is_service_char, MAX_HAPROXY_NAME, MAX_MEMBERS, MAX_MEMBER_NAME, MAX_TEXT,
};
use super::super::plan::{GroupMember, HaproxyTarget, NginxConfig, RouterKind, RouterPlan};
use super::super::raw::{Located, RawRouter, S};
use super::{one_of, span_of, Choice, Validator};

impl Choice for RouterKind {
    const ALL: &'static [Self] = &RouterKind::ALL;

    fn word(self) -> &'static str {
        self.as_str()
    }
}

/// Every key of `[traffic.router]` but `kind`, with where it is written.
fn given(r: &RawRouter) -> [(&'static str, Option<Range<usize>>); 13] {
    [
        ("listen", span_of(&r.listen)),
        ("stable", span_of(&r.stable)),
        ("canary", span_of(&r.canary)),
        ("socket", span_of(&r.socket)),
        ("backend", span_of(&r.backend)),
        ("stable_server", span_of(&r.stable_server)),
        ("canary_server", span_of(&r.canary_server)),
        ("upstream_file", span_of(&r.upstream_file)),
        ("upstream", span_of(&r.upstream)),
        ("test", span_of(&r.test)),
        ("reload", span_of(&r.reload)),
        ("set_weight", span_of(&r.set_weight)),
        ("get_weight", span_of(&r.get_weight)),
    ]
}

/// The keys each kind reads (besides `kind`).
fn keys(kind: RouterKind) -> &'static [&'static str] {
    match kind {
        RouterKind::Builtin => &["listen", "stable", "canary"],
        RouterKind::Haproxy => &["socket", "backend", "stable_server", "canary_server"],
        RouterKind::Nginx => &[
            "upstream_file",
            "upstream",
            "stable",
            "canary",
            "test",
            "reload",
        ],
        RouterKind::Command => &["set_weight", "get_weight"],
        RouterKind::Group => &[],
    }
}

/// The kind as written, when it is one (for other sections' cross-checks,
/// which must not repeat the router's own errors).
pub(super) fn written_kind(r: &Located<RawRouter>) -> Option<RouterKind> {
    let k = r.value.kind.as_ref()?;
    RouterKind::ALL
        .into_iter()
        .find(|c| c.as_str() == k.get_ref())
}

/// `[traffic.router]`: one router.
pub(super) fn validate(v: &mut Validator, r: &Located<RawRouter>) -> Option<RouterPlan> {
    if let Some(name) = &r.value.name {
        v.error(
            name.span(),
            "name is for the members of a group ([[traffic.routers]]): a single [traffic.router] has none; drop it",
        );
    }
    router(v, r, "[traffic.router]")
}

/// `[[traffic.routers]]`: a group of routers moved as one. Each member names
/// itself (unique) and is a haproxy, nginx or command router.
pub(super) fn validate_group(
    v: &mut Validator,
    at: &Range<usize>,
    members: &[Located<RawRouter>],
) -> Option<RouterPlan> {
    if members.is_empty() {
        v.error(
            at.clone(),
            "[[traffic.routers]] lists no router: add at least one member with name and kind",
        );
        return None;
    }
    if members.len() > MAX_MEMBERS {
        v.error(
            at.clone(),
            format!(
                "[[traffic.routers]] lists {} routers: use at most {MAX_MEMBERS}",
                members.len()
            ),
        );
    }
    let mut out: Vec<GroupMember> = Vec::with_capacity(members.len());
    let mut ok = true;
    for m in members {
        let name = member_name(v, m, &out);
        let plan = router(v, m, "each [[traffic.routers]] member");
        if let (Some(RouterPlan::Builtin { .. }), Some(kind)) = (&plan, &m.value.kind) {
            v.error(
                kind.span(),
                "the builtin router cannot be a group member (it serves from this process on one address): group haproxy, nginx or command routers",
            );
            ok = false;
            continue;
        }
        match (name, plan) {
            (Some(name), Some(router)) => out.push(GroupMember { name, router }),
            _ => ok = false,
        }
    }
    ok.then_some(RouterPlan::Group(out))
}

/// A member's `name`: required, file-name characters, unique in the group.
fn member_name(v: &mut Validator, m: &Located<RawRouter>, seen: &[GroupMember]) -> Option<String> {
    let Some(written) = &m.value.name else {
        if !m.dropped("name") {
            v.error(
                m.span.clone(),
                "each [[traffic.routers]] member needs name = \"…\" (unique in the group, shown on the dashboard and in the journal)",
            );
        }
        return None;
    };
    let name = v.text(written, "name", MAX_MEMBER_NAME)?;
    if name.is_empty() || !name.chars().all(is_service_char) {
        v.error(
            written.span(),
            format!(
                "name = {} is not a router name: use letters, digits, '-', '_' or '.'",
                quoted(written.get_ref())
            ),
        );
        return None;
    }
    if seen.iter().any(|s| s.name == name) {
        v.error(
            written.span(),
            format!(
                "name = {} is taken by an earlier member: each router of the group needs its own name",
                quoted(written.get_ref())
            ),
        );
        return None;
    }
    Some(name)
}

/// One router's plan from its table; `table` names it in messages.
fn router(v: &mut Validator, r: &Located<RawRouter>, table: &str) -> Option<RouterPlan> {
    let rr = &r.value;
    let Some(kind) = &rr.kind else {
        if r.dropped("kind") {
            return None;
        }
        v.error(
            r.span.clone(),
            format!("{table} needs kind = {}", one_of::<RouterKind>()),
        );
        return None;
    };
    let kind_word = quoted(kind.get_ref());
    let kind = v.parse_choice::<RouterKind>(kind, "router kind")?;
    let allowed = keys(kind);
    for (k, span) in given(rr) {
        if let Some(span) = span {
            if !allowed.contains(&k) {
                v.error(
                    span,
                    format!(
                        "{k} does not apply to a {kind_word} router: its keys are {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }
    match kind {
        // Not a kind a table names (`Choice` never parses it).
        RouterKind::Group => None,
        RouterKind::Builtin => {
            let [listen, stable, canary] = v.required(
                r,
                [
                    (
                        &rr.listen,
                        "listen",
                        "the builtin router needs listen = \"host:port\" (where clients connect)",
                    ),
                    (
                        &rr.stable,
                        "stable",
                        "the builtin router needs stable = \"host:port\" (the running version)",
                    ),
                    (
                        &rr.canary,
                        "canary",
                        "the builtin router needs canary = \"host:port\" (the new version)",
                    ),
                ],
            )?;
            let listen = v.addr(listen, "listen");
            let stable = v.addr(stable, "stable");
            let canary = v.addr(canary, "canary");
            Some(RouterPlan::Builtin {
                listen: listen?,
                stable: stable?,
                canary: canary?,
            })
        }
        RouterKind::Command => {
            let [set] = v.required(
                r,
                [(
                    &rr.set_weight,
                    "set_weight",
                    "the command router needs set_weight = \"command using $CUTOVER_WEIGHT\"",
                )],
            )?;
            Some(RouterPlan::Command {
                set_weight: v.script(set, "set_weight"),
                get_weight: rr.get_weight.as_ref().map(|g| v.script(g, "get_weight")),
            })
        }
        RouterKind::Haproxy => {
            let [socket, backend, stable, canary] = v.required(
                r,
                [
                    (&rr.socket, "socket", "the haproxy router needs socket = \"/run/haproxy/admin.sock\" (or \"host:port\"): HAProxy's runtime API at admin level"),
                    (&rr.backend, "backend", "the haproxy router needs backend = \"…\" (the backend holding both servers)"),
                    (&rr.stable_server, "stable_server", "the haproxy router needs stable_server = \"…\" (the running version's server)"),
                    (&rr.canary_server, "canary_server", "the haproxy router needs canary_server = \"…\" (the new version's server)"),
                ],
            )?;
            let socket_text = v.text(socket, "socket", MAX_TEXT).unwrap_or_default();
            if socket.get_ref().is_empty() {
                v.error(
                    socket.span(),
                    "socket is empty: write a unix socket path or host:port",
                );
            }
            // host:port stays; a relative socket path is relative to this file.
            let is_tcp = socket_text
                .rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
            let socket = if is_tcp || socket_text.starts_with('/') {
                socket_text
            } else {
                v.base().join(&socket_text).display().to_string()
            };
            Some(RouterPlan::Haproxy(HaproxyTarget {
                socket,
                backend: haproxy_name(v, backend, "backend"),
                stable_server: haproxy_name(v, stable, "stable_server"),
                canary_server: haproxy_name(v, canary, "canary_server"),
            }))
        }
        RouterKind::Nginx => {
            let [file, upstream, stable, canary] = v.required(
                r,
                [
                    (&rr.upstream_file, "upstream_file", "the nginx router needs upstream_file = \"…\" (the file cutover writes the upstream block to)"),
                    (&rr.upstream, "upstream", "the nginx router needs upstream = \"…\" (the upstream block's name)"),
                    (&rr.stable, "stable", "the nginx router needs stable = \"host:port\" (the running version)"),
                    (&rr.canary, "canary", "the nginx router needs canary = \"host:port\" (the new version)"),
                ],
            )?;
            let name = v.text(upstream, "upstream", MAX_HAPROXY_NAME);
            let name_ok = name.as_deref().is_none_or(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            });
            if !name_ok {
                v.error(
                    upstream.span(),
                    format!("upstream = {} is not an nginx upstream name: use letters, digits, '_', '-' or '.'", quoted(upstream.get_ref())),
                );
            }
            Some(RouterPlan::Nginx(NginxConfig {
                upstream_file: v.path(file, "upstream_file"),
                upstream: name.unwrap_or_default(),
                stable: nginx_server(v, stable, "stable"),
                canary: nginx_server(v, canary, "canary"),
                test: rr
                    .test
                    .as_ref()
                    .map(|t| v.script(t, "test"))
                    .unwrap_or_else(|| "nginx -t".into()),
                reload: rr
                    .reload
                    .as_ref()
                    .map(|t| v.script(t, "reload"))
                    .unwrap_or_else(|| "nginx -s reload".into()),
            }))
        }
    }
}

/// A backend or server name in HAProxy's own character set: the runtime API
/// reads commands separated by ';' and words by spaces, so anything else
/// could carry a second command.
fn haproxy_name(v: &mut Validator, s: &S<String>, key: &str) -> String {
    let Some(name) = v.expand(s) else {
        return String::new();
    };
    if name.is_empty() || !name.chars().all(is_haproxy_name_char) {
        v.error(
            s.span(),
            format!(
                "{key} = {} is not an HAProxy name: use letters, digits, '-', '_', '.' and ':' only",
                quoted(s.get_ref())
            ),
        );
    } else if name.chars().count() > MAX_HAPROXY_NAME {
        v.error(
            s.span(),
            format!("{key} is longer than {MAX_HAPROXY_NAME} characters: use a shorter name"),
        );
    }
    name
}

/// A server address as nginx's `server` directive takes it: host:port,
/// [v6]:port or unix:/path, with nothing nginx would parse as syntax.
fn nginx_server(v: &mut Validator, s: &S<String>, key: &str) -> String {
    let Some(addr) = v.text(s, key, MAX_TEXT) else {
        return String::new();
    };
    let ok = !addr.is_empty()
        && addr.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']' | '/')
        });
    if !ok {
        v.error(
            s.span(),
            format!(
                "{key} = {} is not a server address nginx accepts: write host:port",
                quoted(s.get_ref())
            ),
        );
    }
    addr
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
