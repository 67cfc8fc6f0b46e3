//! Judging each sample of the traffic stage: the limits on the sample's window
//! (`analysis.rs`), and with `method = "sequential"` the judge
//! (`crate::judge::kinds`) on the source's cumulative counts, one test per
//! event kind over the whole canary (across steps and the operator's slider).
//! The verdict goes to the canary state machine; the counts and the evidence
//! go to the journal (for `cutover replay`) and to the screen.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::analysis::judge_at;
use super::canary::Input;
use super::snapshot::{AnalysisPoint, EvidenceView, KindView};
use super::{Engine, Stop};
use crate::config::{Method, SourcePlan};
use crate::domain::{TrackPair, Verdict};
use crate::judge::kinds::{Judge, JudgeConfig, KindRecord, SequentialRecord};
use crate::judge::{
    canary_rate_upper, Counts, EventKind, PassBasis, PassPolicy, TrackCounts, Verdict as Call,
};
use crate::record::Event;

/// The ratio a bounded pass must show at most: twice stable's rate.
pub(crate) const PASS_MAX_RATIO: f64 = 2.0;

/// The sequential judge of one canary, and what the driver must remember of it.
#[derive(Default)]
pub(crate) struct Sequential {
    judge: Option<Judge>,
    /// The judge failed and the canary machine has not acted on it yet (a
    /// sample arriving while a weight changes is not judged by the machine).
    pub fail_pending: bool,
    /// The 5xx kind's counts last given to the judge (every kind shares its
    /// requests).
    fed: Option<Counts>,
    /// Both tracks' requests at the last sample, and when: the request rate.
    last_requests: Option<(u64, Instant)>,
    requests_per_s: Option<f64>,
}

impl Sequential {
    /// The judge's settings for a plan.
    pub fn config(plan: &crate::config::AnalysisPlan) -> JudgeConfig {
        JudgeConfig {
            alpha: plan.alpha,
            tolerance: plan.tolerance,
            policy: PassPolicy {
                max_ratio: Some(PASS_MAX_RATIO),
                // A slow request is judged like a 5xx: the canary shown below
                // the plan's error-rate limit on either kind.
                max_rate: plan.max_error_rate,
                min_canary_requests: plan.min_requests,
            },
            slow_ms: plan.slow_ms,
        }
    }
}

/// The counts per event kind in a sample: 5xx when both tracks have totals,
/// slow when both count slow requests.
pub(crate) fn kind_counts(pair: &TrackPair) -> Option<Vec<(EventKind, Counts)>> {
    let (c, s) = (pair.canary.totals?, pair.stable.totals?);
    let mut out = vec![(
        EventKind::Errors,
        Counts {
            canary: TrackCounts::new(c.requests, c.errors),
            stable: TrackCounts::new(s.requests, s.errors),
        },
    )];
    if let (Some(cs), Some(ss)) = (c.slow, s.slow) {
        out.push((
            EventKind::Slow,
            Counts {
                canary: TrackCounts::new(c.requests, cs),
                stable: TrackCounts::new(s.requests, ss),
            },
        ));
    }
    Some(out)
}

/// Whether a reading goes to the judge now: when both tracks served requests
/// since the last one it was given, when a counter went down (a reset, which
/// the judge must see to start again), or at 0 % and 100 %, where one track is
/// idle by design. Otherwise the interval waits to be merged with the next: a
/// scraped source moves the two tracks' counters at different moments, and an
/// interval where one track moved alone carries no comparison. The choice
/// depends on request counts only, never on events, so the bound on false
/// rollbacks holds.
fn both_moved(last: Counts, now: Counts, weight: u8) -> bool {
    let (lc, ls) = (last.canary.requests, last.stable.requests);
    let (nc, ns) = (now.canary.requests, now.stable.requests);
    let reset = nc < lc
        || ns < ls
        || now.canary.events < last.canary.events
        || now.stable.events < last.stable.events;
    reset || weight == 0 || weight >= 100 || (nc > lc && ns > ls)
}

/// The name of a kind on screen and in reasons.
pub fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Errors => "5xx",
        EventKind::Slow => "slow",
    }
}

/// "1.3×", "0.21×", "1,000×".
pub fn ratio_text(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// An e-value from its log: `3.2`, `150`, `9.0e10`.
fn e_value(ln: f64) -> String {
    let v = ln.exp();
    if v >= 1e4 {
        format!("{v:.1e}")
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One kind's verdict in words, for the journal's reasons and the logs.
fn reason(k: &KindRecord, per_kind_alpha: f64, slow_ms: u64) -> String {
    let name = match k.kind {
        EventKind::Errors => "5xx".to_string(),
        EventKind::Slow => format!("slow (> {slow_ms} ms)"),
    };
    let e = &k.evidence;
    let interval = match e.ratio_high {
        Some(h) => format!("{}–{}", ratio_text(e.ratio_low), ratio_text(h)),
        None => format!("≥ {}", ratio_text(e.ratio_low)),
    };
    let threshold = 1.0 / per_kind_alpha;
    let mut text = match k.verdict {
        Call::Fail => format!(
            "{name}: canary worse than stable, ratio {interval}: evidence {} reached 1/alpha = {threshold:.0}",
            e_value(e.ln_e_fail)
        ),
        Call::Pass(PassBasis::Shown) => format!("{name}: canary shown below stable's rate × tolerance"),
        Call::Pass(PassBasis::Bounded { ratio_high }) => format!(
            "{name}: canary at most {} stable's rate",
            ratio_text(ratio_high)
        ),
        Call::Pass(PassBasis::Rate { rate_high }) => format!(
            "{name}: canary rate at most {:.2}%",
            rate_high * 100.0
        ),
        Call::Inconclusive if e.ratio.is_none() => format!(
            "{name}: no events to compare in {} canary and {} stable requests",
            e.judged.canary.requests, e.judged.stable.requests
        ),
        Call::Inconclusive => format!(
            "{name}: evidence {} of {threshold:.0} for a rollback, ratio {} ({interval})",
            e_value(e.ln_e_fail),
            e.ratio.map(ratio_text).unwrap_or_default()
        ),
    };
    match (k.verdict, k.more_requests) {
        (Call::Inconclusive, Some(0)) => text.push_str(", passes once the step has baked"),
        (Call::Inconclusive, Some(n)) => text.push_str(&format!(", ≈ {n} more requests to decide")),
        _ => {}
    }
    if let Some(why) = &k.invalid {
        text.push_str(&format!(" (reading not judged: {why})"));
    }
    text
}

/// How far the evidence of one kind is toward a pass, in [0, 1]: the furthest
/// of the bases the policy allows, on a log scale (bake and exposure aside).
fn to_pass(k: &KindRecord, config: &JudgeConfig, per_kind_alpha: f64) -> f64 {
    match k.verdict {
        Call::Pass(_) => return 1.0,
        Call::Fail => return 0.0,
        Call::Inconclusive => {}
    }
    let e = &k.evidence;
    let thr = -per_kind_alpha.ln();
    let mut best = (e.ln_e_pass / thr).clamp(0.0, 1.0);
    // The interval's upper end runs from the grid's top (about 1,100 × the
    // tolerance) down to max_ratio.
    if let (Some(max), Some(high)) = (config.policy.max_ratio, e.ratio_high) {
        let top = config.tolerance * 7f64.exp();
        best = best.max(((top / high).ln() / (top / max).ln()).clamp(0.0, 1.0));
    }
    if let Some(max) = config.policy.max_rate {
        let high = canary_rate_upper(e.judged.canary, per_kind_alpha);
        best = best.max(((1.0 / high).ln() / (1.0 / max).ln()).clamp(0.0, 1.0));
    }
    best.min(0.99)
}

impl Engine {
    /// Judges a sample of both tracks, journals and publishes it. `baked`: the
    /// step's bake is over once this sample is counted (the sequential judge
    /// passes only then).
    pub(crate) fn record_sample(
        &mut self,
        pair: TrackPair,
        error: Option<String>,
        interval: Duration,
        baked: bool,
    ) -> Result<Input, Stop> {
        let a = self.plan.analysis.clone();
        // Figures outside their domain are the source failing, not evidence.
        let mut error = error.or_else(|| super::analysis::validate(&pair).err());
        let mut sequential = None;
        if a.method == Method::Sequential && error.is_none() {
            match kind_counts(&pair) {
                Some(counts) => sequential = self.judge_counts(&counts, baked),
                None => {
                    error = Some(format!(
                        "the {} metric source gave no cumulative counts (totals): the sequential method needs them",
                        self.source.as_ref().map(|s| s.kind()).unwrap_or("no")
                    ))
                }
            }
        }
        self.note_request_rate(&pair);
        let source_failed = error.is_some();
        let (guard, guard_reasons) = match &error {
            Some(e) => (Verdict::Inconclusive, vec![e.clone()]),
            None => judge_at(&pair, &a, self.state.weight),
        };
        let (verdict, reasons, decisive) = match &sequential {
            None if a.method == Method::Threshold || source_failed => (guard, guard_reasons, false),
            None => (Verdict::Inconclusive, guard_reasons, false),
            Some(record) => {
                let per_kind = a.alpha / f64::from(record.kinds_judged.max(1));
                let mut reasons: Vec<String> = if guard == Verdict::Fail {
                    guard_reasons
                } else {
                    Vec::new()
                };
                reasons.extend(record.kinds.iter().map(|k| reason(k, per_kind, a.slow_ms)));
                if record.failed() {
                    (Verdict::Fail, reasons, self.sequential.fail_pending)
                } else if guard == Verdict::Fail {
                    (Verdict::Fail, reasons, false)
                } else if record.passed() {
                    (Verdict::Pass, reasons, false)
                } else {
                    (Verdict::Inconclusive, reasons, false)
                }
            }
        };
        self.record(Event::Analysis {
            weight: self.state.weight,
            canary: Box::new(pair.canary.clone()),
            stable: Box::new(pair.stable.clone()),
            verdict,
            reasons: reasons.clone(),
            sequential: sequential.clone(),
            connections: self.connections.as_ref().map(|c| Box::new(c.snapshot())),
        })?;
        if source_failed {
            self.state.message = Some(format!("metric source failing: {}", reasons.join("; ")));
        }
        if let Some(record) = &sequential {
            self.state.evidence = Some(self.evidence_view(record));
        }
        self.state.verdict = Some(verdict);
        // Timed from the deployment's start, not this process's: a resumed
        // run's samples line up with the ones before it.
        let at = Utc::now();
        self.state.push_sample(AnalysisPoint {
            t: (at - self.fixed.started_at).num_milliseconds() as f64 / 1000.0,
            at,
            weight: self.state.weight,
            pair,
            verdict,
            reasons: reasons.clone(),
        });
        self.publish();
        Ok(Input::Sample {
            verdict,
            decisive,
            source_failed,
            reasons,
            interval,
        })
    }

    /// Feeds the judge (made at the first counts: its kinds are the ones the
    /// source counts then, for the whole canary).
    fn judge_counts(
        &mut self,
        counts: &[(EventKind, Counts)],
        baked: bool,
    ) -> Option<SequentialRecord> {
        if self.sequential.judge.is_none() {
            let kinds: Vec<EventKind> = counts.iter().map(|(k, _)| *k).collect();
            match Judge::new(Sequential::config(&self.plan.analysis), &kinds) {
                Ok(j) => self.sequential.judge = Some(j),
                Err(e) => {
                    tracing::error!(target: "cutover", "the sequential judge cannot start: {e}");
                    return None;
                }
            }
        }
        let weight = self.state.weight;
        let now = counts.first().map(|(_, c)| *c);
        let feed = match (self.sequential.fed, now) {
            (Some(last), Some(now)) => both_moved(last, now, weight),
            _ => true,
        };
        let judge = self.sequential.judge.as_mut()?;
        let was_failed = self.state.evidence.as_ref().is_some_and(|e| e.failed);
        let record = judge.observe(if feed { counts } else { &[] }, baked);
        if feed {
            self.sequential.fed = now;
        }
        for k in &record.kinds {
            if let Some(why) = &k.invalid {
                tracing::warn!(target: "cutover", "{}: a reading is not evidence: {why}", kind_name(k.kind));
            }
        }
        if record.failed() && !was_failed {
            self.sequential.fail_pending = true;
        }
        Some(record)
    }

    /// Both tracks' requests per second since the last sample.
    fn note_request_rate(&mut self, pair: &TrackPair) {
        let Some(total) = pair
            .canary
            .totals
            .zip(pair.stable.totals)
            .map(|(c, s)| c.requests + s.requests)
        else {
            return;
        };
        let now = Instant::now();
        if let Some((before, at)) = self.sequential.last_requests {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 && total >= before {
                self.sequential.requests_per_s = Some((total - before) as f64 / secs);
            }
        }
        self.sequential.last_requests = Some((total, now));
    }

    /// What the screen shows of the judge.
    fn evidence_view(&self, record: &SequentialRecord) -> EvidenceView {
        let a = &self.plan.analysis;
        let per_kind = a.alpha / f64::from(record.kinds_judged.max(1));
        let kinds = record
            .kinds
            .iter()
            .map(|k| KindView {
                kind: k.kind,
                to_fail: (k.evidence.ln_e_fail / -per_kind.ln()).clamp(0.0, 1.0),
                to_pass: to_pass(k, &record.config, per_kind),
                ratio: k.evidence.ratio,
                ratio_low: k.evidence.ratio_low,
                ratio_high: k.evidence.ratio_high,
                verdict: k.verdict,
                more_requests: k.more_requests,
                canary: k.evidence.judged.canary,
                stable: k.evidence.judged.stable,
            })
            .collect();
        let mut unavailable = Vec::new();
        if !record.kinds.iter().any(|k| k.kind == EventKind::Slow) {
            unavailable.push(match &a.source {
                SourcePlan::Haproxy(_) => "slow: HAProxy counts no latencies".to_string(),
                SourcePlan::Prometheus { .. } => "slow: no slow_total query".to_string(),
                _ => "slow: the source counts no slow requests".to_string(),
            });
        }
        EvidenceView {
            alpha: a.alpha,
            tolerance: a.tolerance,
            slow_ms: a.slow_ms,
            kinds,
            unavailable,
            requests_per_s: self.sequential.requests_per_s,
            failed: record.failed(),
            baked: record.baked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(cr: u64, ce: u64, sr: u64, se: u64) -> Counts {
        Counts {
            canary: TrackCounts::new(cr, ce),
            stable: TrackCounts::new(sr, se),
        }
    }

    #[test]
    fn a_reading_waits_until_both_tracks_moved_unless_one_is_idle_by_design() {
        let last = c(100, 1, 900, 9);
        // A scrape moved stable's counters only: merged with the next.
        assert!(!both_moved(last, c(100, 1, 950, 9), 10));
        assert!(!both_moved(last, c(130, 4, 900, 9), 10));
        assert!(both_moved(last, c(130, 4, 950, 9), 10));
        // At 0 % and 100 % one track is idle by design.
        assert!(both_moved(last, c(130, 4, 900, 9), 100));
        assert!(both_moved(last, c(100, 1, 950, 9), 0));
        // A reset goes to the judge at once.
        assert!(both_moved(last, c(5, 0, 950, 9), 10));
        assert!(both_moved(last, c(100, 0, 900, 9), 10));
    }
}
