//! `cutover history`: the deployments a state dir holds, read from their journals.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::journal;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub service: String,
    pub version: String,
    pub previous: Option<String>,
    /// The recorded outcome, or "unfinished".
    pub outcome: String,
    pub started: String,
    pub duration_ms: Option<u64>,
    pub operator: String,
    pub approved_by: Vec<String>,
    pub journal: String,
}

/// Reads one journal into a summary (None when it has no start event).
pub fn summarize(path: &Path) -> std::io::Result<Option<Summary>> {
    Ok(summarize_events(path, &journal::read_events(path)?))
}

/// The summary of a journal's events, already read.
fn summarize_events(path: &Path, events: &[serde_json::Value]) -> Option<Summary> {
    let first = events.first()?;
    if first.get("event").and_then(|e| e.as_str()) != Some("deployment_started") {
        return None;
    }
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let mut approved_by: Vec<String> = Vec::new();
    let mut outcome = "unfinished".to_string();
    let mut duration_ms = None;
    for e in events {
        match e.get("event").and_then(|x| x.as_str()) {
            Some("approved") => {
                if let Some(op) = s(e, "operator") {
                    if !approved_by.contains(&op) {
                        approved_by.push(op);
                    }
                }
            }
            Some("deployment_finished") => {
                outcome = s(e, "outcome").unwrap_or_else(|| "?".into());
                duration_ms = e.get("duration_ms").and_then(|d| d.as_u64());
            }
            _ => {}
        }
    }
    Some(Summary {
        id: s(first, "id").unwrap_or_else(|| file_id(path)),
        service: s(first, "service").unwrap_or_default(),
        version: s(first, "version").unwrap_or_default(),
        previous: s(first, "previous"),
        outcome,
        started: s(first, "ts").unwrap_or_default(),
        duration_ms,
        operator: s(first, "operator").unwrap_or_default(),
        approved_by,
        journal: path.display().to_string(),
    })
}

fn file_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn all(state_dir: &Path) -> std::io::Result<Vec<Summary>> {
    let mut out = Vec::new();
    for p in journal::list(state_dir)? {
        if let Some(s) = summarize(&p)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// The newest journal of a state dir that has no `deployment_finished`.
pub fn unfinished(state_dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let list = journal::list(state_dir)?;
    let Some(last) = list.last() else {
        return Ok(None);
    };
    Ok(match summarize(last)? {
        Some(s) if s.outcome == "unfinished" => Some(last.clone()),
        _ => None,
    })
}

pub fn format_duration_ms(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// The table `cutover history` prints.
pub fn table(rows: &[Summary]) -> String {
    let header = [
        "ID",
        "SERVICE",
        "VERSIONS",
        "OUTCOME",
        "STARTED (UTC)",
        "DURATION",
        "OPERATOR",
        "APPROVED BY",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.service.clone(),
                format!("{} → {}", r.previous.as_deref().unwrap_or("?"), r.version),
                r.outcome.clone(),
                r.started
                    .replace('T', " ")
                    .trim_end_matches('Z')
                    .to_string(),
                format_duration_ms(r.duration_ms),
                r.operator.clone(),
                if r.approved_by.is_empty() {
                    "-".into()
                } else {
                    r.approved_by.join(", ")
                },
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cols: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in &cells {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// One stage as it went.
#[derive(Debug, Clone, Serialize)]
pub struct StageLine {
    pub stage: String,
    pub outcome: String,
    pub started: String,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    pub stage: String,
    pub check: String,
    pub outcome: String,
    pub duration_ms: u64,
    pub attempts: u64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeightLine {
    pub ts: String,
    pub weight: u64,
    /// plan, operator, rollback or resume: who asked for it.
    pub source: String,
    pub operator: String,
    /// From the request to the router confirming it.
    pub applied_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AnalysisCounts {
    pub samples: u64,
    pub pass: u64,
    pub fail: u64,
    pub inconclusive: u64,
    /// The failing samples' reasons, oldest first (at most ten).
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalLine {
    pub ts: String,
    pub stage: String,
    pub what: String,
    pub operator: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackLine {
    pub started: String,
    pub reason: String,
    pub source: String,
    pub operator: String,
    pub outcome: Option<String>,
    pub weight_applied_ms: Option<f64>,
    pub problem: Option<String>,
}

/// A deployment's whole story, read from its journal: what `show` prints and
/// what the summary file beside the journal holds.
#[derive(Debug, Clone, Serialize)]
pub struct Story {
    #[serde(flatten)]
    pub summary: Summary,
    pub environment: Option<String>,
    pub reason: Option<String>,
    pub finished: Option<String>,
    pub stages: Vec<StageLine>,
    pub checks: Vec<CheckLine>,
    pub weights: Vec<WeightLine>,
    pub analysis: AnalysisCounts,
    pub approvals: Vec<ApprovalLine>,
    pub rollback: Option<RollbackLine>,
    pub resumed: u64,
    pub notify_failures: u64,
    pub journal_lines: u64,
}

pub fn story(path: &Path) -> std::io::Result<Option<Story>> {
    let events = journal::read_events(path)?;
    let Some(summary) = summarize_events(path, &events) else {
        return Ok(None);
    };
    let s = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
    };
    let ts_ms = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(&s(v, "ts"))
            .ok()
            .map(|t| t.timestamp_millis())
    };
    let mut st = Story {
        summary,
        environment: events
            .first()
            .and_then(|e| e.get("environment"))
            .and_then(|e| e.as_str())
            .map(str::to_string),
        reason: None,
        finished: None,
        stages: Vec::new(),
        checks: Vec::new(),
        weights: Vec::new(),
        analysis: AnalysisCounts::default(),
        approvals: Vec::new(),
        rollback: None,
        resumed: 0,
        notify_failures: 0,
        journal_lines: events.len() as u64,
    };
    let mut stage_started: std::collections::HashMap<String, (String, Option<i64>)> =
        Default::default();
    let mut pending_weight: Option<(String, String)> = None;
    for e in &events {
        match e.get("event").and_then(|x| x.as_str()).unwrap_or("") {
            "stage_started" => {
                stage_started.insert(s(e, "stage"), (s(e, "ts"), ts_ms(e)));
            }
            "stage_finished" => {
                let stage = s(e, "stage");
                let (started, t0) = stage_started.remove(&stage).unwrap_or_default();
                let duration_ms = match (t0, ts_ms(e)) {
                    (Some(a), Some(b)) => Some((b - a).max(0) as u64),
                    _ => None,
                };
                st.stages.push(StageLine {
                    stage,
                    outcome: s(e, "outcome"),
                    started,
                    duration_ms,
                });
            }
            "check_finished" => st.checks.push(CheckLine {
                stage: s(e, "stage"),
                check: s(e, "check"),
                outcome: s(e, "outcome"),
                duration_ms: e.get("duration_ms").and_then(|d| d.as_u64()).unwrap_or(0),
                attempts: e.get("attempts").and_then(|d| d.as_u64()).unwrap_or(1),
                message: s(e, "message"),
            }),
            "weight_requested" => pending_weight = Some((s(e, "source"), s(e, "operator"))),
            "weight_applied" => {
                let (source, operator) = pending_weight.take().unwrap_or_default();
                st.weights.push(WeightLine {
                    ts: s(e, "ts"),
                    weight: e.get("weight").and_then(|w| w.as_u64()).unwrap_or(0),
                    source,
                    operator,
                    applied_ms: e.get("elapsed_ms").and_then(|w| w.as_f64()),
                });
            }
            "analysis" => {
                st.analysis.samples += 1;
                match e.get("verdict").and_then(|v| v.as_str()) {
                    Some("pass") => st.analysis.pass += 1,
                    Some("fail") => {
                        st.analysis.fail += 1;
                        if st.analysis.failures.len() < 10 {
                            let reasons: Vec<String> = e
                                .get("reasons")
                                .and_then(|r| r.as_array())
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|x| x.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default();
                            st.analysis.failures.push(format!(
                                "{} at {}%: {}",
                                s(e, "ts"),
                                e.get("weight").and_then(|w| w.as_u64()).unwrap_or(0),
                                reasons.join("; ")
                            ));
                        }
                    }
                    _ => st.analysis.inconclusive += 1,
                }
            }
            "approved" => {
                let what = match (
                    e.get("step").and_then(|x| x.as_u64()),
                    e.get("check").and_then(|x| x.as_str()),
                ) {
                    (Some(step), _) => format!("step to {step}%"),
                    (_, Some(check)) => format!("check \"{check}\""),
                    _ => "approval".into(),
                };
                st.approvals.push(ApprovalLine {
                    ts: s(e, "ts"),
                    stage: s(e, "stage"),
                    what,
                    operator: s(e, "operator"),
                });
            }
            "rollback_started" => {
                st.rollback = Some(RollbackLine {
                    started: s(e, "ts"),
                    reason: s(e, "reason"),
                    source: s(e, "source"),
                    operator: s(e, "operator"),
                    outcome: None,
                    weight_applied_ms: None,
                    problem: None,
                })
            }
            "rollback_finished" => {
                if let Some(r) = &mut st.rollback {
                    r.outcome = Some(s(e, "outcome"));
                    r.weight_applied_ms = e.get("weight_applied_ms").and_then(|w| w.as_f64());
                    r.problem = e
                        .get("problem")
                        .and_then(|p| p.as_str())
                        .map(str::to_string);
                }
            }
            "deployment_resumed" => st.resumed += 1,
            "notify_failed" => st.notify_failures += 1,
            "deployment_finished" => {
                st.finished = Some(s(e, "ts"));
                st.reason = e.get("reason").and_then(|r| r.as_str()).map(str::to_string);
            }
            _ => {}
        }
    }
    Ok(Some(st))
}

/// Where the summary of a journal goes: `<id>.summary.json` beside it.
pub fn summary_path(journal: &Path) -> PathBuf {
    journal.with_extension("summary.json")
}

/// Writes the summary file beside a journal (0600, replaced atomically).
pub fn write_summary(journal: &Path) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(story) = story(journal)? else {
        return Err(std::io::Error::other("the journal has no deployment"));
    };
    let path = summary_path(journal);
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_string_pretty(&story).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(body.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The story as `cutover show` prints it.
pub fn render_story(st: &Story) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let m = &st.summary;
    let _ = writeln!(
        o,
        "{}  {} {} → {}{}",
        m.id,
        m.service,
        m.previous.as_deref().unwrap_or("?"),
        m.version,
        st.environment
            .as_ref()
            .map(|e| format!("  [{e}]"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "outcome   {}{}",
        m.outcome,
        st.reason
            .as_ref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    );
    let _ = writeln!(o, "started   {} by {}", m.started, m.operator);
    let _ = writeln!(
        o,
        "duration  {}{}",
        format_duration_ms(m.duration_ms),
        if st.resumed > 0 {
            format!(" (resumed {} time(s))", st.resumed)
        } else {
            String::new()
        }
    );
    let _ = writeln!(o, "\nstages");
    for stage in &st.stages {
        let _ = writeln!(
            o,
            "  {:<11} {:<15} {}",
            stage.stage,
            stage.outcome,
            format_duration_ms(stage.duration_ms)
        );
        for c in st.checks.iter().filter(|c| c.stage == stage.stage) {
            let attempts = if c.attempts > 1 {
                format!(", {} attempts", c.attempts)
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "    {:<7} {} ({} ms{attempts}) {}",
                c.outcome, c.check, c.duration_ms, c.message
            );
        }
    }
    if !st.weights.is_empty() {
        let _ = writeln!(o, "\nweights");
        for w in &st.weights {
            let _ = writeln!(
                o,
                "  {}  {:>3}%  {:<8} {}{}",
                w.ts,
                w.weight,
                w.source,
                w.operator,
                w.applied_ms
                    .map(|ms| format!("  applied in {ms:.2} ms"))
                    .unwrap_or_default()
            );
        }
    }
    if st.analysis.samples > 0 {
        let a = &st.analysis;
        let _ = writeln!(
            o,
            "\nanalysis  {} samples: {} pass, {} fail, {} inconclusive",
            a.samples, a.pass, a.fail, a.inconclusive
        );
        for f in &a.failures {
            let _ = writeln!(o, "  fail {f}");
        }
    }
    if !st.approvals.is_empty() {
        let _ = writeln!(o, "\napprovals");
        for a in &st.approvals {
            let _ = writeln!(o, "  {}  {} {}  by {}", a.ts, a.stage, a.what, a.operator);
        }
    }
    if let Some(r) = &st.rollback {
        let _ = writeln!(
            o,
            "\nrollback  started {} ({}, {}): {}",
            r.started, r.source, r.operator, r.reason
        );
        if let Some(ms) = r.weight_applied_ms {
            let _ = writeln!(o, "  traffic back on stable {ms:.2} ms after the request");
        }
        let _ = writeln!(
            o,
            "  outcome {}{}",
            r.outcome.as_deref().unwrap_or("unfinished"),
            r.problem
                .as_ref()
                .map(|p| format!(" — {p}"))
                .unwrap_or_default()
        );
    }
    if st.notify_failures > 0 {
        let _ = writeln!(o, "\n{} notification(s) not delivered", st.notify_failures);
    }
    let _ = writeln!(o, "\njournal   {} ({} lines)", m.journal, st.journal_lines);
    o
}
