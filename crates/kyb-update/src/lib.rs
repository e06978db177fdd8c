//! Updates of the platform: SQL migrations of its database (in progress: the application
//! update with its health gate and rollback, and the tuning tasks, come next).
//!
//! ```no_run
//! # async fn demo(cfg: kyb_update::MigrateConfig) {
//! match kyb_update::migrate(&cfg).await {
//!     Ok(r) => println!("{} applied, {} already there", r.applied.len(), r.already),
//!     Err(e) => eprintln!("{}", kyb_core::error_chain(&e)),
//! }
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod migrate;

pub use migrate::{
    Applied, MIGRATE_LOCK_KEY, MigrateConfig, MigrateError, MigrateReport, Migration, migrate,
    read_migrations,
};
