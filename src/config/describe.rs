//! The plan as `cutover check` prints it: what would run, in order, with no secret values.

use std::fmt::Write;

use super::plan::{CheckKind, LockPlan, NotifyFormat, Plan, RouterPlan, SourcePlan};

use crate::domain::StageName;

impl Plan {
    pub fn describe(&self) -> String {
        let mut o = String::new();
        let d = &self.deployment;
        let _ = writeln!(o, "plan {}", self.source);
        let _ = writeln!(
            o,
            "  service     {}  {} → {}{}",
            d.service,
            d.previous.as_deref().unwrap_or("(previous not given)"),
            d.version,
            d.environment
                .as_ref()
                .map(|e| format!("  [{e}]"))
                .unwrap_or_default()
        );
        let _ = writeln!(o, "  state dir   {}", d.state_dir.display());
        for stage in StageName::ALL {
            let label = format!("{} {}", stage.number(), stage);
            if stage == StageName::Traffic {
                match &self.traffic {
                    None => {
                        let _ = writeln!(o, "  {label:<13} not configured (passes)");
                    }
                    Some(t) => {
                        let steps: Vec<String> = t.steps.iter().map(|s| format!("{s}%")).collect();
                        let _ = writeln!(
                            o,
                            "  {label:<13} {} {}, bake {} per step, approval {}, on_failure {}, on_disconnect {} (after {} unattended), step deadline {}",
                            t.strategy.as_str(),
                            steps.join(" → "),
                            humantime::format_duration(t.bake),
                            t.approval.as_str(),
                            t.on_failure.as_str(),
                            t.on_disconnect.as_str(),
                            humantime::format_duration(t.unattended_after),
                            humantime::format_duration(t.step_deadline),
                        );
                        match &t.router {
                            RouterPlan::Group(members) => {
                                let _ = writeln!(
                                    o,
                                    "                routers  a group of {}, moved as one (every change applied to all and read back from each)",
                                    members.len()
                                );
                                for m in members {
                                    let _ = writeln!(
                                        o,
                                        "                  - {}: {}",
                                        m.name,
                                        router_line(&m.router)
                                    );
                                }
                            }
                            single => {
                                let _ =
                                    writeln!(o, "                router   {}", router_line(single));
                            }
                        }
                        let a = &self.analysis;
                        let mut limits = Vec::new();
                        if let Some(v) = a.max_error_rate {
                            limits.push(format!("error rate ≤ {}%", v * 100.0));
                        }
                        if let Some(v) = a.max_p99_ms {
                            limits.push(format!("p99 ≤ {v} ms"));
                        }
                        if let Some(v) = a.max_error_rate_increase {
                            limits.push(format!("error rate ≤ stable + {} points", v * 100.0));
                        }
                        if let Some(v) = a.max_p99_ratio {
                            limits.push(format!("p99 ≤ {v}× stable"));
                        }
                        let source = match &a.source {
                            SourcePlan::Builtin => "builtin (the router's own counts)".to_string(),
                            SourcePlan::Prometheus {
                                url_display,
                                queries,
                            } => format!(
                                "prometheus at {url_display} (version=\"{}\" against \"{}\")",
                                queries.canary_version, queries.stable_version
                            ),
                            SourcePlan::Haproxy(targets) => match targets.as_slice() {
                                [h] => format!(
                                    "haproxy stats of {}/{} and {}/{}",
                                    h.backend, h.canary_server, h.backend, h.stable_server
                                ),
                                all => format!(
                                    "haproxy stats summed over the {} routers of the group",
                                    all.len()
                                ),
                            },
                            SourcePlan::Command { sample } => format!("command `{sample}`"),
                        };
                        let _ = writeln!(
                            o,
                            "                analysis {source}, a sample every {} over {}, at least {} canary requests, {} failing samples in a row fail",
                            humantime::format_duration(a.interval),
                            humantime::format_duration(a.window),
                            a.min_requests,
                            a.failure_limit
                        );
                        if a.method == super::plan::Method::Sequential {
                            let slow = match &a.source {
                                SourcePlan::Haproxy(_) => {
                                    "slow requests not judged (HAProxy counts no latencies)"
                                        .to_string()
                                }
                                SourcePlan::Prometheus { queries, .. }
                                    if queries.slow_total.is_none() =>
                                {
                                    "slow requests not judged (no slow_total query)".to_string()
                                }
                                _ => format!("requests slower than {} ms", a.slow_ms),
                            };
                            let _ = writeln!(
                                o,
                                "                judge    sequential: 5xx and {slow}, alpha {}, tolerance {}; the limits below are guards",
                                a.alpha, a.tolerance
                            );
                        } else if !a.method_written
                            && matches!(
                                a.source,
                                SourcePlan::Command { .. } | SourcePlan::Prometheus { .. }
                            )
                        {
                            let _ = writeln!(
                                o,
                                "                judge    threshold: the limits below, per window (no method written, and this source gives no counts the plan shows; set method = \"sequential\" when it does)"
                            );
                        } else {
                            let _ = writeln!(
                                o,
                                "                judge    threshold: the limits below, per window"
                            );
                        }
                        let _ = writeln!(
                            o,
                            "                limits   {}",
                            if limits.is_empty() {
                                "none".to_string()
                            } else {
                                limits.join(", ")
                            }
                        );
                    }
                }
                continue;
            }
            let checks = self.checks(stage);
            if !self.has_stage(stage) {
                let _ = writeln!(o, "  {label:<13} not configured (passes)");
                continue;
            }
            let _ = writeln!(
                o,
                "  {label:<13} {} check{}",
                checks.len(),
                if checks.len() == 1 { "" } else { "s" }
            );
            for c in checks {
                let mut opts = Vec::new();
                if !matches!(
                    c.kind,
                    CheckKind::Manual { .. } | CheckKind::Artifact { .. }
                ) {
                    opts.push(format!("timeout {}", humantime::format_duration(c.timeout)));
                }
                if c.retries > 0 {
                    opts.push(format!(
                        "{} retries every {}",
                        c.retries,
                        humantime::format_duration(c.retry_delay)
                    ));
                }
                if c.optional {
                    opts.push("optional".into());
                }
                if let CheckKind::Http {
                    expect_status,
                    expect_body,
                    ..
                } = &c.kind
                {
                    if let Some(s) = expect_status {
                        opts.push(format!("expects {s}"));
                    }
                    if let Some(b) = expect_body {
                        opts.push(format!("body contains {b:?}"));
                    }
                }
                let _ = writeln!(
                    o,
                    "      - {} [{}] {}{}",
                    c.name,
                    c.kind.label(),
                    c.kind.target(),
                    if opts.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", opts.join(", "))
                    }
                );
            }
        }
        let _ = match &self.lock {
            LockPlan::File => writeln!(
                o,
                "  lock        file {} (one run per state dir on this machine)",
                d.state_dir.join("lock").display()
            ),
            LockPlan::Etcd(e) => writeln!(
                o,
                "  lock        etcd lease {} on {} (ttl {}, {}); its revision fences every router write",
                e.key,
                e.endpoints.join(", "),
                humantime::format_duration(e.ttl),
                if e.wait.is_zero() {
                    "a held lease is refused at once".to_string()
                } else {
                    format!("a held lease is waited for up to {}", humantime::format_duration(e.wait))
                }
            ),
        };
        if let Some(n) = &self.notify {
            let _ = writeln!(
                o,
                "  notify      {} webhook {} on {}",
                match n.format {
                    NotifyFormat::Slack => "slack",
                    NotifyFormat::Json => "json",
                },
                n.webhook_display,
                n.events.join(", ")
            );
        }
        self.redact(&o)
    }
}

/// One router, as `check` prints it.
fn router_line(router: &RouterPlan) -> String {
    match router {
        RouterPlan::Builtin {
            listen,
            stable,
            canary,
        } => format!("builtin: clients on {listen}, stable {stable}, canary {canary}"),
        RouterPlan::Command {
            set_weight,
            get_weight,
        } => format!(
            "command: set_weight `{set_weight}`{}",
            get_weight
                .as_ref()
                .map(|g| format!(", get_weight `{g}`"))
                .unwrap_or_else(|| ", no get_weight (the last weight set is trusted)".into())
        ),
        RouterPlan::Haproxy(h) => format!(
            "haproxy: runtime API {}, backend {}, stable server {}, canary server {}",
            h.socket, h.backend, h.stable_server, h.canary_server
        ),
        RouterPlan::Nginx(n) => format!(
            "nginx: upstream {} in {} (stable {}, canary {}), test `{}`, reload `{}`",
            n.upstream,
            n.upstream_file.display(),
            n.stable,
            n.canary,
            n.test,
            n.reload
        ),
        RouterPlan::Group(members) => format!("a group of {}", members.len()),
    }
}
