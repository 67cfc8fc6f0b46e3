//! `[traffic]`: strategy, steps, bake, approval, what failures, hang-ups and
//! an unattended run do, the step deadline; and its router.

use std::time::Duration;

use super::super::limits::{self, show};
use super::super::plan::{AnalysisPlan, TrafficPlan};
use std::ops::Range;

use super::super::raw::{Located, RawAnalysis, RawRouter, RawTraffic};
use super::{router, Choice, Validator};
use crate::domain::{Approval, OnDisconnect, OnFailure, Strategy};

impl Choice for Strategy {
    const ALL: &'static [Self] = &[Strategy::Canary, Strategy::BlueGreen];
    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Choice for Approval {
    const ALL: &'static [Self] = &[Approval::Manual, Approval::Auto];
    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Choice for OnFailure {
    const ALL: &'static [Self] = &[OnFailure::Rollback, OnFailure::Pause];
    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Choice for OnDisconnect {
    const ALL: &'static [Self] = &[
        OnDisconnect::Continue,
        OnDisconnect::Hold,
        OnDisconnect::Rollback,
    ];
    fn word(self) -> &'static str {
        self.as_str()
    }
}

/// Default `[traffic] bake`.
const BAKE: Duration = Duration::from_secs(60);
/// Default `[traffic] step_deadline`.
const STEP_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// Default `[traffic] unattended_after` (SPEC §3).
const UNATTENDED_AFTER: Duration = Duration::from_secs(120);

/// How the file says traffic is moved: `[traffic.router]`, or the
/// `[[traffic.routers]]` of a group (where the list starts, and its members).
pub(super) struct WrittenRouters<'a> {
    pub router: Option<&'a Located<RawRouter>>,
    pub group: Option<&'a (Range<usize>, Vec<Located<RawRouter>>)>,
}

/// The traffic plan, or `None` when its router is missing or wrong (reported).
pub(super) fn validate(
    v: &mut Validator,
    t: &Located<RawTraffic>,
    routers: WrittenRouters,
) -> Option<TrafficPlan> {
    let r = &t.value;
    let strategy = v.choice(&r.strategy, "strategy", Strategy::Canary);
    let steps = steps(v, r, strategy);
    let bake = v.duration(&r.bake, "bake", limits::BAKE, BAKE);
    let approval = v.choice(&r.approval, "approval", Approval::Manual);
    let on_failure = v.choice(&r.on_failure, "on_failure", OnFailure::Rollback);
    let on_disconnect = v.choice(&r.on_disconnect, "on_disconnect", OnDisconnect::Hold);
    let unattended_after = v.duration(
        &r.unattended_after,
        "unattended_after",
        limits::UNATTENDED_AFTER,
        UNATTENDED_AFTER,
    );
    let step_deadline = v.duration(
        &r.step_deadline,
        "step_deadline",
        limits::STEP_DEADLINE,
        STEP_DEADLINE,
    );
    let router = match (routers.router, routers.group) {
        (None, None) => {
            v.error(
                t.span.clone(),
                "[traffic] needs a [traffic.router] table saying how traffic is moved (kind = \"builtin\", with listen, stable and canary), or [[traffic.routers]] tables for several routers moved as one",
            );
            return None;
        }
        (Some(_), Some((at, _))) => {
            v.error(
                at.clone(),
                "[traffic] takes one [traffic.router] or a group of [[traffic.routers]], not both: move the single router into the group (with a name), or drop the group",
            );
            return None;
        }
        (Some(router), None) => router::validate(v, router)?,
        (None, Some((at, members))) => router::validate_group(v, at, members)?,
    };
    Some(TrafficPlan {
        strategy,
        steps,
        bake,
        approval,
        on_failure,
        on_disconnect,
        unattended_after,
        step_deadline,
        measure_split: r.measure_split.as_ref().is_none_or(|s| *s.get_ref()),
        router,
    })
}

/// Percent steps: each from 1 to 100 (checked before narrowing), strictly
/// increasing, ending at 100; blue-green is `[100]`.
fn steps(v: &mut Validator, r: &RawTraffic, strategy: Strategy) -> Vec<u8> {
    let Some(s) = &r.steps else {
        return match strategy {
            Strategy::Canary => vec![5, 25, 50, 100],
            Strategy::BlueGreen => vec![100],
        };
    };
    let mut out = Vec::new();
    let mut ok = true;
    let mut prev = 0i64;
    for step in s.get_ref() {
        let n = *step.get_ref();
        match u8::try_from(n) {
            Ok(p) if limits::STEP.contains(&n) && n > prev => out.push(p),
            Ok(_) if limits::STEP.contains(&n) => {
                v.error(
                    step.span(),
                    format!("step {n} comes after {prev}: steps must strictly increase, like [5, 25, 50, 100]"),
                );
                ok = false;
            }
            _ => {
                v.error(
                    step.span(),
                    format!("step {n} is out of range: each step is a percent from 1 to 100"),
                );
                ok = false;
            }
        }
        prev = prev.max(n);
    }
    if s.get_ref().is_empty() {
        v.error(
            s.span(),
            "steps is empty: list the percentages, ending at 100, like [5, 25, 50, 100]",
        );
    } else if ok && out.last() != Some(&100) {
        v.error(
            s.span(),
            "steps must end at 100 so the new version takes all traffic, like [5, 25, 50, 100]",
        );
    } else if ok && strategy == Strategy::BlueGreen && out != [100] {
        v.error(
            s.span(),
            "a blue-green release switches at once: steps must be [100] (or left out)",
        );
    }
    out
}

/// What traffic and analysis must agree on: a step deadline shorter than
/// one sample would fail every step before its first verdict.
pub(super) fn check_against_analysis(
    v: &mut Validator,
    t: &TrafficPlan,
    r: &RawTraffic,
    a: &AnalysisPlan,
    ra: Option<&RawAnalysis>,
) {
    if t.step_deadline >= a.interval {
        return;
    }
    let interval = show(a.interval);
    if let Some(s) = &r.step_deadline {
        v.error(
            s.span(),
            format!("step_deadline is shorter than the analysis interval ({interval}): a step would pass its deadline before its first sample; use at least {interval}"),
        );
    } else if let Some(s) = ra.and_then(|ra| ra.interval.as_ref()) {
        v.error(
            s.span(),
            format!(
                "interval is longer than [traffic] step_deadline ({} by default): a step would pass its deadline before its first sample; shorten interval or set step_deadline to at least {interval}",
                show(t.step_deadline)
            ),
        );
    }
}

#[cfg(test)]
#[path = "traffic_tests.rs"]
mod tests;
