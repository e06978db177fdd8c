//! `kyb-health`: one health check, Nagios plugin style.

use kyb_bins::nagios;

use clap::{Parser, ValueEnum};
use kyb_core::{Check, Status};
use kyb_flows::config;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const BIN: &str = "kyb-health";

/// Runs one health check and prints it as a Nagios plugin does:
/// `KYB-HEALTH STATUS - summary | perfdata`, then one line per check.
///
/// Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (including a bad config or a check that
/// is not configured).
#[derive(Debug, Parser)]
#[command(name = "kyb-health", version, about, long_about)]
struct Cli {
    /// What to check.
    #[arg(value_enum)]
    check: CheckArg,
    /// Config file (TOML), the same file kyb-maint reads.
    #[arg(long, short, env = "KYB_MAINT_CONFIG", default_value = "/etc/kyb-maint/kyb-maint.toml")]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Nagios)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckArg {
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
enum Format {
    /// `KYB-HEALTH OK - ... | perfdata`.
    Nagios,
    /// `{"status": ..., "checks": [...]}`.
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = match nagios::parse_args(BIN) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let checks = match config::load(&cli.config) {
        Ok(cfg) => run(cli.check, &cfg).await,
        Err(e) => vec![Check::new("config", Status::Unknown, kyb_core::error_chain(&e))],
    };
    let status = Status::worst(checks.iter().map(|c| c.status));
    let out = match cli.format {
        Format::Nagios => nagios::nagios(BIN, status, &checks),
        Format::Json => {
            serde_json::to_string_pretty(&serde_json::json!({ "status": status, "checks": checks }))
                .expect("checks serialize")
                + "\n"
        }
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    ExitCode::from(status.nagios_code())
}

async fn run(which: CheckArg, cfg: &config::Config) -> Vec<Check> {
    let missing = |what: &str| {
        Check::new(what, Status::Unknown, format!("no [{what}] section in {}", cfg.source.display()))
    };
    let system = || async {
        match kyb_health::system_metrics(&cfg.system).await {
            Ok(r) => r.checks,
            Err(e) => vec![Check::new("system", Status::Unknown, kyb_core::error_chain(&e))],
        }
    };
    match which {
        CheckArg::App => vec![match &cfg.health.app {
            Some(c) => kyb_health::check_app(c).await,
            None => missing("app"),
        }],
        CheckArg::Postgres => vec![match &cfg.health.postgres {
            Some(c) => kyb_health::check_postgres(c).await,
            None => missing("postgres"),
        }],
        CheckArg::Redis => vec![match &cfg.health.redis {
            Some(c) => kyb_health::check_redis(c).await,
            None => missing("redis"),
        }],
        CheckArg::System => system().await,
        CheckArg::All => {
            let (health, mut sys) = tokio::join!(kyb_health::check_all(&cfg.health), system());
            let mut checks = health.checks;
            checks.append(&mut sys);
            checks
        }
    }
}
