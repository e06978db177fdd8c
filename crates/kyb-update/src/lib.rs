//! Updates of the platform: the application update with its health gate and rollback, SQL
//! migrations of its database, and the tuning tasks (application memory, sysctl, page caches).
//!
//! The config file's `[update]` section is an [`UpdateConfig`], its `[tuning]` section a
//! [`TuneConfig`]; each checks itself and makes its paths absolute:
//!
//! ```
//! use kyb_update::{TuneConfig, UpdateConfig};
//! use std::path::Path;
//!
//! let text = r#"
//!     binary = "opt/kyb-platform/kyb-platform"
//!     state_dir = "updates"
//!     [service]
//!     kind = "systemd"
//!     unit = "kyb-platform.service"
//!     [health]
//!     url = "http://127.0.0.1:8080/health"
//! "#;
//! let mut update: UpdateConfig = toml::from_str(text).unwrap();
//! update.validate().unwrap();
//! update.resolve_paths(Path::new("/etc/kyb"));
//! assert_eq!(update.state_dir, Path::new("/etc/kyb/updates"));
//! assert_eq!(update.keep_releases, 3);
//!
//! let tuning: TuneConfig = toml::from_str("[memory]\nrss_warn_bytes = 0\n").unwrap();
//! assert_eq!(tuning.validate().unwrap_err().key, "memory.rss_crit_bytes");
//! ```
//!
//! The tasks take their part of a section, or a config of their own, and the run's context
//! (its time, whether it is a dry run, whether a maintenance window is open); each report holds
//! its [`kyb_core::Findings`]:
//!
//! ```no_run
//! # async fn demo(update: kyb_update::UpdateConfig, tuning: kyb_update::TuneConfig, cfg: kyb_update::MigrateConfig) {
//! use kyb_core::RunCtx;
//!
//! let ctx = RunCtx::new(time::OffsetDateTime::now_utc()).with_dry_run(true);
//! let req = kyb_update::UpdateRequest { version: "2.4.0".into(), from: "/tmp/release".into(), ..Default::default() };
//! let report = kyb_update::update_app(&update, &req, &ctx).await;
//! if let Ok(sysctl) = kyb_update::sysctl(&tuning.sysctl, &ctx).await {
//!     println!("{}: {}", sysctl.file.display(), sysctl.findings.status());
//! }
//! match kyb_update::migrate(&cfg, &ctx).await {
//!     Ok(r) => println!("{} would apply, {} already there", r.applied.len(), r.already),
//!     Err(e) => eprintln!("{}", kyb_core::error_chain(&e)),
//! }
//! # drop(report);
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod app;
mod gate;
mod migrate;
mod section;
mod service;
mod tune;

pub use app::{ConfigDiff, Outcome, UpdateError, UpdateReport, UpdateRequest, update_app};
pub use gate::{GateConfig, GateReport, health_gate};
pub use migrate::{
    Applied, MIGRATE_LOCK_KEY, MigrateConfig, MigrateError, MigrateReport, Migration,
    apply as apply_migrations, migrate, read_migrations,
};
pub use section::{MemoryConfig, SysctlConfig, TuneConfig, UpdateConfig};
pub use service::{Instance, ServiceError, ServiceManager};
pub use tune::{
    MemoryReport, MemorySources, SysctlReport, TuneError, app_memory, drop_caches, rss_bytes, sysctl,
};
