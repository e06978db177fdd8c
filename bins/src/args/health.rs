//! `kyb-health`'s arguments.

use clap::{Parser, ValueEnum};

/// Runs one health check and prints it as a Nagios plugin does:
/// `KYB-HEALTH STATUS - summary | perfdata`, then one line per check.
///
/// Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (including a bad config or a check that
/// is not configured).
#[derive(Debug, Parser)]
#[command(name = "kyb-health", version = crate::VERSION, after_help = "Examples:\n  kyb-health app --config /etc/kyb-maint/kyb-maint.toml\n  kyb-health all --format json\n  kyb-health system --format text --textfile /var/lib/node_exporter/textfile/kyb-health.prom")]
pub struct Cli {
    /// What to check.
    #[arg(value_enum)]
    pub check: CheckArg,
    #[command(flatten)]
    pub common: crate::cli::Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckArg {
    /// The app's health endpoint.
    App,
    /// PostgreSQL: SELECT 1.
    Postgres,
    /// Redis: PING.
    Redis,
    /// CPU, memory, disks, load.
    System,
    /// All of the above.
    All,
}
