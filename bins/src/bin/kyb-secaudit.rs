//! `kyb-secaudit`: the security audit, one part or all, with Nagios-style exit codes.

use kyb_bins::args::secaudit::*;
use kyb_bins::{cli, nagios};

use kyb_flows::FlowReport;
use kyb_flows::security::{Audit, audit};
use std::process::ExitCode;

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
    let (audits, emergency) = match cli.command {
        Command::Certs => (vec![Audit::Certificates], false),
        Command::Perms => (vec![Audit::Permissions], false),
        Command::Logs => (vec![Audit::SecurityLogs], false),
        Command::Updates { apply, emergency } => {
            if let Some(updates) = &mut cfg.security.updates {
                updates.apply = apply;
            }
            (vec![Audit::OsUpdates], emergency)
        }
        Command::Advisories => (vec![Audit::Advisories], false),
        Command::All => (Audit::ALL.to_vec(), false),
    };
    let ctx = cli.common.ctx(&cfg, emergency);
    let tasks = futures_util::future::join_all(audits.iter().map(|a| audit(*a, &cfg, &ctx))).await;
    let report = FlowReport::of("secaudit".to_owned(), tasks, ctx.now, ctx.dry_run);
    cli::finish_plugin(BIN, report, &cfg, cli.common.format(), cli.common.textfile).await
}
