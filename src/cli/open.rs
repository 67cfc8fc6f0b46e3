//! Opening a run on a state dir: what to do with an open deployment (resume,
//! abandon, refuse), decided by one tested function, and the abandon itself.

use std::path::Path;

use chrono::Utc;

use crate::config::Plan;
use crate::domain::{Operator, Outcome};
use crate::record::journal::Journal;
use crate::record::resume::ResumePoint;
use crate::record::{Event, JournalRead};

/// What the operator asked for with the flags (or at the prompt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wish {
    /// Neither `--resume` nor `--abandon`.
    Start,
    Resume,
    Abandon,
}

/// What a run does about the state dir's open deployment.
#[derive(Debug)]
pub enum Opening {
    /// No open deployment: start a new one.
    Start,
    /// Carry the open deployment on.
    Resume(Box<ResumePoint>),
    /// Close the open deployment as abandoned, then start a new one.
    Abandon(Box<JournalRead>),
    /// Nothing may run; the message says why and what would be right.
    Refuse(String),
}

/// Decides what a run does, given the state dir's open deployment (if any),
/// the plan and the operator's wish. Pure: no I/O.
pub fn decide(open: Option<JournalRead>, plan: &Plan, wish: Wish, state_dir: &Path) -> Opening {
    let Some(open) = open else {
        return match wish {
            Wish::Resume => Opening::Refuse(format!(
                "nothing to resume: {} has no unfinished deployment (all are finished, or abandoned)",
                state_dir.display()
            )),
            _ => Opening::Start,
        };
    };
    let id = open.id();
    let last = open
        .entries
        .last()
        .map(|e| e.event.describe())
        .unwrap_or_default();
    match wish {
        Wish::Start => Opening::Refuse(format!(
            "deployment {id} in {} is unfinished (last: {last}).\n  cutover run --resume    carry it on from where it stopped\n  cutover run --abandon   close it as abandoned and start anew",
            state_dir.display()
        )),
        Wish::Abandon => Opening::Abandon(Box::new(open)),
        Wish::Resume => match ResumePoint::from_journal(&open) {
            None => Opening::Refuse(format!(
                "cannot resume {}: it has no deployment_started line",
                open.path.display()
            )),
            Some(point)
                if point.service != plan.deployment.service
                    || point.version != plan.deployment.version =>
            {
                Opening::Refuse(format!(
                    "the open deployment is {} {}, but this plan deploys {} {}: resume it with its own plan, or --abandon it",
                    point.service, point.version, plan.deployment.service, plan.deployment.version
                ))
            }
            Some(point) => Opening::Resume(Box::new(point)),
        },
    }
}

/// Closes an open deployment as abandoned (interrupted first when it never
/// finished), so a new one can start.
pub fn abandon(open: &JournalRead, operator: &Operator) -> std::io::Result<()> {
    let (mut journal, torn) = Journal::reopen_repairing(&open.path)?;
    if let Some(bad) = torn {
        journal.append(&Event::Note {
            message: format!(
                "line {} was torn by a crash mid-write and was cut off",
                bad.line
            ),
        })?;
    }
    let reason = format!("abandoned by {operator}: a new deployment starts");
    if open.last_outcome().is_none() {
        let started = open.started_at().unwrap_or_else(Utc::now);
        journal.append(&Event::DeploymentFinished {
            outcome: Outcome::Interrupted,
            duration_ms: (Utc::now() - started).num_milliseconds().max(0) as u64,
            reason: Some(reason.clone()),
        })?;
    }
    journal.append(&Event::DeploymentAbandoned {
        operator: operator.to_string(),
        reason,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::reader;

    fn plan(dir: &Path, version: &str) -> Plan {
        let text = format!(
            "[deployment]\nservice = \"svc\"\nversion = \"{version}\"\nstate_dir = \"state\"\n"
        );
        crate::config::parse(&text, "p.toml", dir, &|_| None).unwrap()
    }

    fn open_journal(dir: &Path, finished: Option<Outcome>) -> JournalRead {
        let mut j = Journal::create(&dir.join("state"), "d1").unwrap();
        j.append(&Event::DeploymentStarted {
            id: "d1".into(),
            config: "p.toml".into(),
            service: "svc".into(),
            version: "v2".into(),
            previous: None,
            environment: None,
            operator: "alice".into(),
            strategy: None,
            steps: None,
            router: None,
            anchored: true,
        })
        .unwrap();
        if let Some(outcome) = finished {
            j.append(&Event::DeploymentFinished {
                outcome,
                duration_ms: 1,
                reason: None,
            })
            .unwrap();
        }
        reader::read(j.path()).unwrap()
    }

    #[test]
    fn an_interrupted_deployment_resumes_and_a_plain_run_refuses_naming_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path(), "v2");
        let read = open_journal(dir.path(), Some(Outcome::Interrupted));
        assert!(read.is_open());
        match decide(Some(read.clone()), &p, Wish::Start, dir.path()) {
            Opening::Refuse(m) => assert!(m.contains("--resume") && m.contains("--abandon"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(Some(read), &p, Wish::Resume, dir.path()),
            Opening::Resume(_)
        ));
    }

    #[test]
    fn resume_with_nothing_open_or_another_plan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path(), "v2");
        assert!(matches!(
            decide(None, &p, Wish::Resume, dir.path()),
            Opening::Refuse(_)
        ));
        assert!(matches!(
            decide(None, &p, Wish::Start, dir.path()),
            Opening::Start
        ));
        let read = open_journal(dir.path(), None);
        let other = plan(dir.path(), "v3");
        assert!(matches!(
            decide(Some(read), &other, Wish::Resume, dir.path()),
            Opening::Refuse(m) if m.contains("v3")
        ));
    }

    #[test]
    fn an_abandoned_deployment_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let read = open_journal(dir.path(), None);
        abandon(&read, &Operator::named("bob")).unwrap();
        let again = reader::read(&read.path).unwrap();
        assert!(!again.is_open());
        assert_eq!(again.last_outcome(), Some(Outcome::Interrupted));
        let report = crate::record::journal::verify(&read.path).unwrap();
        assert!(report.problem.is_none(), "{:?}", report.problem);
    }
}
