//! The file steps every part of an update shares: owner and mode, hashing copies, atomic
//! replacement, fsync of a directory, and the names of the files kept beside the binary.

use super::StepError;
use kyb_core::digest::hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode and ownership of a file, put back on anything written in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Owner {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

impl Owner {
    pub(super) fn of(path: &Path) -> Option<Owner> {
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(Owner { mode: m.mode() & 0o7777, uid: m.uid(), gid: m.gid() })
    }

    /// This process's user and group with `mode`.
    pub(super) fn mine(mode: u32) -> Owner {
        Owner { mode, uid: rustix::process::geteuid().as_raw(), gid: rustix::process::getegid().as_raw() }
    }

    /// Gives the open file this owner and mode (owner first: chown clears set-id bits).
    pub(super) fn apply(self, file: &File, path: &Path) -> Result<(), StepError> {
        let m = file.metadata().map_err(|source| StepError::Io { path: path.to_owned(), source })?;
        if (m.uid(), m.gid()) != (self.uid, self.gid) {
            let (uid, gid) = (rustix::fs::Uid::from_raw(self.uid), rustix::fs::Gid::from_raw(self.gid));
            rustix::fs::fchown(file, Some(uid), Some(gid))
                .map_err(|source| StepError::Chown { path: path.to_owned(), source })?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(|source| StepError::Chmod { path: path.to_owned(), source })
    }
}

/// `<dir>/.<name>.<tag>`: beside the binary, so on its filesystem.
pub(super) fn staged_path(binary: &Path, tag: &str) -> PathBuf {
    let name = binary.file_name().map_or_else(|| "binary".into(), |n| n.to_string_lossy().into_owned());
    binary.with_file_name(format!(".{name}.{tag}"))
}

pub(super) fn previous_path(binary: &Path) -> PathBuf {
    let mut s = binary.as_os_str().to_owned();
    s.push(".previous");
    PathBuf::from(s)
}

pub(super) fn remove_quietly(path: &Path) {
    let _ = std::fs::remove_file(path);
}

pub(super) fn sync_parent(path: &Path) -> Result<(), StepError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StepError::Fsync { path: dir.to_owned(), source })
}

/// `rename(from, to)`.
pub(super) fn rename(from: &Path, to: &Path) -> Result<(), StepError> {
    std::fs::rename(from, to).map_err(|source| StepError::Rename {
        from: from.to_owned(),
        to: to.to_owned(),
        source,
    })
}

/// Copies `from` to `to` (a new file), fsynced; returns its sha256.
pub(super) fn copy_synced(from: &Path, to: &Path, mode: u32) -> Result<String, StepError> {
    let (out, sha) = copy_hashing(from, to, mode)?;
    out.sync_all().map_err(|source| StepError::Fsync { path: to.to_owned(), source })?;
    Ok(sha)
}

/// Copies `from` into a new file `to` (exclusive, no-follow, `mode`), hashing as it goes;
/// returns the open copy and its sha256.
pub(super) fn copy_hashing(from: &Path, to: &Path, mode: u32) -> Result<(File, String), StepError> {
    let io_from = |source| StepError::Io { path: from.to_owned(), source };
    let io_to = |source| StepError::Io { path: to.to_owned(), source };
    let mut src = File::open(from).map_err(io_from)?;
    let mut out = kyb_core::fs::create_new(to, mode).map_err(io_to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = src.read(&mut buf).map_err(io_from)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_to)?;
    }
    Ok((out, hex(&hasher.finalize())))
}

/// Replaces `path` with `contents`: a temporary file beside it with `owner` (this process's
/// user and mode 0644 when unknown) set on the handle, fsync, rename.
pub(super) fn replace_file(path: &Path, contents: &[u8], owner: Option<Owner>) -> Result<(), StepError> {
    let tmp = staged_path(path, "kyb-new");
    remove_quietly(&tmp);
    let owner = owner.unwrap_or(Owner::mine(0o644));
    let result = (|| {
        let io_tmp = |source| StepError::Io { path: tmp.clone(), source };
        let mut file = kyb_core::fs::create_new(&tmp, 0o600).map_err(io_tmp)?;
        file.write_all(contents).map_err(io_tmp)?;
        owner.apply(&file, &tmp)?;
        file.sync_all().map_err(|source| StepError::Fsync { path: tmp.clone(), source })?;
        rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        remove_quietly(&tmp);
    }
    result
}
