//! Process plumbing shared by the stack's servers: the start-up lock, ports, running commands,
//! waiting for readiness, pid files and stopping what a pid file names.

use super::{StackError, io_err};
use rustix::fs::FlockOperation;
use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(super) struct DirLock(#[allow(dead_code)] File);

pub(super) fn lock(dir: &Path) -> Result<DirLock, StackError> {
    let path = dir.join("stack.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(&path)
        .map_err(io_err(&path))?;
    // Initdb and first start take seconds; a holder stuck for minutes is a bug to report.
    let mut err = None;
    let locked = poll_until(Duration::from_secs(300), || {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => true,
            Err(rustix::io::Errno::WOULDBLOCK) => false,
            Err(e) => {
                err = Some(e);
                true
            }
        }
    });
    if let Some(e) = err {
        return Err(StackError::Io { path, source: e.into() });
    }
    if !locked {
        return Err(StackError::NotReady { what: "the stack lock", seconds: 300, log: path });
    }
    Ok(DirLock(file))
}

pub(super) fn free_port(dir: &Path) -> Result<u16, StackError> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(io_err(dir))
}

pub(super) fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Calls `ready` until it returns true or `limit` passes, backing off from 10 ms to 200 ms.
pub(super) fn poll_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

pub(super) fn run(cmd: &mut Command) -> Result<Output, StackError> {
    // Not `{cmd:?}`: Command's Debug shows the environment, which carries PGPASSWORD.
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StackError::Command { command: shown.clone(), detail: e.to_string() })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(StackError::Command {
            command: shown,
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

pub(super) fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(super) fn pid_alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; its state letter tells.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Whether `pid` runs a program named `name` (its argv[0] ends with it): a stale pid file after a
/// reboot may name an unrelated process, which must not be signalled.
fn pid_runs(pid: i32, name: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| c.split(|b| *b == 0).next().map(|a| String::from_utf8_lossy(a).into_owned()))
        .is_some_and(|argv0| argv0.split_whitespace().next().unwrap_or("").ends_with(name))
}

pub(super) fn terminate(pid: i32, name: &str, limit: Duration) {
    if !pid_runs(pid, name) {
        return;
    }
    let Some(pid_t) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    if rustix::process::kill_process(pid_t, rustix::process::Signal::TERM).is_err() {
        return;
    }
    if !poll_until(limit, || !pid_alive(pid)) {
        let _ = rustix::process::kill_process(pid_t, rustix::process::Signal::KILL);
    }
}
