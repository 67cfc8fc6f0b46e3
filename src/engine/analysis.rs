//! Judging one sample of canary against stable: pass, fail or inconclusive.

use crate::config::AnalysisPlan;
use crate::domain::TrackPair;
use crate::domain::Verdict;

/// The verdict on one sample and why. Too little data is inconclusive, never a pass.
pub fn judge(pair: &TrackPair, plan: &AnalysisPlan) -> (Verdict, Vec<String>) {
    let c = &pair.canary;
    let s = &pair.stable;
    let mut inconclusive = Vec::new();
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
            if let Some(max_inc) = plan.max_error_rate_increase {
                // Compare only against a stable track with enough data of its own.
                if let Some(srate) = s.error_rate.filter(|r| r.is_finite()) {
                    if s.requests >= plan.min_requests && rate - srate > max_inc {
                        failures.push(format!(
                            "canary error rate {:.2}% exceeds stable {:.2}% by more than {:.2} points",
                            rate * 100.0,
                            srate * 100.0,
                            max_inc * 100.0
                        ));
                    }
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
            if let Some(ratio) = plan.max_p99_ratio {
                if let Some(sp99) = s.p99_ms.filter(|v| v.is_finite() && *v > 0.0) {
                    if s.requests >= plan.min_requests && p99 / sp99 > ratio {
                        failures.push(format!(
                            "canary p99 {p99:.0} ms is {:.2}× stable's {sp99:.0} ms, above max_p99_ratio {ratio}",
                            p99 / sp99
                        ));
                    }
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
