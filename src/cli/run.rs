//! `run`, `demo` and `demo-app`: start the engine on a plan and show it in
//! the dashboard (a terminal) or as one line per event (headless).

use std::io::IsTerminal;
use std::path::Path;

use super::args::{DemoAppArgs, DemoArgs, FaultArg, Presentation, RunArgs};
use super::open::{self, Opening, Wish};
use super::{error, load, plan_path, release, signals, Exit};
use crate::config::Plan;
use crate::demo;
use crate::engine::{self, Command, EngineHandle, EngineOptions, SignalKind};
use crate::headless::{self, Format};
use crate::record::{self, lock};
use crate::router::BuiltRouter;

impl Presentation {
    /// The dashboard runs when stdout is a terminal and --headless is not given.
    fn interactive(&self) -> bool {
        !self.headless && std::io::stdout().is_terminal()
    }

    /// A run without a dashboard cannot stop at a manual gate: refuse it up
    /// front, naming the gate, before anything is touched.
    fn refuse_unattended_gates(&self, plan: &Plan) -> Result<(), Exit> {
        if self.interactive() || self.auto_approve {
            return Ok(());
        }
        let gates = plan.manual_gates();
        let Some(first) = gates.first() else {
            return Ok(());
        };
        let more = match gates.len() {
            1 => String::new(),
            2 => " (and 1 more gate)".to_string(),
            n => format!(" (and {} more gates)", n - 1),
        };
        error(format!(
            "the plan waits for an operator at {first}{more}, and this run has no dashboard to approve it: run in a terminal, or pass --auto-approve"
        ));
        Err(Exit::Usage)
    }
}

/// `cutover run`.
pub async fn run(args: RunArgs) -> Exit {
    let show = args.show;
    let path = plan_path(args.file);
    let plan = match load(&path) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    if let Err(exit) = show.refuse_unattended_gates(&plan) {
        return exit;
    }
    let operator = engine::operator_from_env();
    let state_dir = plan.deployment.state_dir.clone();
    let mut lock = match lock::acquire(&state_dir, &operator.to_string()) {
        Ok(l) => l,
        Err(e) => {
            error(e);
            return Exit::Failed;
        }
    };
    let mut opts = EngineOptions::new(operator.clone());
    if let Some(stale) = &lock.stale {
        opts.notes.push(format!(
            "took over the lock of {stale}, whose process is gone"
        ));
    }
    let open = match record::open_deployment(&state_dir) {
        Ok(o) => o,
        Err(e) => {
            error(format!(
                "cannot read the journals in {}: {e}",
                state_dir.display()
            ));
            return Exit::Failed;
        }
    };
    let mut wish = match (args.resume, args.abandon) {
        (true, _) => Wish::Resume,
        (false, true) => Wish::Abandon,
        (false, false) => Wish::Start,
    };
    if let (Some(o), Wish::Start, true) = (
        &open,
        wish,
        show.interactive() && std::io::stdin().is_terminal(),
    ) {
        // In a terminal the operator chooses here rather than re-running.
        match ask_resume_or_abandon(o, &state_dir) {
            Some(w) => wish = w,
            None => {
                lock.leave_as_found();
                return Exit::Usage;
            }
        }
    }
    if show.interactive() && !args.foreground {
        // The engine runs on its own and outlives this terminal; it takes
        // the lock and makes the same decision about the open deployment.
        lock.leave_as_found();
        drop(lock);
        let start_wait = release::start_wait(&plan);
        return super::detached::run_detached(
            &path,
            wish,
            show.auto_approve,
            &state_dir,
            start_wait,
        )
        .await;
    }
    // The release lease before anything is touched: a run elsewhere refuses this one.
    let release = match release::acquire(&plan, &operator).await {
        Ok(r) => r,
        Err(e) => {
            error(e);
            lock.leave_as_found();
            return Exit::Failed;
        }
    };
    if let Some(r) = &release {
        opts.fence = Some(r.fence());
        opts.notes.extend(r.takeover_note());
    }
    match open::decide(open, &plan, wish, &state_dir) {
        Opening::Start => {}
        Opening::Resume(point) => opts.resume = Some(*point),
        Opening::Abandon(read) => {
            if let Err(e) = open::abandon(&read, &operator) {
                error(format!(
                    "cannot record {} as abandoned: {e}",
                    read.path.display()
                ));
                return Exit::Failed;
            }
            eprintln!("closed {} as abandoned", read.path.display());
        }
        Opening::Refuse(message) => {
            error(message);
            lock.leave_as_found();
            if let Some(r) = release {
                r.release().await;
            }
            return Exit::Usage;
        }
    }
    let exit = execute(plan, show, opts, release, |_| {}).await;
    drop(lock);
    exit
}

/// Asks whether to resume or abandon an open deployment; `None` to leave it.
fn ask_resume_or_abandon(open: &record::JournalRead, state_dir: &Path) -> Option<Wish> {
    use std::io::Write;
    let last = open
        .entries
        .last()
        .map(|e| e.event.describe())
        .unwrap_or_default();
    let mut out = std::io::stderr();
    let _ = write!(
        out,
        "deployment {} in {} is unfinished (last: {}).\n  r  resume it from where it stopped\n  a  abandon it (close it) and start anew\n  q  leave it and quit\nchoice [r/a/q]: ",
        open.id(),
        state_dir.display(),
        crate::redact::text(&last)
    );
    let _ = out.flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).ok()?;
    match answer.trim() {
        "r" | "R" | "resume" => Some(Wish::Resume),
        "a" | "A" | "abandon" => Some(Wish::Abandon),
        _ => None,
    }
}

/// Runs a plan to its end in this process and returns its outcome's exit;
/// the release lease, if any, is kept for the engine and released once the
/// deployment has its outcome.
async fn execute(
    plan: Plan,
    show: Presentation,
    mut opts: EngineOptions,
    release: Option<release::ReleaseLock>,
    on_start: impl FnOnce(&EngineHandle),
) -> Exit {
    let interactive = show.interactive();
    if interactive {
        // The log pane takes the events; stderr lines would write over the screen.
        crate::ui::init_logging();
    } else {
        crate::logging::init_plain(!show.json);
    }
    opts.auto_approve = show.auto_approve;
    let handle = match engine::start(plan, opts).await {
        Ok(h) => h,
        Err(e) => {
            error(e);
            if let Some(r) = release {
                r.release().await;
            }
            return Exit::Failed;
        }
    };
    on_start(&handle);
    let keeper = release.map(|r| r.keep(handle.commands.clone(), handle.snapshots.clone()));
    let exit = present(handle, show).await;
    if let Some(k) = keeper {
        // It releases the lease once the outcome is recorded (bounded).
        let _ = k.await;
    }
    exit
}

/// The engine's run in the dashboard or as headless lines, to its outcome's exit.
async fn present(mut handle: EngineHandle, show: Presentation) -> Exit {
    let interactive = show.interactive();
    let leave = signals::spawn(handle.commands.clone(), handle.snapshots.clone());
    if interactive {
        return dashboard(handle, leave).await;
    }
    let format = if show.json {
        Format::Json
    } else {
        Format::Text
    };
    let mut stdout_open = true;
    let followed = handle
        .follow(|record| {
            // stdout gone (a closed pipe): the engine goes on, journal only.
            if stdout_open {
                let mut out = std::io::stdout().lock();
                stdout_open = headless::print_record(&mut out, record, format).is_ok();
            }
        })
        .await;
    let outcome = match followed {
        Ok(o) => o,
        Err(e) => {
            error(format!("the engine stopped unexpectedly: {e}"));
            return Exit::Failed;
        }
    };
    eprintln!("journal: {}", handle.journal_path.display());
    outcome.into()
}

/// The dashboard over a running engine, until the operator quits or the
/// terminal goes away; then the outcome's exit.
async fn dashboard(mut handle: EngineHandle, leave: tokio_util::sync::CancellationToken) -> Exit {
    // The dashboard reads snapshots; the records are on disk already.
    let mut records = std::mem::replace(
        &mut handle.records,
        tokio::sync::mpsc::unbounded_channel().1,
    );
    tokio::spawn(async move { while records.recv().await.is_some() {} });
    let io = crate::ui::DashboardIo {
        snapshots: handle.snapshots.clone(),
        commands: handle.commands.clone(),
        hangup: leave,
        attached: false,
    };
    match crate::ui::run(io).await {
        Ok(crate::ui::UiExit::Quit) => {}
        Ok(crate::ui::UiExit::HangUp) => {
            // The terminal is gone: on_disconnect decides (hold, or roll back).
            let _ = handle
                .commands
                .try_send(Command::Signal(SignalKind::Hangup));
        }
        Err(e) => {
            // The screen failed, not the deployment: hold traffic and stop.
            error(format!("the dashboard failed: {e}"));
            let _ = handle.commands.try_send(Command::HoldAndQuit {
                reason: format!("the dashboard failed: {e}"),
            });
        }
    }
    let outcome = match handle.task.await {
        Ok(o) => o,
        Err(e) => {
            error(format!("the engine stopped unexpectedly: {e}"));
            return Exit::Failed;
        }
    };
    eprintln!(
        "{}: {} — journal {}",
        handle.id,
        outcome.as_str(),
        handle.journal_path.display()
    );
    outcome.into()
}

/// `cutover demo`.
pub async fn demo(args: DemoArgs) -> Exit {
    let mut show = args.show;
    // A rehearsal without a dashboard approves by itself.
    show.auto_approve |= show.headless;
    let state_dir = match demo::state_dir(args.state_dir) {
        Ok(d) => d,
        Err(e) => {
            error(format!("cannot make a state dir: {e}"));
            return Exit::Failed;
        }
    };
    let plan = match demo::example_plan(&state_dir) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return Exit::Usage;
        }
    };
    let demo = match demo::start(plan).await {
        Ok(d) => d,
        Err(e) => {
            error(format!("the demo could not start: {e}"));
            return Exit::Failed;
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
    if let Err(exit) = show.refuse_unattended_gates(&demo.plan) {
        return exit;
    }
    let operator = engine::operator_from_env();
    let lock = match lock::acquire(&state_dir, &operator.to_string()) {
        Ok(l) => l,
        Err(e) => {
            error(e);
            return Exit::Failed;
        }
    };
    let mut opts = EngineOptions::new(operator);
    opts.router = Some(BuiltRouter {
        router: demo.router.router.clone(),
        stats: demo.router.stats.clone(),
        listen: demo.router.listen,
        connections: demo.router.connections.clone(),
        group: None,
    });
    let exit = execute(demo.plan.clone(), show, opts, None, |handle| {
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
    exit
}

/// `cutover demo-app`: the sample service on its own.
pub async fn demo_app(args: DemoAppArgs) -> Exit {
    if !(0.0..=1.0).contains(&args.error_rate) {
        error("--error-rate is a fraction from 0 to 1");
        return Exit::Usage;
    }
    let cfg = demo::app::DemoAppConfig {
        listen: args.listen,
        version: args.version,
        error_rate: args.error_rate,
        latency_ms: args.latency_ms,
        admin: args.admin,
    };
    match demo::app::serve_forever(cfg).await {
        Ok(()) => Exit::Succeeded,
        Err(e) => {
            error(format!("demo-app: {e}"));
            Exit::Failed
        }
    }
}
