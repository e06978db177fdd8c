//! Database backups that count only once they are complete and proven.
//!
//! - [`create`]: runs pg_dump (custom format uncompressed, or plain SQL) with an argument vector,
//!   gzips its output on every core and hashes it in the same pass into
//!   `<backup_dir>/full/backup_YYYYMMDD_HHMMSS/database.dump.gz.partial`, fsyncs and renames it,
//!   then writes `backup_metadata.json` atomically. The directory is locked (`flock`) while it is
//!   written. A failed or cancelled dump leaves nothing that looks like a backup; partial files
//!   of runs that were killed (no lock held on their directory) are removed.
//! - [`verify`]: checks a backup (today's or the latest complete one, or a given one) and
//!   reports each problem as its own finding: missing or malformed metadata, a `backup_file`
//!   that points outside its directory, size or checksum mismatch, an archive that does not
//!   read whole (gzip CRC, `pg_restore` parsing every block, the end of a plain script), age;
//!   partial files of killed runs as a Warn.
//! - [`restore_drill`]: restores a verified backup into a scratch database, compares table and
//!   row counts with the metadata and every object the backup lists (tables, views, sequences,
//!   functions, indexes, …) with the restored catalog, reports the restore time, and always
//!   drops the scratch database.
//!
//! Files a backup run writes are mode 0600, the directories it makes 0700. pg_dump, pg_restore
//! and psql run with a cleared environment (`PATH`, `HOME`, `LC_ALL=C`, `PGCONNECT_TIMEOUT`,
//! `PGAPPNAME`) and get the password, when one is configured, through a `PGPASSFILE` of their
//! own: 0600, in a 0700 temporary directory, removed when they exit.
//! - [`prune`]: retention by count and age that never leaves fewer than `keep_min` good backups.
//! - [`archive`]: configuration directories as tar.gz files with a manifest.
//! - [`list`]: the backups on disk, from their metadata.
//!
//! Every task takes its config and a [`kyb_core::RunCtx`]: the time the run counts as (ages,
//! directory names), whether it is a dry run (nothing is written; the plan is the report's
//! actions), and its cancel (Ctrl-C, SIGTERM): `create` then stops pg_dump and removes what it
//! wrote, `restore_drill` drops its scratch database, `prune` stops before it deletes anything.
//! Every report embeds a [`kyb_core::Findings`].
//!
//! The config file's `[backup]` table is a [`BackupSection`]; each task's config derives from it
//! and the backup directory:
//!
//! ```no_run
//! # async fn demo() {
//! use std::path::Path;
//!
//! let section: kyb_backup::BackupSection = toml::from_str("max_age_hours = 30\nkeep_min = 5").unwrap();
//! section.validate().unwrap();
//! let cfg = section.verify(Path::new("/var/backups/kyb-platform"));
//! let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc());
//! let report = kyb_backup::verify(&cfg, &ctx).await.unwrap();
//! for check in &report.findings.checks {
//!     println!("{} {}: {}", check.status, check.name, check.summary);
//! }
//! // A dry run comes with the context: retention's plan, one action line per backup.
//! let retention = section.prune(Path::new("/var/backups/kyb-platform"));
//! let plan = kyb_backup::prune(&retention, &ctx.with_dry_run(true)).await.unwrap();
//! for line in &plan.findings.actions {
//!     println!("{line}");
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
mod partial;
mod pgbin;
mod prune;
mod section;
mod toc;
mod verify;

pub use archive::{
    ArchiveConfig, ArchiveReport, ArchiveSource, Manifest, ManifestArchive, ManifestEntry, Unreadable,
    archive,
};
pub use create::{CreateConfig, CreateReport, Format, PgTarget, Progress, create, create_with_progress};
pub use drill::{DrillConfig, DrillReport, restore_drill};
pub use list::{Listed, list};
pub use metadata::{Metadata, TableRows};
pub use pgbin::pg_bindir;
pub use prune::{Decision, PruneConfig, PruneReport, prune};
pub use section::{ArchiveSection, BackupSection};
pub use verify::{VerifyConfig, VerifyReport, Which, verify};

use std::path::PathBuf;

/// The mode of every file a backup run writes (dumps, checksums, metadata, archives,
/// manifests): they hold the data, so only their owner reads them.
pub(crate) const FILE_MODE: u32 = 0o600;

/// The mode of the directories a backup run makes for each backup or set of archives.
pub(crate) const DIR_MODE: u32 = 0o700;

/// A backup task that could not run.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// No PostgreSQL client binaries were found.
    #[error(
        "no pg_dump/pg_restore found (looked in the configured bin dir, /usr/lib/postgresql/*/bin and $PATH)"
    )]
    NoPgBinaries,
    /// No connection to the server could be made: the root cause and what to check.
    #[error(transparent)]
    Connect(#[from] kyb_core::PgConnectError),
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
    /// The password could not be handed to a client program.
    #[error("cannot hand the password to {tool}: {why}")]
    Password {
        /// `pg_dump`, `pg_restore` or `psql`.
        tool: &'static str,
        /// What went wrong.
        why: String,
    },
    /// A deadline passed.
    #[error("{what} did not finish within {timeout_ms} ms")]
    Timeout {
        /// The step.
        what: &'static str,
        /// The deadline.
        timeout_ms: u64,
    },
    /// The run was cancelled (Ctrl-C, SIGTERM) while pg_dump ran: it was stopped, and what it had
    /// written removed.
    #[error("cancelled; pg_dump stopped and the partial backup removed")]
    DumpCancelled,
    /// The run was cancelled (Ctrl-C, SIGTERM) while retention was verifying backups: no backup
    /// was deleted.
    #[error("cancelled")]
    Cancelled,
}

/// `1 table`, `2 tables`: a count and a regular noun, in the right number.
pub(crate) fn plural(n: impl std::fmt::Display, noun: &str) -> String {
    counted(n, noun, &format!("{noun}s"))
}

/// A count and its noun, singular for exactly one: `counted(2, "index", "indexes")`.
pub(crate) fn counted(n: impl std::fmt::Display, one: &str, many: &str) -> String {
    let n = n.to_string();
    if n == "1" { format!("1 {one}") } else { format!("{n} {many}") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(super::plural(1, "table"), "1 table");
        assert_eq!(super::plural(0u64, "table"), "0 tables");
        assert_eq!(super::plural(-1i64, "row"), "-1 rows");
        assert_eq!(super::counted(2usize, "index", "indexes"), "2 indexes");
        assert_eq!(super::counted(1usize, "index", "indexes"), "1 index");
    }
}
