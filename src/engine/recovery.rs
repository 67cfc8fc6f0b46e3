//! Stable after a rollback, with the sequential judge's machinery
//! (`crate::judge::recovery`): stable's cumulative counts are read in the
//! background from the start of the walk until the first step (the
//! baseline), and after a clean rollback stable now is compared with stable
//! then, one recorded interval at a time, until it is shown recovered, shown
//! still worse, or the baseline runs out. The time to recovery is journaled
//! and shown; the rollback's outcome does not depend on it (that is stable
//! seen serving, `rollback.rs`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::judging::{kind_name, ratio_text, Sequential};
use super::snapshot::RecoveryView;
use super::Engine;
use crate::config::Method;
use crate::domain::Totals;
use crate::judge::kinds::KindRecord;
use crate::judge::{
    verdict, EventKind, PassBasis, Recovery, RecoveryError, Settings, TrackCounts, Verdict as Call,
};
use crate::metrics::MetricSource;
use crate::record::{Event, RecoveryOutcome};

/// Baseline readings kept: the most recent ones before the first step.
const BASELINE_KEPT: usize = 120;
/// What the baseline waits for before the first step: this many readings
/// with requests and this many stable requests, for at most
/// `BASELINE_WAIT_INTERVALS` analysis intervals and `BASELINE_WAIT_MAX`.
/// A recovery check uses the baseline up interval by interval, and one of
/// a few hundred requests cannot show stable back to its rate.
const BASELINE_SPANS: usize = 3;
const BASELINE_REQUESTS: u64 = 2000;
const BASELINE_WAIT_INTERVALS: u32 = 10;
const BASELINE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Readings in a row with no new stable request that end the recovery
/// check undecided: with no traffic there is nothing to show, and the
/// outcome should not wait for `RECOVERY_LIMIT`.
const RECOVERY_IDLE_READINGS: u32 = 5;
/// The longest the recovery check runs after a rollback.
const RECOVERY_LIMIT: Duration = Duration::from_secs(120);

/// Stable's cumulative counts read every interval until the first step.
#[derive(Default)]
pub(crate) struct Baseline {
    readings: Arc<Mutex<VecDeque<Totals>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Baseline {
    /// Starts reading `source` every `interval` in the background.
    pub fn start(source: Arc<dyn MetricSource>, interval: Duration, window: Duration) -> Baseline {
        let readings: Arc<Mutex<VecDeque<Totals>>> = Arc::default();
        let kept = Arc::clone(&readings);
        let task = tokio::spawn(async move {
            loop {
                if let Ok(Ok(pair)) = tokio::time::timeout(
                    interval.max(Duration::from_secs(2)),
                    source.sample(window),
                )
                .await
                {
                    if let Some(t) = pair.stable.totals {
                        let mut r = kept.lock().unwrap_or_else(|p| p.into_inner());
                        r.push_back(t);
                        while r.len() > BASELINE_KEPT {
                            r.pop_front();
                        }
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
        Baseline {
            readings,
            task: Some(task),
        }
    }

    /// Whether it is reading now.
    pub fn running(&self) -> bool {
        self.task.is_some()
    }

    /// Whether the baseline holds enough to compare a recovery with:
    /// `BASELINE_SPANS` readings with requests since the first one, and
    /// `BASELINE_REQUESTS` requests.
    pub fn enough(&self) -> bool {
        let r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(first), Some(last)) = (r.front(), r.back()) else {
            return false;
        };
        let spans = r.iter().filter(|t| t.requests > first.requests).count();
        spans >= BASELINE_SPANS && last.requests.saturating_sub(first.requests) >= BASELINE_REQUESTS
    }

    /// Whether stable served no request across the readings so far.
    pub fn idle(&self) -> bool {
        let r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        match (r.front(), r.back()) {
            (Some(first), Some(last)) => last.requests == first.requests,
            _ => true,
        }
    }

    /// Stops reading and hands over what was read, oldest first.
    pub fn stop(&mut self) -> Vec<Totals> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let mut r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        r.drain(..).collect()
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One kind of stable's counts: (requests, events).
fn of_kind(t: &Totals, kind: EventKind) -> Option<TrackCounts> {
    match kind {
        EventKind::Errors => Some(TrackCounts::new(t.requests, t.errors)),
        EventKind::Slow => t.slow.map(|s| TrackCounts::new(t.requests, s)),
    }
}

impl Engine {
    /// Starts the baseline when the plan judges sequentially.
    pub(crate) fn start_baseline(&mut self) {
        let a = &self.plan.analysis;
        if a.method != Method::Sequential || self.plan.traffic.is_none() {
            return;
        }
        if let Some(source) = self.source.clone() {
            self.baseline = Baseline::start(source, a.interval, a.window);
        }
    }

    /// Before the first step of a fresh run: when the stages before it went
    /// by too fast for stable's baseline to be [`Baseline::enough`], reads
    /// on for at most `BASELINE_WAIT_INTERVALS` intervals and
    /// `BASELINE_WAIT_MAX` (the screen says so). Commands are heard meanwhile: a stop ends the wait, and
    /// their other effects (a slider weight) are handed back for the canary
    /// once it starts.
    pub(crate) async fn fill_baseline(
        &mut self,
    ) -> Result<Vec<super::command::Effect>, super::Stop> {
        let mut later = Vec::new();
        if !self.baseline.running() || self.resume.is_some() {
            return Ok(later);
        }
        let interval = self.plan.analysis.interval;
        let wait = (interval * BASELINE_WAIT_INTERVALS).min(BASELINE_WAIT_MAX);
        let until = tokio::time::Instant::now() + wait;
        if self.baseline.enough() {
            return Ok(later);
        }
        self.state.message = Some(format!(
            "reading stable's baseline before the first step (at most {})",
            humantime::format_duration(wait)
        ));
        self.publish();
        // Stable serving nothing (or a source without its counts) after
        // BASELINE_SPANS intervals: waiting longer would gain nothing.
        let idle_until = tokio::time::Instant::now() + interval * BASELINE_SPANS as u32;
        while !self.baseline.enough() && tokio::time::Instant::now() < until {
            if tokio::time::Instant::now() >= idle_until && self.baseline.idle() {
                break;
            }
            tokio::select! {
                biased;
                cmd = self.commands.recv() => later.push(self.interpret(cmd)?),
                () = tokio::time::sleep((interval / 4).max(Duration::from_millis(20))) => {}
            }
        }
        self.state.message = None;
        Ok(later)
    }

    /// Ends the baseline at the first step and journals it.
    pub(crate) fn end_baseline(&mut self) -> Result<(), super::Stop> {
        let stable = self.baseline.stop();
        if stable.is_empty() {
            return Ok(());
        }
        self.baseline_readings = stable.clone();
        self.record(Event::Baseline {
            interval_ms: self.plan.analysis.interval.as_millis() as u64,
            stable,
        })
    }

    /// After a clean rollback: stable now against stable before the first
    /// step, until decided, out of baseline, or `RECOVERY_LIMIT`.
    pub(crate) async fn check_recovery(&mut self, requested_at: DateTime<Utc>) {
        let a = self.plan.analysis.clone();
        if a.method != Method::Sequential {
            return;
        }
        let baseline = std::mem::take(&mut self.baseline_readings);
        if baseline.len() < 2 {
            let _ = self.record(Event::Note {
                message: "stable's recovery not checked: no baseline of stable was read before the first step".into(),
            });
            return;
        }
        let Some(start) = self.stable_totals().await else {
            return;
        };
        let mut kinds = vec![EventKind::Errors];
        if start.slow.is_some() && baseline.iter().all(|t| t.slow.is_some()) {
            kinds.push(EventKind::Slow);
        }
        let settings = match Settings::new(a.alpha / kinds.len() as f64, a.tolerance) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: "cutover", "recovery check: {e}");
                return;
            }
        };
        let mut checks = Vec::new();
        for &kind in &kinds {
            let base: Vec<TrackCounts> = baseline.iter().filter_map(|t| of_kind(t, kind)).collect();
            let Some(now) = of_kind(&start, kind) else {
                continue;
            };
            match Recovery::new(settings, &base, now) {
                Ok(r) => checks.push((kind, r)),
                Err(e) => {
                    let _ = self.record(Event::Note {
                        message: format!("stable's recovery not checked for {}: the baseline is not counts ({e})", kind_name(kind)),
                    });
                    return;
                }
            }
        }
        let policy = Sequential::config(&a).policy;
        let began = Instant::now();
        let mut last_requests = start.requests;
        let mut idle_readings = 0u32;
        self.state.recovery = Some(RecoveryView {
            summary: "checking stable against its rate before the canary".into(),
            recovered_ms: None,
            done: false,
        });
        self.publish();
        loop {
            if self.until(tokio::time::sleep(a.interval)).await.is_err() {
                self.end_recovery(RecoveryOutcome::Undecided, "stopped".into(), None);
                return;
            }
            let Some(now) = self.stable_totals().await else {
                return;
            };
            idle_readings = if now.requests == last_requests {
                idle_readings + 1
            } else {
                0
            };
            last_requests = now.requests;
            let idle = idle_readings >= RECOVERY_IDLE_READINGS;
            let mut records = Vec::new();
            let mut exhausted = false;
            for (kind, check) in checks.iter_mut() {
                let Some(counts) = of_kind(&now, *kind) else {
                    continue;
                };
                let (evidence, invalid) = match check.observe(counts) {
                    Ok(e) => (e, None),
                    Err(RecoveryError::BaselineExhausted { .. }) => {
                        exhausted = true;
                        continue;
                    }
                    Err(RecoveryError::Data(e)) => (check.evidence(), Some(e.to_string())),
                };
                let call = verdict(&evidence, settings, &policy, true);
                records.push(KindRecord {
                    kind: *kind,
                    readings: Vec::new(),
                    invalid,
                    evidence,
                    verdict: call,
                    more_requests: None,
                });
            }
            let failed = records.iter().any(|r| r.verdict == Call::Fail);
            let passed = records.len() == checks.len()
                && records.iter().all(|r| matches!(r.verdict, Call::Pass(_)));
            let elapsed = began.elapsed() >= RECOVERY_LIMIT;
            let outcome = if failed {
                Some(RecoveryOutcome::StillWorse)
            } else if passed {
                Some(RecoveryOutcome::Recovered)
            } else if exhausted || elapsed || idle {
                Some(RecoveryOutcome::Undecided)
            } else {
                None
            };
            let summary = if idle && outcome == Some(RecoveryOutcome::Undecided) && !exhausted {
                format!(
                    "stable's recovery undecided: stable served no request in the last {RECOVERY_IDLE_READINGS} readings"
                )
            } else {
                summary(outcome, &records, exhausted)
            };
            let after_ms = (outcome == Some(RecoveryOutcome::Recovered)).then(|| {
                (Utc::now() - requested_at)
                    .num_microseconds()
                    .map(|us| us.max(0) as f64 / 1000.0)
                    .unwrap_or(f64::MAX)
            });
            let _ = self.record(Event::Recovery {
                stable: now,
                kinds: records,
                outcome,
                recovered_ms: after_ms,
                summary: summary.clone(),
            });
            match outcome {
                Some(o) => {
                    self.end_recovery(o, summary, after_ms);
                    return;
                }
                None => {
                    self.state.recovery = Some(RecoveryView {
                        summary,
                        recovered_ms: None,
                        done: false,
                    });
                    self.publish();
                }
            }
        }
    }

    fn end_recovery(&mut self, outcome: RecoveryOutcome, summary: String, after_ms: Option<f64>) {
        let summary = if outcome == RecoveryOutcome::Undecided && summary == "stopped" {
            "stable's recovery check stopped before a decision".to_string()
        } else {
            summary
        };
        if outcome == RecoveryOutcome::StillWorse {
            tracing::warn!(target: "cutover", "{summary}");
        }
        self.state.recovery = Some(RecoveryView {
            summary,
            recovered_ms: after_ms,
            done: true,
        });
        self.publish();
    }

    /// Stable's cumulative counts now, if the source gives them.
    async fn stable_totals(&mut self) -> Option<Totals> {
        let sampling = self.sampler(self.plan.analysis.window, false);
        let result = self.until(sampling).await.ok()?;
        if let Some(e) = result.error {
            tracing::warn!(target: "cutover", "recovery check: stable could not be sampled: {e}");
            return None;
        }
        result.pair.stable.totals
    }
}

/// The recovery in one line.
fn summary(outcome: Option<RecoveryOutcome>, records: &[KindRecord], exhausted: bool) -> String {
    let each = |r: &KindRecord| {
        let name = kind_name(r.kind);
        match r.verdict {
            Call::Pass(PassBasis::Shown) => format!("{name} below its rate before"),
            Call::Pass(PassBasis::Bounded { ratio_high }) => {
                format!("{name} at most {} its rate before", ratio_text(ratio_high))
            }
            Call::Pass(PassBasis::Rate { rate_high }) => {
                format!("{name} rate at most {:.2}%", rate_high * 100.0)
            }
            Call::Fail => format!(
                "{name} at least {} its rate before",
                ratio_text(r.evidence.ratio_low)
            ),
            Call::Inconclusive => match r.evidence.ratio_high {
                Some(h) => format!(
                    "{name} {}–{} its rate before",
                    ratio_text(r.evidence.ratio_low),
                    ratio_text(h)
                ),
                None => format!(
                    "{name}: {} requests since, no comparison yet",
                    r.evidence.judged.canary.requests
                ),
            },
        }
    };
    let detail: Vec<String> = records.iter().map(each).collect();
    let detail = if detail.is_empty() {
        "no interval of it left to compare with".to_string()
    } else {
        detail.join(", ")
    };
    match outcome {
        Some(RecoveryOutcome::Recovered) => format!("stable recovered: {detail}"),
        Some(RecoveryOutcome::StillWorse) => {
            format!("stable still worse than before the canary: {detail}")
        }
        Some(RecoveryOutcome::Undecided) if exhausted => {
            format!("stable's recovery undecided, the baseline is used up: {detail}")
        }
        Some(RecoveryOutcome::Undecided) => format!("stable's recovery undecided: {detail}"),
        None => format!("checking stable: {detail}"),
    }
}
