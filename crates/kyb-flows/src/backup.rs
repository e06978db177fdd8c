//! The backup tasks as task reports: shared by the flows and the `kyb-backup` binary.

use crate::config::Backup;
use kyb_backup::{ArchiveConfig, DrillConfig, Progress, PruneConfig, VerifyConfig};
use kyb_core::{Check, Metric, Status, TaskReport, Unit, error_chain};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;

/// A task the config leaves out: Ok, saying why.
/// [`TaskReport::not_configured`], timed from `clock`.
pub(crate) fn not_configured(name: &str, check: &str, why: &str, clock: Instant) -> TaskReport {
    TaskReport::not_configured(name, check, why, clock.elapsed())
}

/// `backup-create`: a new database backup, or in a dry run the plan.
/// `cancel` (Ctrl-C, SIGTERM) stops it; what was written is removed before this returns.
pub async fn create(
    name: &str,
    backup: Option<&Backup>,
    dry_run: bool,
    now: OffsetDateTime,
    progress: &Arc<Progress>,
    cancel: impl Future<Output = ()>,
) -> TaskReport {
    let clock = Instant::now();
    let Some(cfg) = backup.and_then(|b| b.create.as_ref()) else {
        return not_configured(name, "backup", "no [paths] backup_dir and [postgres] configured", clock);
    };
    if dry_run {
        let plan = format!(
            "would dump {}/{} with pg_dump ({}, gzip level {}) into {}/full/backup_<time>/",
            cfg.postgres.host,
            cfg.postgres.dbname,
            cfg.format.as_str(),
            cfg.compression_level,
            cfg.backup_dir.display()
        );
        let mut t =
            TaskReport::from_checks(name, vec![Check::new("backup", Status::Ok, &plan)], clock.elapsed());
        t.actions.push(plan);
        return t;
    }
    let made = tokio::select! {
        made = kyb_backup::create_with_progress(cfg, now, progress) => made,
        () = cancel => {
            let why = "cancelled; pg_dump stopped and the partial backup removed";
            return TaskReport::failed(name, why.to_owned(), clock.elapsed());
        }
    };
    match made {
        Ok(r) => {
            let m = &r.metadata;
            let check = Check::new(
                "backup",
                Status::Ok,
                format!(
                    "{} dump of {}: {} ({} before compression) in {} ms",
                    m.format,
                    m.database,
                    kyb_core::human_bytes(m.size_bytes),
                    kyb_core::human_bytes(m.dump_bytes),
                    m.duration_ms
                ),
            )
            .with_metric(Metric::new("backup_size", m.size_bytes as f64, Unit::Bytes))
            .with_metric(Metric::new(
                "backup_duration",
                m.duration_ms as f64 / 1000.0,
                Unit::Seconds,
            ));
            // Then what was swept on the way: partial files of killed runs.
            let checks = std::iter::once(check).chain(r.checks.iter().cloned()).collect();
            let mut t = TaskReport::from_checks(name, checks, clock.elapsed());
            t.artifacts.push(r.dir.join(&m.backup_file));
            t.artifacts.push(r.dir.join("backup_metadata.json"));
            t
        }
        Err(e) => TaskReport::failed(name, error_chain(&e), clock.elapsed()),
    }
}

/// `backup-verify`: one check per property of the backup.
pub async fn verify(name: &str, cfg: Option<&VerifyConfig>, now: OffsetDateTime) -> TaskReport {
    let clock = Instant::now();
    let Some(cfg) = cfg else {
        return not_configured(name, "backup", "no [paths] backup_dir configured", clock);
    };
    match kyb_backup::verify(cfg, now).await {
        Ok(r) => TaskReport::from_checks(name, r.checks, clock.elapsed()),
        Err(e) => TaskReport::failed(name, error_chain(&e), clock.elapsed()),
    }
}

/// `backup-prune`: retention; every decision is an action line. `cancel` stops it between
/// backups (a deletion under way is finished first).
pub async fn prune(
    name: &str,
    cfg: Option<&PruneConfig>,
    now: OffsetDateTime,
    cancel: impl Future<Output = ()>,
) -> TaskReport {
    let clock = Instant::now();
    let Some(cfg) = cfg else {
        return not_configured(name, "retention", "no [paths] backup_dir configured", clock);
    };
    let pruned = tokio::select! {
        pruned = kyb_backup::prune(cfg, now) => pruned,
        () = cancel => return TaskReport::failed(name, "cancelled".to_owned(), clock.elapsed()),
    };
    match pruned {
        Ok(r) => {
            let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
            let verb = if cfg.dry_run { "would delete" } else { "delete" };
            t.actions = r
                .decisions
                .iter()
                .map(|d| {
                    format!("{} {} ({})", if d.delete { verb } else { "keep" }, d.dir.display(), d.reason)
                })
                .collect();
            t
        }
        Err(e) => TaskReport::failed(name, error_chain(&e), clock.elapsed()),
    }
}

/// `backup-archive`: the configuration directories as tar.gz files with a manifest.
pub async fn archive(
    name: &str,
    cfg: Option<&ArchiveConfig>,
    dry_run: bool,
    now: OffsetDateTime,
) -> TaskReport {
    let clock = Instant::now();
    let Some(cfg) = cfg else {
        return not_configured(name, "archive", "no [[backup.archive]] configured", clock);
    };
    if dry_run {
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
            if actions.len() == 1 { "1 archive".to_owned() } else { format!("{} archives", actions.len()) },
            cfg.backup_dir.display()
        );
        let mut t =
            TaskReport::from_checks(name, vec![Check::new("archive", Status::Ok, summary)], clock.elapsed());
        t.actions = actions;
        return t;
    }
    match kyb_backup::archive(cfg, now).await {
        Ok(r) => {
            let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
            t.artifacts.extend(r.manifest.archives.iter().map(|a| r.dir.join(&a.file)));
            t.artifacts.push(r.dir.join("manifest.json"));
            t
        }
        Err(e) => TaskReport::failed(name, error_chain(&e), clock.elapsed()),
    }
}

/// `restore-drill`: restore the latest backup into a scratch database, until `cancel`.
pub async fn drill(
    name: &str,
    cfg: Option<&DrillConfig>,
    dry_run: bool,
    now: OffsetDateTime,
    cancel: impl Future<Output = ()>,
) -> TaskReport {
    let clock = Instant::now();
    let Some(cfg) = cfg else {
        return not_configured(name, "drill", "no [paths] backup_dir and [postgres] configured", clock);
    };
    if dry_run {
        let plan = format!(
            "would restore the latest backup in {} into a scratch database kyb_dr_<time> on {}:{}, then drop it",
            cfg.backup_dir.display(),
            cfg.postgres.host,
            cfg.postgres.port
        );
        let mut t =
            TaskReport::from_checks(name, vec![Check::new("drill", Status::Ok, &plan)], clock.elapsed());
        t.actions.push(plan);
        return t;
    }
    match kyb_backup::restore_drill_until(cfg, now, cancel).await {
        Ok(r) => {
            let rto = r.restore_ms;
            let mut checks = r.checks;
            if let Some(c) = checks.iter_mut().find(|c| c.name == "restore" && c.status == Status::Ok) {
                c.metrics.push(Metric::new("restore_time", rto as f64 / 1000.0, Unit::Seconds));
            }
            let mut t = TaskReport::from_checks(name, checks, clock.elapsed());
            if t.status == Status::Ok {
                t.summary =
                    format!("restored {} in {rto} ms (the measured recovery time)", display(&r.backup));
            }
            t
        }
        Err(e) => TaskReport::failed(name, error_chain(&e), clock.elapsed()),
    }
}

fn display(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref().map_or_else(|| "?".to_owned(), |p| p.display().to_string())
}
