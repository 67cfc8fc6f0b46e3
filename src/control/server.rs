//! The engine's side of the control socket: each client is named by the
//! kernel (peer credentials), its requests become engine commands on its
//! behalf, and it gets the latest snapshot, new samples, journal records and
//! log lines. Updates are coalesced or dropped per client, never queued
//! without bound, so a slow client slows neither the engine nor the others.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, watch};

use super::identity;
use super::protocol::{self, Hello, LogLine, Message, Reply, Request, Verb, Welcome, PROTOCOL};
use crate::domain::Operator;
use crate::engine::{Command, Commands, Snapshot};

/// Shortest time between two snapshots sent to one client (10 per second).
const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);
/// Longest wait for a client's hello.
const HELLO_WAIT: Duration = Duration::from_secs(5);
/// Records and log lines kept for a lagging client before it misses some.
pub const BACKLOG: usize = 1024;

/// Who may steer: `Ok(())`, or why this operator may only watch.
pub type SteerPolicy = Arc<dyn Fn(&Operator) -> Result<(), String> + Send + Sync>;

/// What the server serves.
#[derive(Clone)]
pub struct Served {
    pub commands: Commands,
    pub snapshots: watch::Receiver<Snapshot>,
    /// Journal lines as written.
    pub records: broadcast::Sender<String>,
    pub logs: broadcast::Sender<LogLine>,
    pub may_steer: SteerPolicy,
    /// Clients attached with `watch` (dashboards) now.
    pub watchers: Arc<AtomicUsize>,
}

/// Counts a watching client while it is connected.
struct Watching(Arc<AtomicUsize>);

impl Watching {
    fn join(count: &Arc<AtomicUsize>) -> Watching {
        count.fetch_add(1, Ordering::SeqCst);
        Watching(Arc::clone(count))
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The listening socket; removed when dropped.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where a state dir's engine listens.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// Binds `<state_dir>/control.sock` (0600, or 0660 for `group`), replacing
/// a socket left by a dead engine but never a live one or anything else.
pub fn bind(state_dir: &Path, group: Option<nix::unistd::Gid>) -> std::io::Result<ControlSocket> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let path = socket_path(state_dir);
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("an engine already listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group {
        nix::unistd::chown(&path, None, Some(gid)).map_err(std::io::Error::from)?;
    }
    Ok(ControlSocket { listener, path })
}

impl ControlSocket {
    /// Serves clients until the task is dropped.
    pub async fn serve(self, served: Served) {
        let controllers = Arc::new(AtomicUsize::new(0));
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let served = served.clone();
            let controllers = Arc::clone(&controllers);
            tokio::spawn(async move {
                if let Err(e) = client(stream, served, controllers).await {
                    tracing::debug!(target: "cutover::control", "client ended: {e}");
                }
            });
        }
    }
}

/// Counts a steering client while it is attached.
struct Presence {
    count: Arc<AtomicUsize>,
    commands: Commands,
}

impl Presence {
    fn join(count: Arc<AtomicUsize>, commands: Commands) -> Presence {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = commands.try_send(Command::Presence { controllers: n });
        Presence { count, commands }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        let n = self.count.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
        let _ = self.commands.try_send(Command::Presence { controllers: n });
    }
}

async fn client(
    stream: UnixStream,
    served: Served,
    controllers: Arc<AtomicUsize>,
) -> Result<(), protocol::ReadError> {
    let uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    let hello: Hello =
        match tokio::time::timeout(HELLO_WAIT, protocol::read(&mut reader, &mut buf)).await {
            Ok(h) => h?,
            Err(_) => return Ok(()),
        };
    if hello.protocol != PROTOCOL {
        let refused = Message::Refused {
            message: format!(
                "this engine speaks control protocol {PROTOCOL}, the client {}: use the same cutover version",
                hello.protocol
            ),
        };
        write.write_all(&protocol::encode(&refused)?).await?;
        return Ok(());
    }
    let operator = identity::operator_of(uid, hello.ssh_client, hello.key_fingerprint);
    let may_steer = (served.may_steer)(&operator);
    let first = served.snapshots.borrow().clone();
    let welcome = Message::Welcome(Welcome {
        protocol: PROTOCOL,
        operator: operator.clone(),
        may_steer: may_steer.is_ok(),
        deployment_id: first.deployment_id.clone(),
        journal_path: first.journal_path.clone(),
        pid: std::process::id(),
    });
    write.write_all(&protocol::encode(&welcome)?).await?;
    let commands = served.commands.acting_for(operator.clone());
    let _presence = (hello.controlling && may_steer.is_ok())
        .then(|| Presence::join(controllers, commands.clone()));
    let _watching = hello.watch.then(|| Watching::join(&served.watchers));
    let (reply_tx, reply_rx) = mpsc::channel::<Reply>(16);
    let writer = tokio::spawn(updates(
        write,
        hello.watch.then(|| served.clone()),
        reply_rx,
    ));
    let result = requests(
        &mut reader,
        &mut buf,
        &commands,
        &served,
        may_steer,
        reply_tx,
    )
    .await;
    writer.abort();
    result
}

/// Reads requests until the client goes; each is answered.
async fn requests(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    buf: &mut Vec<u8>,
    commands: &Commands,
    served: &Served,
    may_steer: Result<(), String>,
    replies: mpsc::Sender<Reply>,
) -> Result<(), protocol::ReadError> {
    loop {
        let request: Request = match protocol::read(reader, buf).await {
            Ok(r) => r,
            Err(protocol::ReadError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        };
        let id = request.id;
        let reply = match (request.verb, &may_steer) {
            (Verb::Status, _) => Reply {
                id,
                ok: true,
                message: String::new(),
                snapshot: Some(Box::new(served.snapshots.borrow().clone())),
            },
            (_, Err(why)) => Reply {
                id,
                ok: false,
                message: why.clone(),
                snapshot: None,
            },
            (verb, Ok(())) => {
                let answer = match command_of(verb, request.at) {
                    Some(command) => commands.request(command).await,
                    None => Err("nothing to do".to_string()),
                };
                let ok = answer.is_ok();
                Reply {
                    id,
                    ok,
                    message: answer.unwrap_or_else(|e| e),
                    snapshot: None,
                }
            }
        };
        if replies.send(reply).await.is_err() {
            return Ok(());
        }
    }
}

/// The engine command a verb asks for (`status` is answered by the server).
fn command_of(verb: Verb, at: Option<chrono::DateTime<chrono::Utc>>) -> Option<Command> {
    Some(match verb {
        Verb::Status => return None,
        Verb::Approve { gate } => Command::Approve { gate },
        Verb::Rollback { reason } => Command::Rollback {
            reason,
            requested_at: at.unwrap_or_else(chrono::Utc::now),
        },
        Verb::Pause => Command::Pause,
        Verb::Resume => Command::Resume,
        Verb::SetWeight { weight } => Command::SetWeight(weight),
        Verb::Hold { reason } => Command::HoldAndQuit { reason },
    })
}

/// Writes replies and, for a watching client, updates: the latest snapshot
/// at most every [`SNAPSHOT_EVERY`] (samples sent once each), records and log
/// lines (a lagging client is told what it missed).
async fn updates(
    mut write: tokio::net::unix::OwnedWriteHalf,
    watch: Option<Served>,
    mut replies: mpsc::Receiver<Reply>,
) -> std::io::Result<()> {
    let Some(served) = watch else {
        while let Some(reply) = replies.recv().await {
            write.write_all(&encode(&Message::Reply(reply))?).await?;
        }
        return Ok(());
    };
    let mut snapshots = served.snapshots.clone();
    let mut records = served.records.subscribe();
    let mut logs = served.logs.subscribe();
    // The first snapshot carries every sample; later ones carry none.
    let first = snapshots.borrow_and_update().clone();
    let mut last_sample = first.samples.last().map(|s| s.t);
    write
        .write_all(&encode(&Message::Snapshot(Box::new(first)))?)
        .await?;
    let mut next_snapshot = tokio::time::Instant::now() + SNAPSHOT_EVERY;
    let mut snapshot_due = false;
    let mut engine_open = true;
    let (mut records_open, mut logs_open) = (true, true);
    loop {
        tokio::select! {
            reply = replies.recv() => match reply {
                Some(r) => write.write_all(&encode(&Message::Reply(r))?).await?,
                None => return Ok(()),
            },
            changed = snapshots.changed(), if engine_open && !snapshot_due => {
                if changed.is_err() {
                    engine_open = false;
                }
                snapshot_due = true;
            }
            () = tokio::time::sleep_until(next_snapshot), if snapshot_due => {
                snapshot_due = false;
                next_snapshot = tokio::time::Instant::now() + SNAPSHOT_EVERY;
                let mut snap = snapshots.borrow_and_update().clone();
                let samples = std::mem::take(&mut snap.samples);
                let mut out = Vec::new();
                let since = last_sample;
                for s in samples.into_iter().filter(|s| since.is_none_or(|t| s.t > t)) {
                    last_sample = Some(s.t);
                    out.extend(encode(&Message::Sample(Box::new(s)))?);
                }
                out.extend(encode(&Message::Snapshot(Box::new(snap)))?);
                write.write_all(&out).await?;
                if !engine_open {
                    let bye = Message::Bye { message: "the engine has finished".into() };
                    write.write_all(&encode(&bye)?).await?;
                }
            }
            record = records.recv(), if records_open => match record {
                Ok(line) => write.write_all(&encode(&Message::Record { line })?).await?,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    write.write_all(&encode(&Message::Gap { missed })?).await?;
                }
                Err(broadcast::error::RecvError::Closed) => records_open = false,
            },
            log = logs.recv(), if logs_open => match log {
                Ok(line) => write.write_all(&encode(&Message::Log(line))?).await?,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    write.write_all(&encode(&Message::Gap { missed })?).await?;
                }
                Err(broadcast::error::RecvError::Closed) => logs_open = false,
            },
        }
    }
}

fn encode(m: &Message) -> std::io::Result<Vec<u8>> {
    protocol::encode(m).map_err(std::io::Error::other)
}
