//! Judging one sample of canary against stable: pass, fail or inconclusive,
//! after checking the figures are in their domain at all.

use crate::config::AnalysisPlan;
use crate::domain::{TrackPair, TrackSample, Verdict};

/// Whether a sample's figures are possible at all: rates in [0, 1], errors
/// no more than requests, latencies finite and not negative. Anything else
/// is invalid data from the source, never evidence.
pub fn validate(pair: &TrackPair) -> Result<(), String> {
    let track = |name: &str, t: &TrackSample| -> Result<(), String> {
        if t.errors > t.requests {
            return Err(format!(
                "{name} has {} errors in {} requests",
                t.errors, t.requests
            ));
        }
        if let Some(rate) = t.error_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "{name} error rate {rate} is not a fraction from 0 to 1"
                ));
            }
        }
        for (what, v) in [("p50", t.p50_ms), ("p95", t.p95_ms), ("p99", t.p99_ms)] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(format!("{name} {what} latency {v} ms is not a duration"));
                }
            }
        }
        Ok(())
    };
    track("canary", &pair.canary)
        .and_then(|()| track("stable", &pair.stable))
        .map_err(|e| format!("invalid data from the metric source: {e}"))
}

/// The verdict on one sample and why. Too little data, or no baseline for a
/// relative limit, is inconclusive, never a pass.
pub fn judge(pair: &TrackPair, plan: &AnalysisPlan) -> (Verdict, Vec<String>) {
    judge_at(pair, plan, 0)
}

/// [`judge`] at a canary weight: at 100% stable gets no traffic by design,
/// so there is no baseline to expect and only the absolute limits apply.
pub fn judge_at(pair: &TrackPair, plan: &AnalysisPlan, weight: u8) -> (Verdict, Vec<String>) {
    if let Err(e) = validate(pair) {
        return (Verdict::Inconclusive, vec![e]);
    }
    let c = &pair.canary;
    let s = &pair.stable;
    let mut inconclusive = Vec::new();
    let stable_expected = weight < 100;
    let relative =
        stable_expected && (plan.max_error_rate_increase.is_some() || plan.max_p99_ratio.is_some());
    if relative && s.requests < plan.min_requests {
        inconclusive.push(format!(
            "no baseline: stable had {} requests in the window, fewer than min_requests {}, so the relative limits cannot be judged",
            s.requests, plan.min_requests
        ));
    }
    if c.requests < plan.min_requests {
        inconclusive.push(format!(
            "canary had {} requests in the window, fewer than min_requests {}",
            c.requests, plan.min_requests
        ));
        return (Verdict::Inconclusive, inconclusive);
    }
    let mut failures = Vec::new();
    match c.error_rate {
        Some(rate) if rate.is_finite() => {
            if let Some(max) = plan.max_error_rate {
                if rate > max {
                    failures.push(format!(
                        "canary error rate {:.2}% above max_error_rate {:.2}%",
                        rate * 100.0,
                        max * 100.0
                    ));
                }
            }
            if let Some(max_inc) = plan.max_error_rate_increase.filter(|_| stable_expected) {
                // Compare only against a stable track with enough data of its own.
                match s.error_rate.filter(|r| r.is_finite()) {
                    Some(srate) if s.requests >= plan.min_requests && rate - srate > max_inc => {
                        failures.push(format!(
                            "canary error rate {:.2}% exceeds stable {:.2}% by more than {:.2} points",
                            rate * 100.0,
                            srate * 100.0,
                            max_inc * 100.0
                        ));
                    }
                    Some(_) => {}
                    None if s.requests >= plan.min_requests => {
                        inconclusive.push("no stable error rate in the window: no baseline for max_error_rate_increase".to_string());
                    }
                    None => {}
                }
            }
        }
        _ => inconclusive.push("no canary error rate in the window".to_string()),
    }
    let needs_p99 = plan.max_p99_ms.is_some() || plan.max_p99_ratio.is_some();
    match c.p99_ms {
        Some(p99) if p99.is_finite() => {
            if let Some(max) = plan.max_p99_ms {
                if p99 > max {
                    failures.push(format!("canary p99 {p99:.0} ms above max_p99_ms {max:.0}"));
                }
            }
            if let Some(ratio) = plan.max_p99_ratio.filter(|_| stable_expected) {
                match s.p99_ms.filter(|v| v.is_finite() && *v > 0.0) {
                    Some(sp99) if s.requests >= plan.min_requests && p99 / sp99 > ratio => {
                        failures.push(format!(
                            "canary p99 {p99:.0} ms is {:.2}× stable's {sp99:.0} ms, above max_p99_ratio {ratio}",
                            p99 / sp99
                        ));
                    }
                    Some(_) => {}
                    None if s.requests >= plan.min_requests => {
                        inconclusive.push(
                            "no stable p99 in the window: no baseline for max_p99_ratio"
                                .to_string(),
                        );
                    }
                    None => {}
                }
            }
        }
        _ if needs_p99 => inconclusive.push("no canary p99 latency in the window".to_string()),
        _ => {}
    }
    if !failures.is_empty() {
        (Verdict::Fail, failures)
    } else if !inconclusive.is_empty() {
        (Verdict::Inconclusive, inconclusive)
    } else {
        (Verdict::Pass, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TrackSample;

    fn track(requests: u64, errors: u64, p99: f64) -> TrackSample {
        TrackSample {
            requests,
            errors,
            error_rate: if requests > 0 {
                Some(errors as f64 / requests as f64)
            } else {
                None
            },
            p50_ms: Some(p99 / 2.0),
            p95_ms: Some(p99 * 0.9),
            p99_ms: Some(p99),
            totals: None,
        }
    }

    fn plan() -> AnalysisPlan {
        AnalysisPlan {
            min_requests: 20,
            max_error_rate: Some(0.01),
            max_p99_ms: Some(500.0),
            max_error_rate_increase: Some(0.005),
            max_p99_ratio: Some(1.5),
            ..AnalysisPlan::default()
        }
    }

    #[test]
    fn a_missing_baseline_with_relative_limits_is_never_a_pass() {
        let pair = TrackPair {
            canary: track(500, 0, 100.0),
            stable: TrackSample::default(),
        };
        let (v, reasons) = judge(&pair, &plan());
        assert_eq!(v, Verdict::Inconclusive, "{reasons:?}");
        assert!(reasons[0].contains("no baseline"), "{reasons:?}");
        // An absolute limit crossed still fails without a baseline.
        let pair = TrackPair {
            canary: track(500, 100, 100.0),
            stable: TrackSample::default(),
        };
        assert_eq!(judge(&pair, &plan()).0, Verdict::Fail);
    }

    #[test]
    fn at_100_percent_only_the_absolute_limits_apply() {
        let pair = TrackPair {
            canary: track(500, 0, 100.0),
            stable: TrackSample::default(),
        };
        assert_eq!(judge_at(&pair, &plan(), 100), (Verdict::Pass, vec![]));
        let pair = TrackPair {
            canary: track(500, 100, 100.0),
            stable: TrackSample::default(),
        };
        assert_eq!(judge_at(&pair, &plan(), 100).0, Verdict::Fail);
    }

    #[test]
    fn figures_outside_their_domain_are_invalid_not_a_pass() {
        for bad in [
            TrackSample {
                error_rate: Some(-0.35),
                ..track(500, 0, 100.0)
            },
            TrackSample {
                error_rate: Some(1.5),
                ..track(500, 0, 100.0)
            },
            TrackSample {
                p99_ms: Some(-3.0),
                ..track(500, 0, 100.0)
            },
            TrackSample {
                p99_ms: Some(f64::NAN),
                ..track(500, 0, 100.0)
            },
            TrackSample {
                errors: 600,
                ..track(500, 0, 100.0)
            },
        ] {
            let pair = TrackPair {
                canary: bad.clone(),
                stable: track(2000, 2, 100.0),
            };
            let (v, reasons) = judge(&pair, &plan());
            assert_eq!(v, Verdict::Inconclusive, "{bad:?}");
            assert!(reasons[0].contains("invalid data"), "{reasons:?}");
            assert!(validate(&pair).is_err());
        }
    }

    #[test]
    fn too_few_requests_is_inconclusive() {
        let pair = TrackPair {
            canary: track(5, 0, 10.0),
            stable: track(100, 0, 10.0),
        };
        assert_eq!(judge(&pair, &plan()).0, Verdict::Inconclusive);
    }

    #[test]
    fn no_data_is_never_a_pass() {
        let pair = TrackPair {
            canary: TrackSample {
                requests: 100,
                ..TrackSample::default()
            },
            stable: TrackSample::default(),
        };
        assert_eq!(judge(&pair, &plan()).0, Verdict::Inconclusive);
        let mut nan = track(100, 0, 10.0);
        nan.p99_ms = Some(f64::NAN);
        let pair = TrackPair {
            canary: nan,
            stable: track(100, 0, 10.0),
        };
        assert_eq!(judge(&pair, &plan()).0, Verdict::Inconclusive);
    }

    #[test]
    fn healthy_canary_passes() {
        let pair = TrackPair {
            canary: track(100, 0, 20.0),
            stable: track(300, 0, 18.0),
        };
        assert_eq!(judge(&pair, &plan()), (Verdict::Pass, vec![]));
    }

    #[test]
    fn absolute_and_relative_failures() {
        let pair = TrackPair {
            canary: track(100, 50, 20.0),
            stable: track(300, 0, 18.0),
        };
        let (v, reasons) = judge(&pair, &plan());
        assert_eq!(v, Verdict::Fail);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        let pair = TrackPair {
            canary: track(100, 0, 90.0),
            stable: track(300, 0, 30.0),
        };
        let (v, reasons) = judge(&pair, &plan());
        assert_eq!(v, Verdict::Fail);
        assert!(reasons[0].contains("max_p99_ratio"));
        let pair = TrackPair {
            canary: track(100, 0, 800.0),
            stable: track(0, 0, 0.0),
        };
        assert_eq!(judge(&pair, &plan()).0, Verdict::Fail);
    }
}
