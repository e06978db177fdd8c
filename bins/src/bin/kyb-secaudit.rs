//! `kyb-secaudit`: the security audit, one part or all, with Nagios-style exit codes.

use kyb_bins::args::secaudit::*;
use kyb_bins::nagios;

use kyb_core::Check;
use kyb_flows::security::{Audit, audit};
use kyb_flows::{FlowReport, render_text};
use std::io::Write;
use std::process::ExitCode;
use time::OffsetDateTime;

const BIN: &str = "kyb-secaudit";

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
