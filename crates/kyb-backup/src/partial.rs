//! Backup directories a run is still writing, and what runs that were killed left behind.
//!
//! `create` holds an exclusive `flock` on its new backup directory from the moment it makes it
//! until its metadata is written (or the directory is removed again). The kernel drops the lock
//! when the process dies, however it dies, so a `.partial` file in a directory no one holds
//! locked is a leftover of a killed run, and one in a locked directory is still being written.
//! Everyone else only probes, with a shared lock held for an instant: probes never mistake each
//! other for a writer.

use crate::verify::stamp_of;
use kyb_core::dir::DirHandle;
use kyb_core::{Check, Status};
use rustix::fs::{FileType, FlockOperation};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

/// The metadata file: written last, so a directory holding it is a finished run's.
pub(crate) const METADATA: &str = "backup_metadata.json";

/// An open backup directory with the run's lock on it; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct RunDir(#[allow(dead_code)] DirHandle);

/// Locks a backup directory this run has just made. The name was new, so no other run writes
/// it; the wait is at most a probe's instant.
pub(crate) fn lock_new(dir: &Path) -> io::Result<RunDir> {
    let handle = DirHandle::open(dir)?;
    rustix::fs::flock(&handle, FlockOperation::LockExclusive)?;
    Ok(RunDir(handle))
}

/// Whether a live run holds `dir`, by a shared lock taken and dropped at once.
fn writer_holds(dir: &DirHandle) -> io::Result<bool> {
    match rustix::fs::flock(dir, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            rustix::fs::flock(dir, FlockOperation::Unlock)?;
            Ok(false)
        }
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Whether a live run holds the backup directory `name` under `full` (it is being written).
pub(crate) fn is_live(full: &DirHandle, name: &OsStr) -> bool {
    full.open_child(name).and_then(|d| writer_holds(&d)).unwrap_or(false)
}

/// A backup directory holding `.partial` files that no live run is writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leftover {
    /// The directory.
    pub(crate) dir: PathBuf,
    /// The `.partial` files in it, with their sizes.
    pub(crate) partials: Vec<(String, u64)>,
}

impl Leftover {
    /// `backup_…/database.dump.gz.partial (1234 bytes), …`.
    pub(crate) fn describe(&self) -> String {
        let dir = self.dir.file_name().unwrap_or_default().to_string_lossy();
        self.partials
            .iter()
            .map(|(name, size)| format!("{dir}/{name} ({})", crate::plural(*size, "byte")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `2 stale partial files left by 2 killed runs: backup_…/database.dump.gz.partial (1234
/// bytes), …`.
pub(crate) fn describe_all(stale: &[Leftover]) -> String {
    let files: usize = stale.iter().map(|l| l.partials.len()).sum();
    let runs =
        if stale.len() == 1 { "a killed run".to_owned() } else { format!("{} killed runs", stale.len()) };
    let listed: Vec<String> = stale.iter().map(Leftover::describe).collect();
    format!("{} left by {runs}: {}", crate::plural(files, "stale partial file"), listed.join(", "))
}

/// The backup directories under `full` with `.partial` files in them that no live run holds.
/// Unreadable directories are skipped: this is housekeeping, not a check of the backups.
pub(crate) fn stale(full: &Path) -> Vec<Leftover> {
    stale_where(full, |name| stamp_of(name).is_some())
}

/// The archive directories under `monthly` (`monthly_YYYYMMDD_HHMMSS[_N]`, which `archive`
/// holds locked as `create` does its own) with `.partial` files no live run holds.
pub(crate) fn stale_archives(monthly: &Path) -> Vec<Leftover> {
    stale_where(monthly, |name| {
        name.strip_prefix(b"monthly_")
            .is_some_and(|rest| rest.len() >= 15 && rest[..8].iter().all(u8::is_ascii_digit))
    })
}

fn stale_where(root_path: &Path, ours: impl Fn(&[u8]) -> bool) -> Vec<Leftover> {
    let Ok(root) = DirHandle::open(root_path) else { return Vec::new() };
    let mut found: Vec<(OsString, Leftover)> = Vec::new();
    for (name, kind) in root.entries().into_iter().flatten().flatten() {
        if kind != FileType::Directory || !ours(name.as_encoded_bytes()) {
            continue;
        }
        // Never through a mount point: what is under one is not this backup directory's.
        let Ok(dir) = root.open_child_same_mount(&name) else { continue };
        let partials = partial_files(&dir);
        // Locked only after the listing: create locks before it makes its partial file, so a
        // partial seen here is either under a live run's lock now or stale.
        if partials.is_empty() || writer_holds(&dir).unwrap_or(true) {
            continue;
        }
        let leftover = Leftover { dir: root_path.join(&name), partials };
        found.push((name, leftover));
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, l)| l).collect()
}

fn partial_files(dir: &DirHandle) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = dir
        .entries()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|(name, _)| {
            let name = name.into_string().ok()?;
            let st = dir.stat(OsStr::new(&name)).ok()?;
            let plain = kyb_core::dir::kind(&st) == FileType::RegularFile
                && !dir.is_mount_point(OsStr::new(&name)).unwrap_or(true);
            (name.ends_with(".partial") && plain).then_some((name, st.st_size as u64))
        })
        .collect();
    files.sort();
    files
}

/// Removes a leftover's partial files, and its directory when nothing else is in it. Checked
/// again first: a run that took the directory since it was listed is left alone. (No new run
/// can take it: each run makes a directory of its own.)
pub(crate) fn remove(l: &Leftover) -> io::Result<()> {
    let (Some(parent), Some(name)) = (l.dir.parent(), l.dir.file_name()) else {
        return Err(io::Error::other("not a backup directory"));
    };
    let parent = DirHandle::open(parent)?;
    let dir = parent.open_child_same_mount(name)?;
    if writer_holds(&dir)? {
        return Err(io::Error::other("a backup run holds it now; left alone"));
    }
    for (file, _) in partial_files(&dir) {
        dir.unlink(OsStr::new(&file))?;
    }
    match parent.rmdir(name) {
        Ok(()) => Ok(()),
        // Something else is in it: the partial files go, the rest stays for prune to judge.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error()) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the partial files of killed runs found by [`stale`] (or in a dry run says what it
/// would remove): a `partials` check, Ok when all went, Warn for what could not; none when
/// there were none.
pub(crate) fn sweep(stale: &[Leftover], dry_run: bool) -> Option<Check> {
    if stale.is_empty() {
        return None;
    }
    let what = describe_all(stale);
    if dry_run {
        return Some(Check::new("partials", Status::Ok, format!("would remove {what}")));
    }
    let failed: Vec<String> =
        stale.iter().filter_map(|l| remove(l).err().map(|e| format!("{}: {e}", l.dir.display()))).collect();
    Some(if failed.is_empty() {
        Check::new("partials", Status::Ok, format!("removed {what}"))
    } else {
        Check::new("partials", Status::Warn, format!("cannot remove {}", failed.join("; ")))
    })
}
