//! The deployment engine: walks the plan through the seven stages and owns the
//! deployment state, the router, the metric source and the journal.
//!
//! Views talk to it only through [`Command`]s in and [`Snapshot`]s out; every
//! event is journaled (and flushed) before it is published.

pub mod analysis;
pub mod command;
pub mod event;
mod procedure;
pub mod resume;
mod rollback;
pub mod snapshot;
mod traffic;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use command::{Command, SignalKind};
pub use event::Event;
pub use snapshot::Snapshot;

use crate::check::CheckContext;
use crate::config::{OnDisconnect, Plan};
use crate::journal::{self, Journal};
use crate::metrics::MetricSource;
use crate::notify::{Notice, NoticeKind, Notifier};
use crate::router::{BuiltRouter, Router, RouterError};
use event::RollbackSource;
use snapshot::{
    CheckStatus, CheckView, Outcome, Phase, StageName, StageStatus, StageView, Thresholds,
    TrafficView,
};

/// How many analysis samples the snapshot keeps for the charts.
const SAMPLES_KEPT: usize = 600;

pub struct EngineOptions {
    /// Who runs this deployment (`$USER`, plus the SSH client address).
    pub operator: String,
    /// Manual checks and approval gates pass by themselves.
    pub auto_approve: bool,
    /// A router built by the caller (the demo); otherwise built from the plan.
    pub router: Option<BuiltRouter>,
    /// Between SIGTERM and SIGKILL when a command times out.
    pub kill_grace: Duration,
    /// Carry on this unfinished deployment instead of starting a new one.
    pub resume: Option<resume::ResumePoint>,
    /// Lines for the record once the journal is open (a stale lock taken over).
    pub notes: Vec<String>,
}

impl EngineOptions {
    pub fn new(operator: String) -> Self {
        EngineOptions {
            operator,
            auto_approve: false,
            router: None,
            kill_grace: Duration::from_secs(5),
            resume: None,
            notes: Vec::new(),
        }
    }
}

/// One journaled event, as written.
#[derive(Debug, Clone)]
pub struct Record {
    pub event: Event,
    pub line: journal::Line,
}

/// The running engine, seen from outside.
pub struct EngineHandle {
    pub commands: mpsc::Sender<Command>,
    pub snapshots: watch::Receiver<Snapshot>,
    /// Every event, in order, once it is on disk.
    pub records: mpsc::UnboundedReceiver<Record>,
    pub task: JoinHandle<Outcome>,
    pub id: String,
    pub journal_path: PathBuf,
    /// Where the built-in router listens, if there is one.
    pub router_listen: Option<std::net::SocketAddr>,
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
    },
    Hold {
        reason: String,
    },
    /// The journal cannot be written: nothing may go on unrecorded.
    JournalFailed(String),
}

pub(crate) struct Engine {
    plan: Plan,
    operator: String,
    auto_approve: bool,
    id: String,
    journal: Journal,
    journal_broken: bool,
    /// Prepare .. rollback, eight rows; the snapshot shows seven.
    views: Vec<StageView>,
    rollback_shown: bool,
    snap: Snapshot,
    snap_tx: watch::Sender<Snapshot>,
    records: mpsc::UnboundedSender<Record>,
    commands: mpsc::Receiver<Command>,
    router: Option<Arc<dyn Router>>,
    source: Option<Arc<dyn MetricSource>>,
    ctx: CheckContext,
    started: Instant,
    /// The weight the router confirmed last.
    weight: u8,
    /// A weight was asked of the router: a rollback must put it back.
    traffic_touched: bool,
    paused: bool,
    rollback_requested_at: Option<Instant>,
    /// When the weight last went to 0 in a rollback (for the fresh stable window).
    stable_since: Option<Instant>,
    /// The unfinished deployment this run carries on.
    resume: Option<resume::ResumePoint>,
    notes: Vec<String>,
    notifier: Option<Notifier>,
    notify_failures: Option<mpsc::UnboundedReceiver<crate::notify::Failure>>,
}

/// A deployment id: `<UTC yyyymmddThhmmss>-<service>-<version>`.
pub fn deployment_id(at: chrono::DateTime<Utc>, service: &str, version: &str) -> String {
    format!("{}-{service}-{version}", at.format("%Y%m%dT%H%M%S"))
}

/// `$USER`, plus the client address from `SSH_CONNECTION` when there is one.
pub fn operator_from_env() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            // No login variables (a service, a container): the account's name.
            let uid = nix::unistd::getuid();
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| format!("uid {uid}"))
        });
    match std::env::var("SSH_CONNECTION") {
        Ok(s) if !s.trim().is_empty() => {
            let client = s.split_whitespace().next().unwrap_or("");
            format!("{user}@{client}")
        }
        _ => user,
    }
}

/// Opens the journal, builds the router and metric source, and starts the
/// engine task. Nothing outside the state dir is changed before it returns.
pub async fn start(plan: Plan, opts: EngineOptions) -> Result<EngineHandle, StartError> {
    let mut started_at = Utc::now();
    let mut notes = opts.notes;
    let ctx_env = |id: &str| {
        let mut env = BTreeMap::new();
        env.insert("CUTOVER_SERVICE".into(), plan.deployment.service.clone());
        env.insert("CUTOVER_VERSION".into(), plan.deployment.version.clone());
        env.insert(
            "CUTOVER_PREVIOUS".into(),
            plan.deployment.previous.clone().unwrap_or_default(),
        );
        env.insert(
            "CUTOVER_ENVIRONMENT".into(),
            plan.deployment.environment.clone().unwrap_or_default(),
        );
        env.insert("CUTOVER_DEPLOYMENT_ID".into(), id.to_string());
        env.insert(
            "CUTOVER_STATE_DIR".into(),
            plan.deployment.state_dir.display().to_string(),
        );
        env.insert("CUTOVER_OPERATOR".into(), opts.operator.clone());
        if let Ok(exe) = std::env::current_exe() {
            env.insert("CUTOVER_EXE".into(), exe.display().to_string());
        }
        env
    };

    let (id, journal) = match &opts.resume {
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
            started_at = point.started_at;
            (point.id.clone(), journal)
        }
        None => {
            let base_id = deployment_id(
                started_at,
                &plan.deployment.service,
                &plan.deployment.version,
            );
            let mut id = base_id.clone();
            let mut n = 1;
            let journal = loop {
                match Journal::create(&plan.deployment.state_dir, &id) {
                    Ok(j) => break j,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                        n += 1;
                        id = format!("{base_id}-{n}");
                    }
                    Err(e) => {
                        return Err(StartError::Journal {
                            dir: plan.deployment.state_dir.display().to_string(),
                            source: e,
                        })
                    }
                }
            };
            (id, journal)
        }
    };
    let ctx = CheckContext {
        env: ctx_env(&id),
        secrets: plan.secrets.clone(),
        kill_grace: opts.kill_grace,
    };

    let (router, stats, router_listen) = match (&plan.traffic, opts.router) {
        (None, _) => (None, None, None),
        (Some(_), Some(b)) => (Some(b.router), b.stats, b.listen),
        (Some(t), None) => {
            let b = crate::router::build(&t.router, plan.analysis.window, ctx.clone()).await?;
            (Some(b.router), b.stats, b.listen)
        }
    };
    let source: Option<Arc<dyn MetricSource>> = match &plan.traffic {
        None => None,
        Some(_) => Some(
            crate::metrics::build(&plan.analysis.source, stats, ctx.clone())
                .map_err(|e| StartError::Plan(e.to_string()))?,
        ),
    };
    let views: Vec<StageView> = StageName::ALL
        .iter()
        .map(|&name| StageView {
            name,
            status: if plan.has_stage(name) {
                StageStatus::Pending
            } else {
                StageStatus::NotConfigured
            },
            checks: plan
                .checks(name)
                .iter()
                .map(|c| CheckView {
                    name: plan.redact(&c.name),
                    kind: c.kind.label(),
                    target: plan.redact(&c.kind.target()),
                    status: CheckStatus::Pending,
                    duration: None,
                    started_at: None,
                    attempt: 0,
                    optional: c.optional,
                    output_tail: Vec::new(),
                })
                .collect(),
        })
        .collect();
    let traffic = plan.traffic.as_ref().map(|t| TrafficView {
        strategy: t.strategy,
        steps: t.steps.clone(),
        router: t.router.kind(),
        current_weight: 0,
        requested_weight: None,
        next_step: t.steps.first().copied(),
        waiting_approval: false,
        paused: false,
        baked: Duration::ZERO,
        bake: t.bake,
        rollback_weight_ms: None,
        approval_manual: t.approval == crate::config::Approval::Manual,
    });
    let journal_path = journal.path().to_path_buf();
    let snap = Snapshot {
        deployment_id: id.clone(),
        service: plan.deployment.service.clone(),
        version: plan.deployment.version.clone(),
        previous: plan.deployment.previous.clone(),
        environment: plan.deployment.environment.clone(),
        operator: opts.operator.clone(),
        journal_path: journal_path.display().to_string(),
        started_at,
        finished_at: None,
        phase: Phase::Starting,
        current_stage: None,
        stages: Vec::new(),
        traffic,
        samples: Vec::new(),
        thresholds: Thresholds {
            max_error_rate: plan.analysis.max_error_rate,
            max_p99_ms: plan.analysis.max_p99_ms,
        },
        verdict: None,
        gate: None,
        outcome: None,
        message: None,
        revision: 0,
    };
    let (notifier, notify_failures) = match plan.notify.clone() {
        Some(n) => {
            let (notifier, failures) = Notifier::start(n);
            (Some(notifier), Some(failures))
        }
        None => (None, None),
    };
    let (snap_tx, snap_rx) = watch::channel(snap.clone());
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (rec_tx, rec_rx) = mpsc::unbounded_channel();
    let mut engine = Engine {
        plan,
        operator: opts.operator,
        auto_approve: opts.auto_approve,
        id: id.clone(),
        journal,
        journal_broken: false,
        views,
        rollback_shown: false,
        snap,
        snap_tx,
        records: rec_tx,
        commands: cmd_rx,
        router,
        source,
        ctx,
        started: Instant::now(),
        weight: 0,
        traffic_touched: false,
        paused: false,
        rollback_requested_at: None,
        stable_since: None,
        resume: opts.resume,
        notes,
        notifier,
        notify_failures,
    };
    engine.publish();
    let task = tokio::spawn(engine.run());
    Ok(EngineHandle {
        commands: cmd_tx,
        snapshots: snap_rx,
        records: rec_rx,
        task,
        id,
        journal_path,
        router_listen,
    })
}

/// What a command asks of the step being waited on.
pub(crate) enum Interrupt {
    Approve,
    Stop(Stop),
}

impl Engine {
    /// Journals an event (flushed to disk), then logs and forwards it.
    pub(crate) fn record(&mut self, event: Event) -> Result<(), Stop> {
        if self.journal_broken {
            return Err(Stop::JournalFailed(
                "the journal could not be written".into(),
            ));
        }
        let mut value = match serde_json::to_value(&event) {
            Ok(v) => v,
            Err(e) => return Err(Stop::JournalFailed(e.to_string())),
        };
        // What is forwarded is what was journaled: redacted.
        let event = if self.plan.secrets.is_empty() {
            event
        } else {
            redact_value(&self.plan.secrets, &mut value);
            serde_json::from_value(value.clone()).unwrap_or(event)
        };
        match self.journal.append(&value) {
            Ok(line) => {
                let text = event.describe();
                match &event {
                    Event::RollbackStarted { .. }
                    | Event::WeightFailed { .. }
                    | Event::CheckFinished {
                        outcome: event::CheckOutcome::Failed,
                        ..
                    } => tracing::warn!(target: "cutover", "{text}"),
                    _ => tracing::info!(target: "cutover", "{text}"),
                }
                let _ = self.records.send(Record { event, line });
                Ok(())
            }
            Err(e) => {
                self.journal_broken = true;
                let msg = format!(
                    "cannot write the journal {}: {e}; stopping with traffic held where it is",
                    self.journal.path().display()
                );
                tracing::error!(target: "cutover", "{msg}");
                self.snap.message = Some(msg.clone());
                self.publish();
                Err(Stop::JournalFailed(msg))
            }
        }
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
            stage: self.snap.current_stage.map(|s| s.as_str().to_string()),
            weight: self.snap.traffic.as_ref().map(|_| self.weight),
            verdict: self.snap.verdict.map(|v| v.as_str().to_string()),
            operator: self.operator.clone(),
            message: self.plan.redact(&message),
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

    /// Sends the current state to every view.
    pub(crate) fn publish(&mut self) {
        if self.notify_failures.is_some() && !self.journal_broken {
            self.record_notify_failures();
        }
        let mut stages: Vec<StageView> = self.views[..6].to_vec();
        stages.push(if self.rollback_shown {
            self.views[7].clone()
        } else {
            self.views[6].clone()
        });
        self.snap.stages = stages;
        if let Some(t) = &mut self.snap.traffic {
            t.current_weight = self.weight;
            t.paused = self.paused;
        }
        self.snap.revision += 1;
        self.snap_tx.send_replace(self.snap.clone());
    }

    pub(crate) fn view(&mut self, stage: StageName) -> &mut StageView {
        &mut self.views[stage as usize]
    }

    pub(crate) fn check_view(&mut self, stage: StageName, i: usize) -> &mut CheckView {
        &mut self.views[stage as usize].checks[i]
    }

    /// Waits for `fut`, handling the operator's commands meanwhile. An approval
    /// is passed back only when `gate_open`.
    pub(crate) async fn until<T>(
        &mut self,
        fut: impl Future<Output = T>,
        gate_open: bool,
    ) -> Result<Result<T, ()>, Stop> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Ok(Ok(out)),
                cmd = self.commands.recv() => {
                    match self.on_command(cmd)? {
                        Some(Interrupt::Approve) if gate_open => return Ok(Err(())),
                        Some(Interrupt::Approve) => {
                            tracing::info!(target: "cutover", "nothing is waiting for approval");
                        }
                        Some(Interrupt::Stop(stop)) => return Err(stop),
                        None => {}
                    }
                }
            }
        }
    }

    /// Handles a command outside the traffic loop.
    pub(crate) fn on_command(&mut self, cmd: Option<Command>) -> Result<Option<Interrupt>, Stop> {
        let Some(cmd) = cmd else {
            // Every sender is gone: nobody can steer any more.
            return Ok(Some(Interrupt::Stop(Stop::Hold {
                reason: "the operator's channel closed".into(),
            })));
        };
        match cmd {
            Command::Approve => Ok(Some(Interrupt::Approve)),
            Command::Pause => {
                self.set_paused(true, "operator")?;
                Ok(None)
            }
            Command::Resume => {
                self.set_paused(false, "operator")?;
                Ok(None)
            }
            Command::SetWeight(w) => {
                tracing::warn!(target: "cutover", "weight {w}% not applied: the slider acts during the traffic stage");
                Ok(None)
            }
            Command::Rollback { reason } => {
                if self.snap.phase == Phase::RollingBack {
                    return Ok(None);
                }
                self.rollback_requested_at = Some(Instant::now());
                Ok(Some(Interrupt::Stop(Stop::Rollback {
                    reason,
                    source: RollbackSource::Operator,
                })))
            }
            Command::HoldAndQuit { reason } => Ok(Some(Interrupt::Stop(Stop::Hold { reason }))),
            Command::Signal(sig) => Ok(Some(Interrupt::Stop(self.on_signal(sig)))),
        }
    }

    pub(crate) fn on_signal(&mut self, sig: SignalKind) -> Stop {
        let rollback = sig == SignalKind::Hangup
            && self.snap.phase != Phase::RollingBack
            && self
                .plan
                .traffic
                .as_ref()
                .map(|t| t.on_disconnect == OnDisconnect::Rollback)
                .unwrap_or(false)
            && self.traffic_touched;
        if rollback {
            self.rollback_requested_at = Some(Instant::now());
            Stop::Rollback {
                reason: format!(
                    "{} (terminal gone) with on_disconnect = \"rollback\"",
                    sig.name()
                ),
                source: RollbackSource::Signal,
            }
        } else {
            Stop::Hold {
                reason: format!("{} received: traffic held where it is", sig.name()),
            }
        }
    }

    pub(crate) fn set_paused(&mut self, paused: bool, who: &str) -> Result<(), Stop> {
        if self.paused == paused {
            return Ok(());
        }
        self.paused = paused;
        let operator = if who == "operator" {
            self.operator.clone()
        } else {
            who.to_string()
        };
        if paused {
            self.record(Event::Paused {
                operator,
                reason: "automatic progression paused".into(),
            })?;
        } else {
            self.record(Event::Resumed { operator })?;
        }
        self.publish();
        Ok(())
    }

    /// Waits while paused (between checks), still taking commands.
    pub(crate) async fn wait_unpaused(&mut self) -> Result<(), Stop> {
        while self.paused {
            let cmd = self.commands.recv().await;
            if let Some(Interrupt::Stop(stop)) = self.on_command(cmd)? {
                return Err(stop);
            }
        }
        Ok(())
    }

    async fn run(mut self) -> Outcome {
        let t = self.plan.traffic.clone();
        let started = Event::DeploymentStarted {
            id: self.id.clone(),
            config: self.plan.source.clone(),
            service: self.plan.deployment.service.clone(),
            version: self.plan.deployment.version.clone(),
            previous: self.plan.deployment.previous.clone(),
            environment: self.plan.deployment.environment.clone(),
            operator: self.operator.clone(),
            strategy: t.as_ref().map(|t| t.strategy.as_str().to_string()),
            steps: t.as_ref().map(|t| t.steps.clone()),
            router: t.as_ref().map(|t| t.router.kind().to_string()),
        };
        self.snap.phase = Phase::Running;
        let opened = match self.resume.clone() {
            None => self.record(started),
            Some(point) => self.record_resumed(&point).await,
        };
        if opened.is_ok() && self.resume.is_none() {
            self.notify(NoticeKind::Started, "deployment started".into());
        }
        let opened = opened.and_then(|()| {
            for message in std::mem::take(&mut self.notes) {
                self.record(Event::Note { message })?;
            }
            Ok(())
        });
        let resumed_rollback = self.resume.as_ref().and_then(|p| p.rollback.clone());
        let walked = match (opened, resumed_rollback) {
            (Err(stop), _) => Err(stop),
            // A rollback was under way: it is finished first, whatever else.
            (Ok(()), Some((reason, source))) => Err(Stop::Rollback {
                reason: format!("{reason} (resumed)"),
                source,
            }),
            (Ok(()), None) => self.walk().await,
        };
        let (outcome, reason) = match walked {
            Ok(procedure::End::Succeeded) => (Outcome::Succeeded, None),
            Ok(procedure::End::Failed(reason)) => (Outcome::Failed, Some(reason)),
            Err(Stop::Rollback { reason, source }) => {
                self.close_open_stage();
                self.rollback(reason, source).await
            }
            Err(Stop::Hold { reason }) => {
                self.close_open_stage();
                (Outcome::Interrupted, Some(reason))
            }
            Err(Stop::JournalFailed(reason)) => (Outcome::Interrupted, Some(reason)),
        };
        self.finish(outcome, reason).await;
        outcome
    }

    /// Records the resumption and shows what was done before it.
    async fn record_resumed(&mut self, point: &resume::ResumePoint) -> Result<(), Stop> {
        let router_weight = match &self.router {
            Some(r) => r.current_weight().await.ok(),
            None => None,
        };
        self.record(Event::DeploymentResumed {
            operator: self.operator.clone(),
            recorded_weight: point.weight,
            router_weight,
        })?;
        if let Some(w) = router_weight {
            self.weight = w;
        }
        if point.weight.unwrap_or(0) > 0 || router_weight.unwrap_or(0) > 0 {
            self.traffic_touched = true;
        }
        // The router must carry what the record says before anything goes on
        // (a new built-in router starts at 0; a later stage's checks go
        // through it). A rollback under way sets its own weight.
        if let (Some(w), None) = (point.weight, &point.rollback) {
            if router_weight != Some(w) {
                self.apply_weight(w, event::WeightSource::Resume).await?;
            }
        }
        for (stage, outcome) in &point.stages_done {
            self.views[*stage as usize].status = procedure::stage_status(*outcome);
        }
        for v in &mut self.views {
            for c in &mut v.checks {
                if point.checks_done.contains(&(v.name, c.name.clone())) {
                    c.status = CheckStatus::Passed;
                    c.output_tail = vec!["done before the interruption".into()];
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// A stage left running by a stop is recorded as interrupted.
    fn close_open_stage(&mut self) {
        let Some(stage) = self.snap.current_stage else {
            return;
        };
        if self.views[stage as usize].status == StageStatus::Running {
            for c in &mut self.views[stage as usize].checks {
                if matches!(
                    c.status,
                    CheckStatus::Running | CheckStatus::WaitingApproval
                ) {
                    c.status = CheckStatus::Skipped;
                    c.output_tail.push("interrupted".into());
                }
            }
            self.views[stage as usize].status = StageStatus::Failed;
            let _ = self.record(Event::StageFinished {
                stage,
                outcome: event::StageOutcome::Interrupted,
            });
        }
        self.snap.gate = None;
    }

    async fn finish(&mut self, outcome: Outcome, reason: Option<String>) {
        for v in &mut self.views {
            if v.status == StageStatus::Pending {
                v.status = StageStatus::Skipped;
            }
            for c in &mut v.checks {
                if c.status == CheckStatus::Pending {
                    c.status = CheckStatus::Skipped;
                }
            }
        }
        let duration_ms = (Utc::now() - self.snap.started_at)
            .num_milliseconds()
            .max(0) as u64;
        let reason = reason.map(|r| self.plan.redact(&r));
        if !self.journal_broken {
            let _ = self.record(Event::DeploymentFinished {
                outcome,
                duration_ms,
                reason: reason.clone(),
            });
        }
        self.snap.phase = Phase::Finished;
        self.snap.outcome = Some(outcome);
        self.snap.finished_at = Some(Utc::now());
        self.snap.gate = None;
        if let Some(t) = &mut self.snap.traffic {
            t.waiting_approval = false;
            t.requested_weight = None;
        }
        if reason.is_some() && !self.journal_broken {
            self.snap.message = reason.clone();
        }
        self.publish();
        let why = reason.unwrap_or_default();
        match outcome {
            Outcome::Succeeded => self.notify(
                NoticeKind::Succeeded,
                format!(
                    "done in {}",
                    crate::history::format_duration_ms(Some(duration_ms))
                ),
            ),
            Outcome::RolledBack => self.notify(NoticeKind::RolledBack, why),
            Outcome::Failed => self.notify(NoticeKind::Failed, why),
            Outcome::RollbackFailed => self.notify(
                NoticeKind::Failed,
                format!("the rollback itself failed, a human must act: {why}"),
            ),
            Outcome::Interrupted => {}
        }
        // The outcome and its duration are on record already; delivery only
        // delays the exit, by a bounded time.
        if let Some(n) = &mut self.notifier {
            n.flush(Duration::from_secs(10)).await;
        }
        if !self.journal_broken {
            self.record_notify_failures();
            if let Err(e) = crate::history::write_summary(self.journal.path()) {
                tracing::warn!(target: "cutover", "cannot write the summary beside the journal: {e}");
            }
        }
    }
}

/// Masks secret values in every string of a JSON value.
fn redact_value(secrets: &[String], v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = crate::config::redact(secrets, s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| redact_value(secrets, x)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| redact_value(secrets, x)),
        _ => {}
    }
}
