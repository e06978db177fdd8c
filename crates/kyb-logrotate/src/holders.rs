//! Which processes hold a file open, read from `/proc/*/fd`, and waiting until none does.
//!
//! Only descriptors whose link text ends in the file's name are `stat`ed: reading a link never
//! touches the file it names, so a descriptor on a dead network mount cannot hang the scan. The
//! scan itself also runs under a deadline. Processes this one may not inspect (another user's,
//! when not root; another PID namespace) are not seen: compression re-checks the file's size
//! afterwards for that reason.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// The open file to look for: its inode and its current name.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) name: std::ffi::OsString,
}

/// Pids with an open descriptor on each of `targets`, from one pass over `/proc`.
fn scan(targets: &[Target]) -> Vec<Vec<i32>> {
    let mut out = vec![Vec::new(); targets.len()];
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    let suffixes: Vec<Vec<u8>> = targets
        .iter()
        .map(|t| {
            let mut suffix = b"/".to_vec();
            suffix.extend_from_slice(t.name.as_bytes());
            suffix
        })
        .collect();
    // Which target a descriptor's link text names, by its file name alone.
    let named = |link: &std::path::Path| -> Vec<usize> {
        let l = link.as_os_str().as_bytes();
        let l = l.strip_suffix(b" (deleted)").unwrap_or(l);
        suffixes.iter().enumerate().filter(|(_, s)| l.ends_with(s)).map(|(i, _)| i).collect()
    };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else { continue };
            let candidates = named(&link);
            if candidates.is_empty() {
                continue;
            }
            let Ok(m) = std::fs::metadata(fd.path()) else { continue };
            for i in candidates {
                let t = &targets[i];
                if m.dev() == t.dev && m.ino() == t.ino && !out[i].contains(&pid) {
                    out[i].push(pid);
                }
            }
        }
    }
    out
}

/// [`scan`] on its own thread, given up after `limit`: `None` means "could not tell in time",
/// which callers treat as held.
pub(crate) fn holders_of(targets: &[Target], limit: Duration) -> Option<Vec<Vec<i32>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let targets = targets.to_vec();
    std::thread::Builder::new()
        .name("kyb-holders".to_owned())
        .spawn(move || {
            let _ = tx.send(scan(&targets));
        })
        .ok()?;
    rx.recv_timeout(limit.max(Duration::from_millis(100))).ok()
}

/// The pids holding `t`, as [`holders_of`].
pub(crate) fn holders(t: &Target, limit: Duration) -> Option<Vec<i32>> {
    holders_of(std::slice::from_ref(t), limit).and_then(|mut v| v.pop())
}

/// Polls until no process holds `t` or `limit` passes; returns the holders left (`None` when
/// the last scan could not finish in time).
pub(crate) fn wait_released(t: &Target, limit: Duration) -> Option<Vec<i32>> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let held = holders(t, left.max(Duration::from_secs(1)))?;
        if held.is_empty() || Instant::now() >= deadline {
            return Some(held);
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The target for the file `name` with status `st`.
pub(crate) fn target(name: &OsStr, st: &rustix::fs::Stat) -> Target {
    Target { dev: st.st_dev, ino: st.st_ino, name: name.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_our_own_open_file_and_its_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held");
        let file = std::fs::File::create(&path).unwrap();
        let meta = file.metadata().unwrap();
        let t = Target { dev: meta.dev(), ino: meta.ino(), name: "held".into() };
        assert!(holders(&t, Duration::from_secs(5)).unwrap().contains(&(std::process::id() as i32)));
        // Renamed while open: the link text follows the new name.
        std::fs::rename(&path, dir.path().join("renamed")).unwrap();
        let t = Target { name: "renamed".into(), ..t };
        assert!(holders(&t, Duration::from_secs(5)).unwrap().contains(&(std::process::id() as i32)));
        drop(file);
        assert_eq!(wait_released(&t, Duration::from_millis(500)), Some(Vec::new()));
    }
}
