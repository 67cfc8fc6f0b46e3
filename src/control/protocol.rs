//! The control protocol between a running engine and its clients
//! (dashboards, `cutover status`/`approve`/`rollback`/…), over the Unix
//! socket `<state_dir>/control.sock`: newline-delimited JSON, one message per
//! line, at most [`MAX_LINE`] bytes.
//!
//! A client opens with [`Hello`]; the engine answers [`Welcome`] and, for a
//! watching client, sends [`Update`]s: the latest snapshot (coalesced, without
//! its samples), each new analysis sample once, journal records and log lines
//! (bounded per client: a slow client misses lines, told by a `gap`, and never
//! slows the engine). Requests carry an id that their [`Reply`] repeats.
//! Version: [`PROTOCOL`]; a client of another version is refused at hello.

use serde::{Deserialize, Serialize};

use crate::domain::{GateTarget, Operator};
use crate::engine::snapshot::AnalysisPoint;
use crate::engine::Snapshot;

/// The protocol's version; bumped on any incompatible change.
pub const PROTOCOL: u32 = 1;

/// Longest message line accepted, in bytes.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// The client's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// Receive updates (a dashboard, `status --watch`); else requests only.
    pub watch: bool,
    /// The SSH client address the client was reached from (`SSH_CONNECTION`),
    /// as the client says; the account itself comes from the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_client: Option<String>,
    /// The login key's fingerprint (sshd `ExposeAuthInfo`), as the client says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// A dashboard that steers (counts toward "attended"), not only watches.
    #[serde(default)]
    pub controlling: bool,
}

/// The engine's answer to a hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: u32,
    /// Who the engine takes this client for (from the socket's peer credentials).
    pub operator: Operator,
    /// Whether this operator may steer (approve, roll back, …); else watch only.
    pub may_steer: bool,
    pub deployment_id: String,
    pub journal_path: String,
    /// The engine process.
    pub pid: u32,
}

/// What a client asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum Verb {
    Status,
    /// Approve this gate; refused unless it is the one open.
    Approve {
        gate: GateTarget,
    },
    Rollback {
        reason: String,
    },
    Pause,
    Resume,
    SetWeight {
        weight: u8,
    },
    /// Hold traffic where it is and stop the deployment (resumable).
    Hold {
        reason: String,
    },
}

/// A client line after the hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub verb: Verb,
    /// When the operator asked (the key press), RFC 3339; the engine's own
    /// clock is used when absent or in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The engine's answer to a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub ok: bool,
    /// What happened, or why it was refused.
    pub message: String,
    /// For `status`: the current snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Box<Snapshot>>,
}

/// One log line of the engine, for an attached log pane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub ts: chrono::DateTime<chrono::Utc>,
    /// "error", "warn", "info", "debug", "trace".
    pub level: String,
    pub target: String,
    pub text: String,
    /// For check output: the check and its line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
}

/// A line from the engine to a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Welcome(Welcome),
    Refused {
        message: String,
    },
    Reply(Reply),
    /// The latest state; `samples` empty (they come as `sample`), except in
    /// the first snapshot after the welcome, which carries them all.
    Snapshot(Box<Snapshot>),
    Sample(Box<AnalysisPoint>),
    /// A journal line, exactly as written.
    Record {
        line: String,
    },
    Log(LogLine),
    /// This client fell behind and missed `missed` records or log lines.
    Gap {
        missed: u64,
    },
    /// The engine is going away (the deployment ended and it exits).
    Bye {
        message: String,
    },
}

/// Serializes a message as one line (with its newline).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = serde_json::to_vec(msg)?;
    v.push(b'\n');
    Ok(v)
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the connection closed")]
    Closed,
    #[error("a line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a protocol message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Reads one line (bounded) and parses it.
pub async fn read<T, R>(reader: &mut R, buf: &mut Vec<u8>) -> Result<T, ReadError>
where
    T: for<'de> Deserialize<'de>,
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Err(ReadError::Closed);
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                buf.extend_from_slice(&available[..i]);
                reader.consume(i + 1);
                break;
            }
            None => {
                let n = available.len();
                buf.extend_from_slice(available);
                reader.consume(n);
            }
        }
        if buf.len() > MAX_LINE {
            return Err(ReadError::TooLong);
        }
    }
    Ok(serde_json::from_slice(buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_their_verb_flat() {
        let r = Request {
            id: 7,
            verb: Verb::Approve {
                gate: GateTarget::Step { to: 25 },
            },
            at: None,
        };
        let line = String::from_utf8(encode(&r).unwrap()).unwrap();
        assert!(line.contains("\"verb\":\"approve\""), "{line}");
        let back: Request = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(back.verb, r.verb);
    }

    #[tokio::test]
    async fn an_overlong_line_is_refused_not_buffered_forever() {
        let big = vec![b'x'; MAX_LINE + 10];
        let mut reader = tokio::io::BufReader::new(&big[..]);
        let mut buf = Vec::new();
        let r: Result<Hello, _> = read(&mut reader, &mut buf).await;
        assert!(matches!(r, Err(ReadError::TooLong)));
    }
}
