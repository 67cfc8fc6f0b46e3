//! The HAProxy router: the two servers' weights over HAProxy's runtime API
//! (through [`crate::haproxy_api::RuntimeApi`]).
//!
//! HAProxy weights are relative, so a canary weight `w` is written as weight
//! `w` on the canary server and `100 - w` on the stable one; weight 0 drains a
//! server. Runtime weights live in memory only: a reload of HAProxy forgets
//! them unless `server-state-file` / `load-server-state-from-file` keep them.

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{Router, RouterError};
use crate::config::HaproxyTarget;
use crate::haproxy_api::{self, RuntimeApi};

/// Turns HAProxy's reply to a command about `backend/server` into an error
/// saying what to fix, or `None` when the reply means success.
fn reply_error(reply: &str, command: &str, backend: &str, server: &str) -> Option<String> {
    let text = reply.trim();
    if text.is_empty() {
        return None;
    }
    let first = text.lines().next().unwrap_or(text).trim();
    Some(match first {
        "No such backend." => format!(
            "HAProxy has no backend \"{backend}\": set backend = \"…\" in [traffic.router] to the backend in haproxy.cfg that holds both servers"
        ),
        "No such server." => format!(
            "backend \"{backend}\" has no server \"{server}\": stable_server and canary_server must name `server` lines of that backend in haproxy.cfg"
        ),
        t if t.contains("static LB algorithm") => format!(
            "backend \"{backend}\" uses a static load-balancing algorithm, which only takes weights 0% and 100% at run time: use `balance roundrobin` (or leastconn or random) in that backend"
        ),
        t if t.starts_with("Permission denied") => format!(
            "HAProxy refused `{command}`: the stats socket must be opened at admin level (`stats socket … level admin`)"
        ),
        t if t.starts_with("Unknown command") => format!(
            "HAProxy does not know `{command}` at this socket's level: the stats socket must be at admin level (`stats socket … level admin`)"
        ),
        t => format!("HAProxy answered `{command}` with: {t}"),
    })
}

/// Reads the current weight from `get weight`'s reply, "12 (initial 100)".
fn parse_weight(reply: &str) -> Option<u32> {
    reply.split_whitespace().next()?.parse().ok()
}

/// The canary's share in percent of two HAProxy weights; `None` when both are 0.
fn canary_percent(canary: u32, stable: u32) -> Option<u8> {
    let total = u64::from(canary) + u64::from(stable);
    if total == 0 {
        return None;
    }
    let pct = (u64::from(canary) * 100 + total / 2) / total;
    Some(pct.min(100) as u8)
}

pub struct HaproxyRouter {
    target: HaproxyTarget,
    api: RuntimeApi,
    /// The last weight applied; also serialises weight changes.
    last: Mutex<Option<u8>>,
}

impl HaproxyRouter {
    pub fn new(target: HaproxyTarget) -> Self {
        let api = RuntimeApi::new(&target.socket);
        HaproxyRouter {
            target,
            api,
            last: Mutex::new(None),
        }
    }

    fn error(&self, message: impl Into<String>) -> RouterError {
        RouterError::new("haproxy", message)
    }

    async fn set_server(&self, server: &str, weight: u8) -> Result<(), RouterError> {
        let command = format!(
            "set server {}/{} weight {weight}",
            self.target.backend, server
        );
        let reply = self
            .api
            .send(&command)
            .await
            .map_err(|e| self.error(e.to_string()))?;
        match reply_error(&reply, &command, &self.target.backend, server) {
            None => Ok(()),
            Some(message) => Err(self.error(message)),
        }
    }

    /// The canary's and the stable server's weights as HAProxy applies them.
    async fn server_weights(&self) -> Result<(u32, u32), RouterError> {
        let canary = self.get_server(&self.target.canary_server).await?;
        let stable = self.get_server(&self.target.stable_server).await?;
        Ok((canary, stable))
    }

    async fn get_server(&self, server: &str) -> Result<u32, RouterError> {
        let command = format!("get weight {}/{}", self.target.backend, server);
        let reply = self
            .api
            .send(&command)
            .await
            .map_err(|e| self.error(e.to_string()))?;
        match parse_weight(&reply) {
            Some(w) => Ok(w),
            None => Err(self.error(
                reply_error(&reply, &command, &self.target.backend, server).unwrap_or_else(|| {
                    format!("HAProxy gave no weight for `{command}` (empty reply)")
                }),
            )),
        }
    }
}

#[async_trait]
impl Router for HaproxyRouter {
    fn kind(&self) -> &'static str {
        "haproxy"
    }

    async fn set_weight(&self, weight: u8) -> Result<(), RouterError> {
        if weight > 100 {
            return Err(self.error(format!("weight {weight} is above 100")));
        }
        let mut last = self.last.lock().await;
        let previous = match *last {
            Some(w) => Some(w),
            // First change: reading both servers first catches a wrong name
            // before anything moves. A rollback (0) goes ahead regardless.
            None => match self.server_weights().await {
                Ok((c, s)) => canary_percent(c, s),
                Err(e) if weight != 0 => return Err(e),
                Err(_) => None,
            },
        };
        // Toward stable (and always for 0, or when the weight is unknown) the
        // canary goes first, so a rollback takes it out before anything else.
        let canary_first = weight == 0 || previous.is_none_or(|p| weight < p);
        let (c, s) = (&self.target.canary_server, &self.target.stable_server);
        let result = if canary_first {
            match self.set_server(c, weight).await {
                Ok(()) => self.set_server(s, 100 - weight).await,
                Err(e) => Err(e),
            }
        } else {
            match self.set_server(s, 100 - weight).await {
                Ok(()) => self.set_server(c, weight).await,
                Err(e) => Err(e),
            }
        };
        // After a half-applied change the weight is unknown: read it next time.
        *last = result.as_ref().ok().map(|_| weight);
        result
    }

    async fn stable_health(&self) -> Result<Option<bool>, RouterError> {
        let stat = self
            .api
            .send("show stat")
            .await
            .map_err(|e| self.error(e.to_string()))?;
        let row = haproxy_api::server_row(&stat, &self.target.backend, &self.target.stable_server)
            .map_err(|e| self.error(e))?;
        // "UP", "UP 1/3" (going down), "DOWN", "MAINT", "no check" (no health check).
        let status = row.get("status").map(String::as_str).unwrap_or("");
        Ok(if status.starts_with("UP") {
            Some(true)
        } else if status.starts_with("DOWN") || status.contains("MAINT") {
            Some(false)
        } else {
            None
        })
    }

    async fn current_weight(&self) -> Result<u8, RouterError> {
        let (canary, stable) = self.server_weights().await?;
        canary_percent(canary, stable).ok_or_else(|| {
            self.error(format!(
                "servers {b}/{c} and {b}/{s} both have weight 0, so backend {b} sends traffic to neither: set a weight (e.g. `set server {b}/{s} weight 100`)",
                b = self.target.backend,
                c = self.target.canary_server,
                s = self.target.stable_server
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};
    use tokio::io::AsyncBufReadExt;

    #[test]
    fn haproxy_error_replies_say_what_to_fix() {
        assert_eq!(reply_error("\n", "c", "app", "v2"), None);
        let e = reply_error("No such server.\n\n", "c", "app", "v9").unwrap();
        assert!(e.contains("backend \"app\" has no server \"v9\""), "{e}");
        let e = reply_error("No such backend.\n\n", "c", "web", "v2").unwrap();
        assert!(e.contains("no backend \"web\""), "{e}");
        let e = reply_error(
            "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n\n",
            "c",
            "app",
            "v2",
        )
        .unwrap();
        assert!(e.contains("balance roundrobin"), "{e}");
        let e = reply_error(
            "Permission denied\n\n",
            "set server app/v2 weight 5",
            "app",
            "v2",
        )
        .unwrap();
        assert!(e.contains("level admin"), "{e}");
        let e = reply_error("Something else.\n", "cmd", "app", "v2").unwrap();
        assert!(e.contains("`cmd` with: Something else."), "{e}");
    }

    #[test]
    fn weights_become_a_canary_percent() {
        assert_eq!(parse_weight("25 (initial 1)\n\n"), Some(25));
        assert_eq!(parse_weight("No such server.\n"), None);
        assert_eq!(canary_percent(25, 75), Some(25));
        assert_eq!(canary_percent(0, 100), Some(0));
        assert_eq!(canary_percent(100, 0), Some(100));
        assert_eq!(canary_percent(1, 2), Some(33));
        assert_eq!(canary_percent(256, 0), Some(100));
        assert_eq!(canary_percent(0, 0), None);
    }

    /// A fake runtime API on a unix socket: keeps weights, answers like HAProxy
    /// and records the commands in order.
    async fn fake_haproxy(
        path: PathBuf,
        servers: &[(&str, u32)],
    ) -> (Arc<StdMutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let weights: Arc<StdMutex<Vec<(String, u32)>>> = Arc::new(StdMutex::new(
            servers.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
        ));
        let log = Arc::new(StdMutex::new(Vec::new()));
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, mut w) = stream.into_split();
                let mut line = String::new();
                tokio::io::BufReader::new(r)
                    .read_line(&mut line)
                    .await
                    .unwrap();
                let cmd = line.trim().to_string();
                log2.lock().unwrap().push(cmd.clone());
                let words: Vec<&str> = cmd.split_whitespace().collect();
                let reply = match words.as_slice() {
                    ["set", "server", target, "weight", n] => match target.strip_prefix("app/") {
                        None => "No such backend.\n\n".to_string(),
                        Some(s) => {
                            let mut ws = weights.lock().unwrap();
                            match ws.iter_mut().find(|(name, _)| name == s) {
                                Some(e) => {
                                    e.1 = n.parse().unwrap();
                                    "\n".to_string()
                                }
                                None => "No such server.\n\n".to_string(),
                            }
                        }
                    },
                    ["get", "weight", target] => {
                        let s = target.strip_prefix("app/").unwrap_or("?");
                        let ws = weights.lock().unwrap();
                        match ws.iter().find(|(name, _)| name == s) {
                            Some((_, w)) => format!("{w} (initial 1)\n\n"),
                            None => "No such server.\n\n".to_string(),
                        }
                    }
                    _ => "Unknown command.\n\n".to_string(),
                };
                let _ = w.write_all(reply.as_bytes()).await;
            }
        });
        (log, task)
    }

    fn target(socket: &std::path::Path, stable: &str) -> HaproxyTarget {
        HaproxyTarget {
            socket: socket.display().to_string(),
            backend: "app".into(),
            stable_server: stable.into(),
            canary_server: "v2".into(),
        }
    }

    #[tokio::test]
    async fn sets_both_servers_canary_first_toward_stable() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        let (log, task) = fake_haproxy(sock.clone(), &[("v1", 100), ("v2", 0)]).await;
        let r = HaproxyRouter::new(target(&sock, "v1"));
        assert_eq!(r.current_weight().await.unwrap(), 0);
        r.set_weight(25).await.unwrap();
        assert_eq!(r.current_weight().await.unwrap(), 25);
        log.lock().unwrap().clear();
        r.set_weight(50).await.unwrap();
        r.set_weight(0).await.unwrap();
        assert_eq!(r.current_weight().await.unwrap(), 0);
        let cmds = log.lock().unwrap().clone();
        assert_eq!(
            &cmds[..4],
            [
                "set server app/v1 weight 50",
                "set server app/v2 weight 50",
                "set server app/v2 weight 0",
                "set server app/v1 weight 100",
            ]
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_wrong_server_name_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        let (log, task) = fake_haproxy(sock.clone(), &[("v1", 100), ("v2", 0)]).await;
        let r = HaproxyRouter::new(target(&sock, "blue"));
        let e = r.set_weight(10).await.unwrap_err().to_string();
        assert!(e.contains("no server \"blue\""), "{e}");
        // Caught by reading before any weight moved.
        assert!(log.lock().unwrap().iter().all(|c| c.starts_with("get ")));
        let e = r.current_weight().await.unwrap_err().to_string();
        assert!(e.contains("no server \"blue\""), "{e}");
        task.abort();
    }

    #[tokio::test]
    async fn both_weights_zero_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("admin.sock");
        let (_log, task) = fake_haproxy(sock.clone(), &[("v1", 0), ("v2", 0)]).await;
        let r = HaproxyRouter::new(target(&sock, "v1"));
        let e = r.current_weight().await.unwrap_err().to_string();
        assert!(e.contains("both have weight 0"), "{e}");
        task.abort();
    }

    #[tokio::test]
    async fn a_missing_socket_names_the_stats_socket() {
        let dir = tempfile::tempdir().unwrap();
        let r = HaproxyRouter::new(target(&dir.path().join("none.sock"), "v1"));
        let e = r.set_weight(0).await.unwrap_err().to_string();
        assert!(e.contains("cannot connect"), "{e}");
        assert!(e.contains("level admin"), "{e}");
    }
}
