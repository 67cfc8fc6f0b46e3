//! `cutover replay ID [--alpha A] [--tolerance T] [--slow-ms M]`: every
//! sequential analysis of a journal recomputed from the cumulative counts it
//! carries (`crate::judge::kinds::replay`), first with the journal's own
//! settings (every verdict and every evidence figure must come out the same),
//! then with the settings given, saying where they would have decided
//! differently. Another `slow_ms` cannot be recounted from counts: the
//! journal keeps no per-request latencies, so the slow kind is left out and
//! the reason printed.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::args::ReplayArgs;
use super::inspect::{find, resolve_state_dir};
use super::{error, Exit};
use crate::judge::kinds::{replay as recompute, Replayed, SequentialRecord};
use crate::judge::{EventKind, Verdict};
use crate::record::Event;

/// One journaled analysis with the judge's record.
struct Analysis {
    seq: u64,
    ts: DateTime<Utc>,
    weight: u8,
    record: SequentialRecord,
}

/// The judge's call over its kinds.
fn call(failed: bool, passed: bool) -> &'static str {
    if failed {
        "fail"
    } else if passed {
        "pass"
    } else {
        "inconclusive"
    }
}

fn journaled_call(r: &SequentialRecord) -> &'static str {
    call(r.failed(), r.passed())
}

fn replayed_call(r: &Replayed) -> &'static str {
    call(r.failed(), r.passed())
}

/// Splits the analyses into canaries: one starts where every kind's first
/// reading is an origin (a new traffic stage, a resumed one).
fn canaries(all: Vec<Analysis>) -> Vec<Vec<Analysis>> {
    let mut out: Vec<Vec<Analysis>> = Vec::new();
    for a in all {
        let starts = !a.record.kinds.is_empty()
            && a.record.kinds.iter().all(|k| {
                matches!(k.readings.first(), Some(crate::judge::Reading::Rebase(_)))
                    && k.readings.len() == 1
            });
        match out.last_mut() {
            Some(last) if !starts => last.push(a),
            _ => out.push(vec![a]),
        }
    }
    out
}

/// The kinds' evidence and verdicts as journaled, for comparison.
fn journaled(r: &SequentialRecord) -> Vec<(EventKind, crate::judge::Evidence, Verdict)> {
    r.kinds
        .iter()
        .map(|k| (k.kind, k.evidence.clone(), k.verdict))
        .collect()
}

/// "5xx e=9.0e10" for each kind.
fn evidence_text(kinds: &[(EventKind, crate::judge::Evidence, Verdict)]) -> String {
    kinds
        .iter()
        .map(|(kind, e, _)| {
            let name = match kind {
                EventKind::Errors => "5xx",
                EventKind::Slow => "slow",
            };
            let v = e.ln_e_fail.exp();
            if v >= 1e4 {
                format!("{name} evidence {v:.1e}")
            } else {
                format!("{name} evidence {v:.1}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `cutover replay`.
pub fn replay(args: ReplayArgs) -> Exit {
    let dir = resolve_state_dir(args.state_dir);
    let read = match find(&dir, &args.id) {
        Ok(r) => r,
        Err(message) => {
            error(message);
            return Exit::Usage;
        }
    };
    let all: Vec<Analysis> = read
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Analysis {
                weight,
                sequential: Some(record),
                ..
            } => Some(Analysis {
                seq: e.seq,
                ts: e.ts,
                weight: *weight,
                record: record.clone(),
            }),
            _ => None,
        })
        .collect();
    let id = read.id();
    let Some(first) = all.first().map(|a| a.record.clone()) else {
        println!("{id}: no sequential analysis to replay (method = \"threshold\", or the canary never started)");
        return Exit::Failed;
    };
    let c = first.config;
    let per_kind = c.alpha / f64::from(first.kinds_judged.max(1));
    if !args.json {
        println!(
            "replay of {id}: {} sequential analyses; journal's settings: alpha {} over {} kind(s) ({} each), tolerance {}, slow_ms {}",
            all.len(),
            c.alpha,
            first.kinds_judged,
            per_kind,
            c.tolerance,
            c.slow_ms
        );
    }
    // Another slow_ms: the slow counts were taken at the journal's.
    let drop_slow = args.slow_ms.is_some_and(|m| m != c.slow_ms);
    if drop_slow && !args.json {
        println!(
            "slow_ms {}: the journal counted slow requests at {} ms; recounting at another threshold needs each request's latency, which the journal does not keep (only counts and the window's percentiles). The 5xx verdicts are recomputed; the slow kind is left out below.",
            args.slow_ms.unwrap_or_default(),
            c.slow_ms
        );
    }
    let mut all = all;
    if drop_slow {
        for a in &mut all {
            a.record.kinds.retain(|k| k.kind != EventKind::Slow);
        }
    }
    let other = args.alpha.is_some() || args.tolerance.is_some() || drop_slow;
    let mut exact = true;
    let mut differences = 0usize;
    for (n, canary) in canaries(all).iter().enumerate() {
        let records: Vec<SequentialRecord> = canary.iter().map(|a| a.record.clone()).collect();
        let same = match recompute(&records, None, None) {
            Ok(r) => r,
            Err(e) => {
                error(format!("the journal's settings are out of range: {e}"));
                return Exit::Failed;
            }
        };
        let changed = if other {
            match recompute(&records, args.alpha, args.tolerance) {
                Ok(r) => Some(r),
                Err(e) => {
                    error(e);
                    return Exit::Usage;
                }
            }
        } else {
            None
        };
        let mismatches: Vec<usize> = (0..canary.len())
            .filter(|&i| same[i].kinds != journaled(&canary[i].record))
            .collect();
        exact &= mismatches.is_empty();
        if args.json {
            for (i, a) in canary.iter().enumerate() {
                let line = json!({
                    "seq": a.seq,
                    "ts": a.ts,
                    "weight": a.weight,
                    "journal": journaled_call(&a.record),
                    "recomputed": replayed_call(&same[i]),
                    "identical": !mismatches.contains(&i),
                    "with_settings": changed.as_ref().map(|c| replayed_call(&c[i])),
                });
                println!("{line}");
            }
            continue;
        }
        println!(
            "canary {} (analyses {}–{}): {}",
            n + 1,
            canary[0].seq,
            canary[canary.len() - 1].seq,
            if mismatches.is_empty() {
                format!(
                    "all {} recomputed with the journal's settings: every verdict and evidence figure identical",
                    canary.len()
                )
            } else {
                format!(
                    "{} of {} analyses do NOT recompute to what the journal says (first at #{})",
                    mismatches.len(),
                    canary.len(),
                    canary[mismatches[0]].seq
                )
            }
        );
        let first_fail = |calls: &dyn Fn(usize) -> bool| (0..canary.len()).find(|&i| calls(i));
        let describe = |i: Option<usize>| match i {
            Some(i) => format!(
                "#{} ({}, at {}%)",
                canary[i].seq,
                canary[i].ts.format("%H:%M:%S%.3f"),
                canary[i].weight
            ),
            None => "never".to_string(),
        };
        let journal_fail = first_fail(&|i| canary[i].record.failed());
        match journal_fail {
            Some(_) => println!(
                "  journal: the judge failed the canary at {}",
                describe(journal_fail)
            ),
            None => println!("  journal: the judge never failed the canary"),
        }
        let Some(changed) = changed else { continue };
        let settings = format!(
            "alpha {}, tolerance {}{}",
            args.alpha.unwrap_or(c.alpha),
            args.tolerance.unwrap_or(c.tolerance),
            if drop_slow { ", 5xx only" } else { "" }
        );
        let differing: Vec<usize> = (0..canary.len())
            .filter(|&i| replayed_call(&changed[i]) != journaled_call(&canary[i].record))
            .collect();
        differences += differing.len();
        let new_fail = first_fail(&|i| changed[i].failed());
        println!(
            "  with {settings}: {} of {} analyses decide differently; {}",
            differing.len(),
            canary.len(),
            match new_fail {
                Some(_) => format!("it would fail the canary at {}", describe(new_fail)),
                None => "it would never fail the canary".to_string(),
            }
        );
        for &i in differing.iter().take(20) {
            let a = &canary[i];
            println!(
                "    #{} {} at {}%: journal {} → {} ({})",
                a.seq,
                a.ts.format("%H:%M:%S%.3f"),
                a.weight,
                journaled_call(&a.record),
                replayed_call(&changed[i]),
                evidence_text(&changed[i].kinds)
            );
        }
        if differing.len() > 20 {
            println!("    … and {} more", differing.len() - 20);
        }
    }
    if !args.json && other && differences == 0 {
        println!("no analysis decides differently with these settings");
    }
    if exact {
        Exit::Succeeded
    } else {
        eprintln!("the journal's verdicts do not recompute: the journal was edited, or written by another build");
        Exit::Failed
    }
}
