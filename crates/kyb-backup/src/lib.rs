//! Database backups that count only once they are complete and proven.
//!
//! - [`create`]: runs pg_dump (custom format uncompressed, or plain SQL) with an argument vector
//!   and the password in its environment, gzips its output on every core and hashes it in the
//!   same pass into `<backup_dir>/full/backup_YYYYMMDD_HHMMSS/database.dump.gz.partial`, fsyncs
//!   and renames it, then writes `backup_metadata.json` atomically. A failed or cancelled dump
//!   leaves nothing that looks like a backup.
//! - [`verify`]: checks a backup (today's, the latest, or a given one) and reports each problem
//!   as its own finding: missing or malformed metadata, a `backup_file` that points outside its
//!   directory, size or checksum mismatch, an archive that does not read whole (gzip CRC,
//!   `pg_restore` parsing every block, the end of a plain script), age.
//! - [`restore_drill`]: restores a verified backup into a scratch database, compares table and
//!   row counts with the metadata, reports the restore time, and always drops the scratch
//!   database.
//! - [`prune`]: retention by count and age that never leaves fewer than `keep_min` good backups.
//! - [`archive`]: configuration directories as tar.gz files with a manifest.
//! - [`list`]: the backups on disk, from their metadata.
//!
//! ```no_run
//! # async fn demo(cfg: kyb_backup::VerifyConfig) {
//! let report = kyb_backup::verify(&cfg, time::OffsetDateTime::now_utc()).await.unwrap();
//! for check in &report.checks {
//!     println!("{} {}: {}", check.status, check.name, check.summary);
//! }
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod archive;
mod create;
mod drill;
mod list;
mod metadata;
mod pgbin;
mod prune;
mod verify;

pub use archive::{
    ArchiveConfig, ArchiveReport, ArchiveSource, Manifest, ManifestArchive, ManifestEntry, Unreadable,
    archive,
};
pub use create::{CreateConfig, CreateReport, Format, PgTarget, Progress, create, create_with_progress};
pub use drill::{DrillConfig, DrillReport, restore_drill, restore_drill_until};
pub use list::{Listed, list};
pub use metadata::{Metadata, TableRows};
pub use pgbin::pg_bindir;
pub use prune::{Decision, PruneConfig, PruneReport, prune};
pub use verify::{VerifyConfig, VerifyReport, Which, sha256_file, verify};

use std::path::PathBuf;

/// A backup task that could not run.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// No PostgreSQL client binaries were found.
    #[error(
        "no pg_dump/pg_restore found (looked in the configured bin dir, /usr/lib/postgresql/*/bin and $PATH)"
    )]
    NoPgBinaries,
    /// The server could not be asked for its version or table sizes.
    #[error("cannot query the database server at {target}")]
    Query {
        /// `user@host:port/db`.
        target: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// pg_dump is older than the server: its dump could not be restored faithfully.
    #[error("pg_dump {pg_dump} is older than the server ({server}); use the server's major version or newer")]
    PgDumpTooOld {
        /// pg_dump's major version.
        pg_dump: u32,
        /// The server's major version.
        server: u32,
    },
    /// pg_dump could not be started or failed.
    #[error("pg_dump failed ({status}): {stderr}")]
    Dump {
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The backup directory or a file in it could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A deadline passed.
    #[error("{what} did not finish within {timeout_ms} ms")]
    Timeout {
        /// The step.
        what: &'static str,
        /// The deadline.
        timeout_ms: u64,
    },
}
