//! A real etcd cluster for tests: N members from Debian's `etcd` on loopback
//! ports, data in a temp dir, every member stopped when the cluster drops.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member: its URLs and, while it runs, its process.
pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// A running cluster; dropping it kills every member still running.
pub struct EtcdCluster {
    pub members: Vec<Member>,
    /// Time from the first spawn to every member reporting healthy.
    pub started_in: Duration,
    dir: tempfile::TempDir,
}

/// `n` distinct free loopback ports: all bound at once, then released.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

impl EtcdCluster {
    /// Starts `n` members as one new cluster and waits until each is healthy.
    pub fn start(n: usize) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2 * n);
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let peer_urls: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect();
        let initial = names
            .iter()
            .zip(&peer_urls)
            .map(|(name, url)| format!("{name}={url}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir
            .path()
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cutover-test".into());
        let members = (0..n)
            .map(|i| {
                let client_url = format!("http://127.0.0.1:{}", ports[2 * i]);
                let data = dir.path().join(&names[i]);
                let args = vec![
                    format!("--name={}", names[i]),
                    format!("--data-dir={}", data.display()),
                    format!("--listen-client-urls={client_url}"),
                    format!("--advertise-client-urls={client_url}"),
                    format!("--listen-peer-urls={}", peer_urls[i]),
                    format!("--initial-advertise-peer-urls={}", peer_urls[i]),
                    format!("--initial-cluster={initial}"),
                    "--initial-cluster-state=new".into(),
                    format!("--initial-cluster-token={token}"),
                    // Raft timing scaled down (defaults: 100 ms / 1000 ms) to the
                    // tests' short TTLs, so that electing a new leader after one
                    // dies (up to two election timeouts) fits within a 3 s lease.
                    "--heartbeat-interval=50".into(),
                    "--election-timeout=500".into(),
                    "--logger=zap".into(),
                ];
                Member {
                    name: names[i].clone(),
                    client_url,
                    peer_url: peer_urls[i].clone(),
                    args,
                    log: dir.path().join(format!("{}.log", names[i])),
                    child: None,
                }
            })
            .collect();
        let mut cluster = EtcdCluster {
            members,
            started_in: Duration::ZERO,
            dir,
        };
        let started = Instant::now();
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_healthy();
        cluster.started_in = started.elapsed();
        eprintln!(
            "etcd cluster of {n} healthy in {} ms",
            cluster.started_in.as_millis()
        );
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let member = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("member log");
        let child = Command::new("etcd")
            .args(&member.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        member.child = Some(child);
    }

    /// Client URLs of every member (running or not), as given to clients.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Client URLs of the members still running.
    pub fn running_endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client_url.clone())
            .collect()
    }

    /// Kills member `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `i` with SIGTERM (SIGKILL after 5 s) and reaps it.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if started.elapsed() > Duration::from_secs(5) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Starts member `i` again on its data dir (it rejoins as it was).
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i);
    }

    /// Waits until every running member reports healthy (a leader, and a
    /// read through it); panics with the logs' tails after 30 s.
    pub fn wait_healthy(&self) {
        let started = Instant::now();
        for member in self.members.iter().filter(|m| m.child.is_some()) {
            while !healthy(&member.client_url) {
                if started.elapsed() > Duration::from_secs(30) {
                    panic!(
                        "etcd member {} never became healthy\n{}",
                        member.name,
                        self.logs()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The last lines of every member's log, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(&m.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {} ---\n{}", m.name, tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The index of the member that is the raft leader, asked of the running
    /// ones through etcd's JSON gateway (`/v3/maintenance/status`: each
    /// member names itself and the leader).
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            m.child.is_some()
                && post(&m.client_url, "/v3/maintenance/status", "{}").is_some_and(|status| {
                    let v: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
                    let me = &v["header"]["member_id"];
                    !me.is_null() && v["leader"] == *me
                })
        })
    }

    /// Where the members keep their data and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// POSTs `body` (JSON) to `path` on the member at `client_url`; the
/// answer's body.
fn post(client_url: &str, path: &str, body: &str) -> Option<String> {
    let addr = client_url.trim_start_matches("http://").parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Whether the member at `client_url` answers `GET /health` with health true.
pub fn healthy(client_url: &str) -> bool {
    let addr = client_url.trim_start_matches("http://");
    let Ok(addr) = addr.parse() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}
