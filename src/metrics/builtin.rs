//! The built-in metric source: the built-in router's own per-track counts,
//! kept as one-second buckets in a ring and merged for a window query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hdrhistogram::Histogram;

use super::{MetricError, MetricSource};

use crate::domain::{Totals, Track, TrackPair, TrackSample};

/// Latencies are recorded in microseconds; anything slower than an hour is
/// recorded as an hour rather than dropped.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Two significant figures (1% resolution) is plenty for a p99 threshold and
/// keeps one bucket's histogram around 25 KiB.
const SIGNIFICANT_FIGURES: u8 = 2;
/// Counts are kept at least this long whatever the router was built with,
/// so the dashboard can look back a minute even with a short analysis window.
const MIN_KEPT: Duration = Duration::from_secs(60);

/// One second of one track.
#[derive(Default)]
struct Bucket {
    /// Seconds since the stats were created that this bucket holds.
    second: u64,
    requests: u64,
    errors: u64,
    /// Created on first use, so idle seconds cost no memory.
    latency_us: Option<Histogram<u64>>,
}

impl Bucket {
    /// Empties the bucket for a new second, keeping the histogram's memory.
    fn reuse_for(&mut self, second: u64) {
        self.second = second;
        self.requests = 0;
        self.errors = 0;
        if let Some(h) = self.latency_us.as_mut() {
            h.reset();
        }
    }
}

/// A ring of one-second buckets for one track.
struct Ring {
    buckets: Vec<Mutex<Bucket>>,
    total_requests: AtomicU64,
    total_errors: AtomicU64,
    total_slow: AtomicU64,
}

impl Ring {
    fn new(len: usize) -> Self {
        Ring {
            buckets: (0..len).map(|_| Mutex::new(Bucket::default())).collect(),
            total_requests: AtomicU64::new(0),
            total_errors: AtomicU64::new(0),
            total_slow: AtomicU64::new(0),
        }
    }

    fn slot(&self, second: u64) -> MutexGuard<'_, Bucket> {
        let index = (second % self.buckets.len() as u64) as usize;
        // A panic while holding a bucket cannot leave it inconsistent in a way
        // that matters (worst case one count), so a poisoned lock is reused.
        self.buckets[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_FIGURES).ok()
}

/// Totals of one track since the stats were created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackTotals {
    pub requests: u64,
    pub errors: u64,
    /// Requests slower than the slow threshold (`set_slow_ms`).
    pub slow: u64,
}

/// The slow threshold until `set_slow_ms` is called: `[analysis] slow_ms`'s default.
const DEFAULT_SLOW_US: u64 = 500_000;

/// Per-track request, 5xx and latency counts over a sliding window.
///
/// Recording locks only the current second's bucket of one track, for the
/// time of a few additions; queries merge the buckets of the window.
pub struct TrafficStats {
    started: Instant,
    stable: Ring,
    canary: Ring,
    /// A request slower than this many microseconds is counted slow.
    slow_us: AtomicU64,
}

impl TrafficStats {
    /// Keeps counts over at least `window` (and at least a minute).
    pub fn new(window: Duration) -> Self {
        let kept = window.max(MIN_KEPT);
        // Two spare buckets: the one being refilled for the current second
        // never overlaps one a full-length query still reads.
        let len = whole_seconds(kept) as usize + 2;
        TrafficStats {
            started: Instant::now(),
            stable: Ring::new(len),
            canary: Ring::new(len),
            slow_us: AtomicU64::new(DEFAULT_SLOW_US),
        }
    }

    /// Counts requests slower than `ms` milliseconds as slow from now on
    /// (`[analysis] slow_ms`; set once, before traffic is judged).
    pub fn set_slow_ms(&self, ms: u64) {
        self.slow_us
            .store(ms.saturating_mul(1000), Ordering::Relaxed);
    }

    /// The longest window a query can cover; longer ones are cut to it.
    pub fn kept(&self) -> Duration {
        Duration::from_secs(self.stable.buckets.len() as u64 - 2)
    }

    /// Records one finished request. A status of 500..=599 counts as an error.
    pub fn record(&self, track: Track, status: u16, latency: Duration) {
        self.record_at(self.now_second(), track, status, latency);
    }

    /// Figures for `track` over the last `window` (rounded up to whole
    /// seconds, the current partial second included).
    pub fn window(&self, track: Track, window: Duration) -> TrackSample {
        self.window_at(self.now_second(), track, window)
    }

    /// Counts of `track` since the stats were created.
    pub fn totals(&self, track: Track) -> TrackTotals {
        let ring = self.ring(track);
        // Slow and errors are read before requests, and each is counted
        // after its request: a reading never has more events than requests.
        let slow = ring.total_slow.load(Ordering::Acquire);
        let errors = ring.total_errors.load(Ordering::Acquire);
        TrackTotals {
            requests: ring.total_requests.load(Ordering::Acquire),
            errors,
            slow,
        }
    }

    fn ring(&self, track: Track) -> &Ring {
        match track {
            Track::Stable => &self.stable,
            Track::Canary => &self.canary,
        }
    }

    fn now_second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn record_at(&self, second: u64, track: Track, status: u16, latency: Duration) {
        let is_error = (500..=599).contains(&status);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let is_slow = us > self.slow_us.load(Ordering::Relaxed);
        let ring = self.ring(track);
        ring.total_requests.fetch_add(1, Ordering::Release);
        if is_error {
            ring.total_errors.fetch_add(1, Ordering::Release);
        }
        if is_slow {
            ring.total_slow.fetch_add(1, Ordering::Release);
        }
        let mut bucket = ring.slot(second);
        if bucket.second != second {
            bucket.reuse_for(second);
        }
        bucket.requests += 1;
        if is_error {
            bucket.errors += 1;
        }
        if bucket.latency_us.is_none() {
            bucket.latency_us = new_histogram();
        }
        if let Some(h) = bucket.latency_us.as_mut() {
            // Zero is below the histogram's lowest value; a sub-microsecond
            // answer is recorded as one microsecond.
            h.saturating_record(us.max(1));
        }
    }

    fn window_at(&self, now: u64, track: Track, window: Duration) -> TrackSample {
        let ring = self.ring(track);
        let span = whole_seconds(window).clamp(1, ring.buckets.len() as u64 - 2);
        let first = (now + 1).saturating_sub(span);
        let mut requests = 0;
        let mut errors = 0;
        let mut merged: Option<Histogram<u64>> = None;
        for second in first..=now {
            let bucket = ring.slot(second);
            // A bucket still holding an older second has nothing for this one.
            if bucket.second != second {
                continue;
            }
            requests += bucket.requests;
            errors += bucket.errors;
            if let Some(h) = bucket.latency_us.as_ref().filter(|h| !h.is_empty()) {
                match merged.as_mut() {
                    // Same bounds on both sides, so adding cannot overflow them.
                    Some(m) => {
                        let _ = m.add(h);
                    }
                    None => merged = Some(h.clone()),
                }
            }
        }
        let quantile_ms = |q: f64| {
            merged
                .as_ref()
                .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        TrackSample {
            requests,
            errors,
            error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
            p50_ms: quantile_ms(0.50),
            p95_ms: quantile_ms(0.95),
            p99_ms: quantile_ms(0.99),
            totals: None,
        }
    }
}

/// `d` in whole seconds, rounded up.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Samples both tracks from the built-in router's [`TrafficStats`].
pub struct BuiltinSource {
    stats: Arc<TrafficStats>,
}

impl BuiltinSource {
    pub fn new(stats: Arc<TrafficStats>) -> Self {
        BuiltinSource { stats }
    }
}

#[async_trait]
impl MetricSource for BuiltinSource {
    fn kind(&self) -> &'static str {
        "builtin"
    }
    async fn sample(&self, window: Duration) -> Result<TrackPair, MetricError> {
        let track = |t: Track| {
            let totals = self.stats.totals(t);
            TrackSample {
                totals: Some(Totals {
                    requests: totals.requests,
                    errors: totals.errors,
                    slow: Some(totals.slow),
                }),
                ..self.stats.window(t, window)
            }
        };
        Ok(TrackPair {
            canary: track(Track::Canary),
            stable: track(Track::Stable),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty_window_has_no_rates_or_percentiles() {
        let stats = TrafficStats::new(Duration::from_secs(30));
        let s = stats.window_at(10, Track::Canary, Duration::from_secs(30));
        assert_eq!(s, TrackSample::default());
        assert_eq!(s.error_rate, None);
        assert_eq!(s.p99_ms, None);
    }

    #[test]
    fn counts_requests_and_5xx_per_track() {
        let stats = TrafficStats::new(Duration::from_secs(30));
        for status in [200, 201, 404, 500, 502, 599, 600] {
            stats.record_at(5, Track::Canary, status, ms(10));
        }
        stats.record_at(5, Track::Stable, 200, ms(10));
        let c = stats.window_at(5, Track::Canary, Duration::from_secs(30));
        assert_eq!(c.requests, 7);
        assert_eq!(c.errors, 3);
        assert_eq!(c.error_rate, Some(3.0 / 7.0));
        let s = stats.window_at(5, Track::Stable, Duration::from_secs(30));
        assert_eq!((s.requests, s.errors, s.error_rate), (1, 0, Some(0.0)));
        assert_eq!(
            stats.totals(Track::Canary),
            TrackTotals {
                requests: 7,
                errors: 3,
                slow: 0
            }
        );
    }

    #[test]
    fn window_covers_only_its_last_seconds() {
        let stats = TrafficStats::new(Duration::from_secs(30));
        for second in 0..10 {
            stats.record_at(second, Track::Stable, 200, ms(1));
        }
        // At second 9, a 3-second window holds seconds 7, 8 and 9.
        let s = stats.window_at(9, Track::Stable, Duration::from_secs(3));
        assert_eq!(s.requests, 3);
        // A part of a second counts as a whole one.
        let s = stats.window_at(9, Track::Stable, Duration::from_millis(2500));
        assert_eq!(s.requests, 3);
        let s = stats.window_at(9, Track::Stable, Duration::from_secs(30));
        assert_eq!(s.requests, 10);
    }

    #[test]
    fn buckets_expire_when_the_ring_wraps() {
        let stats = TrafficStats::new(Duration::from_secs(5));
        let len = stats.stable.buckets.len() as u64;
        stats.record_at(0, Track::Stable, 500, ms(900));
        // One full turn later the same slot holds a new second: the old
        // request and its latency must be gone, not merged.
        stats.record_at(len, Track::Stable, 200, ms(1));
        let s = stats.window_at(len, Track::Stable, stats.kept());
        assert_eq!((s.requests, s.errors), (1, 0));
        assert!(s.p99_ms.is_some_and(|p| p < 2.0), "{s:?}");
        // Nothing recorded lately: an old bucket left in the ring is ignored.
        let s = stats.window_at(len + 30, Track::Stable, Duration::from_secs(10));
        assert_eq!(s, TrackSample::default());
    }

    #[test]
    fn long_queries_are_cut_to_what_is_kept() {
        let stats = TrafficStats::new(Duration::from_secs(60));
        assert_eq!(stats.kept(), Duration::from_secs(60));
        stats.record_at(0, Track::Canary, 200, ms(1));
        stats.record_at(100, Track::Canary, 200, ms(1));
        let s = stats.window_at(100, Track::Canary, Duration::from_secs(3600));
        assert_eq!(s.requests, 1);
    }

    #[test]
    fn percentiles_follow_the_recorded_latencies() {
        let stats = TrafficStats::new(Duration::from_secs(30));
        // 1..=1000 ms spread over three seconds: p50 ≈ 500, p95 ≈ 950, p99 ≈ 990.
        for i in 1..=1000u64 {
            stats.record_at(i % 3, Track::Canary, 200, ms(i));
        }
        let s = stats.window_at(2, Track::Canary, Duration::from_secs(3));
        let close = |got: Option<f64>, want: f64| {
            let got = got.unwrap_or(f64::NAN);
            assert!(
                (got - want).abs() <= want * 0.01 + 0.5,
                "got {got}, want {want}"
            );
        };
        close(s.p50_ms, 500.0);
        close(s.p95_ms, 950.0);
        close(s.p99_ms, 990.0);
    }

    #[test]
    fn sub_microsecond_and_huge_latencies_are_kept() {
        let stats = TrafficStats::new(Duration::from_secs(30));
        stats.record_at(0, Track::Stable, 200, Duration::ZERO);
        stats.record_at(0, Track::Stable, 200, Duration::from_secs(86_400));
        let s = stats.window_at(0, Track::Stable, Duration::from_secs(1));
        assert_eq!(s.requests, 2);
        assert!(s.p50_ms.is_some_and(|p| p < 0.01), "{s:?}");
        assert!(s.p99_ms.is_some_and(|p| p >= 3_500_000.0), "{s:?}");
    }

    #[tokio::test]
    async fn builtin_source_samples_both_tracks() {
        let stats = Arc::new(TrafficStats::new(Duration::from_secs(30)));
        stats.record(Track::Canary, 503, ms(20));
        stats.record(Track::Stable, 200, ms(5));
        stats.record(Track::Stable, 200, ms(5));
        let pair = BuiltinSource::new(stats)
            .sample(Duration::from_secs(30))
            .await
            .expect("sample");
        assert_eq!((pair.canary.requests, pair.canary.errors), (1, 1));
        assert_eq!((pair.stable.requests, pair.stable.errors), (2, 0));
        assert_eq!(
            pair.canary.totals,
            Some(Totals {
                requests: 1,
                errors: 1,
                slow: Some(0)
            })
        );
    }

    #[test]
    fn requests_slower_than_the_threshold_are_counted_slow() {
        let stats = TrafficStats::new(Duration::from_secs(30));
        stats.set_slow_ms(100);
        for latency in [10, 100, 101, 2_000] {
            stats.record_at(0, Track::Canary, 200, ms(latency));
        }
        stats.record_at(0, Track::Stable, 503, ms(150));
        // Exactly the threshold is not slower than it.
        assert_eq!(stats.totals(Track::Canary).slow, 2);
        assert_eq!(
            stats.totals(Track::Stable),
            TrackTotals {
                requests: 1,
                errors: 1,
                slow: 1
            }
        );
    }
}
