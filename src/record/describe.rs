//! Each journal event as one human line, for headless output and logs.

use super::event::Event;

impl Event {
    /// One human line, for headless output and logs.
    pub fn describe(&self) -> String {
        fn pct(r: Option<f64>) -> String {
            r.map(|r| format!("{:.2}%", r * 100.0))
                .unwrap_or_else(|| "-".into())
        }
        fn ms(v: Option<f64>) -> String {
            v.map(|v| format!("{v:.0}ms")).unwrap_or_else(|| "-".into())
        }
        match self {
            Event::DeploymentStarted {
                id,
                service,
                version,
                previous,
                environment,
                operator,
                ..
            } => format!(
                "deployment {id} started: {service} {} → {version}{} by {operator}",
                previous.as_deref().unwrap_or("?"),
                environment
                    .as_ref()
                    .map(|e| format!(" in {e}"))
                    .unwrap_or_default()
            ),
            Event::StageStarted { stage } => format!("{stage}: started"),
            Event::StageFinished { stage, outcome } => {
                format!("{stage}: {}", outcome.as_str().replace('_', " "))
            }
            Event::CheckStarted {
                stage,
                check,
                attempt,
                ..
            } => {
                if *attempt > 1 {
                    format!("{stage} / {check}: attempt {attempt}")
                } else {
                    format!("{stage} / {check}: running")
                }
            }
            Event::CheckFinished {
                stage,
                check,
                outcome,
                duration_ms,
                message,
                ..
            } => format!(
                "{stage} / {check}: {} in {duration_ms} ms ({message})",
                outcome.as_str().replace('_', " ")
            ),
            Event::Approved {
                stage,
                step,
                check,
                operator,
                count,
                needed,
                judge_undecided,
                ..
            } => match (step, check) {
                (Some(s), _) => {
                    let own = if *judge_undecided {
                        " on their own judgement: the judge had not passed the step"
                    } else {
                        ""
                    };
                    match (count, needed) {
                        (Some(c), Some(n)) if n > &1 => format!(
                            "{stage}: step to {s}% approved by {operator} ({c} of {n} operators){own}"
                        ),
                        _ => format!("{stage}: step to {s}% approved by {operator}{own}"),
                    }
                }
                (_, Some(c)) => format!("{stage} / {c}: confirmed by {operator}"),
                _ => format!("{stage}: approved by {operator}"),
            },
            Event::WeightRequested {
                weight,
                source,
                operator,
                ..
            } => format!(
                "weight {weight}% requested ({}, {operator})",
                source.as_str().replace('_', " ")
            ),
            Event::WeightApplied {
                weight,
                router,
                elapsed_ms,
                members,
                skew_ms,
            } => match members {
                Some(m) if m.iter().all(|m| m.confirmed) => format!(
                    "weight {weight}% applied by all {} routers in {elapsed_ms:.2} ms (skew {:.2} ms)",
                    m.len(),
                    skew_ms.unwrap_or(0.0)
                ),
                Some(m) => format!(
                    "weight {weight}% applied by {} of {} routers in {elapsed_ms:.2} ms (not reached: {})",
                    m.iter().filter(|m| m.confirmed).count(),
                    m.len(),
                    m.iter()
                        .filter(|m| !m.confirmed)
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => {
                    format!("weight {weight}% applied by the {router} router in {elapsed_ms:.2} ms")
                }
            },
            Event::WeightFailed {
                weight, router, error, ..
            } => format!("weight {weight}% NOT applied by the {router} router: {error}"),
            Event::LockHeld {
                kind,
                key,
                revision,
                holder,
                ttl_ms,
            } => format!(
                "{kind} release lease {key} held by {holder} (fencing token {revision}, ttl {} s)",
                ttl_ms / 1000
            ),
            Event::LockLost { key, revision, why } => format!(
                "RELEASE LEASE LOST: {key} (fencing token {revision}): {why}; no router is changed from here on"
            ),
            Event::Analysis {
                weight,
                canary,
                stable,
                verdict,
                reasons,
                connections,
                ..
            } => {
                let mut s = format!(
                    "analysis at {weight}%: {} — canary {} req, {} errors, p99 {} | stable {} req, {} errors, p99 {}",
                    verdict.as_str(),
                    canary.requests,
                    pct(canary.error_rate),
                    ms(canary.p99_ms),
                    stable.requests,
                    pct(stable.error_rate),
                    ms(stable.p99_ms)
                );
                if !reasons.is_empty() {
                    s.push_str(" — ");
                    s.push_str(&reasons.join("; "));
                }
                // The built-in router at its connection cap is worth a word:
                // clients were turned away or cut off to admit others.
                if let Some(c) = connections
                    .as_deref()
                    .filter(|c| c.rejected_at_cap + c.evicted_at_cap > 0)
                {
                    s.push_str(&format!(
                        " — built-in router at its cap of {} connections: {} refused, {} closed to admit others since it started",
                        c.max_connections, c.rejected_at_cap, c.evicted_at_cap
                    ));
                }
                s
            }
            Event::Paused {
                operator, reason, ..
            } => format!("paused by {operator}: {reason}"),
            Event::Resumed { operator, .. } => format!("resumed by {operator}"),
            Event::RollbackStarted {
                reason,
                source,
                operator,
                ..
            } => format!(
                "ROLLBACK started ({}, {operator}): {reason}",
                source.as_str().replace('_', " ")
            ),
            Event::RollbackFinished {
                outcome,
                weight_applied_ms,
                problem,
            } => {
                let mut s = format!("rollback {}", outcome.as_str().replace('_', " "));
                if let Some(ms) = weight_applied_ms {
                    s.push_str(&format!(
                        ": traffic back on stable {ms:.2} ms after the request"
                    ));
                }
                if let Some(p) = problem {
                    s.push_str(&format!(" — {p}"));
                }
                s
            }
            Event::DeploymentResumed {
                operator,
                recorded_weight,
                router_weight,
            } => {
                let mut s = format!("deployment resumed by {operator}");
                match (recorded_weight, router_weight) {
                    (Some(r), Some(w)) if r != w => s.push_str(&format!(
                        " — the journal says {r}% but the router applies {w}%"
                    )),
                    (Some(r), _) => s.push_str(&format!(" at {r}%")),
                    _ => {}
                }
                s
            }
            Event::Note { message } => format!("note: {message}"),
            Event::Warning { message } => format!("WARNING: {message}"),
            Event::Baseline {
                interval_ms,
                stable,
            } => format!(
                "baseline: stable read {} times, every {interval_ms} ms, before the first step",
                stable.len()
            ),
            Event::Recovery {
                summary,
                recovered_ms,
                ..
            } => match recovered_ms {
                Some(ms) => format!("{summary} ({:.1}s after the rollback request)", ms / 1000.0),
                None => summary.clone(),
            },
            Event::ApprovalRefused {
                requested,
                operator,
                reason,
                ..
            } => match requested {
                Some(gate) => format!("approval of {gate} by {operator} refused: {reason}"),
                None => format!("approval by {operator} refused: {reason}"),
            },
            Event::CommandRefused {
                command,
                operator,
                reason,
                ..
            } => format!("{command} by {operator} refused: {reason}"),
            Event::CommandStarted { pgid, what, .. } => {
                format!("{what}: started (process group {pgid})")
            }
            Event::CommandFinished { pgid } => format!("process group {pgid}: command exited"),
            Event::OrphanStopped {
                pgid,
                what,
                processes,
            } => format!(
                "{what}: process group {pgid} of an earlier run was still alive ({processes} process(es)): stopped"
            ),
            Event::WeightDrift {
                expected,
                router_weight,
                detail,
            } => format!(
                "WEIGHT DRIFT: the journal says {expected}% but the router applies {router_weight}% ({detail})"
            ),
            Event::StepDeadline {
                weight,
                deadline_ms,
                reason,
            } => format!(
                "step at {weight}% reached no verdict within {}: {reason}",
                crate::record::story::format_duration_ms(Some(*deadline_ms))
            ),
            Event::DeploymentAbandoned { operator, reason } => {
                format!("deployment abandoned by {operator}: {reason}")
            }
            Event::NotifyFailed {
                notice,
                error,
                attempts,
            } => {
                format!("notification {notice} not delivered after {attempts} attempt(s): {error}")
            }
            Event::DeploymentFinished {
                outcome,
                duration_ms,
                reason,
            } => {
                let mut s = format!(
                    "deployment finished: {} after {:.1}s",
                    outcome.as_str(),
                    *duration_ms as f64 / 1000.0
                );
                if let Some(r) = reason {
                    s.push_str(&format!(" — {r}"));
                }
                s
            }
        }
    }
}
