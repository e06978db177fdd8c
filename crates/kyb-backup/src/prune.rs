//! `prune`: retention by count and age that can never leave too few good backups.
//!
//! Every backup is verified first. Only good ones (every check but age passes) count towards the
//! minimum kept, and the newest good backup is never deleted. A backup that does not verify is
//! deleted only when it is surely bad (Crit), past the age limit, and a newer good backup
//! exists: one newer than that may still be being written, or be the evidence of what went
//! wrong, and one that could not be checked (Unknown) is not known to be bad.
//!
//! A directory a live backup run is writing is left alone. Partial files that no live run is
//! writing (a run killed mid-dump left them) are removed first, with their directory when
//! nothing else is in it.

use crate::BackupError;
use crate::partial;
use crate::pgbin::pg_bindir;
use crate::plural;
use crate::verify::{VerifyConfig, Which, stamp_of, verify};
use kyb_core::dir::DirHandle;
use kyb_core::{Check, Findings, RunCtx, Status};
use rustix::fs::FileType;
use std::ffi::OsString;
use std::path::PathBuf;
use time::OffsetDateTime;

/// How many backups to keep, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneConfig {
    /// The backup root (`<backup_dir>/full/backup_*`).
    pub backup_dir: PathBuf,
    /// This many of the newest good backups are always kept, however old (at least 1).
    pub keep_min: usize,
    /// Good backups beyond the newest `keep_last` are deleted (`None`: no count limit).
    pub keep_last: Option<usize>,
    /// Backups older than this many days are deleted (`None`: no age limit).
    pub max_age_days: Option<u64>,
    /// Where pg_restore lives, for verification.
    pub pg_bindir: Option<PathBuf>,
    /// Deadline for verifying each backup.
    pub timeout_ms: u64,
}

/// One backup and what prune decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The backup's directory.
    pub dir: PathBuf,
    /// It verified.
    pub good: bool,
    /// It is (or, in a dry run, would be) deleted.
    pub delete: bool,
    /// Why.
    pub reason: String,
}

/// What [`prune`] found and did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PruneReport {
    /// Every backup, newest first.
    pub decisions: Vec<Decision>,
    /// `retention` (the plan's outcome), `partials` (partial files of killed runs removed),
    /// `in progress` (directories a live run is writing, left alone), `unverified`, and one
    /// `delete <dir>` check per failed deletion. The actions are the decisions, one line each:
    /// `keep <dir> (<reason>)`, `delete <dir> (<reason>)`, in a dry run `would delete ...`.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(PruneReport);

/// Verifies every backup, decides which to keep, and deletes the rest (in a dry run, nothing).
/// Ages are judged at `ctx.now`. A cancel (`ctx.cancel`) stops it while it verifies, before it
/// deletes any backup: [`BackupError::Cancelled`].
pub async fn prune(cfg: &PruneConfig, ctx: &RunCtx) -> Result<PruneReport, BackupError> {
    let (now, dry_run) = (ctx.now, ctx.dry_run);
    let bindir = pg_bindir(cfg.pg_bindir.as_deref()).ok_or(BackupError::NoPgBinaries)?;
    let full = cfg.backup_dir.join("full");
    let mut backups: Vec<(OffsetDateTime, OsString)> = match DirHandle::open(&full) {
        Ok(d) => d
            .entries()
            .map_err(|source| BackupError::Write { path: full.clone(), source })?
            .into_iter()
            .flatten()
            .filter(|(_, kind)| *kind == FileType::Directory)
            .filter_map(|(name, _)| Some((stamp_of(name.as_encoded_bytes())?, name)))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(BackupError::Write { path: full, source }),
    };
    backups.sort_by(|a, b| b.cmp(a));
    let mut early = Vec::new();
    // Leftovers of killed runs are not backups: swept, and not judged as ones.
    let stale = partial::stale(&full);
    early.extend(partial::sweep(&stale, dry_run));
    backups.retain(|(_, name)| !stale.iter().any(|l| l.dir == full.join(name)));
    let live: Vec<OsString> = match DirHandle::open(&full) {
        Ok(root) => backups.iter().map(|(_, n)| n).filter(|n| partial::is_live(&root, n)).cloned().collect(),
        Err(_) => Vec::new(),
    };
    if !live.is_empty() {
        backups.retain(|(_, name)| !live.contains(name));
        let names: Vec<String> = live.iter().map(|n| n.to_string_lossy().into_owned()).collect();
        early.push(Check::new(
            "in progress",
            Status::Ok,
            format!("left alone, a backup run is writing {}", names.join(", ")),
        ));
    }

    let keep_min = cfg.keep_min.max(1);
    let mut decisions = Vec::new();
    let mut good_seen = 0usize;
    for (stamp, name) in &backups {
        let dir = full.join(name);
        let vcfg = VerifyConfig {
            backup_dir: cfg.backup_dir.clone(),
            which: Which::Dir(dir.clone()),
            max_age_hours: u64::MAX / 2,
            pg_bindir: Some(bindir.clone()),
            timeout_ms: cfg.timeout_ms,
        };
        // A backup that cannot be verified in time is kept, not fatal: one slow backup must
        // not stop retention for all the others.
        let verified = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => return Err(BackupError::Cancelled),
            verified = verify(&vcfg, ctx) => verified,
        };
        let checks = match verified {
            Ok(r) => r.findings.checks,
            Err(e) => vec![Check::new("verify", Status::Unknown, kyb_core::error_chain(&e))],
        };
        let failed: Vec<&Check> = checks.iter().filter(|c| c.status != Status::Ok).collect();
        let good = failed.is_empty();
        let age_days = (now - *stamp).whole_days();
        let too_old = cfg.max_age_days.is_some_and(|max| age_days > max as i64);
        let (delete, reason) = if good {
            good_seen += 1;
            let beyond_count = cfg.keep_last.is_some_and(|n| good_seen > n);
            if good_seen <= keep_min {
                (false, format!("good; one of the {keep_min} newest good backups, always kept"))
            } else if too_old {
                (true, format!("good, but {} old", plural(age_days, "day")))
            } else if beyond_count {
                (true, format!("good, but beyond the newest {}", cfg.keep_last.unwrap_or_default()))
            } else {
                (false, "good; within retention".to_owned())
            }
        } else {
            let why =
                failed.iter().map(|c| format!("{}: {}", c.name, c.summary)).collect::<Vec<_>>().join("; ");
            // Deleted only when surely bad (Crit, not Unknown), superseded by a good one and past
            // the age limit: a backup from another tool, or one that could not be checked this
            // time, stays until a person looks.
            let surely_bad = failed.iter().all(|c| c.status == Status::Crit);
            if good_seen == 0 {
                (false, format!("does not verify ({why}); kept: no newer good backup exists"))
            } else if surely_bad && too_old {
                (
                    true,
                    format!(
                        "does not verify ({why}); {} old and a newer good backup exists",
                        plural(age_days, "day")
                    ),
                )
            } else {
                (false, format!("does not verify ({why}); kept until it is past the age limit"))
            }
        };
        decisions.push(Decision { dir, good, delete, reason });
    }

    let mut checks = Vec::new();
    let deleting = decisions.iter().filter(|d| d.delete).count();
    let kept_good = decisions.iter().filter(|d| d.good && !d.delete).count();
    if !dry_run {
        for d in decisions.iter().filter(|d| d.delete) {
            if let Err(e) = remove_backup(&full, d) {
                checks.push(Check::new(
                    format!("delete {}", d.dir.display()),
                    Status::Warn,
                    format!("cannot delete: {e}"),
                ));
            }
        }
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    let status = if kept_good == 0 { Status::Crit } else { Status::Ok };
    let summary = if kept_good == 0 {
        format!("no good backup at all among {}; nothing deleted that could be one", backups.len())
    } else {
        format!("{}, {kept_good} good kept, {verb} {deleting}", plural(backups.len(), "backup"))
    };
    checks.insert(0, Check::new("retention", status, summary));
    checks.splice(1..1, early);
    let bad_kept = decisions.iter().filter(|d| !d.good && !d.delete).count();
    if bad_kept > 0 && kept_good > 0 {
        checks.push(Check::new(
            "unverified",
            Status::Warn,
            format!(
                "{} not verify and {} kept for now; see the decisions",
                crate::counted(bad_kept, "backup does", "backups do"),
                if bad_kept == 1 { "is" } else { "are" }
            ),
        ));
    }
    let mut findings = Findings::from_checks(checks);
    let delete = if dry_run { "would delete" } else { "delete" };
    findings.actions = decisions
        .iter()
        .map(|d| format!("{} {} ({})", if d.delete { delete } else { "keep" }, d.dir.display(), d.reason))
        .collect();
    Ok(PruneReport { decisions, findings })
}

/// Removes one backup directory: the plain files in it, then the directory. Links are removed,
/// never followed; a subdirectory (which create never makes) stops the removal.
fn remove_backup(full: &std::path::Path, d: &Decision) -> std::io::Result<()> {
    let parent = DirHandle::open(full)?;
    let name = d.dir.file_name().ok_or_else(|| std::io::Error::other("no directory name"))?;
    // A backup directory that is a mount point, or holds one (a bind-mounted file included), is
    // not one kyb-backup made: nothing in it is removed.
    let dir = parent.open_child_same_mount(name)?;
    let mut files = Vec::new();
    for entry in dir.entries()? {
        let (child, kind) = entry?;
        if kind == FileType::Directory {
            return Err(std::io::Error::other(format!(
                "{} holds a directory {child:?}; not a backup made by kyb-backup",
                d.dir.display()
            )));
        }
        if dir.is_mount_point(&child)? {
            return Err(std::io::Error::other(format!(
                "{} holds a mount point {child:?}; not a backup made by kyb-backup",
                d.dir.display()
            )));
        }
        files.push(child);
    }
    for child in files {
        dir.unlink(&child)?;
    }
    parent.rmdir(name)
}
