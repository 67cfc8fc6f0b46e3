//! `run` checks: `sh -c` in its own process group with stdin closed; output
//! streamed line by line; on timeout the whole group gets SIGTERM, then SIGKILL.

use std::collections::{BTreeMap, VecDeque};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{process, Attempt, CheckContext, TAIL_LINES};

/// Longest line kept, in characters; longer lines are cut.
const MAX_LINE: usize = 1000;
/// How long output is still read after the command exits (background jobs may
/// hold the pipes open).
const DRAIN: Duration = Duration::from_millis(300);

/// The tracing target of command output lines.
pub const OUTPUT_TARGET: &str = "cutover::output";
const OUTPUT_SEPARATOR: &str = " │ ";

/// Logs one output line of a check: the message reads `check │ line` for a
/// log pane, and the `check` and `line` fields carry the parts, so no
/// reader ever parses the message.
pub fn log_output(check: &str, line: &str) {
    tracing::info!(
        target: OUTPUT_TARGET,
        check = check,
        line = line,
        "{check}{OUTPUT_SEPARATOR}{line}"
    );
}

/// Stops the process group when dropped while armed: SIGTERM now, SIGKILL
/// after the grace period (see [`process::terminate`]).
struct GroupGuard {
    pgid: i32,
    grace: Duration,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            process::terminate(self.pgid, self.grace);
        }
    }
}

/// Tells the observer the command exited, also when it was abandoned.
struct Finished {
    pgid: i32,
    observer: Option<process::Observer>,
}

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(o) = &self.observer {
            o.finished(self.pgid);
        }
    }
}

/// The last lines of output, shared by the stdout and stderr readers.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    total: u64,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.total += 1;
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

async fn pump<R: AsyncRead + Unpin>(
    reader: R,
    tail: std::sync::Arc<std::sync::Mutex<Tail>>,
    check: String,
    secrets: Vec<String>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        let cut = match read_line_bounded(&mut reader, &mut buf, MAX_LINE_BYTES).await {
            Ok(None) | Err(_) => break,
            Ok(Some(cut)) => cut,
        };
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let mut line = String::from_utf8_lossy(&buf).into_owned();
        if line.chars().count() > MAX_LINE {
            line = line.chars().take(MAX_LINE).collect::<String>() + "…";
        }
        if cut > 0 {
            line.push_str(&format!(" [{cut} more bytes of this line not kept]"));
        }
        let line = crate::config::redact(&secrets, &line);
        log_output(&check, &line);
        if let Ok(mut t) = tail.lock() {
            t.push(line);
        }
    }
}

/// Longest part of one output line kept, in bytes; the rest is counted and
/// dropped as it arrives, so a command printing a huge line without a newline
/// costs this much memory, not the line's size.
const MAX_LINE_BYTES: usize = 4 * MAX_LINE;

/// Reads one line into `buf`, keeping at most `max` bytes of it; the count of
/// bytes dropped, or `None` at the end of the output.
async fn read_line_bounded<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<u64>> {
    let mut dropped = 0u64;
    let mut any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(any.then_some(dropped));
        }
        any = true;
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = max.saturating_sub(buf.len());
        let keep = chunk.len().min(room);
        buf.extend_from_slice(&chunk[..keep]);
        dropped += (chunk.len() - keep) as u64;
        let n = chunk.len();
        reader.consume(n);
        if done {
            return Ok(Some(dropped));
        }
    }
}

/// Runs `command` once with the check context's environment plus `env`.
/// When `observe`, the context's observer hears of its process group (checks
/// and router changes are journaled; read-only probes are not).
pub async fn run(
    command: &str,
    env: &BTreeMap<String, String>,
    ctx: &CheckContext,
    timeout: Duration,
    check: &str,
    observe: bool,
) -> Attempt {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .envs(&ctx.env)
        .envs(env);
    let parent = std::process::id() as i32;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // The shell dies with cutover, whatever kills it.
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != parent
            {
                libc::_exit(127);
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Attempt::fail(format!("cannot start sh: {e}")),
    };
    let Some(pid) = child.id() else {
        return Attempt::fail("the command exited before it could be watched");
    };
    let pgid = pid as i32;
    let observer = ctx.observer.clone().filter(|_| observe);
    if let Some(o) = &observer {
        o.started(pgid, process::start_ticks(pgid), check);
    }
    let _finished = Finished { pgid, observer };
    let mut guard = GroupGuard {
        pgid,
        grace: ctx.kill_grace,
        armed: true,
    };
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Tail::default()));
    let mut readers = tokio::task::JoinSet::new();
    if let Some(out) = child.stdout.take() {
        readers.spawn(pump(
            out,
            tail.clone(),
            check.to_string(),
            ctx.secrets.clone(),
        ));
    }
    if let Some(err) = child.stderr.take() {
        readers.spawn(pump(
            err,
            tail.clone(),
            check.to_string(),
            ctx.secrets.clone(),
        ));
    }

    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let mut attempt = match waited {
        Ok(Ok(status)) => {
            // The group may live on (a background job): leave it, but stop reading.
            guard.armed = false;
            let _ = tokio::time::timeout(DRAIN, async {
                while readers.join_next().await.is_some() {}
            })
            .await;
            readers.abort_all();
            match status.code() {
                Some(0) => Attempt {
                    passed: true,
                    exit_code: Some(0),
                    message: "exit status 0".into(),
                    tail: Vec::new(),
                },
                Some(code) => Attempt {
                    passed: false,
                    exit_code: Some(code),
                    message: format!("exit status {code}"),
                    tail: Vec::new(),
                },
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    let sig = status.signal().unwrap_or(0);
                    Attempt::fail(format!("killed by signal {sig}"))
                }
            }
        }
        Ok(Err(e)) => Attempt::fail(format!("cannot wait for the command: {e}")),
        Err(_) => {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
            if tokio::time::timeout(ctx.kill_grace, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(target: "cutover", check = %check, "command ignored SIGTERM; sending SIGKILL");
            }
            // Whatever is left of the group (children that ignored SIGTERM) goes now.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            let _ = child.wait().await;
            guard.armed = false;
            let _ = tokio::time::timeout(DRAIN, async {
                while readers.join_next().await.is_some() {}
            })
            .await;
            readers.abort_all();
            Attempt::fail(format!(
                "timed out after {}: process group terminated",
                humantime::format_duration(timeout)
            ))
        }
    };
    if let Ok(t) = tail.lock() {
        attempt.tail = t.lines.iter().cloned().collect();
        if t.total > TAIL_LINES as u64 {
            attempt
                .message
                .push_str(&format!(" ({} lines of output)", t.total));
        }
    }
    attempt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CheckContext {
        CheckContext {
            kill_grace: Duration::from_millis(500),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn exit_status_and_tail() {
        let a = run(
            "echo one; echo two >&2; exit 3",
            &BTreeMap::new(),
            &ctx(),
            Duration::from_secs(10),
            "t",
            false,
        )
        .await;
        assert!(!a.passed);
        assert_eq!(a.exit_code, Some(3));
        assert!(a.tail.contains(&"one".to_string()));
        assert!(a.tail.contains(&"two".to_string()));
        let a = run(
            "true",
            &BTreeMap::new(),
            &ctx(),
            Duration::from_secs(10),
            "t",
            false,
        )
        .await;
        assert!(a.passed);
    }

    #[tokio::test]
    async fn environment_and_closed_stdin() {
        let mut c = ctx();
        c.env.insert("CUTOVER_VERSION".into(), "v9".into());
        let mut env = BTreeMap::new();
        env.insert("EXTRA".into(), "x".into());
        let a = run(
            "test \"$CUTOVER_VERSION$EXTRA\" = v9x && cat",
            &env,
            &c,
            Duration::from_secs(10),
            "t",
            false,
        )
        .await;
        assert!(a.passed, "{a:?}");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pids");
        let cmd = format!(
            "sleep 600 & echo $! > {0}; sleep 600 & echo $! >> {0}; wait",
            marker.display()
        );
        let a = run(
            &cmd,
            &BTreeMap::new(),
            &ctx(),
            Duration::from_millis(500),
            "t",
            false,
        )
        .await;
        assert!(!a.passed);
        assert!(a.message.contains("timed out"), "{}", a.message);
        let pids = std::fs::read_to_string(&marker).unwrap();
        for pid in pids.split_whitespace() {
            let pid: i32 = pid.parse().unwrap();
            // Signal 0 probes: the process must be gone (or a zombie being reaped).
            let alive = nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true);
            assert!(!alive, "sleep {pid} survived the timeout");
        }
    }

    #[tokio::test]
    async fn a_huge_line_without_a_newline_costs_bounded_memory() {
        let data = vec![b'#'; 20 * 1024 * 1024];
        let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, &data[..]);
        let mut buf = Vec::new();
        let dropped = read_line_bounded(&mut reader, &mut buf, 4000)
            .await
            .unwrap();
        assert_eq!(buf.len(), 4000);
        assert_eq!(dropped, Some(20 * 1024 * 1024 - 4000));
        assert!(buf.capacity() < 1024 * 1024, "{}", buf.capacity());
        assert_eq!(
            read_line_bounded(&mut reader, &mut buf, 4000)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_tail_bounded() {
        let a = run(
            "head -c 5000 /dev/zero | tr '\\0' x; echo; seq 1 100",
            &BTreeMap::new(),
            &ctx(),
            Duration::from_secs(10),
            "t",
            false,
        )
        .await;
        assert!(a.passed);
        assert_eq!(a.tail.len(), TAIL_LINES);
        assert_eq!(a.tail.last().map(String::as_str), Some("100"));
        assert!(a.message.contains("101 lines"), "{}", a.message);
    }
}
