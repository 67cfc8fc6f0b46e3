//! The deployment engine: walks the plan through the seven stages and owns the
//! deployment's state, the router, the metric source and the journal.
//!
//! Views talk to it only through [`Command`]s in and [`Snapshot`]s out; every
//! event is journaled (and flushed) before it is published. The path of a
//! command: [`Commands`] → the engine's inbox → [`Engine::interpret`] (the one
//! place a command gets its meaning) → the awaiting code: [`Engine::until`]
//! for checks and waits, the traffic driver (`traffic.rs`) feeding the pure
//! canary state machine (`canary.rs`), and `rollback.rs` for a stop.

pub mod analysis;
mod attendance;
pub mod canary;
mod command;
mod fence;
mod judging;
mod lifecycle;
mod procedure;
mod recovery;
mod rollback;
pub mod snapshot;
pub mod split;
mod state;
mod traffic;
mod weights;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use command::{Command, Commands, Envelope, SignalKind};
pub use fence::{Fence, FenceCheck};
pub use snapshot::{Phase, Snapshot};

use crate::check::CheckContext;
use crate::config::Plan;
use crate::domain::{Operator, Outcome, RollbackSource};
use crate::metrics::MetricSource;
use crate::notify::{Notice, NoticeKind, Notifier};
use crate::record::journal::Journal;
use crate::record::recorder::Recorder;
use crate::record::resume::ResumePoint;
use crate::record::{Event, Record};
use crate::redact::Secrets;
use crate::router::{BuiltRouter, Router, RouterError};
use command::Effect;
use state::{Fixed, State};

pub struct EngineOptions {
    /// Who runs this deployment.
    pub operator: Operator,
    /// Manual checks and approval gates pass by themselves.
    pub auto_approve: bool,
    /// A router built by the caller (the demo); otherwise built from the plan.
    pub router: Option<BuiltRouter>,
    /// Between SIGTERM and SIGKILL when a command times out or is abandoned.
    pub kill_grace: Duration,
    /// Carry on this open deployment instead of starting a new one.
    pub resume: Option<ResumePoint>,
    /// Lines for the record once the journal is open (a stale lock taken over).
    pub notes: Vec<String>,
    /// The engine runs detached and counts attached operators
    /// (`Command::Presence`): `on_disconnect` applies when none is left.
    pub attended: bool,
    /// The release lock (`[lock] kind = "etcd"`), checked before every
    /// router write; its loss arrives as [`Command::LockLost`].
    pub fence: Option<Fence>,
}

impl EngineOptions {
    pub fn new(operator: Operator) -> Self {
        EngineOptions {
            operator,
            auto_approve: false,
            router: None,
            kill_grace: Duration::from_secs(5),
            resume: None,
            notes: Vec::new(),
            attended: false,
            fence: None,
        }
    }
}

/// The running engine, seen from outside.
pub struct EngineHandle {
    pub commands: Commands,
    pub snapshots: watch::Receiver<Snapshot>,
    /// Every event, in order, once it is on disk.
    pub records: mpsc::UnboundedReceiver<Record>,
    pub task: JoinHandle<Outcome>,
    pub id: String,
    pub journal_path: PathBuf,
    /// Where the built-in router listens, if there is one.
    pub router_listen: Option<std::net::SocketAddr>,
    /// The router, kept by the handle so a built-in one serves (stable at
    /// 100 % after a rollback) until the process lets go of the handle, not
    /// only until the deployment ends.
    pub router: Option<Arc<dyn Router>>,
}

impl EngineHandle {
    /// Hands every record to `each` as it is journaled, until the engine has
    /// finished (then the records still queued), and returns the outcome. It
    /// follows the engine task, not the record channel, which what runs on
    /// the engine's behalf (a command router's commands) may keep open.
    pub async fn follow(
        &mut self,
        mut each: impl FnMut(&Record),
    ) -> Result<Outcome, tokio::task::JoinError> {
        let mut records_open = true;
        loop {
            tokio::select! {
                record = self.records.recv(), if records_open => match record {
                    Some(r) => each(&r),
                    None => records_open = false,
                },
                outcome = &mut self.task => {
                    while let Ok(r) = self.records.try_recv() {
                        each(&r);
                    }
                    return outcome;
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot write the journal in {dir}: {source}")]
    Journal { dir: String, source: std::io::Error },
    #[error("{0}")]
    Router(#[from] RouterError),
    #[error("{0}")]
    Plan(String),
}

/// Why the walk through the stages stopped early.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    Rollback {
        reason: String,
        source: RollbackSource,
        operator: Operator,
        /// When it was asked for (a key press), where its timing starts.
        requested_at: DateTime<Utc>,
    },
    Hold {
        reason: String,
    },
    /// The journal cannot be written: nothing may go on unrecorded.
    JournalFailed(String),
}

pub(crate) struct Engine {
    plan: Plan,
    operator: Operator,
    auto_approve: bool,
    id: String,
    recorder: Arc<Recorder>,
    fixed: Fixed,
    state: State,
    revision: u64,
    secrets: Arc<Secrets>,
    snap_tx: watch::Sender<Snapshot>,
    commands: mpsc::Receiver<Envelope>,
    /// The router (a group too, for reads).
    router: Option<Arc<dyn Router>>,
    /// The same router as a group: changes go through it, member by member.
    group: Option<Arc<crate::router::group::RouterGroup>>,
    /// The release lock, checked before every router write.
    fence: Option<Fence>,
    /// The lock's loss is on record: nothing more is written to routers.
    lock_lost: bool,
    source: Option<Arc<dyn MetricSource>>,
    /// The built-in router's connection counters, journaled with each sample.
    connections: Option<Arc<crate::router::connections::ConnectionCounters>>,
    ctx: CheckContext,
    /// A weight was asked of the router: a rollback must put it back.
    traffic_touched: bool,
    /// The open deployment this run carries on.
    resume: Option<ResumePoint>,
    notes: Vec<String>,
    notifier: Option<Notifier>,
    notify_failures: Option<mpsc::UnboundedReceiver<crate::notify::Failure>>,
    attendance: attendance::Attendance,
    /// Accounts that approved the gate open now (the two-person rule).
    pending_approvals: Vec<String>,
    /// The sequential judge of the canary under way.
    sequential: judging::Sequential,
    /// Stable's counts read before the first step, while they are read.
    baseline: recovery::Baseline,
    /// The baseline once the first step came: what a recovery is checked against.
    baseline_readings: Vec<crate::domain::Totals>,
}

/// Journals each command's process group as it starts and ends.
struct GroupRecord(Arc<Recorder>);

impl crate::check::process::CommandObserver for GroupRecord {
    fn started(&self, pgid: i32, start_ticks: Option<u64>, what: &str) {
        let _ = self.0.record(Event::CommandStarted {
            pgid,
            start_ticks,
            what: what.to_string(),
        });
    }
    fn finished(&self, pgid: i32) {
        let _ = self.0.record(Event::CommandFinished { pgid });
    }
}

/// A deployment id: `<UTC yyyymmddThhmmss>-<service>-<version>`.
pub fn deployment_id(at: DateTime<Utc>, service: &str, version: &str) -> String {
    format!("{}-{service}-{version}", at.format("%Y%m%dT%H%M%S"))
}

/// This process's operator: the account the kernel names for its uid (else
/// `$USER`), plus the client address from `SSH_CONNECTION` when there is one.
pub fn operator_from_env() -> Operator {
    let uid = nix::unistd::getuid();
    let account = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| {
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .filter(|u| !u.is_empty())
        })
        .unwrap_or_else(|| format!("uid {uid}"));
    let ssh_client = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .filter(|c| !c.is_empty());
    Operator {
        account,
        uid: Some(uid.as_raw()),
        ssh_client,
        key_fingerprint: None,
    }
}

/// The environment every command gets (SPEC §3).
fn command_env(plan: &Plan, id: &str, operator: &Operator) -> BTreeMap<String, String> {
    let d = &plan.deployment;
    let mut env = BTreeMap::new();
    env.insert("CUTOVER_SERVICE".into(), d.service.clone());
    env.insert("CUTOVER_VERSION".into(), d.version.clone());
    env.insert(
        "CUTOVER_PREVIOUS".into(),
        d.previous.clone().unwrap_or_default(),
    );
    env.insert(
        "CUTOVER_ENVIRONMENT".into(),
        d.environment.clone().unwrap_or_default(),
    );
    env.insert("CUTOVER_DEPLOYMENT_ID".into(), id.to_string());
    env.insert(
        "CUTOVER_STATE_DIR".into(),
        d.state_dir.display().to_string(),
    );
    env.insert("CUTOVER_OPERATOR".into(), operator.to_string());
    if let Ok(exe) = std::env::current_exe() {
        env.insert("CUTOVER_EXE".into(), exe.display().to_string());
    }
    env
}

/// Opens the journal (a new one, or the open deployment's), builds the
/// router and the metric source, and starts the engine task. Nothing outside
/// the state dir is changed before it returns.
pub async fn start(plan: Plan, opts: EngineOptions) -> Result<EngineHandle, StartError> {
    let secrets = Arc::new(Secrets::new(plan.secrets.iter().cloned()));
    crate::redact::install(&secrets);
    let mut notes = opts.notes;
    let (id, mut journal, started_at) = match &opts.resume {
        Some(point) => {
            let (journal, torn) =
                Journal::reopen_repairing(&point.journal).map_err(|e| StartError::Journal {
                    dir: point.journal.display().to_string(),
                    source: e,
                })?;
            if let Some(bad) = torn {
                notes.push(format!(
                    "line {} of the journal was torn by a crash mid-write and was cut off",
                    bad.line
                ));
            }
            (point.id.clone(), journal, point.started_at)
        }
        None => {
            let now = Utc::now();
            let d = &plan.deployment;
            let (id, journal) = Journal::create_unique(
                &d.state_dir,
                &secrets.redact(&deployment_id(now, &d.service, &d.version)),
            )
            .map_err(|e| StartError::Journal {
                dir: d.state_dir.display().to_string(),
                source: e,
            })?;
            (id, journal, now)
        }
    };
    journal.set_secrets(Arc::clone(&secrets));
    let journal_path = journal.path().to_path_buf();
    let (rec_tx, rec_rx) = mpsc::unbounded_channel();
    let recorder = Arc::new(Recorder::new(journal, !secrets.is_empty(), rec_tx));
    let ctx = CheckContext {
        env: command_env(&plan, &id, &opts.operator),
        secrets: plan.secrets.clone(),
        kill_grace: opts.kill_grace,
        observer: Some(Arc::new(GroupRecord(Arc::clone(&recorder)))),
    };
    let outside = async {
        let built = match (&plan.traffic, opts.router) {
            (None, _) => None,
            (Some(_), Some(b)) => Some(b),
            (Some(t), None) => {
                Some(crate::router::build(&t.router, plan.analysis.window, ctx.clone()).await?)
            }
        };
        let source: Option<Arc<dyn MetricSource>> = match (&plan.traffic, &built) {
            (Some(_), Some(b)) => Some(
                crate::metrics::build(
                    &plan.analysis.source,
                    plan.analysis.slow_ms,
                    b.stats.clone(),
                    ctx.clone(),
                )
                .map_err(|e| StartError::Plan(e.to_string()))?,
            ),
            _ => None,
        };
        Ok::<_, StartError>((built, source))
    };
    let (built, source) = match outside.await {
        Ok(x) => x,
        Err(e) => {
            // Nothing was recorded yet: leave no empty journal behind.
            if opts.resume.is_none() {
                drop(recorder);
                let _ = std::fs::remove_file(&journal_path);
                let _ = std::fs::remove_file(crate::record::journal::anchor_path(&journal_path));
            }
            return Err(e);
        }
    };
    if let Some(stats) = built.as_ref().and_then(|b| b.stats.as_ref()) {
        stats.set_slow_ms(plan.analysis.slow_ms);
    }
    let router_listen = built.as_ref().and_then(|b| b.listen);
    let connections = built.as_ref().and_then(|b| b.connections.clone());
    let router = built.as_ref().map(|b| Arc::clone(&b.router));
    let group = built.as_ref().and_then(|b| b.group.clone());
    let fixed = Fixed::new(
        &plan,
        &id,
        &opts.operator.to_string(),
        &journal_path.display().to_string(),
        started_at,
    );
    let state = State::new(&plan);
    let (notifier, notify_failures) = match plan.notify.clone() {
        Some(n) => {
            let (notifier, failures) = Notifier::start(n);
            (Some(notifier), Some(failures))
        }
        None => (None, None),
    };
    let (snap_tx, snap_rx) = watch::channel(state.snapshot(&fixed, 0));
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let mut engine = Engine {
        plan,
        operator: opts.operator.clone(),
        auto_approve: opts.auto_approve,
        id: id.clone(),
        recorder,
        fixed,
        state,
        revision: 0,
        secrets,
        snap_tx,
        commands: cmd_rx,
        router: built.map(|b| b.router),
        group,
        fence: opts.fence,
        lock_lost: false,
        source,
        ctx,
        traffic_touched: false,
        resume: opts.resume,
        notes,
        notifier,
        notify_failures,
        attendance: attendance::Attendance {
            controllers: opts.attended.then_some(0),
            alone_since: opts.attended.then(tokio::time::Instant::now),
            ..Default::default()
        },
        pending_approvals: Vec::new(),
        sequential: judging::Sequential::default(),
        baseline: recovery::Baseline::default(),
        baseline_readings: Vec::new(),
        connections,
    };
    engine.publish();
    let task = tokio::spawn(engine.run());
    Ok(EngineHandle {
        commands: Commands::new(cmd_tx, opts.operator),
        snapshots: snap_rx,
        records: rec_rx,
        task,
        id,
        journal_path,
        router_listen,
        router,
    })
}

impl Engine {
    /// Journals an event (flushed to disk, secrets masked), then logs and
    /// forwards what was journaled. A journal that cannot be written stops
    /// the deployment with traffic held: nothing may go on unrecorded.
    pub(crate) fn record(&mut self, event: Event) -> Result<(), Stop> {
        let first_failure = self.recorder.broken().is_none();
        self.recorder.record(event).map_err(|e| {
            if first_failure {
                self.state.message = Some(e.0.clone());
                self.publish();
            }
            Stop::JournalFailed(e.0)
        })
    }

    fn journal_broken(&self) -> bool {
        self.recorder.broken().is_some()
    }

    /// Queues a stakeholder notification (never waits for its delivery).
    pub(crate) fn notify(&self, event: NoticeKind, message: String) {
        let Some(n) = &self.notifier else { return };
        n.send(Notice {
            event,
            deployment_id: self.id.clone(),
            service: self.plan.deployment.service.clone(),
            version: self.plan.deployment.version.clone(),
            previous: self.plan.deployment.previous.clone(),
            environment: self.plan.deployment.environment.clone(),
            stage: self.state.stage.map(|s| s.as_str().to_string()),
            weight: self.plan.traffic.as_ref().map(|_| self.state.weight),
            verdict: self.state.verdict.map(|v| v.as_str().to_string()),
            operator: self.operator.to_string(),
            message: self.secrets.redact(&message).into_owned(),
            time: Utc::now(),
        });
    }

    /// Journals the notifications that could not be delivered so far.
    fn record_notify_failures(&mut self) {
        let mut failures = Vec::new();
        if let Some(rx) = &mut self.notify_failures {
            while let Ok(f) = rx.try_recv() {
                failures.push(f);
            }
        }
        for f in failures {
            let _ = self.record(Event::NotifyFailed {
                notice: f.event.as_str().to_string(),
                error: f.error,
                attempts: f.attempts,
            });
        }
    }

    /// Builds the snapshot from the state and sends it to every view.
    pub(crate) fn publish(&mut self) {
        if self.notify_failures.is_some() && !self.journal_broken() {
            self.record_notify_failures();
        }
        self.revision += 1;
        let mut snap = self.state.snapshot(&self.fixed, self.revision);
        if !self.secrets.is_empty() {
            if let Ok(mut value) = serde_json::to_value(&snap) {
                self.secrets.redact_json(&mut value);
                if let Ok(masked) = serde_json::from_value(value) {
                    snap = masked;
                }
            }
        }
        self.snap_tx.send_replace(snap);
    }

    /// Waits for `fut` while handling the operator's commands; a stop (`R`, a
    /// signal, a hold) drops `fut` at once (a running command's process group
    /// is terminated) and comes back as `Err`.
    pub(crate) async fn until<T>(&mut self, fut: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::pin!(fut);
        loop {
            let unattended = self.unattended_deadline();
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match self.interpret(cmd)? {
                    Effect::Done | Effect::PauseChanged | Effect::Approved(..) => {}
                    Effect::SetWeight { weight, .. } => {
                        tracing::warn!(target: "cutover", "weight {weight}% not applied now");
                    }
                },
                () = attendance::until_deadline(unattended) => self.on_unattended()?,
                out = &mut fut => return Ok(out),
            }
        }
    }

    /// The next command, or the dead-man's switch if it comes first.
    pub(crate) async fn next_command(&mut self) -> Result<Effect, Stop> {
        loop {
            let unattended = self.unattended_deadline();
            tokio::select! {
                biased;
                cmd = self.commands.recv() => return self.interpret(cmd),
                () = attendance::until_deadline(unattended) => self.on_unattended()?,
            }
        }
    }

    /// Waits while paused (between checks), still taking commands.
    pub(crate) async fn wait_unpaused(&mut self) -> Result<(), Stop> {
        while self.state.paused {
            self.next_command().await?;
        }
        Ok(())
    }

    /// Opens or closes the gate the operator is asked to approve.
    pub(crate) fn set_gate(&mut self, gate: Option<snapshot::Gate>) {
        self.gate_opened(gate.is_some());
        self.pending_approvals.clear();
        self.state.gate = gate;
    }
}
