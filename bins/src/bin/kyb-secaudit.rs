//! `kyb-secaudit`: the security audit, one part or all, with Nagios-style exit codes.

use kyb_bins::nagios;

use clap::{Parser, Subcommand, ValueEnum};
use kyb_core::Check;
use kyb_flows::security::{Audit, audit};
use kyb_flows::{FlowReport, render_text};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use time::OffsetDateTime;

const BIN: &str = "kyb-secaudit";

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
#[command(name = "kyb-secaudit", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Config file (TOML), the same file kyb-maint reads.
    #[arg(
        long,
        short,
        global = true,
        env = "KYB_MAINT_CONFIG",
        default_value = "/etc/kyb-maint/kyb-maint.toml"
    )]
    config: PathBuf,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A report for people.
    Text,
    /// One JSON document.
    Json,
    /// `STATUS - summary | perfdata`, then one line per finding.
    Nagios,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Certificate expiry of files and live endpoints.
    Certs,
    /// The permission audit.
    Perms,
    /// The security log scan.
    Logs,
    /// Pending OS security updates.
    Updates {
        /// Install them (inside a maintenance window, or with --emergency).
        #[arg(long)]
        apply: bool,
        /// With --apply: also outside the maintenance windows.
        #[arg(long)]
        emergency: bool,
        /// With --apply: show the install command; install nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Dependency advisories.
    Advisories,
    /// Every part.
    All,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = match nagios::parse_args(BIN) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let mut cfg = match kyb_flows::config::load(&cli.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            let why = kyb_core::error_chain(&e);
            let _ = writeln!(std::io::stderr(), "{BIN}: error: {why}");
            return nagios::unknown(BIN, &format!("config: {why}"), None);
        }
    };
    let now = OffsetDateTime::now_utc();
    let (audits, dry_run, emergency) = match cli.command {
        Command::Certs => (vec![Audit::Certificates], false, false),
        Command::Perms => (vec![Audit::Permissions], false, false),
        Command::Logs => (vec![Audit::SecurityLogs], false, false),
        Command::Updates { apply, emergency, dry_run } => {
            cfg.security.updates.apply = apply;
            (vec![Audit::OsUpdates], dry_run, emergency)
        }
        Command::Advisories => (vec![Audit::Advisories], false, false),
        Command::All => (Audit::ALL.to_vec(), false, false),
    };
    let tasks =
        futures_util::future::join_all(audits.iter().map(|a| audit(*a, &cfg, now, dry_run, emergency))).await;
    let report = FlowReport::of("secaudit".to_owned(), tasks, now, dry_run);
    let out = match cli.format {
        Format::Text => render_text(&report),
        Format::Json => serde_json::to_string_pretty(&report).expect("reports serialize") + "\n",
        Format::Nagios => {
            let checks: Vec<Check> = report
                .tasks
                .iter()
                .flat_map(|t| {
                    let many = report.tasks.len() > 1;
                    t.checks.iter().map(move |c| {
                        let name = if many { format!("{} {}", t.name, c.name) } else { c.name.clone() };
                        Check { name, ..c.clone() }
                    })
                })
                .collect();
            nagios::nagios(BIN, report.status, &checks)
        }
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::from(report.status.nagios_code())
}
