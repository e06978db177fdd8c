//! Test and sandbox support: a private PostgreSQL and Redis, a fake platform app, and a real
//! Alertmanager and Pushgateway per test.
//!
//! The same machinery serves `cargo xtask sandbox`, `cargo xtask maint` and the test suites:
//! [`Stack::ensure`] starts (or reuses) a PostgreSQL cluster and a `redis-server` under
//! `target/kyb-sandbox/`, each on its own port with a generated password; [`FakeApp`] serves the
//! platform's `/health` and `/metrics` in the modes tests need.
//!
//! ```no_run
//! # async fn demo() {
//! let db = kyb_testkit::fresh_database("demo").await;
//! let app = kyb_testkit::FakeApp::start(kyb_testkit::HealthMode::Healthy).await;
//! println!("{} {}", db.dbname, app.url("/health"));
//! # }
//! ```
#![deny(missing_docs)]

mod app;
mod db;
mod monitor;
mod paths;
mod stack;

pub use app::{FakeApp, HealthMode, MetricsMode, MonitorMode, metrics_text};
pub use db::{TestDb, TestRedis, fresh_database, redis};
pub use monitor::PromServer;
pub use paths::{binary, sandbox_dir, workspace_root};
pub use stack::{SERVER_BINARIES, ScratchServer, Stack, StackError};
