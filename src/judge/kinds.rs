//! Several event kinds judged together over one canary, as the engine uses the
//! judge: one `SequentialTest` per kind (5xx; slow requests where the source
//! counts them), each at `alpha / kinds` so that the chance of ever rolling
//! back a canary no worse than stable stays at most `alpha` over all kinds
//! (Bonferroni); the pass rule per kind; and the record of each reading that
//! the journal keeps, from which `replay` recomputes every verdict.
//!
//! The combined verdict: fail as soon as one kind fails (a fail stands:
//! Ville's bound covers the supremum), pass when every kind passes, else
//! inconclusive.

use serde::{Deserialize, Serialize};

use super::rule::{canary_rate_upper, verdict, PassPolicy, Verdict};
use super::sequential::{Reading, SequentialTest};
use super::{Counts, DataError, EventKind, Evidence, Settings, SettingsError};

/// How the engine's judge is set up; journaled with every reading so a replay
/// can repeat it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// The bound on ever failing a canary no worse than `tolerance` × stable,
    /// over every kind together.
    pub alpha: f64,
    /// The canary/stable event-rate ratio that counts as the same.
    pub tolerance: f64,
    /// What a pass short of `Shown` needs.
    pub policy: PassPolicy,
    /// The latency, in milliseconds, above which the source counted a request
    /// as a slow event (the judge takes the counts as given; kept so a replay
    /// can say what it cannot recount).
    pub slow_ms: u64,
}

/// One kind at one analysis, as journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindRecord {
    /// The event kind.
    pub kind: EventKind,
    /// What the test was given at this analysis, in order: the first counts
    /// as the origin (`rebase`), later ones as readings, and a reading whose
    /// counters went down followed by a `rebase` on it. Empty when the source
    /// gave no count of this kind.
    pub readings: Vec<Reading>,
    /// Why a reading was not evidence (a counter reset, counters out of step).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub invalid: Option<String>,
    /// The evidence after the readings.
    pub evidence: Evidence,
    /// The pass rule's verdict on it (a fail stands once reached).
    #[serde(flatten)]
    pub verdict: Verdict,
    /// About how many more requests (both tracks) to a fail, a shown pass or a
    /// pass on the canary's own rate, at the last interval's share.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub more_requests: Option<u64>,
}

/// The judge's part of one analysis event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequentialRecord {
    /// The judge's settings (`alpha` over all kinds).
    #[serde(flatten)]
    pub config: JudgeConfig,
    /// Kinds judged over the whole canary; each is tested at `alpha / kinds`.
    pub kinds_judged: u32,
    /// The step's bake was over at this analysis (no pass before it).
    pub baked: bool,
    /// Each kind judged, in a fixed order.
    pub kinds: Vec<KindRecord>,
}

impl SequentialRecord {
    /// Some kind's verdict is fail.
    pub fn failed(&self) -> bool {
        self.kinds.iter().any(|k| k.verdict == Verdict::Fail)
    }

    /// Every kind's verdict is a pass.
    pub fn passed(&self) -> bool {
        !self.kinds.is_empty()
            && self
                .kinds
                .iter()
                .all(|k| matches!(k.verdict, Verdict::Pass(_)))
    }
}

/// Each kind's test at `alpha / kinds`, and the last interval's canary share.
#[derive(Clone, Debug)]
pub struct Judge {
    config: JudgeConfig,
    per_kind: Settings,
    kinds: Vec<KindState>,
}

#[derive(Clone, Debug)]
struct KindState {
    kind: EventKind,
    test: SequentialTest,
    /// The counts the test last accepted (or was rebased on), if any.
    last: Option<Counts>,
    /// Recent canary and total requests, each reading's weighing `DECAY` of
    /// the one before: the canary's recent share, steady over short intervals.
    recent: (f64, f64),
}

/// How much of the recent share a reading keeps.
const DECAY: f64 = 0.8;

impl Judge {
    /// A judge of `kinds` (each at most once) for one canary.
    ///
    /// # Errors
    /// `SettingsError` when `alpha / kinds` or `tolerance` is out of the
    /// judge's range.
    pub fn new(config: JudgeConfig, kinds: &[EventKind]) -> Result<Judge, SettingsError> {
        let n = kinds.len().max(1) as f64;
        let per_kind = Settings::new(config.alpha / n, config.tolerance)?;
        Ok(Judge {
            config,
            per_kind,
            kinds: kinds
                .iter()
                .map(|&kind| KindState {
                    kind,
                    test: SequentialTest::new(per_kind),
                    last: None,
                    recent: (0.0, 0.0),
                })
                .collect(),
        })
    }

    /// The kinds judged, in order.
    pub fn kinds(&self) -> Vec<EventKind> {
        self.kinds.iter().map(|k| k.kind).collect()
    }

    /// The settings each kind is tested at (`alpha / kinds`).
    pub fn per_kind(&self) -> Settings {
        self.per_kind
    }

    /// Feeds one analysis: `counts` holds the cumulative counts of each kind
    /// the source reported this time (a kind left out gets no reading);
    /// `baked` says the step's bake is over. The first counts of a kind are its
    /// origin; a counter that went down is journaled and becomes the new
    /// origin (a reset is not evidence).
    pub fn observe(&mut self, counts: &[(EventKind, Counts)], baked: bool) -> SequentialRecord {
        let (config, per_kind) = (self.config, self.per_kind);
        let kinds = self
            .kinds
            .iter_mut()
            .map(|k| {
                let mut readings = Vec::new();
                let mut invalid = None;
                if let Some((_, c)) = counts.iter().find(|(kind, _)| *kind == k.kind) {
                    let first = match k.last {
                        None => Reading::Rebase(*c),
                        Some(_) => Reading::Counts(*c),
                    };
                    readings.push(first);
                    if let Err(e) = apply(&mut k.test, &first) {
                        invalid = Some(e.to_string());
                        if matches!(e, DataError::CounterDecreased { .. }) {
                            let rebase = Reading::Rebase(*c);
                            let _ = apply(&mut k.test, &rebase);
                            readings.push(rebase);
                            k.last = Some(*c);
                        }
                    } else {
                        if let Some((canary, total)) = k.last.and_then(|l| interval(l, *c)) {
                            k.recent = (
                                DECAY * k.recent.0 + canary as f64,
                                DECAY * k.recent.1 + total as f64,
                            );
                        }
                        k.last = Some(*c);
                    }
                }
                let evidence = k.test.evidence();
                let v = kind_verdict(&k.test, &evidence, per_kind, &config.policy, baked);
                let share = (k.recent.1 > 0.0).then(|| k.recent.0 / k.recent.1);
                let more_requests =
                    more_requests(&k.test, &evidence, per_kind, &config.policy, share);
                KindRecord {
                    kind: k.kind,
                    readings,
                    invalid,
                    evidence,
                    verdict: v,
                    more_requests,
                }
            })
            .collect();
        SequentialRecord {
            config,
            kinds_judged: self.kinds.len() as u32,
            baked,
            kinds,
        }
    }
}

/// One journaled reading applied to a test, as both the engine and `replay` do it.
fn apply(test: &mut SequentialTest, reading: &Reading) -> Result<Evidence, DataError> {
    match reading {
        Reading::Counts(c) => test.observe(*c),
        Reading::Rebase(c) => {
            test.rebase(*c);
            Ok(test.evidence())
        }
    }
}

/// The canary's requests and both tracks' between two readings.
fn interval(from: Counts, to: Counts) -> Option<(u64, u64)> {
    let c = to.canary.requests.checked_sub(from.canary.requests)?;
    let s = to.stable.requests.checked_sub(from.stable.requests)?;
    Some((c, c + s))
}

/// The pass rule on `evidence`, with a fail standing once the test reached it.
fn kind_verdict(
    test: &SequentialTest,
    evidence: &Evidence,
    settings: Settings,
    policy: &PassPolicy,
    baked: bool,
) -> Verdict {
    if test.has_failed() {
        return Verdict::Fail;
    }
    verdict(evidence, settings, policy, baked)
}

/// The sooner of the test's own estimate (to a fail or a shown pass) and the
/// requests until the canary's own rate is shown below `max_rate`, if its
/// rate so far stays what it has been; at `share`.
fn more_requests(
    test: &SequentialTest,
    evidence: &Evidence,
    settings: Settings,
    policy: &PassPolicy,
    share: Option<f64>,
) -> Option<u64> {
    let by_test = test.more_requests();
    if evidence.ratio.is_some_and(|r| r > settings.tolerance) {
        return by_test;
    }
    let by_rate = match (policy.max_rate, share) {
        (Some(max), Some(w)) if w > 0.0 => rate_pass_in(evidence, settings.alpha, max)
            .map(|canary| (canary as f64 / w).ceil() as u64),
        _ => None,
    };
    match (by_test, by_rate) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// More canary requests until `canary_rate_upper` reaches `max_rate`, if the
/// canary's events go on at the rate seen so far; `None` when that rate is not
/// below `max_rate` or it takes more than 2^40 requests.
fn rate_pass_in(evidence: &Evidence, alpha: f64, max_rate: f64) -> Option<u64> {
    let seen = evidence.judged.canary;
    let n = seen.requests as f64;
    let rate = if seen.requests > 0 {
        seen.events as f64 / n
    } else {
        0.0
    };
    if rate >= max_rate {
        return None;
    }
    let bound_after = |more: u64| {
        let total = seen.requests + more;
        let events = seen.events + (rate * more as f64).round() as u64;
        canary_rate_upper(super::TrackCounts::new(total, events.min(total)), alpha)
    };
    if bound_after(0) <= max_rate {
        return Some(0);
    }
    let mut hi = 1u64;
    while bound_after(hi) > max_rate {
        hi = hi.checked_mul(2).filter(|h| *h <= 1 << 40)?;
    }
    let mut lo = hi / 2;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if bound_after(mid) <= max_rate {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// One analysis recomputed by `replay`.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    /// Each kind's evidence and verdict, in the record's order.
    pub kinds: Vec<(EventKind, Evidence, Verdict)>,
    /// Readings the recomputation found invalid, with why.
    pub invalid: Vec<(EventKind, String)>,
}

impl Replayed {
    /// Some kind fails.
    pub fn failed(&self) -> bool {
        self.kinds.iter().any(|(_, _, v)| *v == Verdict::Fail)
    }

    /// Every kind passes.
    pub fn passed(&self) -> bool {
        !self.kinds.is_empty()
            && self
                .kinds
                .iter()
                .all(|(_, _, v)| matches!(v, Verdict::Pass(_)))
    }
}

/// Recomputes every analysis of one canary from its journaled records, with
/// the journaled settings or others (`alpha` over all kinds, `tolerance`).
/// The same records and settings give the same evidence and verdicts, bit for
/// bit on the same platform.
///
/// # Errors
/// `SettingsError` when the settings are out of the judge's range.
pub fn replay(
    records: &[SequentialRecord],
    alpha: Option<f64>,
    tolerance: Option<f64>,
) -> Result<Vec<Replayed>, SettingsError> {
    let Some(first) = records.first() else {
        return Ok(Vec::new());
    };
    let n = first.kinds_judged.max(1) as f64;
    let settings = Settings::new(
        alpha.unwrap_or(first.config.alpha) / n,
        tolerance.unwrap_or(first.config.tolerance),
    )?;
    let mut tests: Vec<(EventKind, SequentialTest)> = Vec::new();
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let mut kinds = Vec::new();
        let mut invalid = Vec::new();
        for k in &record.kinds {
            let test = match tests.iter_mut().position(|(kind, _)| *kind == k.kind) {
                Some(i) => &mut tests[i].1,
                None => {
                    tests.push((k.kind, SequentialTest::new(settings)));
                    let last = tests.len() - 1;
                    &mut tests[last].1
                }
            };
            for r in &k.readings {
                if let Err(e) = apply(test, r) {
                    invalid.push((k.kind, e.to_string()));
                }
            }
            let evidence = test.evidence();
            let v = kind_verdict(
                test,
                &evidence,
                settings,
                &record.config.policy,
                record.baked,
            );
            kinds.push((k.kind, evidence, v));
        }
        out.push(Replayed { kinds, invalid });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "kinds_tests.rs"]
mod tests;
