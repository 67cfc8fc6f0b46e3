use super::*;
use crate::judge::rule::PassBasis;
use crate::judge::sim::{scenarios, simulate};
use crate::judge::{Decision, TrackCounts};

fn config(max_rate: Option<f64>) -> JudgeConfig {
    JudgeConfig {
        alpha: 0.01,
        tolerance: 1.0,
        policy: PassPolicy {
            max_ratio: Some(2.0),
            max_rate,
            min_canary_requests: 20,
        },
        slow_ms: 500,
    }
}

fn counts(cr: u64, ce: u64, sr: u64, se: u64) -> Counts {
    Counts {
        canary: TrackCounts::new(cr, ce),
        stable: TrackCounts::new(sr, se),
    }
}

#[test]
fn each_kind_is_tested_at_alpha_over_the_number_of_kinds() {
    let two = Judge::new(config(None), &[EventKind::Errors, EventKind::Slow]).unwrap();
    assert!((two.per_kind().alpha - 0.005).abs() < 1e-15);
    let one = Judge::new(config(None), &[EventKind::Errors]).unwrap();
    assert!((one.per_kind().alpha - 0.01).abs() < 1e-15);
    assert_eq!(two.kinds(), [EventKind::Errors, EventKind::Slow]);
}

#[test]
fn the_first_counts_are_the_origin_and_a_failing_kind_fails_the_whole() {
    let mut j = Judge::new(config(None), &[EventKind::Errors, EventKind::Slow]).unwrap();
    // Counters that ran before the canary started are not evidence.
    let r = j.observe(
        &[
            (EventKind::Errors, counts(0, 0, 5_000, 500)),
            (EventKind::Slow, counts(0, 0, 5_000, 10)),
        ],
        false,
    );
    assert_eq!(
        r.kinds[0].readings,
        [Reading::Rebase(counts(0, 0, 5_000, 500))]
    );
    assert_eq!(r.kinds[0].evidence.judged, Counts::default());
    assert!(!r.failed() && !r.passed());
    // The canary fails every request; slow is fine.
    let mut failed_at = None;
    for i in 1..=20u64 {
        let r = j.observe(
            &[
                (EventKind::Errors, counts(5 * i, 5 * i, 5_000 + 95 * i, 500)),
                (EventKind::Slow, counts(5 * i, 0, 5_000 + 95 * i, 10)),
            ],
            false,
        );
        if r.failed() {
            failed_at = Some(i);
            assert_eq!(r.kinds[0].verdict, Verdict::Fail);
            assert_ne!(r.kinds[1].verdict, Verdict::Fail);
            // At alpha / 2 per kind: ln(200) nats of evidence.
            assert!(r.kinds[0].evidence.ln_e_fail >= 200f64.ln());
            break;
        }
    }
    assert!(failed_at.is_some_and(|i| i <= 3), "{failed_at:?}");
    // A fail stands, whatever comes next.
    let r = j.observe(
        &[(EventKind::Errors, counts(10_000, 100, 1_000_000, 10_000))],
        true,
    );
    assert!(r.failed());
    // A kind the source did not report this time gets no reading.
    assert!(r.kinds[1].readings.is_empty());
}

#[test]
fn a_counter_reset_is_journaled_and_rebased_not_judged() {
    let mut j = Judge::new(config(None), &[EventKind::Errors]).unwrap();
    j.observe(&[(EventKind::Errors, counts(0, 0, 0, 0))], false);
    j.observe(&[(EventKind::Errors, counts(100, 1, 900, 9))], false);
    let r = j.observe(&[(EventKind::Errors, counts(3, 0, 950, 9))], false);
    let k = &r.kinds[0];
    assert!(k.invalid.as_deref().unwrap().contains("went down"), "{k:?}");
    assert_eq!(
        k.readings,
        [
            Reading::Counts(counts(3, 0, 950, 9)),
            Reading::Rebase(counts(3, 0, 950, 9))
        ]
    );
    assert_eq!(k.evidence.judged, counts(100, 1, 900, 9));
    let r = j.observe(&[(EventKind::Errors, counts(103, 1, 1850, 18))], false);
    assert_eq!(r.kinds[0].evidence.judged, counts(200, 2, 1800, 18));
    // Out-of-step counters: journaled, the next reading covers the interval.
    let r = j.observe(&[(EventKind::Errors, counts(104, 5, 1900, 18))], false);
    assert!(r.kinds[0].invalid.is_some());
    assert_eq!(r.kinds[0].readings.len(), 1);
    let r = j.observe(&[(EventKind::Errors, counts(110, 5, 1950, 18))], false);
    assert!(r.kinds[0].invalid.is_none());
    assert_eq!(r.kinds[0].evidence.judged, counts(207, 6, 1900, 18));
}

#[test]
fn no_events_anywhere_passes_only_on_the_canarys_own_rate_after_the_bake() {
    let mut j = Judge::new(config(Some(0.01)), &[EventKind::Errors, EventKind::Slow]).unwrap();
    let mut estimates = Vec::new();
    let mut passed_at = None;
    for i in 0..=400u64 {
        let c = counts(10 * i, 0, 190 * i, 0);
        let r = j.observe(&[(EventKind::Errors, c), (EventKind::Slow, c)], i >= 5);
        assert!(!r.failed());
        if r.passed() {
            passed_at = Some(10 * i);
            for k in &r.kinds {
                assert!(
                    matches!(k.verdict, Verdict::Pass(PassBasis::Rate { rate_high }) if rate_high <= 0.01),
                    "{k:?}"
                );
            }
            break;
        }
        if let Some(n) = r.kinds[0].more_requests {
            estimates.push((i, n));
        }
    }
    let canary = passed_at.expect("a pass on the rate");
    // ln(200) + the mixture's cost over 1 % a request: several hundred.
    assert!((500..1_500).contains(&canary), "{canary}");
    // The estimate, in requests of both tracks at 5 % share, counts down to it.
    let (i, n) = estimates[estimates.len() / 2];
    let predicted = 200 * i + n;
    let actual = canary * 20;
    assert!(
        predicted.abs_diff(actual) <= actual / 10,
        "{predicted} vs {actual}"
    );
    // Without a rate to show, nothing passes.
    let mut j = Judge::new(config(None), &[EventKind::Errors]).unwrap();
    for i in 0..=400u64 {
        let r = j.observe(&[(EventKind::Errors, counts(10 * i, 0, 190 * i, 0))], true);
        assert!(!r.passed());
    }
}

#[test]
fn replay_of_the_records_through_json_gives_the_same_verdicts_and_other_settings_differ() {
    let all = scenarios(30_000);
    let scenario = all
        .iter()
        .find(|s| s.name.starts_with("1 % → 3 % errors"))
        .unwrap();
    let run = simulate(
        scenario,
        &SequentialTest::new(Settings::new(0.005, 1.0).unwrap()),
        11,
    );
    assert!(run.rolled_back_at.is_some());
    let mut j = Judge::new(config(Some(0.01)), &[EventKind::Errors, EventKind::Slow]).unwrap();
    let mut records = vec![j.observe(
        &[
            (EventKind::Errors, Counts::default()),
            (EventKind::Slow, Counts::default()),
        ],
        false,
    )];
    for (i, c) in run.readings.iter().enumerate() {
        // No slow events; slow is reported every other reading.
        let slow = counts(c.canary.requests, 0, c.stable.requests, 0);
        let mut kinds = vec![(EventKind::Errors, *c)];
        if i % 2 == 0 {
            kinds.push((EventKind::Slow, slow));
        }
        records.push(j.observe(&kinds, i > 40));
    }
    assert!(records.last().unwrap().failed());
    assert_eq!(
        records.last().unwrap().kinds[0].evidence.decision,
        Decision::Fail
    );
    let json: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert!(
        json[1].contains(r#""verdict":"inconclusive""#),
        "{}",
        json[1]
    );
    let back: Vec<SequentialRecord> = json
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    assert_eq!(back, records);
    let again = replay(&back, None, None).unwrap();
    assert_eq!(again.len(), records.len());
    for (r, a) in records.iter().zip(&again) {
        let journaled: Vec<(EventKind, Evidence, Verdict)> = r
            .kinds
            .iter()
            .map(|k| (k.kind, k.evidence.clone(), k.verdict))
            .collect();
        assert_eq!(a.kinds, journaled);
        assert_eq!(a.failed(), r.failed());
    }
    // A tolerance of 4 does not fail this canary (3× stable's rate).
    let lenient = replay(&back, None, Some(4.0)).unwrap();
    assert!(lenient.iter().all(|a| !a.failed()));
    // A smaller alpha fails later or not at all.
    let strict = replay(&back, Some(0.0001), None).unwrap();
    let first_fail = |v: &[Replayed]| v.iter().position(Replayed::failed);
    assert!(first_fail(&strict).is_none_or(|s| s > first_fail(&again).unwrap()));
    assert!(replay(&back, Some(2.0), None).is_err());
}
