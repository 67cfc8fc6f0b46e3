//! A deployment's whole story, told from its journal: what `cutover show`
//! prints and what `<id>.summary.json` beside each journal holds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::event::Event;
use super::history::Summary;
use super::reader::{self, JournalRead};
use crate::domain::{StageName, Verdict};

/// "1.5s", "2m05s", or "-" for none.
pub fn format_duration_ms(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One stage as it went.
#[derive(Debug, Clone, Serialize)]
pub struct StageLine {
    pub stage: StageName,
    pub outcome: String,
    pub started: String,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    pub stage: StageName,
    pub check: String,
    pub outcome: String,
    pub duration_ms: u64,
    pub attempts: u32,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeightLine {
    pub ts: String,
    pub weight: u8,
    /// plan, operator, rollback or resume: who asked for it.
    pub source: String,
    pub operator: String,
    /// From the request to the router confirming it, in milliseconds.
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
    pub stage: StageName,
    pub what: String,
    pub operator: String,
    /// False for an approval the engine refused.
    pub accepted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackLine {
    pub started: String,
    pub reason: String,
    pub source: String,
    pub operator: String,
    pub outcome: Option<String>,
    /// From the rollback request to weight 0 confirmed, in milliseconds.
    pub weight_applied_ms: Option<f64>,
    pub problem: Option<String>,
}

/// A deployment's story.
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
    /// Warnings worth an operator's eye: drifts, deadlines, orphans stopped.
    pub warnings: Vec<String>,
    pub resumed: u64,
    pub notify_failures: u64,
    pub journal_lines: u64,
}

impl Story {
    /// The story of a journal already read; `None` when it has no start.
    pub fn of(read: &JournalRead) -> Option<Story> {
        let summary = Summary::of(read)?;
        let environment = match read.entries.first().map(|e| &e.event) {
            Some(Event::DeploymentStarted { environment, .. }) => environment.clone(),
            _ => None,
        };
        let mut st = Story {
            summary,
            environment,
            reason: None,
            finished: None,
            stages: Vec::new(),
            checks: Vec::new(),
            weights: Vec::new(),
            analysis: AnalysisCounts::default(),
            approvals: Vec::new(),
            rollback: None,
            warnings: Vec::new(),
            resumed: 0,
            notify_failures: 0,
            journal_lines: read.entries.len() as u64,
        };
        let mut stage_started: HashMap<StageName, DateTime<Utc>> = HashMap::new();
        let mut pending_weight: Option<(String, String)> = None;
        for entry in &read.entries {
            let ts = entry.ts;
            match &entry.event {
                Event::StageStarted { stage } => {
                    stage_started.insert(*stage, ts);
                }
                Event::StageFinished { stage, outcome } => {
                    let t0 = stage_started.remove(stage);
                    st.stages.push(StageLine {
                        stage: *stage,
                        outcome: outcome.as_str().to_string(),
                        started: t0.map(rfc3339).unwrap_or_default(),
                        duration_ms: t0.map(|t0| (ts - t0).num_milliseconds().max(0) as u64),
                    });
                }
                Event::CheckFinished {
                    stage,
                    check,
                    outcome,
                    duration_ms,
                    attempts,
                    message,
                    ..
                } => st.checks.push(CheckLine {
                    stage: *stage,
                    check: check.clone(),
                    outcome: outcome.as_str().to_string(),
                    duration_ms: *duration_ms,
                    attempts: *attempts,
                    message: message.clone(),
                }),
                Event::WeightRequested {
                    source, operator, ..
                } => pending_weight = Some((source.as_str().to_string(), operator.clone())),
                Event::WeightApplied {
                    weight, elapsed_ms, ..
                } => {
                    let (source, operator) = pending_weight.take().unwrap_or_default();
                    st.weights.push(WeightLine {
                        ts: rfc3339(ts),
                        weight: *weight,
                        source,
                        operator,
                        applied_ms: Some(*elapsed_ms),
                    });
                }
                Event::Analysis {
                    weight,
                    verdict,
                    reasons,
                    ..
                } => {
                    st.analysis.samples += 1;
                    match verdict {
                        Verdict::Pass => st.analysis.pass += 1,
                        Verdict::Fail => {
                            st.analysis.fail += 1;
                            if st.analysis.failures.len() < 10 {
                                st.analysis.failures.push(format!(
                                    "{} at {weight}%: {}",
                                    rfc3339(ts),
                                    reasons.join("; ")
                                ));
                            }
                        }
                        Verdict::Inconclusive => st.analysis.inconclusive += 1,
                    }
                }
                Event::Approved {
                    stage,
                    step,
                    check,
                    operator,
                    judge_undecided,
                    ..
                } => st.approvals.push(ApprovalLine {
                    ts: rfc3339(ts),
                    stage: *stage,
                    what: match (step, check) {
                        (Some(step), _) if *judge_undecided => {
                            format!("step to {step}% (the judge undecided: the operator's call)")
                        }
                        (Some(step), _) => format!("step to {step}%"),
                        (_, Some(check)) => format!("check \"{check}\""),
                        _ => "approval".into(),
                    },
                    operator: operator.clone(),
                    accepted: true,
                }),
                Event::ApprovalRefused {
                    requested,
                    operator,
                    reason,
                    ..
                } => st.approvals.push(ApprovalLine {
                    ts: rfc3339(ts),
                    stage: StageName::Traffic,
                    what: format!(
                        "{} (refused: {reason})",
                        requested
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_else(|| "approval".into())
                    ),
                    operator: operator.clone(),
                    accepted: false,
                }),
                Event::RollbackStarted {
                    reason,
                    source,
                    operator,
                    ..
                } => {
                    st.rollback = Some(RollbackLine {
                        started: rfc3339(ts),
                        reason: reason.clone(),
                        source: source.as_str().to_string(),
                        operator: operator.clone(),
                        outcome: None,
                        weight_applied_ms: None,
                        problem: None,
                    })
                }
                Event::RollbackFinished {
                    outcome,
                    weight_applied_ms,
                    problem,
                } => {
                    if let Some(r) = &mut st.rollback {
                        r.outcome = Some(outcome.as_str().to_string());
                        r.weight_applied_ms = *weight_applied_ms;
                        r.problem.clone_from(problem);
                    }
                }
                Event::WeightDrift { .. }
                | Event::Warning { .. }
                | Event::StepDeadline { .. }
                | Event::OrphanStopped { .. }
                | Event::WeightFailed { .. }
                | Event::LockLost { .. } => {
                    st.warnings
                        .push(format!("{}  {}", rfc3339(ts), entry.event.describe()));
                }
                Event::DeploymentResumed { .. } => st.resumed += 1,
                Event::NotifyFailed { .. } => st.notify_failures += 1,
                Event::DeploymentFinished { reason, .. } => {
                    st.finished = Some(rfc3339(ts));
                    st.reason.clone_from(reason);
                }
                _ => {}
            }
        }
        Some(st)
    }

    /// The story as `cutover show` prints it.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let m = &self.summary;
        let _ = writeln!(
            o,
            "{}  {} {} → {}{}",
            m.id,
            m.service,
            m.previous.as_deref().unwrap_or("?"),
            m.version,
            self.environment
                .as_ref()
                .map(|e| format!("  [{e}]"))
                .unwrap_or_default()
        );
        let open = if m.open && m.outcome != "unfinished" {
            " (resumable: `cutover run --resume`)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "outcome   {}{open}{}",
            m.outcome,
            self.reason
                .as_ref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
        if let Some(b) = &m.broken {
            let _ = writeln!(
                o,
                "JOURNAL CHAIN BROKEN at {b}: this story may be incomplete"
            );
        }
        let _ = writeln!(o, "started   {} by {}", m.started, m.operator);
        let _ = writeln!(
            o,
            "duration  {}{}",
            format_duration_ms(m.duration_ms),
            if self.resumed > 0 {
                format!(" (resumed {} time(s))", self.resumed)
            } else {
                String::new()
            }
        );
        let _ = writeln!(o, "\nstages");
        for stage in &self.stages {
            let _ = writeln!(
                o,
                "  {:<11} {:<15} {}",
                stage.stage,
                stage.outcome,
                format_duration_ms(stage.duration_ms)
            );
            for c in self.checks.iter().filter(|c| c.stage == stage.stage) {
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
        if !self.weights.is_empty() {
            let _ = writeln!(o, "\nweights");
            for w in &self.weights {
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
        if self.analysis.samples > 0 {
            let a = &self.analysis;
            let _ = writeln!(
                o,
                "\nanalysis  {} samples: {} pass, {} fail, {} inconclusive",
                a.samples, a.pass, a.fail, a.inconclusive
            );
            for f in &a.failures {
                let _ = writeln!(o, "  fail {f}");
            }
        }
        if !self.approvals.is_empty() {
            let _ = writeln!(o, "\napprovals");
            for a in &self.approvals {
                let _ = writeln!(o, "  {}  {} {}  by {}", a.ts, a.stage, a.what, a.operator);
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(o, "\nwarnings");
            for w in &self.warnings {
                let _ = writeln!(o, "  {w}");
            }
        }
        if let Some(r) = &self.rollback {
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
        if self.notify_failures > 0 {
            let _ = writeln!(
                o,
                "\n{} notification(s) not delivered",
                self.notify_failures
            );
        }
        let _ = writeln!(
            o,
            "\njournal   {} ({} lines)",
            m.journal, self.journal_lines
        );
        o
    }
}

/// Where the summary of a journal goes: `<id>.summary.json` beside it.
pub fn summary_path(journal: &Path) -> PathBuf {
    journal.with_extension("summary.json")
}

/// Writes the summary file beside a journal (0600, replaced atomically; a
/// file already at the temporary name is never followed or overwritten).
pub fn write_summary(journal: &Path) -> std::io::Result<PathBuf> {
    let read = reader::read(journal)?;
    let Some(mut story) = Story::of(&read) else {
        return Err(std::io::Error::other("the journal has no deployment"));
    };
    story.summary.broken = super::journal::verify(journal)?
        .problem
        .map(|b| format!("line {}: {}", b.line, b.message));
    let body = serde_json::to_string_pretty(&story).map_err(std::io::Error::other)?;
    let path = summary_path(journal);
    super::state_dir::replace_file(&path, format!("{body}\n").as_bytes())?;
    Ok(path)
}
