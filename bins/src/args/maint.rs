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
    /// Instead of a flow: list the recorded runs, or print a shell completion script.
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
    /// List the runs recorded in the database's run history (`[history]`), newest first; with
    /// `--task`, that task's status and numbers in each run, e.g.
    /// `kyb-maint history --flow daily --task system --since 2026-11-01`.
    History {
        /// Only runs of this flow (daily, weekly, monthly, logrotate).
        #[arg(long)]
        flow: Option<String>,
        /// Show this task's result and numbers (the runs without it are left out).
        #[arg(long)]
        task: Option<String>,
        /// Only runs started on or after this day (YYYY-MM-DD, UTC) or instant (RFC 3339).
        #[arg(long, value_parser = parse_since)]
        since: Option<time::OffsetDateTime>,
        /// At most this many runs.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
    },
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

/// `--since`: a day (midnight UTC) or an RFC 3339 instant.
fn parse_since(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let day = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{text:?} is neither a day (2026-11-01) nor an RFC 3339 instant"))?;
    Ok(day.midnight().assume_utc())
}
