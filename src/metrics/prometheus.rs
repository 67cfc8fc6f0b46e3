//! The Prometheus source: instant queries per track over the HTTP API.
//!
//! Each query names its own look-back (`[1m]` in a `rate()`), so the analysis
//! `window` is not passed on. A result that is empty, NaN or infinite is no
//! data: the analysis calls it inconclusive, never a pass.
//!
//! For the sequential judge, `requests_total`, `errors_total` and
//! `slow_total` query cumulative counters (no look-back: the judge takes the
//! differences itself, so there is no `rate()` smoothing and no window). An
//! empty answer there is a count of 0 (no series yet); `$slow_seconds` stands
//! for `slow_ms` in seconds as a histogram's `le` label writes it (`0.5`, `1`).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{MetricError, MetricSource};

use crate::domain::{Totals, TrackPair, TrackSample};

pub use crate::config::PrometheusConfig;

pub struct PrometheusSource {
    cfg: PrometheusConfig,
    /// `None` when no HTTP client could be built (TLS failed to initialise).
    client: Option<reqwest::Client>,
}

fn err(message: impl Into<String>) -> MetricError {
    MetricError::new("prometheus", message)
}

/// A sample value: Prometheus writes numbers as strings, with "NaN" and "+Inf".
fn number(value: &Value) -> Option<f64> {
    let v = value.as_str()?.parse::<f64>().ok()?;
    v.is_finite().then_some(v)
}

/// The one number an instant query's response holds; `Ok(None)` is no data.
fn parse_response(query: &str, body: &str) -> Result<Option<f64>, String> {
    let json: Value = serde_json::from_str(body).map_err(|_| {
        let snippet: String = body.chars().take(200).collect();
        format!("`{query}`: the answer is not Prometheus JSON: {snippet}")
    })?;
    if json["status"] != "success" {
        let kind = json["errorType"].as_str().unwrap_or("error");
        let message = json["error"].as_str().unwrap_or("no error message");
        return Err(format!("Prometheus rejected `{query}`: {kind}: {message}"));
    }
    let data = &json["data"];
    match data["resultType"].as_str() {
        Some("vector") => {
            let series = data["result"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            match series {
                [] => Ok(None),
                [one] => Ok(number(&one["value"][1])),
                many => {
                    let labels: Vec<String> =
                        many.iter().take(2).map(|s| s["metric"].to_string()).collect();
                    Err(format!(
                        "`{query}` returned {} series ({}, …): the query must aggregate them into one number, e.g. with sum(…)",
                        many.len(),
                        labels.join(", ")
                    ))
                }
            }
        }
        Some("scalar") => Ok(number(&data["result"][1])),
        Some("matrix") => Err(format!(
            "`{query}` returned a range vector: wrap the [1m] selector in rate(…) or increase(…) so it gives one value"
        )),
        other => Err(format!(
            "`{query}` returned a result of type {} where a number was expected",
            other.unwrap_or("unknown")
        )),
    }
}

/// One track's sample from its query results.
fn track(
    requests: Option<f64>,
    error_rate: Option<f64>,
    p99: Option<f64>,
    p50: Option<f64>,
) -> TrackSample {
    let requests = requests.map(|r| r.max(0.0).round() as u64).unwrap_or(0);
    TrackSample {
        requests,
        errors: error_rate
            .map(|e| (requests as f64 * e.max(0.0)).round() as u64)
            .unwrap_or(0),
        error_rate,
        p50_ms: p50,
        p95_ms: None,
        p99_ms: p99,
        totals: None,
    }
}

/// `slow_ms` as a bucket bound in seconds, written the way Prometheus
/// clients write `le` (`500` → `0.5`, `1000` → `1`).
fn slow_seconds(slow_ms: u64) -> String {
    format!("{}", slow_ms as f64 / 1000.0)
}

/// A cumulative count from a query's answer: none (no series) is 0; a
/// negative count is invalid data.
fn count(query: &str, value: Option<f64>) -> Result<u64, String> {
    match value {
        None => Ok(0),
        Some(v) if v < 0.0 => Err(format!("`{query}` gave a negative count {v}")),
        Some(v) => Ok(v.round() as u64),
    }
}

impl PrometheusSource {
    pub fn new(cfg: PrometheusConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok();
        PrometheusSource { cfg, client }
    }

    /// The queries and tracks this source reads.
    pub fn config(&self) -> &PrometheusConfig {
        &self.cfg
    }

    /// Runs one instant query with `$version` (and `$slow_seconds`) replaced.
    async fn query(&self, template: &str, version: &str) -> Result<Option<f64>, MetricError> {
        let query = template
            .replace("$version", version)
            .replace("$slow_seconds", &slow_seconds(self.cfg.slow_ms));
        let url = format!("{}/api/v1/query", self.cfg.url.trim_end_matches('/'));
        let Some(client) = &self.client else {
            return Err(err("no HTTP client could be built for Prometheus queries"));
        };
        let response = client
            .get(&url)
            .query(&[("query", query.as_str())])
            .send()
            .await
            .map_err(|e| {
                err(format!(
                    "cannot reach Prometheus at {} for `{query}`: {e}",
                    self.cfg.url
                ))
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| err(format!("reading Prometheus' answer to `{query}`: {e}")))?;
        // Prometheus explains a bad query in a JSON body with a 4xx status.
        match parse_response(&query, &body) {
            Err(_) if !status.is_success() && !body.trim_start().starts_with('{') => {
                let snippet: String = body.chars().take(200).collect();
                Err(err(format!(
                    "Prometheus at {} answered HTTP {status} to `{query}`: {snippet}",
                    self.cfg.url
                )))
            }
            other => other.map_err(err),
        }
    }

    async fn optional(
        &self,
        template: Option<&String>,
        version: &str,
    ) -> Result<Option<f64>, MetricError> {
        match template {
            Some(t) => self.query(t, version).await,
            None => Ok(None),
        }
    }

    async fn track(&self, version: &str) -> Result<TrackSample, MetricError> {
        let (requests, error_rate, p99, p50, totals) = tokio::try_join!(
            self.query(&self.cfg.requests, version),
            self.query(&self.cfg.error_rate, version),
            self.optional(self.cfg.p99_ms.as_ref(), version),
            self.optional(self.cfg.p50_ms.as_ref(), version),
            self.totals(version),
        )?;
        Ok(TrackSample {
            totals,
            ..track(requests, error_rate, p99, p50)
        })
    }

    /// The track's cumulative counts, when the totals queries are configured.
    async fn totals(&self, version: &str) -> Result<Option<Totals>, MetricError> {
        let (Some(requests_q), Some(errors_q)) = (&self.cfg.requests_total, &self.cfg.errors_total)
        else {
            return Ok(None);
        };
        let (requests, errors, slow) = tokio::try_join!(
            self.query(requests_q, version),
            self.query(errors_q, version),
            self.optional(self.cfg.slow_total.as_ref(), version),
        )?;
        let requests = count(requests_q, requests).map_err(err)?;
        let errors = count(errors_q, errors).map_err(err)?;
        let slow = match &self.cfg.slow_total {
            Some(q) => Some(count(q, slow).map_err(err)?),
            None => None,
        };
        Ok(Some(Totals {
            requests,
            errors,
            slow,
        }))
    }
}

#[async_trait]
impl MetricSource for PrometheusSource {
    fn kind(&self) -> &'static str {
        "prometheus"
    }

    async fn sample(&self, _window: Duration) -> Result<TrackPair, MetricError> {
        let (canary, stable) = tokio::try_join!(
            self.track(&self.cfg.canary_version),
            self.track(&self.cfg.stable_version),
        )?;
        Ok(TrackPair { canary, stable })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "sum(rate(x[1m]))";

    #[test]
    fn reads_a_one_series_vector() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.25"]}]}}"#;
        assert_eq!(parse_response(Q, body), Ok(Some(0.25)));
    }

    #[test]
    fn reads_a_scalar() {
        let body =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"42"]}}"#;
        assert_eq!(parse_response(Q, body), Ok(Some(42.0)));
    }

    #[test]
    fn nan_inf_and_empty_are_no_data() {
        for v in ["NaN", "+Inf", "-Inf"] {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1.0,"{v}"]}}]}}}}"#
            );
            assert_eq!(parse_response(Q, &body), Ok(None), "{v}");
        }
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_response(Q, empty), Ok(None));
    }

    #[test]
    fn errors_name_the_query() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \"}\""}"#;
        let e = parse_response("sum(}", body).unwrap_err();
        assert!(e.contains("`sum(}`"), "{e}");
        assert!(e.contains("bad_data: 1:5: parse error"), "{e}");
        let many = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"code":"200"},"value":[1,"1"]},{"metric":{"code":"500"},"value":[1,"2"]}]}}"#;
        let e = parse_response(Q, many).unwrap_err();
        assert!(e.contains("returned 2 series"), "{e}");
        assert!(e.contains("sum("), "{e}");
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_response(Q, matrix)
            .unwrap_err()
            .contains("range vector"));
        let e = parse_response(Q, "<html>proxy error</html>").unwrap_err();
        assert!(e.contains("not Prometheus JSON"), "{e}");
    }

    #[test]
    fn errors_are_requests_times_error_rate() {
        let t = track(Some(99.6), Some(0.1), Some(120.0), None);
        assert_eq!((t.requests, t.errors), (100, 10));
        assert_eq!(t.p99_ms, Some(120.0));
        let none = track(None, None, None, None);
        assert_eq!((none.requests, none.errors, none.error_rate), (0, 0, None));
    }

    #[test]
    fn slow_ms_is_written_as_a_bucket_bound_and_counts_are_checked() {
        assert_eq!(slow_seconds(500), "0.5");
        assert_eq!(slow_seconds(1000), "1");
        assert_eq!(slow_seconds(2500), "2.5");
        assert_eq!(slow_seconds(5), "0.005");
        assert_eq!(count(Q, None), Ok(0));
        assert_eq!(count(Q, Some(41.6)), Ok(42));
        assert!(count(Q, Some(-1.0)).unwrap_err().contains("negative"));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_naming_the_query() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let src = PrometheusSource::new(PrometheusConfig {
            url: format!("http://127.0.0.1:{port}"),
            error_rate: "e{version=\"$version\"}".into(),
            p99_ms: None,
            p50_ms: None,
            requests: "r{version=\"$version\"}".into(),
            requests_total: None,
            errors_total: None,
            slow_total: None,
            slow_ms: 500,
            canary_version: "v2".into(),
            stable_version: "v1".into(),
        });
        let e = src
            .sample(Duration::from_secs(30))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot reach Prometheus"), "{e}");
        assert!(e.contains("version=\"v"), "{e}");
    }
}
