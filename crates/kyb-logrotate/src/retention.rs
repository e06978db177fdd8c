//! Retention on every run: rotated logs past their age or count, and old reports. Strict name
//! patterns, regular single-link files only, never a mount point (a file bind-mounted over a
//! rotated name), removed through the directory handle.

use crate::names::{self, Form};
use crate::policy::LogPolicy;
use crate::report::{Action, Counts, FilesReport};
use kyb_core::dir::{DirHandle, kind};
use kyb_core::{Check, Status};
use rustix::fs::FileType;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};
use time::OffsetDateTime;

/// What [`prune`](crate::prune) removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Rotated files of these logs, by each policy's `keep_days` and `keep_count`.
    pub logs: Vec<LogPolicy>,
    /// kyb-maint's reports directory (`<flow>-report-*.txt|json`, `app-metrics-*.prom`).
    pub reports_dir: Option<PathBuf>,
    /// Reports older than this many days are removed.
    pub reports_max_age_days: u32,
}

const DAY_SECS: i64 = 86_400;

/// A listed name and its order key (time stamp, counter; newer is larger).
pub(crate) type Listed = (OsString, (u64, u32));

/// Removes rotated logs and reports past retention; with `dry_run`, only plans.
pub fn prune_blocking(cfg: &RetentionConfig, now: OffsetDateTime, dry_run: bool) -> FilesReport {
    let mut report = FilesReport::new(dry_run);
    for p in &cfg.logs {
        let check = prune_log(p, now, dry_run, &mut report);
        report.findings.checks.push(check);
    }
    if let Some(dir) = &cfg.reports_dir {
        let check = prune_reports(dir, cfg.reports_max_age_days, now, dry_run, &mut report);
        report.findings.checks.push(check);
    }
    report
}

struct Candidate {
    name: OsString,
    order: (u64, u32),
    mtime: i64,
    size: u64,
}

fn prune_log(p: &LogPolicy, now: OffsetDateTime, dry_run: bool, report: &mut FilesReport) -> Check {
    let label = format!("rotated {}", p.path.display());
    let (Some(dir_path), Some(base)) = (p.path.parent(), p.path.file_name()) else {
        return Check::new(label, Status::Unknown, "not a file path");
    };
    let dir = match DirHandle::open(dir_path) {
        Ok(d) => d,
        Err(e) => return Check::new(label, Status::Crit, format!("cannot open {}: {e}", dir_path.display())),
    };
    let matcher = |name: &OsStr| {
        names::parse_parts(base, name)
            .filter(|(_, _, form, _)| *form != Form::GzTmp)
            .map(|(s, c, _, _)| (s, c))
    };
    let (listed, problems) = list(&dir, &matcher);
    prune_listed(&dir, p, listed, problems, now, dry_run, report)
}

/// Retention of one log's rotated files, given their names (from [`list`], or from the rotation
/// pass that has just listed the same directory).
pub(crate) fn prune_listed(
    dir: &DirHandle,
    p: &LogPolicy,
    listed: Vec<Listed>,
    mut problems: Vec<String>,
    now: OffsetDateTime,
    dry_run: bool,
    report: &mut FilesReport,
) -> Check {
    let label = format!("rotated {}", p.path.display());
    let candidates = candidates(dir, listed, report, &mut problems);
    let cutoff = now.unix_timestamp() - i64::from(p.keep_days) * DAY_SECS;
    // Rank newest first for the count limit...
    let mut rank: Vec<usize> = (0..candidates.len()).collect();
    rank.sort_unstable_by_key(|&i| std::cmp::Reverse(candidates[i].order));
    let mut beyond_count = vec![false; candidates.len()];
    if let Some(keep) = p.keep_count {
        for &i in rank.iter().skip(keep as usize) {
            beyond_count[i] = true;
        }
    }
    // ...but remove in directory order, which is the filesystem's own (hash) order: far fewer
    // index blocks touched than removing in name order.
    let before = report.counts;
    for (i, c) in candidates.iter().enumerate() {
        let reason = if c.mtime < cutoff {
            format!("older than {} days", p.keep_days)
        } else if beyond_count[i] {
            format!("beyond the newest {}", p.keep_count.unwrap_or(0))
        } else {
            continue;
        };
        remove(dir, c, reason, dry_run, report, &mut problems);
    }
    summary(label, candidates.len(), before, report, problems, dry_run)
}

fn prune_reports(
    dir_path: &std::path::Path,
    max_age_days: u32,
    now: OffsetDateTime,
    dry_run: bool,
    report: &mut FilesReport,
) -> Check {
    let label = format!("reports {}", dir_path.display());
    let dir = match DirHandle::open(dir_path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::new(label, Status::Ok, "no reports directory yet");
        }
        Err(e) => return Check::new(label, Status::Crit, format!("cannot open: {e}")),
    };
    let matcher = |name: &OsStr| {
        let name = name.as_bytes();
        (is_report_name(name) || report_temp_writer(name).is_some()).then_some((0, 0))
    };
    let (listed, mut problems) = list(&dir, &matcher);
    let candidates = candidates(&dir, listed, report, &mut problems);
    let cutoff = now.unix_timestamp() - i64::from(max_age_days) * DAY_SECS;
    let before = report.counts;
    for c in &candidates {
        let reason = match report_temp_writer(c.name.as_bytes()) {
            Some(pid) => {
                let written = UNIX_EPOCH + Duration::from_secs(u64::try_from(c.mtime).unwrap_or(0));
                if kyb_core::process::may_still_write(pid, written) {
                    continue;
                }
                format!("unfinished report left by pid {pid}, which is no longer running")
            }
            None if c.mtime < cutoff => format!("older than {max_age_days} days"),
            None => continue,
        };
        remove(&dir, c, reason, dry_run, report, &mut problems);
    }
    summary(label, candidates.len(), before, report, problems, dry_run)
}

/// `daily-report-YYYYMMDD-HHMMSS[-N].txt|json` (any flow) or `app-metrics-YYYYMMDD-HHMMSS[-N].prom`.
fn is_report_name(name: &[u8]) -> bool {
    let stamped = |rest: &[u8], exts: &[&[u8]]| -> bool {
        let ok_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
        let Some(dot) = rest.iter().rposition(|b| *b == b'.') else { return false };
        let (body, ext) = (&rest[..dot], &rest[dot + 1..]);
        if !exts.contains(&ext) {
            return false;
        }
        let parts: Vec<&[u8]> = body.split(|b| *b == b'-').collect();
        match parts.as_slice() {
            [d, t] => d.len() == 8 && t.len() == 6 && ok_digits(d) && ok_digits(t),
            [d, t, n] => {
                d.len() == 8 && t.len() == 6 && ok_digits(d) && ok_digits(t) && ok_digits(n) && n.len() <= 6
            }
            _ => false,
        }
    };
    if let Some(rest) = name.strip_prefix(b"app-metrics-") {
        return stamped(rest, &[b"prom"]);
    }
    ["daily", "weekly", "monthly", "quarterly", "logrotate"].iter().any(|flow| {
        name.strip_prefix(flow.as_bytes())
            .and_then(|r| r.strip_prefix(b"-report-"))
            .is_some_and(|r| stamped(r, &[b"txt", b"json"]))
    })
}

/// The writer's pid in `.<report name>.<pid>.<n>.tmp`, the temporary file a report is written to
/// before its rename: a run killed in between leaves it behind.
fn report_temp_writer(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(b".")?.strip_suffix(b".tmp")?;
    let mut parts = rest.rsplitn(3, |b| *b == b'.');
    let (n, pid, report) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &[u8]| !s.is_empty() && s.len() <= 10 && s.iter().all(u8::is_ascii_digit);
    if !(digits(n) && digits(pid) && is_report_name(report)) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// The names in `dir` that `matcher` accepts, with their order key, and problems listing it.
fn list(dir: &DirHandle, matcher: &dyn Fn(&OsStr) -> Option<(u64, u32)>) -> (Vec<Listed>, Vec<String>) {
    let entries = match dir.entries() {
        Ok(e) => e,
        Err(e) => return (Vec::new(), vec![format!("cannot list: {e}")]),
    };
    let mut names = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        match entry {
            Ok((name, _)) => {
                if let Some(order) = matcher(&name) {
                    names.push((name, order));
                }
            }
            Err(e) => problems.push(format!("unreadable entry: {e}")),
        }
    }
    (names, problems)
}

/// Of `names`, the regular files with one link; everything else is reported as skipped.
fn candidates(
    dir: &DirHandle,
    names: Vec<Listed>,
    report: &mut FilesReport,
    problems: &mut Vec<String>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    // Links and odd files where a rotated file or report should be: someone made them.
    let mut planted = 0usize;
    for (name, order) in names {
        let st = match dir.stat(&name) {
            Ok(st) => st,
            // Gone since the listing: someone else removed it, nothing to do but say so. In a
            // dry run it may be the file this run's rotation would have made: it still counts
            // toward the newest kept, so the plan matches what a run would remove.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if report.dry_run {
                    out.push(Candidate { name, order, mtime: i64::MAX, size: 0 });
                } else {
                    report.skip(dir.join(&name), "vanished during the walk (removed by someone else)");
                }
                continue;
            }
            Err(e) => {
                problems.push(format!("cannot stat {}: {e}", name.to_string_lossy()));
                continue;
            }
        };
        match kind(&st) {
            FileType::RegularFile if st.st_nlink == 1 => {}
            FileType::RegularFile => {
                report.skip(dir.join(&name), format!("hard-linked ({} links); not removed", st.st_nlink));
                planted += 1;
                continue;
            }
            FileType::Symlink => {
                report.skip(dir.join(&name), "symlink; not followed, not removed");
                planted += 1;
                continue;
            }
            other => {
                report.skip(dir.join(&name), format!("not a regular file ({other:?}); not removed"));
                planted += 1;
                continue;
            }
        }
        out.push(Candidate { name, order, mtime: st.st_mtime, size: st.st_size as u64 });
    }
    let skipped = planted;
    if skipped > 0 {
        // A link where a rotated file or report should be is worth a look: someone made it.
        problems.push(format!(
            "{skipped} entr{} with a matching name left alone (see skipped)",
            if skipped == 1 { "y" } else { "ies" }
        ));
    }
    out
}

fn remove(
    dir: &DirHandle,
    c: &Candidate,
    reason: String,
    dry_run: bool,
    report: &mut FilesReport,
    problems: &mut Vec<String>,
) {
    // Checked only for what would go: one statx per removal, not per listed file.
    match dir.is_mount_point(&c.name) {
        Ok(false) => {}
        Ok(true) => {
            report.skip(dir.join(&c.name), "a mount point; not removed");
            problems.push(format!("{} is a mount point; left alone", c.name.to_string_lossy()));
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dry_run => return,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            problems.push(format!("cannot tell the mount of {}: {e}", c.name.to_string_lossy()));
            return;
        }
    }
    report.steps.push(Action::Remove { path: dir.join(&c.name), reason });
    if dry_run {
        report.counts.deleted_files += 1;
        report.counts.freed_bytes += c.size;
        return;
    }
    match dir.unlink(&c.name) {
        Ok(()) => {
            report.counts.deleted_files += 1;
            report.counts.freed_bytes += c.size;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("cannot remove {}: {e}", c.name.to_string_lossy())),
    }
}

fn summary(
    label: String,
    seen: usize,
    before: Counts,
    report: &FilesReport,
    problems: Vec<String>,
    dry_run: bool,
) -> Check {
    let deleted = report.counts.deleted_files - before.deleted_files;
    let freed = report.counts.freed_bytes - before.freed_bytes;
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut text = format!("{verb} {deleted} of {seen} file(s), {} freed", kyb_core::human_bytes(freed));
    let status = if problems.is_empty() { Status::Ok } else { Status::Warn };
    for p in problems {
        text.push_str("; ");
        text.push_str(&p);
    }
    Check::new(label, status, text)
}

#[cfg(test)]
mod tests {
    use super::{is_report_name, report_temp_writer};

    #[test]
    fn report_temp_names_carry_their_writer() {
        assert_eq!(report_temp_writer(b".logrotate-report-20261126-020000.txt.4242.0.tmp"), Some(4242));
        assert_eq!(report_temp_writer(b".daily-report-20261126-020000-1.json.7.12.tmp"), Some(7));
        for bad in [
            &b".notes.txt.4242.0.tmp"[..],
            b"logrotate-report-20261126-020000.txt.4242.0.tmp",
            b".logrotate-report-20261126-020000.txt.x.0.tmp",
            b".logrotate-report-20261126-020000.txt.4242.tmp",
            b".logrotate-report-20261126-020000.txt.4242.0.tmp.bak",
        ] {
            assert_eq!(report_temp_writer(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn report_names_are_strict() {
        for ok in [
            "daily-report-20261126-020000.txt",
            "weekly-report-20261126-020000-2.json",
            "app-metrics-20261126-020000.prom",
        ] {
            assert!(is_report_name(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "daily-report-20261126-020000.txt.bak",
            "daily-report-2026112-020000.txt",
            "notes.txt",
            "app-metrics-20261126-020000.txt",
            "hourly-report-20261126-020000.txt",
            "daily-report-20261126-020000-x.txt",
        ] {
            assert!(!is_report_name(bad.as_bytes()), "{bad}");
        }
    }
}
