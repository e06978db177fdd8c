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

    /// Whether `file`, opened from this directory, is on this directory's mount: the check again
    /// on the open handle, for a mount made between [`Self::is_mount_point`] and the open.
    pub fn same_mount(&self, file: &impl AsFd) -> io::Result<bool> {
        let (mount, root) = mount_of(file, OsStr::new(""))?;
        Ok(match (self.mount, mount) {
            _ if root => false,
            (Mount::Id(dir), Mount::Id(file)) => dir == file,
            // Without mount IDs only the check by name before the open can tell.
            _ => true,
        })
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

/// Removes `path` and, when it is a directory, everything under it, confined to its parent's
/// mount: no symlink is followed (a link is removed itself), and no mount point is entered or
/// removed, a bind mount of a directory or of a single file included. Everything else that can
/// go goes; a mount point found inside stays with the directories above it, and the result is
/// an [`io::ErrorKind::CrossesDevices`] error naming it. A missing `path` is not an error.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a removable path", path.display()),
        ));
    };
    let parent = DirHandle::open(if parent.as_os_str().is_empty() { Path::new(".") } else { parent })?;
    let mut blocked = Vec::new();
    remove_entry(&parent, name, &mut blocked)?;
    match blocked.first() {
        Some(point) => Err(crosses_mount(point)),
        None => Ok(()),
    }
}

/// Removes `name` under `dir`, adding the mount points it leaves to `blocked`.
fn remove_entry(dir: &DirHandle, name: &OsStr, blocked: &mut Vec<PathBuf>) -> io::Result<()> {
    let st = match dir.stat(name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if dir.is_mount_point(name)? {
        blocked.push(dir.join(name));
        return Ok(());
    }
    if kind(&st) != FileType::Directory {
        return match dir.unlink(name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let child = match dir.open_child_same_mount(name) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            blocked.push(dir.join(name));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let before = blocked.len();
    for entry in child.entries()? {
        let (entry, _) = entry?;
        remove_entry(&child, &entry, blocked)?;
    }
    // A mount point below keeps this directory too.
    if blocked.len() > before {
        return Ok(());
    }
    match dir.rmdir(name) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The mount of `name` under `dir` (of `dir` itself when `name` is empty), and whether the entry
/// is the root of a mount. Symlinks are not followed.
fn mount_of(dir: impl AsFd, name: &OsStr) -> io::Result<(Mount, bool)> {
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
    fn remove_tree_removes_links_not_their_targets() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "keep").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/file"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("a/dirlink")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("keep"), tree.join("filelink")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(std::fs::read_to_string(outside.path().join("keep")).unwrap(), "keep");
        remove_tree(&tree).unwrap();
        std::fs::write(&tree, "a plain file").unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
    }

    #[test]
    fn remove_tree_stops_at_bind_mounts_and_says_so() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("sub")).unwrap();
        std::fs::write(outside.path().join("sub/precious"), "keep").unwrap();
        std::fs::write(outside.path().join("single"), "keep too").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("release-1.0");
        std::fs::create_dir_all(tree.join("data/mnt")).unwrap();
        std::fs::create_dir_all(tree.join("other")).unwrap();
        std::fs::write(tree.join("data/file"), "").unwrap();
        std::fs::write(tree.join("other/x"), "").unwrap();
        std::fs::write(tree.join("bound"), "").unwrap();
        let mount = |from: &Path, to: &Path| {
            let out = std::process::Command::new("mount").arg("--bind").arg(from).arg(to).output().unwrap();
            assert!(
                out.status.success(),
                "needs root to bind-mount: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        mount(outside.path(), &tree.join("data/mnt"));
        mount(&outside.path().join("single"), &tree.join("bound"));
        let err = remove_tree(&tree);
        for point in ["data/mnt", "bound"] {
            let _ = std::process::Command::new("umount").arg(tree.join(point)).status();
        }
        let err = err.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::CrossesDevices, "{err}");
        assert!(err.to_string().contains("is a mount point"), "{err}");
        assert_eq!(std::fs::read_to_string(outside.path().join("sub/precious")).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(outside.path().join("single")).unwrap(), "keep too");
        // What could go went; the mount points and the directories above them stayed.
        assert!(!tree.join("other").exists() && !tree.join("data/file").exists());
        assert!(tree.join("data/mnt").exists() && tree.join("bound").exists());
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
