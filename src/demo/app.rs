//! The sample service of SPEC §6 (`cutover demo-app`): answers `GET /` as a
//! given version, fails and slows down on demand, and exports Prometheus
//! metrics, so a canary rehearsal has something real to route and judge.
//! Faults are injected with `POST /fault` on a separate loopback admin
//! listener, never on the service port, which clients and routers reach.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::router::serve::{spawn_http1, ConnectionLimits};

/// The longest delay `POST /fault` accepts: ten minutes.
pub const MAX_LATENCY_MS: u64 = 600_000;
/// A fault form is two short numbers; anything bigger is refused.
const MAX_FAULT_BODY: usize = 4096;
/// The admin listener serves one operator or test at a time, not traffic.
const ADMIN_CONNECTIONS: usize = 16;
/// Upper bounds of the latency histogram, in seconds (Prometheus' defaults).
const BUCKETS_S: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone)]
pub struct DemoAppConfig {
    pub listen: SocketAddr,
    pub version: String,
    /// Fraction of `GET /` answered with 500, 0 to 1.
    pub error_rate: f64,
    /// Delay before each `GET /` answer.
    pub latency_ms: u64,
    /// Where `POST /fault` is served, a loopback address (port 0 picks a
    /// free port); `None` serves no fault endpoint.
    pub admin: Option<SocketAddr>,
}

/// A change of behaviour asked for by `POST /fault`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultChange {
    pub error_rate: Option<f64>,
    pub latency_ms: Option<u64>,
}

/// Why a `POST /fault` was refused; the message is the 400 answer's body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("error_rate must be a number from 0 to 1 (e.g. error_rate=0.2), got {0:?}")]
    ErrorRate(String),
    #[error(
        "latency_ms must be a whole number of milliseconds from 0 to {MAX_LATENCY_MS} (e.g. latency_ms=250), got {0:?}"
    )]
    Latency(String),
    #[error("unknown parameter {0:?}: the parameters are error_rate and latency_ms")]
    Unknown(String),
    #[error("{0} is given more than once")]
    Repeated(&'static str),
    #[error("bad percent-encoding in {0:?}")]
    Encoding(String),
    #[error("nothing to change: give error_rate=F (0 to 1) and/or latency_ms=N")]
    Empty,
}

/// Parses `error_rate=` and `latency_ms=` from a query string and a form body
/// together (`a=1&b=2`, percent-encoded, `+` for space).
pub fn parse_fault(query: &str, form: &str) -> Result<FaultChange, FaultError> {
    let mut change = FaultChange::default();
    let pairs = query
        .split('&')
        .chain(form.split('&'))
        .map(str::trim)
        .filter(|p| !p.is_empty());
    for pair in pairs {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(key)?;
        let value = form_decode(value)?;
        let value = value.trim();
        match key.as_str() {
            "error_rate" => {
                if change.error_rate.is_some() {
                    return Err(FaultError::Repeated("error_rate"));
                }
                let rate = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| FaultError::ErrorRate(value.to_string()))?;
                change.error_rate = Some(rate);
            }
            "latency_ms" => {
                if change.latency_ms.is_some() {
                    return Err(FaultError::Repeated("latency_ms"));
                }
                let ms = value
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= MAX_LATENCY_MS)
                    .ok_or_else(|| FaultError::Latency(value.to_string()))?;
                change.latency_ms = Some(ms);
            }
            _ => return Err(FaultError::Unknown(key)),
        }
    }
    if change == FaultChange::default() {
        return Err(FaultError::Empty);
    }
    Ok(change)
}

/// Decodes one `application/x-www-form-urlencoded` key or value.
fn form_decode(s: &str) -> Result<String, FaultError> {
    let bad = || FaultError::Encoding(s.to_string());
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|c| (c as char).to_digit(16));
                let lo = bytes.next().and_then(|c| (c as char).to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err(bad()),
                }
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Behaviour that `POST /fault` and [`DemoApp::set_fault`] change live.
struct Fault {
    /// An f64's bits, so reads on the hot path take no lock.
    error_rate: AtomicU64,
    latency_ms: AtomicU64,
}

impl Fault {
    fn error_rate(&self) -> f64 {
        f64::from_bits(self.error_rate.load(Ordering::Relaxed))
    }
    fn latency_ms(&self) -> u64 {
        self.latency_ms.load(Ordering::Relaxed)
    }
    fn apply(&self, change: FaultChange) {
        if let Some(rate) = change.error_rate.filter(|r| !r.is_nan()) {
            let rate = rate.clamp(0.0, 1.0);
            self.error_rate.store(rate.to_bits(), Ordering::Relaxed);
        }
        if let Some(ms) = change.latency_ms {
            self.latency_ms
                .store(ms.min(MAX_LATENCY_MS), Ordering::Relaxed);
        }
    }
}

/// Counters of `GET /`, the application endpoint; health checks, scrapes
/// and fault changes are not the application's traffic and are not counted.
#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Per bucket, not cumulative; the last one is above the largest bound.
    buckets: [AtomicU64; BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
}

impl Counters {
    fn observe(&self, status: StatusCode, took: Duration) {
        if status.is_server_error() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.ok.fetch_add(1, Ordering::Relaxed);
        }
        let secs = took.as_secs_f64();
        let slot = BUCKETS_S
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS_S.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of the counters.
    fn render(&self, version: &str) -> String {
        let v = escape_label(version);
        let mut out = String::new();
        let ok = self.ok.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP http_requests_total Requests to GET / by status code.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{{version=\"{v}\",code=\"200\"}} {ok}\n\
             http_requests_total{{version=\"{v}\",code=\"500\"}} {failed}"
        );
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds Time to answer GET /.\n\
             # TYPE http_request_duration_seconds histogram"
        );
        // Cumulative counts; +Inf and _count come from the same reads so the
        // histogram is consistent even while requests are being counted.
        let mut cumulative = 0;
        for (le, bucket) in BUCKETS_S.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{version=\"{v}\",le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS_S.len()].load(Ordering::Relaxed);
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{version=\"{v}\",le=\"+Inf\"}} {cumulative}\n\
             http_request_duration_seconds_sum{{version=\"{v}\"}} {sum}\n\
             http_request_duration_seconds_count{{version=\"{v}\"}} {cumulative}"
        );
        out
    }
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct AppState {
    version: String,
    version_header: HeaderValue,
    fault: Fault,
    counters: Counters,
}

type AppBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<AppBody> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A 405 naming the methods `path` allows.
fn not_allowed(path: &str, allow: &'static str) -> Response<AppBody> {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{path} allows {allow}\n"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

impl AppState {
    /// The service port: what clients and routers reach.
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<AppBody>, Infallible> {
        let path = req.uri().path();
        let method = req.method().clone();
        let response = match (path, &method) {
            ("/", &Method::GET) | ("/", &Method::HEAD) => self.hello().await,
            ("/health", &Method::GET) | ("/health", &Method::HEAD) => text(StatusCode::OK, "ok\n"),
            ("/metrics", &Method::GET) => {
                let mut r = text(StatusCode::OK, self.counters.render(&self.version));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            ("/" | "/health", _) => not_allowed(path, "GET, HEAD"),
            ("/metrics", _) => not_allowed(path, "GET"),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try GET /, GET /health or GET /metrics\n",
            ),
        };
        Ok(response)
    }

    /// The admin listener: fault injection only.
    async fn handle_admin(&self, req: Request<Incoming>) -> Result<Response<AppBody>, Infallible> {
        let response = match (req.uri().path(), req.method()) {
            ("/fault", &Method::POST) => self.fault(req).await,
            ("/fault", _) => not_allowed("/fault", "POST"),
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: the admin listener serves POST /fault\n",
            ),
        };
        Ok(response)
    }

    async fn hello(&self) -> Response<AppBody> {
        let start = Instant::now();
        let latency = self.fault.latency_ms();
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let rate = self.fault.error_rate();
        // `rate >= 1` always fails, `rate <= 0` never does.
        let fail = rate >= 1.0 || (rate > 0.0 && fastrand::f64() < rate);
        let mut response = if fail {
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("simulated failure in {}\n", self.version),
            )
        } else {
            text(StatusCode::OK, format!("hello from {}", self.version))
        };
        response
            .headers_mut()
            .insert("x-version", self.version_header.clone());
        self.counters.observe(response.status(), start.elapsed());
        response
    }

    async fn fault(&self, req: Request<Incoming>) -> Response<AppBody> {
        let query = req.uri().query().unwrap_or("").to_string();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let body = match Limited::new(req.into_body(), MAX_FAULT_BODY)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the form body is limited to {MAX_FAULT_BODY} bytes\n"),
                )
            }
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("reading the form body failed: {e}\n"),
                )
            }
        };
        if !body.is_empty()
            && content_type
                .as_deref()
                .is_some_and(|ct| ct != "application/x-www-form-urlencoded")
        {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send error_rate and latency_ms as query parameters or an application/x-www-form-urlencoded body\n",
            );
        }
        let Ok(form) = std::str::from_utf8(&body) else {
            return text(StatusCode::BAD_REQUEST, "the form body is not UTF-8\n");
        };
        match parse_fault(&query, form) {
            Ok(change) => {
                self.fault.apply(change);
                let (rate, ms) = (self.fault.error_rate(), self.fault.latency_ms());
                tracing::info!(
                    "demo-app {}: error_rate={rate} latency_ms={ms}",
                    self.version
                );
                text(
                    StatusCode::OK,
                    format!("error_rate={rate} latency_ms={ms}\n"),
                )
            }
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }
}

/// A running sample service; stops when dropped or on `shutdown`.
pub struct DemoApp {
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    stop: CancellationToken,
}

impl DemoApp {
    /// Binds `cfg.listen` and `cfg.admin` (port 0 picks a free port) and
    /// serves until shut down. An admin address off loopback is refused
    /// (`InvalidInput`): the fault endpoint has no authentication.
    pub async fn start(cfg: DemoAppConfig) -> std::io::Result<DemoApp> {
        if let Some(admin) = cfg.admin.filter(|a| !a.ip().is_loopback()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the admin address {admin} is not a loopback address"),
            ));
        }
        let version_header = HeaderValue::from_str(&cfg.version).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("version {:?} cannot be sent in a header", cfg.version),
            )
        })?;
        let listener = TcpListener::bind(cfg.listen).await?;
        let local_addr = listener.local_addr()?;
        let admin = match cfg.admin {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
        let fault = Fault {
            error_rate: AtomicU64::new(0f64.to_bits()),
            latency_ms: AtomicU64::new(0),
        };
        fault.apply(FaultChange {
            error_rate: Some(cfg.error_rate),
            latency_ms: Some(cfg.latency_ms),
        });
        let state = Arc::new(AppState {
            version: cfg.version,
            version_header,
            fault,
            counters: Counters::default(),
        });
        let stop = CancellationToken::new();
        let shared = state.clone();
        spawn_http1(
            listener,
            move |_peer| {
                let state = shared.clone();
                service_fn(move |req| {
                    let state = state.clone();
                    async move { state.handle(req).await }
                })
            },
            ConnectionLimits::default(),
            stop.clone(),
        );
        if let Some(admin) = admin {
            let shared = state.clone();
            spawn_http1(
                admin,
                move |_peer| {
                    let state = shared.clone();
                    service_fn(move |req| {
                        let state = state.clone();
                        async move { state.handle_admin(req).await }
                    })
                },
                ConnectionLimits {
                    max_connections: Some(ADMIN_CONNECTIONS),
                    ..ConnectionLimits::default()
                },
                stop.clone(),
            );
        }
        Ok(DemoApp {
            local_addr,
            admin_addr,
            state,
            stop,
        })
    }

    /// The service port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `POST /fault` is served, when it is.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn version(&self) -> &str {
        &self.state.version
    }

    /// The error rate and latency (ms) in force now.
    pub fn fault(&self) -> (f64, u64) {
        (self.state.fault.error_rate(), self.state.fault.latency_ms())
    }

    /// Changes behaviour while running (what `POST /fault` on the admin
    /// listener does); `None`
    /// leaves a setting as it is, an error rate outside 0..=1 is clamped.
    pub fn set_fault(&self, error_rate: Option<f64>, latency_ms: Option<u64>) {
        self.state.fault.apply(FaultChange {
            error_rate,
            latency_ms,
        });
    }

    /// Stops accepting connections; idle ones close at once.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `cutover demo-app`: serves until ctrl-c or SIGTERM, after printing
/// `demo-app <version> listening on <addr>` and, with an admin listener,
/// `demo-app <version> admin (POST /fault) on <addr>`.
pub async fn serve_forever(cfg: DemoAppConfig) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut term = signal(SignalKind::terminate())?;
    let app = DemoApp::start(cfg).await?;
    println!(
        "demo-app {} listening on {}",
        app.version(),
        app.local_addr()
    );
    if let Some(admin) = app.admin_addr() {
        println!("demo-app {} admin (POST /fault) on {admin}", app.version());
    }
    tokio::select! {
        res = tokio::signal::ctrl_c() => res?,
        _ = term.recv() => {}
    }
    app.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_from_query_form_or_both() {
        assert_eq!(
            parse_fault("error_rate=0.25", ""),
            Ok(FaultChange {
                error_rate: Some(0.25),
                latency_ms: None
            })
        );
        assert_eq!(
            parse_fault("", "latency_ms=300&error_rate=1"),
            Ok(FaultChange {
                error_rate: Some(1.0),
                latency_ms: Some(300)
            })
        );
        assert_eq!(
            parse_fault("latency_ms=0", "error_rate=0"),
            Ok(FaultChange {
                error_rate: Some(0.0),
                latency_ms: Some(0)
            })
        );
    }

    #[test]
    fn fault_values_are_form_decoded() {
        assert_eq!(
            parse_fault("", "error%5Frate=+0.5+&&latency_ms=%31%30"),
            Ok(FaultChange {
                error_rate: Some(0.5),
                latency_ms: Some(10)
            })
        );
        assert!(matches!(
            parse_fault("error_rate=%zz", ""),
            Err(FaultError::Encoding(_))
        ));
        assert!(matches!(
            parse_fault("error_rate=%4", ""),
            Err(FaultError::Encoding(_))
        ));
    }

    #[test]
    fn bad_fault_values_are_refused_with_the_reason() {
        for bad in ["1.5", "-0.1", "NaN", "inf", "", "half"] {
            let e = parse_fault(&format!("error_rate={bad}"), "");
            assert_eq!(e, Err(FaultError::ErrorRate(bad.to_string())));
        }
        for bad in ["-1", "1.5", "600001", "", "soon"] {
            let e = parse_fault(&format!("latency_ms={bad}"), "");
            assert_eq!(e, Err(FaultError::Latency(bad.to_string())));
        }
        assert_eq!(
            parse_fault("error-rate=0.1", ""),
            Err(FaultError::Unknown("error-rate".into()))
        );
        assert_eq!(
            parse_fault("error_rate=0.1", "error_rate=0.2"),
            Err(FaultError::Repeated("error_rate"))
        );
        assert_eq!(parse_fault("", ""), Err(FaultError::Empty));
        let msg = FaultError::ErrorRate("2".into()).to_string();
        assert!(msg.contains("from 0 to 1"), "{msg}");
    }

    #[test]
    fn metrics_text_counts_and_accumulates_buckets() {
        let c = Counters::default();
        c.observe(StatusCode::OK, Duration::from_millis(3));
        c.observe(StatusCode::OK, Duration::from_millis(40));
        c.observe(StatusCode::INTERNAL_SERVER_ERROR, Duration::from_secs(20));
        let text = c.render("v\"2");
        assert!(
            text.contains(r#"http_requests_total{version="v\"2",code="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{version="v\"2",code="500"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"_bucket{version="v\"2",le="0.005"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"_bucket{version="v\"2",le="0.05"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"_bucket{version="v\"2",le="10"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"_bucket{version="v\"2",le="+Inf"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"_count{version="v\"2"} 3"#), "{text}");
        assert!(text.contains(r#"_sum{version="v\"2"} 20.043"#), "{text}");
    }

    #[test]
    fn the_error_series_exists_before_any_error() {
        let text = Counters::default().render("v1");
        assert!(
            text.contains(r#"http_requests_total{version="v1",code="500"} 0"#),
            "{text}"
        );
    }
}
