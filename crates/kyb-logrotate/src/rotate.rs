//! Rotation of live logs: rename, create the new file on its handle, tell the writer, wait for it
//! to let go, then compress.

use crate::compress::compress;
use crate::holders::{Target, holders, holders_of, target, wait_released};
use crate::names::{self, Form, Rotated};
use crate::policy::{Interval, LogPolicy, Reopen};
use crate::report::{Action, FilesReport};
use kyb_core::dir::{DirHandle, kind};
use kyb_core::{Check, Status, human_bytes};
use rustix::fs::FileType;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Logs to rotate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateConfig {
    /// The logs and their policies.
    pub logs: Vec<LogPolicy>,
}

/// Rotates (when due) and compresses every configured log; first finishes or cleans up what an
/// interrupted run left. One [`Check`] per log, then its retention's; with `dry_run`, only plans.
pub fn rotate_blocking(cfg: &RotateConfig, now: OffsetDateTime, dry_run: bool) -> FilesReport {
    let mut report = FilesReport::new(dry_run);
    for policy in &cfg.logs {
        let checks = rotate_one(policy, now, dry_run, &mut report);
        report.findings.checks.extend(checks);
    }
    report
}

/// The log's check, then (when its directory could be listed) its retention check.
fn rotate_one(p: &LogPolicy, now: OffsetDateTime, dry_run: bool, report: &mut FilesReport) -> Vec<Check> {
    let name = p.path.display().to_string();
    let (Some(dir_path), Some(base)) = (p.path.parent(), p.path.file_name()) else {
        return vec![Check::new(name, Status::Unknown, "not a file path")];
    };
    let dir = match DirHandle::open(dir_path) {
        Ok(d) => d,
        Err(e) => {
            return vec![Check::new(
                name,
                Status::Crit,
                format!("cannot open directory {}: {e}", dir_path.display()),
            )];
        }
    };
    let mut notes: Vec<(Status, String)> = Vec::new();
    let mut listing = recover(&dir, base, dry_run, report, &mut notes);

    let mut just_rotated: Option<OsString> = None;
    // The rotated file the writer was told about in this run, if any.
    let mut told: Option<OsString> = None;
    match dir.stat(base) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A run killed between rename and create leaves no live log: put it back.
            if listing.newest.is_some() && p.reopen != Reopen::CopyTruncate {
                // The writer may still be appending to the rotated file: tell it to reopen.
                let newest = newest_rotated(&dir, &listing);
                let owner = owner_of(p, newest.as_ref().map(|(_, st)| st));
                match create_live(&dir, base, p, owner, dry_run, report)
                    .and_then(|_| signal_writer(p, dry_run, report))
                {
                    Ok(()) => {
                        told = newest.map(|(name, _)| name);
                        notes.push((
                            Status::Warn,
                            "the live log was missing (an interrupted run); recreated".to_owned(),
                        ))
                    }
                    Err(e) => notes.push((Status::Crit, format!("cannot recreate the live log: {e}"))),
                }
            } else {
                notes.push((Status::Ok, "no live log".to_owned()));
            }
        }
        Err(e) => notes.push((Status::Crit, format!("cannot stat: {e}"))),
        // A file bind-mounted over the live log is someone else's: renaming fails on it, and
        // copytruncate would empty it.
        Ok(_) if dir.is_mount_point(base).unwrap_or(true) => {
            report.skip(p.path.clone(), "a mount point; not rotated");
            notes.push((Status::Warn, "skipped: a mount point (a file mounted over the log)".to_owned()));
        }
        Ok(st) if kind(&st) != FileType::RegularFile => {
            report.skip(p.path.clone(), format!("not a regular file ({:?}); not rotated", kind(&st)));
            notes.push((Status::Warn, format!("skipped: not a regular file ({:?})", kind(&st))));
        }
        Ok(st) if st.st_nlink > 1 => {
            report.skip(p.path.clone(), format!("hard-linked ({} links); not rotated", st.st_nlink));
            notes.push((Status::Warn, format!("skipped: hard-linked ({} links)", st.st_nlink)));
        }
        Ok(st) => {
            let size = st.st_size as u64;
            match due(p, size, listing.newest.map(|(stamp, _)| stamp), now) {
                None => notes.push((
                    Status::Ok,
                    format!("{} (limit {}); not due", human_bytes(size), human_bytes(p.size_bytes)),
                )),
                Some(why) => match rotate_live(&dir, base, p, owner_of(p, Some(&st)), now, dry_run, report) {
                    Ok(stem) => {
                        report.counts.rotated_files += 1;
                        notes.push((Status::Ok, format!("rotated ({why}) to {}", stem.to_string_lossy())));
                        let parsed = names::parse(base, &stem).expect("a stem we made parses");
                        listing.newest = listing.newest.max(Some((parsed.stamp, parsed.counter)));
                        listing.kept.push((stem.clone(), (parsed.stamp, parsed.counter)));
                        listing.plain.push(parsed);
                        told = Some(stem.clone());
                        just_rotated = Some(stem);
                    }
                    Err(e) => notes.push((Status::Crit, format!("rotation failed: {e}"))),
                },
            }
        }
    }

    let held = writers_let_go(&dir, p, &listing, told.as_deref(), dry_run, report, &mut notes);
    if p.compress {
        let compressed =
            compress_rotated(&dir, p, &listing, just_rotated.as_deref(), &held, report, &mut notes);
        for (kept, _) in listing.kept.iter_mut().filter(|(n, _)| compressed.contains(n)) {
            kept.push(".gz");
        }
    }
    let status = Status::worst(notes.iter().map(|(s, _)| *s));
    let summary = notes.into_iter().map(|(_, n)| n).collect::<Vec<_>>().join("; ");
    // Retention on every run, from the listing just made.
    let retention = crate::retention::prune_listed(&dir, p, listing.kept, Vec::new(), now, dry_run, report);
    vec![Check::new(name, status, summary), retention]
}

/// Rotated files found by [`recover`].
struct Listing {
    /// Uncompressed rotated files, oldest first.
    plain: Vec<Rotated>,
    /// The newest rotation (stamp, counter), compressed or not.
    newest: Option<(u64, u32)>,
    /// Every rotated file that stays, compressed or not, with its order: for retention, which
    /// then need not list the directory again.
    kept: Vec<(OsString, (u64, u32))>,
}

/// Removes stale `.gz.tmp` files and plain files that already have a complete `.gz`; lists what
/// remains. Allocates only for the few uncompressed files, not for every `.gz`.
fn recover(
    dir: &DirHandle,
    base: &OsStr,
    dry_run: bool,
    report: &mut FilesReport,
    notes: &mut Vec<(Status, String)>,
) -> Listing {
    let mut listing = Listing { plain: Vec::new(), newest: None, kept: Vec::new() };
    let entries = match dir.entries() {
        Ok(e) => e,
        Err(e) => {
            notes.push((Status::Crit, format!("cannot list {}: {e}", dir.path().display())));
            return listing;
        }
    };
    let mut leftovers: Vec<(OsString, &str)> = Vec::new();
    for entry in entries {
        let name = match entry {
            Ok((name, _)) => name,
            Err(e) => {
                notes.push((Status::Warn, format!("unreadable directory entry: {e}")));
                continue;
            }
        };
        let Some((stamp, counter, form, _)) = names::parse_parts(base, &name) else { continue };
        match form {
            Form::GzTmp => leftovers.push((name, "interrupted compression")),
            Form::Gz => {
                listing.newest = listing.newest.max(Some((stamp, counter)));
                listing.kept.push((name, (stamp, counter)));
            }
            Form::Plain => {
                let gz = names::with_suffix(&name, ".gz");
                let plain_bytes = dir.stat(&name).map_or(0, |st| st.st_size as u64);
                if crate::compress::completes(dir, &gz, plain_bytes) {
                    // Killed between renaming X.gz.tmp to X.gz and unlinking X: X.gz is complete.
                    leftovers.push((name, "already compressed"));
                } else if dir.stat(&gz).is_ok() {
                    report.skip(
                        dir.join(&name),
                        "a .gz of the same name exists but is not its compressed copy; both left",
                    );
                    notes.push((
                        Status::Warn,
                        format!("{}.gz is not the compressed {0}; left both", name.to_string_lossy()),
                    ));
                } else {
                    listing.newest = listing.newest.max(Some((stamp, counter)));
                    listing.plain.extend(names::parse(base, &name));
                    listing.kept.push((name, (stamp, counter)));
                }
            }
        }
    }
    for (name, reason) in leftovers {
        match dir.stat(&name) {
            Ok(_) if dir.is_mount_point(&name).unwrap_or(true) => {
                report.skip(dir.join(&name), "leftover-looking name but a mount point; left alone");
                continue;
            }
            Ok(st) if kind(&st) == FileType::RegularFile => {}
            Ok(_) => {
                report.skip(dir.join(&name), "leftover-looking name but not a regular file; left alone");
                continue;
            }
            Err(_) => continue,
        }
        report.steps.push(Action::Remove { path: dir.join(&name), reason: reason.to_owned() });
        if !dry_run && let Err(e) = dir.unlink(&name) {
            notes.push((Status::Warn, format!("cannot remove {}: {e}", name.to_string_lossy())));
        }
    }
    listing.plain.sort_by_key(|r| (r.stamp, r.counter));
    listing
}

fn due(p: &LogPolicy, size: u64, newest: Option<u64>, now: OffsetDateTime) -> Option<String> {
    if size == 0 {
        return None;
    }
    if size >= p.size_bytes {
        return Some(format!("{} >= {}", human_bytes(size), human_bytes(p.size_bytes)));
    }
    let today = u64::try_from(now.year()).unwrap_or(0) * 10_000
        + u64::from(u8::from(now.month())) * 100
        + u64::from(now.day());
    let last_day = newest.map(|s| s / 1_000_000);
    match (p.every?, last_day) {
        (_, None) => Some("first scheduled rotation".to_owned()),
        (Interval::Daily, Some(d)) if d < today => Some("daily".to_owned()),
        (Interval::Weekly, Some(d)) if days_between(d, now) >= 7 => Some("weekly".to_owned()),
        _ => None,
    }
}

/// Whole days from the date `yyyymmdd` to `now`.
fn days_between(yyyymmdd: u64, now: OffsetDateTime) -> i64 {
    let month = time::Month::try_from(((yyyymmdd / 100) % 100) as u8).unwrap_or(time::Month::January);
    match time::Date::from_calendar_date((yyyymmdd / 10_000) as i32, month, (yyyymmdd % 100) as u8) {
        Ok(d) => (now.date() - d).whole_days(),
        Err(_) => i64::MAX,
    }
}

/// The first free rotated name for `now`: `<base>-YYYYMMDD-HHMMSS`, then `-1`, `-2`, ….
fn free_stem(dir: &DirHandle, base: &OsStr, now: OffsetDateTime) -> io::Result<OsString> {
    let stem = names::stem_for(base, now);
    for n in 0..100_000u32 {
        let candidate = if n == 0 { stem.clone() } else { names::with_suffix(&stem, &format!("-{n}")) };
        let taken =
            [&candidate, &names::with_suffix(&candidate, ".gz"), &names::with_suffix(&candidate, ".gz.tmp")]
                .iter()
                .any(|name| dir.stat(name).is_ok());
        if !taken {
            return Ok(candidate);
        }
    }
    Err(io::Error::other("no free rotated name"))
}

/// The owner of the new live log: the configured one, else that of `like` (the log being
/// rotated, or the newest rotated file when the live log is gone), else this process's.
fn owner_of(p: &LogPolicy, like: Option<&rustix::fs::Stat>) -> (u32, u32) {
    let uid = p.uid.or(like.map(|st| st.st_uid)).unwrap_or_else(|| rustix::process::geteuid().as_raw());
    let gid = p.gid.or(like.map(|st| st.st_gid)).unwrap_or_else(|| rustix::process::getegid().as_raw());
    (uid, gid)
}

/// The newest rotated file in `listing` and its status, if it can be read.
fn newest_rotated(dir: &DirHandle, listing: &Listing) -> Option<(OsString, rustix::fs::Stat)> {
    let newest = listing.newest?;
    let (name, _) = listing.kept.iter().find(|(_, order)| *order == newest)?;
    dir.stat(name).ok().map(|st| (name.clone(), st))
}

fn rotate_live(
    dir: &DirHandle,
    base: &OsStr,
    p: &LogPolicy,
    owner: (u32, u32),
    now: OffsetDateTime,
    dry_run: bool,
    report: &mut FilesReport,
) -> io::Result<OsString> {
    let stem = free_stem(dir, base, now)?;
    if p.reopen == Reopen::CopyTruncate {
        report.steps.push(Action::CopyTruncate { from: p.path.clone(), to: dir.join(&stem) });
        if !dry_run {
            copy_truncate(dir, base, &stem)?;
        }
        return Ok(stem);
    }
    report.steps.push(Action::Rename { from: p.path.clone(), to: dir.join(&stem) });
    if !dry_run {
        dir.rename_noreplace(base, &stem)?;
    }
    if !create_live(dir, base, p, owner, dry_run, report)? {
        report.skip(
            p.path.clone(),
            "the writer created the new log itself; its owner and mode are the writer's",
        );
    }
    signal_writer(p, dry_run, report)?;
    Ok(stem)
}

/// Creates the live log with `O_EXCL|O_NOFOLLOW`, then sets owner and mode on the open handle,
/// Creates the live log complete: made under a temporary name with `O_EXCL|O_NOFOLLOW`, owner
/// and mode set on that handle, fsynced, then renamed into place without replacing anything.
/// A kill at any point leaves either no live log (recreated by the next run) or the right one,
/// never a half-made one. Returns false when the writer had already created the log itself.
fn create_live(
    dir: &DirHandle,
    base: &OsStr,
    p: &LogPolicy,
    (uid, gid): (u32, u32),
    dry_run: bool,
    report: &mut FilesReport,
) -> io::Result<bool> {
    report.steps.push(Action::Create { path: p.path.clone(), uid, gid, mode: p.mode });
    if dry_run {
        return Ok(true);
    }
    let tmp = new_log_name(base);
    let _ = dir.unlink(&tmp);
    let file = dir.create_new(&tmp, 0o600)?;
    let made = (|| {
        rustix::fs::fchown(
            &file,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
        rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(p.mode))?;
        file.sync_all()
    })();
    let placed = made.and_then(|()| dir.rename_noreplace(&tmp, base));
    match placed {
        Ok(()) => {
            dir.sync()?;
            Ok(true)
        }
        Err(e) => {
            let _ = dir.unlink(&tmp);
            // The writer reopened before we were done and made the log itself: it is writing
            // to it, which is what matters.
            if e.kind() == io::ErrorKind::AlreadyExists { Ok(false) } else { Err(e) }
        }
    }
}

/// `.<base>.kyb-new`: where the next live log is made before it is renamed into place.
fn new_log_name(base: &OsStr) -> OsString {
    let mut name = OsString::from(".");
    name.push(base);
    name.push(".kyb-new");
    name
}

fn copy_truncate(dir: &DirHandle, base: &OsStr, stem: &OsStr) -> io::Result<()> {
    let mut live = dir.open_file(base, rustix::fs::OFlags::RDWR)?;
    // Truncating a file mounted over the log would empty someone else's file.
    if !dir.same_mount(&live)? {
        return Err(io::Error::other(format!(
            "{} is a mount point; not truncated",
            dir.join(base).display()
        )));
    }
    let st = rustix::fs::fstat(&live)?;
    let mut copy = dir.create_new(stem, 0o600)?;
    rustix::fs::fchown(
        &copy,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(&copy, rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = live.read(&mut buf)?;
        if n == 0 {
            break;
        }
        copy.write_all(&buf[..n])?;
    }
    copy.sync_all()?;
    dir.sync()?;
    live.set_len(0)
}

fn signal_writer(p: &LogPolicy, dry_run: bool, report: &mut FilesReport) -> io::Result<()> {
    match &p.reopen {
        Reopen::Nothing | Reopen::CopyTruncate => Ok(()),
        Reopen::PidFile { path, signal } => {
            let pid = read_pid_file(path)?;
            let target = rustix::process::Pid::from_raw(pid)
                .ok_or_else(|| io::Error::other(format!("pid file {} holds pid {pid}", path.display())))?;
            report.steps.push(Action::Signal {
                pid,
                signal: signal.name().to_owned(),
                source: format!("pid file {}", path.display()),
            });
            if dry_run {
                return Ok(());
            }
            rustix::process::kill_process(target, signal.signal()).map_err(|e| {
                io::Error::other(format!("cannot signal pid {pid} from {}: {e}", path.display()))
            })
        }
        Reopen::SystemdUnit { unit, signal } => {
            report.steps.push(Action::Signal {
                pid: 0,
                signal: signal.name().to_owned(),
                source: format!("main process of {unit}, through systemctl"),
            });
            if dry_run {
                return Ok(());
            }
            systemctl(&["kill", "--kill-whom=main", &format!("--signal={}", signal.name()), "--", unit])
                .map(drop)
        }
    }
}

/// Runs `systemctl ARGS` with a 10 s limit; its stdout, or its stderr as the error.
fn systemctl(args: &[&str]) -> io::Result<String> {
    let mut child = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(status) = child.try_wait()? {
            let read = |s: Option<&mut dyn Read>| {
                let mut text = String::new();
                if let Some(s) = s {
                    let _ = s.read_to_string(&mut text);
                }
                text
            };
            let out = read(child.stdout.as_mut().map(|s| s as &mut dyn Read));
            if status.success() {
                return Ok(out);
            }
            let err = read(child.stderr.as_mut().map(|s| s as &mut dyn Read));
            return Err(io::Error::other(format!("systemctl {}: {status}: {}", args.join(" "), err.trim())));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!("systemctl {} did not finish within 10 s", args.join(" "))));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Makes sure no writer is left appending to a rotated file, compressed or not: the file it was
/// `told` about in this run gets `reopen_timeout_ms` to be let go; one it holds from before was
/// never told, or did not listen, and is told again ([`writer_lets_go`]). Every uncompressed
/// rotated file is looked at, in one pass over `/proc`. Returns the files still held.
fn writers_let_go(
    dir: &DirHandle,
    p: &LogPolicy,
    listing: &Listing,
    told: Option<&OsStr>,
    dry_run: bool,
    report: &mut FilesReport,
    notes: &mut Vec<(Status, String)>,
) -> Vec<OsString> {
    let mut held = Vec::new();
    if matches!(p.reopen, Reopen::Nothing | Reopen::CopyTruncate) {
        return held;
    }
    let (mut now, mut before): (Vec<Target>, Vec<Target>) = (Vec::new(), Vec::new());
    for r in &listing.plain {
        let is_told = told == Some(r.stem.as_os_str());
        // In a dry run the file "rotated" now is still the live log.
        if dry_run && is_told {
            continue;
        }
        match dir.stat(&r.stem) {
            Ok(st) if kind(&st) == FileType::RegularFile => {
                if is_told {
                    now.push(target(&r.stem, &st))
                } else {
                    before.push(target(&r.stem, &st))
                }
            }
            _ => {}
        }
    }
    let mut found: Vec<(Target, Option<Vec<i32>>)> = Vec::new();
    for t in now {
        let left = wait_released(&t, Duration::from_millis(p.reopen_timeout_ms));
        found.push((t, left));
    }
    if !before.is_empty() {
        let all = holders_of(&before, Duration::from_secs(5));
        for (i, t) in before.into_iter().enumerate() {
            let left = all.as_ref().map(|a| a[i].clone());
            found.push((t, left));
        }
    }
    for (t, left) in found {
        match left {
            Some(left) if left.is_empty() => {}
            Some(left) => {
                if !writer_lets_go(p, &t.name, &t, &left, dry_run, report, notes) {
                    held.push(t.name.clone());
                }
            }
            None => {
                let name = t.name.to_string_lossy();
                notes.push((
                    Status::Warn,
                    format!("could not tell in time whether {name} is still open; left for the next run"),
                ));
                held.push(t.name.clone());
            }
        }
    }
    held
}

fn compress_rotated(
    dir: &DirHandle,
    p: &LogPolicy,
    listing: &Listing,
    just_rotated: Option<&OsStr>,
    held: &[OsString],
    report: &mut FilesReport,
    notes: &mut Vec<(Status, String)>,
) -> Vec<OsString> {
    let dry_run = report.dry_run;
    let mut done = Vec::new();
    for r in &listing.plain {
        // Held by a writer (already said), or left plain on purpose.
        if held.contains(&r.stem) || p.delay_compress && Some((r.stamp, r.counter)) == listing.newest {
            continue;
        }
        let path = dir.join(&r.stem);
        let planned_rotation = dry_run && just_rotated == Some(r.stem.as_os_str());
        if planned_rotation {
            // Not renamed yet in a dry run: the live log stands for it.
            report.steps.push(Action::Compress { from: path.clone(), to: with_gz(&path) });
            continue;
        }
        let st = match dir.stat(&r.stem) {
            Ok(_) if dir.is_mount_point(&r.stem).unwrap_or(true) => {
                report.skip(path, "a mount point; not compressed");
                notes.push((Status::Warn, format!("skipped {}: a mount point", r.stem.to_string_lossy())));
                continue;
            }
            Ok(st) if kind(&st) == FileType::RegularFile && st.st_nlink == 1 => st,
            Ok(st) => {
                let why = if kind(&st) == FileType::RegularFile {
                    format!("hard-linked ({} links)", st.st_nlink)
                } else {
                    format!("not a regular file ({:?})", kind(&st))
                };
                report.skip(path, format!("{why}; not compressed"));
                notes.push((Status::Warn, format!("skipped {}: {why}", r.stem.to_string_lossy())));
                continue;
            }
            Err(_) => continue,
        };
        // Compressing a file someone still appends to would lose their later lines. The
        // writer was waited for already: this is anyone else (or, with no reopen, the writer).
        let t = target(&r.stem, &st);
        let left = holders(&t, Duration::from_secs(5));
        match left {
            Some(left) if left.is_empty() => {}
            Some(left) => {
                if !writer_lets_go(p, &r.stem, &t, &left, dry_run, report, notes) {
                    continue;
                }
            }
            None => {
                let name = r.stem.to_string_lossy();
                notes.push((
                    Status::Warn,
                    format!("could not tell in time whether {name} is still open; left for the next run"),
                ));
                continue;
            }
        }
        report.steps.push(Action::Compress { from: path.clone(), to: with_gz(&path) });
        if dry_run {
            continue;
        }
        match compress(dir, &r.stem, p.compress_level) {
            Ok(c) => {
                done.push(r.stem.clone());
                report.counts.compressed_files += 1;
                report.counts.compressed_in_bytes += c.in_bytes;
                report.counts.compressed_out_bytes += c.out_bytes;
            }
            Err(e) => {
                notes.push((Status::Crit, format!("cannot compress {}: {e}", r.stem.to_string_lossy())))
            }
        }
    }
    if !done.is_empty() {
        notes.push((Status::Ok, format!("compressed {} file(s)", done.len())));
    }
    done
}

/// How many times a writer that still holds a rotated file is signalled again in one run.
const RESIGNALS: u32 = 3;

/// A rotated file is still held by `left`. When the configured writer is among them it was not
/// told, or did not listen (a run killed between rename and signal, a wrong pid in the pid file
/// at the time): signal it again, up to [`RESIGNALS`] times within `reopen_timeout_ms`, and go
/// Crit if it still does not let go. Other holders (a reader, `tail -f`) only get a Warn and the
/// file waits for a later run. Returns whether nobody holds the file any more.
fn writer_lets_go(
    p: &LogPolicy,
    stem: &OsStr,
    t: &crate::holders::Target,
    left: &[i32],
    dry_run: bool,
    report: &mut FilesReport,
    notes: &mut Vec<(Status, String)>,
) -> bool {
    let name = stem.to_string_lossy();
    let later = |left: &[i32]| {
        let then = if p.compress { "; compression left for the next run" } else { "" };
        format!("{name} still open by pid {left:?}{then}")
    };
    let writer = match writer_pid(p) {
        Ok(Some(pid)) if left.contains(&pid) => pid,
        Ok(_) => {
            notes.push((Status::Warn, later(left)));
            return false;
        }
        Err(e) => {
            notes.push((Status::Warn, format!("{}; cannot tell the writer's pid: {e}", later(left))));
            return false;
        }
    };
    let each = Duration::from_millis((p.reopen_timeout_ms / u64::from(RESIGNALS)).max(100));
    for n in 1..=RESIGNALS {
        if let Err(e) = signal_writer(p, dry_run, report) {
            notes.push((Status::Crit, format!("writer pid {writer} still holds {name}: {e}")));
            return false;
        }
        if dry_run {
            notes.push((
                Status::Warn,
                format!("writer pid {writer} still holds {name}; would signal it again"),
            ));
            return false;
        }
        match wait_released(t, each) {
            Some(held) if !held.contains(&writer) => {
                notes.push((
                    Status::Warn,
                    format!("writer pid {writer} still held {name}; signalled again ({n}x), it let go"),
                ));
                if held.is_empty() {
                    return true;
                }
                notes.push((Status::Warn, later(&held)));
                return false;
            }
            _ => {}
        }
    }
    notes.push((
        Status::Crit,
        format!(
            "writer pid {writer} does not reopen its log: it still holds {name} after {RESIGNALS} \
             {} in {} ms; {name} left uncompressed",
            match &p.reopen {
                Reopen::PidFile { signal, .. } | Reopen::SystemdUnit { signal, .. } => signal.name(),
                Reopen::Nothing | Reopen::CopyTruncate => "signal",
            },
            each.as_millis() * u128::from(RESIGNALS)
        ),
    ));
    false
}

/// The pid that [`signal_writer`] signals: from the pid file, or the unit's main process.
fn writer_pid(p: &LogPolicy) -> io::Result<Option<i32>> {
    match &p.reopen {
        Reopen::Nothing | Reopen::CopyTruncate => Ok(None),
        Reopen::PidFile { path, .. } => read_pid_file(path).map(Some),
        Reopen::SystemdUnit { unit, .. } => {
            let out = systemctl(&["show", "--property=MainPID", "--value", "--", unit])?;
            Ok(out.trim().parse().ok().filter(|pid| *pid > 0))
        }
    }
}

fn read_pid_file(path: &Path) -> io::Result<i32> {
    // Bounded and regular only: a pid file swapped for a FIFO or /dev/zero must not hang the run.
    let (bytes, _) = kyb_core::fs::read_regular(path, 4096).map_err(|e| {
        io::Error::other(format!("pid file {}: {}", path.display(), kyb_core::error_chain(&e)))
    })?;
    String::from_utf8_lossy(&bytes)
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| io::Error::other(format!("pid file {} does not hold a pid", path.display())))
}

fn with_gz(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".gz");
    PathBuf::from(s)
}
