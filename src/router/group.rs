//! A router group: several routers carrying the same service
//! (`[[traffic.routers]]`), moved as one.
//!
//! A change goes to every member at once (at most
//! [`crate::config::limits::MEMBER_CONCURRENCY`] in flight, each bounded by a
//! timeout): set, then read back from that member. The change is confirmed
//! only when every member reads back the weight asked for; the skew is the
//! time from the first member's confirmation to the last one's. What each
//! member did comes back in a [`GroupChange`], which the engine journals and
//! acts on (revert a step, or name the members a rollback could not reach).
//!
//! The group is also a [`Router`] for reads: its weight is the members'
//! common weight, and an error when they disagree or one cannot be read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;

use super::{Router, RouterError};
use crate::config::limits::MEMBER_CONCURRENCY;
use crate::domain::MemberWeight;

/// Longest a member may take to answer a read of its weight.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One router of the group, under its name.
#[derive(Clone)]
pub struct Member {
    pub name: String,
    pub router: Arc<dyn Router>,
}

/// What a weight change came to on every member.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupChange {
    /// The weight asked for (percent to the canary).
    pub weight: u8,
    /// Every member changed, in the group's order.
    pub members: Vec<MemberWeight>,
    /// Milliseconds from the first member's confirmation to the last one's
    /// (`None` when no member confirmed).
    pub skew_ms: Option<f64>,
}

impl GroupChange {
    /// Every member read back the weight asked for.
    pub fn confirmed(&self) -> bool {
        self.members.iter().all(|m| m.confirmed)
    }

    /// The members that did not confirm.
    pub fn unconfirmed(&self) -> impl Iterator<Item = &MemberWeight> {
        self.members.iter().filter(|m| !m.confirmed)
    }

    /// "lb3 (haproxy router: cannot connect …), lb4 (reads back 10%)".
    pub fn failures(&self) -> String {
        self.unconfirmed()
            .map(MemberWeight::describe_failure)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The names of the members that did not confirm.
    pub fn unconfirmed_names(&self) -> Vec<String> {
        self.unconfirmed().map(|m| m.name.clone()).collect()
    }
}

/// Routers moved as one.
pub struct RouterGroup {
    members: Vec<Member>,
}

impl RouterGroup {
    /// A group of `members` (at least one; names unique, as the plan's
    /// validation guarantees).
    pub fn new(members: Vec<Member>) -> RouterGroup {
        RouterGroup { members }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The members' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    /// Sets `weight` on every member and reads it back from each, all at
    /// once; each member has `timeout` for both. Never fails as a whole: a
    /// member's error or silence is in its [`MemberWeight`].
    pub async fn apply(&self, weight: u8, timeout: Duration) -> GroupChange {
        self.apply_to(weight, timeout, |_| true).await
    }

    /// As [`RouterGroup::apply`], on the members `pick` chooses only (a
    /// rollback's retry of the ones that did not confirm).
    pub async fn apply_to(
        &self,
        weight: u8,
        timeout: Duration,
        pick: impl Fn(&str) -> bool,
    ) -> GroupChange {
        let started = Instant::now();
        // Owned members: the futures below hold no borrow of `self`.
        let chosen: Vec<(usize, Member)> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| pick(&m.name))
            .map(|(i, m)| (i, m.clone()))
            .collect();
        let mut members: Vec<(usize, MemberWeight)> = futures::stream::iter(chosen)
            .map(|(i, m)| async move { (i, change(&m, weight, timeout, started).await) })
            .buffer_unordered(MEMBER_CONCURRENCY)
            .collect()
            .await;
        members.sort_by_key(|(i, _)| *i);
        let members: Vec<MemberWeight> = members.into_iter().map(|(_, m)| m).collect();
        let times: Vec<f64> = members.iter().filter_map(|m| m.confirmed_ms).collect();
        let skew_ms = match (
            times.iter().copied().reduce(f64::min),
            times.iter().copied().reduce(f64::max),
        ) {
            (Some(first), Some(last)) => Some(last - first),
            _ => None,
        };
        GroupChange {
            weight,
            members,
            skew_ms,
        }
    }

    /// Reads every member's weight at once (each within 10 s).
    pub async fn read(&self) -> Vec<MemberWeight> {
        let started = Instant::now();
        let mut read: Vec<(usize, MemberWeight)> =
            futures::stream::iter(self.members.clone().into_iter().enumerate())
                .map(|(i, m)| async move {
                    let answer =
                        tokio::time::timeout(READ_TIMEOUT, m.router.current_weight()).await;
                    let (weight, error) = match answer {
                        Ok(Ok(w)) => (Some(w), None),
                        Ok(Err(e)) => (None, Some(e.to_string())),
                        Err(_) => (None, Some(no_answer(READ_TIMEOUT))),
                    };
                    let member = MemberWeight {
                        name: m.name.clone(),
                        router: m.router.kind().to_string(),
                        weight,
                        confirmed: weight.is_some(),
                        confirmed_ms: weight.map(|_| ms(started.elapsed())),
                        error,
                    };
                    (i, member)
                })
                .buffer_unordered(MEMBER_CONCURRENCY)
                .collect()
                .await;
        read.sort_by_key(|(i, _)| *i);
        read.into_iter().map(|(_, m)| m).collect()
    }
}

/// One member's change: set, read back, within `timeout`.
async fn change(m: &Member, weight: u8, timeout: Duration, started: Instant) -> MemberWeight {
    let answer = tokio::time::timeout(timeout, async {
        m.router.set_weight(weight).await?;
        m.router.current_weight().await
    })
    .await;
    let (read, error) = match answer {
        Ok(Ok(w)) => (Some(w), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (None, Some(no_answer(timeout))),
    };
    let confirmed = read == Some(weight);
    MemberWeight {
        name: m.name.clone(),
        router: m.router.kind().to_string(),
        weight: read,
        confirmed,
        confirmed_ms: confirmed.then(|| ms(started.elapsed())),
        error,
    }
}

/// The weight every member reads back; an error naming each member's
/// weight (or why it is unreadable) when they disagree or one is unreadable.
pub fn common_weight(read: &[MemberWeight]) -> Result<u8, String> {
    let first = read.first().and_then(|m| m.weight);
    match first {
        Some(w) if read.iter().all(|m| m.weight == Some(w)) => Ok(w),
        _ => {
            let each: Vec<String> = read
                .iter()
                .map(|m| match (m.weight, &m.error) {
                    (Some(w), _) => format!("{} {w}%", m.name),
                    (None, Some(e)) => format!("{} unreadable ({e})", m.name),
                    (None, None) => format!("{} unreadable", m.name),
                })
                .collect();
            Err(format!(
                "the routers do not read back one weight: {}",
                each.join(", ")
            ))
        }
    }
}

fn no_answer(timeout: Duration) -> String {
    format!("no answer within {}", humantime::format_duration(timeout))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[async_trait]
impl Router for RouterGroup {
    fn kind(&self) -> &'static str {
        "group"
    }

    /// Applies to every member; an error names the members that did not confirm.
    async fn set_weight(&self, weight: u8) -> Result<(), RouterError> {
        let change = self.apply(weight, READ_TIMEOUT).await;
        if change.confirmed() {
            Ok(())
        } else {
            Err(RouterError::new(
                "group",
                format!("{weight}% not confirmed by {}", change.failures()),
            ))
        }
    }

    /// The members' common weight; an error when one cannot be read or
    /// they disagree (naming each member's weight).
    async fn current_weight(&self) -> Result<u8, RouterError> {
        common_weight(&self.read().await).map_err(|e| RouterError::new("group", e))
    }

    /// Down if any member sees the stable server down; up only if every
    /// member sees it up; unknown otherwise.
    async fn stable_health(&self) -> Result<Option<bool>, RouterError> {
        let views = futures::future::join_all(self.members.iter().map(|m| async move {
            let view = tokio::time::timeout(READ_TIMEOUT, m.router.stable_health()).await;
            (m.name.as_str(), view)
        }))
        .await;
        let mut all_up = true;
        let mut errors = Vec::new();
        for (name, view) in views {
            match view {
                Ok(Ok(Some(true))) => {}
                Ok(Ok(Some(false))) => return Ok(Some(false)),
                Ok(Ok(None)) => all_up = false,
                Ok(Err(e)) => errors.push(format!("{name}: {e}")),
                Err(_) => errors.push(format!("{name}: {}", no_answer(READ_TIMEOUT))),
            }
        }
        if !errors.is_empty() {
            return Err(RouterError::new("group", errors.join("; ")));
        }
        Ok(all_up.then_some(true))
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
