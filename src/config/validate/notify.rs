//! `[notify]`: the webhook told of a release's start, approvals, rollback and
//! outcome; its format, signing secret and events.

use super::super::error::quoted;
use super::super::limits::MAX_TEXT;
use super::super::plan::{NotifyFormat, NotifyPlan, NOTIFY_EVENTS};
use super::super::raw::{Located, RawNotify};
use super::{Choice, Validator};

impl Choice for NotifyFormat {
    const ALL: &'static [Self] = &[NotifyFormat::Slack, NotifyFormat::Json];
    fn word(self) -> &'static str {
        match self {
            NotifyFormat::Slack => "slack",
            NotifyFormat::Json => "json",
        }
    }
}

pub(super) fn validate(v: &mut Validator, n: &Located<RawNotify>) -> NotifyPlan {
    let r = &n.value;
    let (webhook, webhook_display) = match &r.webhook {
        Some(w) => (
            v.url(w, "webhook", "an http:// or https:// URL")
                .unwrap_or_default(),
            crate::redact::url_for_display(w.get_ref()),
        ),
        None if n.dropped("webhook") => (String::new(), String::new()),
        None => {
            v.error(
                n.span.clone(),
                "[notify] needs webhook = \"https://…\" (often \"${env:SLACK_WEBHOOK_URL}\")",
            );
            (String::new(), String::new())
        }
    };
    let format = v.choice(&r.format, "format", NotifyFormat::Slack);
    let secret = r.secret.as_ref().map(|s| {
        let secret = v.text(s, "secret", MAX_TEXT).unwrap_or_default();
        if s.get_ref().is_empty() {
            v.error(
                s.span(),
                "secret is empty: give the signing secret, or leave the key out",
            );
        }
        secret
    });
    let events = match &r.events {
        None => NOTIFY_EVENTS.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            let mut out: Vec<String> = Vec::new();
            for e in list.get_ref() {
                let word = e.get_ref();
                if !NOTIFY_EVENTS.contains(&word.as_str()) {
                    v.error(
                        e.span(),
                        format!(
                            "event {} is not known: use {}",
                            quoted(word),
                            NOTIFY_EVENTS.join(", ")
                        ),
                    );
                } else if !out.contains(word) {
                    out.push(word.clone());
                }
            }
            out
        }
    };
    NotifyPlan {
        webhook,
        webhook_display,
        format,
        secret,
        events,
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
