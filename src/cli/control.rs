//! `attach`, `status`, `approve`, `rollback`, `pause`, `resume`,
//! `set-weight`: a running deployment, reached through its control socket.

use std::path::PathBuf;

use super::args::{ApproveArgs, RollbackArgs, SetWeightArgs, StatusArgs, Target};
use super::{error, Exit};
use crate::control::client::{self, ConnectError};
use crate::control::protocol::Verb;
use crate::domain::{GateTarget, StageName};
use crate::engine::Snapshot;

/// The state dir a target names: `--state-dir`, else the plan's, else
/// `./deploy.toml`'s, else `./.cutover`.
pub fn state_dir_of(target: &Target) -> PathBuf {
    if let Some(d) = &target.state_dir {
        return d.clone();
    }
    let file = target
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("deploy.toml"));
    if file.is_file() {
        if let Ok(plan) = crate::config::load(&file) {
            return plan.deployment.state_dir;
        }
    }
    PathBuf::from(".cutover")
}

fn unreachable(e: ConnectError) -> Exit {
    error(e);
    Exit::Failed
}

/// One request to the running engine; prints its answer.
async fn one(target: &Target, verb: Verb) -> Exit {
    let dir = state_dir_of(target);
    let mut conn = match client::connect(&dir, false, false).await {
        Ok(c) => c,
        Err(e) => return unreachable(e),
    };
    match conn.request(verb).await {
        Ok(r) if r.ok => {
            println!("{} (as {})", r.message, conn.welcome.operator);
            Exit::Succeeded
        }
        Ok(r) => {
            error(&r.message);
            Exit::Failed
        }
        Err(e) => unreachable(e),
    }
}

/// `cutover approve --step N | --check NAME`.
pub async fn approve(args: ApproveArgs) -> Exit {
    let gate = match (args.step, args.check) {
        (Some(to), _) => GateTarget::Step { to },
        (None, Some(check)) => {
            // The check's stage is the one whose gate is open, if any.
            let dir = state_dir_of(&args.target);
            let snapshot = match client::connect(&dir, false, false).await {
                Ok(mut c) => match c.request(Verb::Status).await {
                    Ok(r) => r.snapshot,
                    Err(e) => return unreachable(e),
                },
                Err(e) => return unreachable(e),
            };
            let stage = snapshot.and_then(|s| match s.gate {
                Some(crate::engine::snapshot::Gate::Manual {
                    stage, check: c, ..
                }) if c == check => Some(stage),
                _ => s.current_stage,
            });
            GateTarget::Check {
                stage: stage.unwrap_or(StageName::Prepare),
                check,
            }
        }
        (None, None) => {
            error("name the gate: --step PERCENT or --check NAME");
            return Exit::Usage;
        }
    };
    one(&args.target, Verb::Approve { gate }).await
}

pub async fn rollback(args: RollbackArgs) -> Exit {
    one(
        &args.target,
        Verb::Rollback {
            reason: args.reason,
        },
    )
    .await
}

pub async fn pause(target: Target) -> Exit {
    one(&target, Verb::Pause).await
}

pub async fn resume(target: Target) -> Exit {
    one(&target, Verb::Resume).await
}

pub async fn set_weight(args: SetWeightArgs) -> Exit {
    one(
        &args.target,
        Verb::SetWeight {
            weight: args.weight,
        },
    )
    .await
}

/// `cutover status [--json]`.
pub async fn status(args: StatusArgs) -> Exit {
    let dir = state_dir_of(&args.target);
    let mut conn = match client::connect(&dir, false, false).await {
        Ok(c) => c,
        Err(e) => return unreachable(e),
    };
    let snapshot = match conn.request(Verb::Status).await {
        Ok(r) => r.snapshot,
        Err(e) => return unreachable(e),
    };
    let Some(mut s) = snapshot else {
        error("the engine sent no status");
        return Exit::Failed;
    };
    if args.json {
        s.samples.clear();
        match serde_json::to_string_pretty(&s) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                error(e);
                return Exit::Failed;
            }
        }
    } else {
        print!("{}", describe(&s, &conn.welcome.operator.to_string()));
    }
    Exit::Succeeded
}

/// A few lines saying where the deployment stands.
fn describe(s: &Snapshot, you: &str) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}  {} {} → {}  started by {}",
        s.deployment_id,
        s.service,
        s.previous.as_deref().unwrap_or("?"),
        s.version,
        s.operator
    );
    let stage = s
        .current_stage
        .map(|st| format!("{} {}/7", st, st.number()))
        .unwrap_or_else(|| "starting".into());
    let state = match (s.outcome, s.traffic.as_ref().is_some_and(|t| t.paused)) {
        (Some(o), _) => o.as_str().to_string(),
        (None, true) => "paused".into(),
        (None, false) => format!("{:?}", s.phase).to_lowercase(),
    };
    let _ = writeln!(o, "stage     {stage}  ({state})");
    if let Some(t) = &s.traffic {
        let _ = writeln!(
            o,
            "weight    {}% to the canary{}  (router {})",
            t.current_weight,
            t.next_step
                .map(|n| format!(", next step {n}%"))
                .unwrap_or_default(),
            t.router
        );
    }
    if let Some(t) = s.traffic.as_ref().filter(|t| !t.members.is_empty()) {
        let each: Vec<String> = t
            .members
            .iter()
            .map(|m| match (m.weight, &m.error) {
                (_, Some(e)) => format!("{} unreachable ({e})", m.name),
                (Some(w), None) => format!("{} {w}%", m.name),
                (None, None) => format!("{} not read yet", m.name),
            })
            .collect();
        let _ = writeln!(o, "routers   {}", each.join(" · "));
    }
    if let Some(v) = s.verdict {
        let _ = writeln!(o, "verdict   {}", v.as_str());
    }
    if let Some(g) = &s.gate {
        let _ = writeln!(o, "waiting   for {} (`cutover approve`)", g.target());
    }
    if let Some(m) = &s.message {
        let _ = writeln!(o, "note      {m}");
    }
    let _ = writeln!(o, "journal   {}", s.journal_path);
    let _ = writeln!(o, "you are   {you}");
    o
}
