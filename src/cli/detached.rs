//! A terminal `run` starts the engine as a process of its own (new session,
//! no controlling terminal, its log in the state dir) and attaches the
//! dashboard to it; `attach` does the same from any terminal. The engine
//! process (`cutover engine`, hidden) owns the deployment, the router, the
//! source, the journal and the control socket.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::args::{EngineArgs, Target};
use super::control::state_dir_of;
use super::open::{self, Opening, Wish};
use super::{error, load, release, Exit};
use crate::control::client::{self, ConnectError};
use crate::control::{logs, server};
use crate::engine::{self, EngineOptions};
use crate::record::{self, lock, state_dir};

/// Longest wait for a new engine to listen.
const ENGINE_START: Duration = Duration::from_secs(30);
/// Longest an engine stays after its outcome while a dashboard watches
/// (the built-in router keeps serving meanwhile).
const LINGER: Duration = Duration::from_secs(3600);

/// Where a detached engine writes its log.
pub fn engine_log(state_dir: &Path) -> PathBuf {
    state_dir.join("engine.log")
}

/// Starts the engine of `file` detached, waits until it listens (up to
/// [`ENGINE_START`] and `start_wait` more, the time it may wait for a held
/// release lease), and attaches the dashboard to it.
pub async fn run_detached(
    file: &Path,
    wish: Wish,
    auto_approve: bool,
    state_dir: &Path,
    start_wait: Duration,
) -> Exit {
    if let Err(e) = state_dir::ensure(state_dir) {
        error(e);
        return Exit::Failed;
    }
    let log_path = engine_log(state_dir);
    let log = match state_dir::open_or_create(&log_path, std::fs::OpenOptions::new().append(true)) {
        Ok(f) => f,
        Err(e) => {
            error(format!("cannot write {}: {e}", log_path.display()));
            return Exit::Failed;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            error(format!("cannot find this program to start the engine: {e}"));
            return Exit::Failed;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("engine").arg(file);
    match wish {
        Wish::Resume => {
            cmd.arg("--resume");
        }
        Wish::Abandon => {
            cmd.arg("--abandon");
        }
        Wish::Start => {}
    }
    if auto_approve {
        cmd.arg("--auto-approve");
    }
    let stderr = match log.try_clone() {
        Ok(f) => f,
        Err(e) => {
            error(e);
            return Exit::Failed;
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr));
    // SAFETY: setsid is async-signal-safe; it detaches the engine from this
    // terminal, so a hang-up here never reaches it.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            error(format!("cannot start the engine: {e}"));
            return Exit::Failed;
        }
    };
    let started = Instant::now();
    let conn = loop {
        match client::connect(state_dir, true, true).await {
            Ok(c) => break c,
            Err(ConnectError::Refused(m)) => {
                error(m);
                return Exit::Failed;
            }
            Err(_) if started.elapsed() < ENGINE_START + start_wait => {}
            Err(e) => {
                error(e);
                return Exit::Failed;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            // The engine stopped before listening: say why, from its log.
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = tail.lines().collect();
            for l in &lines[lines.len().saturating_sub(10)..] {
                eprintln!("{l}");
            }
            return match status.code() {
                Some(0) => Exit::Succeeded,
                Some(2) => Exit::Usage,
                Some(3) => Exit::RolledBack,
                Some(4) => Exit::RollbackFailed,
                Some(5) => Exit::Interrupted,
                _ => Exit::Failed,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "engine started (pid {}), log {}",
        conn.welcome.pid,
        log_path.display()
    );
    attached(conn, state_dir).await
}

/// `cutover attach`.
pub async fn attach(target: Target) -> Exit {
    let dir = state_dir_of(&target);
    match client::connect(&dir, true, true).await {
        Ok(conn) => attached(conn, &dir).await,
        Err(e @ ConnectError::Gone(_)) => {
            error(e);
            Exit::Failed
        }
        Err(e) => {
            error(e);
            Exit::Failed
        }
    }
}

/// The dashboard on a connected engine, until the operator leaves or the
/// engine ends; the outcome's exit when it ended, else 6 (detached).
async fn attached(conn: client::Connection, state_dir: &Path) -> Exit {
    let operator = conn.welcome.operator.clone();
    let may_steer = conn.welcome.may_steer;
    let attached = match client::attach(conn).await {
        Ok(a) => a,
        Err(e) => {
            error(e);
            return Exit::Failed;
        }
    };
    crate::ui::init_logging();
    if !may_steer {
        tracing::warn!(target: "cutover", "{operator} may watch this deployment but not steer it");
    }
    let leave = super::signals::leave_on_any();
    let snapshots = attached.snapshots.clone();
    {
        // An engine that goes away without an outcome was killed: leave.
        let (leave, closed, last) = (leave.clone(), attached.closed, snapshots.clone());
        tokio::spawn(async move {
            let _ = closed.await;
            if last.borrow().outcome.is_none() {
                leave.cancel();
            }
        });
    }
    let io = crate::ui::DashboardIo {
        snapshots: attached.snapshots,
        commands: attached.commands,
        hangup: leave,
        attached: true,
    };
    let ended = crate::ui::run(io).await;
    // A last command (hold and detach) goes out before this process does.
    let _ = tokio::time::timeout(Duration::from_secs(2), attached.forwarder).await;
    let last = snapshots.borrow().clone();
    if let Err(e) = ended {
        error(format!("the dashboard failed: {e}"));
    }
    let gone = crate::control::client::connect(state_dir, false, false)
        .await
        .err()
        .filter(|e| matches!(e, ConnectError::Gone(_) | ConnectError::NoEngine(_)));
    match last.outcome {
        None if gone.is_some() => {
            error(format!(
                "the engine of {} stopped without an outcome (killed?): `cutover run --resume` carries the deployment on from its journal",
                last.deployment_id
            ));
            Exit::Failed
        }
        Some(outcome) => {
            eprintln!(
                "{}: {} — journal {}",
                last.deployment_id,
                outcome.as_str(),
                last.journal_path
            );
            outcome.into()
        }
        None => {
            eprintln!(
                "detached from {}: the deployment goes on (`cutover attach` returns to it; log {})",
                last.deployment_id,
                engine_log(state_dir).display()
            );
            Exit::Detached
        }
    }
}

/// The `[operators] group` the control socket is shared with, once the state
/// dir lets that group reach it (cutover does not change the mode or group of
/// a directory it did not create: it says what to run instead).
fn shared_group(
    plan: &crate::config::Plan,
    state_dir: &Path,
) -> Result<Option<nix::unistd::Gid>, String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(name) = &plan.operators.group else {
        return Ok(None);
    };
    let group = nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| format!("[operators] group {name:?} does not exist on this machine"))?;
    state_dir::ensure(state_dir).map_err(|e| e.to_string())?;
    let meta = std::fs::metadata(state_dir).map_err(|e| e.to_string())?;
    let mode = meta.permissions().mode();
    if meta.gid() != group.gid.as_raw() || mode & 0o010 == 0 {
        return Err(format!(
            "[operators] group = {name:?}, but its members cannot reach {dir}: run `chgrp {name} {dir} && chmod g+x {dir}` (cutover does not change the mode of its state dir for you)",
            dir = state_dir.display()
        ));
    }
    Ok(Some(group.gid))
}

/// `cutover engine FILE`: the detached engine's process.
pub async fn engine(args: EngineArgs) -> Exit {
    let plan = match load(&args.file) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let (logs_tx, _) = broadcast::channel(server::BACKLOG);
    {
        use tracing_subscriber::prelude::*;
        let _ = tracing_subscriber::registry()
            .with(crate::logging::PlainLayer { output: true })
            .with(logs::BroadcastLayer {
                lines: logs_tx.clone(),
            })
            .try_init();
    }
    let operator = engine::operator_from_env();
    let state_dir = plan.deployment.state_dir.clone();
    let lock = match lock::acquire(&state_dir, &operator.to_string()) {
        Ok(l) => l,
        Err(e) => {
            error(e);
            return Exit::Failed;
        }
    };
    let mut opts = EngineOptions::new(operator.clone());
    opts.auto_approve = args.auto_approve;
    opts.attended = true;
    if let Some(stale) = &lock.stale {
        opts.notes.push(format!(
            "took over the lock of {stale}, whose process is gone"
        ));
    }
    // The release lease before anything is touched: a run elsewhere refuses this one.
    let release = match release::acquire(&plan, &operator).await {
        Ok(r) => r,
        Err(e) => {
            error(e);
            return Exit::Failed;
        }
    };
    if let Some(r) = &release {
        opts.fence = Some(r.fence());
        opts.notes.extend(r.takeover_note());
    }
    let wish = match (args.resume, args.abandon) {
        (true, _) => Wish::Resume,
        (_, true) => Wish::Abandon,
        _ => Wish::Start,
    };
    let open_now = match record::open_deployment(&state_dir) {
        Ok(o) => o,
        Err(e) => {
            error(e);
            return Exit::Failed;
        }
    };
    match open::decide(open_now, &plan, wish, &state_dir) {
        Opening::Start => {}
        Opening::Resume(point) => opts.resume = Some(*point),
        Opening::Abandon(read) => {
            if let Err(e) = open::abandon(&read, &operator) {
                error(e);
                return Exit::Failed;
            }
        }
        Opening::Refuse(m) => {
            error(m);
            return Exit::Usage;
        }
    }
    let group = match shared_group(&plan, &state_dir) {
        Ok(g) => g,
        Err(e) => {
            error(e);
            return Exit::Usage;
        }
    };
    let rules = plan.operators.clone();
    let socket = match server::bind(&state_dir, group) {
        Ok(s) => s,
        Err(e) => {
            error(format!("cannot listen for operators: {e}"));
            return Exit::Failed;
        }
    };
    let mut handle = match engine::start(plan, opts).await {
        Ok(h) => h,
        Err(e) => {
            error(e);
            if let Some(r) = release {
                r.release().await;
            }
            return Exit::Failed;
        }
    };
    let keeper = release.map(|r| r.keep(handle.commands.clone(), handle.snapshots.clone()));
    let (records_tx, _) = broadcast::channel(server::BACKLOG);
    let served = server::Served {
        commands: handle.commands.clone(),
        snapshots: handle.snapshots.clone(),
        records: records_tx.clone(),
        logs: logs_tx,
        may_steer: Arc::new(move |op| rules.may_steer(&op.account)),
        watchers: Default::default(),
    };
    let watchers = Arc::clone(&served.watchers);
    let serving = tokio::spawn(socket.serve(served));
    let _signals = super::signals::spawn(handle.commands.clone(), handle.snapshots.clone());
    let followed = handle
        .follow(|record| {
            let _ = records_tx.send(record.line.text.clone());
            eprintln!(
                "{}  {}",
                record.line.ts.format("%H:%M:%S%.3f"),
                record.event.describe()
            );
        })
        .await;
    let outcome = match followed {
        Ok(o) => o,
        Err(e) => {
            error(format!("the engine stopped unexpectedly: {e}"));
            return Exit::Failed;
        }
    };
    // The release is free for the next run as soon as this one has its
    // outcome, while dashboards still watch it.
    if let Some(k) = keeper {
        let _ = k.await;
    }
    // Dashboards see the outcome; the process (and a built-in router) stays
    // while any still watches.
    let since = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    while watchers.load(Ordering::SeqCst) > 0 && since.elapsed() < LINGER {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    serving.abort();
    drop(lock);
    eprintln!("journal: {}", handle.journal_path.display());
    outcome.into()
}
