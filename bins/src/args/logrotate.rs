//! `kyb-logrotate`'s arguments.

use crate::cli;
use clap::{Parser, Subcommand};

/// Rotates and compresses the logs of the config's `[[logs]]` sections, removes rotated logs
/// and reports past retention, and cleans idle `kyb-*` entries out of the temp directory: the
/// same tasks as in `kyb-maint daily`, for a schedule of their own.
///
/// Exit codes: 0 every task Ok or Warn; 1 a task Crit or Unknown; 2 could not start (bad config,
/// another kyb-maint or kyb-logrotate run holds the lock).
#[derive(Debug, Parser)]
#[command(name = "kyb-logrotate", version = crate::VERSION, after_help = "Examples:\n  kyb-logrotate plan\n  kyb-logrotate run --textfile /var/lib/node_exporter/textfile/kyb-logrotate.prom")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub common: cli::Common,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rotate, compress, prune and clean, under the run lock.
    Run,
    /// Print the exact steps `run` would take, and change nothing.
    Plan,
}
