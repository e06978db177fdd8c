//! Filesystem primitives: atomic replacement of a file and a run lock.
//!
//! Files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`, so a planted symlink or a leftover file is
//! an error rather than something written through.

use rustix::fs::{FlockOperation, OFlags};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A filesystem step that failed, with the path it was working on.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path has no file name or no parent directory.
    #[error("{path}: not a file path")]
    NotAFilePath {
        /// The path given.
        path: PathBuf,
    },
    /// Creating the temporary file failed.
    #[error("cannot create {path}")]
    Create {
        /// The temporary file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing or syncing the temporary file failed.
    #[error("cannot write {path}")]
    Write {
        /// The temporary file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Renaming the temporary file over the target failed.
    #[error("cannot rename {from} to {to}")]
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// The target.
        to: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Syncing the directory after the rename failed.
    #[error("cannot sync directory {path}")]
    SyncDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `contents` so that a reader sees either the old file or the whole new one:
/// write a temporary file beside it (exclusive, no-follow, `mode`), fsync, rename, fsync the
/// directory. On error the temporary file is removed and `path` is untouched.
pub fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let not_a_file = || FsError::NotAFilePath { path: path.to_owned() };
    let name = path.file_name().ok_or_else(not_a_file)?.to_string_lossy().into_owned();
    let dir = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Err(not_a_file()),
    };
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = write_new(&tmp, contents, mode).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| FsError::Rename {
            from: tmp.clone(),
            to: path.to_owned(),
            source,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| FsError::SyncDir { path: dir.to_owned(), source })
}

/// Creates `path`, which must not exist, with `mode`, writes `contents` and fsyncs it.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let mut file =
        create_new(path, mode).map_err(|source| FsError::Create { path: path.to_owned(), source })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| FsError::Write { path: path.to_owned(), source })
}

/// Opens a new file for writing with `O_CREAT|O_EXCL|O_NOFOLLOW`, then sets `mode` on the open
/// handle so the result does not depend on the umask.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(no_follow()).open(path)?;
    rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(mode))?;
    Ok(file)
}

/// Opens `path` for appending, never through a symlink. A missing file is created as by
/// [`create_new`], with `mode` set on the handle; an existing one keeps its mode.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    match create_new(path, mode) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            OpenOptions::new().append(true).custom_flags(no_follow()).open(path)
        }
        Err(e) => Err(e),
    }
}

/// `dir/{stem}{ext}`, or `dir/{stem}-N{ext}` with the smallest N from 1 that does not exist yet:
/// two runs in the same second must not overwrite each other's files. Callers hold the run
/// lock, so nothing races between the check and the create.
pub fn unused_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    let first = dir.join(format!("{stem}{ext}"));
    if std::fs::symlink_metadata(&first).is_err() {
        return first;
    }
    (1u32..)
        .map(|n| dir.join(format!("{stem}-{n}{ext}")))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("some counter is free")
}

fn no_follow() -> i32 {
    OFlags::NOFOLLOW.bits() as i32
}

/// Why [`read_regular`] refused or failed to read a file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening, inspecting or reading the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The path names something other than a regular file (after following symlinks).
    #[error("it is a {kind}, not a regular file: give the path of the file itself")]
    NotRegular {
        /// What it is: `FIFO`, `character device`, `directory`...
        kind: &'static str,
    },
    /// The file is larger than the caller accepts.
    #[error("it is larger than the {} limit for this file", crate::human_bytes(*limit_bytes))]
    TooLarge {
        /// The limit.
        limit_bytes: u64,
    },
}

/// Reads the whole of `path`, which must be a regular file of at most `limit_bytes`, and returns
/// it with the metadata of the handle it was read through. A symlink is followed (a config file
/// linked from elsewhere is normal); what it leads to is checked on the open handle, so a FIFO
/// cannot block the open and `/dev/zero` is never read.
pub fn read_regular(path: &Path, limit_bytes: u64) -> Result<(Vec<u8>, std::fs::Metadata), ReadError> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    let flags = (OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32;
    let file = OpenOptions::new().read(true).custom_flags(flags).open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let kind = if kind.is_fifo() {
            "FIFO"
        } else if kind.is_char_device() {
            "character device"
        } else if kind.is_block_device() {
            "block device"
        } else if kind.is_dir() {
            "directory"
        } else if kind.is_socket() {
            "socket"
        } else {
            "special file"
        };
        return Err(ReadError::NotRegular { kind });
    }
    if meta.len() > limit_bytes {
        return Err(ReadError::TooLarge { limit_bytes });
    }
    // The size can change between the fstat and the read (and /proc files report 0): the read
    // itself is bounded too.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit_bytes.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit_bytes {
        return Err(ReadError::TooLarge { limit_bytes });
    }
    Ok((bytes, meta))
}

/// Why a [`RunLock`] could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("lock {path} is held by {}", holder_pid.map_or_else(|| "another run".to_owned(), |p| format!("pid {p}")))]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The pid the holder wrote, when it could be read and names a live process (not,
        /// e.g., when the holder runs in another pid namespace).
        holder_pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot use lock file {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// An exclusive `flock` on a lock file, held until dropped. The kernel releases it when the
/// process dies, so a crashed run never leaves a stale lock behind. The holder writes its pid
/// into the file, for the message of a run that finds the lock held.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

/// How long a run that finds the lock held waits for the holder's pid to appear: the holder
/// writes it right after taking the lock, so the wait is long only when the pid cannot be read.
const HOLDER_PID_WAIT: Duration = Duration::from_secs(2);

impl RunLock {
    /// Takes the lock without waiting for it; `LockError::Held` when another process has it.
    pub fn try_acquire(path: &Path) -> Result<RunLock, LockError> {
        let io_err = |source| LockError::Io { path: path.to_owned(), source };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(no_follow())
            .open(path)
            .map_err(io_err)?;
        // Between the holder's flock and its pid write the file is empty or names an earlier
        // run: retry both until the pid is there or the lock is free.
        let deadline = Instant::now() + HOLDER_PID_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let holder_pid = live_pid(&file);
                    if holder_pid.is_some() || Instant::now() >= deadline {
                        return Err(LockError::Held { path: path.to_owned(), holder_pid });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(io_err(e.into())),
            }
        }
        // Overwrite, then cut: the file is never empty, and a reader of the mixed contents in
        // between finds no pid and reads again.
        let line = format!("{}\n", std::process::id());
        file.write_all_at(line.as_bytes(), 0)
            .and_then(|()| file.set_len(line.len() as u64))
            .map_err(io_err)?;
        Ok(RunLock { file, path: path.to_owned() })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open lock file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for RunLock {
    /// Leaves the file empty, so the pid of a finished run is never taken for a holder's; the
    /// lock itself goes with the handle.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// The pid in a lock file when the file holds exactly one (`<digits>\n`) and that process is
/// alive and was already running when the pid was written: a killed run's pid, since reused by
/// a newer process, is not the holder.
fn live_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).ok()?;
    let digits = buf[..n].strip_suffix(b"\n")?;
    let pid: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let written = file.metadata().ok()?.modified().ok()?;
    crate::process::may_still_write(pid, written).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("report.txt");
        atomic_write(&target, b"one", 0o640).unwrap();
        atomic_write(&target, b"two", 0o640).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "mode is set on the handle, whatever the umask");
        atomic_write(&target, b"three", 0o666).unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o666);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.txt")]);
    }

    #[test]
    fn atomic_write_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let err = atomic_write(&dir.path().join("nope/report.txt"), b"x", 0o644).unwrap_err();
        assert!(matches!(err, FsError::Create { .. }), "{err:?}");
    }

    #[test]
    fn create_new_refuses_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_new(&link, 0o644).is_err());
        assert!(open_append(&link, 0o644).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn read_regular_refuses_what_is_not_a_bounded_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
        // Returns at once: with nobody writing, a blocking open would never come back.
        let err = read_regular(&fifo, 1024).unwrap_err();
        assert_eq!(err.to_string(), "it is a FIFO, not a regular file: give the path of the file itself");
        let err = read_regular(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "character device" }), "{err}");
        assert!(matches!(read_regular(dir.path(), 1024), Err(ReadError::NotRegular { kind: "directory" })));

        let file = dir.path().join("f");
        std::fs::write(&file, [b'x'; 1025]).unwrap();
        let err = read_regular(&file, 1024).unwrap_err();
        assert_eq!(err.to_string(), "it is larger than the 1.0 KiB limit for this file");
        assert_eq!(read_regular(&file, 1025).unwrap().0.len(), 1025, "the limit itself is allowed");
        // A link to a regular file is read: configs are often linked into place.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular(&link, 2048).unwrap().0.len(), 1025);
        assert!(matches!(read_regular(&dir.path().join("absent"), 1), Err(ReadError::Io(_))));
    }

    #[test]
    fn unused_path_adds_a_counter_on_collision() {
        let dir = tempfile::tempdir().unwrap();
        let first = unused_path(dir.path(), "daily-report-20261126-020000", ".txt");
        assert_eq!(first, dir.path().join("daily-report-20261126-020000.txt"));
        std::fs::write(&first, "x").unwrap();
        let second = unused_path(dir.path(), "daily-report-20261126-020000", ".txt");
        assert_eq!(second, dir.path().join("daily-report-20261126-020000-1.txt"));
    }

    #[test]
    fn second_lock_is_refused_with_holder_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let first = RunLock::try_acquire(&path).unwrap();
        // flock locks belong to the open file description, so a second open in the same process
        // conflicts just as another process would.
        match RunLock::try_acquire(&path) {
            Err(LockError::Held { holder_pid, .. }) => assert_eq!(holder_pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        RunLock::try_acquire(&path).unwrap();
    }

    #[test]
    fn a_holder_whose_pid_cannot_be_read_is_another_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        std::fs::write(&path, format!("{}\n", gone.id())).unwrap();
        gone.wait().unwrap();
        // Held by a process that wrote no pid of its own (as one in another pid namespace
        // would look).
        let holder = File::open(&path).unwrap();
        rustix::fs::flock(&holder, FlockOperation::NonBlockingLockExclusive).unwrap();
        let err = RunLock::try_acquire(&path).unwrap_err();
        assert!(matches!(err, LockError::Held { holder_pid: None, .. }), "{err:?}");
        assert_eq!(err.to_string(), format!("lock {} is held by another run", path.display()));
        drop(holder);
        let lock = RunLock::try_acquire(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", std::process::id()));
        drop(lock);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "a finished run leaves no pid behind");
    }

    #[test]
    fn a_killed_runs_pid_reused_by_a_newer_process_is_not_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        // A killed run's pid left in the file long ago, now the pid of a live process that
        // started later (this one).
        std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800);
        File::options().write(true).open(&path).unwrap().set_modified(long_ago).unwrap();
        let holder = File::open(&path).unwrap();
        rustix::fs::flock(&holder, FlockOperation::NonBlockingLockExclusive).unwrap();
        let err = RunLock::try_acquire(&path).unwrap_err();
        assert!(matches!(err, LockError::Held { holder_pid: None, .. }), "{err:?}");
    }

    #[test]
    fn the_loser_of_a_race_names_the_winner_never_a_blank_or_a_gone_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let me = std::process::id();
        let mut named = 0;
        for round in 0..200 {
            let path = dir.path().join(format!("run-{round}.lock"));
            if round % 2 == 1 {
                // Left behind by a run that is gone.
                std::fs::write(&path, format!("{gone_pid}\n")).unwrap();
            }
            let start = std::sync::Barrier::new(2);
            let decided = std::sync::Barrier::new(2);
            let outcomes: Vec<Result<RunLock, LockError>> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            let outcome = RunLock::try_acquire(&path);
                            // The winner holds the lock until the loser has its answer.
                            decided.wait();
                            outcome
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "round {round}: {outcomes:?}");
            for err in outcomes.into_iter().filter_map(Result::err) {
                let text = err.to_string();
                match err {
                    LockError::Held { holder_pid: Some(pid), .. } => {
                        assert_eq!(pid, me, "round {round}: {text}");
                        named += 1;
                    }
                    LockError::Held { holder_pid: None, .. } => {
                        assert!(text.ends_with("is held by another run"), "round {round}: {text}");
                    }
                    LockError::Io { .. } => panic!("round {round}: {text}"),
                }
            }
        }
        assert!(named > 0, "the winner's pid was never read");
    }
}
