//! The `cutover` command line: run, check, demo, demo-app, history, show.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::signal::unix::{signal, SignalKind as UnixSignal};

use cutover::config::{self, Plan};
use cutover::demo;
use cutover::engine::resume::ResumePoint;
use cutover::engine::{self, Command, EngineOptions, SignalKind};
use cutover::headless::{self, Format};
use cutover::history;
use cutover::journal;
use cutover::lock;
use cutover::router::BuiltRouter;

/// Exit code for bad usage or an invalid config.
const EXIT_USAGE: i32 = 2;
/// Exit code for a failure before any change, or an internal error.
const EXIT_FAILED: i32 = 1;

#[derive(Parser)]
#[command(
    name = "cutover",
    version,
    about = "Run a deployment as a procedure and steer canary and blue-green releases live"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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
struct Presentation {
    /// No dashboard: one line per event on stdout (the demo then approves by itself)
    #[arg(long)]
    headless: bool,
    /// With --headless: each event as one JSON object per line
    #[arg(long, requires = "headless")]
    json: bool,
    /// Manual checks and approval gates pass by themselves
    #[arg(long)]
    auto_approve: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The plan (default ./deploy.toml)
    file: Option<PathBuf>,
    #[command(flatten)]
    show: Presentation,
    /// Carry on the unfinished deployment of the state dir from its journal
    #[arg(long, conflicts_with = "abandon")]
    resume: bool,
    /// Record the unfinished deployment as interrupted and start anew
    #[arg(long)]
    abandon: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum FaultArg {
    Error,
    Latency,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Where the journal goes (default: a new temporary directory)
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    show: Presentation,
    /// Make the canary go bad at its second step
    #[arg(long, value_enum)]
    fault: Option<FaultArg>,
}

#[derive(clap::Args)]
struct DemoAppArgs {
    /// Address to listen on, like 127.0.0.1:9001
    #[arg(long)]
    listen: SocketAddr,
    /// The version it reports
    #[arg(long)]
    version: String,
    /// Fraction of requests answered with 500 (0 to 1)
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Added delay per request, in milliseconds
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Loopback address serving POST /fault, like 127.0.0.1:9101 (default: none)
    #[arg(long)]
    admin: Option<SocketAddr>,
}

#[derive(clap::Args)]
struct HistoryArgs {
    /// The state dir (default: deploy.toml's, else ./.cutover)
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// As JSON
    #[arg(long)]
    json: bool,
    /// Check every journal's hash chain; exit 1 if any is broken
    #[arg(long)]
    verify: bool,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// The state dir (default: deploy.toml's, else ./.cutover)
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// As JSON
    #[arg(long)]
    json: bool,
    /// The deployment id (as `history` lists it)
    id: String,
}

fn main() {
    let _ = color_eyre::install();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(EXIT_FAILED);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    // Background tasks (router, load) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    std::process::exit(code);
}

async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Cmd::Check { file } => check(file),
        Cmd::Run(args) => run(args).await,
        Cmd::Demo(args) => demo_cmd(args).await,
        Cmd::DemoApp(args) => demo_app(args).await,
        Cmd::History(args) => history_cmd(args),
        Cmd::Show(args) => show_cmd(args),
    }
}

fn plan_path(file: Option<PathBuf>) -> PathBuf {
    file.unwrap_or_else(|| PathBuf::from("deploy.toml"))
}

fn load(path: &Path) -> Result<Plan, i32> {
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
        EXIT_USAGE
    })
}

fn check(file: Option<PathBuf>) -> i32 {
    let path = plan_path(file);
    match load(&path) {
        Ok(plan) => {
            print!("{}", plan.describe());
            println!("ok: {} is valid; nothing was executed", path.display());
            0
        }
        Err(code) => code,
    }
}

impl Presentation {
    /// The dashboard runs when stdout is a terminal and --headless is not given.
    fn interactive(&self) -> bool {
        !self.headless && std::io::stdout().is_terminal()
    }

    /// A run without a dashboard cannot stop at a manual gate: refuse it up
    /// front, naming the gate, before anything is touched.
    fn refuse_unattended_gates(&self, plan: &Plan) -> Option<i32> {
        if self.interactive() || self.auto_approve {
            return None;
        }
        let gates = plan.manual_gates();
        let first = gates.first()?;
        eprintln!(
            "error: the plan waits for an operator at {first}{}, and this run has no dashboard to approve it: run in a terminal, or pass --auto-approve",
            if gates.len() > 1 {
                format!(
                    " (and {} more gate{})",
                    gates.len() - 1,
                    if gates.len() > 2 { "s" } else { "" }
                )
            } else {
                String::new()
            }
        );
        Some(EXIT_USAGE)
    }
}

async fn run(args: RunArgs) -> i32 {
    let show = args.show;
    let path = plan_path(args.file);
    let plan = match load(&path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(code) = show.refuse_unattended_gates(&plan) {
        return code;
    }
    let operator = engine::operator_from_env();
    let state_dir = plan.deployment.state_dir.clone();
    let mut lock = match lock::acquire(&state_dir, &operator) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let mut opts = EngineOptions::new(operator.clone());
    if let Some(stale) = &lock.stale {
        opts.notes.push(format!(
            "took over the lock of {stale}, whose process is gone"
        ));
    }
    let unfinished = match history::unfinished(&state_dir) {
        Ok(u) => u,
        Err(e) => {
            eprintln!(
                "error: cannot read the journals in {}: {e}",
                state_dir.display()
            );
            return EXIT_FAILED;
        }
    };
    let (mut resume, mut abandon_it) = (args.resume, args.abandon);
    if let (Some(path), false, false, true) = (
        &unfinished,
        resume,
        abandon_it,
        show.interactive() && std::io::stdin().is_terminal(),
    ) {
        // In a terminal the operator chooses here rather than re-running.
        match ask_resume_or_abandon(path, &state_dir) {
            Some(true) => resume = true,
            Some(false) => abandon_it = true,
            None => {
                lock.leave_as_found();
                return EXIT_USAGE;
            }
        }
    }
    match (unfinished, resume, abandon_it) {
        (Some(path), false, false) => {
            let point = ResumePoint::read(&path);
            let last = point
                .as_ref()
                .map(|p| p.last_event.clone())
                .unwrap_or_else(|e| e.to_string());
            eprintln!(
                "error: deployment {} in {} is unfinished (last: {last}).\n  cutover run --resume    carry it on from where it stopped\n  cutover run --abandon   record it as interrupted and start anew",
                path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default(),
                state_dir.display()
            );
            lock.leave_as_found();
            return EXIT_USAGE;
        }
        (Some(path), true, _) => match ResumePoint::read(&path) {
            Ok(point) => {
                if point.service != plan.deployment.service
                    || point.version != plan.deployment.version
                {
                    eprintln!(
                        "error: the unfinished deployment is {} {}, but {} deploys {} {}: resume it with its own plan, or --abandon it",
                        point.service, point.version, path.display(), plan.deployment.service, plan.deployment.version
                    );
                    return EXIT_USAGE;
                }
                opts.resume = Some(point);
            }
            Err(e) => {
                eprintln!("error: cannot resume from {}: {e}", path.display());
                return EXIT_FAILED;
            }
        },
        (Some(path), false, true) => {
            if let Err(e) = abandon(&path, &operator) {
                eprintln!("error: cannot record {} as abandoned: {e}", path.display());
                return EXIT_FAILED;
            }
            eprintln!("recorded {} as interrupted (abandoned)", path.display());
        }
        (None, true, _) => {
            eprintln!(
                "error: nothing to resume: {} has no unfinished deployment",
                state_dir.display()
            );
            return EXIT_USAGE;
        }
        (None, false, _) => {}
    }
    let code = execute(plan, show, opts, |_| {}).await;
    drop(lock);
    code
}

/// Asks whether to resume (true) or abandon (false) an unfinished deployment;
/// None to leave it alone.
fn ask_resume_or_abandon(path: &Path, state_dir: &Path) -> Option<bool> {
    use std::io::Write;
    let last = ResumePoint::read(path)
        .map(|p| p.last_event)
        .unwrap_or_else(|e| e.to_string());
    let mut out = std::io::stderr();
    let _ = write!(
        out,
        "deployment {} in {} is unfinished (last: {last}).\n  r  resume it from where it stopped\n  a  abandon it (record it as interrupted) and start anew\n  q  leave it and quit\nchoice [r/a/q]: ",
        path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default(),
        state_dir.display()
    );
    let _ = out.flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).ok()?;
    match answer.trim() {
        "r" | "R" | "resume" => Some(true),
        "a" | "A" | "abandon" => Some(false),
        _ => None,
    }
}

/// Closes an unfinished journal as interrupted.
fn abandon(path: &Path, operator: &str) -> std::io::Result<()> {
    let (mut journal, torn) = journal::Journal::reopen_repairing(path)?;
    if let Some(bad) = torn {
        journal.append(&engine::Event::Note {
            message: format!(
                "line {} was torn by a crash mid-write and was cut off",
                bad.line
            ),
        })?;
    }
    let started = ResumePoint::read(path)
        .map(|p| p.started_at)
        .unwrap_or_else(|_| chrono::Utc::now());
    journal.append(&engine::Event::DeploymentFinished {
        outcome: engine::snapshot::Outcome::Interrupted,
        duration_ms: (chrono::Utc::now() - started).num_milliseconds().max(0) as u64,
        reason: Some(format!("abandoned by {operator}: a new deployment starts")),
    })?;
    Ok(())
}

/// Runs a plan to its end and returns the exit code of its outcome.
async fn execute(
    plan: Plan,
    show: Presentation,
    mut opts: EngineOptions,
    on_start: impl FnOnce(&engine::EngineHandle),
) -> i32 {
    let interactive = show.interactive();
    if interactive {
        // The log pane takes the events; stderr lines would write over the screen.
        cutover::ui::init_logging();
    } else {
        cutover::logging::init_plain(!show.json);
    }
    opts.auto_approve = show.auto_approve;
    let mut handle = match engine::start(plan, opts).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    on_start(&handle);
    spawn_signal_forwarder(handle.commands.clone());
    if interactive {
        return run_dashboard(handle).await;
    }
    let format = if show.json {
        Format::Json
    } else {
        Format::Text
    };
    let mut out = std::io::stdout().lock();
    while let Some(record) = handle.records.recv().await {
        if headless::print_record(&mut out, &record, format).is_err() {
            // stdout is gone (a closed pipe): keep the engine going, journal only.
            break;
        }
    }
    drop(out);
    let outcome = match handle.task.await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: the engine stopped unexpectedly: {e}");
            return EXIT_FAILED;
        }
    };
    eprintln!("journal: {}", handle.journal_path.display());
    outcome.exit_code()
}

/// The dashboard over a running engine, until the operator quits or the
/// terminal goes away; then the outcome's exit code.
async fn run_dashboard(mut handle: engine::EngineHandle) -> i32 {
    let hangup = tokio_util::sync::CancellationToken::new();
    {
        let hangup = hangup.clone();
        tokio::spawn(async move {
            if let Ok(mut hup) = signal(UnixSignal::hangup()) {
                hup.recv().await;
                hangup.cancel();
            }
        });
    }
    {
        // SIGTERM or SIGINT: the forwarder has told the engine to hold and
        // stop; once it has, the dashboard leaves too (no `q` to wait for).
        let stop = hangup.clone();
        let mut snapshots = handle.snapshots.clone();
        tokio::spawn(async move {
            let (Ok(mut term), Ok(mut int)) = (
                signal(UnixSignal::terminate()),
                signal(UnixSignal::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                snapshots.wait_for(|s| s.outcome.is_some()),
            )
            .await;
            stop.cancel();
        });
    }
    // The dashboard reads snapshots; the records are on disk already.
    let mut records = std::mem::replace(
        &mut handle.records,
        tokio::sync::mpsc::unbounded_channel().1,
    );
    tokio::spawn(async move { while records.recv().await.is_some() {} });
    let io = cutover::ui::DashboardIo {
        snapshots: handle.snapshots.clone(),
        commands: handle.commands.clone(),
        hangup,
    };
    match cutover::ui::run(io).await {
        Ok(cutover::ui::UiExit::Quit) => {}
        Ok(cutover::ui::UiExit::HangUp) => {
            // The terminal is gone: on_disconnect decides (hold, or roll back).
            let _ = handle
                .commands
                .try_send(Command::Signal(SignalKind::Hangup));
        }
        Err(e) => {
            // The screen failed, not the deployment: hold traffic and stop.
            eprintln!("error: the dashboard failed: {e}");
            let _ = handle.commands.try_send(Command::HoldAndQuit {
                reason: format!("the dashboard failed: {e}"),
            });
        }
    }
    let outcome = match handle.task.await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: the engine stopped unexpectedly: {e}");
            return EXIT_FAILED;
        }
    };
    eprintln!(
        "{}: {} — journal {}",
        handle.id,
        outcome.as_str(),
        handle.journal_path.display()
    );
    outcome.exit_code()
}

/// SIGINT, SIGTERM and SIGHUP become engine commands: traffic is held (or, for
/// a hang-up with on_disconnect = "rollback", rolled back) and the run ends.
fn spawn_signal_forwarder(commands: tokio::sync::mpsc::Sender<Command>) {
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(UnixSignal::interrupt()),
            signal(UnixSignal::terminate()),
            signal(UnixSignal::hangup()),
        ) else {
            return;
        };
        loop {
            let kind = tokio::select! {
                _ = int.recv() => SignalKind::Interrupt,
                _ = term.recv() => SignalKind::Terminate,
                _ = hup.recv() => SignalKind::Hangup,
            };
            if commands.send(Command::Signal(kind)).await.is_err() {
                return;
            }
        }
    });
}

async fn demo_cmd(args: DemoArgs) -> i32 {
    let mut show = args.show;
    // A rehearsal without a dashboard approves by itself.
    show.auto_approve |= show.headless;
    let state_dir = match demo::state_dir(args.state_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot make a state dir: {e}");
            return EXIT_FAILED;
        }
    };
    let plan = match demo::example_plan(&state_dir) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return EXIT_USAGE;
        }
    };
    let demo = match demo::start(plan).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: the demo could not start: {e}");
            return EXIT_FAILED;
        }
    };
    // stderr: stdout stays one event per line, also with --json.
    eprintln!(
        "demo: {} {} on {}, {} on {}, router on {} with ~{} requests/s; journal in {}",
        demo.plan.deployment.service,
        demo.plan.deployment.previous.as_deref().unwrap_or("stable"),
        demo.stable.local_addr(),
        demo.plan.deployment.version,
        demo.canary.local_addr(),
        demo.router_addr,
        demo::DEMO_RPS,
        state_dir.display()
    );
    if let (Some(stable), Some(canary)) = (demo.stable.admin_addr(), demo.canary.admin_addr()) {
        eprintln!(
            "demo: faults by hand: POST http://{canary}/fault (canary) or http://{stable}/fault (stable), e.g. error_rate=0.5 or latency_ms=800"
        );
    }
    let fault = args.fault.map(|f| match f {
        FaultArg::Error => demo::Fault::Error,
        FaultArg::Latency => demo::Fault::Latency,
    });
    let canary_admin = demo.canary.admin_addr();
    let demo_plan = demo.plan.clone();
    if let Some(code) = show.refuse_unattended_gates(&demo.plan) {
        return code;
    }
    let operator = engine::operator_from_env();
    let lock = match lock::acquire(&state_dir, &operator) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let mut opts = EngineOptions::new(operator);
    opts.router = Some(BuiltRouter {
        router: demo.router.router.clone(),
        stats: demo.router.stats.clone(),
        listen: demo.router.listen,
        connections: demo.router.connections.clone(),
    });
    let code = execute(demo.plan.clone(), show, opts, |handle| {
        if let (Some(f), Some(admin)) = (fault, canary_admin) {
            demo::inject_fault(f, &demo_plan, admin, handle.snapshots.clone());
        }
    })
    .await;
    drop(lock);
    let counts = demo.load.counts();
    drop(demo);
    eprintln!(
        "demo: {} requests sent ({} ok, {} 5xx, {} failed); state dir {}",
        counts.sent,
        counts.ok,
        counts.server_errors,
        counts.failed,
        state_dir.display()
    );
    code
}

async fn demo_app(args: DemoAppArgs) -> i32 {
    if !(0.0..=1.0).contains(&args.error_rate) {
        eprintln!("error: --error-rate is a fraction from 0 to 1");
        return EXIT_USAGE;
    }
    let cfg = demo::app::DemoAppConfig {
        listen: args.listen,
        version: args.version,
        error_rate: args.error_rate,
        latency_ms: args.latency_ms,
        admin: args.admin,
    };
    match demo::app::serve_forever(cfg).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: demo-app: {e}");
            EXIT_FAILED
        }
    }
}

/// The state dir named, else the one of ./deploy.toml, else ./.cutover.
fn resolve_state_dir(given: Option<PathBuf>) -> PathBuf {
    if let Some(d) = given {
        return d;
    }
    let local = Path::new("deploy.toml");
    if local.exists() {
        if let Ok(plan) = config::load(local) {
            return plan.deployment.state_dir;
        }
    }
    PathBuf::from(".cutover")
}

fn history_cmd(args: HistoryArgs) -> i32 {
    let dir = resolve_state_dir(args.state_dir);
    if args.verify {
        let paths = match journal::list(&dir) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", dir.display());
                return EXIT_FAILED;
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
        return if bad > 0 { 1 } else { 0 };
    }
    let rows = match history::all(&dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", dir.display());
            return EXIT_FAILED;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_FAILED;
            }
        }
    } else if rows.is_empty() {
        println!("no deployments in {}", dir.display());
    } else {
        print!("{}", history::table(&rows));
    }
    0
}

fn show_cmd(args: ShowArgs) -> i32 {
    let dir = resolve_state_dir(args.state_dir);
    let path = journal::deployments_dir(&dir).join(format!("{}.jsonl", args.id));
    let story = match history::story(&path) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("error: {} holds no deployment", path.display());
            return EXIT_FAILED;
        }
        Err(e) => {
            eprintln!(
                "error: no deployment {} in {} ({e}); `cutover history` lists them",
                args.id,
                dir.display()
            );
            return EXIT_USAGE;
        }
    };
    if args.json {
        let events = journal::read_events(&path).unwrap_or_default();
        let mut value = serde_json::to_value(&story).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("events".into(), serde_json::Value::Array(events));
        }
        match serde_json::to_string_pretty(&value) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_FAILED;
            }
        }
    } else {
        print!("{}", history::render_story(&story));
    }
    0
}
