//! `kyb-update`'s arguments.

use crate::cli;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Updates the platform: the application binary, the database schema, and the tuning of the
/// service and the kernel. Settings come from the config file's `[update]` and `[tuning]`
/// sections.
///
/// Exit codes: 0 done (or planned, in a dry run); 1 failed, with the service left as it was or
/// rolled back healthy; 2 (`app` only) the rollback failed too, or an interrupted update's record
/// cannot be read, and someone has to act: the output says what state things are in; 3 could not
/// start (bad arguments or config, another update running), nothing changed.
#[derive(Debug, Parser)]
#[command(name = "kyb-update", version = crate::VERSION, after_help = "Examples:\n  kyb-update app --version 2.4.0 --from /srv/releases/2.4.0 --dry-run\n  kyb-update db --dir /opt/kyb-platform/migrations\n  kyb-update sysctl --dry-run")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub common: cli::Common,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Installs a new application binary, with a health gate and rollback.
    ///
    /// Stages the new binary beside the installed one and checks its sha256, runs its
    /// `--config-check`, backs up the current binary, configs and database, stops the service,
    /// swaps by rename (keeping `<binary>.previous`, or switching the `current` link in the
    /// releases layout), starts it and holds it to the health gate (K consecutive successes of
    /// `/health` before a deadline, no restart). Any failure after the stop rolls back:
    /// previous binary and configs back, restart, gate again.
    ///
    /// A run killed part-way is finished by the next one, which first rolls back to the
    /// previous version and brings it up healthy.
    ///
    /// With --dry-run: the plan, with the checksum and config differences; nothing changes.
    App {
        /// The version being installed, for the backup's name and the report.
        #[arg(long)]
        version: String,
        /// The new binary, or a release directory holding it under the installed binary's
        /// name (with, optionally, SHA256SUMS and configs/<name>).
        #[arg(long, value_name = "PATH")]
        from: PathBuf,
        /// The expected SHA-256 of the new binary.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// A `sha256sum` file listing the new binary (a release directory's SHA256SUMS is used
        /// by default).
        #[arg(long, value_name = "FILE")]
        checksum_file: Option<PathBuf>,
        /// Install the release's config files; without it their differences are only shown.
        #[arg(long)]
        merge_configs: bool,
    },
    /// Backs up the database, applies SQL migrations, then verifies.
    ///
    /// Migrations are `<version>_<name>.sql` files, applied in order, each in a transaction
    /// unless its first line is `-- kyb:no-transaction`, recorded in `schema_migrations`, under
    /// an advisory lock. The backup (`[backup]`) comes first; afterwards the table count and
    /// failed migrations are checked.
    ///
    /// With --dry-run: the migrations that would run; none runs and nothing is backed up.
    Db {
        /// The migrations directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Migrate without the backup first (when no `[backup]` is configured).
        #[arg(long)]
        skip_backup: bool,
    },
    /// Checks the service's memory and runtime numbers; restarts it only when configured.
    ///
    /// The RSS against the `[tuning.memory]` thresholds (Warn above 1 GiB by default): the
    /// service's, from procfs, when `[update]` says how it runs, and the one the app reports in
    /// its `/metrics` (`process_resident_memory_bytes`) when `[app]` is configured; either is
    /// enough for a read-only check. Also the other runtime numbers the app exports. Over the
    /// threshold, the service is restarted (then held to the health gate) only when
    /// `restart = true`, which needs `[update]`, and only inside a maintenance window unless
    /// `--emergency`.
    ///
    /// With --dry-run: what would be restarted; nothing is.
    Memory {
        /// Allow the restart outside the maintenance windows.
        #[arg(long)]
        emergency: bool,
    },
    /// Applies the kernel settings of `[tuning.sysctl]` and keeps them in one managed file.
    ///
    /// Each value is written through /proc/sys and read back; when all hold, they are kept in
    /// /etc/sysctl.d/60-kyb.conf, rewritten only when it differs. A refused value puts back what
    /// this run set and leaves the file alone. Unknown keys stop the run before anything is
    /// written.
    ///
    /// With --dry-run: how the file would change and which values would be set.
    Sysctl,
    /// Drops the kernel's page cache, dentries and inodes (costly: see --help).
    ///
    /// WARNING: this throws away every cached file page on the host, the database's included.
    /// Everything is then read from disk again, and PostgreSQL and the service run slower until
    /// the cache is warm. It frees no memory the kernel would not free by itself; use it for
    /// measurements, not as routine maintenance.
    ///
    /// With --dry-run: what would be done.
    DropCaches,
}
