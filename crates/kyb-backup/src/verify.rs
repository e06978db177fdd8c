//! `verify`: is a backup complete, confined to its directory, intact and readable?

use crate::BackupError;
use crate::metadata::Metadata;
use crate::partial::{self, METADATA};
use crate::pgbin::{isolate, pg_bindir};
use crate::plural;
use flate2::read::GzDecoder;
use kyb_core::dir::{DirHandle, kind};
use kyb_core::{Check, Findings, Gauge, RunCtx, Status};
use rustix::fs::{FileType, OFlags};
use std::ffi::OsStr;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use time::OffsetDateTime;

/// Which backup to verify. Today's and the latest are chosen among complete backups (those
/// with their metadata written); partial files and unfinished directories beside them are
/// reported as their own Warn findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The newest complete backup made today (UTC); none is Crit.
    Today,
    /// The newest complete backup.
    Latest,
    /// This backup directory.
    Dir(PathBuf),
}

/// What [`verify`] checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// The backup root (`<backup_dir>/full/backup_*`).
    pub backup_dir: PathBuf,
    /// Which backup.
    pub which: Which,
    /// A backup older than this is Crit.
    pub max_age_hours: u64,
    /// Where pg_restore lives; found by [`pg_bindir`] when `None`.
    pub pg_bindir: Option<PathBuf>,
    /// Deadline for the whole verification.
    pub timeout_ms: u64,
}

/// The findings, one check per property.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifyReport {
    /// The backup looked at, if one was found.
    pub backup: Option<PathBuf>,
    /// `backup`, `age`, `metadata`, `backup_file`, `size`, `checksum`, `archive`: as far as the
    /// first failure that makes the rest meaningless. For today's or the latest backup, then
    /// `partials` (Warn: partial files no live run is writing) and `incomplete` (Warn: newer
    /// directories without metadata), when there are any.
    #[serde(flatten)]
    pub findings: Findings,
    /// The metadata, when it was read and parsed (whatever the other checks found).
    pub metadata: Option<Metadata>,
}

kyb_core::impl_report!(VerifyReport);

/// Verifies a backup, its age judged at `ctx.now`. It only reads, so a dry run is the same run.
/// `Err` only when the task itself cannot run (no pg_restore, deadline).
pub async fn verify(cfg: &VerifyConfig, ctx: &RunCtx) -> Result<VerifyReport, BackupError> {
    let now = ctx.now;
    let bindir = pg_bindir(cfg.pg_bindir.as_deref()).ok_or(BackupError::NoPgBinaries)?;
    let c = cfg.clone();
    let work = tokio::task::spawn_blocking(move || verify_blocking(&c, now, &bindir.join("pg_restore")));
    match tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), work).await {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => {
            Err(BackupError::Dump { status: "verification worker failed".to_owned(), stderr: e.to_string() })
        }
        Err(_) => Err(BackupError::Timeout { what: "verification", timeout_ms: cfg.timeout_ms }),
    }
}

fn verify_blocking(cfg: &VerifyConfig, now: OffsetDateTime, pg_restore: &Path) -> VerifyReport {
    let mut report = match locate(cfg, now) {
        Ok(dir) => verify_dir(cfg, now, pg_restore, dir),
        Err(why) => VerifyReport {
            backup: None,
            findings: Findings::from_checks(vec![Check::new("backup", Status::Crit, why)]),
            metadata: None,
        },
    };
    if !matches!(cfg.which, Which::Dir(_)) {
        report.findings.checks.extend(leftovers(&cfg.backup_dir.join("full"), report.backup.as_deref()));
    }
    report
}

fn verify_dir(cfg: &VerifyConfig, now: OffsetDateTime, pg_restore: &Path, dir_path: PathBuf) -> VerifyReport {
    let mut checks = Vec::new();
    let report = |checks, metadata| VerifyReport {
        backup: Some(dir_path.clone()),
        findings: Findings::from_checks(checks),
        metadata,
    };
    checks.push(Check::new("backup", Status::Ok, format!("found {}", dir_path.display())));
    if let Some(stamp) = dir_path.file_name().and_then(|n| stamp_of(n.as_encoded_bytes())) {
        let age = now - stamp;
        let age_h = age.whole_hours();
        let status = if age_h > cfg.max_age_hours as i64 { Status::Crit } else { Status::Ok };
        let gauge = Gauge::new("kyb_maint_backup_age_seconds", age.whole_seconds() as f64);
        let summary = format!("{age_h} h old (limit {} h)", cfg.max_age_hours);
        // The limit beside the age, so an alert rule compares the two without its own copy.
        let limit = Gauge::new("kyb_maint_backup_max_age_seconds", cfg.max_age_hours as f64 * 3600.0);
        checks.push(Check::new("age", status, summary).with_gauge(gauge).with_gauge(limit));
    }
    let dir = match DirHandle::open(&dir_path) {
        Ok(d) => d,
        Err(e) => {
            checks.push(Check::new(
                "backup",
                Status::Crit,
                format!("cannot open {}: {e}", dir_path.display()),
            ));
            return report(checks, None);
        }
    };
    let meta = match read_metadata(&dir) {
        Ok(m) => m,
        Err(why) => {
            checks.push(Check::new("metadata", Status::Crit, why));
            return report(checks, None);
        }
    };
    checks.push(Check::new(
        "metadata",
        Status::Ok,
        format!("{} dump of {}, {}", meta.format, meta.database, plural(meta.size_bytes, "byte")),
    ));
    // One plain name inside this directory, opened without following links: nothing else is read.
    let name = meta.backup_file.as_str();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        checks.push(Check::new(
            "backup_file",
            Status::Crit,
            format!("{name:?} points outside the backup directory; not read"),
        ));
        return report(checks, Some(meta));
    }
    let file = match dir.open_file(OsStr::new(name), OFlags::RDONLY) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            checks.push(Check::new(
                "backup_file",
                Status::Crit,
                format!("{name} is a symlink; not followed"),
            ));
            return report(checks, Some(meta));
        }
        Err(e) => {
            checks.push(Check::new("backup_file", Status::Crit, format!("cannot open {name}: {e}")));
            return report(checks, Some(meta));
        }
    };
    let st = match rustix::fs::fstat(&file) {
        Ok(st) if kind(&st) == FileType::RegularFile => st,
        Ok(st) => {
            checks.push(Check::new(
                "backup_file",
                Status::Crit,
                format!("{name} is not a regular file ({:?})", kind(&st)),
            ));
            return report(checks, Some(meta));
        }
        Err(e) => {
            checks.push(Check::new("backup_file", Status::Crit, format!("cannot stat {name}: {e}")));
            return report(checks, Some(meta));
        }
    };
    checks.push(Check::new("backup_file", Status::Ok, format!("{name} inside the backup directory")));
    let size = st.st_size as u64;
    if size != meta.size_bytes {
        checks.push(Check::new(
            "size",
            Status::Crit,
            format!("{}, metadata says {} (truncated?)", plural(size, "byte"), meta.size_bytes),
        ));
    } else {
        let gauge = Gauge::new("kyb_maint_backup_size_bytes", size as f64);
        checks.push(
            Check::new("size", Status::Ok, format!("{} as recorded", plural(size, "byte"))).with_gauge(gauge),
        );
    }
    // Hash and read the archive at once, on two cores: each reads the file at its own offset.
    let (sum, archive) = std::thread::scope(|sc| {
        let hashing = sc.spawn(|| kyb_core::digest::sha256(&mut At { file: &file, pos: 0 }));
        let archive = readable(pg_restore, &file, &meta);
        (hashing.join().unwrap_or_else(|_| Err(std::io::Error::other("hashing thread panicked"))), archive)
    });
    match sum {
        Ok(sum) if sum == meta.checksum.to_ascii_lowercase() => {
            checks.push(Check::new("checksum", Status::Ok, "sha256 matches the metadata"))
        }
        Ok(sum) => checks.push(Check::new(
            "checksum",
            Status::Crit,
            format!("checksum mismatch: file {sum}, metadata {}", meta.checksum),
        )),
        Err(e) => checks.push(Check::new("checksum", Status::Crit, format!("cannot read {name}: {e}"))),
    }
    checks.push(archive);
    report(checks, Some(meta))
}

/// The backup directory `cfg.which` names, or why there is none. Only complete backups are
/// chosen: a run that is still going, or was killed, has not written its metadata.
fn locate(cfg: &VerifyConfig, now: OffsetDateTime) -> Result<PathBuf, String> {
    if let Which::Dir(d) = &cfg.which {
        return Ok(d.clone());
    }
    let full = cfg.backup_dir.join("full");
    let entries = match std::fs::read_dir(&full) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no backup from today: no backups at all yet ({} does not exist)",
                full.display()
            ));
        }
        Err(e) => return Err(format!("cannot list {}: {e}", full.display())),
    };
    let today = format!("backup_{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let mut found: Vec<(OffsetDateTime, String)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stamp = stamp_of(name.as_bytes())?;
            Some((stamp, name))
        })
        .filter(|(_, name)| cfg.which != Which::Today || name.starts_with(&today))
        .filter(|(_, name)| std::fs::symlink_metadata(full.join(name).join(METADATA)).is_ok())
        .collect();
    found.sort();
    match found.pop() {
        Some((_, name)) => Ok(full.join(name)),
        None if cfg.which == Which::Today => {
            Err(format!("no backup from today ({}) in {}", &today[7..], full.display()))
        }
        None => Err(format!("no complete backup in {}", full.display())),
    }
}

/// What runs that did not finish left under `full`: a `partials` Warn for partial files no live
/// run is writing, and an `incomplete` Warn for directories newer than `chosen` (all, when none
/// was chosen) that have no metadata, no partial file and no run writing them.
fn leftovers(full: &Path, chosen: Option<&Path>) -> Vec<Check> {
    let mut checks = Vec::new();
    let stale = partial::stale(full);
    if !stale.is_empty() {
        let files: usize = stale.iter().map(|l| l.partials.len()).sum();
        checks.push(Check::new(
            "partials",
            Status::Warn,
            format!(
                "{}; the next `kyb-backup create` or `prune` removes {}",
                partial::describe_all(&stale),
                if files == 1 { "it" } else { "them" }
            ),
        ));
    }
    let Ok(root) = DirHandle::open(full) else { return checks };
    let after = chosen.and_then(|c| c.file_name()).and_then(|n| Some((stamp_of(n.as_encoded_bytes())?, n)));
    let mut unfinished: Vec<(OffsetDateTime, String)> = root
        .entries()
        .into_iter()
        .flatten()
        .flatten()
        .filter(|(_, kind)| *kind == FileType::Directory)
        .filter_map(|(name, _)| Some((stamp_of(name.as_encoded_bytes())?, name)))
        .filter(|(stamp, name)| after.is_none_or(|(s, n)| (*stamp, name.as_os_str()) > (s, n)))
        .filter(|(_, name)| std::fs::symlink_metadata(full.join(name).join(METADATA)).is_err())
        .filter(|(_, name)| !stale.iter().any(|l| l.dir == full.join(name)))
        .filter(|(_, name)| !partial::is_live(&root, name))
        .map(|(stamp, name)| (stamp, name.to_string_lossy().into_owned()))
        .collect();
    unfinished.sort();
    if !unfinished.is_empty() {
        let names: Vec<String> = unfinished.into_iter().map(|(_, n)| n).collect();
        let newer = if chosen.is_some() { ", newer than the backup verified" } else { "" };
        checks.push(Check::new(
            "incomplete",
            Status::Warn,
            format!(
                "{} without {METADATA}{newer}: {} (a run that did not finish; prune deletes {} past max_age_days)",
                crate::counted(names.len(), "directory", "directories"),
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    checks
}

/// The time in `backup_YYYYMMDD_HHMMSS[_N]`.
pub(crate) fn stamp_of(name: &[u8]) -> Option<OffsetDateTime> {
    let s = std::str::from_utf8(name.strip_prefix(b"backup_")?).ok()?;
    let (date, rest) = s.split_at_checked(8)?;
    let time_part = rest.strip_prefix('_')?.get(..6)?;
    let num = |t: &str| t.parse::<u32>().ok();
    let (d, t) = (num(date)?, num(time_part)?);
    let month = time::Month::try_from((d / 100 % 100) as u8).ok()?;
    let date = time::Date::from_calendar_date((d / 10_000) as i32, month, (d % 100) as u8).ok()?;
    let clock = time::Time::from_hms((t / 10_000) as u8, (t / 100 % 100) as u8, (t % 100) as u8).ok()?;
    Some(date.with_time(clock).assume_utc())
}

fn read_metadata(dir: &DirHandle) -> Result<Metadata, String> {
    let file = dir.open_file(OsStr::new(METADATA), OFlags::RDONLY).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{METADATA} is missing")
        } else {
            format!("cannot open {METADATA}: {e}")
        }
    })?;
    let bytes = crate::metadata::read_capped(file).map_err(|e| format!("cannot read {METADATA}: {e}"))?;
    Metadata::parse(&bytes).map_err(|e| format!("{METADATA} is malformed: {e}"))
}

/// Reads a shared file from its own offset (`pread`), so two readers need no second open.
pub(crate) struct At<'a> {
    pub(crate) file: &'a std::fs::File,
    pub(crate) pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Is the archive whole and readable? gzip: the stream decompresses completely and its CRC and
/// length match. Custom format: `pg_restore` reads every entry and data block (into
/// /dev/null). Plain: the script ends with pg_dump's "dump complete" line.
fn readable(pg_restore: &Path, file: &std::fs::File, meta: &Metadata) -> Check {
    let gz = meta.compression == "gzip";
    let result = match (meta.format.as_str(), gz) {
        ("custom", true) => pg_restore_reads(
            pg_restore,
            GzDecoder::new(BufReader::with_capacity(1 << 20, At { file, pos: 0 })),
        ),
        ("custom", false) => pg_restore_reads(pg_restore, At { file, pos: 0 }),
        ("plain", true) => {
            plain_complete(GzDecoder::new(BufReader::with_capacity(1 << 20, At { file, pos: 0 })))
        }
        ("plain", false) => plain_complete(At { file, pos: 0 }),
        (other, _) => Err((Status::Crit, format!("unknown format {other:?} in the metadata"))),
    };
    match result {
        Ok(what) => Check::new("archive", Status::Ok, what),
        Err((status, why)) => Check::new("archive", status, why),
    }
}

type Readable = Result<String, (Status, String)>;

/// Feeds `input` to `pg_restore --file=/dev/null`, which parses every entry and data block.
fn pg_restore_reads(pg_restore: &Path, mut input: impl Read) -> Readable {
    let mut cmd = std::process::Command::new(pg_restore);
    isolate(&mut cmd, None);
    let mut child = cmd
        .args(["--file=/dev/null", "--format=custom"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| (Status::Unknown, format!("cannot run {}: {e}", pg_restore.display())))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (fed, errors) = std::thread::scope(|sc| {
        let errors = sc.spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let fed = feed(&mut input, &mut stdin);
        drop(stdin);
        (fed, errors.join().unwrap_or_default())
    });
    if let Err(Feed::Input(e)) = &fed {
        let _ = child.kill();
        let _ = child.wait();
        return Err((Status::Crit, format!("gzip stream is damaged: {e}")));
    }
    let status = child.wait().map_err(|e| (Status::Unknown, format!("pg_restore: {e}")))?;
    match fed {
        Ok(bytes) if status.success() => {
            Ok(format!("pg_restore reads the whole archive ({})", plural(bytes, "byte")))
        }
        _ => Err((Status::Crit, format!("pg_restore cannot read it: {}", errors.trim()))),
    }
}

/// Which side of a copy failed.
pub(crate) enum Feed {
    /// Reading (or decompressing) the input failed.
    Input(std::io::Error),
    /// The reader on the other end went away.
    Output,
}

/// Copies all of `input` to `output`; returns the bytes copied.
pub(crate) fn feed(input: &mut impl Read, output: &mut impl Write) -> Result<u64, Feed> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Feed::Input(e)),
        };
        output.write_all(&buf[..n]).map_err(|_| Feed::Output)?;
        total += n as u64;
    }
}

/// pg_dump ends every plain script with this comment; a script without it was cut short.
const PLAIN_TRAILER: &[u8] = b"-- PostgreSQL database dump complete";

fn plain_complete(mut input: impl Read) -> Readable {
    let mut buf = vec![0u8; 256 * 1024];
    let mut tail: Vec<u8> = Vec::with_capacity(256);
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((Status::Crit, format!("gzip stream is damaged: {e}"))),
        };
        total += n as u64;
        tail.extend_from_slice(&buf[n.saturating_sub(128)..n]);
        let keep = tail.len().saturating_sub(128);
        tail.drain(..keep);
    }
    if tail.windows(PLAIN_TRAILER.len()).any(|w| w == PLAIN_TRAILER) {
        Ok(format!("complete SQL script ({})", plural(total, "byte")))
    } else {
        Err((Status::Crit, "the SQL script is cut short: no \"dump complete\" line at its end".to_owned()))
    }
}
