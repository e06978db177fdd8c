//! Directory handles: every operation is relative to an open directory (`*at` calls) and never
//! follows a symlink, so a path swapped for a link mid-run cannot redirect a delete or a chown.
//! The walk and the confined delete of every crate that removes files are built on this.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An open directory and the path it was opened by (for messages only).
#[derive(Debug)]
pub struct DirHandle {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

impl DirHandle {
    /// Opens `path`, which must be a directory and not a symlink.
    pub fn open(path: &Path) -> io::Result<DirHandle> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        Ok(DirHandle { fd, path: path.to_owned() })
    }

    /// Opens the subdirectory `name`, refusing a symlink.
    pub fn open_child(&self, name: &OsStr) -> io::Result<DirHandle> {
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())?;
        Ok(DirHandle { fd, path: self.path.join(name) })
    }

    /// The path this directory was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`, for messages.
    pub fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Entry names, without `.` and `..`. An error reading one entry is returned in its place.
    pub fn entries(&self) -> io::Result<Vec<io::Result<(OsString, FileType)>>> {
        let dir = rustix::fs::Dir::read_from(&self.fd)?;
        Ok(dir
            .filter_map(|e| match e {
                Ok(e) => {
                    let name = e.file_name().to_bytes();
                    if name == b"." || name == b".." {
                        None
                    } else {
                        Some(Ok((OsStr::from_bytes(name).to_owned(), e.file_type())))
                    }
                }
                Err(err) => Some(Err(err.into())),
            })
            .collect())
    }

    /// `lstat` of `name`.
    pub fn stat(&self, name: &OsStr) -> io::Result<Stat> {
        Ok(rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// Removes the file (not directory) `name`; a symlink is removed itself, never its target.
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Removes the empty directory `name`.
    pub fn rmdir(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?)
    }

    /// Renames `from` to `to` within this directory; fails if `to` exists.
    pub fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE)?)
    }

    /// Creates `name` for writing with `O_CREAT|O_EXCL|O_NOFOLLOW`.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))?;
        Ok(File::from(fd))
    }

    /// Opens `name` with `flags | O_NOFOLLOW | O_NONBLOCK` (a FIFO must not block the run).
    pub fn open_file(&self, name: &OsStr, flags: OFlags) -> io::Result<File> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())?;
        Ok(File::from(fd))
    }

    /// fsync the directory, making renames and unlinks durable.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }
}

impl AsFd for DirHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What kind of entry a `Stat` describes.
pub fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Seconds since the epoch of the newest of atime, mtime and ctime.
pub fn newest_time(st: &Stat) -> i64 {
    st.st_atime.max(st.st_mtime).max(st.st_ctime)
}
