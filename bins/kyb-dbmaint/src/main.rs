//! `kyb-dbmaint`: maintenance of the `[postgres]` database, one operation at a time.

#[path = "../../common/cli.rs"]
mod cli;

use clap::{Parser, Subcommand};
use kyb_flows::FlowReport;
use kyb_flows::dbmaint::{Operation, operation};
use std::process::ExitCode;
use time::OffsetDateTime;

const BIN: &str = "kyb-dbmaint";

/// Maintains the config's `[postgres]` database with guard rails: one table at a time, each
/// statement on its own with `lock_timeout` and `statement_timeout` (`[dbmaint]`), names quoted
/// by the server, all under an advisory lock so that two runs never overlap (the second waits
/// up to `lock_wait_ms`, then fails). A table that cannot be locked in time is a Warn, and the
/// run goes on with the rest.
///
/// Exit codes: 0 Ok or Warn; 1 Crit or Unknown (a table failed, the database is down, another
/// run holds the lock); 2 could not start (bad config, no `[postgres]`).
#[derive(Debug, Parser)]
#[command(name = "kyb-dbmaint", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: cli::Common,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// `ANALYZE` each user table.
    Analyze {
        /// Print the statements; run none.
        #[arg(long)]
        dry_run: bool,
    },
    /// `VACUUM (ANALYZE)` each user table.
    Vacuum {
        /// Print the statements; run none.
        #[arg(long)]
        dry_run: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match cli.common.start(BIN) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let Some(db) = cfg.dbmaint.as_ref() else {
        return cli::lacks(
            BIN,
            &cli.common.config,
            "has no [postgres] section; there is no database to maintain",
        );
    };
    let now = OffsetDateTime::now_utc();
    let (name, op, dry_run) = match cli.command {
        Command::Analyze { dry_run } => ("db-analyze", Operation::Analyze, dry_run),
        Command::Vacuum { dry_run } => ("db-vacuum", Operation::VacuumAnalyze, dry_run),
    };
    let task = operation(name, Some(db), op, dry_run).await;
    cli::finish(BIN, &FlowReport::single(task, now, dry_run), cli.common.format, cli.common.textfile)
}
