//! Directory handles: every operation is relative to an open directory (`*at` calls) and never
//! follows a symlink, so a path swapped for a link mid-run cannot redirect a delete or a chown.
//! The walk and the confined delete of every crate that removes files are built on this.
//!
//! A walk also stays on its root's mount. `st_dev` alone cannot tell: a bind mount of a directory
//! (or of a single file) from the same filesystem has the same `st_dev`, so mounts are told apart
//! by the kernel's mount ID (`statx` `STATX_MNT_ID`), as systemd-tmpfiles does, with
//! `/proc/self/mountinfo` as the fallback on kernels older than 5.8.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat, StatxAttributes, StatxFlags};
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
    mount: Mount,
}

/// Which mount a file is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mount {
    /// The kernel's mount ID.
    Id(u64),
    /// The kernel does not report mount IDs: compare paths against the mount table instead.
    Unknown,
}

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

impl DirHandle {
    /// Opens `path`, which must be a directory and not a symlink.
    pub fn open(path: &Path) -> io::Result<DirHandle> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        let mount = mount_of(&fd, OsStr::new(""))?.0;
        Ok(DirHandle { fd, path: path.to_owned(), mount })
    }

    /// Opens the subdirectory `name`, refusing a symlink.
    pub fn open_child(&self, name: &OsStr) -> io::Result<DirHandle> {
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())?;
        let mount = mount_of(&fd, OsStr::new(""))?.0;
        Ok(DirHandle { fd, path: self.path.join(name), mount })
    }

    /// Opens the subdirectory `name` only if it is on this directory's mount: a mount point
    /// (a bind mount included) is refused with [`io::ErrorKind::CrossesDevices`], so a walk
    /// built on this never descends into another mount.
    pub fn open_child_same_mount(&self, name: &OsStr) -> io::Result<DirHandle> {
        if self.is_mount_point(name)? {
            return Err(crosses_mount(&self.join(name)));
        }
        let child = self.open_child(name)?;
        // Checked again on the open handle: a mount made between the check and the open.
        if child.mount != self.mount || (child.mount == Mount::Unknown && is_listed_mount_point(child.path()))
        {
            return Err(crosses_mount(child.path()));
        }
        Ok(child)
    }

    /// Whether the entry `name` is the root of a mount other than this directory's: a mount
    /// point, or a file or directory bind-mounted over `name`. Such an entry must be neither
    /// entered nor removed by a walk confined to this directory's mount.
    pub fn is_mount_point(&self, name: &OsStr) -> io::Result<bool> {
        let (mount, root) = mount_of(&self.fd, name)?;
        Ok(match (self.mount, mount) {
            _ if root => true,
            (Mount::Id(parent), Mount::Id(child)) => parent != child,
            _ => is_listed_mount_point(&self.join(name)),
        })
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

/// The mount of `name` under `dir` (of `dir` itself when `name` is empty), and whether the entry
/// is the root of a mount. Symlinks are not followed.
fn mount_of(dir: &OwnedFd, name: &OsStr) -> io::Result<(Mount, bool)> {
    let flags = AtFlags::SYMLINK_NOFOLLOW
        | AtFlags::NO_AUTOMOUNT
        | if name.is_empty() { AtFlags::EMPTY_PATH } else { AtFlags::empty() };
    match rustix::fs::statx(dir, name, flags, StatxFlags::MNT_ID) {
        Ok(stx) => {
            let mount = if stx.stx_mask & StatxFlags::MNT_ID.bits() != 0 {
                Mount::Id(stx.stx_mnt_id)
            } else {
                Mount::Unknown
            };
            let root = stx.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
                && stx.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
            Ok((mount, root))
        }
        Err(rustix::io::Errno::NOSYS) => Ok((Mount::Unknown, false)),
        Err(e) => Err(e.into()),
    }
}

fn crosses_mount(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::CrossesDevices, format!("{} is a mount point; not entered", path.display()))
}

/// Whether `path` is a mount point in `/proc/self/mountinfo`, for kernels without mount IDs in
/// `statx`. An unreadable table counts every path as a mount point: nothing is removed blind.
fn is_listed_mount_point(path: &Path) -> bool {
    let Ok(table) = std::fs::read("/proc/self/mountinfo") else { return true };
    let path = std::fs::canonicalize(path.parent().unwrap_or(path))
        .map(|p| match path.file_name() {
            Some(name) => p.join(name),
            None => p,
        })
        .unwrap_or_else(|_| path.to_owned());
    table
        .split(|b| *b == b'\n')
        .filter_map(|line| line.split(|b| *b == b' ').nth(4))
        .any(|point| unescape_mountinfo(point) == path.as_os_str().as_bytes())
}

/// Mount points in mountinfo have space, tab, newline and backslash written as `\ooo`.
fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(u8::MAX));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// What kind of entry a `Stat` describes.
pub fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Seconds since the epoch of the newest of atime, mtime and ctime.
pub fn newest_time(st: &Stat) -> i64 {
    st.st_atime.max(st.st_mtime).max(st.st_ctime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(br"/mnt/with\040space"), b"/mnt/with space");
        assert_eq!(unescape_mountinfo(br"/back\134slash"), b"/back\\slash");
        assert_eq!(unescape_mountinfo(br"/plain\09"), br"/plain\09");
    }

    #[test]
    fn mount_points_are_told_from_plain_entries() {
        let root = DirHandle::open(Path::new("/")).unwrap();
        assert!(root.is_mount_point(OsStr::new("proc")).unwrap(), "/proc is a mount of its own");
        let err = root.open_child_same_mount(OsStr::new("proc")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::CrossesDevices, "{err}");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        std::fs::write(tmp.path().join("file"), "x").unwrap();
        let dir = DirHandle::open(tmp.path()).unwrap();
        assert!(!dir.is_mount_point(OsStr::new("sub")).unwrap());
        assert!(!dir.is_mount_point(OsStr::new("file")).unwrap());
        dir.open_child_same_mount(OsStr::new("sub")).unwrap();
    }
}
