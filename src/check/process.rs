//! Process groups of the commands cutover runs: none may outlive cutover
//! unnoticed. A command's shell dies with cutover (parent-death signal); a
//! group being stopped gets SIGTERM, then SIGKILL after the grace period,
//! and the process waits for that grace before it exits; a group left by a
//! killed run is found again by its id and leader start time, and stopped.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Told when a command's process group starts and when its command exits,
/// so the engine can journal it (and a resumed run can find it again).
pub trait CommandObserver: Send + Sync {
    /// `pgid` started for `what`; `start_ticks` is the leader's start time
    /// (clock ticks since boot, `/proc/PID/stat` field 22) when known.
    fn started(&self, pgid: i32, start_ticks: Option<u64>, what: &str);
    /// The command of `pgid` exited (its group may keep background jobs).
    fn finished(&self, pgid: i32);
}

/// An observer shared through a check context.
pub type Observer = Arc<dyn CommandObserver>;

/// A process's start time in clock ticks since boot (Linux `/proc`); `None`
/// where it cannot be read.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).and_then(|f| f.get(19)?.parse().ok())
}

/// The fields of `/proc/PID/stat` after the command name (field 3 onward),
/// which may itself hold spaces and parentheses.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().collect())
}

/// The live processes of group `pgid` started at or after `since_ticks`
/// (so a later group that reuses the id is left alone). Zombies excluded.
pub fn group_members(pgid: i32, since_ticks: Option<u64>) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(f) = stat_fields(&stat) else {
            continue;
        };
        // f[0] state, f[2] pgrp, f[19] starttime.
        let state = f.first().copied().unwrap_or("");
        let pgrp = f.get(2).and_then(|v| v.parse::<i32>().ok());
        let started = f.get(19).and_then(|v| v.parse::<u64>().ok());
        if pgrp == Some(pgid)
            && state != "Z"
            && since_ticks.is_none_or(|since| started.is_some_and(|s| s >= since))
        {
            out.push(pid);
        }
    }
    out
}

/// Groups being stopped: SIGKILL is due at the deadline.
fn stopping() -> &'static Mutex<Vec<(i32, Instant)>> {
    static STOPPING: OnceLock<Mutex<Vec<(i32, Instant)>>> = OnceLock::new();
    STOPPING.get_or_init(|| Mutex::new(Vec::new()))
}

/// Stops a group: SIGTERM now, SIGKILL once `grace` has passed (from a
/// thread of its own, and by [`finish_stopping`] if the process is exiting).
pub fn terminate(pgid: i32, grace: Duration) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    if let Ok(mut list) = stopping().lock() {
        list.push((pgid, deadline));
    }
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        kill_now(pgid);
    });
}

fn kill_now(pgid: i32) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    if let Ok(mut list) = stopping().lock() {
        list.retain(|(p, _)| *p != pgid);
    }
}

/// Waits until every group being stopped is gone or past its grace (then
/// killed): called before the process exits, so the grace is honoured on
/// every way out.
pub fn finish_stopping() {
    loop {
        let next = stopping()
            .lock()
            .ok()
            .and_then(|list| list.iter().min_by_key(|(_, d)| *d).copied());
        let Some((pgid, deadline)) = next else { return };
        while group_alive(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_now(pgid);
    }
}

/// Whether any process of group `pgid` is alive.
pub fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok() && !group_members(pgid, None).is_empty()
}

/// Stops what is left of a group of an earlier run: SIGTERM, `grace`, then
/// SIGKILL. Returns how many processes were found.
pub fn stop_orphans(pgid: i32, since_ticks: Option<u64>, grace: Duration) -> usize {
    let found = group_members(pgid, since_ticks);
    if found.is_empty() {
        return 0;
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while !group_members(pgid, since_ticks).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !group_members(pgid, since_ticks).is_empty() {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let settle = Instant::now() + Duration::from_secs(2);
        while !group_members(pgid, since_ticks).is_empty() && Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    found.len()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn a_stat_line_with_odd_names_parses() {
        let stat = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[2], "1234");
        assert_eq!(f[19], "987654");
    }

    #[test]
    fn an_orphaned_group_is_found_and_stopped() {
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("trap '' TERM; sleep 30 & sleep 30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        let since = start_ticks(pgid);
        assert!(since.is_some());
        std::thread::sleep(Duration::from_millis(200));
        assert!(group_members(pgid, since).len() >= 2);
        // A later group's start time excludes these.
        assert!(group_members(pgid, since.map(|s| s + 1_000_000)).is_empty());
        let n = stop_orphans(pgid, since, Duration::from_millis(300));
        assert!(n >= 2);
        let _ = child.wait();
        assert!(group_members(pgid, since).is_empty());
    }
}
