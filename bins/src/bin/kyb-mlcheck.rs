//! `kyb-mlcheck`: the models the app serves, judged from one scrape of its `/metrics`.

use kyb_bins::cli;

use clap::Parser;
use kyb_flows::FlowReport;
use std::process::ExitCode;
use time::OffsetDateTime;

const BIN: &str = "kyb-mlcheck";

/// Checks the ML models the app reports in `/metrics` (`[app]`): each model's accuracy against
/// its `[[ml.models]]` thresholds (by default bert 0.85 and distilbert 0.80), its fall since the
/// oldest run within `[ml] trend_days` (from the history file, appended each run), its share of
/// the inference requests, and its latency when a histogram is exported. A configured model
/// missing from the scrape is Unknown.
///
/// Exit codes: 0 Ok or Warn; 1 Crit or Unknown (a model below its crit level or not reporting,
/// `/metrics` failing); 2 could not start (bad config, no `[app]`).
#[derive(Debug, Parser)]
#[command(name = "kyb-mlcheck", version, about, long_about)]
struct Cli {
    /// Read the history; append nothing to it.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    common: cli::Common,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match cli.common.start(BIN) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    if cfg.snapshot.is_none() {
        return cli::lacks(BIN, &cli.common.config, "has no [app] section; there is no /metrics to read");
    }
    // The accuracy history lives in the maintenance directory.
    if !cli.dry_run
        && let Err(code) = cli::ensure_dir(BIN, &cfg.paths.maintenance_dir)
    {
        return code;
    }
    let now = OffsetDateTime::now_utc();
    let task = kyb_flows::observe::mlcheck("ml-models", &cfg, now, cli.dry_run).await;
    cli::finish(BIN, &FlowReport::single(task, now, cli.dry_run), cli.common.format, cli.common.textfile)
}
