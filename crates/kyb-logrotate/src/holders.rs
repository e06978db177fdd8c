//! Which processes hold a file open, read from `/proc/*/fd`, and waiting until none does.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// Pids with an open descriptor on the inode `(dev, ino)`. Processes whose descriptors cannot be
/// read (another user's, when not root) are not seen.
pub(crate) fn holders(dev: u64, ino: u64) -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        // metadata() follows the fd's magic link to the open file itself, even if unlinked.
        if fds
            .flatten()
            .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino))
        {
            out.push(pid);
        }
    }
    out
}

/// Polls until no process holds `(dev, ino)` or `limit` passes; returns the holders left.
pub(crate) fn wait_released(dev: u64, ino: u64, limit: Duration) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        let held = holders(dev, ino);
        if held.is_empty() || Instant::now() >= deadline {
            return held;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
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
        assert!(holders(meta.dev(), meta.ino()).contains(&(std::process::id() as i32)));
        drop(file);
        assert!(wait_released(meta.dev(), meta.ino(), Duration::from_millis(500)).is_empty());
    }
}
