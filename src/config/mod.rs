//! The deployment plan: loading, strict validation with file:line:col errors,
//! `${env:NAME}` expansion, and the validated [`Plan`] the engine runs.

mod describe;
mod raw;

use crate::domain::{Approval, OnDisconnect, OnFailure, StageName, Strategy};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raw::{RawCheck, RawConfig, S};

/// One problem in a config file, located.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

/// Every problem found in one file (at least one).
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub service: String,
    pub version: String,
    pub previous: Option<String>,
    pub environment: Option<String>,
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    Run {
        command: String,
        env: BTreeMap<String, String>,
    },
    Manual {
        prompt: String,
    },
    Http {
        url: String,
        /// The URL as written (secrets unexpanded), for screens and journal.
        display: String,
        expect_status: Option<u16>,
        expect_body: Option<String>,
    },
    Tcp {
        addr: String,
        display: String,
    },
    /// The artifact digest comparison, first check of prepare.
    Artifact {
        path: PathBuf,
        sha256: String,
    },
}

impl CheckKind {
    pub fn label(&self) -> &'static str {
        match self {
            CheckKind::Run { .. } => "run",
            CheckKind::Manual { .. } => "manual",
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Artifact { .. } => "artifact",
        }
    }

    /// One line saying what the check does, safe to show (no secret values).
    pub fn target(&self) -> String {
        match self {
            CheckKind::Run { command, .. } => command.clone(),
            CheckKind::Manual { prompt } => prompt.clone(),
            CheckKind::Http { display, .. } => display.clone(),
            CheckKind::Tcp { display, .. } => display.clone(),
            CheckKind::Artifact { path, sha256 } => {
                format!("sha256 of {} = {}", path.display(), sha256)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub name: String,
    pub kind: CheckKind,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_delay: Duration,
    pub optional: bool,
}

#[derive(Debug, Clone)]
pub enum RouterPlan {
    Builtin {
        listen: SocketAddr,
        stable: SocketAddr,
        canary: SocketAddr,
    },
    Command {
        set_weight: String,
        get_weight: Option<String>,
    },
    Haproxy(HaproxyTarget),
    Nginx(NginxConfig),
}

/// The upstream block the nginx router owns, and how nginx takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxConfig {
    pub upstream_file: PathBuf,
    pub upstream: String,
    pub stable: String,
    pub canary: String,
    /// Validates the written config; default `nginx -t`.
    pub test: String,
    /// Makes nginx read it; default `nginx -s reload`.
    pub reload: String,
}

/// The Prometheus server and the per-track queries (`$version` replaced by
/// each track's version label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusConfig {
    pub url: String,
    pub error_rate: String,
    pub p99_ms: Option<String>,
    pub p50_ms: Option<String>,
    pub requests: String,
    pub canary_version: String,
    pub stable_version: String,
}

/// Where HAProxy's runtime API is and which servers carry the two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyTarget {
    /// A unix socket path, or host:port.
    pub socket: String,
    pub backend: String,
    pub stable_server: String,
    pub canary_server: String,
}

impl RouterPlan {
    pub fn kind(&self) -> &'static str {
        match self {
            RouterPlan::Builtin { .. } => "builtin",
            RouterPlan::Command { .. } => "command",
            RouterPlan::Haproxy(_) => "haproxy",
            RouterPlan::Nginx(_) => "nginx",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrafficPlan {
    pub strategy: Strategy,
    pub steps: Vec<u8>,
    pub bake: Duration,
    pub approval: Approval,
    pub on_failure: OnFailure,
    pub on_disconnect: OnDisconnect,
    /// A step with no verdict for this long warns, then `on_failure`.
    pub step_deadline: Duration,
    pub router: RouterPlan,
}

#[derive(Debug, Clone)]
pub enum SourcePlan {
    /// The built-in router's own counts.
    Builtin,
    /// Instant PromQL queries; `$version` stands for each track's version label.
    Prometheus {
        /// The URL as written (secrets unexpanded), for screens.
        url_display: String,
        queries: PrometheusConfig,
    },
    /// HAProxy's `show stat` for the router's two servers.
    Haproxy(HaproxyTarget),
    /// A command printing a JSON sample of both tracks.
    Command { sample: String },
}

impl SourcePlan {
    pub fn kind(&self) -> &'static str {
        match self {
            SourcePlan::Builtin => "builtin",
            SourcePlan::Prometheus { .. } => "prometheus",
            SourcePlan::Haproxy(_) => "haproxy",
            SourcePlan::Command { .. } => "command",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AnalysisPlan {
    pub interval: Duration,
    pub window: Duration,
    pub min_requests: u64,
    pub failure_limit: u32,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub max_error_rate_increase: Option<f64>,
    pub max_p99_ratio: Option<f64>,
    pub source: SourcePlan,
}

impl Default for AnalysisPlan {
    fn default() -> Self {
        AnalysisPlan {
            interval: Duration::from_secs(5),
            window: Duration::from_secs(30),
            min_requests: 20,
            failure_limit: 3,
            max_error_rate: Some(0.01),
            max_p99_ms: None,
            max_error_rate_increase: None,
            max_p99_ratio: None,
            source: SourcePlan::Builtin,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    Slack,
    Json,
}

#[derive(Debug, Clone)]
pub struct NotifyPlan {
    pub webhook: String,
    pub webhook_display: String,
    pub format: NotifyFormat,
    pub secret: Option<String>,
    pub events: Vec<String>,
}

/// A validated plan, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config file as given (or a label for a built-in plan).
    pub source: String,
    pub deployment: Deployment,
    /// Checks of each stage except traffic, in order (artifact first in prepare).
    pub checks: BTreeMap<StageKey, Vec<CheckSpec>>,
    pub traffic: Option<TrafficPlan>,
    pub analysis: AnalysisPlan,
    pub notify: Option<NotifyPlan>,
    /// Values that came from `${env:…}`: never shown, logged or journaled.
    pub secrets: Vec<String>,
}

/// A stage as an ordered map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StageKey(pub u8);

impl From<StageName> for StageKey {
    fn from(s: StageName) -> Self {
        StageKey(s as u8)
    }
}

impl Plan {
    pub fn checks(&self, stage: StageName) -> &[CheckSpec] {
        self.checks
            .get(&StageKey::from(stage))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether the config has this stage at all.
    pub fn has_stage(&self, stage: StageName) -> bool {
        match stage {
            StageName::Traffic => self.traffic.is_some(),
            other => self.checks.contains_key(&StageKey::from(other)),
        }
    }

    /// Replaces every secret value in `text` with a mask.
    pub fn redact(&self, text: &str) -> String {
        redact(&self.secrets, text)
    }

    /// The manual gates a run would stop at, as "stage/check" names.
    pub fn manual_gates(&self) -> Vec<String> {
        let mut gates = Vec::new();
        for stage in StageName::ALL {
            for c in self.checks(stage) {
                if matches!(c.kind, CheckKind::Manual { .. }) {
                    gates.push(format!("{stage} check \"{}\"", c.name));
                }
            }
        }
        if let Some(t) = &self.traffic {
            if t.approval == Approval::Manual && t.steps.len() > 1 {
                gates.push("traffic step approval (approval = \"manual\")".to_string());
            }
        }
        gates
    }
}

pub fn redact(secrets: &[String], text: &str) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "••••••");
        }
    }
    out
}

/// Reads and validates a plan file.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: display.clone(),
            line: 0,
            col: 0,
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    parse(&text, &display, &base, &|name| std::env::var(name).ok())
}

/// Parses and validates plan text. `base` resolves relative paths; `env` looks
/// up `${env:NAME}`.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ConfigErrors> {
    let mut v = Validator {
        text,
        base,
        file,
        env,
        errors: Vec::new(),
        secrets: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = explain_toml_error(e.message());
            v.error(span, message);
            return Err(ConfigErrors(v.errors));
        }
    };
    let plan = v.plan(raw, base);
    if v.errors.is_empty() {
        if let Some(plan) = plan {
            return Ok(plan);
        }
    }
    Err(ConfigErrors(v.errors))
}

/// Adds what would be right to serde's terse messages.
fn explain_toml_error(message: &str) -> String {
    let message = message.trim().to_string();
    if message.starts_with("unknown field") {
        // serde lists the expected keys already: "unknown field `x`, expected one of ..."
        return message.replace("expected one of", "the keys allowed here are");
    }
    if message.starts_with("missing field") {
        return format!("{message}: this key is required here");
    }
    message
}

struct Validator<'a> {
    text: &'a str,
    base: &'a Path,
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
    secrets: Vec<String>,
}

const STAGE_KEYS: [StageName; 7] = [
    StageName::Prepare,
    StageName::Checkpoint,
    StageName::Deploy,
    StageName::Smoke,
    StageName::Verify,
    StageName::Finalize,
    StageName::Rollback,
];

impl Validator<'_> {
    /// Where the header of `[name]` (or of its first `[name.…]` subtable) is.
    fn table_span(&self, name: &str) -> Range<usize> {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim_start();
            let header = t
                .strip_prefix('[')
                .map(|h| h.trim_start())
                .filter(|h| !h.starts_with('['));
            if let Some(h) = header {
                let key = h.split([']', '.']).next().unwrap_or("").trim();
                if key == name {
                    let start = offset + (line.len() - t.len());
                    return start..start + t.trim_end().len();
                }
            }
            offset += line.len();
        }
        0..0
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
        });
    }

    /// Expands `${env:NAME}` in a non-command string; the expanded parts are secrets.
    fn expand(&mut self, s: &S<String>) -> String {
        let raw = s.get_ref();
        let mut out = String::new();
        let mut rest = raw.as_str();
        while let Some(start) = rest.find("${env:") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 6..];
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    match (self.env)(name) {
                        Some(value) => {
                            if !value.is_empty() {
                                self.secrets.push(value.clone());
                            }
                            out.push_str(&value);
                        }
                        None => self.error(
                            s.span(),
                            format!(
                                "environment variable {name} is not set (referenced as ${{env:{name}}}); set it or write the value here"
                            ),
                        ),
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    self.error(
                        s.span(),
                        "unclosed ${env:…}: write ${env:NAME} with a closing brace",
                    );
                    return raw.clone();
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn duration(&mut self, s: &Option<S<String>>, default: Duration) -> Duration {
        match s {
            None => default,
            Some(s) => match parse_duration(s.get_ref()) {
                Ok(d) => d,
                Err(msg) => {
                    self.error(s.span(), msg);
                    default
                }
            },
        }
    }

    fn choice<T: Copy>(
        &mut self,
        s: &Option<S<String>>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(s) = s else { return default };
        for (name, value) in options {
            if s.get_ref() == name {
                return *value;
            }
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.error(
            s.span(),
            format!(
                "{key} = \"{}\" is not known: use one of {}",
                s.get_ref(),
                names.join(", ")
            ),
        );
        default
    }

    /// The keys a table needs, each missing one reported at the table.
    fn required<'s, const N: usize>(
        &mut self,
        table_span: Range<usize>,
        keys: [(&'s Option<S<String>>, &str); N],
    ) -> Option<[&'s S<String>; N]> {
        let mut found = Vec::with_capacity(N);
        for (value, what) in keys {
            match value {
                Some(v) => found.push(v),
                None => self.error(table_span.clone(), what.to_string()),
            }
        }
        found.try_into().ok()
    }

    fn addr(&mut self, s: &S<String>, key: &str) -> Option<SocketAddr> {
        let v = self.expand(s);
        match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    s.span(),
                    format!("{key} = \"{v}\" is not an address: write host:port with an IP, like \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    fn plan(&mut self, raw: RawConfig, base: &Path) -> Option<Plan> {
        let dep_span = raw.deployment.span();
        let d = raw.deployment.into_inner();
        let service = self.expand(&d.service);
        if service.trim().is_empty() {
            self.error(d.service.span(), "service must not be empty");
        } else if !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.error(
                d.service.span(),
                format!("service \"{service}\" may hold only letters, digits, '-', '_' and '.' (it names the journal file)"),
            );
        }
        let version = self.expand(&d.version);
        if version.trim().is_empty() {
            self.error(d.version.span(), "version must not be empty");
        } else if version.contains('/') || version.contains(char::is_whitespace) {
            self.error(
                d.version.span(),
                format!(
                    "version \"{version}\" may not hold '/' or spaces (it names the journal file)"
                ),
            );
        }
        let _ = dep_span;
        let previous = d.previous.as_ref().map(|s| self.expand(s));
        let environment = d.environment.as_ref().map(|s| self.expand(s));
        let state_dir = d
            .state_dir
            .as_ref()
            .map(|s| self.expand(s))
            .unwrap_or_else(|| ".cutover".to_string());
        let state_dir = base.join(state_dir);

        let mut checks = BTreeMap::new();
        if let Some(a) = &raw.artifact {
            let art = a.get_ref();
            let path = base.join(self.expand(&art.path));
            let sha = self.expand(&art.sha256).to_ascii_lowercase();
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                self.error(
                    art.sha256.span(),
                    "sha256 must be 64 hexadecimal digits (the output of `sha256sum FILE`)",
                );
            }
            checks.insert(
                StageKey::from(StageName::Prepare),
                vec![CheckSpec {
                    name: "Artifact matches what was tested".to_string(),
                    kind: CheckKind::Artifact { path, sha256: sha },
                    timeout: Duration::from_secs(300),
                    retries: 0,
                    retry_delay: Duration::ZERO,
                    optional: false,
                }],
            );
        }
        let stage_lists = [
            &raw.prepare,
            &raw.checkpoint,
            &raw.deploy,
            &raw.smoke,
            &raw.verify,
            &raw.finalize,
            &raw.rollback,
        ];
        for (stage, list) in STAGE_KEYS.iter().zip(stage_lists) {
            let Some(list) = list else { continue };
            let mut names = HashSet::new();
            let entry: &mut Vec<CheckSpec> = checks.entry(StageKey::from(*stage)).or_default();
            for c in list {
                if let Some(spec) = self.check(*stage, c, &mut names) {
                    entry.push(spec);
                }
            }
        }

        let traffic = raw.traffic.as_ref().and_then(|t| self.traffic(t));
        let analysis = match &raw.analysis {
            Some(a) => self.analysis(a, traffic.as_ref(), &version, previous.as_deref()),
            None => AnalysisPlan::default(),
        };
        if let (Some(t), true) = (&traffic, matches!(analysis.source, SourcePlan::Builtin)) {
            if !matches!(t.router, RouterPlan::Builtin { .. }) {
                let at = raw
                    .analysis
                    .as_ref()
                    .map(|_| self.table_span("analysis"))
                    .unwrap_or_else(|| self.table_span("traffic"));
                self.error(
                    at,
                    format!("the builtin metric source reads the built-in router's own counts, but the router is kind \"{}\": add [analysis.source] with kind \"prometheus\", \"haproxy\" or \"command\"", t.router.kind()),
                );
            }
        }
        let notify = raw.notify.as_ref().map(|n| self.notify(n));

        Some(Plan {
            source: self.file.to_string(),
            deployment: Deployment {
                service,
                version,
                previous,
                environment,
                state_dir,
            },
            checks,
            traffic,
            analysis,
            notify,
            secrets: std::mem::take(&mut self.secrets),
        })
    }

    fn check(
        &mut self,
        stage: StageName,
        c: &S<RawCheck>,
        names: &mut HashSet<String>,
    ) -> Option<CheckSpec> {
        let span = c.span();
        let r = c.get_ref();
        let name = match &r.name {
            Some(n) => {
                let name = self.expand(n);
                if name.trim().is_empty() {
                    self.error(n.span(), "a check's name must not be empty");
                }
                if !names.insert(name.clone()) {
                    self.error(
                        n.span(),
                        format!("a check named \"{name}\" is already in [[{stage}]]: names must be unique within a stage"),
                    );
                }
                name
            }
            None => {
                self.error(
                    span.clone(),
                    format!("this [[{stage}]] check has no name: add name = \"…\""),
                );
                String::new()
            }
        };
        let given: Vec<(&str, &S<String>)> = [
            ("run", &r.run),
            ("manual", &r.manual),
            ("http", &r.http),
            ("tcp", &r.tcp),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        if given.len() != 1 {
            let msg = if given.is_empty() {
                format!("check \"{name}\" says nothing to do: give exactly one of run, manual, http or tcp")
            } else {
                let keys: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
                format!(
                    "check \"{name}\" has {}: give exactly one of run, manual, http or tcp",
                    keys.join(" and ")
                )
            };
            let at = given.get(1).map(|(_, v)| v.span()).unwrap_or(span.clone());
            self.error(at, msg);
            return None;
        }
        let (key, value) = given[0];
        let not_for = |this: &mut Self, present: bool, opt: &str, sp: Range<usize>, kinds: &str| {
            if present {
                this.error(
                    sp,
                    format!(
                        "{opt} applies to {kinds} checks only, and \"{name}\" is a {key} check"
                    ),
                );
            }
        };
        if let Some(s) = &r.expect_status {
            not_for(self, key != "http", "expect_status", s.span(), "http");
        }
        if let Some(s) = &r.expect_body {
            not_for(self, key != "http", "expect_body", s.span(), "http");
        }
        if let Some(s) = &r.env {
            not_for(self, key != "run", "env", s.span(), "run");
        }
        let kind = match key {
            "run" => {
                let mut env = BTreeMap::new();
                if let Some(e) = &r.env {
                    for (k, v) in e.get_ref() {
                        let val = self.expand(v);
                        env.insert(k.clone(), val);
                    }
                }
                CheckKind::Run {
                    command: value.get_ref().clone(),
                    env,
                }
            }
            "manual" => CheckKind::Manual {
                prompt: self.expand(value),
            },
            "http" => {
                let url = self.expand(value);
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    self.error(
                        value.span(),
                        format!(
                            "http = \"{}\" is not a URL: write it as http://host:port/path",
                            value.get_ref()
                        ),
                    );
                } else if reqwest::Url::parse(&url).is_err() {
                    self.error(
                        value.span(),
                        format!("http = \"{}\" is not a valid URL", value.get_ref()),
                    );
                }
                let expect_status = r.expect_status.as_ref().and_then(|s| {
                    let v = *s.get_ref();
                    if (100..=599).contains(&v) {
                        Some(v as u16)
                    } else {
                        self.error(
                            s.span(),
                            format!("expect_status = {v} is not an HTTP status: use 100..599"),
                        );
                        None
                    }
                });
                CheckKind::Http {
                    url,
                    display: value.get_ref().clone(),
                    expect_status,
                    expect_body: r.expect_body.as_ref().map(|b| self.expand(b)),
                }
            }
            _ => {
                let addr = self.expand(value);
                if !addr.contains(':')
                    || addr
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse::<u16>().ok())
                        .is_none()
                {
                    self.error(
                        value.span(),
                        format!(
                            "tcp = \"{}\" needs host:port, like \"127.0.0.1:5432\"",
                            value.get_ref()
                        ),
                    );
                }
                CheckKind::Tcp {
                    addr,
                    display: value.get_ref().clone(),
                }
            }
        };
        let default_timeout = if key == "run" {
            Duration::from_secs(300)
        } else {
            Duration::from_secs(5)
        };
        let timeout = self.duration(&r.timeout, default_timeout);
        if key == "manual" {
            if let Some(t) = &r.timeout {
                self.error(
                    t.span(),
                    "a manual check waits for the operator: timeout does not apply",
                );
            }
        }
        let retries = match &r.retries {
            None => 0,
            Some(s) => {
                let v = *s.get_ref();
                if (0..=1000).contains(&v) {
                    v as u32
                } else {
                    self.error(
                        s.span(),
                        format!("retries = {v}: use a whole number from 0 to 1000"),
                    );
                    0
                }
            }
        };
        let retry_delay = self.duration(&r.retry_delay, Duration::from_secs(2));
        Some(CheckSpec {
            name,
            kind,
            timeout,
            retries,
            retry_delay,
            optional: r.optional.unwrap_or(false),
        })
    }

    fn traffic(&mut self, r: &raw::RawTraffic) -> Option<TrafficPlan> {
        let span = self.table_span("traffic");
        let strategy = self.choice(
            &r.strategy,
            "strategy",
            &[
                ("canary", Strategy::Canary),
                ("blue-green", Strategy::BlueGreen),
            ],
            Strategy::Canary,
        );
        let steps: Vec<u8> = match &r.steps {
            None => match strategy {
                Strategy::Canary => vec![5, 25, 50, 100],
                Strategy::BlueGreen => vec![100],
            },
            Some(s) => {
                let mut out = Vec::new();
                let mut ok = true;
                let mut prev = 0i64;
                for step in s.get_ref() {
                    let v = *step.get_ref();
                    if !(1..=100).contains(&v) {
                        self.error(
                            step.span(),
                            format!(
                                "step {v} is out of range: each step is a percent from 1 to 100"
                            ),
                        );
                        ok = false;
                    } else if v <= prev {
                        self.error(
                            step.span(),
                            format!("step {v} comes after {prev}: steps must strictly increase, like [5, 25, 50, 100]"),
                        );
                        ok = false;
                    } else {
                        out.push(v as u8);
                    }
                    prev = prev.max(v);
                }
                if s.get_ref().is_empty() {
                    self.error(s.span(), "steps is empty: list the percentages, ending at 100, like [5, 25, 50, 100]");
                    ok = false;
                } else if ok && out.last() != Some(&100) {
                    self.error(s.span(), "steps must end at 100 so the new version takes all traffic, like [5, 25, 50, 100]");
                }
                if strategy == Strategy::BlueGreen && ok && out != [100] {
                    self.error(
                        s.span(),
                        "a blue-green release switches at once: steps must be [100] (or left out)",
                    );
                }
                out
            }
        };
        let bake = self.duration(&r.bake, Duration::from_secs(60));
        let approval = self.choice(
            &r.approval,
            "approval",
            &[("manual", Approval::Manual), ("auto", Approval::Auto)],
            Approval::Manual,
        );
        let on_failure = self.choice(
            &r.on_failure,
            "on_failure",
            &[
                ("rollback", OnFailure::Rollback),
                ("pause", OnFailure::Pause),
            ],
            OnFailure::Rollback,
        );
        let on_disconnect = self.choice(
            &r.on_disconnect,
            "on_disconnect",
            &[
                ("continue", OnDisconnect::Continue),
                ("hold", OnDisconnect::Hold),
                ("rollback", OnDisconnect::Rollback),
            ],
            OnDisconnect::Hold,
        );
        let step_deadline = self.duration(&r.step_deadline, Duration::from_secs(15 * 60));
        let Some(router) = &r.router else {
            self.error(span, "[traffic] needs a [traffic.router] table saying how traffic is moved (kind = \"builtin\", with listen, stable and canary)");
            return None;
        };
        let router = self.router(router)?;
        Some(TrafficPlan {
            strategy,
            steps,
            bake,
            approval,
            on_failure,
            on_disconnect,
            step_deadline,
            router,
        })
    }

    fn router(&mut self, r: &S<raw::RawRouter>) -> Option<RouterPlan> {
        let span = r.span();
        let rr = r.get_ref();
        let Some(kind) = &rr.kind else {
            self.error(
                span,
                "[traffic.router] needs kind = \"builtin\", \"haproxy\", \"nginx\" or \"command\"",
            );
            return None;
        };
        // Keys that belong to other kinds are mistakes worth naming.
        let keys: [(&str, &Option<S<String>>); 13] = [
            ("listen", &rr.listen),
            ("stable", &rr.stable),
            ("canary", &rr.canary),
            ("socket", &rr.socket),
            ("backend", &rr.backend),
            ("stable_server", &rr.stable_server),
            ("canary_server", &rr.canary_server),
            ("upstream_file", &rr.upstream_file),
            ("upstream", &rr.upstream),
            ("test", &rr.test),
            ("reload", &rr.reload),
            ("set_weight", &rr.set_weight),
            ("get_weight", &rr.get_weight),
        ];
        let allowed: &[&str] = match kind.get_ref().as_str() {
            "builtin" => &["listen", "stable", "canary"],
            "haproxy" => &["socket", "backend", "stable_server", "canary_server"],
            "nginx" => &[
                "upstream_file",
                "upstream",
                "stable",
                "canary",
                "test",
                "reload",
            ],
            "command" => &["set_weight", "get_weight"],
            other => {
                self.error(
                    kind.span(),
                    format!("router kind \"{other}\" is not known: use \"builtin\", \"haproxy\", \"nginx\" or \"command\""),
                );
                return None;
            }
        };
        for (k, v) in keys {
            if let Some(v) = v {
                if !allowed.contains(&k) {
                    self.error(
                        v.span(),
                        format!(
                            "{k} does not apply to a {} router: its keys are {}",
                            kind.get_ref(),
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        match kind.get_ref().as_str() {
            "builtin" => {
                let [listen, stable, canary] = self.required(
                    span.clone(),
                    [
                        (&rr.listen, "the builtin router needs listen = \"host:port\" (where clients connect)"),
                        (&rr.stable, "the builtin router needs stable = \"host:port\" (the running version)"),
                        (&rr.canary, "the builtin router needs canary = \"host:port\" (the new version)"),
                    ],
                )?;
                let listen = self.addr(listen, "listen");
                let stable = self.addr(stable, "stable");
                let canary = self.addr(canary, "canary");
                Some(RouterPlan::Builtin {
                    listen: listen?,
                    stable: stable?,
                    canary: canary?,
                })
            }
            "command" => {
                let [set] = self.required(
                    span.clone(),
                    [(
                        &rr.set_weight,
                        "the command router needs set_weight = \"command using $CUTOVER_WEIGHT\"",
                    )],
                )?;
                Some(RouterPlan::Command {
                    set_weight: set.get_ref().clone(),
                    get_weight: rr.get_weight.as_ref().map(|g| g.get_ref().clone()),
                })
            }
            "haproxy" => {
                let [socket, backend, stable, canary] = self.required(
                    span.clone(),
                    [
                        (&rr.socket, "the haproxy router needs socket = \"/run/haproxy/admin.sock\" (or \"host:port\"): HAProxy's runtime API at admin level"),
                        (&rr.backend, "the haproxy router needs backend = \"…\" (the backend holding both servers)"),
                        (&rr.stable_server, "the haproxy router needs stable_server = \"…\" (the running version's server)"),
                        (&rr.canary_server, "the haproxy router needs canary_server = \"…\" (the new version's server)"),
                    ],
                )?;
                let socket = self.expand(socket);
                // host:port stays; a relative socket path is relative to this file.
                let is_tcp = socket
                    .rsplit_once(':')
                    .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
                let socket = if is_tcp || socket.starts_with('/') {
                    socket
                } else {
                    self.base.join(&socket).display().to_string()
                };
                Some(RouterPlan::Haproxy(HaproxyTarget {
                    socket,
                    backend: self.expand(backend),
                    stable_server: self.expand(stable),
                    canary_server: self.expand(canary),
                }))
            }
            "nginx" => {
                let [file, upstream, stable, canary] = self.required(
                    span.clone(),
                    [
                        (&rr.upstream_file, "the nginx router needs upstream_file = \"…\" (the file cutover writes the upstream block to)"),
                        (&rr.upstream, "the nginx router needs upstream = \"…\" (the upstream block's name)"),
                        (&rr.stable, "the nginx router needs stable = \"host:port\" (the running version)"),
                        (&rr.canary, "the nginx router needs canary = \"host:port\" (the new version)"),
                    ],
                )?;
                let name = self.expand(upstream);
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                {
                    self.error(upstream.span(), format!("upstream = \"{name}\" is not an nginx upstream name: use letters, digits, '_', '-' or '.'"));
                }
                let server = |this: &mut Self, s: &S<String>, key: &str| -> String {
                    let v = this.expand(s);
                    if v.is_empty()
                        || v.contains(|c: char| {
                            c.is_whitespace() || c == ';' || c == '{' || c == '}'
                        })
                    {
                        this.error(s.span(), format!("{key} = \"{v}\" is not a server address nginx accepts: write host:port"));
                    }
                    v
                };
                let stable = server(self, stable, "stable");
                let canary = server(self, canary, "canary");
                Some(RouterPlan::Nginx(NginxConfig {
                    upstream_file: self.base.join(self.expand(file)),
                    upstream: name,
                    stable,
                    canary,
                    test: rr
                        .test
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_else(|| "nginx -t".into()),
                    reload: rr
                        .reload
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_else(|| "nginx -s reload".into()),
                }))
            }
            _ => None,
        }
    }

    fn analysis(
        &mut self,
        r: &raw::RawAnalysis,
        traffic: Option<&TrafficPlan>,
        version: &str,
        previous: Option<&str>,
    ) -> AnalysisPlan {
        let d = AnalysisPlan::default();
        let interval = self.duration(&r.interval, d.interval);
        let window = self.duration(&r.window, d.window);
        if interval.is_zero() {
            if let Some(s) = &r.interval {
                self.error(s.span(), "interval must be more than zero");
            }
        }
        if window < interval {
            if let Some(s) = &r.window {
                self.error(
                    s.span(),
                    "window must be at least as long as interval, or samples miss requests",
                );
            }
        }
        let whole =
            |this: &mut Self, s: &Option<S<i64>>, key: &str, min: i64, default: i64| -> i64 {
                match s {
                    None => default,
                    Some(s) if *s.get_ref() >= min => *s.get_ref(),
                    Some(s) => {
                        this.error(
                            s.span(),
                            format!(
                                "{key} = {}: use a whole number of at least {min}",
                                s.get_ref()
                            ),
                        );
                        default
                    }
                }
            };
        let min_requests = whole(
            self,
            &r.min_requests,
            "min_requests",
            1,
            d.min_requests as i64,
        ) as u64;
        let failure_limit = whole(
            self,
            &r.failure_limit,
            "failure_limit",
            1,
            d.failure_limit as i64,
        ) as u32;
        let fraction = |this: &mut Self, s: &Option<S<f64>>, key: &str| -> Option<f64> {
            let s = s.as_ref()?;
            let v = *s.get_ref();
            if !(0.0..=1.0).contains(&v) {
                this.error(
                    s.span(),
                    format!("{key} = {v} is a fraction: use a number from 0 to 1 (0.01 is 1%)"),
                );
            }
            Some(v)
        };
        let positive = |this: &mut Self, s: &Option<S<f64>>, key: &str| -> Option<f64> {
            let s = s.as_ref()?;
            let v = *s.get_ref();
            if !(v > 0.0 && v.is_finite()) {
                this.error(s.span(), format!("{key} = {v}: use a number above 0"));
            }
            Some(v)
        };
        let max_error_rate = if r.max_error_rate.is_some() {
            fraction(self, &r.max_error_rate, "max_error_rate")
        } else {
            d.max_error_rate
        };
        let max_error_rate_increase =
            fraction(self, &r.max_error_rate_increase, "max_error_rate_increase");
        let max_p99_ms = positive(self, &r.max_p99_ms, "max_p99_ms");
        let max_p99_ratio = positive(self, &r.max_p99_ratio, "max_p99_ratio");
        let _ = traffic;
        let source = match &r.source {
            None => SourcePlan::Builtin,
            Some(s) => {
                let sr = s.get_ref();
                match sr.kind.as_ref().map(|k| k.get_ref().as_str()) {
                    None | Some("builtin") => {
                        for (k, v) in [
                            ("url", &sr.url),
                            ("error_rate", &sr.error_rate),
                            ("p99_ms", &sr.p99_ms),
                            ("p50_ms", &sr.p50_ms),
                            ("requests", &sr.requests),
                            ("sample", &sr.sample),
                        ] {
                            if let Some(v) = v {
                                self.error(v.span(), format!("{k} does not apply to the builtin source, which reads the built-in router's own counts"));
                            }
                        }
                        SourcePlan::Builtin
                    }
                    Some("prometheus") => self.prometheus(s, version, previous),
                    Some("haproxy") => {
                        for (k, v) in [
                            ("url", &sr.url),
                            ("error_rate", &sr.error_rate),
                            ("p99_ms", &sr.p99_ms),
                            ("p50_ms", &sr.p50_ms),
                            ("requests", &sr.requests),
                            ("sample", &sr.sample),
                        ] {
                            if let Some(v) = v {
                                self.error(v.span(), format!("{k} does not apply to the haproxy source, which reads the router's `show stat`"));
                            }
                        }
                        // HAProxy keeps average times only: percentile limits cannot be judged.
                        for (k, v) in [
                            ("max_p99_ms", &r.max_p99_ms),
                            ("max_p99_ratio", &r.max_p99_ratio),
                        ] {
                            if let Some(v) = v {
                                self.error(v.span(), format!("{k} needs percentiles, and HAProxy's stats have average response times only: drop it, or use kind = \"prometheus\" with a p99_ms query"));
                            }
                        }
                        match traffic.map(|t| &t.router) {
                            Some(RouterPlan::Haproxy(target)) => {
                                SourcePlan::Haproxy(target.clone())
                            }
                            _ => {
                                let k = sr.kind.as_ref().map(|k| k.span()).unwrap_or(s.span());
                                self.error(k, "the haproxy metric source reads the haproxy router's stats socket: it needs [traffic.router] kind = \"haproxy\"");
                                SourcePlan::Builtin
                            }
                        }
                    }
                    Some("command") => match &sr.sample {
                        Some(c) => SourcePlan::Command {
                            sample: c.get_ref().clone(),
                        },
                        None => {
                            self.error(s.span(), "the command metric source needs sample = \"command printing {\\\"canary\\\": {…}, \\\"stable\\\": {…}} as JSON\"");
                            SourcePlan::Builtin
                        }
                    },
                    Some(other) => {
                        let k = sr.kind.as_ref().map(|k| k.span()).unwrap_or(s.span());
                        self.error(k, format!("metric source kind \"{other}\" is not known: use \"builtin\", \"prometheus\", \"haproxy\" or \"command\""));
                        SourcePlan::Builtin
                    }
                }
            }
        };
        AnalysisPlan {
            interval,
            window,
            min_requests,
            failure_limit,
            max_error_rate,
            max_p99_ms,
            max_error_rate_increase,
            max_p99_ratio,
            source,
        }
    }

    fn prometheus(
        &mut self,
        s: &S<raw::RawSource>,
        version: &str,
        previous: Option<&str>,
    ) -> SourcePlan {
        let sr = s.get_ref();
        if let Some(v) = &sr.sample {
            self.error(v.span(), "sample applies to the command source only");
        }
        let Some([url, error_rate, requests]) = self.required(
            s.span(),
            [
                    (&sr.url, "the prometheus source needs url = \"http://127.0.0.1:9090\""),
                    (&sr.error_rate, "the prometheus source needs an error_rate query (the 5xx fraction of the track `$version`)"),
                    (&sr.requests, "the prometheus source needs a requests query (the track's request count over the window)"),
            ],
        ) else {
            return SourcePlan::Builtin;
        };
        let url_value = self.expand(url);
        if reqwest::Url::parse(&url_value).is_err() || !url_value.starts_with("http") {
            self.error(
                url.span(),
                format!(
                    "url = \"{}\" is not an http:// URL of a Prometheus server",
                    url.get_ref()
                ),
            );
        }
        let query = |this: &mut Self, q: &S<String>, key: &str| -> String {
            let v = this.expand(q);
            if !v.contains("$version") {
                this.error(q.span(), format!("the {key} query does not use $version, so it cannot tell canary from stable: select the track with a label like {{version=\"$version\"}}"));
            }
            v
        };
        let error_rate = query(self, error_rate, "error_rate");
        let requests = query(self, requests, "requests");
        let p99_ms = sr.p99_ms.as_ref().map(|q| query(self, q, "p99_ms"));
        let p50_ms = sr.p50_ms.as_ref().map(|q| query(self, q, "p50_ms"));
        let Some(previous) = previous else {
            self.error(s.span(), "the prometheus source compares the two versions' series, so [deployment] needs previous = \"…\" (the stable version label)");
            return SourcePlan::Builtin;
        };
        SourcePlan::Prometheus {
            url_display: url.get_ref().clone(),
            queries: PrometheusConfig {
                url: url_value,
                error_rate,
                p99_ms,
                p50_ms,
                requests,
                canary_version: version.to_string(),
                stable_version: previous.to_string(),
            },
        }
    }

    fn notify(&mut self, n: &S<raw::RawNotify>) -> NotifyPlan {
        let r = n.get_ref();
        let webhook = self.expand(&r.webhook);
        if !(webhook.starts_with("http://") || webhook.starts_with("https://")) {
            self.error(
                r.webhook.span(),
                "webhook must be an http:// or https:// URL",
            );
        }
        let format = self.choice(
            &r.format,
            "format",
            &[("slack", NotifyFormat::Slack), ("json", NotifyFormat::Json)],
            NotifyFormat::Slack,
        );
        let secret = r.secret.as_ref().map(|s| self.expand(s));
        const EVENTS: [&str; 5] = [
            "started",
            "approval_needed",
            "rolled_back",
            "succeeded",
            "failed",
        ];
        let events = match &r.events {
            None => EVENTS.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                let mut out = Vec::new();
                for e in list.get_ref() {
                    if EVENTS.contains(&e.get_ref().as_str()) {
                        out.push(e.get_ref().clone());
                    } else {
                        self.error(
                            e.span(),
                            format!(
                                "event \"{}\" is not known: use {}",
                                e.get_ref(),
                                EVENTS.join(", ")
                            ),
                        );
                    }
                }
                out
            }
        };
        NotifyPlan {
            webhook,
            webhook_display: r.webhook.get_ref().clone(),
            format,
            secret,
            events,
        }
    }
}

/// Parses "500ms", "30s", "5m", "1h30m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("\"{s}\" is not a duration ({e}): write a number with a unit, like \"500ms\", \"30s\" or \"5m\"")
    })
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}
