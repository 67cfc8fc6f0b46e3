//! Stakeholder notifications: webhooks (Slack-compatible or signed JSON) sent
//! from a bounded queue by a task of their own, so a slow or dead receiver
//! never holds up a deployment or a rollback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{NotifyFormat, NotifyPlan};

/// Notices waiting for delivery; more are dropped (and said so).
const QUEUE: usize = 64;
/// Attempts per notice (the first and the retries).
const ATTEMPTS: u32 = 4;
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Started,
    ApprovalNeeded,
    RolledBack,
    Succeeded,
    Failed,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Started => "started",
            NoticeKind::ApprovalNeeded => "approval_needed",
            NoticeKind::RolledBack => "rolled_back",
            NoticeKind::Succeeded => "succeeded",
            NoticeKind::Failed => "failed",
        }
    }
}

/// What a notice says: the deployment as it stands when it is sent.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub event: NoticeKind,
    pub deployment_id: String,
    pub service: String,
    pub version: String,
    pub previous: Option<String>,
    pub environment: Option<String>,
    pub stage: Option<String>,
    pub weight: Option<u8>,
    pub verdict: Option<String>,
    pub operator: String,
    /// One sentence: what is waiting, why it rolled back, how it ended.
    pub message: String,
    pub time: DateTime<Utc>,
}

/// A delivery that did not make it, for the record.
#[derive(Debug, Clone)]
pub struct Failure {
    pub event: NoticeKind,
    pub error: String,
    pub attempts: u32,
}

pub struct Notifier {
    tx: Option<mpsc::Sender<Notice>>,
    events: Vec<String>,
    task: JoinHandle<()>,
    failures_tx: mpsc::UnboundedSender<Failure>,
    /// Notices queued or being delivered, so those still pending at exit are
    /// reported as undelivered.
    pending: Arc<Mutex<Vec<NoticeKind>>>,
}

impl Notifier {
    /// Starts the delivery task. Failures come back on the returned channel.
    pub fn start(plan: NotifyPlan) -> (Notifier, mpsc::UnboundedReceiver<Failure>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (failures_tx, failures_rx) = mpsc::unbounded_channel();
        let events = plan.events.clone();
        let pending = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(deliver_all(
            plan,
            rx,
            failures_tx.clone(),
            Arc::clone(&pending),
        ));
        (
            Notifier {
                tx: Some(tx),
                events,
                task,
                failures_tx,
                pending,
            },
            failures_rx,
        )
    }

    /// Queues a notice if the plan asks for its kind; never waits.
    pub fn send(&self, notice: Notice) {
        if !self.events.iter().any(|e| e == notice.event.as_str()) {
            return;
        }
        let Some(tx) = &self.tx else { return };
        let kind = notice.event;
        if let Ok(mut p) = self.pending.lock() {
            p.push(kind);
        }
        if tx.try_send(notice).is_err() {
            self.done(kind);
            let _ = self.failures_tx.send(Failure {
                event: kind,
                error: "the notification queue is full: notice dropped".into(),
                attempts: 0,
            });
        }
    }

    fn done(&self, kind: NoticeKind) {
        if let Ok(mut p) = self.pending.lock() {
            if let Some(i) = p.iter().position(|k| *k == kind) {
                p.remove(i);
            }
        }
    }

    /// Lets queued notices go out, waiting at most `limit`; those still
    /// pending then are reported as undelivered (for the journal).
    pub async fn flush(&mut self, limit: Duration) {
        self.tx = None;
        let task = &mut self.task;
        if tokio::time::timeout(limit, task).await.is_err() {
            self.task.abort();
            let left = self
                .pending
                .lock()
                .map(|mut p| std::mem::take(&mut *p))
                .unwrap_or_default();
            tracing::warn!(target: "cutover", "{} notification(s) still undelivered after {}: given up", left.len(), humantime::format_duration(limit));
            for kind in left {
                let _ = self.failures_tx.send(Failure {
                    event: kind,
                    error: format!(
                        "not delivered before cutover exited ({} allowed)",
                        humantime::format_duration(limit)
                    ),
                    attempts: 0,
                });
            }
        }
    }
}

async fn deliver_all(
    plan: NotifyPlan,
    mut rx: mpsc::Receiver<Notice>,
    failures: mpsc::UnboundedSender<Failure>,
    pending: Arc<Mutex<Vec<NoticeKind>>>,
) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "cutover", "notifications off: cannot build an HTTP client: {e}");
            return;
        }
    };
    while let Some(notice) = rx.recv().await {
        // Unique across resumes of one deployment (a counter would restart).
        let id = format!("msg_{}_{:016x}", notice.deployment_id, fastrand::u64(..));
        let kind = notice.event;
        let delivered = deliver(&client, &plan, &notice, &id).await;
        if let Ok(mut p) = pending.lock() {
            if let Some(i) = p.iter().position(|k| *k == kind) {
                p.remove(i);
            }
        }
        if let Err((error, attempts)) = delivered {
            tracing::warn!(target: "cutover", "notification {} not delivered to {}: {error}", kind.as_str(), plan.webhook_display);
            let _ = failures.send(Failure {
                event: kind,
                error,
                attempts,
            });
        }
    }
}

/// Sends one notice, retrying with backoff on connection errors, 5xx and 429.
async fn deliver(
    client: &reqwest::Client,
    plan: &NotifyPlan,
    notice: &Notice,
    id: &str,
) -> Result<(), (String, u32)> {
    // What leaves for the stakeholders carries no secret (a secret
    // environment name, a token quoted in a reason).
    let body = crate::redact::text(&match plan.format {
        NotifyFormat::Slack => slack_body(notice),
        NotifyFormat::Json => json_body(notice),
    });
    let mut backoff = Duration::from_millis(500);
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut req = client
            .post(&plan.webhook)
            .header("content-type", "application/json")
            .header("user-agent", concat!("cutover/", env!("CARGO_PKG_VERSION")));
        if plan.format == NotifyFormat::Json {
            let ts = Utc::now().timestamp();
            req = req
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string());
            if let Some(secret) = &plan.secret {
                req = req.header("webhook-signature", sign(secret, id, ts, &body));
            }
        }
        let retry_after = match req.body(body.clone()).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status();
                last = format!("HTTP {status}");
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return Err((last, attempt));
                }
                resp.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(30)))
            }
            Err(e) => {
                // The URL may carry a token: report the error without it.
                last = e.without_url().to_string();
                None
            }
        };
        if attempt < ATTEMPTS {
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
            backoff *= 2;
        }
    }
    Err((last, ATTEMPTS))
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (Standard Webhooks). A
/// `whsec_` secret is base64 after the prefix; any other is used as it is.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac = match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn json_body(n: &Notice) -> String {
    let payload = serde_json::json!({
        "type": format!("deployment.{}", n.event.as_str()),
        "timestamp": n.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": n,
    });
    payload.to_string()
}

fn headline(n: &Notice) -> String {
    let versions = format!("{} → {}", n.previous.as_deref().unwrap_or("?"), n.version);
    let env = n
        .environment
        .as_ref()
        .map(|e| format!(" in {e}"))
        .unwrap_or_default();
    match n.event {
        NoticeKind::Started => format!(
            "*{}* {versions}{env}: deployment started by {}",
            n.service, n.operator
        ),
        NoticeKind::ApprovalNeeded => format!(
            "*{}* {versions}{env} waits for approval: {}",
            n.service, n.message
        ),
        NoticeKind::RolledBack => {
            format!("*{}* {versions}{env} ROLLED BACK: {}", n.service, n.message)
        }
        NoticeKind::Succeeded => format!("*{}* {versions}{env} is live: {}", n.service, n.message),
        NoticeKind::Failed => format!("*{}* {versions}{env} FAILED: {}", n.service, n.message),
    }
}

fn slack_body(n: &Notice) -> String {
    let text = headline(n);
    let mut context = vec![format!("deployment `{}`", n.deployment_id)];
    if let Some(s) = &n.stage {
        context.push(format!("stage {s}"));
    }
    if let Some(w) = n.weight {
        context.push(format!("canary {w}%"));
    }
    if let Some(v) = &n.verdict {
        context.push(format!("analysis {v}"));
    }
    context.push(format!("operator {}", n.operator));
    serde_json::json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context.join(" · ")}]}
        ]
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn slack_body_has_text_and_blocks() {
        let n = Notice {
            event: NoticeKind::RolledBack,
            deployment_id: "id".into(),
            service: "checkout".into(),
            version: "v2".into(),
            previous: Some("v1".into()),
            environment: None,
            stage: Some("traffic".into()),
            weight: Some(0),
            verdict: Some("fail".into()),
            operator: "alice".into(),
            message: "error rate 50%".into(),
            time: Utc::now(),
        };
        let v: serde_json::Value = serde_json::from_str(&slack_body(&n)).unwrap();
        assert!(v["text"].as_str().unwrap().contains("ROLLED BACK"));
        assert_eq!(v["blocks"][0]["type"], "section");
    }
}
