//! `kyb-logrotate`: log rotation, retention and temp cleanup, on their own schedule.

use kyb_bins::cli;

use clap::{Parser, Subcommand};
use kyb_flows::{RunOptions, Task, run_tasks};
use std::process::ExitCode;

const BIN: &str = "kyb-logrotate";

/// Rotates and compresses the logs of the config's `[[logs]]` sections, removes rotated logs
/// and reports past retention, and cleans idle `kyb-*` entries out of the temp directory: the
/// same tasks as in `kyb-maint daily`, for a schedule of their own.
///
/// Exit codes: 0 every task Ok or Warn; 1 a task Crit or Unknown; 2 could not start (bad config,
/// another kyb-maint or kyb-logrotate run holds the lock).
#[derive(Debug, Parser)]
#[command(name = "kyb-logrotate", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: cli::Common,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rotate, compress, prune and clean, under the run lock.
    Run,
    /// Print the exact steps `run` would take, and change nothing.
    Plan,
}

const TASKS: [Task; 3] = [Task::LogRotation, Task::Retention, Task::TempCleanup];

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match cli.common.start(BIN) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let dry_run = matches!(cli.command, Command::Plan);
    match run_tasks("logrotate", &TASKS, &cfg, RunOptions { dry_run, ..RunOptions::default() }).await {
        Ok(report) => cli::finish(BIN, &report, cli.common.format, cli.common.textfile),
        Err(e) => cli::fail(BIN, &e),
    }
}
