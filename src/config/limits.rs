//! The bounds a plan's values must keep so that the engine can honour them:
//! durations, whole numbers, name lengths and character sets, and the
//! duration syntax.
//!
//! Each bound says why in one line; `check` refuses a value outside it with
//! the range that would be right.

use std::ops::RangeInclusive;
use std::time::Duration;

/// A closed range of durations a key accepts, and why.
#[derive(Debug, Clone, Copy)]
pub struct DurationBounds {
    pub min: Duration,
    pub max: Duration,
}

impl DurationBounds {
    pub fn contains(&self, d: Duration) -> bool {
        self.min <= d && d <= self.max
    }

    /// "from 100ms to 1h", "up to 24h".
    pub fn describe(&self) -> String {
        if self.min.is_zero() {
            format!("up to {}", show(self.max))
        } else {
            format!("from {} to {}", show(self.min), show(self.max))
        }
    }
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const HOUR: u64 = 3600;

/// `[analysis] interval`: each sample is a journal line written with
/// `fsync`; faster than 10 a second floods the disk for nothing.
pub const INTERVAL: DurationBounds = DurationBounds {
    min: Duration::from_millis(100),
    max: secs(HOUR),
};

/// `[analysis] window`: the built-in router keeps per-second counts for the
/// window; an hour is 3,600 buckets per track.
pub const WINDOW: DurationBounds = DurationBounds {
    min: secs(1),
    max: secs(HOUR),
};

/// A check's `timeout`: zero always fails; a day is longer than any check
/// worth waiting for inside one release.
pub const CHECK_TIMEOUT: DurationBounds = DurationBounds {
    min: Duration::from_millis(100),
    max: secs(24 * HOUR),
};

/// A check's `retry_delay`.
pub const RETRY_DELAY: DurationBounds = DurationBounds {
    min: Duration::ZERO,
    max: secs(HOUR),
};

/// `[traffic] bake`, per step.
pub const BAKE: DurationBounds = DurationBounds {
    min: Duration::ZERO,
    max: secs(24 * HOUR),
};

/// `[traffic] step_deadline`: also at least one `interval` (checked with it).
pub const STEP_DEADLINE: DurationBounds = DurationBounds {
    min: secs(1),
    max: secs(24 * HOUR),
};

/// `[traffic] unattended_after`.
pub const UNATTENDED_AFTER: DurationBounds = DurationBounds {
    min: secs(1),
    max: secs(24 * HOUR),
};

/// `[lock] ttl`: etcd raises a lease below about 1.5 election timeouts (2 s
/// with its defaults) and grants whole seconds; a crashed run's lease keeps
/// the next run out for this long, so more than a few minutes only delays
/// a takeover.
pub const LOCK_TTL: DurationBounds = DurationBounds {
    min: secs(2),
    max: secs(300),
};

/// `[lock] wait`: how long a run waits for a held release lease.
pub const LOCK_WAIT: DurationBounds = DurationBounds {
    min: Duration::ZERO,
    max: secs(HOUR),
};

/// `retries` per check.
pub const RETRIES: RangeInclusive<i64> = 0..=1000;
/// `[analysis] min_requests`.
pub const MIN_REQUESTS: RangeInclusive<i64> = 1..=1_000_000_000;
/// `[analysis] failure_limit`.
pub const FAILURE_LIMIT: RangeInclusive<i64> = 1..=1000;
/// `[analysis] slow_ms`: from a millisecond to an hour (the built-in
/// router's latency histograms stop at an hour).
pub const SLOW_MS: RangeInclusive<i64> = 1..=3_600_000;
/// `[analysis] alpha`: below 0.0001 a rollback needs ln(1/alpha) > 9.2 nats
/// of evidence, twice the default's, for no practical gain; above 0.2 one
/// canary in five no worse than stable could be rolled back.
pub const ALPHA: RangeInclusive<f64> = 0.0001..=0.2;
/// `[analysis] tolerance`: a ratio of event rates; the judge's grid spans
/// 1/1000 to 1000 times it.
pub const TOLERANCE: RangeInclusive<f64> = 1.0..=100.0;
/// A traffic step, in percent.
pub const STEP: RangeInclusive<i64> = 1..=100;
/// An http check's `expect_status`.
pub const HTTP_STATUS: RangeInclusive<i64> = 100..=599;

/// `service` and `version` each: the deployment id
/// `<yyyymmddThhmmss>-<service>-<version>` names the journal file
/// (`<id>.jsonl`), and file names stop at 255 bytes.
pub const MAX_ID_PART: usize = 100;
/// A check's name, a manual prompt's first line, the environment: shown in
/// one row of the dashboard.
pub const MAX_NAME: usize = 200;
/// Any other string a plan holds (a prompt, a URL, a query, a path).
pub const MAX_TEXT: usize = 4096;
/// A command (`sh -c` takes it as one argument; Linux caps one at 128 KiB).
pub const MAX_COMMAND: usize = 64 * 1024;
/// HAProxy backend and server names.
pub const MAX_HAPROXY_NAME: usize = 100;
/// A router group member's `name`: one entry of the dashboard's member row.
pub const MAX_MEMBER_NAME: usize = 32;
/// Routers in one group: each change opens this many connections at once
/// (within [`MEMBER_CONCURRENCY`]).
pub const MAX_MEMBERS: usize = 256;
/// Group members changed at the same time; the rest wait for a slot.
pub const MEMBER_CONCURRENCY: usize = 32;
/// `[lock] endpoints`: etcd clusters have 3, 5 or 7 members.
pub const MAX_ENDPOINTS: usize = 16;
/// An etcd key.
pub const MAX_LOCK_KEY: usize = 512;

/// Characters of `service`: safe in a file name, in a URL and in a shell word.
pub fn is_service_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Characters of `version` and `previous`: those of `service` and the
/// version punctuation of semver and Debian ('+', '~').
pub fn is_version_char(c: char) -> bool {
    is_service_char(c) || matches!(c, '+' | '~')
}

/// HAProxy's own name characters (proxy and server names, `cfgparse`'s
/// `invalid_char`): letters, digits, '-', '_', '.', ':'.
pub fn is_haproxy_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// Parses "500ms", "30s", "5m", "1h30m" (humantime's syntax) into a duration,
/// with a message that says what is right when it is not one. Never panics:
/// a number too large for a duration is an error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXAMPLE: &str =
        "write a whole number and a unit (ms, s, m or h), like \"500ms\", \"30s\" or \"5m\"";
    let trimmed = s.trim();
    match humantime::parse_duration(trimmed) {
        Ok(d) => Ok(d),
        Err(humantime::DurationError::Empty) => Err(format!("is empty: {EXAMPLE}")),
        Err(humantime::DurationError::NumberOverflow) => {
            Err("is far longer than any duration cutover waits".to_string())
        }
        Err(humantime::DurationError::UnknownUnit { unit, .. }) => Err(format!(
            "is not a duration: {} is not a unit; {EXAMPLE}",
            super::error::quoted(&unit)
        )),
        Err(_) => Err(format!("is not a duration: {EXAMPLE}")),
    }
}

/// A bound as the config would write it, in its largest whole unit
/// ("100ms", "90s", "24h").
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_say_what_is_right() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 1h30m "), Ok(Duration::from_secs(5400)));
        for bad in ["", "ten seconds", "5 parsecs", "-1s", "s", "1x"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(!e.contains(" at "), "no parser positions: {e}");
            assert!(e.contains("\"30s\"") || e.contains("unit"), "{bad}: {e}");
        }
        // Would overflow: an error, not a panic.
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("300000000000y").is_ok_and(|d| !INTERVAL.contains(d)));
    }

    #[test]
    fn bounds_describe_themselves() {
        assert_eq!(INTERVAL.describe(), "from 100ms to 1h");
        assert_eq!(BAKE.describe(), "up to 24h");
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(Duration::ZERO), "0ms");
    }
}
