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
