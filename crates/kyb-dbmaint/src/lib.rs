//! PostgreSQL maintenance with guard rails.
//!
//! Every operation runs under a per-database advisory lock (a second run waits up to
//! [`DbConfig::lock_wait_ms`], then reports the lock held), one table at a time, each statement
//! on its own outside any transaction block, with `lock_timeout` and `statement_timeout` set.
//! Table names are quoted by the server (`format('%I.%I')`). A table that fails is reported and
//! the run goes on with the rest.
//!
//! - [`analyze`]: `ANALYZE` per table.
//! - [`vacuum_analyze`]: `VACUUM (ANALYZE)` per table.
//! - [`reindex`]: `REINDEX INDEX CONCURRENTLY` of the bloated indexes.
//! - [`report`] and [`reports`]: the read-only reports ([`ReportKind`]).
//! - [`capacity`]: the size history and the disk-full forecast.
//!
//! Each takes the [`DbMaintConfig`] and the run's [`kyb_core::RunCtx`]. In a dry run the
//! statements are the report's actions and none is run; VACUUM and REINDEX keep to the
//! maintenance windows (`ctx.window`) unless the run is an emergency.
//!
//! The config file's `[dbmaint]` section is a [`DbMaintSection`]; with the `[postgres]` target
//! it derives the [`DbMaintConfig`]: the [`DbConfig`], the [`ReportConfig`] and the
//! [`CapacityConfig`] of a run:
//!
//! ```
//! use kyb_dbmaint::DbMaintSection;
//! use std::path::Path;
//!
//! let mut section: DbMaintSection =
//!     toml::from_str("lock_timeout_ms = 2000\ndata_disk = \"pgdata\"").unwrap();
//! section.resolve_paths(Path::new("/etc/kyb-maint"));
//! section.validate().unwrap();
//! let target = kyb_core::PgTarget {
//!     host: "127.0.0.1".into(),
//!     port: 5432,
//!     user: "kyb".into(),
//!     password: None,
//!     dbname: "kyb".into(),
//! };
//! let cfg = section.config(target, 5_000, Path::new("/var/lib/kyb-maint/database-size-trend.csv"));
//! assert_eq!((cfg.db.connect_timeout_ms, cfg.db.lock_timeout_ms), (5_000, 2_000));
//! assert_eq!(cfg.capacity.data_disk.as_deref(), Some(Path::new("/etc/kyb-maint/pgdata")));
//! ```
//!
//! ```no_run
//! # async fn demo(cfg: kyb_dbmaint::DbMaintConfig) {
//! let ctx = kyb_core::RunCtx::new(time::OffsetDateTime::now_utc()).with_dry_run(true);
//! let plan = kyb_dbmaint::vacuum_analyze(&cfg, &ctx).await.unwrap();
//! for check in &plan.findings.checks {
//!     println!("{} {}: {}", check.status, check.name, check.summary);
//! }
//! for statement in &plan.findings.actions {
//!     println!("{statement}");
//! }
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod capacity;
mod fleet;
mod ops;
mod reports;
mod section;
mod session;

pub use capacity::{CapacityConfig, CapacityReport, capacity};
pub use fleet::{Claim, DoneBy, FleetClaim, claim};
pub use ops::{OpsReport, analyze, reindex, vacuum_analyze};
pub use reports::{DbReport, ReportConfig, ReportKind, ReportRun, report, reports};
pub use section::DbMaintSection;
pub use session::{DbConfig, LOCK_KEY};

/// What the maintenance tasks work on: the database and the guard rails of each statement, the
/// levels the reports judge by (and [`reindex`] rebuilds at), and where the size history goes.
/// [`DbMaintSection::config`] derives it from the config file.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DbMaintConfig {
    /// The database and the guard rails of each statement.
    pub db: DbConfig,
    /// The reports' levels.
    pub reports: ReportConfig,
    /// The size history and the forecast.
    pub capacity: CapacityConfig,
}

impl DbMaintConfig {
    /// The tasks' config of `db`, judged by `reports`, with the size history of `capacity`.
    pub fn new(db: DbConfig, reports: ReportConfig, capacity: CapacityConfig) -> DbMaintConfig {
        DbMaintConfig { db, reports, capacity }
    }
}

/// A maintenance task that could not run.
#[derive(Debug, thiserror::Error)]
pub enum DbMaintError {
    /// The server could not be reached in time or refused the login: the message names the
    /// root cause and what to check.
    #[error(transparent)]
    Connect {
        /// The cause.
        source: kyb_core::PgConnectError,
    },
    /// A deadline passed before the server answered.
    #[error(transparent)]
    Timeout(kyb_core::PgTimeout),
    /// The role lacks a privilege a step needs.
    #[error("{what} failed on {target}: {remedy}")]
    Privilege {
        /// The step.
        what: &'static str,
        /// `user@host:port/db`.
        target: String,
        /// What to grant, or whom to run as.
        remedy: String,
        /// The server's refusal, naming the object.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Another host of the fleet was still doing a task for all of the wait.
    #[error("another host was still running {task} for {period} on {target} after {waited_ms} ms")]
    FleetBusy {
        /// The task.
        task: String,
        /// The period, e.g. `2026-W49`.
        period: String,
        /// `user@host:port/db`.
        target: String,
        /// How long this run waited.
        waited_ms: u64,
    },
    /// Another maintenance run holds the database's advisory lock.
    #[error("another kyb-dbmaint run holds the maintenance lock on {target} (waited {waited_ms} ms)")]
    LockHeld {
        /// `user@host:port/db`.
        target: String,
        /// How long this run waited.
        waited_ms: u64,
    },
    /// A query the task needs (not a per-table statement) failed.
    #[error("{what} failed on {target}")]
    Query {
        /// The step.
        what: &'static str,
        /// `user@host:port/db`.
        target: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
}
