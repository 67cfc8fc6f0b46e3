//! What views may ask of the engine.

/// A request from the operator (dashboard key, signal or test) to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Confirm the waiting manual check, or advance to the next traffic step.
    Approve,
    /// Stop automatic progression (the analysis keeps watching).
    Pause,
    /// Carry on automatic progression.
    Resume,
    /// Apply this canary weight now (the slider).
    SetWeight(u8),
    /// Emergency rollback, at once.
    Rollback { reason: String },
    /// Hold traffic where it is, record the deployment as interrupted, stop.
    HoldAndQuit { reason: String },
    /// The process got a signal: a hang-up follows `[traffic] on_disconnect`,
    /// the others hold traffic and stop.
    Signal(SignalKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// SIGHUP: the terminal went away.
    Hangup,
    /// SIGTERM.
    Terminate,
    /// SIGINT (ctrl-c outside the dashboard).
    Interrupt,
}

impl SignalKind {
    pub fn name(self) -> &'static str {
        match self {
            SignalKind::Hangup => "SIGHUP",
            SignalKind::Terminate => "SIGTERM",
            SignalKind::Interrupt => "SIGINT",
        }
    }
}
