//! `kyb-maint`: runs a maintenance flow and exits with a code monitoring understands.

use clap::{Parser, ValueEnum};
#[path = "../../common/cli.rs"]
mod cli;

use cli::Format;
use kyb_flows::{Flow, RunOptions, config, run_flow};
use std::path::PathBuf;
use std::process::ExitCode;

const BIN: &str = "kyb-maint";

/// Runs the KYB platform's maintenance flows.
///
/// Exit codes: 0 every task Ok or Warn; 1 a task Crit or Unknown; 2 the flow could not start
/// (bad config, another run holds the lock, no tasks in the flow).
#[derive(Debug, Parser)]
#[command(name = "kyb-maint", version, about, long_about)]
struct Cli {
    /// The flow to run.
    #[arg(value_enum)]
    flow: FlowArg,
    /// Config file (TOML).
    #[arg(long, short, env = "KYB_MAINT_CONFIG", default_value = "/etc/kyb-maint/kyb-maint.toml")]
    config: PathBuf,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Show what would be done; write, delete and restart nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also write the run's statuses and durations as Prometheus metrics to this file, for
    /// node_exporter's textfile collector (e.g. /var/lib/node_exporter/textfile/kyb-maint-daily.prom).
    #[arg(long, value_name = "FILE")]
    textfile: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FlowArg {
    /// Health, system metrics, metrics snapshot.
    Daily,
    /// Weekly flow (no tasks yet: exits 2).
    Weekly,
    /// Monthly flow (no tasks yet: exits 2).
    Monthly,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging();
    let flow = match cli.flow {
        FlowArg::Daily => Flow::Daily,
        FlowArg::Weekly => Flow::Weekly,
        FlowArg::Monthly => Flow::Monthly,
    };
    let cfg = match config::load(&cli.config) {
        Ok(cfg) => cfg,
        Err(e) => return cli::fail(BIN, &e),
    };
    let report = match run_flow(flow, &cfg, RunOptions { dry_run: cli.dry_run }).await {
        Ok(r) => r,
        Err(e) => return cli::fail(BIN, &e),
    };
    cli::finish(BIN, &report, cli.format, cli.textfile)
}
