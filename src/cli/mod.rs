//! The command line: one function per subcommand, each returning an [`Exit`].
//! Policy lives in the engine and the record; this module parses flags,
//! prints, and picks the dashboard or the headless printer.

mod args;
mod control;
mod detached;
mod inspect;
mod open;
mod release;
mod replay;
mod run;
mod signals;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

pub use args::Cli;
use args::Cmd;

use crate::config::{self, Plan};
use crate::domain::Outcome;

/// The process's exit status (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Succeeded,
    /// Failed before any change, or an internal error.
    Failed,
    /// Bad usage or an invalid config: nothing was executed.
    Usage,
    RolledBack,
    /// The rollback itself failed: a human must act.
    RollbackFailed,
    /// Interrupted with traffic held; resumable.
    Interrupted,
    /// The dashboard detached; the deployment goes on in its engine.
    Detached,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Succeeded => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::RolledBack => 3,
            Exit::RollbackFailed => 4,
            Exit::Interrupted => 5,
            Exit::Detached => 6,
        }
    }
}

impl From<Outcome> for Exit {
    fn from(o: Outcome) -> Exit {
        match o {
            Outcome::Succeeded => Exit::Succeeded,
            Outcome::Failed => Exit::Failed,
            Outcome::RolledBack => Exit::RolledBack,
            Outcome::RollbackFailed => Exit::RollbackFailed,
            Outcome::Interrupted => Exit::Interrupted,
        }
    }
}

/// Parses the command line, runs the subcommand and returns the exit code.
pub fn main() -> i32 {
    let _ = color_eyre::install();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Exit::Failed.code();
        }
    };
    let exit = runtime.block_on(dispatch(cli));
    // Commands being stopped get their SIGTERM grace before the process goes.
    crate::check::process::finish_stopping();
    // Background tasks (router, load) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    exit.code()
}

async fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Cmd::Check { file } => check(&plan_path(file)),
        Cmd::Run(args) => run::run(args).await,
        Cmd::Demo(args) => run::demo(args).await,
        Cmd::DemoApp(args) => run::demo_app(args).await,
        Cmd::History(args) => inspect::history(args),
        Cmd::Show(args) => inspect::show(args),
        Cmd::Replay(args) => replay::replay(args),
        Cmd::Attach(target) => detached::attach(target).await,
        Cmd::Status(args) => control::status(args).await,
        Cmd::Approve(args) => control::approve(args).await,
        Cmd::Rollback(args) => control::rollback(args).await,
        Cmd::Pause(target) => control::pause(target).await,
        Cmd::Resume(target) => control::resume(target).await,
        Cmd::SetWeight(args) => control::set_weight(args).await,
        Cmd::Engine(args) => detached::engine(args).await,
    }
}

fn plan_path(file: Option<PathBuf>) -> PathBuf {
    file.unwrap_or_else(|| PathBuf::from("deploy.toml"))
}

/// Loads a plan, printing every error (FILE:LINE:COL) on failure.
fn load(path: &Path) -> Result<Plan, Exit> {
    config::load(path).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        let n = errors.0.len();
        eprintln!(
            "{n} error{} in {}: nothing was executed",
            if n == 1 { "" } else { "s" },
            path.display()
        );
        Exit::Usage
    })
}

/// `cutover check`: validate and print the plan.
fn check(path: &Path) -> Exit {
    match load(path) {
        Ok(plan) => {
            print!("{}", plan.describe());
            println!("ok: {} is valid; nothing was executed", path.display());
            Exit::Succeeded
        }
        Err(exit) => exit,
    }
}

/// Prints an error on stderr, secrets masked.
fn error(message: impl std::fmt::Display) {
    eprintln!("error: {}", crate::redact::text(&message.to_string()));
}
