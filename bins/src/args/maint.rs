//! `kyb-maint`'s arguments.

use crate::cli;
use clap::{Parser, Subcommand, ValueEnum};

/// Runs the KYB platform's maintenance flows.
///
/// Exit codes: 0 every task Ok or Warn; 1 a task Crit or Unknown; 2 the flow could not start
/// (bad config, another run holds the lock).
#[derive(Debug, Parser)]
#[command(name = "kyb-maint", version = crate::VERSION, after_help = "Examples:\n  kyb-maint daily --config /etc/kyb-maint/kyb-maint.toml\n  kyb-maint weekly --dry-run --format json\n  kyb-maint monthly --textfile /var/lib/node_exporter/textfile/kyb-maint-monthly.prom\n  kyb-maint completions bash > /etc/bash_completion.d/kyb-maint")]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    /// The flow to run.
    #[arg(value_enum, required = true)]
    pub flow: Option<FlowArg>,
    /// Instead of a flow: print a shell completion script.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Run heavy work (VACUUM, restarts of the monitoring stack) even outside the maintenance
    /// windows.
    #[arg(long)]
    pub emergency: bool,
    #[command(flatten)]
    pub common: cli::Common,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FlowArg {
    /// Health probes, system metrics, metrics snapshot, today's backup, log rotation, retention,
    /// temp cleanup.
    Daily,
    /// App performance (response times, p50/p95/p99 per endpoint, volume, 5xx rate); ML models;
    /// Prometheus, Grafana, Alertmanager; ANALYZE; unused, duplicate and invalid indexes; table
    /// sizes, bloat, vacuum state, top table activity; transaction-ID wraparound; sequences.
    Weekly,
    /// Database backup, config archive, restore drill, backup retention; slow queries, index
    /// recommendations, cache hit ratio; VACUUM (ANALYZE) inside a maintenance window; database
    /// size history and disk-full forecast.
    Monthly,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the completion script of a kyb binary for a shell, e.g.
    /// `kyb-maint completions bash > /etc/bash_completion.d/kyb-maint`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        /// The binary to complete (kyb-maint, kyb-health, kyb-logrotate, kyb-backup, kyb-dbmaint,
        /// kyb-mlcheck, kyb-secaudit or kyb-update).
        #[arg(default_value = "kyb-maint")]
        binary: String,
    },
}
