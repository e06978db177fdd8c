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
//!
//! The config file's `[dbmaint]` section is a [`DbMaintSection`]; it derives the [`DbConfig`]
//! (with the `[postgres]` target), the [`ReportConfig`] and the [`CapacityConfig`] of a run:
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
//! let db = section.db(target, 5_000);
//! assert_eq!((db.connect_timeout_ms, db.lock_timeout_ms), (5_000, 2_000));
//! let capacity = section.capacity(Path::new("/var/lib/kyb-maint/database-size-trend.csv"));
//! assert_eq!(capacity.data_disk.as_deref(), Some(Path::new("/etc/kyb-maint/pgdata")));
//! ```
//!
//! ```no_run
//! # async fn demo(cfg: kyb_dbmaint::DbConfig) {
//! let report = kyb_dbmaint::analyze(&cfg, false).await.unwrap();
//! for check in &report.checks {
//!     println!("{} {}: {}", check.status, check.name, check.summary);
//! }
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod capacity;
mod ops;
mod reports;
mod section;
mod session;

pub use capacity::{CapacityConfig, CapacityReport, capacity};
pub use ops::{OpsReport, analyze, reindex, vacuum_analyze};
pub use reports::{DbReport, ReportConfig, ReportKind, ReportRun, report, reports};
pub use section::DbMaintSection;
pub use session::{DbConfig, LOCK_KEY};

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
    #[error("{what} at {target} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The step.
        what: &'static str,
        /// `user@host:port/db`.
        target: String,
        /// The deadline.
        timeout_ms: u64,
    },
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
