//! `kyb-health`: one health check, Nagios plugin style.

use kyb_bins::args::health::*;
use kyb_bins::nagios;

use kyb_core::{Check, Status};
use kyb_flows::config;
use std::io::Write;
use std::process::ExitCode;

const BIN: &str = "kyb-health";

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
