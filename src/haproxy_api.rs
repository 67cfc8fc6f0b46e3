//! A client for HAProxy's runtime API (the "stats socket"), shared by the
//! HAProxy router and the HAProxy metric source: one command per connection,
//! the reply read until HAProxy closes it, and `show stat` CSV parsing.
//! Protocol: HAProxy management guide, "9.3. Unix Socket commands".

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest reply read; `show stat` of a large HAProxy is well under this.
const MAX_REPLY: usize = 16 * 1024 * 1024;

/// Where the runtime API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

/// Why a runtime API command got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeApiError {
    #[error("cannot connect to HAProxy's runtime API at {address}: {error} (is HAProxy running, with `stats socket {address} level admin` in its global section?)")]
    Connect {
        address: String,
        error: std::io::Error,
    },
    #[error("HAProxy's runtime API at {address} gave no complete answer to `{command}` within {timeout}")]
    Timeout {
        address: String,
        command: String,
        timeout: String,
    },
    #[error("talking to HAProxy's runtime API at {address} (`{command}`): {error}")]
    Io {
        address: String,
        command: String,
        error: std::io::Error,
    },
}

/// A client for HAProxy's runtime API (the "stats socket"): one command per
/// connection, the reply read until HAProxy closes it.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    address: String,
    endpoint: Endpoint,
    timeout: Duration,
}

impl RuntimeApi {
    /// `socket` is a unix socket path (optionally `unix@path`) or `host:port`
    /// (optionally `ipv4@host:port`), as in HAProxy's `stats socket` line.
    pub fn new(socket: &str) -> Self {
        RuntimeApi {
            address: socket.to_string(),
            endpoint: parse_endpoint(socket),
            timeout: Duration::from_secs(5),
        }
    }

    /// Bounds each command, connect to last byte.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends one command and returns HAProxy's reply (an empty reply means
    /// success for the `set` commands).
    pub async fn send(&self, command: &str) -> Result<String, RuntimeApiError> {
        let exchange = async {
            match &self.endpoint {
                Endpoint::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|error| self.connect_error(error))?;
                    self.exchange(stream, command).await
                }
                Endpoint::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr.as_str())
                        .await
                        .map_err(|error| self.connect_error(error))?;
                    self.exchange(stream, command).await
                }
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(reply) => reply,
            Err(_) => Err(RuntimeApiError::Timeout {
                address: self.address.clone(),
                command: command.to_string(),
                timeout: humantime::format_duration(self.timeout).to_string(),
            }),
        }
    }

    fn connect_error(&self, error: std::io::Error) -> RuntimeApiError {
        RuntimeApiError::Connect {
            address: self.address.clone(),
            error,
        }
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        command: &str,
    ) -> Result<String, RuntimeApiError> {
        let io = |error| RuntimeApiError::Io {
            address: self.address.clone(),
            command: command.to_string(),
            error,
        };
        // Without `prompt`, HAProxy answers one line of commands and closes.
        stream
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(io)?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.len() > MAX_REPLY {
                return Err(io(std::io::Error::other("reply larger than 16 MiB")));
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }
}

fn parse_endpoint(socket: &str) -> Endpoint {
    if let Some(path) = socket.strip_prefix("unix@") {
        return Endpoint::Unix(PathBuf::from(path));
    }
    for prefix in ["ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"] {
        if let Some(addr) = socket.strip_prefix(prefix) {
            return Endpoint::Tcp(addr.to_string());
        }
    }
    // host:port when the part after the last ':' is a port and there is no '/'.
    let is_host_port = !socket.contains('/')
        && socket
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if is_host_port {
        Endpoint::Tcp(socket.to_string())
    } else {
        Endpoint::Unix(PathBuf::from(socket))
    }
}

/// Splits one CSV line; HAProxy quotes a field only when it holds a comma or quote.
pub fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// `backend/server`'s row of `show stat` output, by column name (empty
/// fields left out).
pub fn server_row(
    stat: &str,
    backend: &str,
    server: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut lines = stat.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| {
            let first = stat.lines().next().unwrap_or("").trim();
            format!("`show stat` did not answer with CSV (first line: {first:?})")
        })?;
    let columns = split_csv(header);
    let position = |name: &str| columns.iter().position(|c| c == name);
    let (Some(px), Some(sv)) = (position("pxname"), position("svname")) else {
        return Err("`show stat` has no pxname/svname columns".into());
    };
    let mut backend_seen = false;
    for line in lines {
        let row = split_csv(line);
        if row.get(px).map(String::as_str) != Some(backend) {
            continue;
        }
        backend_seen = true;
        if row.get(sv).map(String::as_str) != Some(server) {
            continue;
        }
        return Ok(columns
            .iter()
            .zip(row)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v))
            .collect());
    }
    Err(if backend_seen {
        format!("backend \"{backend}\" has no server \"{server}\" in `show stat`: check stable_server and canary_server")
    } else {
        format!("HAProxy has no backend \"{backend}\" in `show stat`: check backend in [traffic.router]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unix_paths_or_host_port() {
        assert_eq!(
            parse_endpoint("/run/haproxy/admin.sock"),
            Endpoint::Unix("/run/haproxy/admin.sock".into())
        );
        assert_eq!(
            parse_endpoint("unix@/tmp/a.sock"),
            Endpoint::Unix("/tmp/a.sock".into())
        );
        assert_eq!(
            parse_endpoint("admin.sock"),
            Endpoint::Unix("admin.sock".into())
        );
        assert_eq!(
            parse_endpoint("127.0.0.1:9999"),
            Endpoint::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            parse_endpoint("ipv4@10.0.0.1:9999"),
            Endpoint::Tcp("10.0.0.1:9999".into())
        );
        assert_eq!(
            parse_endpoint("lb.internal:9999"),
            Endpoint::Tcp("lb.internal:9999".into())
        );
    }

    #[test]
    fn csv_fields_handle_quotes() {
        assert_eq!(split_csv("a,\"b,c\",\"d\"\"e\","), ["a", "b,c", "d\"e", ""]);
    }
}
