//! Where an open deployment stood, read back from its journal, so a new run
//! carries on from the last completed step with the operator's decisions.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::event::Event;
use super::reader::JournalRead;
use crate::domain::{CheckOutcome, RollbackSource, StageName, StageOutcome};

/// What a resumed run needs to know of the deployment it carries on.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    pub journal: PathBuf,
    pub id: String,
    pub service: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// Stages that finished, with their outcome.
    pub stages_done: HashMap<StageName, StageOutcome>,
    /// Checks that passed or warned, by stage and name: never run again.
    pub checks_done: HashSet<(StageName, String)>,
    /// The last weight the router confirmed.
    pub weight: Option<u8>,
    /// The last weight an operator set with the slider, while it still holds.
    pub operator_weight: Option<u8>,
    /// A step approved whose weight was not confirmed before the interruption:
    /// applied on resume without asking again.
    pub approved_step: Option<u8>,
    /// Automatic progression was paused by an operator (or the analysis).
    pub paused: bool,
    /// A rollback that started and did not finish.
    pub rollback: Option<(String, RollbackSource)>,
    /// Process groups of commands that started and have no recorded end.
    pub unfinished_groups: Vec<UnfinishedCommand>,
    /// Checks that started and never finished: they run again.
    pub interrupted_checks: Vec<(StageName, String)>,
    /// The last event recorded, for the operator.
    pub last_event: String,
}

/// A command whose process group may outlive the run that started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedCommand {
    pub pgid: i32,
    /// The group leader's start time, to tell it from a later group that
    /// reuses the id.
    pub start_ticks: Option<u64>,
    pub what: String,
}

impl ResumePoint {
    /// Where the journal's deployment stood; `None` when it never started.
    pub fn from_journal(read: &JournalRead) -> Option<ResumePoint> {
        let mut point = ResumePoint {
            journal: read.path.clone(),
            id: String::new(),
            service: String::new(),
            version: String::new(),
            started_at: read.started_at()?,
            stages_done: HashMap::new(),
            checks_done: HashSet::new(),
            weight: None,
            operator_weight: None,
            approved_step: None,
            paused: false,
            rollback: None,
            unfinished_groups: Vec::new(),
            interrupted_checks: Vec::new(),
            last_event: String::new(),
        };
        for entry in &read.entries {
            point.last_event = entry.event.describe();
            match &entry.event {
                Event::DeploymentStarted {
                    id,
                    service,
                    version,
                    ..
                } => {
                    point.id = id.clone();
                    point.service = service.clone();
                    point.version = version.clone();
                }
                Event::StageFinished { stage, outcome }
                    if *outcome != StageOutcome::Interrupted =>
                {
                    point.stages_done.insert(*stage, *outcome);
                }
                Event::CheckFinished {
                    stage,
                    check,
                    outcome,
                    ..
                } => {
                    point
                        .interrupted_checks
                        .retain(|(s, c)| !(s == stage && c == check));
                    if matches!(outcome, CheckOutcome::Passed | CheckOutcome::Warned) {
                        point.checks_done.insert((*stage, check.clone()));
                    }
                }
                Event::WeightRequested { weight, source, .. } => {
                    point.operator_weight = match source {
                        crate::domain::WeightSource::Operator => Some(*weight),
                        crate::domain::WeightSource::Resume => point.operator_weight,
                        _ => None,
                    };
                }
                Event::Approved {
                    step: Some(to),
                    count,
                    needed,
                    ..
                } if count.unwrap_or(1) >= needed.unwrap_or(1) => point.approved_step = Some(*to),
                Event::WeightApplied { weight, .. } => {
                    point.weight = Some(*weight);
                    if point.approved_step.is_some_and(|to| to <= *weight) {
                        point.approved_step = None;
                    }
                }
                Event::Paused { .. } => point.paused = true,
                Event::Resumed { .. } => point.paused = false,
                Event::RollbackStarted { reason, source, .. } => {
                    point.approved_step = None;
                    point.rollback = Some((reason.clone(), *source));
                }
                Event::RollbackFinished { .. } => point.rollback = None,
                Event::CommandStarted {
                    pgid,
                    start_ticks,
                    what,
                } => point.unfinished_groups.push(UnfinishedCommand {
                    pgid: *pgid,
                    start_ticks: *start_ticks,
                    what: what.clone(),
                }),
                Event::CheckStarted { stage, check, .. } => {
                    let key = (*stage, check.clone());
                    if !point.interrupted_checks.contains(&key) {
                        point.interrupted_checks.push(key);
                    }
                }
                Event::CommandFinished { pgid, .. } => {
                    point.unfinished_groups.retain(|c| c.pgid != *pgid)
                }
                _ => {}
            }
        }
        Some(point)
    }
}
