//! A client of a running engine: one-shot requests (`status`, `approve`,
//! `rollback`, …) and an attached dashboard, which sees the engine through
//! the same snapshot channel and command inbox as an in-process one.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use super::identity;
use super::protocol::{self, Hello, Message, Reply, Request, Verb, Welcome, PROTOCOL};
use super::server::socket_path;
use crate::engine::{Command, Commands, Envelope, Snapshot};

/// Why no engine could be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no engine runs for {0}: there is no control socket (start one with `cutover run`)")]
    NoEngine(String),
    #[error("the engine of {0} is gone (killed?): its socket no longer answers; `cutover run --resume` starts a new engine on its journal")]
    Gone(String),
    #[error("the engine refused this client: {0}")]
    Refused(String),
    #[error("cannot reach the engine at {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("the engine answered something unexpected: {0}")]
    Protocol(String),
}

/// A connection to an engine, after the welcome.
pub struct Connection {
    pub welcome: Welcome,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    buf: Vec<u8>,
    next_id: u64,
}

/// Connects to the engine of `state_dir`; `watch` asks for updates and
/// `controlling` counts this client as an operator at the controls.
pub async fn connect(
    state_dir: &Path,
    watch: bool,
    controlling: bool,
) -> Result<Connection, ConnectError> {
    let path = socket_path(state_dir);
    let shown = state_dir.display().to_string();
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(ConnectError::NoEngine(shown));
    }
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ConnectError::Gone(shown))
        }
        Err(error) => {
            return Err(ConnectError::Io {
                path: path.display().to_string(),
                error,
            })
        }
    };
    let (read, mut writer) = stream.into_split();
    let hello = Hello {
        protocol: PROTOCOL,
        watch,
        ssh_client: identity::ssh_client_here(),
        key_fingerprint: identity::key_fingerprint_here(),
        controlling,
    };
    let io = |error| ConnectError::Io {
        path: path.display().to_string(),
        error,
    };
    let line = protocol::encode(&hello).map_err(|e| ConnectError::Protocol(e.to_string()))?;
    writer.write_all(&line).await.map_err(io)?;
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        protocol::read::<Message, _>(&mut reader, &mut buf),
    )
    .await
    .map_err(|_| ConnectError::Protocol("no welcome within 10 s".into()))?
    .map_err(|e| ConnectError::Protocol(e.to_string()))?;
    let welcome = match first {
        Message::Welcome(w) => w,
        Message::Refused { message } => return Err(ConnectError::Refused(message)),
        other => return Err(ConnectError::Protocol(format!("{other:?}"))),
    };
    Ok(Connection {
        welcome,
        reader,
        writer,
        buf,
        next_id: 1,
    })
}

impl Connection {
    /// Sends one request and waits for its reply (other messages skipped).
    pub async fn request(&mut self, verb: Verb) -> Result<Reply, ConnectError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = Request {
            id,
            verb,
            at: Some(chrono::Utc::now()),
        };
        let line = protocol::encode(&request).map_err(|e| ConnectError::Protocol(e.to_string()))?;
        self.writer
            .write_all(&line)
            .await
            .map_err(|error| ConnectError::Io {
                path: "control socket".into(),
                error,
            })?;
        loop {
            match protocol::read::<Message, _>(&mut self.reader, &mut self.buf).await {
                Ok(Message::Reply(r)) if r.id == id => return Ok(r),
                Ok(_) => {}
                Err(e) => return Err(ConnectError::Protocol(e.to_string())),
            }
        }
    }
}

/// What an attached dashboard gets: the engine's snapshots and an inbox for
/// its keys, as an in-process engine would give; answers to its own
/// commands come back as notices.
pub struct Attached {
    pub welcome: Welcome,
    pub snapshots: watch::Receiver<Snapshot>,
    pub commands: Commands,
    pub notices: mpsc::UnboundedReceiver<String>,
    /// Resolves when the engine's connection ends (it finished or died).
    pub closed: tokio::sync::oneshot::Receiver<()>,
    /// Sends the dashboard's commands; ends once every sender is dropped and
    /// what was sent is written (await it before exiting).
    pub forwarder: tokio::task::JoinHandle<()>,
}

/// Turns a watching connection into an attached dashboard's channels.
pub async fn attach(mut conn: Connection) -> Result<Attached, ConnectError> {
    // The first update is the full snapshot.
    let first = loop {
        match protocol::read::<Message, _>(&mut conn.reader, &mut conn.buf).await {
            Ok(Message::Snapshot(s)) => break *s,
            Ok(_) => {}
            Err(e) => return Err(ConnectError::Protocol(e.to_string())),
        }
    };
    let (snap_tx, snap_rx) = watch::channel(first);
    let (notice_tx, notices) = mpsc::unbounded_channel();
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    let (cmd_tx, cmd_rx) = mpsc::channel::<Envelope>(64);
    let Connection {
        welcome,
        mut reader,
        writer,
        mut buf,
        ..
    } = conn;
    let forwarder = tokio::spawn(forward_commands(cmd_rx, writer));
    let notices_in = notice_tx.clone();
    tokio::spawn(async move {
        loop {
            match protocol::read::<Message, _>(&mut reader, &mut buf).await {
                Ok(Message::Snapshot(s)) => {
                    let mut s = *s;
                    snap_tx.send_modify(|old| {
                        s.samples = std::mem::take(&mut old.samples);
                        *old = s;
                    });
                }
                Ok(Message::Sample(p)) => snap_tx.send_modify(|old| {
                    old.samples.push(*p);
                    let extra = old.samples.len().saturating_sub(600);
                    old.samples.drain(..extra);
                }),
                Ok(Message::Log(line)) => super::logs::replay(&line),
                Ok(Message::Reply(r)) if !r.ok => {
                    let _ = notices_in.send(r.message);
                }
                Ok(Message::Gap { missed }) => {
                    tracing::warn!(target: "cutover", "{missed} log lines from the engine were skipped (this dashboard fell behind)");
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = closed_tx.send(());
    });
    let commands = Commands::new(cmd_tx, welcome.operator.clone());
    Ok(Attached {
        welcome,
        snapshots: snap_rx,
        commands,
        notices,
        closed,
        forwarder,
    })
}

/// Sends the dashboard's commands to the engine as requests.
async fn forward_commands(mut commands: mpsc::Receiver<Envelope>, mut writer: OwnedWriteHalf) {
    let mut id = 1_000_000u64;
    while let Some(env) = commands.recv().await {
        let (verb, at) = match env.command {
            Command::Approve { gate } => (Verb::Approve { gate }, None),
            Command::Pause => (Verb::Pause, None),
            Command::Resume => (Verb::Resume, None),
            Command::SetWeight(weight) => (Verb::SetWeight { weight }, None),
            Command::Rollback {
                reason,
                requested_at,
            } => (Verb::Rollback { reason }, Some(requested_at)),
            Command::HoldAndQuit { reason } => (Verb::Hold { reason }, None),
            // A dashboard's own hang-up only detaches it.
            Command::Signal(_) | Command::Presence { .. } | Command::LockLost { .. } => continue,
        };
        id += 1;
        let request = Request { id, verb, at };
        let Ok(line) = protocol::encode(&request) else {
            continue;
        };
        if writer.write_all(&line).await.is_err() {
            return;
        }
    }
}
