//! The command source: a shell command prints one JSON sample of both tracks,
//! `{"canary": {"requests": N, "errors": N, "p50_ms": X, "p99_ms": X}, "stable": {…}}`,
//! the figures over the window (`$CUTOVER_WINDOW_SECONDS`). For the sequential
//! judge each track also prints its cumulative counters since some origin of
//! its own, `"totals": {"requests": N, "errors": N, "slow": N}` (`slow`: requests
//! slower than `$CUTOVER_SLOW_MS`; leave it out when the command cannot tell).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{MetricError, MetricSource};

use crate::check::{shell, CheckContext};
use crate::domain::{Totals, TrackPair, TrackSample};

pub struct CommandSource {
    sample: String,
    ctx: CheckContext,
    /// `[analysis] slow_ms`, passed on as `CUTOVER_SLOW_MS`.
    slow_ms: u64,
}

impl CommandSource {
    pub fn new(sample: String, ctx: CheckContext, slow_ms: u64) -> Self {
        CommandSource {
            sample,
            ctx,
            slow_ms,
        }
    }
}

#[derive(Deserialize)]
struct Printed {
    canary: PrintedTrack,
    stable: PrintedTrack,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintedTrack {
    requests: u64,
    #[serde(default)]
    errors: Option<u64>,
    #[serde(default)]
    error_rate: Option<f64>,
    #[serde(default)]
    p50_ms: Option<f64>,
    #[serde(default)]
    p95_ms: Option<f64>,
    #[serde(default)]
    p99_ms: Option<f64>,
    #[serde(default)]
    totals: Option<PrintedTotals>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintedTotals {
    requests: u64,
    errors: u64,
    #[serde(default)]
    slow: Option<u64>,
}

impl PrintedTrack {
    fn into_sample(self) -> TrackSample {
        let error_rate = self.error_rate.or_else(|| {
            let errors = self.errors?;
            (self.requests > 0).then(|| errors as f64 / self.requests as f64)
        });
        let errors = self
            .errors
            .or_else(|| error_rate.map(|r| (r * self.requests as f64).round() as u64))
            .unwrap_or(0);
        TrackSample {
            requests: self.requests,
            errors,
            error_rate: error_rate.filter(|r| r.is_finite()),
            p50_ms: self.p50_ms.filter(|v| v.is_finite()),
            p95_ms: self.p95_ms.filter(|v| v.is_finite()),
            p99_ms: self.p99_ms.filter(|v| v.is_finite()),
            totals: self.totals.map(|t| Totals {
                requests: t.requests,
                errors: t.errors,
                slow: t.slow,
            }),
        }
    }
}

/// Parses the command's output: the last line that is a JSON object.
fn parse(lines: &[String]) -> Result<TrackPair, String> {
    let line = lines
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or("the sample command printed no JSON object")?;
    let p: Printed = serde_json::from_str(line)
        .map_err(|e| format!("the sample command printed {line:?}: {e}"))?;
    Ok(TrackPair {
        canary: p.canary.into_sample(),
        stable: p.stable.into_sample(),
    })
}

#[async_trait]
impl MetricSource for CommandSource {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn sample(&self, window: Duration) -> Result<TrackPair, MetricError> {
        let mut env = BTreeMap::new();
        env.insert(
            "CUTOVER_WINDOW_SECONDS".to_string(),
            window.as_secs().max(1).to_string(),
        );
        env.insert("CUTOVER_SLOW_MS".to_string(), self.slow_ms.to_string());
        let a = shell::run(
            &self.sample,
            &env,
            &self.ctx,
            Duration::from_secs(30),
            "metrics sample",
            false,
        )
        .await;
        if !a.passed {
            return Err(MetricError::new(
                "command",
                format!("sample command failed ({})", a.message),
            ));
        }
        parse(&a.tail).map_err(|e| MetricError::new("command", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_rates() {
        let pair = parse(&[
            "noise".into(),
            r#"{"canary": {"requests": 200, "errors": 10, "p99_ms": 120}, "stable": {"requests": 800, "error_rate": 0.001}}"#.into(),
        ])
        .unwrap();
        assert_eq!(pair.canary.error_rate, Some(0.05));
        assert_eq!(pair.canary.p99_ms, Some(120.0));
        assert_eq!(pair.stable.errors, 1);
        assert!(parse(&["nothing".into()]).is_err());
        assert!(parse(&[
            r#"{"canary": {"requests": 1, "bogus": 2}, "stable": {"requests": 1}}"#.into()
        ])
        .is_err());
        assert_eq!(pair.canary.totals, None);
    }

    #[test]
    fn parses_cumulative_totals_with_or_without_slow() {
        let pair = parse(&[r#"{"canary": {"requests": 20, "totals": {"requests": 900, "errors": 4, "slow": 7}}, "stable": {"requests": 80, "totals": {"requests": 9000, "errors": 30}}}"#.into()]).unwrap();
        assert_eq!(
            pair.canary.totals,
            Some(Totals {
                requests: 900,
                errors: 4,
                slow: Some(7)
            })
        );
        assert_eq!(pair.stable.totals.and_then(|t| t.slow), None);
        // A typo in the totals is an error, not a silent zero.
        assert!(parse(&[r#"{"canary": {"requests": 1, "totals": {"requests": 1, "error": 0}}, "stable": {"requests": 1}}"#.into()]).is_err());
    }
}
