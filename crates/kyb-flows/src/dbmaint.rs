//! The database maintenance operations and reports as task reports: shared by the flows and the
//! `kyb-dbmaint` binary.

use crate::backup::not_configured;
use crate::config::DbMaint;
use crate::window::Windows;
use kyb_core::{Check, Status, TaskReport, error_chain};
use kyb_dbmaint::{DbMaintError, OpsReport, ReportKind};
use std::time::Instant;
use time::OffsetDateTime;

/// Which operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `ANALYZE` per table.
    Analyze,
    /// `VACUUM (ANALYZE)` per table: heavy, so it keeps to the maintenance windows.
    VacuumAnalyze,
    /// `REINDEX ... CONCURRENTLY` of bloated indexes: heavy, so it keeps to the windows.
    Reindex,
}

impl Operation {
    fn heavy(self) -> bool {
        !matches!(self, Operation::Analyze)
    }
}

/// How an operation is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpOptions {
    /// List the statements; run none.
    pub dry_run: bool,
    /// Run heavy work outside the maintenance windows too.
    pub emergency: bool,
}

/// Runs `op` (in a dry run, lists its statements): one check per table or index, every
/// statement an action line. Heavy operations outside the maintenance windows are not run
/// (a Warn saying when the next window opens) unless `emergency` is set.
pub async fn operation(
    name: &str,
    cfg: Option<&DbMaint>,
    op: Operation,
    opts: OpOptions,
    windows: &Windows,
    now: OffsetDateTime,
) -> TaskReport {
    let clock = Instant::now();
    let Some(cfg) = cfg else {
        return not_configured(name, "database", "no [postgres] configured", clock);
    };
    let mut window_check = None;
    if op.heavy() && !windows.is_open(now) {
        let next =
            windows.next_open(now).map_or_else(String::new, |t| format!("; the next opens {}", stamp(t)));
        let outside = format!("outside the maintenance windows ({}){next}", windows.describe());
        if opts.emergency {
            window_check =
                Some(Check::new("window", Status::Ok, format!("{outside}; run anyway (--emergency)")));
        } else if opts.dry_run {
            window_check = Some(Check::new(
                "window",
                Status::Warn,
                format!("{outside}: a real run now would not run these (--emergency overrides)"),
            ));
        } else {
            let check =
                Check::new("window", Status::Warn, format!("not run: {outside}; --emergency runs it anyway"));
            return TaskReport::from_checks(name, vec![check], clock.elapsed());
        }
    }
    let result: Result<OpsReport, DbMaintError> = match op {
        Operation::Analyze => kyb_dbmaint::analyze(&cfg.db, opts.dry_run).await,
        Operation::VacuumAnalyze => kyb_dbmaint::vacuum_analyze(&cfg.db, opts.dry_run).await,
        Operation::Reindex => kyb_dbmaint::reindex(&cfg.db, &cfg.reports, opts.dry_run).await,
    };
    match result {
        Ok(r) => {
            let mut checks: Vec<Check> = window_check.into_iter().chain(r.checks).collect();
            if opts.dry_run {
                checks.push(Check::new(
                    "plan",
                    Status::Ok,
                    format!("would run {} statements", r.statements.len()),
                ));
            }
            let mut t = TaskReport::from_checks(name, checks, clock.elapsed());
            t.actions = r.statements;
            t
        }
        Err(e) => database_error(name, &e, clock),
    }
}

/// The database down or another run holding the lock: a Crit finding about the database,
/// rather than a task that could not run.
fn database_error(name: &str, e: &DbMaintError, clock: Instant) -> TaskReport {
    let mut t = TaskReport::from_checks(
        name,
        vec![Check::new("database", Status::Crit, error_chain(e))],
        clock.elapsed(),
    );
    t.summary = error_chain(e);
    t
}

/// The task name of a report in flows and run logs: `db-unused-indexes`.
pub fn report_task_name(which: ReportKind) -> &'static str {
    match which {
        ReportKind::UnusedIndexes => "db-unused-indexes",
        ReportKind::DuplicateIndexes => "db-duplicate-indexes",
        ReportKind::InvalidIndexes => "db-invalid-indexes",
        ReportKind::Bloat => "db-bloat",
        ReportKind::TableSizes => "db-table-sizes",
        ReportKind::VacuumState => "db-vacuum-state",
        ReportKind::Wraparound => "db-wraparound",
        ReportKind::Sequences => "db-sequences",
        ReportKind::Connections => "db-connections",
        ReportKind::LongQueries => "db-long-queries",
        ReportKind::CacheHit => "db-cache-hit",
        ReportKind::IndexRecommendations => "db-index-recommendations",
        ReportKind::TopActivity => "db-top-activity",
        ReportKind::SlowQueries => "db-slow-queries",
    }
}

/// Runs one read-only report.
pub async fn report(cfg: Option<&DbMaint>, which: ReportKind) -> TaskReport {
    let clock = Instant::now();
    let name = report_task_name(which);
    let Some(cfg) = cfg else {
        return not_configured(name, "database", "no [postgres] configured", clock);
    };
    match kyb_dbmaint::report(&cfg.db, &cfg.reports, which).await {
        Ok(r) => {
            let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
            t.notes = r.notes;
            t
        }
        Err(e) => database_error(name, &e, clock),
    }
}

/// Runs several read-only reports on one connection, a task each. A database that cannot be
/// reached is one task named `name` with one finding, not the same error once per report.
pub async fn reports(name: &str, cfg: Option<&DbMaint>, which: &[ReportKind]) -> Vec<TaskReport> {
    let clock = Instant::now();
    let Some(cfg) = cfg else {
        return vec![not_configured(name, "database", "no [postgres] configured", clock)];
    };
    match kyb_dbmaint::reports(&cfg.db, &cfg.reports, which).await {
        Ok(runs) => runs
            .into_iter()
            .map(|run| {
                let task = report_task_name(run.report);
                match run.result {
                    Ok(r) => {
                        let mut t = TaskReport::from_checks(task, r.checks, run.duration);
                        t.notes = r.notes;
                        t
                    }
                    Err(e) => {
                        let mut t = database_error(task, &e, clock);
                        t.duration_ms = kyb_core::duration_ms(run.duration);
                        t
                    }
                }
            })
            .collect(),
        Err(e) => vec![database_error(name, &e, clock)],
    }
}

/// Records the database size and forecasts when the data disk fills.
pub async fn capacity(name: &str, cfg: Option<&DbMaint>, now: OffsetDateTime, dry_run: bool) -> TaskReport {
    let clock = Instant::now();
    let Some(cfg) = cfg else {
        return not_configured(name, "database", "no [postgres] configured", clock);
    };
    match kyb_dbmaint::capacity(&cfg.db, &cfg.capacity, now, dry_run).await {
        Ok(r) => {
            let mut t = TaskReport::from_checks(name, r.checks, clock.elapsed());
            if dry_run {
                t.actions.push("would record the size in kyb_maint.db_size_history".to_owned());
                if let Some(csv) = &cfg.capacity.trend_csv {
                    t.actions.push(format!("would append a line to {}", csv.display()));
                }
            } else {
                t.artifacts = r.artifacts;
            }
            t
        }
        Err(e) => database_error(name, &e, clock),
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_default()
}
