//! The permission audit: world-writable files and directories, wrong owners, setuid and setgid
//! files, private keys others can read. The walk uses directory handles, never follows a
//! symlink, stays on each root's filesystem, skips the kernel's pseudo filesystems and stops at a
//! time limit. It runs on a blocking thread.

use kyb_core::dir::{DirHandle, kind};
use kyb_core::{Check, Findings, RunCtx, Status};
use rustix::fs::{FileType, OFlags};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where to look and what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermConfig {
    /// Trees to audit.
    pub roots: Vec<PathBuf>,
    /// Every file should belong to this user; None: owners are not checked.
    pub owner_uid: Option<u32>,
    /// ...and to this group; None: groups are not checked.
    pub group_gid: Option<u32>,
    /// The walk stops after this long, and says so.
    pub time_limit_ms: u64,
}

/// What the walk found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PermReport {
    /// Entries looked at.
    pub entries: u64,
    /// Checks: one per finding (named by its path and what was wrong), or one Ok row when none;
    /// a note says how many entries were looked at.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(PermReport);

/// Never walked into: the kernel's views, not files anyone installed.
const SKIP: [&str; 4] = ["/proc", "/sys", "/dev", "/run"];

/// Walks every root (on a blocking thread) and reports what is wrong. It only reads: a dry run is
/// the same run. `Err` only when the walking thread fails.
pub async fn audit_permissions(cfg: &PermConfig, _ctx: &RunCtx) -> Result<PermReport, crate::SecAuditError> {
    let cfg = cfg.clone();
    crate::blocking("walk", move || walk(&cfg)).await
}

fn walk(cfg: &PermConfig) -> PermReport {
    let deadline = Instant::now() + Duration::from_millis(cfg.time_limit_ms);
    let mut walk = Walk { cfg, deadline, entries: 0, checks: Vec::new(), cut_off: false };
    for root in &cfg.roots {
        if SKIP.iter().any(|s| root.starts_with(s)) {
            walk.checks.push(Check::new(
                root.display().to_string(),
                Status::Warn,
                "not audited: a kernel pseudo filesystem",
            ));
            continue;
        }
        match DirHandle::open(root) {
            Ok(dir) => match rustix::fs::fstat(&dir) {
                Ok(st) => {
                    walk.entry_findings(&root.display().to_string(), &st, None);
                    walk.dir(&dir, st.st_dev);
                }
                Err(e) => walk.unreadable(root, &e.into()),
            },
            Err(e) => walk.unreadable(root, &e),
        }
    }
    let mut checks = walk.checks;
    if walk.cut_off {
        checks.push(Check::new(
            "walk",
            Status::Warn,
            format!(
                "stopped at the {} ms limit after {} entries: the rest was not audited",
                cfg.time_limit_ms, walk.entries
            ),
        ));
    }
    if checks.is_empty() {
        checks.push(Check::new(
            "permissions",
            Status::Ok,
            format!("{} entries, nothing wrong", walk.entries),
        ));
    }
    let mut findings = Findings::from_checks(checks);
    findings.notes.push(format!("{} entries looked at", walk.entries));
    PermReport { entries: walk.entries, findings }
}

struct Walk<'a> {
    cfg: &'a PermConfig,
    deadline: Instant,
    entries: u64,
    checks: Vec<Check>,
    cut_off: bool,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &DirHandle, dev: u64) {
        let entries = match dir.entries() {
            Ok(e) => e,
            Err(e) => return self.unreadable(dir.path(), &e),
        };
        for entry in entries {
            if Instant::now() >= self.deadline {
                self.cut_off = true;
                return;
            }
            let (name, _) = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.unreadable(dir.path(), &e);
                    continue;
                }
            };
            self.entries += 1;
            let path = dir.join(&name);
            let st = match dir.stat(&name) {
                Ok(st) => st,
                Err(e) => {
                    self.unreadable(&path, &e);
                    continue;
                }
            };
            let k = kind(&st);
            // A symlink is neither judged nor followed: its target is somebody else's file.
            if k == FileType::Symlink {
                continue;
            }
            self.entry_findings(
                &path.display().to_string(),
                &st,
                (k == FileType::RegularFile).then_some((dir, name.as_os_str())),
            );
            if k == FileType::Directory {
                if st.st_dev != dev || SKIP.iter().any(|s| path == Path::new(s)) {
                    continue;
                }
                // Bind mounts share st_dev: the mount ID keeps the walk on its root's mount,
                // and out of a loop through a bind mount of an ancestor.
                match dir.open_child_same_mount(&name) {
                    Ok(child) => self.dir(&child, dev),
                    Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {}
                    Err(e) => self.unreadable(&path, &e),
                }
                if self.cut_off {
                    return;
                }
            }
        }
    }

    /// The findings about one entry; `file` lets a regular file be read to tell a private key.
    fn entry_findings(&mut self, path: &str, st: &rustix::fs::Stat, file: Option<(&DirHandle, &OsStr)>) {
        let mode = st.st_mode & 0o7777;
        let is_dir = kind(st) == FileType::Directory;
        let mut add = |status, what: String| self.checks.push(Check::new(path, status, what));
        if mode & 0o002 != 0 {
            if is_dir && mode & 0o1000 != 0 {
                add(
                    Status::Warn,
                    format!(
                        "world-writable directory with the sticky bit (mode {mode:04o}): expected not writable by others"
                    ),
                );
            } else {
                let what = if is_dir { "directory" } else { "file" };
                add(
                    Status::Crit,
                    format!("world-writable {what}: expected not writable by others, found mode {mode:04o}"),
                );
            }
        }
        if !is_dir && mode & 0o4000 != 0 {
            add(
                Status::Crit,
                format!("setuid file (mode {mode:04o}) owned by uid {}: expected no setuid", st.st_uid),
            );
        }
        if !is_dir && mode & 0o2000 != 0 {
            add(
                Status::Crit,
                format!("setgid file (mode {mode:04o}) of gid {}: expected no setgid", st.st_gid),
            );
        }
        if let Some(uid) = self.cfg.owner_uid.filter(|u| *u != st.st_uid) {
            add(
                Status::Warn,
                format!(
                    "owner: expected uid {uid}{}, found uid {}{}",
                    name_of(uid),
                    st.st_uid,
                    name_of(st.st_uid)
                ),
            );
        }
        if let Some(gid) = self.cfg.group_gid.filter(|g| *g != st.st_gid) {
            add(Status::Warn, format!("group: expected gid {gid}, found gid {}", st.st_gid));
        }
        if mode & 0o004 != 0
            && let Some((dir, name)) = file
            && is_private_key(dir, name)
        {
            add(
                Status::Crit,
                format!("private key readable by others: expected mode 0600 or 0640, found {mode:04o}"),
            );
        }
    }

    fn unreadable(&mut self, path: &Path, e: &std::io::Error) {
        self.checks.push(Check::new(
            path.display().to_string(),
            Status::Warn,
            format!("not audited: cannot read it: {e}"),
        ));
    }
}

fn name_of(uid: u32) -> String {
    kyb_core::users::user_name(uid).map_or_else(String::new, |n| format!(" ({n})"))
}

/// A key by its name (`.key`, `.p12`, `.pfx`, `id_rsa`-style) or, for `.pem` files, by a
/// `PRIVATE KEY` block in its first 64 KiB.
fn is_private_key(dir: &DirHandle, name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    let lower = String::from_utf8_lossy(bytes).to_ascii_lowercase();
    if [".key", ".p12", ".pfx"].iter().any(|x| lower.ends_with(x))
        || (lower.starts_with("id_") && !lower.ends_with(".pub"))
    {
        return true;
    }
    if !lower.ends_with(".pem") {
        return false;
    }
    let Ok(file) = dir.open_file(name, OFlags::RDONLY) else { return false };
    let mut head = Vec::with_capacity(4096);
    if file.take(64 * 1024).read_to_end(&mut head).is_err() {
        return false;
    }
    head.windows(11).any(|w| w == b"PRIVATE KEY")
}
