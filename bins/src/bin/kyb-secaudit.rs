//! `kyb-secaudit`: the security audit, one part or all, with Nagios-style exit codes.

use kyb_bins::args::secaudit::*;
use kyb_bins::{cli, nagios};

use kyb_core::RunCtx;
use kyb_flows::FlowReport;
use kyb_flows::security::{Audit, audit};
use std::process::ExitCode;
use time::OffsetDateTime;

const BIN: &str = "kyb-secaudit";

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = match nagios::parse_args(BIN) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let mut cfg = match cli.common.start_plugin(BIN) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let now = OffsetDateTime::now_utc();
    let (audits, dry_run, emergency) = match cli.command {
        Command::Certs => (vec![Audit::Certificates], false, false),
        Command::Perms => (vec![Audit::Permissions], false, false),
        Command::Logs => (vec![Audit::SecurityLogs], false, false),
        Command::Updates { apply, emergency, dry_run } => {
            if let Some(updates) = &mut cfg.security.updates {
                updates.apply = apply;
            }
            (vec![Audit::OsUpdates], dry_run, emergency)
        }
        Command::Advisories => (vec![Audit::Advisories], false, false),
        Command::All => (Audit::ALL.to_vec(), false, false),
    };
    let ctx =
        RunCtx::new(now).with_dry_run(dry_run).with_emergency(emergency).with_window(cfg.window.state(now));
    let tasks = futures_util::future::join_all(audits.iter().map(|a| audit(*a, &cfg, &ctx))).await;
    let report = FlowReport::of("secaudit".to_owned(), tasks, now, dry_run);
    cli::finish_plugin(BIN, &report, cli.common.format(), cli.common.textfile)
}
