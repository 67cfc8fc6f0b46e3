//! The split the router actually serves, measured from its own per-server
//! counts (the built-in router's, HAProxy's `show stat`) and compared with
//! the weight on record. The read-back of the weight says what the router
//! was told; this says what it does: a stable server marked down by the
//! proxy's health checks sends every request to the canary while the weight
//! still reads 10 %.
//!
//! Pure: cumulative counts in, a drift out. Counts are taken from the
//! interval after the weight was last seen to change (an interval that spans
//! a change mixes two splits) and summed over the step, so low traffic
//! gathers evidence across samples rather than judging each alone.

use crate::domain::Totals;

/// Requests, over the step, before the split is judged at all.
pub const MIN_REQUESTS: u64 = 400;
/// Least difference between the measured canary share and the weight, in
/// percentage points: a smaller one is not worth stopping a release for.
pub const MIN_POINTS: f64 = 10.0;
/// Standard errors the difference must reach under the binomial model of
/// per-request routing (share = weight / 100): a chance of about 1e-9 of a
/// false report at each look, so looking every interval stays safe.
pub const MIN_Z: f64 = 6.0;

/// The canary's measured share of the requests differs from the weight.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitDrift {
    /// The weight on record, percent.
    pub expected: u8,
    /// The canary's share of the requests counted, percent (0–100).
    pub measured: f64,
    /// Requests counted at this weight (both tracks).
    pub requests: u64,
    /// Of which the canary's.
    pub canary: u64,
}

impl SplitDrift {
    /// The measured share rounded to a weight, for the journal's
    /// `router_weight`.
    pub fn measured_weight(&self) -> u8 {
        self.measured.round().clamp(0.0, 100.0) as u8
    }
}

/// The counts of one step; see the module's documentation.
#[derive(Debug, Default)]
pub struct SplitWatch {
    weight: Option<u8>,
    last: Option<(Totals, Totals)>,
    canary: u64,
    stable: u64,
    reported: bool,
}

impl SplitWatch {
    /// Forget the step: the next reading is an origin, not evidence (a
    /// weight change in flight, a source that gave no counts).
    pub fn reset(&mut self) {
        *self = SplitWatch::default();
    }

    /// Takes the tracks' cumulative counts read at `weight` (the weight on
    /// record); returns a drift once per step when the canary's share of
    /// the requests since the step began differs from `weight` by at least
    /// [`MIN_POINTS`] and [`MIN_Z`] standard errors over at least
    /// [`MIN_REQUESTS`] requests. A counter that went down (a restart)
    /// starts the count again.
    pub fn observe(
        &mut self,
        weight: u8,
        canary: Option<Totals>,
        stable: Option<Totals>,
    ) -> Option<SplitDrift> {
        let (Some(canary), Some(stable)) = (canary, stable) else {
            self.reset();
            return None;
        };
        if self.weight != Some(weight) {
            // The interval that ends here may span the change: an origin.
            *self = SplitWatch {
                weight: Some(weight),
                last: Some((canary, stable)),
                ..SplitWatch::default()
            };
            return None;
        }
        let (c0, s0) = self.last.replace((canary, stable))?;
        match (
            canary.requests.checked_sub(c0.requests),
            stable.requests.checked_sub(s0.requests),
        ) {
            (Some(c), Some(s)) => {
                self.canary += c;
                self.stable += s;
            }
            _ => {
                self.canary = 0;
                self.stable = 0;
                return None;
            }
        }
        if self.reported {
            return None;
        }
        let n = self.canary + self.stable;
        if n < MIN_REQUESTS {
            return None;
        }
        let p = f64::from(weight) / 100.0;
        let share = self.canary as f64 / n as f64;
        let points = (share - p).abs() * 100.0;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        // At 0 % or 100 % no request may go the other way at all: the
        // points alone decide.
        let z = if se > 0.0 {
            (share - p).abs() / se
        } else {
            f64::INFINITY
        };
        if points < MIN_POINTS || z < MIN_Z {
            return None;
        }
        self.reported = true;
        Some(SplitDrift {
            expected: weight,
            measured: share * 100.0,
            requests: n,
            canary: self.canary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(requests: u64) -> Option<Totals> {
        Some(Totals {
            requests,
            errors: 0,
            slow: None,
        })
    }

    /// Feeds `steps` intervals of `per` requests with `canary_share`.
    fn feed(w: &mut SplitWatch, weight: u8, per: u64, share: f64, steps: u64) -> Vec<SplitDrift> {
        let mut out = Vec::new();
        let (mut c, mut s) = (0u64, 0u64);
        for _ in 0..=steps {
            if let Some(d) = w.observe(weight, t(c), t(s)) {
                out.push(d);
            }
            let to_canary = (per as f64 * share).round() as u64;
            c += to_canary;
            s += per - to_canary;
        }
        out
    }

    #[test]
    fn a_split_that_matches_the_weight_is_never_reported() {
        let mut w = SplitWatch::default();
        assert!(feed(&mut w, 10, 100, 0.12, 200).is_empty());
        let mut w = SplitWatch::default();
        assert!(feed(&mut w, 50, 1000, 0.47, 100).is_empty());
    }

    #[test]
    fn a_stable_marked_down_sends_everything_to_the_canary_and_is_reported_once() {
        let mut w = SplitWatch::default();
        let drifts = feed(&mut w, 10, 100, 1.0, 50);
        assert_eq!(drifts.len(), 1, "{drifts:?}");
        let d = &drifts[0];
        assert_eq!((d.expected, d.measured_weight()), (10, 100));
        assert!(d.requests >= MIN_REQUESTS);
    }

    #[test]
    fn too_few_requests_or_too_small_a_difference_say_nothing() {
        // 300 requests all to the canary: not enough yet.
        let mut w = SplitWatch::default();
        assert!(feed(&mut w, 10, 100, 1.0, 3).is_empty());
        // 8 points off with a million requests: significant, not material.
        let mut w = SplitWatch::default();
        assert!(feed(&mut w, 50, 100_000, 0.58, 10).is_empty());
    }

    #[test]
    fn at_zero_any_material_canary_share_is_a_drift() {
        let mut w = SplitWatch::default();
        let drifts = feed(&mut w, 0, 100, 0.2, 10);
        assert_eq!(drifts.len(), 1);
        assert_eq!(drifts[0].measured_weight(), 20);
    }

    #[test]
    fn a_weight_change_or_a_counter_reset_starts_the_count_again() {
        let mut w = SplitWatch::default();
        assert!(feed(&mut w, 10, 100, 1.0, 3).is_empty());
        // The weight moved: what was counted at 10 % does not carry over.
        assert_eq!(w.observe(50, t(2000), t(2000)), None);
        assert_eq!(w.observe(50, t(2100), t(2100)), None);
        assert_eq!((w.canary, w.stable), (100, 100));
        // A counter went down: counted again from there.
        assert_eq!(w.observe(50, t(5), t(2200)), None);
        assert_eq!((w.canary, w.stable), (0, 0));
        // No counts: forgotten.
        assert_eq!(w.observe(50, None, t(2300)), None);
        assert_eq!(w.weight, None);
    }
}
