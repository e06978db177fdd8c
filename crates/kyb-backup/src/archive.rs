//! `archive`: the monthly backup of configuration directories (application config, monitoring
//! config, TLS certificates) as one tar.gz each, with a manifest.
//!
//! The walk never follows a symlink (links are stored as links) and every file that cannot be
//! read is listed in the manifest and the report: an archive that silently lacks a key file is
//! worse than none.

use crate::BackupError;
use flate2::Compression;
use flate2::write::GzEncoder;
use kyb_core::digest::hex;
use kyb_core::dir::{DirHandle, kind};
use kyb_core::fs::atomic_write;
use kyb_core::{Check, Findings, RunCtx, Status};
use rustix::fs::{FileType, OFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// One archive: a name and the directories (or files) that go into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSource {
    /// File name stem: `<name>.tar.gz`. Letters, digits, `-`, `_` and `.` only.
    pub name: String,
    /// Absolute paths to archive; stored under their path without the leading `/`, as tar does.
    pub paths: Vec<PathBuf>,
}

/// What [`archive`] packs and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Archives go to `<backup_dir>/monthly/monthly_YYYYMMDD_HHMMSS/`.
    pub backup_dir: PathBuf,
    /// The archives to make.
    pub sources: Vec<ArchiveSource>,
    /// gzip level, 1 to 9.
    pub compression_level: u32,
    /// Deadline for all archives.
    pub timeout_ms: u64,
}

/// `manifest.json`: what each archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// When the archives were made (RFC 3339, UTC).
    pub created_at: String,
    /// One entry per archive.
    pub archives: Vec<ManifestArchive>,
}

/// One archive in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestArchive {
    /// `<name>.tar.gz`.
    pub file: String,
    /// Its size.
    pub size_bytes: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// The paths it was made from.
    pub sources: Vec<PathBuf>,
    /// Every file, link and directory stored, with sizes.
    pub entries: Vec<ManifestEntry>,
    /// What could not be read, and why: none of these is in the archive.
    pub unreadable: Vec<Unreadable>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The path as given to tar (absolute on the source machine).
    pub path: PathBuf,
    /// `file`, `dir` or `symlink`.
    pub kind: String,
    /// Bytes stored (0 for directories and links).
    pub size_bytes: u64,
}

/// A path left out of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The path.
    pub path: PathBuf,
    /// Why it is not in the archive.
    pub error: String,
}

/// What [`archive`] made, or in a dry run the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveReport {
    /// The directory holding the archives and the manifest; in a dry run, the one it would make.
    pub dir: PathBuf,
    /// The manifest, as written; `None` in a dry run, which writes nothing.
    pub manifest: Option<Manifest>,
    /// One check per archive: Ok, or Crit naming what is missing from it; before them,
    /// `partials` when what killed runs left was swept. The artifacts are the archives and
    /// `manifest.json`. In a dry run, one `archive` check with the plan, and one action per
    /// archive.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(ArchiveReport);

/// Makes one tar.gz per source and a `manifest.json`, named after `ctx.now`; in a dry run,
/// reports the plan and writes nothing. `Err` only when the archive directory cannot be written;
/// unreadable sources are Crit rows in the report.
pub async fn archive(cfg: &ArchiveConfig, ctx: &RunCtx) -> Result<ArchiveReport, BackupError> {
    let now = ctx.now;
    if ctx.dry_run {
        return Ok(plan(cfg, now));
    }
    for s in &cfg.sources {
        let ok = !s.name.is_empty()
            && !s.name.starts_with('.')
            && s.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(BackupError::Write {
                path: cfg.backup_dir.clone(),
                source: std::io::Error::other(format!(
                    "archive name {:?}: use letters, digits, '-', '_' and '.'",
                    s.name
                )),
            });
        }
    }
    let c = cfg.clone();
    let work = tokio::task::spawn_blocking(move || archive_blocking(&c, now));
    match tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), work).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(BackupError::Write {
            path: cfg.backup_dir.clone(),
            source: std::io::Error::other(format!("archive worker failed: {e}")),
        }),
        Err(_) => Err(BackupError::Timeout { what: "the archive", timeout_ms: cfg.timeout_ms }),
    }
}

/// A dry run's report: the archives it would write, one action each.
fn plan(cfg: &ArchiveConfig, now: OffsetDateTime) -> ArchiveReport {
    let actions: Vec<String> = cfg
        .sources
        .iter()
        .map(|s| {
            let paths: Vec<String> = s.paths.iter().map(|p| p.display().to_string()).collect();
            format!("would archive {} into {}.tar.gz", paths.join(" "), s.name)
        })
        .collect();
    let summary = format!(
        "would write {} to {}/monthly/monthly_<time>/",
        crate::plural(actions.len(), "archive"),
        cfg.backup_dir.display()
    );
    let mut findings = Findings::from_checks(vec![Check::new("archive", Status::Ok, summary)]);
    findings.actions = actions;
    ArchiveReport { dir: cfg.backup_dir.join("monthly").join(dir_name(now)), manifest: None, findings }
}

/// `monthly_YYYYMMDD_HHMMSS` of `now`: the name a set of archives made then is given (unless
/// taken).
fn dir_name(now: OffsetDateTime) -> String {
    let stamp = now
        .format(format_description!("[year][month][day]_[hour][minute][second]"))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    format!("monthly_{stamp}")
}

fn archive_blocking(cfg: &ArchiveConfig, now: OffsetDateTime) -> Result<ArchiveReport, BackupError> {
    let monthly = cfg.backup_dir.join("monthly");
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Write { path, source }
    };
    std::fs::create_dir_all(&monthly).map_err(write_err(&monthly))?;
    // What archive runs killed outright left: their directories are locked no longer.
    let swept = crate::partial::sweep(&crate::partial::stale_archives(&monthly), false);
    let first = dir_name(now);
    let dir = (0..1000)
        .map(|n| if n == 0 { first.clone() } else { format!("{first}_{n}") })
        .map(|name| monthly.join(name))
        .find(|d| {
            std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), crate::DIR_MODE)
                .create(d)
                .is_ok()
        })
        .ok_or_else(|| BackupError::Write {
            path: monthly.clone(),
            source: std::io::Error::other("cannot create a new archive directory"),
        })?;
    // Held until the manifest is written: a run killed before leaves a directory nobody holds,
    // which the next run's sweep recognises.
    let _run = crate::partial::lock_new(&dir).map_err(write_err(&dir))?;
    let handle = DirHandle::open(&dir).map_err(write_err(&dir))?;
    let mut archives = Vec::new();
    let mut checks: Vec<Check> = swept.into_iter().collect();
    for source in &cfg.sources {
        let file = format!("{}.tar.gz", source.name);
        let made = pack(&handle, &file, source, cfg.compression_level);
        let made = match made {
            Ok(m) => m,
            Err(e) => {
                // Nothing half-written stays: this run's directory goes.
                for entry in handle.entries().into_iter().flatten().flatten() {
                    let _ = handle.unlink(&entry.0);
                }
                let _ = std::fs::remove_dir(&dir);
                return Err(BackupError::Write { path: dir.join(&file), source: e });
            }
        };
        let files = made.entries.iter().filter(|e| e.kind == "file").count();
        let check = if made.unreadable.is_empty() {
            Check::new(
                format!("archive {}", source.name),
                Status::Ok,
                format!(
                    "{}, {} compressed",
                    crate::plural(files, "file"),
                    crate::plural(made.size_bytes, "byte")
                ),
            )
        } else {
            let listed: Vec<String> = made
                .unreadable
                .iter()
                .take(5)
                .map(|u| format!("{} ({})", u.path.display(), u.error))
                .collect();
            let more = made.unreadable.len().saturating_sub(5);
            Check::new(
                format!("archive {}", source.name),
                Status::Crit,
                format!(
                    "{} not archived: {}{}",
                    crate::plural(made.unreadable.len(), "path"),
                    listed.join(", "),
                    if more > 0 { format!(" and {more} more (see manifest.json)") } else { String::new() }
                ),
            )
        };
        checks.push(check);
        archives.push(made);
    }
    let manifest = Manifest { created_at: now.format(&Rfc3339).unwrap_or_default(), archives };
    let mut json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    json.push(b'\n');
    let path = dir.join("manifest.json");
    atomic_write(&path, &json, crate::FILE_MODE)
        .map_err(|e| BackupError::Write { path: path.clone(), source: std::io::Error::other(e) })?;
    let mut findings = Findings::from_checks(checks);
    findings.artifacts = manifest.archives.iter().map(|a| dir.join(&a.file)).chain([path]).collect();
    Ok(ArchiveReport { dir, manifest: Some(manifest), findings })
}

/// Writes `<file>.partial`, hashing as it goes, then renames it to `file`.
fn pack(dir: &DirHandle, file: &str, source: &ArchiveSource, level: u32) -> std::io::Result<ManifestArchive> {
    let partial = format!("{file}.partial");
    let out = dir.create_new(OsStr::new(&partial), crate::FILE_MODE)?;
    let hashed = HashCount { file: out, hasher: Sha256::new(), bytes: 0 };
    let gz = GzEncoder::new(hashed, Compression::new(level.clamp(1, 9)));
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Complete);
    let mut walk = Walk { tar: &mut tar, entries: Vec::new(), unreadable: Vec::new() };
    for path in &source.paths {
        walk.top(path)?;
    }
    let Walk { entries, unreadable, .. } = walk;
    let gz = tar.into_inner()?;
    let hashed = gz.finish()?;
    hashed.file.sync_all()?;
    dir.rename_noreplace(OsStr::new(&partial), OsStr::new(file))?;
    dir.sync()?;
    Ok(ManifestArchive {
        file: file.to_owned(),
        size_bytes: hashed.bytes,
        sha256: hex(&hashed.hasher.finalize()),
        sources: source.paths.clone(),
        entries,
        unreadable,
    })
}

struct HashCount {
    file: std::fs::File,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

struct Walk<'a, W: Write> {
    tar: &'a mut tar::Builder<W>,
    entries: Vec<ManifestEntry>,
    unreadable: Vec<Unreadable>,
}

impl<W: Write> Walk<'_, W> {
    /// Archives one configured path. Errors writing the archive are returned; errors reading
    /// the source are recorded.
    fn top(&mut self, path: &Path) -> std::io::Result<()> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            self.skip(path, "not a path to a file or directory");
            return Ok(());
        };
        match DirHandle::open(parent) {
            Ok(p) => self.entry(&p, name, path)?,
            Err(e) => {
                self.skip(path, &e.to_string());
                return Ok(());
            }
        }
        // A configured path that is a link (a config directory pointing at the current release,
        // certificates under letsencrypt/live) is stored as the link and, once, as what it
        // points to: the link alone would archive nothing.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            match std::fs::canonicalize(path) {
                Ok(real) => {
                    if let (Some(parent), Some(name)) = (real.parent(), real.file_name()) {
                        match DirHandle::open(parent) {
                            Ok(p) => self.entry(&p, name, &real)?,
                            Err(e) => self.skip(&real, &e.to_string()),
                        }
                    }
                }
                Err(e) => self.skip(path, &format!("cannot resolve the link: {e}")),
            }
        }
        Ok(())
    }

    fn skip(&mut self, path: &Path, why: &str) {
        self.unreadable.push(Unreadable { path: path.to_owned(), error: why.to_owned() });
    }

    fn entry(&mut self, parent: &DirHandle, name: &OsStr, path: &Path) -> std::io::Result<()> {
        let st = match parent.stat(name) {
            Ok(st) => st,
            Err(e) => {
                self.skip(path, &e.to_string());
                return Ok(());
            }
        };
        let stored = path.strip_prefix("/").unwrap_or(path);
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(st.st_mtime.max(0) as u64);
        match kind(&st) {
            FileType::RegularFile => {
                let data = match parent.open_file(name, OFlags::RDONLY).and_then(|mut f| {
                    let mut data = Vec::with_capacity(st.st_size.max(0) as usize);
                    f.read_to_end(&mut data).map(|_| data)
                }) {
                    Ok(d) => d,
                    Err(e) => {
                        self.skip(path, &e.to_string());
                        return Ok(());
                    }
                };
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                self.tar.append_data(&mut header, stored, &data[..])?;
                self.entries.push(ManifestEntry {
                    path: path.to_owned(),
                    kind: "file".to_owned(),
                    size_bytes: data.len() as u64,
                });
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(parent, name, Vec::new()) {
                    Ok(t) => PathBuf::from(
                        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(t.into_bytes()),
                    ),
                    Err(e) => {
                        self.skip(path, &std::io::Error::from(e).to_string());
                        return Ok(());
                    }
                };
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                self.tar.append_link(&mut header, stored, &target)?;
                self.entries.push(ManifestEntry {
                    path: path.to_owned(),
                    kind: "symlink".to_owned(),
                    size_bytes: 0,
                });
            }
            FileType::Directory => {
                let dir = match parent.open_child(name) {
                    Ok(d) => d,
                    Err(e) => {
                        self.skip(path, &e.to_string());
                        return Ok(());
                    }
                };
                let listing = match dir.entries() {
                    Ok(l) => l,
                    Err(e) => {
                        self.skip(path, &e.to_string());
                        return Ok(());
                    }
                };
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                self.tar.append_data(&mut header, stored, std::io::empty())?;
                self.entries.push(ManifestEntry {
                    path: path.to_owned(),
                    kind: "dir".to_owned(),
                    size_bytes: 0,
                });
                let mut names: Vec<std::ffi::OsString> = Vec::new();
                for e in listing {
                    match e {
                        Ok((n, _)) => names.push(n),
                        Err(err) => self.skip(path, &format!("cannot list an entry: {err}")),
                    }
                }
                names.sort();
                for n in names {
                    self.entry(&dir, &n, &path.join(&n))?;
                }
            }
            other => {
                self.skip(path, &format!("not a regular file, directory or link ({other:?}); not archived"))
            }
        }
        Ok(())
    }
}
