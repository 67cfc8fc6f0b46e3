//! Weight changes, one in flight at a time: set and read back on a single
//! router, or applied to every member of a group and read back from each.
//! The release lock's fence is consulted right before every write. A
//! group's step that not every member confirms is put back on all members
//! (the previous weight), then `on_failure` applies; a change is a future of
//! its own, so `R` preempts it (it is journaled as abandoned).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::canary::Input;
use super::fence::FenceCheck;
use super::{Engine, Stop};
use crate::domain::{MemberWeight, Operator, RollbackSource, WeightSource};
use crate::record::Event;
use crate::router::group::{GroupChange, RouterGroup};
use crate::router::Router;

/// Longest wait for a router (each member of a group) to apply and confirm
/// a weight.
pub(crate) const ROUTER_TIMEOUT: Duration = Duration::from_secs(30);

/// What a weight change came to.
pub(crate) enum Applied {
    /// A single router: the weight it read back, or why not.
    Single(Result<u8, String>),
    /// A group: every member's answer.
    Group(GroupChange),
    /// The release lock was lost before the write: nothing was written.
    Fenced(String),
}

/// A weight change on its way.
pub(crate) type WeightChange = Pin<Box<dyn Future<Output = Applied> + Send>>;

/// Sets `weight` and reads it back (each member of a group, at once),
/// bounded by [`ROUTER_TIMEOUT`]; the fence is checked right before.
pub(crate) fn set_and_read(
    router: Option<Arc<dyn Router>>,
    group: Option<Arc<RouterGroup>>,
    fence: Option<FenceCheck>,
    weight: u8,
) -> WeightChange {
    Box::pin(async move {
        if let Some(check) = &fence {
            if let Err(why) = check() {
                return Applied::Fenced(why);
            }
        }
        if let Some(group) = group {
            return Applied::Group(group.apply(weight, ROUTER_TIMEOUT).await);
        }
        let Some(router) = router else {
            return Applied::Single(Ok(weight));
        };
        let applied = tokio::time::timeout(ROUTER_TIMEOUT, async {
            router.set_weight(weight).await.map_err(|e| e.to_string())?;
            router.current_weight().await.map_err(|e| e.to_string())
        })
        .await;
        Applied::Single(applied.unwrap_or_else(|_| {
            Err(format!(
                "no answer within {}",
                humantime::format_duration(ROUTER_TIMEOUT)
            ))
        }))
    })
}

/// Why a change is made, and what its failure means.
pub(crate) enum Purpose {
    /// A step (the plan's, the operator's): a group member's failure puts
    /// every member back to the weight before, then `on_failure` applies;
    /// a single router's failure starts the rollback.
    Step,
    /// A resumed run making the routers carry the recorded weight: a
    /// failure starts the rollback.
    Resume,
    /// Putting a group back after `failed` was not confirmed by every member.
    Revert { failed: u8, reason: String },
}

/// The weight change in flight, with what the journal needs of it.
pub(crate) struct InFlight {
    pub weight: u8,
    /// The confirmed weight before this change.
    pub from: u8,
    pub started: Instant,
    pub change: WeightChange,
    pub purpose: Purpose,
}

/// What a finished change leads to.
pub(crate) enum AfterChange {
    /// Feed this to the canary.
    Input(Input),
    /// Start this change and wait for it (a group put back).
    Start(InFlight),
}

impl Engine {
    /// The router's kind for the journal ("group" for a group).
    pub(crate) fn router_kind(&self) -> &'static str {
        self.router.as_ref().map(|r| r.kind()).unwrap_or("none")
    }

    /// A router failure: the rollback starts.
    pub(crate) fn router_stop(&self, reason: String) -> Stop {
        Stop::Rollback {
            reason,
            source: RollbackSource::Check,
            operator: self.operator.clone(),
            requested_at: Utc::now(),
        }
    }

    /// Journals a weight request (with the fencing token) and starts the
    /// router call.
    pub(crate) fn request_weight(
        &mut self,
        weight: u8,
        source: WeightSource,
        operator: &Operator,
        purpose: Purpose,
    ) -> Result<InFlight, Stop> {
        let fence = self.fence_token()?;
        self.record(Event::WeightRequested {
            weight,
            source,
            operator: operator.to_string(),
            by: Some(operator.clone()),
            fence,
        })?;
        self.state.requested_weight = Some(weight);
        self.publish();
        let change = set_and_read(
            self.router.clone(),
            self.group.clone(),
            self.fence_check(),
            weight,
        );
        Ok(InFlight {
            weight,
            from: self.state.weight,
            started: Instant::now(),
            change,
            purpose,
        })
    }

    /// A weight change came back: confirmed, put back (a group), or the
    /// rollback starts; a lost lock stops the run.
    pub(crate) fn weight_result(
        &mut self,
        f: InFlight,
        applied: Applied,
    ) -> Result<AfterChange, Stop> {
        self.state.requested_weight = None;
        let kind = self.router_kind();
        let error = match applied {
            Applied::Group(change) => return self.group_result(f, change),
            Applied::Fenced(why) => {
                self.record(Event::WeightFailed {
                    weight: f.weight,
                    router: kind.into(),
                    error: format!("not written: {why}"),
                    members: None,
                })?;
                return Err(self.lock_lost(why));
            }
            Applied::Single(Ok(w)) if w == f.weight => {
                self.state.weight = w;
                self.record(Event::WeightApplied {
                    weight: w,
                    router: kind.into(),
                    elapsed_ms: ms(f.started.elapsed()),
                    members: None,
                    skew_ms: None,
                })?;
                self.publish();
                return Ok(AfterChange::Input(Input::WeightConfirmed(w)));
            }
            Applied::Single(Ok(w)) => {
                format!("asked for {}% but the router reads back {w}%", f.weight)
            }
            Applied::Single(Err(e)) => e,
        };
        self.record(Event::WeightFailed {
            weight: f.weight,
            router: kind.into(),
            error: error.clone(),
            members: None,
        })?;
        self.publish();
        Err(self.router_stop(format!(
            "the {kind} router could not apply {}%: {error}",
            f.weight
        )))
    }

    /// A group's change came back: confirmed by every member, or journaled
    /// member by member and put back (a step), or the rollback starts.
    fn group_result(&mut self, f: InFlight, change: GroupChange) -> Result<AfterChange, Stop> {
        self.show_members(&change.members);
        if let Purpose::Revert { failed, reason } = f.purpose {
            return self.revert_result(f.started, failed, reason, change);
        }
        let total = change.members.len();
        if change.confirmed() {
            self.state.weight = change.weight;
            self.record(Event::WeightApplied {
                weight: change.weight,
                router: "group".into(),
                elapsed_ms: ms(f.started.elapsed()),
                members: Some(change.members.clone()),
                skew_ms: change.skew_ms,
            })?;
            self.publish();
            return Ok(AfterChange::Input(Input::WeightConfirmed(change.weight)));
        }
        let failures = change.failures();
        let missing = change.unconfirmed().count();
        self.record(Event::WeightFailed {
            weight: change.weight,
            router: "group".into(),
            error: format!(
                "{}% not confirmed by {missing} of {total} routers: {failures}",
                change.weight
            ),
            members: Some(change.members.clone()),
        })?;
        self.publish();
        match f.purpose {
            Purpose::Resume => Err(self.router_stop(format!(
                "the routers could not be made to carry {}% on resume: {failures}",
                f.weight
            ))),
            _ => {
                let reason = format!(
                    "the step to {}% was not confirmed by every router ({failures}): put back to {}%",
                    f.weight, f.from
                );
                tracing::warn!(target: "cutover", "{reason}");
                let operator = self.operator.clone();
                let purpose = Purpose::Revert {
                    failed: f.weight,
                    reason,
                };
                let revert =
                    self.request_weight(f.from, WeightSource::Revert, &operator, purpose)?;
                Ok(AfterChange::Start(revert))
            }
        }
    }

    /// A step put back: done when every member that answers carries the
    /// weight before (a member that cannot be reached is named, it carries
    /// what it carries); `on_failure` then applies. A member that answers
    /// with another weight leaves the routers disagreeing: the rollback
    /// starts.
    fn revert_result(
        &mut self,
        started: Instant,
        failed: u8,
        reason: String,
        change: GroupChange,
    ) -> Result<AfterChange, Stop> {
        let weight = change.weight;
        let disagree: Vec<String> = change
            .unconfirmed()
            .filter(|m| m.error.is_none())
            .map(MemberWeight::describe_failure)
            .collect();
        if !disagree.is_empty() {
            self.record(Event::WeightFailed {
                weight,
                router: "group".into(),
                error: format!("{weight}% not carried by {}", disagree.join(", ")),
                members: Some(change.members.clone()),
            })?;
            return Err(self.router_stop(format!(
                "the step to {failed}% was not confirmed by every router, and putting {weight}% back left {} at another weight: the routers disagree",
                disagree.join(", ")
            )));
        }
        self.state.weight = weight;
        self.record(Event::WeightApplied {
            weight,
            router: "group".into(),
            elapsed_ms: ms(started.elapsed()),
            members: Some(change.members.clone()),
            skew_ms: change.skew_ms,
        })?;
        let back: Vec<&str> = change
            .members
            .iter()
            .filter(|m| m.confirmed)
            .map(|m| m.name.as_str())
            .collect();
        let unreachable = change.failures();
        let mut message = format!(
            "the step to {failed}% was put back to {weight}% on {} of {} routers ({})",
            back.len(),
            change.members.len(),
            back.join(", ")
        );
        if !unreachable.is_empty() {
            message.push_str(&format!("; not reached: {unreachable}"));
        }
        self.record(Event::Note { message })?;
        self.publish();
        Ok(AfterChange::Input(Input::WeightReverted { weight, reason }))
    }

    /// Shows what each member of a group read back last.
    pub(crate) fn show_members(&mut self, members: &[MemberWeight]) {
        for m in members {
            if let Some(shown) = self.state.members.iter_mut().find(|s| s.name == m.name) {
                *shown = m.clone();
            }
        }
        self.publish();
    }

    /// A weight change dropped because the deployment stopped (`R`).
    pub(crate) fn abandon_weight(&mut self, weight: u8, stop: &Stop) {
        self.state.requested_weight = None;
        let kind = self.router_kind();
        let why = match stop {
            Stop::Rollback { .. } => "abandoned: a rollback was requested",
            Stop::Hold { .. } => "abandoned: the deployment is holding",
            Stop::JournalFailed(_) => "abandoned: the journal failed",
        };
        let _ = self.record(Event::WeightFailed {
            weight,
            router: kind.into(),
            error: why.into(),
            members: None,
        });
    }

    /// Sets a weight outside the traffic loop (resume), `R` still preempting.
    pub(crate) async fn apply_weight_now(
        &mut self,
        weight: u8,
        source: WeightSource,
    ) -> Result<(), Stop> {
        let operator = self.operator.clone();
        let mut f = self.request_weight(weight, source, &operator, Purpose::Resume)?;
        let change = std::mem::replace(
            &mut f.change,
            Box::pin(async { Applied::Single(Err(String::new())) }),
        );
        match self.until(change).await {
            Ok(applied) => match self.weight_result(f, applied)? {
                AfterChange::Input(_) => Ok(()),
                // A resume's change is never put back (see `Purpose::Resume`).
                AfterChange::Start(_) => Err(self.router_stop(format!(
                    "the routers could not be made to carry {weight}% on resume"
                ))),
            },
            Err(stop) => {
                self.abandon_weight(weight, &stop);
                Err(stop)
            }
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
