//! Recovery after a rollback: stable's event rate now against stable's own rate
//! recorded before the first step, with the machinery of `sequential`.
//!
//! The baseline is past data, so it cannot simply stand in for a concurrent
//! stable track: a test that had already seen all of it would be judged against
//! whatever luck the baseline had. Instead the baseline's recorded intervals
//! are revealed one at a time, each paired with one new interval of stable
//! after the rollback: the test's "canary" is stable now, its "stable" is the
//! next baseline interval. Each baseline interval is used once, so the
//! per-interval factors keep their expectation ≤ 1 over the joint randomness of
//! baseline and present, and Ville's bound holds as in `sequential`. The price:
//! the comparison lasts as many intervals as the baseline has (at most twice
//! the variance of using the whole baseline at once), and it assumes stable's
//! rate before the first step is the rate to return to (no daily swing in
//! between).
//!
//! Read the ratio as "stable now / stable before": fail evidence says stable is
//! still worse than `tolerance` × its baseline; a pass (see `rule`) says how
//! close it is.

use super::sequential::SequentialTest;
use super::{Counts, DataError, Evidence, Settings, Track, TrackCounts};

/// Why a recovery reading gave no evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The reading itself is invalid (see `DataError`).
    #[error(transparent)]
    Data(#[from] DataError),
    /// Every baseline interval has been paired: the comparison is over.
    #[error("all {intervals} baseline intervals have been compared; the recovery check has no more baseline")]
    BaselineExhausted {
        /// Baseline intervals that were available.
        intervals: usize,
    },
}

/// The recovery comparison for one event kind.
#[derive(Clone, Debug)]
pub struct Recovery {
    test: SequentialTest,
    /// Baseline intervals with requests, oldest first.
    chunks: Vec<TrackCounts>,
    used: usize,
    /// Sum of the baseline intervals paired so far.
    baseline_used: TrackCounts,
    /// Stable's cumulative counts at the last accepted reading.
    last_now: TrackCounts,
}

impl Recovery {
    /// A recovery check from `baseline`, stable's cumulative counts read at each
    /// interval before the first step (oldest first), and `start`, stable's
    /// cumulative counts when the rollback completed.
    ///
    /// # Errors
    /// `DataError` when the baseline readings go down or have more events than
    /// requests in an interval.
    pub fn new(
        settings: Settings,
        baseline: &[TrackCounts],
        start: TrackCounts,
    ) -> Result<Recovery, DataError> {
        let mut chunks = Vec::new();
        for pair in baseline.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let requests = b.requests.checked_sub(a.requests);
            let events = b.events.checked_sub(a.events);
            match (requests, events) {
                (Some(r), Some(e)) if e <= r => {
                    if r > 0 {
                        chunks.push(TrackCounts::new(r, e));
                    }
                }
                (Some(r), Some(e)) => {
                    return Err(DataError::MoreEventsThanRequests {
                        track: Track::Stable,
                        requests: r,
                        events: e,
                    })
                }
                (None, _) => {
                    return Err(DataError::CounterDecreased {
                        track: Track::Stable,
                        what: "requests",
                        from: a.requests,
                        to: b.requests,
                    })
                }
                (_, None) => {
                    return Err(DataError::CounterDecreased {
                        track: Track::Stable,
                        what: "events",
                        from: a.events,
                        to: b.events,
                    })
                }
            }
        }
        let mut test = SequentialTest::new(settings);
        test.rebase(Counts {
            canary: start,
            stable: TrackCounts::default(),
        });
        Ok(Recovery {
            test,
            chunks,
            used: 0,
            baseline_used: TrackCounts::default(),
            last_now: start,
        })
    }

    /// The evidence as it stands.
    pub fn evidence(&self) -> Evidence {
        self.test.evidence()
    }

    /// Baseline intervals not yet paired.
    pub fn intervals_left(&self) -> usize {
        self.chunks.len() - self.used
    }

    /// Judges stable's interval since the last accepted reading against the
    /// next baseline interval. A reading with no new requests pairs nothing.
    ///
    /// # Errors
    /// `RecoveryError::Data` for an invalid reading (state unchanged),
    /// `RecoveryError::BaselineExhausted` once every baseline interval is used.
    pub fn observe(&mut self, stable_now: TrackCounts) -> Result<Evidence, RecoveryError> {
        if stable_now.requests == self.last_now.requests
            && stable_now.events == self.last_now.events
        {
            return Ok(self.test.evidence());
        }
        let chunk = *self
            .chunks
            .get(self.used)
            .ok_or(RecoveryError::BaselineExhausted {
                intervals: self.chunks.len(),
            })?;
        let baseline = TrackCounts::new(
            self.baseline_used.requests + chunk.requests,
            self.baseline_used.events + chunk.events,
        );
        let evidence = self
            .test
            .observe(Counts {
                canary: stable_now,
                stable: baseline,
            })
            .map_err(|e| match e {
                // The test calls stable-now its canary; say which it is.
                DataError::CounterDecreased { what, from, to, .. } => DataError::CounterDecreased {
                    track: Track::Stable,
                    what,
                    from,
                    to,
                },
                DataError::MoreEventsThanRequests {
                    requests, events, ..
                } => DataError::MoreEventsThanRequests {
                    track: Track::Stable,
                    requests,
                    events,
                },
            })?;
        self.used += 1;
        self.baseline_used = baseline;
        self.last_now = stable_now;
        Ok(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Decision;

    /// Cumulative readings of a stream of `n` intervals of `r` requests, with
    /// events drawn at `rate`.
    fn stream(seed: u64, n: usize, r: u64, rate: f64, start: TrackCounts) -> Vec<TrackCounts> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut c = start;
        let mut out = vec![c];
        for _ in 0..n {
            for _ in 0..r {
                c.requests += 1;
                c.events += u64::from(rng.f64() < rate);
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn stable_still_degraded_after_a_rollback_fails_and_recovered_does_not() {
        let settings = Settings::new(0.01, 1.1).unwrap();
        let baseline = stream(1, 60, 200, 0.01, TrackCounts::default());
        let start = *baseline.last().unwrap();
        let mut degraded = Recovery::new(settings, &baseline, start).unwrap();
        let after = stream(2, 60, 200, 0.05, start);
        let fail = after[1..]
            .iter()
            .map(|c| degraded.observe(*c).unwrap().decision)
            .position(|d| d == Decision::Fail);
        assert!(fail.is_some_and(|i| i < 20), "{fail:?}");

        let mut recovered = Recovery::new(settings, &baseline, start).unwrap();
        let after = stream(3, 60, 200, 0.01, start);
        let mut last = None;
        for c in &after[1..] {
            let e = recovered.observe(*c).unwrap();
            assert_ne!(e.decision, Decision::Fail);
            last = Some(e);
        }
        let e = last.unwrap();
        assert!(e.ratio_low < 1.0 && e.ratio_high.unwrap() > 1.0, "{e:?}");
        assert!(e.ratio_high.unwrap() < 2.5, "{e:?}");
        assert_eq!(recovered.intervals_left(), 0);
        let more = TrackCounts::new(
            after.last().unwrap().requests + 200,
            after.last().unwrap().events,
        );
        assert_eq!(
            recovered.observe(more),
            Err(RecoveryError::BaselineExhausted { intervals: 60 })
        );
    }

    #[test]
    fn invalid_baselines_and_readings_are_errors_and_quiet_readings_use_no_baseline() {
        let s = Settings::default();
        let bad = [TrackCounts::new(100, 1), TrackCounts::new(50, 1)];
        assert!(matches!(
            Recovery::new(s, &bad, TrackCounts::default()),
            Err(DataError::CounterDecreased {
                track: Track::Stable,
                ..
            })
        ));
        let skew = [TrackCounts::new(100, 1), TrackCounts::new(110, 20)];
        assert!(Recovery::new(s, &skew, TrackCounts::default()).is_err());
        let baseline = [
            TrackCounts::new(0, 0),
            TrackCounts::new(100, 1),
            TrackCounts::new(200, 2),
        ];
        let start = TrackCounts::new(1000, 10);
        let mut r = Recovery::new(s, &baseline, start).unwrap();
        assert_eq!(r.intervals_left(), 2);
        r.observe(start).unwrap();
        assert_eq!(r.intervals_left(), 2);
        let reset = r.observe(TrackCounts::new(5, 0)).unwrap_err();
        assert!(matches!(
            reset,
            RecoveryError::Data(DataError::CounterDecreased {
                track: Track::Stable,
                ..
            })
        ));
        assert_eq!(r.intervals_left(), 2);
        r.observe(TrackCounts::new(1100, 11)).unwrap();
        assert_eq!(r.intervals_left(), 1);
    }
}
