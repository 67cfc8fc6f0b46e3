//! `${env:…}` values are secrets: through the real binary, in every
//! placement an operator might use, they appear nowhere — stdout, stderr,
//! the journal, the summary, `show`, `history --json`, the state dir's file
//! names — in their raw, percent-encoded or JSON-escaped forms.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(90);

/// A value with characters that encodings change.
const TOKEN: &str = "tok/en+ SECRET:ab\"c";
const ENVIRONMENT: &str = "env-SECRET-0000";
const PASSWORD: &str = "pw@SECRET#2222";

/// Every form of `secret` that must not appear.
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_string(),
        json[1..json.len() - 1].to_string(),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
    ]
}

fn all_text_under(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        out.push_str(&path.display().to_string());
        out.push('\n');
        if path.is_dir() {
            all_text_under(&path, out);
        } else if let Ok(text) = std::fs::read(&path) {
            out.push_str(&String::from_utf8_lossy(&text));
        }
    }
}

#[test]
fn secrets_appear_nowhere_whatever_their_placement() {
    let dir = tempfile::tempdir().unwrap();
    let (_v1, stable) = demo_app("v1", &[]);
    let (_v2, canary) = demo_app("v2", &[]);
    let listen = free_addr();
    let dead = free_addr();
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!(
            r#"[deployment]
service = "svc"
version = "v2"
previous = "v1"
environment = "${{env:ENVSEC}}"
state_dir = "state"

[[smoke]]
name = "health with a token"
http = "http://{stable}/health?token=${{env:TOKEN}}"

[[smoke]]
name = "a command that prints its secret"
run = 'echo "the value is $MY_TOKEN"; printf "%s" "$MY_TOKEN" | python3 -c "import sys,urllib.parse,json;v=sys.stdin.read();print(urllib.parse.quote(v, safe=\"\"));print(json.dumps(v))"'
env = {{ MY_TOKEN = "${{env:TOKEN}}" }}

[traffic]
steps = [10, 100]
bake = "1s"
approval = "auto"

[traffic.router]
kind = "builtin"
listen = "{listen}"
stable = "{stable}"
canary = "{canary}"

[analysis]
interval = "200ms"
method = "threshold"
window = "1s"
failure_limit = 2

[analysis.source]
kind = "prometheus"
url = "http://user:${{env:PROMPW}}@{dead}"
error_rate = 'sum(rate(x{{version="$version"}}[1m]))'
requests = 'sum(increase(x{{version="$version"}}[1m]))'
"#
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .current_dir(dir.path())
            .env("TOKEN", TOKEN)
            .env("ENVSEC", ENVIRONMENT)
            .env("PROMPW", PASSWORD)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let mut seen = String::new();
    let check = run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    seen.push_str(&text(&check.stdout));
    seen.push_str(&text(&check.stderr));
    // The source is unreachable: the canary is rolled back (blind), and its
    // errors quote the source's URL.
    let out = run(&["run", "--headless", "--json"]);
    assert!(
        out.status.code().is_some_and(|c| c >= 3),
        "{}",
        text(&out.stderr)
    );
    seen.push_str(&text(&out.stdout));
    seen.push_str(&text(&out.stderr));
    for args in [
        &["show", "last"][..],
        &["show", "--json", "last"],
        &["history", "--json"],
    ] {
        let o = run(args);
        seen.push_str(&text(&o.stdout));
        seen.push_str(&text(&o.stderr));
    }
    all_text_under(&dir.path().join("state"), &mut seen);
    assert!(seen.contains("••••••"), "the secrets were masked somewhere");
    assert!(seen.contains("cannot reach Prometheus"), "{seen}");
    for secret in [TOKEN, ENVIRONMENT, PASSWORD] {
        for form in forms(secret) {
            assert!(
                !seen.contains(&form),
                "{form:?} (a form of a secret) leaked:\n{}",
                seen.lines()
                    .filter(|l| l.contains(&form))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    let _ = LIMIT;
}
