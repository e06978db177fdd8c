//! What the flow binaries share: logging set-up, the report on stdout, the textfile, and how an
//! error that stops a run is printed. Binary-only code: the libraries never print or exit.

use clap::ValueEnum;
use kyb_flows::{Config, FlowReport, render_text};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Report format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A report for people.
    Text,
    /// The report as one JSON document.
    Json,
    /// Nagios plugin lines, `KYB-MAINT WARNING - ... | perfdata` (the binary's name first), and
    /// Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    Nagios,
}

/// The options every kyb binary takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Config file (TOML); every kyb binary reads the same one.
    #[arg(
        long,
        short,
        global = true,
        env = "KYB_MAINT_CONFIG",
        default_value = "/etc/kyb-maint/kyb-maint.toml"
    )]
    pub config: PathBuf,
    /// Report format on stdout [default: nagios for kyb-health, text for the others].
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// Also write the statuses, durations and measured values as Prometheus metrics to FILE, for
    /// node_exporter's textfile collector. Without FILE:
    /// /var/lib/node_exporter/textfile/<binary>.prom (kyb-maint: kyb-maint-<flow>.prom), one file
    /// per binary and flow, since each run replaces its file.
    #[arg(long, global = true, value_name = "FILE", num_args = 0..=1)]
    pub textfile: Option<Option<PathBuf>>,
    /// Change nothing: write, delete, restart and install nothing, and report what would be
    /// done instead. Commands that only read run as usual; no textfile is written.
    #[arg(long, global = true)]
    pub dry_run: bool,
}

/// How a task binary starts: parses its arguments `A`, sets up logging and loads the config file
/// its [`Common`] options name. `Err` is the exit code, the reason already printed.
pub fn start<A: clap::Parser>(
    bin: &str,
    common: impl Fn(&A) -> &Common,
) -> Result<(A, kyb_flows::Config), ExitCode> {
    let args = A::parse();
    let cfg = common(&args).start(bin)?;
    Ok((args, cfg))
}

impl Common {
    /// The context the binary's tasks run in: now, `--dry-run`, `emergency` (heavy work outside
    /// the maintenance windows) and the config's windows.
    pub fn ctx(&self, cfg: &kyb_flows::Config, emergency: bool) -> kyb_core::RunCtx {
        let opts = kyb_flows::RunOptions { dry_run: self.dry_run, emergency, deadline: None };
        opts.ctx(cfg, time::OffsetDateTime::now_utc())
    }

    /// The format asked for, text if none.
    pub fn format(&self) -> Format {
        self.format.unwrap_or(Format::Text)
    }

    /// Sets up logging and loads the config file. On a bad config prints why and gives exit code
    /// 2; with `--format nagios`, an UNKNOWN line on stdout and exit code 3.
    pub fn start(&self, bin: &str) -> Result<kyb_flows::Config, ExitCode> {
        init_logging();
        kyb_flows::config::load(&self.config).map_err(|e| match self.format() {
            Format::Nagios => cannot_start_plugin(bin, &e),
            _ => fail(bin, &e),
        })
    }

    /// [`Common::start`] for a Nagios-style binary (`kyb-health`, `kyb-secaudit`): whatever the
    /// format, a bad config is an UNKNOWN line on stdout, the error on stderr, and exit code 3.
    pub fn start_plugin(&self, bin: &str) -> Result<kyb_flows::Config, ExitCode> {
        init_logging();
        kyb_flows::config::load(&self.config).map_err(|e| cannot_start_plugin(bin, &e))
    }
}

fn cannot_start_plugin(bin: &str, err: &dyn std::error::Error) -> ExitCode {
    let why = kyb_core::error_chain(err);
    let _ = writeln!(std::io::stderr(), "{bin}: error: {why}");
    crate::nagios::unknown(bin, &format!("config: {why}"), None)
}

/// Human log lines at a terminal (warnings only: the report is the output), JSON lines with
/// task events otherwise. `KYB_LOG` overrides the level, in `RUST_LOG` syntax; without it,
/// `RUST_LOG` does.
///
/// Records of the libraries underneath that log through the `log` crate (the PostgreSQL and
/// Redis clients, TLS) come with their source paths, and the PostgreSQL client logs server
/// notices at info: they are shown only when `KYB_LOG` asks for debug output.
fn init_logging() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{LevelFilter, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let terminal = std::io::stderr().is_terminal();
    let default = if terminal { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KYB_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let debug = filter.max_level_hint().is_none_or(|max| max >= LevelFilter::DEBUG);
    // Records that come through the `log` bridge are the ones with a `log.target` field.
    let ours = filter_fn(move |meta| debug || meta.fields().field("log.target").is_none());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if terminal { fmt.compact().boxed() } else { fmt.json().flatten_event(true).boxed() };
    tracing_subscriber::registry().with(filter).with(fmt.with_filter(ours)).init();
}

/// Prints that the config file lacks what this binary works on (`why`) and returns exit code 2.
pub fn lacks(bin: &str, config: &std::path::Path, why: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{bin}: error: {} {why}", config.display());
    ExitCode::from(2)
}

/// Creates the maintenance directory a task writes into, as the flows do; on failure prints why
/// and gives exit code 2.
pub fn ensure_dir(bin: &str, dir: &std::path::Path) -> Result<(), ExitCode> {
    std::fs::create_dir_all(dir).map_err(|e| {
        let _ = writeln!(std::io::stderr(), "{bin}: error: cannot create {}: {e}", dir.display());
        ExitCode::from(2)
    })
}

/// Prints `<bin>: error: …` with its causes and returns exit code 2 ("could not start").
pub fn fail(bin: &str, err: &dyn std::error::Error) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{bin}: error: {}", kyb_core::error_chain(err));
    ExitCode::from(2)
}

/// Sends the report on as `[alerting]` says (see [`kyb_flows::deliver`]), prints it, writes the
/// textfile if asked (not in a dry run), and returns the exit code: 0 when every task is Ok or
/// Warn, 1 otherwise or when the textfile cannot be written; with `--format nagios`, the Nagios
/// code of the report's status.
pub async fn finish(
    bin: &str,
    mut report: FlowReport,
    cfg: &Config,
    format: Format,
    textfile: Textfile,
) -> ExitCode {
    let written = emit(bin, &mut report, cfg, format, textfile).await;
    match format {
        Format::Nagios => ExitCode::from(report.status.nagios_code()),
        _ => ExitCode::from(report.exit_code().max(u8::from(!written))),
    }
}

/// [`finish`] for a Nagios-style binary: the exit code is the Nagios code of the report's status
/// whatever the format (UNKNOWN when the textfile cannot be written).
pub async fn finish_plugin(
    bin: &str,
    mut report: FlowReport,
    cfg: &Config,
    format: Format,
    textfile: Textfile,
) -> ExitCode {
    let written = emit(bin, &mut report, cfg, format, textfile).await;
    let code = report.status.nagios_code();
    ExitCode::from(if written { code } else { code.max(kyb_core::Status::Unknown.nagios_code()) })
}

/// Names the report's host as the config says, sends it on (`[alerting]`), prints it in
/// `format` and writes the textfile if asked; false when the textfile could not be written
/// (said on stderr).
async fn emit(bin: &str, report: &mut FlowReport, cfg: &Config, format: Format, textfile: Textfile) -> bool {
    report.host.clone_from(&cfg.host);
    kyb_flows::deliver(cfg, report).await;
    let report = &*report;
    let out = match format {
        Format::Text => render_text(report),
        Format::Json => serde_json::to_string_pretty(report).expect("reports serialize") + "\n",
        Format::Nagios => crate::nagios::report(bin, report),
    };
    // A closed stdout (e.g. piped into `head`) must not turn a good run into a crash.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if let Some(path) = textfile.filter(|_| !report.dry_run).map(|p| textfile_path(p, bin, report))
        && let Err(e) = kyb_flows::textfile::write(&path, report)
    {
        // Monitoring would go on reading stale numbers: make the run fail visibly.
        let _ = writeln!(std::io::stderr(), "{bin}: error: {}", kyb_core::error_chain(&e));
        return false;
    }
    true
}

/// `--textfile` as given: absent, without a file, or with one.
pub type Textfile = Option<Option<PathBuf>>;

/// Where node_exporter's textfile collector looks by default.
pub const TEXTFILE_DIR: &str = "/var/lib/node_exporter/textfile";

/// `--textfile`'s file: the one given, or without one the binary's own in [`TEXTFILE_DIR`]
/// (`kyb-backup.prom`; the flows' `kyb-maint-daily.prom`, ...), so no two runs overwrite each
/// other's metrics.
pub fn textfile_path(given: Option<PathBuf>, bin: &str, report: &FlowReport) -> PathBuf {
    if let Some(path) = given {
        return path;
    }
    let name = if bin == "kyb-maint" { format!("{bin}-{}.prom", report.flow) } else { format!("{bin}.prom") };
    std::path::Path::new(TEXTFILE_DIR).join(name)
}

/// For an output that has no Nagios form (a listing, an update's step log): says so and
/// returns exit code 2.
pub fn no_nagios(bin: &str, what: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{bin}: error: {what} has no --format nagios; use text or json");
    ExitCode::from(2)
}
