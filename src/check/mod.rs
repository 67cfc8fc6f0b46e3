//! Check runners: one attempt of a `run`, `http`, `tcp` or artifact check.
//! Retries, manual gates and journaling belong to the engine.

pub mod artifact;
pub mod http;
pub mod process;
pub mod shell;
pub mod tcp;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{CheckKind, CheckSpec};

/// How many output lines a check keeps for the journal and the screen.
pub const TAIL_LINES: usize = 20;

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub passed: bool,
    pub exit_code: Option<i32>,
    /// Why it failed, or a short note of what passed.
    pub message: String,
    /// Last lines of output (run checks) or the failure detail.
    pub tail: Vec<String>,
}

impl Attempt {
    pub fn pass(message: impl Into<String>) -> Self {
        Attempt {
            passed: true,
            exit_code: None,
            message: message.into(),
            tail: Vec::new(),
        }
    }
    pub fn fail(message: impl Into<String>) -> Self {
        Attempt {
            passed: false,
            exit_code: None,
            message: message.into(),
            tail: Vec::new(),
        }
    }
}

/// What every check may know of the deployment, passed to commands as environment.
#[derive(Clone, Default)]
pub struct CheckContext {
    pub env: BTreeMap<String, String>,
    /// Secret values to mask in anything reported.
    pub secrets: Vec<String>,
    /// Grace period between SIGTERM and SIGKILL on timeout.
    pub kill_grace: Duration,
    /// Told of each journaled command's process group (checks, router
    /// changes), so it is on record before the command can do anything.
    pub observer: Option<process::Observer>,
}

impl std::fmt::Debug for CheckContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckContext")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("kill_grace", &self.kill_grace)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// Runs one attempt of a non-manual check. Dropping the future stops it (and
/// the process group of a `run` check).
pub async fn attempt(spec: &CheckSpec, ctx: &CheckContext, log_name: &str) -> Attempt {
    let mut a = match &spec.kind {
        CheckKind::Run { command, env } => {
            shell::run(command, env, ctx, spec.timeout, log_name, true).await
        }
        CheckKind::Http {
            url,
            display,
            expect_status,
            expect_body,
        } => {
            http::get(
                url,
                display,
                *expect_status,
                expect_body.as_deref(),
                spec.timeout,
            )
            .await
        }
        CheckKind::Tcp { addr, display } => tcp::connect(addr, display, spec.timeout).await,
        CheckKind::Artifact { path, sha256 } => artifact::verify(path, sha256).await,
        CheckKind::Manual { .. } => Attempt::fail("a manual check is confirmed by the operator"),
    };
    a.message = crate::config::redact(&ctx.secrets, &a.message);
    for l in &mut a.tail {
        *l = crate::config::redact(&ctx.secrets, l);
    }
    a
}
