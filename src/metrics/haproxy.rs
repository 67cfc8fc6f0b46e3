//! The HAProxy source: per-server request and 5xx counts from `show stat`,
//! as deltas between consecutive samples, and HAProxy's average response time.
//!
//! HAProxy keeps running totals and no percentiles, so each sample covers the
//! time since the previous one (the analysis `window` does not apply), and
//! only `p50_ms` is filled, with the average response time (`rtime`, over the
//! server's last 1024 requests). The running totals themselves go to the
//! sequential judge as `totals`; HAProxy counts no per-request latencies, so
//! there is no slow count.
//!
//! With a group of HAProxy routers, every member's stats socket is read and
//! the counts are summed (the response time is the members' average,
//! weighted by their requests; the totals add up); a member that cannot be
//! read makes the sample fail, naming it, rather than judge part of the
//! traffic.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{MetricError, MetricSource};

use crate::config::HaproxyTarget;
use crate::domain::{Totals, TrackPair, TrackSample};
use crate::haproxy_api::{server_row, RuntimeApi};

/// One server's running totals in `show stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counters {
    requests: u64,
    errors: u64,
    /// Average response time in ms; `None` when HAProxy leaves it empty.
    rtime_ms: Option<f64>,
}

/// Finds `backend/server`'s totals in `show stat` output.
fn server_counters(stat: &str, backend: &str, server: &str) -> Result<Counters, String> {
    let row = server_row(stat, backend, server)?;
    let number = |name: &str| row.get(name).and_then(|v| v.parse::<u64>().ok());
    // req_tot counts HTTP requests per server (HAProxy 2.x); stot counts
    // sessions, one per request in HTTP mode, and is there in every version.
    let requests = number("req_tot")
        .or_else(|| number("stot"))
        .ok_or_else(|| {
            format!("`show stat` has no request count (req_tot or stot) for {backend}/{server}")
        })?;
    let errors = number("hrsp_5xx").ok_or_else(|| {
        format!("`show stat` has no hrsp_5xx for {backend}/{server}: the backend must be in `mode http`")
    })?;
    let rtime_ms = row.get("rtime").and_then(|v| v.parse::<f64>().ok());
    Ok(Counters {
        requests,
        errors,
        rtime_ms,
    })
}

/// What happened between two readings of one server. No previous reading, or
/// a counter that went down (HAProxy restarted or counters cleared), is no
/// data: the reading becomes the new baseline.
fn delta(previous: Option<Counters>, now: Counters) -> TrackSample {
    let Some(prev) = previous else {
        return TrackSample::default();
    };
    if now.requests < prev.requests || now.errors < prev.errors {
        return TrackSample::default();
    }
    let requests = now.requests - prev.requests;
    // 5xx answers without a counted request cannot happen; clamp anyway.
    let errors = (now.errors - prev.errors).min(requests);
    let has_data = requests > 0;
    TrackSample {
        requests,
        errors,
        error_rate: has_data.then(|| errors as f64 / requests as f64),
        p50_ms: if has_data { now.rtime_ms } else { None },
        p95_ms: None,
        p99_ms: None,
        totals: None,
    }
}

/// The server's running totals as the judge reads them: HAProxy has no
/// count of slow requests.
fn totals(c: Counters) -> Totals {
    Totals {
        requests: c.requests,
        errors: c.errors,
        slow: None,
    }
}

#[derive(Default, Clone, Copy)]
struct Baseline {
    canary: Option<Counters>,
    stable: Option<Counters>,
}

/// Sums the tracks of several members: counts add up, the error rate is
/// recomputed, the average time is weighted by requests.
fn sum(samples: &[TrackSample]) -> TrackSample {
    let requests: u64 = samples.iter().map(|s| s.requests).sum();
    let errors: u64 = samples.iter().map(|s| s.errors).sum();
    let has_data = requests > 0;
    let timed: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.p50_ms?, s.requests as f64)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    let weight: f64 = timed.iter().map(|(_, n)| n).sum();
    let p50_ms =
        (has_data && weight > 0.0).then(|| timed.iter().map(|(t, n)| t * n).sum::<f64>() / weight);
    TrackSample {
        requests,
        errors,
        error_rate: has_data.then(|| errors as f64 / requests as f64),
        p50_ms,
        p95_ms: None,
        p99_ms: None,
        totals: samples
            .iter()
            .map(|s| s.totals)
            .collect::<Option<Vec<Totals>>>()
            .map(|all| Totals {
                requests: all.iter().map(|t| t.requests).sum(),
                errors: all.iter().map(|t| t.errors).sum(),
                slow: None,
            }),
    }
}

/// One member's stats socket and its two servers.
struct Member {
    target: HaproxyTarget,
    api: RuntimeApi,
}

pub struct HaproxySource {
    members: Vec<Member>,
    last: Mutex<Vec<Baseline>>,
}

impl HaproxySource {
    /// One HAProxy's stats.
    pub fn new(target: HaproxyTarget) -> Self {
        Self::summing(vec![target])
    }

    /// The stats of every target, summed (a group of HAProxy routers).
    pub fn summing(targets: Vec<HaproxyTarget>) -> Self {
        let members: Vec<Member> = targets
            .into_iter()
            .map(|target| Member {
                api: RuntimeApi::new(&target.socket),
                target,
            })
            .collect();
        let last = Mutex::new(vec![Baseline::default(); members.len()]);
        HaproxySource { members, last }
    }
}

/// Reads one member's canary and stable counters.
async fn read(m: &Member) -> Result<(Counters, Counters), String> {
    let stat = m.api.send("show stat").await.map_err(|e| e.to_string())?;
    let t = &m.target;
    let canary = server_counters(&stat, &t.backend, &t.canary_server)?;
    let stable = server_counters(&stat, &t.backend, &t.stable_server)?;
    Ok((canary, stable))
}

#[async_trait]
impl MetricSource for HaproxySource {
    fn kind(&self) -> &'static str {
        "haproxy"
    }

    async fn sample(&self, _window: Duration) -> Result<TrackPair, MetricError> {
        let reads = futures::future::join_all(self.members.iter().map(read)).await;
        let mut now = Vec::with_capacity(reads.len());
        let mut failed = Vec::new();
        for (m, r) in self.members.iter().zip(reads) {
            match r {
                Ok(c) => now.push(c),
                Err(e) if self.members.len() == 1 => return Err(MetricError::new("haproxy", e)),
                Err(e) => failed.push(format!("{} ({e})", m.target.socket)),
            }
        }
        if !failed.is_empty() {
            return Err(MetricError::new(
                "haproxy",
                format!(
                    "{} of {} HAProxy routers could not be read, so the sum would miss their traffic: {}",
                    failed.len(),
                    self.members.len(),
                    failed.join("; ")
                ),
            ));
        }
        let mut last = self
            .last
            .lock()
            .map_err(|_| MetricError::new("haproxy", "sample state poisoned"))?;
        let mut canary = Vec::with_capacity(now.len());
        let mut stable = Vec::with_capacity(now.len());
        for (base, (c, s)) in last.iter_mut().zip(now) {
            canary.push(TrackSample {
                totals: Some(totals(c)),
                ..delta(base.canary, c)
            });
            stable.push(TrackSample {
                totals: Some(totals(s)),
                ..delta(base.stable, s)
            });
            *base = Baseline {
                canary: Some(c),
                stable: Some(s),
            };
        }
        Ok(TrackPair {
            canary: sum(&canary),
            stable: sum(&stable),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "# pxname,svname,qcur,stot,hrsp_5xx,req_tot,rtime,check_desc,\n\
fe,FRONTEND,,900,0,900,,,\n\
app,v1,0,600,3,610,4,\"ok, fine\",\n\
app,v2,0,300,30,300,12,,\n\
app,BACKEND,0,900,33,910,6,,\n\
other,v2,0,5,5,5,1,,\n";

    #[test]
    fn reads_a_servers_counters_from_show_stat_csv() {
        let c = server_counters(STAT, "app", "v2").unwrap();
        assert_eq!(
            c,
            Counters {
                requests: 300,
                errors: 30,
                rtime_ms: Some(12.0)
            }
        );
        // req_tot preferred to stot; a quoted comma does not shift columns.
        assert_eq!(server_counters(STAT, "app", "v1").unwrap().requests, 610);
        let e = server_counters(STAT, "app", "v3").unwrap_err();
        assert!(e.contains("no server \"v3\""), "{e}");
        let e = server_counters(STAT, "web", "v2").unwrap_err();
        assert!(e.contains("no backend \"web\""), "{e}");
        let e = server_counters("Permission denied\n", "app", "v2").unwrap_err();
        assert!(e.contains("did not answer with CSV"), "{e}");
    }

    #[test]
    fn falls_back_to_stot_and_tolerates_an_empty_rtime() {
        let stat = "# pxname,svname,stot,hrsp_5xx,rtime\napp,v2,40,2,\n";
        let c = server_counters(stat, "app", "v2").unwrap();
        assert_eq!((c.requests, c.errors, c.rtime_ms), (40, 2, None));
    }

    fn c(requests: u64, errors: u64) -> Counters {
        Counters {
            requests,
            errors,
            rtime_ms: Some(5.0),
        }
    }

    #[test]
    fn members_sum_their_counts_and_weight_their_times() {
        let a = delta(Some(c(100, 1)), c(150, 6));
        let b = TrackSample {
            requests: 150,
            errors: 0,
            error_rate: Some(0.0),
            p50_ms: Some(10.0),
            p95_ms: None,
            p99_ms: None,
            totals: None,
        };
        let s = sum(&[a, b, TrackSample::default()]);
        assert_eq!((s.requests, s.errors), (200, 5));
        assert_eq!(s.error_rate, Some(0.025));
        // (5 ms × 50 + 10 ms × 150) / 200.
        assert_eq!(s.p50_ms, Some(8.75));
        assert_eq!(sum(&[TrackSample::default()]), TrackSample::default());
    }

    #[test]
    fn counts_are_deltas_and_a_reset_restarts_the_baseline() {
        // First reading: baseline only.
        assert_eq!(delta(None, c(100, 1)), TrackSample::default());
        let s = delta(Some(c(100, 1)), c(150, 6));
        assert_eq!((s.requests, s.errors), (50, 5));
        assert_eq!(s.error_rate, Some(0.1));
        assert_eq!(s.p50_ms, Some(5.0));
        assert_eq!((s.p95_ms, s.p99_ms), (None, None));
        // Nothing happened: no data, not a zero error rate.
        let s = delta(Some(c(150, 6)), c(150, 6));
        assert_eq!((s.requests, s.error_rate, s.p50_ms), (0, None, None));
        // Counters went down (HAProxy restarted): no data this time.
        assert_eq!(delta(Some(c(150, 6)), c(20, 0)), TrackSample::default());
        assert_eq!(delta(Some(c(150, 6)), c(200, 2)), TrackSample::default());
    }

    #[tokio::test]
    async fn samples_through_a_socket_baseline_first() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            for n in [0u64, 1] {
                let (stream, _) = listener.accept().await.unwrap();
                let (r, mut w) = stream.into_split();
                let mut line = String::new();
                tokio::io::BufReader::new(r)
                    .read_line(&mut line)
                    .await
                    .unwrap();
                assert_eq!(line, "show stat\n");
                let body = format!(
                    "# pxname,svname,stot,hrsp_5xx,req_tot,rtime,\napp,v1,{},0,{},3,\napp,v2,{},{},{},9,\n\n",
                    100 + 90 * n,
                    100 + 90 * n,
                    10 + 10 * n,
                    4 * n,
                    10 + 10 * n
                );
                w.write_all(body.as_bytes()).await.unwrap();
            }
        });
        let src = HaproxySource::new(HaproxyTarget {
            socket: sock.display().to_string(),
            backend: "app".into(),
            stable_server: "v1".into(),
            canary_server: "v2".into(),
        });
        let first = src.sample(Duration::from_secs(30)).await.unwrap();
        assert_eq!(first.canary.requests, 0);
        assert_eq!(
            first.canary.totals,
            Some(Totals {
                requests: 10,
                errors: 0,
                slow: None
            })
        );
        assert_eq!(first.stable.totals.map(|t| t.requests), Some(100));
        let second = src.sample(Duration::from_secs(30)).await.unwrap();
        assert_eq!(second.canary.requests, 10);
        assert_eq!(second.canary.error_rate, Some(0.4));
        assert_eq!(second.stable.requests, 90);
        assert_eq!(second.stable.error_rate, Some(0.0));
        assert_eq!(
            second.canary.totals,
            Some(Totals {
                requests: 20,
                errors: 4,
                slow: None
            })
        );
        server.await.unwrap();
    }
}
