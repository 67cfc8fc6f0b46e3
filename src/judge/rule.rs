//! The pass rule: what a pass may honestly claim when events are rare, and an
//! anytime-valid bound on the canary's own event rate.
//!
//! Fail needs no rule beyond the e-value: it stands as soon as the fail
//! evidence reaches 1/alpha. Pass is harder. Showing `ρ < tolerance` with a
//! 5 % canary and 1 % errors takes millions of requests when the canary is
//! exactly as good as stable (the two hypotheses differ by 10 % in a rate that
//! is itself rare), so a rule that passes only then would hold every canary
//! for hours. A rule that passes when "nothing was detected" claims nothing at
//! all. Between the two, a pass here always states what was shown, at the same
//! confidence `1 − alpha`:
//!
//! - `PassBasis::Shown`: the pass e-value reached 1/alpha, the canary's rate is
//!   below `tolerance` × stable's.
//! - `PassBasis::Bounded`: the step has baked, the canary saw enough requests,
//!   and the anytime-valid interval for the ratio ends at or below
//!   `max_ratio`: no regression larger than `ratio_high` × stable.
//! - `PassBasis::Rate`: the step has baked and the canary's own event rate is
//!   shown below `max_rate`, whatever stable's: for services with almost no
//!   events, where a ratio cannot be bounded.
//!
//! The engine picks the policy; each basis carries the number it shows so the
//! journal and the screen can say it.

use serde::{Deserialize, Serialize};
use statrs::function::beta::ln_beta;

use super::{Decision, Evidence, Settings, TrackCounts};

/// When a pass is allowed short of `Shown`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassPolicy {
    /// Pass once baked when the ratio's interval ends at or below this
    /// (2.0: a canary shown to have at most twice stable's rate passes).
    /// `None`: no bounded pass.
    pub max_ratio: Option<f64>,
    /// Pass once baked when the canary's own rate is shown below this
    /// fraction of requests (0.001: 0.1 %). `None`: no pass on the rate alone.
    pub max_rate: Option<f64>,
    /// Canary requests judged before a bounded or rate pass: the exposure a
    /// pass needs whatever the bounds say.
    pub min_canary_requests: u64,
}

impl Default for PassPolicy {
    fn default() -> PassPolicy {
        PassPolicy {
            max_ratio: Some(2.0),
            max_rate: None,
            min_canary_requests: 100,
        }
    }
}

/// What a pass rests on, with the number it shows at confidence `1 − alpha`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "basis")]
pub enum PassBasis {
    /// The canary's rate is below `tolerance` × stable's.
    Shown,
    /// The canary's rate is at most `ratio_high` × stable's.
    Bounded {
        /// The interval's upper end.
        ratio_high: f64,
    },
    /// The canary's own event rate is at most `rate_high`.
    Rate {
        /// The rate's upper bound, as a fraction of requests.
        rate_high: f64,
    },
}

/// The judge's verdict for one event kind.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Roll back: the canary's rate is above `tolerance` × stable's.
    Fail,
    /// Go on, with what was shown.
    Pass(PassBasis),
    /// Not yet.
    Inconclusive,
}

/// The verdict on `evidence` under `policy`; `baked` says the step's bake time
/// is over. Fail does not wait for the bake; no pass comes before it.
///
/// The chance of a false fail stays at most `settings.alpha`. Each pass basis
/// is a `1 − alpha` statement of its own; allowing several makes a wrong pass
/// at most `alpha` per basis.
pub fn verdict(
    evidence: &Evidence,
    settings: Settings,
    policy: &PassPolicy,
    baked: bool,
) -> Verdict {
    match evidence.decision {
        Decision::Fail => return Verdict::Fail,
        Decision::Pass if baked => return Verdict::Pass(PassBasis::Shown),
        _ => {}
    }
    if !baked || evidence.judged.canary.requests < policy.min_canary_requests {
        return Verdict::Inconclusive;
    }
    if let (Some(max), Some(high)) = (policy.max_ratio, evidence.ratio_high) {
        if high <= max {
            return Verdict::Pass(PassBasis::Bounded { ratio_high: high });
        }
    }
    if let Some(max) = policy.max_rate {
        let high = canary_rate_upper(evidence.judged.canary, settings.alpha);
        if high <= max {
            return Verdict::Pass(PassBasis::Rate { rate_high: high });
        }
    }
    Verdict::Inconclusive
}

/// An anytime-valid `1 − alpha` upper bound on one track's event probability
/// per request from its counts (`events ≤ requests`; 1.0 for no requests).
///
/// Robbins' beta-binomial mixture martingale with a Jeffreys Beta(½, ½) prior
/// (Robbins, "Statistical methods related to the law of the iterated
/// logarithm", Ann. Math. Statist. 1970; Howard, Ramdas, McAuliffe, Sekhon,
/// "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann.
/// Statist. 2021): the bound is the largest `p` where
/// `B(x+½, n−x+½) / (B(½,½) · p^x (1−p)^(n−x))` stays below 1/alpha.
/// Assumes the probability is the same for every request.
pub fn canary_rate_upper(counts: TrackCounts, alpha: f64) -> f64 {
    let n = counts.requests as f64;
    let x = (counts.events.min(counts.requests)) as f64;
    if counts.requests == 0 || x == n {
        return 1.0;
    }
    let thr = -alpha.ln();
    let ln_marginal = ln_beta(x + 0.5, n - x + 0.5) - ln_beta(0.5, 0.5);
    let ln_m = |p: f64| {
        let at_p = if x > 0.0 { x * p.ln() } else { 0.0 } + (n - x) * (-p).ln_1p();
        ln_marginal - at_p
    };
    // ln_m rises from its minimum at p = x/n towards +inf at p = 1.
    let (mut lo, mut hi) = (x / n, 1.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if ln_m(mid) < thr {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{Counts, SequentialTest};

    fn evidence_after(
        rounds: u64,
        canary: (u64, u64),
        stable: (u64, u64),
        settings: Settings,
    ) -> Evidence {
        let mut t = SequentialTest::new(settings);
        let mut c = Counts::default();
        for _ in 0..rounds {
            c.canary.requests += canary.0;
            c.canary.events += canary.1;
            c.stable.requests += stable.0;
            c.stable.events += stable.1;
            t.observe(c).unwrap();
        }
        t.evidence()
    }

    #[test]
    fn fail_does_not_wait_for_the_bake_and_pass_does() {
        let s = Settings::default();
        let bad = evidence_after(3, (10, 10), (190, 2), s);
        assert_eq!(
            verdict(&bad, s, &PassPolicy::default(), false),
            Verdict::Fail
        );
        let good = evidence_after(100, (500, 2), (500, 10), s);
        assert_eq!(good.decision, Decision::Pass);
        assert_eq!(
            verdict(&good, s, &PassPolicy::default(), false),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict(&good, s, &PassPolicy::default(), true),
            Verdict::Pass(PassBasis::Shown)
        );
    }

    #[test]
    fn a_bounded_pass_states_the_ratio_it_excluded() {
        let s = Settings::new(0.01, 1.1).unwrap();
        // Identical 1 % rates at 10 % share: nothing shown below 1.1, but
        // enough events to bound the ratio.
        let e = evidence_after(200, (100, 1), (900, 9), s);
        assert_eq!(e.decision, Decision::Open);
        let high = e.ratio_high.unwrap();
        assert!(high > 1.1 && high < 2.0, "{e:?}");
        let policy = PassPolicy::default();
        assert_eq!(
            verdict(&e, s, &policy, true),
            Verdict::Pass(PassBasis::Bounded { ratio_high: high })
        );
        let strict = PassPolicy {
            max_ratio: Some(1.2),
            ..policy
        };
        assert_eq!(verdict(&e, s, &strict, true), Verdict::Inconclusive);
        let exposure = PassPolicy {
            min_canary_requests: 1_000_000,
            ..policy
        };
        assert_eq!(verdict(&e, s, &exposure, true), Verdict::Inconclusive);
    }

    #[test]
    fn with_no_events_at_all_only_a_rate_pass_is_possible() {
        let s = Settings::default();
        let e = evidence_after(200, (100, 0), (900, 0), s);
        assert_eq!(e.ratio_high, None);
        assert_eq!(
            verdict(&e, s, &PassPolicy::default(), true),
            Verdict::Inconclusive
        );
        let policy = PassPolicy {
            max_rate: Some(0.001),
            ..PassPolicy::default()
        };
        match verdict(&e, s, &policy, true) {
            Verdict::Pass(PassBasis::Rate { rate_high }) => {
                assert!(rate_high <= 0.001 && rate_high > 0.0)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_rate_bound_is_above_the_observed_rate_and_tightens_with_exposure() {
        let a = 0.01;
        assert_eq!(canary_rate_upper(TrackCounts::new(0, 0), a), 1.0);
        assert_eq!(canary_rate_upper(TrackCounts::new(7, 7), a), 1.0);
        let mut last = 1.0;
        for n in [100, 1_000, 10_000, 100_000] {
            let u = canary_rate_upper(TrackCounts::new(n, 0), a);
            assert!(u < last && u > 0.0, "{n}: {u}");
            // Zero events: the bound is about ln(1/alpha) / n, up to the mixture's cost.
            assert!(u * n as f64 > 4.6 && u * n as f64 <= 12.0, "{n}: {u}");
            last = u;
        }
        let u = canary_rate_upper(TrackCounts::new(10_000, 100), a);
        assert!(u > 0.01 && u < 0.016, "{u}");
    }

    #[test]
    fn the_rate_bound_covers_the_true_rate_over_a_whole_stream() {
        // Anytime coverage: over 300 streams of 5,000 requests at 2 %, the
        // bound dips below 2 % in at most a few (alpha 5 %: at most 15 expected).
        let mut misses = 0;
        for seed in 0..300 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut c = TrackCounts::default();
            let mut missed = false;
            for _ in 0..50 {
                for _ in 0..100 {
                    c.requests += 1;
                    c.events += u64::from(rng.f64() < 0.02);
                }
                missed |= canary_rate_upper(c, 0.05) < 0.02;
            }
            misses += u32::from(missed);
        }
        assert!(misses <= 15, "{misses}/300");
    }
}
