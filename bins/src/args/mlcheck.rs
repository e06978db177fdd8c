//! `kyb-mlcheck`'s arguments.

use crate::cli;
use clap::Parser;

/// Checks the ML models the app reports in `/metrics` (`[app]`): each model's accuracy against
/// its `[[ml.models]]` thresholds (by default bert 0.85 and distilbert 0.80), its fall since the
/// oldest run within `[ml] trend_days` (from the history file, appended each run), its share of
/// the inference requests, and its latency when a histogram is exported. A configured model
/// missing from the scrape is Unknown. With --dry-run the history is read and nothing is
/// appended to it.
///
/// Exit codes: 0 Ok or Warn; 1 Crit or Unknown (a model below its crit level or not reporting,
/// `/metrics` failing); 2 could not start (bad config, no `[app]`).
#[derive(Debug, Parser)]
#[command(name = "kyb-mlcheck", version = crate::VERSION, after_help = "Examples:\n  kyb-mlcheck\n  kyb-mlcheck --dry-run --format json")]
pub struct Cli {
    #[command(flatten)]
    pub common: cli::Common,
}
