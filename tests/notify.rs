//! Webhooks to a real local HTTP receiver: Slack and signed JSON formats on a
//! successful and a rolled-back run; an unreachable webhook changes nothing
//! about the deployment; `show` and `history --json` tell the story.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

/// A tiny HTTP/1.1 server recording every POST; answers 200.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let store = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut headers = HashMap::new();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                            }
                        }
                        let len: usize = headers
                            .get("content-length")
                            .and_then(|l| l.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        store.lock().unwrap().push(Received {
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                    }
                });
            }
        });
        Receiver { addr, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn write_plan(dir: &std::path::Path, webhook: &str, format: &str, smoke_ok: bool) {
    std::fs::write(
        dir.join("deploy.toml"),
        format!(
            r#"[deployment]
service = "checkout"
version = "v2"
previous = "v1"
state_dir = "state"

[[prepare]]
name = "ready"
run = "true"

[[smoke]]
name = "smoke"
run = "{}"

[[rollback]]
name = "undo"
run = "true"

[notify]
webhook = "{webhook}"
format = "{format}"
secret = "${{env:CUTOVER_TEST_WEBHOOK_SECRET}}"
"#,
            if smoke_ok { "true" } else { "false" }
        ),
    )
    .unwrap();
}

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("USER", "tester")
        .env(
            "CUTOVER_TEST_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn json_webhooks_are_signed_and_tell_start_and_success() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &format!("http://{}/hook", receiver.addr),
        "json",
        true,
    );
    let out = run(dir.path(), &["run", "--headless"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = receiver.received();
    let types: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, ["deployment.started", "deployment.succeeded"]);
    for r in &got {
        let id = &r.headers["webhook-id"];
        let ts = &r.headers["webhook-timestamp"];
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(r.headers["webhook-signature"], expected);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["data"]["service"], "checkout");
        assert_eq!(v["data"]["version"], "v2");
        assert_eq!(v["data"]["operator"], common::account());
        assert!(v["data"]["deployment_id"]
            .as_str()
            .unwrap()
            .ends_with("-checkout-v2"));
    }
    // The summary beside the journal, and `show` / `history --json` agree.
    let (path, _) = journal(&dir.path().join("state"));
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path.with_extension("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["outcome"], "succeeded");
    let id = summary["id"].as_str().unwrap().to_string();
    let show = run(dir.path(), &["show", &id]);
    assert_eq!(show.status.code(), Some(0));
    let story = text(&show.stdout);
    assert!(
        story.contains("outcome   succeeded") && story.contains("passed  ready"),
        "{story}"
    );
}

#[test]
fn slack_webhooks_tell_a_rollback() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &format!("http://{}/services/T/B/x", receiver.addr),
        "slack",
        false,
    );
    let out = run(dir.path(), &["run", "--headless"]);
    assert_eq!(out.status.code(), Some(3));
    let got = receiver.received();
    assert_eq!(got.len(), 2, "{got:?}");
    let last: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
    let text_field = last["text"].as_str().unwrap();
    assert!(
        text_field.contains("ROLLED BACK") && text_field.contains("smoke"),
        "{text_field}"
    );
    assert_eq!(last["blocks"][0]["type"], "section");
    assert!(!got[0].headers.contains_key("webhook-signature"));

    let out = run(dir.path(), &["history", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["outcome"], "rolled_back");
    let id = rows[0]["id"].as_str().unwrap().to_string();
    let out = run(dir.path(), &["show", "--json", &id]);
    let story: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(story["rollback"]["source"], "check");
    assert_eq!(story["rollback"]["outcome"], "succeeded");
    assert!(story["events"].as_array().unwrap().len() > 5);
}

#[test]
fn an_unreachable_webhook_changes_nothing_about_the_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_addr();
    write_plan(dir.path(), &format!("http://{closed}/hook"), "json", true);
    let out = run(dir.path(), &["run", "--headless"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (_, events) = journal(&dir.path().join("state"));
    let finished = events
        .iter()
        .position(|e| e["event"] == "deployment_finished")
        .unwrap();
    assert_eq!(events[finished]["outcome"], "succeeded");
    // Delivery failures are on record; the run went on without waiting for them.
    let failed: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == "notify_failed")
        .map(|(i, _)| i)
        .collect();
    assert!(!failed.is_empty(), "the failed deliveries are journaled");
    assert!(
        events[failed[0]]["attempts"].as_u64().unwrap() >= 2,
        "retried: {}",
        events[failed[0]]
    );
}
