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
            let model = if canary { &scenario.canary } else { &scenario.stable };
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
}

impl Summary {
    /// The fraction of runs rolled back.
    pub fn rate(&self) -> f64 {
        f64::from(self.rollbacks) / f64::from(self.runs.max(1))
    }
}

/// Runs `scenario` `runs` times from seeds derived from `seed`.
pub fn run_many(scenario: &Scenario, test: &SequentialTest, runs: u32, seed: u64) -> Summary {
    let mut at: Vec<Option<u64>> = (0..u64::from(runs))
        .map(|i| simulate(scenario, test, seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).rolled_back_at)
        .collect();
    // Runs never rolled back sort last.
    at.sort_by_key(|a| a.unwrap_or(u64::MAX));
    let quantile = |q: f64| {
        let idx = ((q * at.len() as f64).ceil() as usize).saturating_sub(1);
        at.get(idx).copied().flatten()
    };
    let rollbacks = at.iter().filter(|a| a.is_some()).count() as u32;
    Summary {
        runs,
        rollbacks,
        rate_interval: clopper_pearson(rollbacks, runs),
        median: quantile(0.5),
        p95: quantile(0.95),
        max: at.iter().rev().find_map(|a| *a),
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
    let mut swinging = errors("same 1 %, rate swings 0.2–5 %, slider", 0.01, 0.01, slider.clone(), horizon);
    swinging.swing = Some((1.6, horizon / 4));
    let fast = 100_000;
    vec![
        errors("same 1 % errors, steps 5→50 %", 0.01, 0.01, steps, horizon),
        errors("same 1 % errors, slider 1–20 %", 0.01, 0.01, slider.clone(), horizon),
        swinging,
        errors("1 % → 3 % errors at 5 %", 0.01, 0.03, Share::Fixed(0.05), fast),
        errors("0.1 % → 2.1 % errors at 5 %", 0.001, 0.021, Share::Fixed(0.05), fast),
        errors("canary fails every request, 5 %", 0.01, 1.0, Share::Fixed(0.05), fast),
        slow("same 1 % slow, slider 1–20 %", 0.01, TrackModel::slow(0.01, SLOW_MS), slider, horizon),
        slow("1 % → 3 % slow at 5 %", 0.01, TrackModel::slow(0.03, SLOW_MS), Share::Fixed(0.05), fast),
        slow("0.1 % → 2.1 % slow at 5 %", 0.001, TrackModel::slow(0.021, SLOW_MS), Share::Fixed(0.05), fast),
        slow(
            "canary slow on every request, 5 %",
            0.01,
            TrackModel::slow(0.999_999, SLOW_MS),
            Share::Fixed(0.05),
            fast,
        ),
    ]
}
