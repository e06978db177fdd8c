//! Whether the process that wrote a file may still be writing it: for leftovers of killed runs,
//! which carry their writer's pid in their name or beside them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether a process with `pid` exists and was already running at `written_at`, so it may be
/// the one that wrote a file last modified then. A pid that has since been reused by a newer
/// process is not the writer. When `/proc` cannot tell, the answer is yes: a file whose writer
/// is unknown is kept, never removed.
pub fn may_still_write(pid: u32, written_at: SystemTime) -> bool {
    match started_at(pid) {
        Ok(Some(start)) => start <= written_at + Duration::from_secs(1),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// When process `pid` started, or `None` when there is no such process.
fn started_at(pid: u32) -> std::io::Result<Option<SystemTime>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = || std::io::Error::other(format!("unexpected /proc/{pid}/stat"));
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = stat.rsplit_once(')').ok_or_else(bad)?.1;
    // Field 22 of stat(5), the start time in clock ticks after boot, is the 20th after the name.
    let ticks: u64 = rest.split_whitespace().nth(19).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let boot = std::fs::read_to_string("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok()))
        .ok_or_else(bad)?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(Some(UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 1000 / hz)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_may_write_what_it_wrote_since_it_started() {
        assert!(may_still_write(std::process::id(), SystemTime::now()));
    }

    #[test]
    fn a_newer_process_under_the_pid_is_not_the_writer() {
        // This process started after the epoch, so it cannot have written a file then.
        assert!(!may_still_write(std::process::id(), UNIX_EPOCH + Duration::from_secs(1_000)));
    }

    #[test]
    fn a_dead_pid_writes_nothing() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!may_still_write(pid, SystemTime::now()));
    }
}
