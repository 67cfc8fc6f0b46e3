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
    let events = journal::read_events(path)?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    if first.get("event").and_then(|e| e.as_str()) != Some("deployment_started") {
        return Ok(None);
    }
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let mut approved_by: Vec<String> = Vec::new();
    let mut outcome = "unfinished".to_string();
    let mut duration_ms = None;
    for e in &events {
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
    Ok(Some(Summary {
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
    }))
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
