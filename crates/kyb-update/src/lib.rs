//! Updates of the platform: the application update with its health gate and rollback, SQL
//! migrations of its database, and the tuning tasks (application memory, sysctl, page caches).
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

mod app;
mod gate;
mod migrate;
mod service;
mod tune;

pub use app::{AppConfig, ConfigDiff, Outcome, UpdateError, UpdateReport, UpdateRequest, update_app};
pub use gate::{GateConfig, GateReport, health_gate};
pub use migrate::{
    Applied, MIGRATE_LOCK_KEY, MigrateConfig, MigrateError, MigrateReport, Migration, migrate,
    read_migrations,
};
pub use service::{Instance, ServiceError, ServiceManager};
pub use tune::{
    MemoryConfig, MemoryOptions, MemorySources, SysctlConfig, SysctlReport, TuneConfig, TuneError,
    app_memory, drop_caches, rss_bytes, sysctl,
};
