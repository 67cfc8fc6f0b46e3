//! A seeded, deterministic simulation of canary and stable request streams for
//! the judge: per-request random assignment at the interval's canary share,
//! per-request Bernoulli errors or log-normal latencies, the judge fed
//! cumulative counts at the end of each interval. Used by the unit tests (few
//! runs) and by `benches/judge.rs` (1,000 runs per scenario).

use statrs::distribution::{Beta, ContinuousCDF};
use statrs::function::erf::{erfc, erfc_inv};

use super::sequential::SequentialTest;
use super::{Counts, Decision, EventKind, Evidence};

/// One track's behaviour: each request fails with `error_rate`; its latency is
/// log-normal with median `latency_median_ms` and log-scale `latency_sigma`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackModel {
    /// Probability that a request gets a 5xx, in [0, 1].
    pub error_rate: f64,
    /// Median latency, milliseconds.
    pub latency_median_ms: f64,
    /// Standard deviation of ln(latency).
    pub latency_sigma: f64,
}

impl TrackModel {
    /// A track failing `error_rate` of requests, latency 50 ms median, σ 0.5.
    pub fn errors(error_rate: f64) -> TrackModel {
        TrackModel {
            error_rate,
            latency_median_ms: 50.0,
            latency_sigma: 0.5,
        }
    }

    /// A track with no errors whose log-normal latency (σ 0.5) exceeds
    /// `slow_ms` on `fraction` of requests (in (0, 1)).
    pub fn slow(fraction: f64, slow_ms: f64) -> TrackModel {
        let sigma = 0.5;
        // z with P(Z > z) = fraction, for a standard normal Z.
        let z = std::f64::consts::SQRT_2 * erfc_inv(2.0 * fraction);
        TrackModel {
            error_rate: 0.0,
            latency_median_ms: slow_ms / (sigma * z).exp(),
            latency_sigma: sigma,
        }
    }

    /// The probability that a request is slower than `slow_ms`.
    pub fn slow_fraction(&self, slow_ms: f64) -> f64 {
        let z = (slow_ms / self.latency_median_ms).ln() / self.latency_sigma;
        0.5 * erfc(z / std::f64::consts::SQRT_2)
    }

    /// The latency whose cumulative probability is `u` in [0, 1), in ms.
    fn latency_ms(&self, u: f64) -> f64 {
        let z = -std::f64::consts::SQRT_2 * erfc_inv(2.0 * u);
        self.latency_median_ms * (self.latency_sigma * z).exp()
    }
}

/// The canary's share of requests over time.
#[derive(Clone, Debug, PartialEq)]
pub enum Share {
    /// The same share throughout, in [0, 1].
    Fixed(f64),
    /// Steps of (share, requests at it); the last step is held.
    Steps(Vec<(f64, u64)>),
    /// The operator's slider: a new share drawn uniformly in [low, high] every
    /// `every` intervals.
    Slider {
        /// Lowest share.
        low: f64,
        /// Highest share.
        high: f64,
        /// Intervals between moves.
        every: u32,
    },
}

/// A simulated canary.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Name in the bench's table.
    pub name: String,
    /// Stable's behaviour.
    pub stable: TrackModel,
    /// The canary's behaviour.
    pub canary: TrackModel,
    /// The canary's share over time.
    pub share: Share,
    /// What is counted as an event.
    pub event: EventKind,
    /// The slow-request threshold, ms (for `EventKind::Slow`).
    pub slow_ms: f64,
    /// Requests (both tracks) between two readings.
    pub requests_per_interval: u32,
    /// The canary's length, in requests (both tracks).
    pub max_requests: u64,
    /// Both tracks' error rates swing together over time as
    /// `rate × exp(amplitude × sin(2π × requests / period))`: (amplitude, period).
    pub swing: Option<(f64, u64)>,
}

impl Scenario {
    /// Whether the canary is worse than stable in this scenario's event kind.
    pub fn canary_is_worse(&self) -> bool {
        let (s, c) = match self.event {
            EventKind::Errors => (self.stable.error_rate, self.canary.error_rate),
            EventKind::Slow => (
                self.stable.slow_fraction(self.slow_ms),
                self.canary.slow_fraction(self.slow_ms),
            ),
        };
        c > s
    }
}

/// One simulated canary.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Total requests (both tracks) at the reading where the test failed.
    pub rolled_back_at: Option<u64>,
    /// Total requests at the first reading whose interval for the ratio ended
    /// at or below `PASS_RATIO` (a bounded pass, bake aside).
    pub bounded_at: Option<u64>,
    /// Total requests at the first reading where the pass evidence reached
    /// 1/alpha (the canary shown below the tolerance).
    pub shown_at: Option<u64>,
    /// The cumulative counts read at each interval's end, up to the fail.
    pub readings: Vec<Counts>,
    /// The evidence after each reading.
    pub evidence: Vec<Evidence>,
}

/// Runs `scenario` once with a fresh copy of `test`, from `seed`. Stops at the
/// first fail or at `max_requests`.
pub fn simulate(scenario: &Scenario, test: &SequentialTest, seed: u64) -> Run {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut test = test.clone();
    let mut counts = Counts::default();
    let mut run = Run {
        rolled_back_at: None,
        bounded_at: None,
        shown_at: None,
        readings: Vec::new(),
        evidence: Vec::new(),
    };
    let mut total = 0u64;
    let mut interval = 0u64;
    let mut slider = match scenario.share {
        Share::Slider { low, high, .. } => low + rng.f64() * (high - low),
        _ => 0.0,
    };
    while total < scenario.max_requests {
        let share = match &scenario.share {
            Share::Fixed(w) => *w,
            Share::Steps(steps) => step_share(steps, total),
            Share::Slider { low, high, every } => {
                if interval > 0 && interval % u64::from((*every).max(1)) == 0 {
                    slider = low + rng.f64() * (high - low);
                }
                slider
            }
        };
        let factor = scenario.swing.map_or(1.0, |(amp, period)| {
            let phase = std::f64::consts::TAU * total as f64 / period.max(1) as f64;
            (amp * phase.sin()).exp()
        });
        for _ in 0..scenario.requests_per_interval {
            let canary = rng.f64() < share;
            let model = if canary {
                &scenario.canary
            } else {
                &scenario.stable
            };
            let event = match scenario.event {
                EventKind::Errors => rng.f64() < model.error_rate * factor,
                EventKind::Slow => model.latency_ms(rng.f64()) > scenario.slow_ms,
            };
            let track = if canary {
                &mut counts.canary
            } else {
                &mut counts.stable
            };
            track.requests += 1;
            track.events += u64::from(event);
        }
        total += u64::from(scenario.requests_per_interval);
        interval += 1;
        run.readings.push(counts);
        // Counts from this simulation are always valid.
        let Ok(evidence) = test.observe(counts) else {
            break;
        };
        let failed = evidence.decision == Decision::Fail;
        if run.bounded_at.is_none() && evidence.ratio_high.is_some_and(|h| h <= PASS_RATIO) {
            run.bounded_at = Some(total);
        }
        if run.shown_at.is_none() && evidence.decision == Decision::Pass {
            run.shown_at = Some(total);
        }
        run.evidence.push(evidence);
        if failed {
            run.rolled_back_at = Some(total);
            break;
        }
    }
    run
}

fn step_share(steps: &[(f64, u64)], total: u64) -> f64 {
    let mut start = 0u64;
    for (share, len) in steps {
        start = start.saturating_add(*len);
        if total < start {
            return *share;
        }
    }
    steps.last().map_or(0.0, |s| s.0)
}

/// Rollbacks over many runs of one scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Runs made.
    pub runs: u32,
    /// Runs that were rolled back.
    pub rollbacks: u32,
    /// 95 % Clopper–Pearson interval for the rollback probability.
    pub rate_interval: (f64, f64),
    /// Median total requests to a rollback; `None` when half the runs or more
    /// were not rolled back.
    pub median: Option<u64>,
    /// 95th percentile of total requests to a rollback; `None` when more than
    /// 5 % were not rolled back.
    pub p95: Option<u64>,
    /// The most requests any rolled-back run took.
    pub max: Option<u64>,
    /// Median total requests to a bounded pass (`Run::bounded_at`); `None`
    /// when half the runs or more got none.
    pub bounded_median: Option<u64>,
    /// Runs where the canary was shown below the tolerance.
    pub shown: u32,
}

impl Summary {
    /// The fraction of runs rolled back.
    pub fn rate(&self) -> f64 {
        f64::from(self.rollbacks) / f64::from(self.runs.max(1))
    }
}

/// Runs `scenario` `runs` times from seeds derived from `seed`.
pub fn run_many(scenario: &Scenario, test: &SequentialTest, runs: u32, seed: u64) -> Summary {
    let results: Vec<Run> = (0..u64::from(runs))
        .map(|i| simulate(scenario, test, seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let sorted = |pick: fn(&Run) -> Option<u64>| {
        let mut v: Vec<Option<u64>> = results.iter().map(pick).collect();
        // Runs that never got there sort last.
        v.sort_by_key(|a| a.unwrap_or(u64::MAX));
        v
    };
    let quantile = |v: &[Option<u64>], q: f64| {
        let idx = ((q * v.len() as f64).ceil() as usize).saturating_sub(1);
        v.get(idx).copied().flatten()
    };
    let at = sorted(|r| r.rolled_back_at);
    let bounded = sorted(|r| r.bounded_at);
    let rollbacks = at.iter().filter(|a| a.is_some()).count() as u32;
    Summary {
        runs,
        rollbacks,
        rate_interval: clopper_pearson(rollbacks, runs),
        median: quantile(&at, 0.5),
        p95: quantile(&at, 0.95),
        max: at.iter().rev().find_map(|a| *a),
        bounded_median: quantile(&bounded, 0.5),
        shown: results.iter().filter(|r| r.shown_at.is_some()).count() as u32,
    }
}

/// The exact 95 % binomial interval for `k` successes in `n` trials
/// (Clopper & Pearson, Biometrika 1934).
pub fn clopper_pearson(k: u32, n: u32) -> (f64, f64) {
    let (k, n) = (f64::from(k), f64::from(n));
    let low = if k == 0.0 {
        0.0
    } else {
        Beta::new(k, n - k + 1.0).map_or(f64::NAN, |b| b.inverse_cdf(0.025))
    };
    let high = if k >= n {
        1.0
    } else {
        Beta::new(k + 1.0, n - k).map_or(f64::NAN, |b| b.inverse_cdf(0.975))
    };
    (low, high)
}

/// Requests per interval in the standard scenarios: one-second readings at 50
/// requests a second.
pub const REQUESTS_PER_INTERVAL: u32 = 50;
/// The ratio a bounded pass must show in the standard scenarios (as
/// `PassPolicy::default`).
pub const PASS_RATIO: f64 = 2.0;
/// The slow-request threshold in the standard scenarios, ms.
pub const SLOW_MS: f64 = 300.0;

/// The standard scenarios, as in `docs/analysis.md`: `horizon` is the length of
/// the no-difference canaries, in requests.
pub fn scenarios(horizon: u64) -> Vec<Scenario> {
    let errors = |name: &str, s: f64, c: f64, share: Share, max| Scenario {
        name: name.to_string(),
        stable: TrackModel::errors(s),
        canary: TrackModel::errors(c),
        share,
        event: EventKind::Errors,
        slow_ms: SLOW_MS,
        requests_per_interval: REQUESTS_PER_INTERVAL,
        max_requests: max,
        swing: None,
    };
    let slow = |name: &str, s: f64, c: TrackModel, share: Share, max| Scenario {
        name: name.to_string(),
        stable: TrackModel::slow(s, SLOW_MS),
        canary: c,
        share,
        event: EventKind::Slow,
        slow_ms: SLOW_MS,
        requests_per_interval: REQUESTS_PER_INTERVAL,
        max_requests: max,
        swing: None,
    };
    let steps = Share::Steps(vec![
        (0.05, horizon / 8),
        (0.10, horizon / 8),
        (0.20, horizon / 4),
        (0.50, horizon / 2),
    ]);
    let slider = Share::Slider {
        low: 0.01,
        high: 0.20,
        every: 5,
    };
    let mut swinging = errors(
        "same 1 %, rate swings 0.2–5 %, slider",
        0.01,
        0.01,
        slider.clone(),
        horizon,
    );
    swinging.swing = Some((1.6, horizon / 4));
    let fast = 100_000;
    vec![
        errors("same 1 % errors, steps 5→50 %", 0.01, 0.01, steps, horizon),
        errors(
            "same 1 % errors, slider 1–20 %",
            0.01,
            0.01,
            slider.clone(),
            horizon,
        ),
        swinging,
        errors(
            "1 % → 3 % errors at 5 %",
            0.01,
            0.03,
            Share::Fixed(0.05),
            fast,
        ),
        errors(
            "0.1 % → 2.1 % errors at 5 %",
            0.001,
            0.021,
            Share::Fixed(0.05),
            fast,
        ),
        errors(
            "canary fails every request, 5 %",
            0.01,
            1.0,
            Share::Fixed(0.05),
            fast,
        ),
        slow(
            "same 1 % slow, slider 1–20 %",
            0.01,
            TrackModel::slow(0.01, SLOW_MS),
            slider,
            horizon,
        ),
        slow(
            "1 % → 3 % slow at 5 %",
            0.01,
            TrackModel::slow(0.03, SLOW_MS),
            Share::Fixed(0.05),
            fast,
        ),
        slow(
            "0.1 % → 2.1 % slow at 5 %",
            0.001,
            TrackModel::slow(0.021, SLOW_MS),
            Share::Fixed(0.05),
            fast,
        ),
        slow(
            "canary slow on every request, 5 %",
            0.01,
            TrackModel::slow(0.999_999, SLOW_MS),
            Share::Fixed(0.05),
            fast,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Settings;

    fn named(all: &[Scenario], prefix: &str) -> Scenario {
        all.iter()
            .find(|s| s.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no scenario {prefix}"))
            .clone()
    }

    #[test]
    fn same_seed_same_run_and_different_seeds_differ() {
        let s = named(&scenarios(10_000), "1 % → 3 % errors");
        let test = SequentialTest::new(Settings::default());
        assert_eq!(simulate(&s, &test, 3), simulate(&s, &test, 3));
        assert_ne!(
            simulate(&s, &test, 3).readings,
            simulate(&s, &test, 4).readings
        );
    }

    #[test]
    fn slow_fractions_are_what_the_scenarios_say() {
        for f in [0.001, 0.01, 0.03] {
            let got = TrackModel::slow(f, SLOW_MS).slow_fraction(SLOW_MS);
            assert!((got - f).abs() < 1e-9 * f.max(1e-3), "{f} → {got}");
        }
        // Drawn latencies agree with the model.
        let m = TrackModel::slow(0.03, SLOW_MS);
        let mut rng = fastrand::Rng::with_seed(1);
        let n = 200_000;
        let slow = (0..n).filter(|_| m.latency_ms(rng.f64()) > SLOW_MS).count();
        let rate = slow as f64 / n as f64;
        assert!((rate - 0.03).abs() < 0.002, "{rate}");
    }

    #[test]
    fn false_rollbacks_stay_within_alpha_with_steps_slider_and_a_swinging_rate() {
        // A larger alpha makes a broken bound visible with few runs.
        let alpha = 0.05;
        let test = SequentialTest::new(Settings::new(alpha, 1.0).unwrap());
        let all = scenarios(20_000);
        let nulls: Vec<&Scenario> = all.iter().filter(|s| !s.canary_is_worse()).collect();
        assert_eq!(nulls.len(), 4);
        let (mut runs, mut rollbacks) = (0, 0);
        for (i, s) in nulls.iter().enumerate() {
            let summary = run_many(s, &test, 60, 100 + i as u64);
            runs += summary.runs;
            rollbacks += summary.rollbacks;
        }
        let (low, _) = clopper_pearson(rollbacks, runs);
        assert!(
            low <= alpha,
            "{rollbacks}/{runs} false rollbacks at alpha {alpha}"
        );
        assert!(
            f64::from(rollbacks) <= alpha * f64::from(runs),
            "{rollbacks}/{runs} false rollbacks"
        );
    }

    #[test]
    fn one_to_three_percent_errors_at_five_percent_share_is_rolled_back_in_time() {
        let s = named(&scenarios(20_000), "1 % → 3 % errors");
        let summary = run_many(&s, &SequentialTest::new(Settings::default()), 200, 11);
        let p95 = summary.p95.expect("under 95 % rolled back");
        let median = summary.median.expect("under half rolled back");
        assert!(p95 <= 25_000, "p95 {p95}");
        assert!(median <= 10_000, "median {median}");
    }

    #[test]
    fn a_canary_failing_every_request_is_rolled_back_within_150_requests() {
        let test = SequentialTest::new(Settings::default());
        let all = scenarios(20_000);
        for prefix in ["canary fails every request", "canary slow on every request"] {
            let summary = run_many(&named(&all, prefix), &test, 200, 12);
            assert_eq!(summary.rollbacks, 200, "{prefix}");
            let p95 = summary.p95.unwrap_or(u64::MAX);
            assert!(p95 <= 150, "{prefix}: p95 {p95}");
        }
    }

    #[test]
    fn small_rates_and_slow_requests_are_caught_too() {
        let test = SequentialTest::new(Settings::default());
        let all = scenarios(20_000);
        for prefix in [
            "0.1 % → 2.1 % errors",
            "1 % → 3 % slow",
            "0.1 % → 2.1 % slow",
        ] {
            let summary = run_many(&named(&all, prefix), &test, 100, 13);
            let p95 = summary.p95.unwrap_or(u64::MAX);
            assert!(p95 <= 25_000, "{prefix}: p95 {p95}");
        }
    }

    #[test]
    fn clopper_pearson_matches_known_values() {
        let (lo, hi) = clopper_pearson(0, 1000);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.003682).abs() < 1e-5, "{hi}");
        let (lo, hi) = clopper_pearson(10, 1000);
        assert!(
            (lo - 0.004806).abs() < 1e-5 && (hi - 0.018313).abs() < 1e-5,
            "{lo} {hi}"
        );
    }
}
