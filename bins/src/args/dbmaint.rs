//! `kyb-dbmaint`'s arguments.

use crate::cli;
use clap::{Parser, Subcommand};

/// Maintains and reports on the config's `[postgres]` database.
///
/// Operations run with guard rails: one table or index at a time, each statement on its own
/// with `lock_timeout` and `statement_timeout` (`[dbmaint]`), names quoted by the server, all
/// under an advisory lock so two runs never overlap (the second waits up to `lock_wait_ms`,
/// then fails). A table that cannot be locked in time is a Warn and the run goes on. VACUUM and
/// REINDEX run only inside the maintenance windows (`[window]`, by default Sun 02:00-06:00 and
/// Wed 02:00-04:00 UTC) unless `--emergency` is given.
///
/// Reports are read only and take no lock. Each row has a status against the `[dbmaint]`
/// thresholds (PgHero's and check_postgres's by default).
///
/// Exit codes: 0 Ok or Warn; 1 Crit or Unknown (a finding over its crit threshold, a table
/// that failed, the database down, another run holding the lock); 2 could not start (bad
/// config, no `[postgres]`).
#[derive(Debug, Parser)]
#[command(name = "kyb-dbmaint", version = crate::VERSION, after_help = "Examples:\n  kyb-dbmaint reports\n  kyb-dbmaint vacuum --dry-run\n  kyb-dbmaint cache-hit --format json")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub common: cli::Common,
}

#[derive(Debug, clap::Args)]
pub struct Heavy {
    /// Run even outside the maintenance windows.
    #[arg(long)]
    pub emergency: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// `ANALYZE` each user table.
    ///
    /// With --dry-run: the statements, running none.
    Analyze,
    /// `VACUUM (ANALYZE)` each user table (inside a maintenance window).
    ///
    /// With --dry-run: the statements, running none.
    Vacuum(Heavy),
    /// `REINDEX INDEX CONCURRENTLY` each B-tree index whose estimated bloat reaches `[dbmaint]
    /// bloat_bytes` warn and `bloat_min_pct` (inside a maintenance window).
    ///
    /// With --dry-run: the statements, running none.
    Reindex(Heavy),
    /// Record the database size in `kyb_maint.db_size_history` and the trend CSV; report the growth
    /// rate and the day the data disk fills at that rate.
    ///
    /// With --dry-run: measure and forecast, recording nothing.
    Capacity,
    /// Every report below, one after another on one connection (a database that cannot be
    /// reached is one finding).
    Reports,
    #[command(flatten)]
    Report(kyb_dbmaint::ReportKind),
}
