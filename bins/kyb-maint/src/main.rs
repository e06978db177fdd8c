//! `kyb-maint`: runs a maintenance flow and exits with a code monitoring understands.

use clap::{Parser, ValueEnum};
use kyb_flows::{Flow, RunOptions, config, render_text, run_flow};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A report for people.
    Text,
    /// The report as one JSON document.
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let flow = match cli.flow {
        FlowArg::Daily => Flow::Daily,
        FlowArg::Weekly => Flow::Weekly,
        FlowArg::Monthly => Flow::Monthly,
    };
    let cfg = match config::load(&cli.config) {
        Ok(cfg) => cfg,
        Err(e) => return fail(&e),
    };
    let report = match run_flow(flow, &cfg, RunOptions { dry_run: cli.dry_run }).await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let out = match cli.format {
        Format::Text => render_text(&report),
        Format::Json => serde_json::to_string_pretty(&report).expect("reports serialize") + "\n",
    };
    // A closed stdout (e.g. piped into `head`) must not turn a good run into a crash.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    let mut code = report.exit_code();
    if let Some(path) = cli.textfile.filter(|_| !cli.dry_run)
        && let Err(e) = kyb_flows::textfile::write(&path, &report)
    {
        // Monitoring would go on reading stale numbers: make the run fail visibly.
        let _ = writeln!(std::io::stderr(), "kyb-maint: error: {}", kyb_core::error_chain(&e));
        code = code.max(1);
    }
    ExitCode::from(code)
}

/// Prints `kyb-maint: error: …` with its causes and returns exit code 2.
fn fail(err: &dyn std::error::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "kyb-maint: error: {}", kyb_core::error_chain(err));
    ExitCode::from(2)
}

/// Human log lines at a terminal (warnings only: the report is the output), JSON lines with
/// task events otherwise. `KYB_LOG` overrides the level, in `RUST_LOG` syntax.
fn init_logging() {
    let terminal = std::io::stderr().is_terminal();
    let default = if terminal { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KYB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if terminal {
        builder.compact().init();
    } else {
        builder.json().flatten_event(true).init();
    }
}
