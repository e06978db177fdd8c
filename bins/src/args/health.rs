//! `kyb-health`'s arguments.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// Runs one health check and prints it as a Nagios plugin does:
/// `KYB-HEALTH STATUS - summary | perfdata`, then one line per check.
///
/// Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (including a bad config or a check that
/// is not configured).
#[derive(Debug, Parser)]
#[command(name = "kyb-health", version = crate::VERSION, after_help = "Examples:\n  kyb-health app --config /etc/kyb-maint/kyb-maint.toml\n  kyb-health all --format json")]
pub struct Cli {
    /// What to check.
    #[arg(value_enum)]
    pub check: CheckArg,
    /// Config file (TOML), the same file kyb-maint reads.
    #[arg(long, short, env = "KYB_MAINT_CONFIG", default_value = "/etc/kyb-maint/kyb-maint.toml")]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Nagios)]
    pub format: Format,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `KYB-HEALTH OK - ... | perfdata`.
    Nagios,
    /// `{"status": ..., "checks": [...]}`.
    Json,
}
