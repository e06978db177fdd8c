//! `kyb-maint`: runs a maintenance flow and exits with a code monitoring understands.

use clap::{Parser, ValueEnum};
use kyb_bins::cli;

use kyb_flows::{Flow, RunOptions, run_flow};
use std::process::ExitCode;

const BIN: &str = "kyb-maint";

/// Runs the KYB platform's maintenance flows.
///
/// Exit codes: 0 every task Ok or Warn; 1 a task Crit or Unknown; 2 the flow could not start
/// (bad config, another run holds the lock).
#[derive(Debug, Parser)]
#[command(name = "kyb-maint", version, about, long_about)]
struct Cli {
    /// The flow to run.
    #[arg(value_enum)]
    flow: FlowArg,
    /// Show what would be done; write, delete and restart nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run heavy work (VACUUM, restarts of the monitoring stack) even outside the maintenance
    /// windows.
    #[arg(long)]
    emergency: bool,
    #[command(flatten)]
    common: cli::Common,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FlowArg {
    /// Health probes, system metrics, metrics snapshot, today's backup, log rotation, retention,
    /// temp cleanup.
    Daily,
    /// App performance (response times, p50/p95/p99 per endpoint, volume, 5xx rate); ML models;
    /// Prometheus, Grafana, Alertmanager; ANALYZE; unused, duplicate and invalid indexes; table
    /// sizes, bloat, vacuum state, top table activity; transaction-ID wraparound; sequences.
    Weekly,
    /// Database backup, config archive, restore drill, backup retention; slow queries, index
    /// recommendations, cache hit ratio; VACUUM (ANALYZE) inside a maintenance window; database
    /// size history and disk-full forecast.
    Monthly,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let flow = match cli.flow {
        FlowArg::Daily => Flow::Daily,
        FlowArg::Weekly => Flow::Weekly,
        FlowArg::Monthly => Flow::Monthly,
    };
    let cfg = match cli.common.start(BIN) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let report =
        match run_flow(flow, &cfg, RunOptions { dry_run: cli.dry_run, emergency: cli.emergency }).await {
            Ok(r) => r,
            Err(e) => return cli::fail(BIN, &e),
        };
    cli::finish(BIN, &report, cli.common.format, cli.common.textfile)
}
