//! What views may ask of the engine, and the one place each request is given
//! its meaning ([`Engine::interpret`]): an approval is for the gate open now
//! or refused, the slider acts only in the traffic stage, `R` stops whatever
//! the engine awaits.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::snapshot::Gate;
use super::{Engine, Phase, Stop};
use crate::domain::{GateTarget, OnDisconnect, Operator, RollbackSource, StageName};
use crate::record::Event;

/// A request from an operator (dashboard key, socket verb, signal or test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Approve the gate the operator was shown: a manual check, a canary step,
    /// or an analysis hold. Refused when that gate is not the one open.
    Approve { gate: GateTarget },
    /// Stop automatic progression (the analysis keeps watching).
    Pause,
    /// Carry on automatic progression.
    Resume,
    /// Apply this canary weight now (the slider; traffic stage only).
    SetWeight(u8),
    /// Emergency rollback, preempting whatever the engine awaits.
    Rollback {
        reason: String,
        /// When the operator asked (the key press), where the rollback's
        /// timing starts.
        requested_at: DateTime<Utc>,
    },
    /// Hold traffic where it is, record the deployment as interrupted, stop.
    HoldAndQuit { reason: String },
    /// The release lock (`[lock] kind = "etcd"`) could not be kept: no
    /// router may be written any more; traffic is held, the run stops
    /// (interrupted, resumable). Sent by whoever watches the lock.
    LockLost { why: String },
    /// The process got a signal: a hang-up follows `[traffic] on_disconnect`,
    /// the others hold traffic and stop.
    Signal(SignalKind),
    /// How many steering operators are attached now (a detached engine's
    /// control socket tells it); none for `unattended_after` lets
    /// `on_disconnect` decide.
    Presence { controllers: usize },
}

impl Command {
    /// A rollback asked for now.
    pub fn rollback_now(reason: impl Into<String>) -> Command {
        Command::Rollback {
            reason: reason.into(),
            requested_at: Utc::now(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// SIGHUP: the terminal went away.
    Hangup,
    /// SIGTERM.
    Terminate,
    /// SIGINT (ctrl-c outside the dashboard).
    Interrupt,
}

impl SignalKind {
    pub fn name(self) -> &'static str {
        match self {
            SignalKind::Hangup => "SIGHUP",
            SignalKind::Terminate => "SIGTERM",
            SignalKind::Interrupt => "SIGINT",
        }
    }
}

/// The engine's answer to a command: what it did, or why it refused.
pub type Reply = Result<String, String>;

/// A command with who sent it, and where the answer goes (if anywhere).
#[derive(Debug)]
pub struct Envelope {
    pub command: Command,
    pub operator: Operator,
    pub reply: Option<oneshot::Sender<Reply>>,
}

/// The engine's inbox, as views hold it: every command is stamped with the
/// operator this sender acts for.
#[derive(Debug, Clone)]
pub struct Commands {
    tx: mpsc::Sender<Envelope>,
    operator: Operator,
}

impl Commands {
    /// Commands into `tx` on behalf of `operator` (the engine makes its own
    /// inbox; a test may stand in for the engine with any channel).
    pub fn new(tx: mpsc::Sender<Envelope>, operator: Operator) -> Commands {
        Commands { tx, operator }
    }

    /// The same inbox, acting for another operator (a socket client).
    pub fn acting_for(&self, operator: Operator) -> Commands {
        Commands {
            tx: self.tx.clone(),
            operator,
        }
    }

    /// The operator these commands are sent for.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    /// Sends without waiting; the command comes back when the inbox is full
    /// or the engine has stopped.
    pub fn try_send(&self, command: Command) -> Result<(), mpsc::error::TrySendError<Command>> {
        self.tx
            .try_send(Envelope {
                command,
                operator: self.operator.clone(),
                reply: None,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(env) => {
                    mpsc::error::TrySendError::Full(env.command)
                }
                mpsc::error::TrySendError::Closed(env) => {
                    mpsc::error::TrySendError::Closed(env.command)
                }
            })
    }

    /// Sends, waiting for room; fails only when the engine has stopped.
    pub async fn send(&self, command: Command) -> Result<(), mpsc::error::SendError<Command>> {
        self.tx
            .send(Envelope {
                command,
                operator: self.operator.clone(),
                reply: None,
            })
            .await
            .map_err(|e| mpsc::error::SendError(e.0.command))
    }

    /// Sends and waits for the engine's answer.
    pub async fn request(&self, command: Command) -> Reply {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Envelope {
                command,
                operator: self.operator.clone(),
                reply: Some(tx),
            })
            .await
            .map_err(|_| "the engine has stopped".to_string())?;
        rx.await
            .unwrap_or_else(|_| Err("the engine stopped before answering".to_string()))
    }
}

/// What a command means where the engine stands; stops come back as `Err`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Handled entirely (or refused, with the refusal on record).
    Done,
    /// The open gate was approved (already journaled), by this operator.
    Approved(GateTarget, Operator),
    /// The operator moved the slider (traffic stage only).
    SetWeight { weight: u8, operator: Operator },
    /// Pausing or resuming changed.
    PauseChanged,
}

/// Who pauses or resumes: an operator, or the engine itself for a reason.
pub(crate) enum Who<'a> {
    Operator(&'a Operator),
    Engine(&'static str),
}

/// What a command comes to, before it is answered.
enum Answer {
    Effect(Effect, String),
    Refused(String),
}

impl Engine {
    /// Gives one command its meaning and answers its sender. This is the only
    /// place commands are interpreted; awaiting code calls it and acts on the
    /// [`Effect`]; a stop comes back as `Err`.
    pub(crate) fn interpret(&mut self, envelope: Option<Envelope>) -> Result<Effect, Stop> {
        let Some(Envelope {
            command,
            operator,
            reply,
        }) = envelope
        else {
            // Every sender is gone: nobody can steer any more.
            return Err(Stop::Hold {
                reason: "the operator's channel closed".into(),
            });
        };
        let answered = self.meaning(command, operator);
        let (result, text) = match answered {
            Ok(Answer::Effect(effect, text)) => (Ok(effect), Ok(text)),
            Ok(Answer::Refused(why)) => (Ok(Effect::Done), Err(why)),
            Err(stop) => {
                let text = match &stop {
                    Stop::Rollback { .. } => Ok("rollback started".to_string()),
                    Stop::Hold { .. } => Ok("holding traffic and stopping".to_string()),
                    Stop::JournalFailed(e) => Err(e.clone()),
                };
                (Err(stop), text)
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(text);
        }
        result
    }

    fn meaning(&mut self, command: Command, operator: Operator) -> Result<Answer, Stop> {
        if let Some(refused) = self.may_steer(&command, &operator)? {
            return Ok(Answer::Refused(refused));
        }
        let done = |text: &str| Ok(Answer::Effect(Effect::Done, text.to_string()));
        match command {
            Command::Rollback {
                reason,
                requested_at,
            } => {
                if matches!(self.state.phase, Phase::RollingBack | Phase::Finished) {
                    return Ok(Answer::Refused(
                        "already rolling back, or the deployment has ended".into(),
                    ));
                }
                // A time in the future (another host's clock) counts from now.
                let requested_at = requested_at.min(Utc::now());
                Err(Stop::Rollback {
                    reason,
                    source: RollbackSource::Operator,
                    operator,
                    requested_at,
                })
            }
            Command::HoldAndQuit { reason } => Err(Stop::Hold { reason }),
            Command::LockLost { why } => Err(self.lock_lost(why)),
            Command::Signal(sig) => self
                .on_signal(sig)
                .map(|e| Answer::Effect(e, String::new())),
            Command::Presence { controllers } => {
                self.attended(controllers);
                done("")
            }
            Command::Pause => {
                self.set_paused(true, Who::Operator(&operator), "paused by the operator")?;
                Ok(Answer::Effect(Effect::PauseChanged, "paused".into()))
            }
            Command::Resume => {
                self.set_paused(false, Who::Operator(&operator), "")?;
                if self.state.gate.as_ref().map(Gate::target) == Some(GateTarget::Hold) {
                    self.set_gate(None);
                }
                Ok(Answer::Effect(Effect::PauseChanged, "resumed".into()))
            }
            Command::Approve { gate } => self.approve(gate, &operator),
            Command::SetWeight(weight) => {
                if self.state.stage != Some(StageName::Traffic)
                    || self.state.phase != Phase::Running
                {
                    let reason = format!(
                        "weight {weight}% not applied: the slider acts during the traffic stage"
                    );
                    tracing::warn!(target: "cutover", "{reason}");
                    return Ok(Answer::Refused(reason));
                }
                Ok(Answer::Effect(
                    Effect::SetWeight {
                        weight: weight.min(100),
                        operator,
                    },
                    format!("weight {}% requested", weight.min(100)),
                ))
            }
        }
    }

    /// An approval counts only for the gate open now; any other is refused
    /// and the refusal journaled, so a double key press never skips a step.
    fn approve(&mut self, target: GateTarget, operator: &Operator) -> Result<Answer, Stop> {
        let open = self.state.gate.as_ref().map(Gate::target);
        let reason = match &open {
            Some(o) if o == &target => match self.approval_refusal(&target, operator) {
                None => return self.approved(target, operator),
                Some(why) => why,
            },
            None => "nothing is waiting for approval now".to_string(),
            Some(open) => format!("the gate open now is {open}"),
        };
        self.record(Event::ApprovalRefused {
            requested: Some(target.clone()),
            open,
            operator: operator.to_string(),
            reason: reason.clone(),
            by: Some(operator.clone()),
        })?;
        let text = format!("approval of {target} refused: {reason}");
        self.state.message = Some(text.clone());
        self.publish();
        Ok(Answer::Refused(text))
    }

    /// Why `[operators]` refuses this operator's approval of the open gate:
    /// the starter when self-approval is off, or a second approval by the
    /// same account under the two-person rule.
    fn approval_refusal(&self, target: &GateTarget, operator: &Operator) -> Option<String> {
        let rules = &self.plan.operators;
        if !rules.self_approval && operator.account == self.operator.account {
            return Some(format!(
                "{} started this release and [operators] self_approval = false: another operator must approve",
                operator.account
            ));
        }
        let step = matches!(target, GateTarget::Step { .. });
        if step && self.pending_approvals.contains(&operator.account) {
            return Some(format!(
                "{} approved {target} already; approvals = {} needs {} distinct operators",
                operator.account, rules.approvals, rules.approvals
            ));
        }
        None
    }

    /// Records an approval of the open gate; it opens once enough distinct
    /// operators approved (one, or `[operators] approvals` for a step).
    fn approved(&mut self, target: GateTarget, operator: &Operator) -> Result<Answer, Stop> {
        let (stage, step, check) = match &target {
            GateTarget::Check { stage, check } => (*stage, None, Some(check.clone())),
            GateTarget::Step { to } => (StageName::Traffic, Some(*to), None),
            GateTarget::Hold => (StageName::Traffic, None, None),
        };
        let needed = if step.is_some() {
            self.plan.operators.approvals.max(1)
        } else {
            1
        };
        self.pending_approvals.push(operator.account.clone());
        let count = self.pending_approvals.len() as u32;
        let judge_undecided = step.is_some()
            && self.plan.analysis.method == crate::config::Method::Sequential
            && self.state.verdict != Some(crate::domain::Verdict::Pass);
        self.record(Event::Approved {
            stage,
            step,
            check,
            operator: operator.to_string(),
            by: Some(operator.clone()),
            count: (needed > 1).then_some(count),
            needed: (needed > 1).then_some(needed),
            judge_undecided,
        })?;
        if count < needed {
            let text = format!(
                "approval {count} of {needed} of {target} recorded: another operator must approve"
            );
            self.state.message = Some(text.clone());
            self.publish();
            return Ok(Answer::Effect(Effect::Done, text));
        }
        self.set_gate(None);
        let text = format!("approved {target}");
        Ok(Answer::Effect(
            Effect::Approved(target, operator.clone()),
            text,
        ))
    }

    /// `[operators] approvers`: may this operator steer? Refusals are journaled.
    fn may_steer(
        &mut self,
        command: &Command,
        operator: &Operator,
    ) -> Result<Option<String>, Stop> {
        if matches!(
            command,
            Command::Signal(_) | Command::Presence { .. } | Command::LockLost { .. }
        ) {
            return Ok(None);
        }
        let Err(reason) = self.plan.operators.may_steer(&operator.account) else {
            return Ok(None);
        };
        let what = match command {
            Command::Approve { gate } => format!("approval of {gate}"),
            Command::Pause => "pause".into(),
            Command::Resume => "resume".into(),
            Command::SetWeight(w) => format!("weight {w}%"),
            Command::Rollback { .. } => "rollback".into(),
            Command::HoldAndQuit { .. } => "hold".into(),
            Command::Signal(_) | Command::Presence { .. } | Command::LockLost { .. } => {
                String::new()
            }
        };
        self.record(Event::CommandRefused {
            command: what.clone(),
            operator: operator.to_string(),
            reason: reason.clone(),
            by: Some(operator.clone()),
        })?;
        Ok(Some(format!("{what} refused: {reason}")))
    }

    /// A hang-up follows `on_disconnect`; other signals hold traffic.
    fn on_signal(&mut self, sig: SignalKind) -> Result<Effect, Stop> {
        let policy = self.plan.traffic.as_ref().map(|t| t.on_disconnect);
        let hangup = sig == SignalKind::Hangup;
        if hangup && self.state.phase == Phase::RollingBack {
            // A terminal gone never stops a rollback under way.
            tracing::warn!(target: "cutover", "SIGHUP during the rollback: the rollback goes on");
            return Ok(Effect::Done);
        }
        if hangup && policy == Some(OnDisconnect::Continue) && self.state.phase == Phase::Running {
            tracing::warn!(target: "cutover", "SIGHUP: the terminal is gone; on_disconnect = \"continue\" carries on");
            return Ok(Effect::Done);
        }
        if hangup
            && policy == Some(OnDisconnect::Rollback)
            && self.state.phase == Phase::Running
            && self.traffic_touched
        {
            return Err(Stop::Rollback {
                reason: format!(
                    "{} (terminal gone) with on_disconnect = \"rollback\"",
                    sig.name()
                ),
                source: RollbackSource::Signal,
                operator: self.operator.clone(),
                requested_at: Utc::now(),
            });
        }
        Err(Stop::Hold {
            reason: format!("{} received: traffic held where it is", sig.name()),
        })
    }

    /// Pauses or resumes automatic progression, journaled. `who` is an
    /// operator, or what paused it ("analysis", "unattended").
    pub(crate) fn set_paused(&mut self, paused: bool, who: Who, reason: &str) -> Result<(), Stop> {
        if self.state.paused == paused {
            return Ok(());
        }
        self.state.paused = paused;
        let (operator, by) = match who {
            Who::Operator(o) => (o.to_string(), Some(o.clone())),
            Who::Engine(what) => (what.to_string(), None),
        };
        if paused {
            self.record(Event::Paused {
                operator,
                reason: reason.to_string(),
                by,
            })?;
        } else {
            self.record(Event::Resumed { operator, by })?;
        }
        self.publish();
        Ok(())
    }
}
