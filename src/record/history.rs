//! `cutover history`: one summary line per deployment a state dir holds, read
//! from its journal with the typed reader.

use std::path::Path;

use serde::Serialize;

use super::event::Event;
use super::journal;
use super::reader::JournalRead;
use super::story::format_duration_ms;

/// One deployment at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub service: String,
    pub version: String,
    pub previous: Option<String>,
    /// The recorded outcome; "unfinished" when there is none yet, and
    /// "interrupted" stays open to `--resume` unless abandoned.
    pub outcome: String,
    /// Whether `run --resume` can carry it on.
    pub open: bool,
    /// Closed by `run --abandon` (its outcome stays `interrupted`).
    pub abandoned: bool,
    pub started: String,
    pub duration_ms: Option<u64>,
    pub operator: String,
    pub approved_by: Vec<String>,
    pub journal: String,
    /// The first break in the journal's hash chain or anchor, if any.
    pub broken: Option<String>,
}

impl Summary {
    /// The summary of a journal already read; `None` when it has no start.
    pub fn of(read: &JournalRead) -> Option<Summary> {
        let first = read.entries.first()?;
        let Event::DeploymentStarted {
            id,
            service,
            version,
            previous,
            operator,
            ..
        } = &first.event
        else {
            return None;
        };
        let mut approved_by: Vec<String> = Vec::new();
        let mut outcome = "unfinished".to_string();
        let mut duration_ms = None;
        let mut abandoned = false;
        for e in &read.entries {
            match &e.event {
                Event::Approved { operator, .. } if !approved_by.contains(operator) => {
                    approved_by.push(operator.clone());
                }
                Event::DeploymentFinished {
                    outcome: o,
                    duration_ms: d,
                    ..
                } => {
                    outcome = o.as_str().to_string();
                    duration_ms = Some(*d);
                }
                Event::DeploymentAbandoned { .. } => abandoned = true,
                _ => {}
            }
        }
        Some(Summary {
            id: id.clone(),
            service: service.clone(),
            version: version.clone(),
            previous: previous.clone(),
            outcome,
            open: read.is_open(),
            abandoned,
            started: first
                .ts
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            duration_ms,
            operator: operator.clone(),
            approved_by,
            journal: read.path.display().to_string(),
            broken: None,
        })
    }
}

/// Every deployment of a state dir, oldest first, each checked against its
/// hash chain and anchor.
pub fn all(state_dir: &Path) -> std::io::Result<Vec<Summary>> {
    let mut out = Vec::new();
    for read in super::read_all(state_dir)? {
        if let Some(mut s) = Summary::of(&read) {
            s.broken = match journal::verify(&read.path) {
                Ok(report) => report
                    .problem
                    .map(|b| format!("line {}: {}", b.line, b.message)),
                Err(e) => Some(e.to_string()),
            };
            out.push(s);
        }
    }
    Ok(out)
}

/// The table `cutover history` prints; broken journals are marked.
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
            let mut outcome = r.outcome.clone();
            if r.open && r.outcome != "unfinished" {
                outcome.push_str(" (resumable)");
            }
            if r.abandoned {
                outcome.push_str(" (abandoned)");
            }
            if r.broken.is_some() {
                outcome.push_str(" CHAIN BROKEN");
            }
            [
                r.id.clone(),
                r.service.clone(),
                format!("{} → {}", r.previous.as_deref().unwrap_or("?"), r.version),
                outcome,
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
    let mut line = |cols: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            l.push_str(c);
            if i + 1 < cols.len() {
                l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    for r in rows.iter().filter(|r| r.broken.is_some()) {
        out.push_str(&format!(
            "\n{}: the journal's chain is broken at {} (`cutover history --verify`)\n",
            r.id,
            r.broken.as_deref().unwrap_or("?")
        ));
    }
    out
}
