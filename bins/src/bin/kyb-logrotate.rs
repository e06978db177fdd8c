//! `kyb-logrotate`: log rotation, retention and temp cleanup, on their own schedule.

use kyb_bins::args::logrotate::*;
use kyb_bins::cli;

use kyb_flows::{RunOptions, Task, run_tasks};
use std::process::ExitCode;

const BIN: &str = "kyb-logrotate";

const TASKS: [Task; 3] = [Task::LogRotation, Task::Retention, Task::TempCleanup];

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, cfg) = match cli::start(BIN, |c: &Cli| &c.common) {
        Ok(started) => started,
        Err(code) => return code,
    };
    // `plan` is `run --dry-run`.
    let dry_run = cli.common.dry_run || matches!(cli.command, Command::Plan);
    match run_tasks("logrotate", &TASKS, &cfg, RunOptions { dry_run, ..RunOptions::default() }).await {
        Ok(report) => cli::finish(BIN, report, &cfg, cli.common.format(), cli.common.textfile).await,
        Err(e) => cli::fail(BIN, &e),
    }
}
