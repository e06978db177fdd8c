//! `kyb-secaudit`'s arguments.

use clap::{Parser, Subcommand};

/// Audits the platform host (`[security]` in the config):
///
/// - certs: every certificate of the PEM files and directories and of the chains live endpoints
///   serve, by days to expiry (the full timestamp), plus whether each endpoint's chain verifies;
/// - perms: world-writable files and directories, wrong owners, setuid/setgid files, private
///   keys others can read (symlinks never followed, one filesystem, a time limit);
/// - logs: failed logins by user and address over the last hours, bursts, suspicious lines;
/// - updates: pending OS security updates from apt's simulation (`--apply` installs them, only
///   inside a maintenance window or with `--emergency`);
/// - advisories: the platform's Cargo.lock against a local RustSec database.
///
/// A source that cannot be read is Unknown, never Ok.
///
/// Exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also: bad config or arguments).
#[derive(Debug, Parser)]
#[command(name = "kyb-secaudit", version = crate::VERSION, after_help = "Examples:\n  kyb-secaudit certs --format nagios\n  kyb-secaudit updates --apply --dry-run\n  kyb-secaudit all --format json")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub common: crate::cli::Common,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Certificate expiry of files and live endpoints.
    Certs,
    /// The permission audit.
    Perms,
    /// The security log scan.
    Logs,
    /// Pending OS security updates.
    ///
    /// With --apply --dry-run: the install command, installing nothing.
    Updates {
        /// Install them (inside a maintenance window, or with --emergency).
        #[arg(long)]
        apply: bool,
        /// With --apply: also outside the maintenance windows.
        #[arg(long)]
        emergency: bool,
    },
    /// Dependency advisories.
    Advisories,
    /// Every part.
    All,
}
