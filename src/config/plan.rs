//! The validated plan the engine runs: deployment, checks per stage, traffic
//! and its router, analysis and its metric source, notifications. Every value
//! here has passed the bounds in [`super::limits`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::{Approval, OnDisconnect, OnFailure, StageName, Strategy};

/// What is being deployed, and where its record is kept.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Letters, digits, '-', '_', '.'; at most [`super::limits::MAX_ID_PART`]
    /// characters (it is part of the journal's file name).
    pub service: String,
    /// The version being deployed; file-name safe like `service`.
    pub version: String,
    /// The version running now (the stable track's label).
    pub previous: Option<String>,
    /// Shown in the header; printable.
    pub environment: Option<String>,
    /// Journal and lock; relative paths are relative to the config file.
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

/// One check of a stage.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// Unique within its stage; printable.
    pub name: String,
    pub kind: CheckKind,
    /// Per attempt; within [`super::limits::CHECK_TIMEOUT`].
    pub timeout: Duration,
    /// Extra attempts after a failure.
    pub retries: u32,
    pub retry_delay: Duration,
    /// A failure only warns.
    pub optional: bool,
}

/// How traffic is moved between the two versions.
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
    /// Several routers carrying the same service (`[[traffic.routers]]`),
    /// moved as one: at least one member, names unique, no member built-in
    /// (it would need a listener of its own) and none a group.
    Group(Vec<GroupMember>),
}

/// One router of a group, by its unique `name`.
#[derive(Debug, Clone)]
pub struct GroupMember {
    /// Letters, digits, '-', '_', '.'; at most [`super::limits::MAX_MEMBER_NAME`]
    /// characters (it is shown in one row of the dashboard).
    pub name: String,
    /// A haproxy, nginx or command router.
    pub router: RouterPlan,
}

impl RouterPlan {
    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        self.router_kind().as_str()
    }

    pub fn router_kind(&self) -> RouterKind {
        match self {
            RouterPlan::Builtin { .. } => RouterKind::Builtin,
            RouterPlan::Command { .. } => RouterKind::Command,
            RouterPlan::Haproxy(_) => RouterKind::Haproxy,
            RouterPlan::Nginx(_) => RouterKind::Nginx,
            RouterPlan::Group(_) => RouterKind::Group,
        }
    }

    /// The members of a group; empty for a single router.
    pub fn members(&self) -> &[GroupMember] {
        match self {
            RouterPlan::Group(members) => members,
            _ => &[],
        }
    }
}

/// The `[traffic.router] kind`s; each one's keys and plan are built in
/// `validate::router`. `Group` is no kind a table names: it is what
/// `[[traffic.routers]]` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterKind {
    Builtin,
    Haproxy,
    Nginx,
    Command,
    Group,
}

impl RouterKind {
    /// The kinds a `kind = "…"` may name.
    pub const ALL: [RouterKind; 4] = [
        RouterKind::Builtin,
        RouterKind::Haproxy,
        RouterKind::Nginx,
        RouterKind::Command,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouterKind::Builtin => "builtin",
            RouterKind::Haproxy => "haproxy",
            RouterKind::Nginx => "nginx",
            RouterKind::Command => "command",
            RouterKind::Group => "group",
        }
    }
}

/// The upstream block the nginx router owns, and how nginx takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxConfig {
    pub upstream_file: PathBuf,
    /// Letters, digits, '_', '-', '.'.
    pub upstream: String,
    /// host:port (or unix:/path), with no character nginx would parse.
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
    /// Cumulative requests of the track since its counters started (for the
    /// sequential method), e.g. `sum(http_requests_total{version="$version"})`.
    pub requests_total: Option<String>,
    /// Cumulative 5xx responses of the track.
    pub errors_total: Option<String>,
    /// Cumulative requests slower than `slow_ms` (`$slow_seconds` stands for
    /// it in seconds); `None`: the slow kind is not judged.
    pub slow_total: Option<String>,
    /// `[analysis] slow_ms`, in milliseconds, for `$slow_seconds`.
    pub slow_ms: u64,
    pub canary_version: String,
    pub stable_version: String,
}

/// Where HAProxy's runtime API is and which servers carry the two versions.
/// Backend and server names hold only HAProxy's name characters (letters,
/// digits, '-', '_', '.', ':'), so they cannot carry a second command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyTarget {
    /// A unix socket path, or host:port.
    pub socket: String,
    pub backend: String,
    pub stable_server: String,
    pub canary_server: String,
}

/// How the release moves through its steps.
#[derive(Debug, Clone)]
pub struct TrafficPlan {
    pub strategy: Strategy,
    /// Strictly increasing percents from 1 to 100, ending at 100.
    pub steps: Vec<u8>,
    /// Least healthy time at each step.
    pub bake: Duration,
    pub approval: Approval,
    pub on_failure: OnFailure,
    pub on_disconnect: OnDisconnect,
    /// Grace before `on_disconnect` applies when no controlling operator is
    /// attached; a manual gate waiting longer applies it too (SPEC §3).
    pub unattended_after: Duration,
    /// A step with no verdict for this long warns, then `on_failure`.
    pub step_deadline: Duration,
    /// Compare the split the router serves, from its own per-server counts
    /// (built-in or HAProxy source), with the weight; off for a router whose
    /// stickiness (`balance source`, cookies) makes the split differ by design.
    pub measure_split: bool,
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
        queries: Box<PrometheusConfig>,
    },
    /// HAProxy's `show stat` for the router's two servers; with a group of
    /// HAProxy routers, one target per member, their counters summed.
    Haproxy(Vec<HaproxyTarget>),
    /// A command printing a JSON sample of both tracks.
    Command { sample: String },
}

impl SourcePlan {
    pub fn kind(&self) -> &'static str {
        self.source_kind().as_str()
    }

    pub fn source_kind(&self) -> SourceKind {
        match self {
            SourcePlan::Builtin => SourceKind::Builtin,
            SourcePlan::Prometheus { .. } => SourceKind::Prometheus,
            SourcePlan::Haproxy(_) => SourceKind::Haproxy,
            SourcePlan::Command { .. } => SourceKind::Command,
        }
    }
}

/// The `[analysis.source] kind`s; built in `validate::analysis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Builtin,
    Prometheus,
    Haproxy,
    Command,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] = [
        SourceKind::Builtin,
        SourceKind::Prometheus,
        SourceKind::Haproxy,
        SourceKind::Command,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Builtin => "builtin",
            SourceKind::Prometheus => "prometheus",
            SourceKind::Haproxy => "haproxy",
            SourceKind::Command => "command",
        }
    }
}

/// How the analysis decides (`[analysis] method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The anytime-valid sequential test on cumulative event counts
    /// (`crate::judge`), with the limits as absolute guards.
    Sequential,
    /// The limits, judged on each sample's window.
    Threshold,
}

impl Method {
    pub const ALL: [Method; 2] = [Method::Sequential, Method::Threshold];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sequential => "sequential",
            Method::Threshold => "threshold",
        }
    }
}

/// How the canary is judged.
#[derive(Debug, Clone)]
pub struct AnalysisPlan {
    /// Sequential or threshold. When the plan names none: sequential where
    /// the source gives cumulative counts, else threshold.
    pub method: Method,
    /// The plan named the method (`check` says when the source chose it).
    pub method_written: bool,
    /// Sequential: the bound on the chance of ever rolling back a canary no
    /// worse than `tolerance` × stable, over the whole canary; within
    /// [`super::limits::ALPHA`].
    pub alpha: f64,
    /// Sequential: the canary/stable event-rate ratio that still counts as
    /// the same; within [`super::limits::TOLERANCE`].
    pub tolerance: f64,
    /// Sequential: a request slower than this many milliseconds is a "slow"
    /// event; within [`super::limits::SLOW_MS`].
    pub slow_ms: u64,
    /// One sample every interval; within [`super::limits::INTERVAL`].
    pub interval: Duration,
    /// Each sample looks back this far; at least `interval`, within
    /// [`super::limits::WINDOW`].
    pub window: Duration,
    /// Fewer canary requests in the window: inconclusive.
    pub min_requests: u64,
    /// This many failing samples in a row: `on_failure`.
    pub failure_limit: u32,
    /// Fractions from 0 to 1.
    pub max_error_rate: Option<f64>,
    /// Milliseconds, above 0.
    pub max_p99_ms: Option<f64>,
    pub max_error_rate_increase: Option<f64>,
    pub max_p99_ratio: Option<f64>,
    pub source: SourcePlan,
}

impl Default for AnalysisPlan {
    fn default() -> Self {
        AnalysisPlan {
            method: Method::Sequential,
            method_written: false,
            alpha: 0.01,
            // 1.1 cannot meet the detection target at alpha 0.01 (docs/analysis.md).
            tolerance: 1.0,
            slow_ms: 500,
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

/// The events a webhook can be told of.
pub const NOTIFY_EVENTS: [&str; 5] = [
    "started",
    "approval_needed",
    "rolled_back",
    "succeeded",
    "failed",
];

#[derive(Debug, Clone)]
pub struct NotifyPlan {
    pub webhook: String,
    /// The webhook as written, without user info or query.
    pub webhook_display: String,
    pub format: NotifyFormat,
    pub secret: Option<String>,
    /// A subset of [`NOTIFY_EVENTS`].
    pub events: Vec<String>,
}

/// How runs of this release are kept to one at a time (`[lock]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LockPlan {
    /// An exclusive `flock` on `<state_dir>/lock`: one run per state dir, on
    /// one machine (the default).
    #[default]
    File,
    /// A release lease in etcd, wherever the run starts (the state dir's
    /// file lock is taken too).
    Etcd(EtcdLock),
}

/// `[lock] kind = "etcd"`: where the lease is kept and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdLock {
    /// Client URLs of etcd members (`http://host:2379`), at least one.
    pub endpoints: Vec<String>,
    /// The key the lease holds; default `/cutover/<service>/<environment>`
    /// (environment `default` when none is given).
    pub key: String,
    /// The lease's time-to-live: whole seconds, within
    /// [`super::limits::LOCK_TTL`]; the run stops writing to routers a
    /// quarter of it before etcd could expire the lease.
    pub ttl: std::time::Duration,
    /// How long a run waits for a held lease to be released or to expire
    /// before it is refused; zero refuses at once.
    pub wait: std::time::Duration,
}

impl LockPlan {
    pub fn kind(&self) -> &'static str {
        match self {
            LockPlan::File => "file",
            LockPlan::Etcd(_) => "etcd",
        }
    }
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
    /// Who may steer a detached deployment, and how many must approve a step.
    pub operators: OperatorsPlan,
    /// How this run keeps others of the same release out.
    pub lock: LockPlan,
    /// Values that came from `${env:…}` (each at least
    /// [`crate::redact::MIN_SECRET_LEN`] characters): never shown, logged or
    /// journaled.
    pub secrets: Vec<String>,
}

/// `[operators]`: who may act on a running deployment (others may watch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorsPlan {
    /// A group whose members may reach the control socket (0660) besides
    /// the account that runs the engine.
    pub group: Option<String>,
    /// Accounts that may approve, roll back and steer; `None`: everyone who
    /// can reach the socket.
    pub approvers: Option<Vec<String>>,
    /// Distinct operators needed to approve one canary step (2: the
    /// two-person rule).
    pub approvals: u32,
    /// Whether the account that started the release may approve its steps.
    pub self_approval: bool,
}

impl Default for OperatorsPlan {
    fn default() -> Self {
        OperatorsPlan {
            group: None,
            approvers: None,
            approvals: 1,
            self_approval: true,
        }
    }
}

impl OperatorsPlan {
    /// Whether `account` may steer; `Err` says why not.
    pub fn may_steer(&self, account: &str) -> Result<(), String> {
        match &self.approvers {
            Some(list) if !list.iter().any(|a| a == account) => Err(format!(
                "{account} is not among [operators] approvers ({}): watching only",
                list.join(", ")
            )),
            _ => Ok(()),
        }
    }
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

/// `text` with every secret value (raw and encoded forms) masked.
pub fn redact(secrets: &[String], text: &str) -> String {
    if secrets.is_empty() {
        return text.to_string();
    }
    crate::redact::Secrets::new(secrets.iter().cloned())
        .redact(text)
        .into_owned()
}
