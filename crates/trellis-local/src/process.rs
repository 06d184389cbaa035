//! Processes the runtime starts, recorded by PID *and* start time, so that a recorded PID
//! that the kernel has since given to another process is never signalled.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One process the runtime started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// What it is, for messages (`sidecar`, `app`, `control plane`, `supervisor`).
    pub role: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

impl ProcessRecord {
    /// The record of the running process `pid`.
    pub fn of(role: &str, pid: u32) -> Option<ProcessRecord> {
        let (start_time, _) = stat(pid)?;
        Some(ProcessRecord {
            role: role.to_string(),
            pid,
            start_time,
        })
    }

    /// The record of this process.
    pub fn this(role: &str) -> Option<ProcessRecord> {
        ProcessRecord::of(role, std::process::id())
    }

    /// True while the recorded process (same PID, same start time) runs and is not a zombie.
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|(start, state)| start == self.start_time && state != 'Z')
    }

    /// Sends `signal` if the recorded process still runs.
    pub fn signal(&self, signal: Signal) {
        if self.alive()
            && let Ok(pid) = i32::try_from(self.pid)
        {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// SIGTERM, then SIGKILL if it still runs after `grace`.
    pub fn stop(&self, grace: Duration) {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(Signal::SIGKILL);
    }
}

/// Start time and state letter of `pid`, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is the 20th after the name (fields 3.. are rest[0..]).
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// Starts `command` in its own process group (a Ctrl-C on the terminal reaches only the
/// supervisor, which then stops things in order), stdin closed, output appended to `log`.
pub fn spawn_logged(mut command: Command, what: &str, log: &Path) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::io(format!("cannot open {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(Error::io(format!("cannot open {}", log.display())))?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(Error::io(format!("cannot start {what}")))
}

/// Waits up to `grace` for `child` to exit after SIGTERM, then kills it; reaps it.
pub fn stop_child(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessRecord::this("test").unwrap();
        assert!(me.alive());
        let recycled = ProcessRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.alive());
    }
}
