//! `history` and `show`: the record of a state dir, read with the typed reader.

use std::path::{Path, PathBuf};

use super::args::{HistoryArgs, ShowArgs};
use super::{error, Exit};
use crate::config;
use crate::record::story::Story;
use crate::record::{self, history, journal, JournalRead};

/// The state dir named, else the one of ./deploy.toml, else ./.cutover.
pub(super) fn resolve_state_dir(given: Option<PathBuf>) -> PathBuf {
    if let Some(d) = given {
        return d;
    }
    let local = Path::new("deploy.toml");
    if local.is_file() {
        if let Ok(plan) = config::load(local) {
            return plan.deployment.state_dir;
        }
    }
    PathBuf::from(".cutover")
}

/// `cutover history [--verify] [--json]`.
pub fn history(args: HistoryArgs) -> Exit {
    let dir = resolve_state_dir(args.state_dir);
    if args.verify {
        return verify(&dir);
    }
    let rows = match history::all(&dir) {
        Ok(r) => r,
        Err(e) => {
            error(format!("cannot read {}: {e}", dir.display()));
            return Exit::Failed;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                error(e);
                return Exit::Failed;
            }
        }
    } else if rows.is_empty() {
        println!("no deployments in {}", dir.display());
    } else {
        print!("{}", history::table(&rows));
    }
    Exit::Succeeded
}

fn verify(dir: &Path) -> Exit {
    let paths = match journal::list(dir) {
        Ok(p) => p,
        Err(e) => {
            error(format!("cannot read {}: {e}", dir.display()));
            return Exit::Failed;
        }
    };
    let mut bad = 0;
    for p in &paths {
        match journal::verify(p) {
            Ok(r) => match r.problem {
                None => println!("ok   {} ({} lines)", p.display(), r.lines),
                Some(b) => {
                    bad += 1;
                    println!("BAD  {}:{}: {}", p.display(), b.line, b.message);
                }
            },
            Err(e) => {
                bad += 1;
                println!("BAD  {}: {e}", p.display());
            }
        }
    }
    println!("{} journal(s), {} broken", paths.len(), bad);
    if bad > 0 {
        Exit::Failed
    } else {
        Exit::Succeeded
    }
}

/// Finds a deployment by id, unique id prefix, or `last`.
pub(super) fn find(dir: &Path, id: &str) -> Result<JournalRead, String> {
    let all = record::read_all(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if id == "last" {
        return all
            .into_iter()
            .rfind(|j| j.started_at().is_some())
            .ok_or_else(|| format!("no deployments in {}", dir.display()));
    }
    let mut matches: Vec<JournalRead> = all
        .into_iter()
        .filter(|j| j.id() == id || j.id().starts_with(id))
        .collect();
    if let Some(i) = matches.iter().position(|j| j.id() == id) {
        return Ok(matches.swap_remove(i));
    }
    match matches.len() {
        0 => Err(format!(
            "no deployment {id} in {}; `cutover history` lists them",
            dir.display()
        )),
        1 => Ok(matches.remove(0)),
        n => Err(format!(
            "{id} matches {n} deployments ({}): give more of the id",
            matches
                .iter()
                .map(JournalRead::id)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `cutover show [--json] ID`.
pub fn show(args: ShowArgs) -> Exit {
    let dir = resolve_state_dir(args.state_dir);
    let read = match find(&dir, &args.id) {
        Ok(r) => r,
        Err(message) => {
            error(message);
            return Exit::Usage;
        }
    };
    let Some(mut story) = Story::of(&read) else {
        error(format!("{} holds no deployment", read.path.display()));
        return Exit::Failed;
    };
    story.summary.broken = journal::verify(&read.path)
        .ok()
        .and_then(|r| r.problem)
        .map(|b| format!("line {}: {}", b.line, b.message));
    if args.json {
        let mut value = serde_json::to_value(&story).unwrap_or_default();
        if let (Some(obj), Ok(events)) =
            (value.as_object_mut(), serde_json::to_value(&read.entries))
        {
            obj.insert("events".into(), events);
        }
        match serde_json::to_string_pretty(&value) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                error(e);
                return Exit::Failed;
            }
        }
    } else {
        print!("{}", story.render());
    }
    Exit::Succeeded
}
