//! The database maintenance operations as task reports: shared by the flows and the
//! `kyb-dbmaint` binary.

use crate::backup::not_configured;
use kyb_core::{Check, Status, TaskReport, error_chain};
use kyb_dbmaint::{DbConfig, DbMaintError, OpsReport};
use std::time::Instant;

/// Which per-table operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `ANALYZE`.
    Analyze,
    /// `VACUUM (ANALYZE)`.
    VacuumAnalyze,
}

/// Runs `op` over every user table (in a dry run, lists the statements): one check per table,
/// every statement an action line.
pub async fn operation(name: &str, cfg: Option<&DbConfig>, op: Operation, dry_run: bool) -> TaskReport {
    let clock = Instant::now();
    let Some(cfg) = cfg else {
        return not_configured(name, "database", "no [postgres] configured", clock);
    };
    let result: Result<OpsReport, DbMaintError> = match op {
        Operation::Analyze => kyb_dbmaint::analyze(cfg, dry_run).await,
        Operation::VacuumAnalyze => kyb_dbmaint::vacuum_analyze(cfg, dry_run).await,
    };
    match result {
        Ok(r) => {
            let mut checks = r.checks;
            if dry_run {
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
        // The database down or another run holding the lock: a finding about the database,
        // Crit, rather than a task that could not run.
        Err(e) => {
            let mut t = TaskReport::from_checks(
                name,
                vec![Check::new("database", Status::Crit, error_chain(&e))],
                clock.elapsed(),
            );
            t.summary = error_chain(&e);
            t
        }
    }
}
