//! Security audit of the platform host: certificates (files and live endpoints), file
//! permissions, security logs, OS security updates and dependency advisories.
//!
//! Every finding is a [`kyb_core::Check`] with a status; a source that could not be read is a
//! finding too (Unknown or Crit), never a silent pass.
//!
//! ```no_run
//! # async fn demo() {
//! use kyb_secaudit::{CertConfig, check_certs};
//! let cfg = CertConfig {
//!     paths: vec!["/etc/ssl/kyb-platform".into()],
//!     endpoints: vec![],
//!     warn_days: 30.0,
//!     crit_days: 7.0,
//!     ca_bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
//!     timeout_ms: 5_000,
//! };
//! let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc());
//! let Ok(report) = check_certs(&cfg, &ctx).await;
//! for check in &report.findings.checks {
//!     println!("{} {}: {}", check.status, check.name, check.summary);
//! }
//! # }
//! ```
//!
//! Every audit is a task of one shape, `async fn(&Config, &RunCtx) -> Result<Report, Error>`:
//! the run's time, dry run and maintenance window come from the [`kyb_core::RunCtx`], and each
//! report holds its checks in a flattened [`kyb_core::Findings`]. An audit that cannot fail
//! returns `Result<_, Infallible>`; the walks run on a blocking thread and fail only when that
//! thread does ([`SecAuditError`]).
//!
//! The `[security]` section of the config file is a [`SecuritySection`]; each audit's config is
//! derived from it, with relative paths resolved against the config file's directory:
//!
//! ```
//! use kyb_secaudit::SecuritySection;
//! let mut section: SecuritySection = toml::from_str(
//!     r#"
//!     endpoints = ["127.0.0.1:443=app.kyb.example"]
//!     cert_days = { warn = 21, crit = 7 }
//!     cargo_lock = "platform/Cargo.lock"
//!     advisory_db = "/var/lib/kyb-maint/advisory-db"
//!     "#,
//! )
//! .unwrap();
//! section.resolve_paths(std::path::Path::new("/etc/kyb-maint"));
//! section.validate().unwrap();
//! let certs = section.certs().unwrap();
//! assert_eq!(certs.endpoints[0].server_name.as_deref(), Some("app.kyb.example"));
//! assert_eq!(certs.warn_days, 21.0);
//! let advisories = section.advisories().unwrap();
//! assert_eq!(advisories.lockfile, std::path::Path::new("/etc/kyb-maint/platform/Cargo.lock"));
//! assert!(section.log_scan().is_none(), "no auth_logs and no journalctl: no log scan");
//! assert!(section.updates().is_some(), "on unless os_updates = false");
//! assert_eq!(section.advisories_task().map(|t| t.outdated), Some(None), "no cargo_manifest");
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod advisories;
mod certs;
mod logs;
mod outdated;
mod perms;
mod section;
mod updates;

pub use advisories::{
    AdvisoriesReport, AdvisoriesTask, AdvisoryConfig, AdvisoryReport, Finding, advisories, scan_advisories,
};
pub use certs::{CertConfig, CertInfo, CertReport, Endpoint, check_certs};
pub use logs::{Burst, LogScanConfig, LogScanReport, scan_logs};
pub use outdated::{Outdated, OutdatedConfig, OutdatedReport, check_outdated};
pub use perms::{PermConfig, PermReport, audit_permissions};
pub use section::SecuritySection;
pub use updates::{PendingUpdate, UpdatesConfig, UpdatesReport, check_updates};

/// An audit that could not run at all. Everything else it meets (a file it cannot read, a
/// command that fails) is a finding in its report.
#[derive(Debug, thiserror::Error)]
pub enum SecAuditError {
    /// The blocking thread that walks the file system panicked or was cancelled.
    #[error("the {what} stopped")]
    Worker {
        /// Which walk: `walk` (permissions), `advisory scan`.
        what: &'static str,
        /// The cause.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Runs `work` on a blocking thread: the audits that walk the file system.
async fn blocking<R: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, SecAuditError> {
    tokio::task::spawn_blocking(work).await.map_err(|source| SecAuditError::Worker { what, source })
}

/// The whole of a file this crate is told to read (a lockfile, a certificate, an advisory), when
/// it is a regular file of at most `limit_bytes`: a FIFO or a device in its place is an error
/// saying so, never a hang or an unbounded read. The error names the path.
pub(crate) fn read_file(path: &std::path::Path, limit_bytes: u64) -> Result<Vec<u8>, String> {
    kyb_core::fs::read_regular(path, limit_bytes)
        .map(|(bytes, _)| bytes)
        .map_err(|e| format!("cannot read {}: {}", path.display(), kyb_core::error_chain(&e)))
}

/// [`read_file`] as text; bytes that are not UTF-8 are replaced.
pub(crate) fn read_text(path: &std::path::Path, limit_bytes: u64) -> Result<String, String> {
    read_file(path, limit_bytes).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Limits for the files above: lockfiles and manifests, CA bundles, one certificate or advisory.
pub(crate) const MANIFEST_LIMIT: u64 = 16 << 20;
pub(crate) const FILE_LIMIT: u64 = 1 << 20;
