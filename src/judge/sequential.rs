//! The sequential test on event counts per track: mixture likelihood ratios
//! (e-processes) on the canary/stable rate ratio, valid however often they are
//! looked at and while the canary's share of traffic changes.
//!
//! # Model
//! In one interval the canary served `n_c` requests with `x_c` events and
//! stable `n_s` with `x_s`. With per-request event probabilities `ρ·λ` (canary)
//! and `λ` (stable), where `λ` may change from interval to interval, an event
//! of the interval came from the canary with probability
//! `p(ρ) = n_c·ρ / (n_c·ρ + n_s)`, so the interval's likelihood for `ρ`, given
//! `x = x_c + x_s`, is the binomial `p(ρ)^x_c · (1 − p(ρ))^x_s`. The unknown `λ`
//! drops out, and the share `n_c / (n_c + n_s)` enters interval by interval, so
//! steps and the operator's slider are part of the model, not a disturbance.
//! This is the conditional (multinomial) view of Lindon & Malek, "Anytime-Valid
//! Inference for Multinomial Count Data" (NeurIPS 2022) and Lindon, Sanden,
//! Shirikian, "Rapid Regression Detection in Software Deployments through
//! Sequential Testing" (KDD 2022), with the mixture taken over `ρ` rather than
//! over the cell probabilities, because those move whenever the share does.
//!
//! # Validity
//! For fail, H0 is `ρ ≤ τ` (the tolerance). Each interval contributes the
//! factor `L(ρ₁) = (p(ρ₁)/p(τ))^x_c · ((1−p(ρ₁))/(1−p(τ)))^x_s` for an
//! alternative `ρ₁ > τ`. Under any `ρ ≤ τ`, given the past and the interval's
//! request counts, `E[L] ≤ 1`: with Poisson counts the conditional binomial
//! gives `E[L | x] = (p(ρ)·a + (1−p(ρ))·b)^x ≤ (p(τ)·a + (1−p(τ))·b)^x = 1`
//! (`a = p(ρ₁)/p(τ) > b`); with per-request Bernoulli counts
//! `E[a^x_c] = (1 + π_c(a−1))^n_c ≤ exp(n_c·π_c·(a−1))`, the Poisson value, so
//! the same bound holds. A product of such factors is a test supermartingale,
//! and so is a mixture of products over a prior on `ρ₁` (here a fixed grid in
//! `ln ρ`, so the mixture is a finite sum and exact). Ville's inequality (Ville,
//! "Étude critique de la notion de collectif", 1939) gives
//! `P(sup_t E_t ≥ 1/α) ≤ α`: the chance of ever failing a canary no worse than
//! `τ` × stable is at most `α`, whenever and however often one looks (Johari,
//! Koomen, Pekelis, Walsh, "Always Valid Inference", Operations Research 2022).
//! Pass is the mirror image (H0 `ρ ≥ τ`, alternatives below `τ`). The
//! interval for `ρ` inverts a two-sided mixture (`rule` explains how the
//! engine may use it for a pass).
//!
//! # Determinism
//! The state is a function of the readings in order: the same readings give
//! bit-identical evidence on the same platform (`replay`).

use serde::{Deserialize, Serialize};

use super::{Counts, DataError, Settings, Track, TrackCounts};

/// Spacing of the grid of rate ratios, in `ln ρ`.
const GRID_STEP: f64 = 0.05;
/// Grid points on each side of the tolerance: `ln ρ` from `ln τ − 7` to `ln τ + 7`.
const GRID_HALF: usize = 140;
/// The largest horizon `more_requests` looks at.
const MAX_HORIZON: u64 = 1 << 40;

/// The mixing distributions, as scales of half-normal (fail, pass) and normal
/// (interval) densities on the grid of `ln ρ`. Part of what a replay must
/// match; `Default` is what the judge uses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Priors {
    /// Scale of the half-normal on `ln(ρ/τ) > 0` mixed for fail. Small scales
    /// favour the modest regressions that need the most data (1.5×–5×); large
    /// ones pay a fixed few nats, which their fast-growing evidence hides.
    pub fail_scale: f64,
    /// Centre of the fail mixture's normal on `ln(ρ/τ)`, truncated to `> 0`.
    pub fail_centre: f64,
    /// Scale of the half-normal on `ln(ρ/τ) < 0` mixed for pass.
    pub pass_scale: f64,
    /// Scale of the normal on `ln ρ` (centred on 1) mixed for the interval.
    pub interval_scale: f64,
}

impl Default for Priors {
    fn default() -> Priors {
        Priors {
            fail_scale: 1.2,
            fail_centre: 0.0,
            pass_scale: 0.5,
            interval_scale: 2.0,
        }
    }
}

/// What the e-values alone say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The fail evidence reached 1/alpha: the canary's rate is above
    /// `tolerance` × stable's.
    Fail,
    /// The pass evidence reached 1/alpha: the canary's rate is below
    /// `tolerance` × stable's.
    Pass,
    /// Neither yet.
    Open,
}

/// The state of the evidence after a reading. Logs of e-values are kept so
/// that JSON can carry them (an e-value can overflow `f64`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Requests and events judged so far: the sum of accepted intervals.
    pub judged: Counts,
    /// ln of the e-value toward fail; the test fails at `ln(1/alpha)`.
    pub ln_e_fail: f64,
    /// ln of the e-value toward pass; shown at `ln(1/alpha)`.
    pub ln_e_pass: f64,
    /// The canary/stable rate ratio that fits best (on the grid; one of the
    /// grid's ends, about 1/1000 or 1000 × tolerance, while every compared
    /// event fell on one track), `None` before any event in an interval where
    /// both tracks had requests.
    pub ratio: Option<f64>,
    /// Lower end of the `1 − alpha` anytime-valid interval for the ratio.
    pub ratio_low: f64,
    /// Upper end of that interval; `None` when unbounded.
    pub ratio_high: Option<f64>,
    /// What the e-values say.
    pub decision: Decision,
}

/// One journaled step of a test, for `replay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// Cumulative counts read from the source.
    Counts(Counts),
    /// A new origin for the cumulative counts, with no evidence: the start of
    /// the canary, or after a counter reset was reported.
    Rebase(Counts),
}

/// One comparison of canary against stable for one event kind.
#[derive(Clone, Debug)]
pub struct SequentialTest {
    settings: Settings,
    /// `ρ` at each grid point, ascending; `rho[GRID_HALF] == tolerance`.
    rho: Vec<f64>,
    ln_rho: Vec<f64>,
    /// ln prior weights; `-inf` where a mixture has no mass.
    ln_prior_fail: Vec<f64>,
    ln_prior_pass: Vec<f64>,
    ln_prior_interval: Vec<f64>,
    /// Log-likelihood of each grid point, up to a constant shared by all.
    loglik: Vec<f64>,
    origin: Counts,
    judged: Counts,
    /// Canary share of the last interval with requests on both tracks.
    last_share: Option<f64>,
    failed: bool,
}

impl SequentialTest {
    /// A test with the default priors, with cumulative counts starting at zero
    /// (call `rebase` with the counts at the start of the canary).
    pub fn new(settings: Settings) -> SequentialTest {
        SequentialTest::with_priors(settings, Priors::default())
    }

    /// A test with the given priors.
    pub fn with_priors(settings: Settings, priors: Priors) -> SequentialTest {
        let g = 2 * GRID_HALF + 1;
        let ln_tol = settings.tolerance.ln();
        let psi: Vec<f64> = (0..g)
            .map(|j| (j as f64 - GRID_HALF as f64) * GRID_STEP)
            .collect();
        let ln_rho: Vec<f64> = psi.iter().map(|p| ln_tol + p).collect();
        let rho = ln_rho.iter().map(|l| l.exp()).collect();
        let half_normal = |above: bool, centre: f64, scale: f64| {
            normalised(psi.iter().map(|&p| {
                if (above && p > 0.0) || (!above && p < 0.0) {
                    -(p - centre) * (p - centre) / (2.0 * scale * scale)
                } else {
                    f64::NEG_INFINITY
                }
            }))
        };
        let ln_prior_fail = half_normal(true, priors.fail_centre, priors.fail_scale);
        let ln_prior_pass = half_normal(false, 0.0, priors.pass_scale);
        let s = priors.interval_scale;
        let ln_prior_interval = normalised(ln_rho.iter().map(|l| -l * l / (2.0 * s * s)));
        SequentialTest {
            settings,
            rho,
            ln_rho,
            ln_prior_fail,
            ln_prior_pass,
            ln_prior_interval,
            loglik: vec![0.0; g],
            origin: Counts::default(),
            judged: Counts::default(),
            last_share: None,
            failed: false,
        }
    }

    /// The settings this test judges with.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Takes `counts` as the new origin of the cumulative counters, adding no
    /// evidence: at the start, and after a reported counter reset.
    pub fn rebase(&mut self, counts: Counts) {
        self.origin = counts;
    }

    /// Whether the fail evidence ever reached 1/alpha. Ville's bound covers
    /// the supremum, so a fail stands.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Judges the interval since the last accepted reading.
    ///
    /// # Errors
    /// `DataError` when a counter went down or an interval has more events than
    /// requests; the state is then unchanged, so the next valid reading covers
    /// this interval too.
    pub fn observe(&mut self, reading: Counts) -> Result<Evidence, DataError> {
        let c = delta(Track::Canary, self.origin.canary, reading.canary)?;
        let s = delta(Track::Stable, self.origin.stable, reading.stable)?;
        self.origin = reading;
        self.judged.canary.requests += c.requests;
        self.judged.canary.events += c.events;
        self.judged.stable.requests += s.requests;
        self.judged.stable.events += s.events;
        if c.requests > 0 && s.requests > 0 {
            self.last_share = Some(c.requests as f64 / (c.requests + s.requests) as f64);
            let x = (c.events + s.events) as f64;
            if x > 0.0 {
                // ln p(ρ) = ln ρ + ln r − ln(1 + ρ r) and ln(1 − p(ρ)) = −ln(1 + ρ r),
                // r = n_c / n_s; terms equal at every grid point are dropped.
                let r = c.requests as f64 / s.requests as f64;
                let xc = c.events as f64;
                for ((l, &rho), &ln_rho) in self.loglik.iter_mut().zip(&self.rho).zip(&self.ln_rho)
                {
                    *l += xc * ln_rho - x * (rho * r).ln_1p();
                }
            }
        }
        // Intervals where one track had no requests carry no comparison: their
        // counts are kept in `judged` but add nothing to the evidence.
        let evidence = self.evidence();
        if evidence.decision == Decision::Fail {
            self.failed = true;
        }
        Ok(evidence)
    }

    /// The evidence as it stands.
    pub fn evidence(&self) -> Evidence {
        let thr = self.settings.ln_threshold();
        let at_tol = self.loglik[GRID_HALF];
        let ln_e_fail = self.ln_mixture(&self.ln_prior_fail) - at_tol;
        let ln_e_pass = self.ln_mixture(&self.ln_prior_pass) - at_tol;
        let decision = if ln_e_fail >= thr {
            Decision::Fail
        } else if ln_e_pass >= thr {
            Decision::Pass
        } else {
            Decision::Open
        };
        let best = self.best();
        // The interval: ratios where the two-sided mixture against them stays
        // below 1/alpha. The log-likelihood is concave in ln ρ, so that set is an
        // interval; widening by one grid step each side covers the ratios
        // between grid points.
        let cut = self.ln_mixture(&self.ln_prior_interval) - thr;
        let inside = |j: &usize| self.loglik[*j] > cut;
        let last = self.rho.len() - 1;
        let lo = (0..=last).find(inside);
        let hi = (0..=last).rev().find(inside);
        let (lo, hi) = match (lo, hi, best) {
            (Some(lo), Some(hi), _) => (lo, hi),
            (_, _, Some(m)) => (m, m),
            _ => (0, last),
        };
        let ratio_low = if lo == 0 { 0.0 } else { self.rho[lo - 1] };
        let ratio_high = if hi == last {
            None
        } else {
            Some(self.rho[hi + 1])
        };
        Evidence {
            judged: self.judged,
            ln_e_fail,
            ln_e_pass,
            ratio: best.map(|m| self.rho[m]),
            ratio_low,
            ratio_high,
            decision,
        }
    }

    /// About how many more requests (both tracks together) until fail or pass
    /// is reached, if the canary/stable ratio is the current best fit, stable's
    /// rate is what it has been so far, and the canary keeps the share of the
    /// last interval. `None` when no event has been compared yet, the best fit
    /// is the tolerance itself, or the answer is beyond 2^40 requests. An
    /// expectation (the drift of each mixed likelihood ratio), not a promise:
    /// the random walk of the evidence spreads around it.
    pub fn more_requests(&self) -> Option<u64> {
        let m = self.best()?;
        let w = self.last_share.filter(|w| *w > 0.0 && *w < 1.0)?;
        let prior = match m.cmp(&GRID_HALF) {
            std::cmp::Ordering::Greater => &self.ln_prior_fail,
            std::cmp::Ordering::Less => &self.ln_prior_pass,
            std::cmp::Ordering::Equal => return None,
        };
        let stable = self.judged.stable;
        let lambda = (stable.events as f64 + 0.5) / (stable.requests as f64 + 1.0);
        let r_c = (w * self.rho[m] * lambda).min(w);
        let r_s = (1.0 - w) * lambda.min(1.0);
        let odds = w / (1.0 - w);
        let ln_p = |rho: f64| {
            (
                (odds * rho).ln() - (odds * rho).ln_1p(),
                -(odds * rho).ln_1p(),
            )
        };
        let (p0, q0) = ln_p(self.settings.tolerance);
        let drift: Vec<f64> = self
            .rho
            .iter()
            .map(|&rho| {
                let (p, q) = ln_p(rho);
                r_c * (p - p0) + r_s * (q - q0)
            })
            .collect();
        let at_tol = self.loglik[GRID_HALF];
        let thr = self.settings.ln_threshold();
        let reached = |n: u64| {
            let n = n as f64;
            log_sum_exp(
                prior
                    .iter()
                    .zip(&self.loglik)
                    .zip(&drift)
                    .map(|((p, l), d)| p + l - at_tol + n * d),
            ) >= thr
        };
        if reached(0) {
            return Some(0);
        }
        let mut hi = 1u64;
        while !reached(hi) {
            hi = hi.checked_mul(2).filter(|h| *h <= MAX_HORIZON)?;
        }
        let mut lo = hi / 2;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reached(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// The grid point of the largest likelihood, `None` before any compared event.
    fn best(&self) -> Option<usize> {
        if self.loglik.iter().all(|l| *l == 0.0) {
            return None;
        }
        let mut m = 0;
        for (j, l) in self.loglik.iter().enumerate() {
            if *l > self.loglik[m] {
                m = j;
            }
        }
        Some(m)
    }

    /// ln Σ_j prior_j · exp(loglik_j).
    fn ln_mixture(&self, ln_prior: &[f64]) -> f64 {
        log_sum_exp(ln_prior.iter().zip(&self.loglik).map(|(p, l)| p + l))
    }
}

/// The evidence after each reading, recomputed from the readings alone (as
/// journaled): the same readings give the same sequence, bit for bit. A
/// reading that is invalid gives its error and changes nothing, as in
/// `SequentialTest::observe`; a `Rebase` gives the evidence as it stands.
pub fn replay<'a>(
    settings: Settings,
    readings: impl IntoIterator<Item = &'a Reading>,
) -> Vec<Result<Evidence, DataError>> {
    let mut test = SequentialTest::new(settings);
    readings
        .into_iter()
        .map(|r| match r {
            Reading::Counts(c) => test.observe(*c),
            Reading::Rebase(c) => {
                test.rebase(*c);
                Ok(test.evidence())
            }
        })
        .collect()
}

/// The interval's counts on one track, checked.
fn delta(track: Track, from: TrackCounts, to: TrackCounts) -> Result<TrackCounts, DataError> {
    let down = |what, from, to| DataError::CounterDecreased {
        track,
        what,
        from,
        to,
    };
    let requests = to
        .requests
        .checked_sub(from.requests)
        .ok_or_else(|| down("requests", from.requests, to.requests))?;
    let events = to
        .events
        .checked_sub(from.events)
        .ok_or_else(|| down("events", from.events, to.events))?;
    if events > requests {
        return Err(DataError::MoreEventsThanRequests {
            track,
            requests,
            events,
        });
    }
    Ok(TrackCounts { requests, events })
}

/// Log-weights shifted so that their exponentials sum to one.
fn normalised(ln_w: impl Iterator<Item = f64>) -> Vec<f64> {
    let v: Vec<f64> = ln_w.collect();
    let total = log_sum_exp(v.iter().copied());
    v.into_iter().map(|w| w - total).collect()
}

/// ln Σ exp(v), in one pass, without overflow; `-inf` for no terms.
pub(crate) fn log_sum_exp(values: impl Iterator<Item = f64>) -> f64 {
    let mut max = f64::NEG_INFINITY;
    let mut sum = 0.0;
    for v in values {
        if v == f64::NEG_INFINITY {
            continue;
        }
        if v > max {
            sum = sum * (max - v).exp() + 1.0;
            max = v;
        } else {
            sum += (v - max).exp();
        }
    }
    if sum == 0.0 {
        f64::NEG_INFINITY
    } else {
        max + sum.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::sim::{scenarios, simulate};

    fn counts(cr: u64, ce: u64, sr: u64, se: u64) -> Counts {
        Counts {
            canary: TrackCounts::new(cr, ce),
            stable: TrackCounts::new(sr, se),
        }
    }

    #[test]
    fn no_events_is_no_evidence_and_an_unbounded_interval() {
        let mut t = SequentialTest::new(Settings::default());
        let e = t.observe(counts(500, 0, 9500, 0)).unwrap();
        assert!(
            e.ln_e_fail.abs() < 1e-12 && e.ln_e_pass.abs() < 1e-12,
            "{e:?}"
        );
        assert_eq!(e.ratio, None);
        assert_eq!((e.ratio_low, e.ratio_high), (0.0, None));
        assert_eq!(e.decision, Decision::Open);
        assert_eq!(t.more_requests(), None);
    }

    #[test]
    fn counter_going_down_or_events_above_requests_is_an_error_that_changes_nothing() {
        let mut t = SequentialTest::new(Settings::default());
        t.observe(counts(100, 1, 1900, 19)).unwrap();
        let before = t.evidence();
        let reset = t.observe(counts(5, 0, 2000, 20)).unwrap_err();
        assert!(matches!(
            reset,
            DataError::CounterDecreased {
                track: Track::Canary,
                what: "requests",
                from: 100,
                to: 5
            }
        ));
        let events_down = t.observe(counts(150, 0, 2000, 20)).unwrap_err();
        assert!(matches!(
            events_down,
            DataError::CounterDecreased { what: "events", .. }
        ));
        let skew = t.observe(counts(100, 3, 2000, 20)).unwrap_err();
        assert!(matches!(
            skew,
            DataError::MoreEventsThanRequests {
                track: Track::Canary,
                requests: 0,
                events: 2
            }
        ));
        assert_eq!(t.evidence(), before);
        // The next valid reading covers the skipped interval as well.
        let e = t.observe(counts(200, 5, 3800, 40)).unwrap();
        assert_eq!(e.judged, counts(200, 5, 3800, 40));
        // After a reported reset the engine rebases and judging goes on.
        t.rebase(counts(0, 0, 3800, 40));
        let e = t.observe(counts(100, 1, 5700, 60)).unwrap();
        assert_eq!(e.judged, counts(300, 6, 5700, 60));
    }

    #[test]
    fn a_canary_failing_every_request_fails_within_a_handful_of_its_requests() {
        let mut t = SequentialTest::new(Settings::default());
        let mut c = Counts::default();
        let mut fails_at = None;
        for i in 1..=20u64 {
            // One canary request in twenty, each a 5xx; stable at 1 %.
            c.canary = TrackCounts::new(i, i);
            c.stable = TrackCounts::new(19 * i, (19 * i) / 100);
            if t.observe(c).unwrap().decision == Decision::Fail {
                fails_at = Some(i);
                break;
            }
        }
        let at = fails_at.expect("no fail in 20 canary requests");
        assert!(at <= 4, "failed only after {at} failing canary requests");
        assert!(t.has_failed());
    }

    #[test]
    fn a_changing_share_with_a_changing_rate_is_not_mistaken_for_a_regression() {
        // Busy, error-prone intervals at 50 % share and quiet ones at 1 %:
        // pooled, canary shows 8× stable's rate; interval by interval the two
        // are identical.
        let mut t = SequentialTest::new(Settings::default());
        let mut c = Counts::default();
        for _ in 0..40 {
            c.canary.requests += 1000;
            c.canary.events += 50;
            c.stable.requests += 1000;
            c.stable.events += 50;
            t.observe(c).unwrap();
            c.canary.requests += 100;
            c.stable.requests += 9900;
            c.stable.events += 10;
            t.observe(c).unwrap();
        }
        let pooled = (c.canary.events as f64 / c.canary.requests as f64)
            / (c.stable.events as f64 / c.stable.requests as f64);
        assert!(pooled > 5.0, "pooled ratio {pooled}");
        let e = t.evidence();
        assert!(e.ln_e_fail < 0.0, "fail evidence {}", e.ln_e_fail);
        let ratio = e.ratio.unwrap();
        assert!((0.9..1.1).contains(&ratio), "ratio {ratio}");
        assert!(e.ratio_low < 1.0 && e.ratio_high.unwrap() > 1.0, "{e:?}");
        assert!(e.ratio_high.unwrap() < 1.3, "{e:?}");
    }

    #[test]
    fn the_interval_narrows_around_the_true_ratio_and_pass_needs_much_data() {
        let mut t = SequentialTest::new(Settings::new(0.01, 1.1).unwrap());
        let mut c = Counts::default();
        let mut widths = Vec::new();
        for _ in 0..200 {
            // 20 % share, stable 2 %, canary 1 %: ratio 0.5.
            c.canary.requests += 200;
            c.canary.events += 2;
            c.stable.requests += 800;
            c.stable.events += 16;
            let e = t.observe(c).unwrap();
            widths.push(
                e.ratio_high
                    .map_or(f64::INFINITY, |h| h / e.ratio_low.max(1e-9)),
            );
        }
        let e = t.evidence();
        assert!(e.ratio_low < 0.5 && e.ratio_high.unwrap() > 0.5, "{e:?}");
        assert!(widths.windows(2).all(|w| w[1] <= w[0] * 1.0001));
        assert_eq!(e.decision, Decision::Pass);
        assert!(e.ln_e_fail < 0.0);
    }

    #[test]
    fn more_requests_shrinks_as_evidence_builds() {
        let mut t = SequentialTest::new(Settings::default());
        let mut c = Counts::default();
        let mut estimates = Vec::new();
        for _ in 0..40 {
            // 5 % share, stable about 1 %, canary 4 %.
            c.canary.requests += 50;
            c.canary.events += 2;
            c.stable.requests += 950;
            c.stable.events += 10;
            let e = t.observe(c).unwrap();
            if e.decision == Decision::Fail {
                break;
            }
            estimates.push(t.more_requests().unwrap());
        }
        assert!(estimates.len() >= 2, "{estimates:?}");
        assert!(estimates.windows(2).all(|w| w[1] < w[0]), "{estimates:?}");
        // One reading before the fail, the estimate is within a few readings.
        assert!(*estimates.last().unwrap() <= 3_000, "{estimates:?}");
    }

    #[test]
    fn replay_from_cumulative_counts_reproduces_every_verdict_exactly() {
        let all = scenarios(20_000);
        let scenario = all
            .iter()
            .find(|s| s.name.starts_with("1 % → 3 % errors"))
            .unwrap();
        let test = SequentialTest::new(Settings::default());
        let run = simulate(scenario, &test, 7);
        assert!(run.rolled_back_at.is_some());
        let mut readings = vec![Reading::Rebase(Counts::default())];
        readings.extend(run.readings.iter().map(|c| Reading::Counts(*c)));
        let replayed = replay(Settings::default(), &readings);
        assert_eq!(
            replayed[0],
            Ok(SequentialTest::new(Settings::default()).evidence())
        );
        let replayed: Vec<Evidence> = replayed[1..].iter().map(|r| r.clone().unwrap()).collect();
        assert_eq!(replayed, run.evidence);
        assert_eq!(replayed.last().unwrap().decision, Decision::Fail);
        // Through JSON, as the journal carries it, the evidence is unchanged.
        let json = serde_json::to_string(&run.evidence).unwrap();
        let back: Vec<Evidence> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, run.evidence);
        // A corrupt reading in the journal is reported and skipped: the rest
        // of the verdicts are the same.
        let mut with_bad = readings.clone();
        with_bad.insert(5, Reading::Counts(Counts::default()));
        let again = replay(Settings::default(), &with_bad);
        assert!(again[5].is_err());
        let again: Vec<Evidence> = again[1..].iter().filter_map(|r| r.clone().ok()).collect();
        assert_eq!(again, run.evidence);
        // Another tolerance decides differently on the same counts.
        let stricter = replay(Settings::new(0.01, 3.5).unwrap(), &readings);
        assert!(stricter
            .iter()
            .all(|r| r.as_ref().unwrap().decision != Decision::Fail));
    }

    #[test]
    fn mean_of_evidence_is_the_log_of_the_mean() {
        let m = crate::judge::ln_mean_evidence(&[0.0, 2.0_f64.ln()]);
        assert!((m - 1.5_f64.ln()).abs() < 1e-12);
        assert_eq!(crate::judge::ln_mean_evidence(&[]), 0.0);
    }
}
