//! Temp cleanup: old `kyb-*` entries in the temp directory, the way systemd-tmpfiles ages them:
//! age is the newest of atime, mtime and ctime; sticky-bit and locked entries are left alone; no
//! symlink is followed, and no other mount entered or removed (bind mounts included, told apart
//! by mount ID); the run stops at its deadline.

use crate::report::{Action, FilesReport};
use kyb_core::dir::{DirHandle, kind, newest_time};
use kyb_core::{Check, Status};
use rustix::fs::{FileType, FlockOperation, OFlags, Stat};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// What [`clean_temp`](crate::clean_temp) removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempConfig {
    /// The temp directory.
    pub dir: PathBuf,
    /// Only top-level entries whose name starts with this (`kyb-`).
    pub prefix: String,
    /// Entries idle for longer than this are removed.
    pub max_age_secs: u64,
    /// The whole cleanup stops here.
    pub timeout_ms: u64,
}

struct Walk<'a> {
    report: &'a mut FilesReport,
    dev: u64,
    cutoff: i64,
    deadline: Instant,
    timed_out: bool,
    problems: Vec<String>,
    dry_run: bool,
}

/// Removes old `prefix*` entries under `cfg.dir`, directories recursively; with `dry_run`, only
/// plans.
pub fn clean_temp_blocking(cfg: &TempConfig, now: OffsetDateTime, dry_run: bool) -> FilesReport {
    let mut report = FilesReport::new(dry_run);
    let label = format!("temp {}", cfg.dir.display());
    let dir = match DirHandle::open(&cfg.dir) {
        Ok(d) => d,
        Err(e) => {
            report.findings.checks.push(Check::new(label, Status::Crit, format!("cannot open: {e}")));
            return report;
        }
    };
    let dev = match rustix::fs::fstat(&dir) {
        Ok(st) => st.st_dev,
        Err(e) => {
            report.findings.checks.push(Check::new(label, Status::Crit, format!("cannot stat: {e}")));
            return report;
        }
    };
    let mut walk = Walk {
        report: &mut report,
        dev,
        cutoff: now.unix_timestamp().saturating_sub(i64::try_from(cfg.max_age_secs).unwrap_or(i64::MAX)),
        deadline: Instant::now() + Duration::from_millis(cfg.timeout_ms),
        timed_out: false,
        problems: Vec::new(),
        dry_run,
    };
    walk.dir(&dir, Some(cfg.prefix.as_bytes()));
    let (timed_out, problems) = (walk.timed_out, walk.problems);
    let c = report.counts;
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut text = format!(
        "{verb} {} file(s) and {} dir(s), {} freed",
        c.deleted_files,
        c.deleted_dirs,
        kyb_core::human_bytes(c.freed_bytes)
    );
    if !report.skipped.is_empty() {
        text.push_str(&format!("; {} skipped", report.skipped.len()));
    }
    let mut status = Status::Ok;
    if timed_out {
        status = Status::Warn;
        text.push_str(&format!("; stopped at the {} ms time limit", cfg.timeout_ms));
    }
    if !problems.is_empty() {
        status = Status::Warn;
        text.push_str("; ");
        text.push_str(&problems.join("; "));
    }
    report.findings.checks.push(Check::new(label, status, text));
    report
}

impl Walk<'_> {
    /// Cleans the entries of `dir`; at the top level only names starting with `prefix`.
    /// Returns whether `dir` is now empty.
    fn dir(&mut self, dir: &DirHandle, prefix: Option<&[u8]>) -> bool {
        let entries = match dir.entries() {
            Ok(e) => e,
            Err(e) => {
                self.report.skip(dir.path().to_owned(), format!("cannot list: {e}"));
                return false;
            }
        };
        let mut empty = true;
        for entry in entries {
            if Instant::now() >= self.deadline {
                self.timed_out = true;
                return false;
            }
            let name = match entry {
                Ok((name, _)) => name,
                Err(e) => {
                    self.problems.push(format!("unreadable entry in {}: {e}", dir.path().display()));
                    empty = false;
                    continue;
                }
            };
            if prefix.is_some_and(|p| !name.as_bytes().starts_with(p)) {
                empty = false;
                continue;
            }
            if !self.entry(dir, &name) {
                empty = false;
            }
        }
        empty
    }

    /// Handles one entry; returns whether it is gone (or would be, in a dry run).
    fn entry(&mut self, dir: &DirHandle, name: &OsStr) -> bool {
        let path = dir.join(name);
        let st = match dir.stat(name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.report.skip(path, "vanished during the walk (removed by someone else)");
                return true;
            }
            Err(e) => {
                self.report.skip(path, format!("cannot stat: {e}"));
                return false;
            }
        };
        if st.st_dev != self.dev {
            self.report.skip(path, "on another filesystem; not entered");
            return false;
        }
        // A bind mount shares st_dev with the temp directory: only the mount ID tells.
        match dir.is_mount_point(name) {
            Ok(false) => {}
            Ok(true) => {
                self.problems.push(format!("{} is a mount point; left alone", path.display()));
                self.report.skip(path, "a mount point; not entered, not removed");
                return false;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(e) => {
                self.report.skip(path, format!("cannot tell its mount: {e}"));
                return false;
            }
        }
        if st.st_mode & 0o1000 != 0 {
            self.report.skip(path, "sticky bit set; left alone");
            return false;
        }
        let old = newest_time(&st) < self.cutoff;
        match kind(&st) {
            FileType::Directory => self.directory(dir, name, path, old),
            _ if !old => false,
            FileType::RegularFile if self.locked(dir, name) => {
                self.report.skip(path, "locked by another process; in use");
                false
            }
            _ => self.remove_file(dir, name, path, &st),
        }
    }

    fn directory(&mut self, parent: &DirHandle, name: &OsStr, path: PathBuf, old: bool) -> bool {
        let child = match parent.open_child_same_mount(name) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                self.problems.push(format!("{} is a mount point; left alone", path.display()));
                self.report.skip(path, "a mount point; not entered, not removed");
                return false;
            }
            Err(e) => {
                self.report.skip(path, format!("cannot open directory: {e}"));
                return false;
            }
        };
        // systemd-tmpfiles' convention: a flock on a directory marks it in use.
        // Exclusive: it conflicts with a holder's shared lock as well as an exclusive one.
        if rustix::fs::flock(&child, FlockOperation::NonBlockingLockExclusive).is_err() {
            self.report.skip(path, "locked by another process; in use");
            return false;
        }
        // The directory's own age is taken before cleaning it, since removals touch its mtime.
        let empty = self.dir(&child, None);
        drop(child);
        if !(empty && old) || self.timed_out {
            return false;
        }
        self.report
            .steps
            .push(Action::Remove { path, reason: "empty temp directory past its age".to_owned() });
        if self.dry_run {
            self.report.counts.deleted_dirs += 1;
            return true;
        }
        match parent.rmdir(name) {
            Ok(()) => {
                self.report.counts.deleted_dirs += 1;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => {
                self.problems.push(format!("cannot remove {}: {e}", parent.join(name).display()));
                false
            }
        }
    }

    fn locked(&self, dir: &DirHandle, name: &OsStr) -> bool {
        match dir.open_file(name, OFlags::RDONLY) {
            Ok(f) => rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err(),
            Err(_) => false,
        }
    }

    fn remove_file(&mut self, dir: &DirHandle, name: &OsStr, path: PathBuf, st: &Stat) -> bool {
        self.report.steps.push(Action::Remove { path, reason: "temp file past its age".to_owned() });
        let size = if kind(st) == FileType::RegularFile { st.st_size as u64 } else { 0 };
        if !self.dry_run {
            match dir.unlink(name) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
                Err(e) => {
                    self.problems.push(format!("cannot remove {}: {e}", dir.join(name).display()));
                    return false;
                }
            }
        }
        self.report.counts.deleted_files += 1;
        // A hard link's data stays with its other names.
        if st.st_nlink <= 1 {
            self.report.counts.freed_bytes += size;
        }
        true
    }
}
