//! The command line's flags and subcommands (clap), as SPEC §2 names them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cutover",
    version,
    about = "Run a deployment as a procedure and steer canary and blue-green releases live"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the plan in FILE (default ./deploy.toml)
    Run(RunArgs),
    /// Validate the config and print the plan; nothing is executed
    Check {
        /// The plan (default ./deploy.toml)
        file: Option<PathBuf>,
    },
    /// A self-contained rehearsal on loopback with the example plan
    Demo(DemoArgs),
    /// The sample service on its own
    DemoApp(DemoAppArgs),
    /// Past deployments of a state dir
    History(HistoryArgs),
    /// One deployment's story
    Show(ShowArgs),
    /// Recompute every sequential analysis verdict of a journal, with its
    /// settings or others, and say where they differ
    Replay(ReplayArgs),
    /// The dashboard on a running deployment, from any terminal
    Attach(Target),
    /// Where a running deployment stands
    Status(StatusArgs),
    /// Approve the gate that is open, naming it (refused if another is open)
    Approve(ApproveArgs),
    /// Emergency rollback of a running deployment
    Rollback(RollbackArgs),
    /// Pause automatic progression of a running deployment
    Pause(Target),
    /// Resume automatic progression of a running deployment
    Resume(Target),
    /// Move a running canary to this weight (percent)
    SetWeight(SetWeightArgs),
    /// The engine of a detached run (started by `run` in a terminal)
    #[command(hide = true)]
    Engine(EngineArgs),
}

/// Which running deployment: its plan, or its state dir.
#[derive(clap::Args)]
pub struct Target {
    /// The plan (default ./deploy.toml)
    pub file: Option<PathBuf>,
    /// The state dir (instead of a plan)
    #[arg(long, conflicts_with = "file")]
    pub state_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// The whole snapshot as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub target: Target,
    /// The canary step to approve, in percent
    #[arg(long, conflicts_with = "check", required_unless_present = "check")]
    pub step: Option<u8>,
    /// The manual check to confirm, by name
    #[arg(long)]
    pub check: Option<String>,
}

#[derive(clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: Target,
    /// Why, for the record
    #[arg(long, default_value = "operator asked with `cutover rollback`")]
    pub reason: String,
}

#[derive(clap::Args)]
pub struct SetWeightArgs {
    /// Percent of traffic to the canary (0 to 100)
    #[arg(value_parser = clap::value_parser!(u8).range(0..=100))]
    pub weight: u8,
    #[command(flatten)]
    pub target: Target,
}

#[derive(clap::Args)]
pub struct EngineArgs {
    /// The plan
    pub file: PathBuf,
    #[arg(long)]
    pub auto_approve: bool,
    #[arg(long, conflicts_with = "abandon")]
    pub resume: bool,
    #[arg(long)]
    pub abandon: bool,
}

/// How a run shows itself (`run` and `demo` share these flags).
#[derive(clap::Args)]
pub struct Presentation {
    /// No dashboard: one line per event on stdout (the demo then approves by itself)
    #[arg(long)]
    pub headless: bool,
    /// With --headless: each event as one JSON object per line
    #[arg(long, requires = "headless")]
    pub json: bool,
    /// Manual checks and approval gates pass by themselves
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The plan (default ./deploy.toml)
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub show: Presentation,
    /// Carry on the unfinished deployment of the state dir from its journal
    #[arg(long, conflicts_with = "abandon")]
    pub resume: bool,
    /// Keep the engine in this process (a terminal run otherwise starts it
    /// detached and attaches to it)
    #[arg(long)]
    pub foreground: bool,
    /// Record the unfinished deployment as interrupted and start anew
    #[arg(long)]
    pub abandon: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FaultArg {
    Error,
    Latency,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the journal goes (default: a new temporary directory)
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub show: Presentation,
    /// Make the canary go bad at its second step
    #[arg(long, value_enum)]
    pub fault: Option<FaultArg>,
}

#[derive(clap::Args)]
pub struct DemoAppArgs {
    /// Address to listen on, like 127.0.0.1:9001
    #[arg(long)]
    pub listen: SocketAddr,
    /// The version it reports
    #[arg(long)]
    pub version: String,
    /// Fraction of requests answered with 500 (0 to 1)
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Added delay per request, in milliseconds
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Loopback address serving POST /fault, like 127.0.0.1:9101 (default: none)
    #[arg(long)]
    pub admin: Option<SocketAddr>,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The state dir (default: deploy.toml's, else ./.cutover)
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// As JSON
    #[arg(long)]
    pub json: bool,
    /// Check every journal's hash chain; exit 1 if any is broken
    #[arg(long)]
    pub verify: bool,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The state dir (default: deploy.toml's, else ./.cutover)
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The bound on false rollbacks to replay with (default: the journal's)
    #[arg(long)]
    pub alpha: Option<f64>,
    /// The ratio that counts as the same (default: the journal's)
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// What a slow request is, in ms: the journal holds counts at its own
    /// slow_ms, so another one cannot be recounted (said, not guessed)
    #[arg(long)]
    pub slow_ms: Option<u64>,
    /// Each analysis recomputed, as JSON lines
    #[arg(long)]
    pub json: bool,
    /// The deployment id (as `history` lists it), a unique prefix of it, or `last`
    pub id: String,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    /// The state dir (default: deploy.toml's, else ./.cutover)
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// As JSON
    #[arg(long)]
    pub json: bool,
    /// The deployment id (as `history` lists it), a unique prefix of it, or `last`
    pub id: String,
}
