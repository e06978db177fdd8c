//! ANALYZE and VACUUM (ANALYZE), one table at a time.

use crate::DbMaintError;
use crate::session::{DbConfig, Session};
use kyb_core::{Check, Status, error_chain};
use std::time::Duration;

/// What an operation did, or (in a dry run) would do.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsReport {
    /// One check per table: Ok, Warn (lock or statement timeout: try again later) or Crit.
    pub checks: Vec<Check>,
    /// The statements run, or to run in a dry run, in order.
    pub statements: Vec<String>,
    /// Nothing was run.
    pub dry_run: bool,
}

/// `ANALYZE` each user table. `dry_run` lists the statements and runs none.
pub async fn analyze(cfg: &DbConfig, dry_run: bool) -> Result<OpsReport, DbMaintError> {
    per_table(cfg, dry_run, "ANALYZE").await
}

/// `VACUUM (ANALYZE)` each user table, each statement on its own (VACUUM cannot run in a
/// transaction block).
pub async fn vacuum_analyze(cfg: &DbConfig, dry_run: bool) -> Result<OpsReport, DbMaintError> {
    per_table(cfg, dry_run, "VACUUM (ANALYZE)").await
}

async fn per_table(cfg: &DbConfig, dry_run: bool, verb: &str) -> Result<OpsReport, DbMaintError> {
    let session = Session::open(cfg).await?;
    let client = &session.client;
    let step = Duration::from_millis(cfg.connect_timeout_ms);
    // The server quotes each name: no identifier is ever built from text by hand.
    let tables = tokio::time::timeout(
        step,
        client.query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm', 'p') AND c.relpersistence <> 't' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
             ORDER BY n.nspname, c.relname",
            &[],
        ),
    )
    .await
    .map_err(|_| DbMaintError::Timeout {
        what: "listing tables",
        target: session.target.clone(),
        timeout_ms: cfg.connect_timeout_ms,
    })?
    .map_err(|source| DbMaintError::Query { target: session.target.clone(), source })?;
    let mut report = OpsReport { checks: Vec::new(), statements: Vec::new(), dry_run };
    for row in tables {
        let table: String = row.get(0);
        let sql = format!("{verb} {table}");
        report.statements.push(sql.clone());
        if dry_run {
            continue;
        }
        // The statement's own statement_timeout ends it; this is the backstop if the
        // connection itself stalls.
        let backstop = Duration::from_millis(cfg.statement_timeout_ms.saturating_add(cfg.connect_timeout_ms));
        let check = match tokio::time::timeout(backstop, client.batch_execute(&sql)).await {
            Ok(Ok(())) => Check::new(&table, Status::Ok, format!("{verb} done")),
            Ok(Err(e)) => {
                let transient = e.code().is_some_and(|c| {
                    *c == tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE
                        || *c == tokio_postgres::error::SqlState::QUERY_CANCELED
                });
                let status = if transient { Status::Warn } else { Status::Crit };
                Check::new(&table, status, format!("{verb} failed: {}", error_chain(&e)))
            }
            Err(_) => {
                report.checks.push(Check::new(
                    &table,
                    Status::Crit,
                    format!(
                        "{verb} did not return within {} ms; the connection is stuck",
                        backstop.as_millis()
                    ),
                ));
                break;
            }
        };
        report.checks.push(check);
    }
    if report.checks.is_empty() && !dry_run {
        report.checks.push(Check::new("tables", Status::Ok, "no user tables"));
    }
    Ok(report)
}
