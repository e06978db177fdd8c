//! `kyb-backup`'s arguments.

use crate::cli;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Makes, checks and prunes the database backups of the config's `[postgres]` database under
/// `[paths] backup_dir`, archives the directories of its `[[backup.archive]]` sections, and
/// proves the latest backup by restoring it into a scratch database.
///
/// A backup is `<backup_dir>/full/backup_YYYYMMDD_HHMMSS/` holding the gzipped dump, its
/// `.sha256` and `backup_metadata.json`; a directory without metadata is not a backup.
///
/// Exit codes: 0 Ok or Warn; 1 Crit or Unknown (a failed backup, a damaged one, a failed
/// drill); 2 could not start (bad config).
#[derive(Debug, Parser)]
#[command(name = "kyb-backup", version = crate::VERSION, after_help = "Examples:\n  kyb-backup create\n  kyb-backup verify --latest --format json\n  kyb-backup prune --dry-run")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub common: cli::Common,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dump the database with pg_dump, gzip and hash it in one pass, and publish it atomically.
    /// Shows progress at a terminal. Ctrl-C or SIGTERM stops it and removes the partial backup.
    ///
    /// With --dry-run: what would be dumped, and where.
    Create,
    /// Check a backup: present, young enough, metadata, confinement, size, sha256, and that the
    /// whole archive reads. Today's backup unless told otherwise.
    Verify {
        /// The newest backup, whatever its day.
        #[arg(long, conflicts_with = "dir")]
        latest: bool,
        /// This backup directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Delete backups past `keep_last` / `max_age_days`. Every backup is verified first; the newest
    /// `keep_min` good ones are never deleted.
    ///
    /// With --dry-run: each keep/delete decision and its reason, deleting nothing.
    Prune,
    /// tar.gz each `[[backup.archive]]` into `<backup_dir>/monthly/monthly_<time>/` with a
    /// manifest.json (files, sizes, sha256). Unreadable files are listed, and make it Crit.
    ///
    /// With --dry-run: what would be archived.
    Archive,
    /// Restore the latest backup into a scratch database `kyb_dr_<time>`, compare tables and row
    /// counts, and drop it again: on success, on failure and on Ctrl-C or SIGTERM. The latest
    /// backup must be younger than `max_age_hours`.
    ///
    /// With --dry-run: what would be restored, and where.
    RestoreDrill {
        /// Restore this backup directory instead of the latest, whatever its age.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// List the backups, newest first, from their metadata (nothing is hashed): one row each under
    /// a header, or with `--format json` an array of objects.
    List,
}
