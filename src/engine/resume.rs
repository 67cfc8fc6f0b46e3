//! Where an unfinished deployment stood, read back from its journal, so a new
//! run carries on from the last completed step.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::event::{Event, RollbackSource, StageOutcome};
use super::snapshot::StageName;
use crate::journal;

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
    /// A rollback that started and did not finish.
    pub rollback: Option<(String, RollbackSource)>,
    /// The last event recorded, for the operator.
    pub last_event: String,
}

impl ResumePoint {
    pub fn read(path: &Path) -> std::io::Result<ResumePoint> {
        let values = journal::read_events(path)?;
        let mut point = ResumePoint {
            journal: path.to_path_buf(),
            id: String::new(),
            service: String::new(),
            version: String::new(),
            started_at: Utc::now(),
            stages_done: HashMap::new(),
            checks_done: HashSet::new(),
            weight: None,
            rollback: None,
            last_event: String::new(),
        };
        for v in values {
            let ts = v
                .get("ts")
                .and_then(|t| t.as_str())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let Ok(event) = serde_json::from_value::<Event>(v) else {
                continue;
            };
            point.last_event = event.describe();
            match event {
                Event::DeploymentStarted {
                    id,
                    service,
                    version,
                    ..
                } => {
                    point.id = id;
                    point.service = service;
                    point.version = version;
                    if let Some(ts) = ts {
                        point.started_at = ts;
                    }
                }
                Event::StageFinished { stage, outcome } if outcome != StageOutcome::Interrupted => {
                    point.stages_done.insert(stage, outcome);
                }
                Event::CheckFinished {
                    stage,
                    check,
                    outcome,
                    ..
                } => {
                    use super::event::CheckOutcome;
                    if matches!(outcome, CheckOutcome::Passed | CheckOutcome::Warned) {
                        point.checks_done.insert((stage, check));
                    }
                }
                Event::WeightApplied { weight, .. } => point.weight = Some(weight),
                Event::RollbackStarted { reason, source, .. } => {
                    point.rollback = Some((reason, source));
                }
                Event::RollbackFinished { .. } => point.rollback = None,
                _ => {}
            }
        }
        if point.id.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} has no deployment_started event", path.display()),
            ));
        }
        Ok(point)
    }
}
