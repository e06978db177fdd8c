//! Log rotation, compression, retention and temp cleanup, safe against crashes, live writers and
//! hostile directory contents.
//!
//! - [`rotate`]: rotates logs by size or schedule to `<log>-YYYYMMDD-HHMMSS`, creates the new log
//!   with `O_EXCL|O_NOFOLLOW` and sets owner and mode on its handle, tells the writer to reopen
//!   (signal from a pid file or a systemd unit), waits until no process holds the rotated file,
//!   then gzips it crash-safely. Leftovers of an interrupted run are finished or removed first,
//!   and each policy's retention (age, count) is applied on every run, from the same listing.
//! - [`prune`]: removes rotated logs past their age or count (for callers that do not rotate),
//!   and old reports.
//! - [`clean_temp`]: removes idle `kyb-*` entries from the temp directory.
//!
//! Every operation goes through an open directory handle (`*at` calls, no symlink followed),
//! touches only names that match strict patterns, and leaves symlinks, hard-linked files and
//! other filesystems alone, saying so in the report. In a dry run (`ctx.dry_run`) the report lists
//! the exact plan and nothing changes.
//!
//! Every task is `async fn(&Config, &RunCtx) -> Result<FilesReport, LogrotateError>`: ages and
//! rotated names are judged at `ctx.now`, and the report's findings carry one check per log or
//! directory, the totals as headline, and every skip and step as an action line.
//!
//! The config sections `[[logs]]` ([`LogSection`]) and `[cleanup]` ([`CleanupSection`]) are
//! read here too, and derive the per-run configs:
//!
//! ```
//! use kyb_logrotate::{CleanupSection, LogSection, Reopen};
//! use std::path::Path;
//!
//! let mut log: LogSection = toml::from_str(
//!     "path = \"app.log\"\nkeep_count = 5\nsystemd_unit = \"app.service\"",
//! )
//! .unwrap();
//! log.resolve_paths(Path::new("/etc/kyb-maint"), Some(Path::new("/var/log/app")));
//! let policy = log.policy().unwrap();
//! assert_eq!(policy.path, Path::new("/var/log/app/app.log"));
//! assert!(matches!(policy.reopen, Reopen::SystemdUnit { .. }));
//!
//! let cleanup: CleanupSection = toml::from_str("temp_max_age_days = 0.5").unwrap();
//! cleanup.validate().unwrap();
//! assert_eq!(cleanup.temp(Path::new("/tmp")).max_age_secs, 43_200);
//! ```
//!
//! ```no_run
//! # async fn demo() {
//! use kyb_logrotate::{TempConfig, clean_temp};
//! let cfg =
//!     TempConfig { dir: "/tmp".into(), prefix: "kyb-".into(), max_age_secs: 86_400, timeout_ms: 30_000 };
//! let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc()).with_dry_run(true);
//! let report = clean_temp(&cfg, &ctx).await.unwrap();
//! println!("{}", report.findings.headline.as_deref().unwrap_or_default());
//! for action in &report.findings.actions {
//!     println!("{action}");
//! }
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod compress;
mod holders;
mod names;
mod policy;
mod report;
mod retention;
mod rotate;
mod temp;

pub use policy::{CleanupSection, Interval, LogPolicy, LogSection, Reopen, ReopenSignal};
pub use report::{Action, Counts, FilesReport, Skipped, totals};
pub use retention::RetentionConfig;
pub use rotate::RotateConfig;
pub use temp::TempConfig;

use kyb_core::RunCtx;

/// A file task that could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum LogrotateError {
    /// The blocking worker panicked or was cancelled.
    #[error("file task worker failed")]
    Worker(#[source] tokio::task::JoinError),
}

/// Rotates and compresses the configured logs, and applies each one's retention (on a blocking
/// thread).
pub async fn rotate(cfg: &RotateConfig, ctx: &RunCtx) -> Result<FilesReport, LogrotateError> {
    let cfg = cfg.clone();
    let (now, dry_run) = (ctx.now, ctx.dry_run);
    blocking(move || rotate::rotate_blocking(&cfg, now, dry_run)).await
}

/// Removes rotated logs and reports past retention (on a blocking thread).
pub async fn prune(cfg: &RetentionConfig, ctx: &RunCtx) -> Result<FilesReport, LogrotateError> {
    let cfg = cfg.clone();
    let (now, dry_run) = (ctx.now, ctx.dry_run);
    blocking(move || retention::prune_blocking(&cfg, now, dry_run)).await
}

/// Removes idle temp entries (on a blocking thread).
pub async fn clean_temp(cfg: &TempConfig, ctx: &RunCtx) -> Result<FilesReport, LogrotateError> {
    let cfg = cfg.clone();
    let (now, dry_run) = (ctx.now, ctx.dry_run);
    blocking(move || temp::clean_temp_blocking(&cfg, now, dry_run)).await
}

/// Runs a file task's walk on a blocking thread and fills in its report's lines.
async fn blocking(
    walk: impl FnOnce() -> FilesReport + Send + 'static,
) -> Result<FilesReport, LogrotateError> {
    tokio::task::spawn_blocking(walk).await.map(FilesReport::finish).map_err(LogrotateError::Worker)
}
