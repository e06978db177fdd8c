//! Health probes for the platform and the machine it runs on.
//!
//! - [`check_app`], [`check_postgres`], [`check_redis`]: one probe each, every one under its own
//!   deadline; [`check_all`] runs the configured ones concurrently.
//! - [`system_metrics`]: CPU, memory, per-mount disk usage, load and uptime against thresholds.
//! - [`snapshot_metrics`]: saves the app's `/metrics` into the reports directory; [`scrape`]
//!   fetches and parses it.
//! - [`performance`]: the weekly performance analysis of a scrape against last week's snapshot
//!   ([`analyze_performance`] is the analysis itself).
//! - [`check_monitoring`]: Prometheus, Grafana and Alertmanager, with an optional restart.
//!
//! The tasks share one shape, `async fn(&Config, &RunCtx) -> Result<Report, Error>`; each report
//! holds its checks in [`Findings`](kyb_core::Findings). A probe that fails is a [`Check`] with a
//! [`Status`], never an `Err`: one dead dependency never stops the others from being checked.
//!
//! ```no_run
//! use kyb_health::{AppConfig, HealthConfig, check_all};
//! use kyb_core::{RunCtx, Thresholds};
//!
//! # async fn demo() {
//! let cfg = HealthConfig {
//!     app: Some(AppConfig {
//!         health_url: "http://127.0.0.1:8080/health".into(),
//!         timeout_ms: 5_000,
//!         max_body_bytes: 1 << 20,
//!         max_redirects: 5,
//!         latency_ms: Thresholds::new(500.0, 2_000.0),
//!     }),
//!     postgres: None,
//!     redis: None,
//! };
//! let ctx = RunCtx::new(time::OffsetDateTime::now_utc());
//! let Ok(report) = check_all(&cfg, &ctx).await;
//! println!("{}: {:?}", report.status, report.findings.checks);
//! # }
//! ```
//!
//! The config file's `[app]`, `[redis]`, `[system]`, `[performance]` and `[monitoring]` sections
//! are [`AppSection`], [`RedisSection`], [`SystemConfig`], [`PerfConfig`] and
//! [`MonitoringSection`]; `[postgres]` is [`kyb_core::PostgresSection`], whose probe is
//! [`PostgresConfig::from_section`]. A service that embeds the probes reads them as one
//! [`HealthSection`]:
//!
//! ```
//! use kyb_health::HealthSection;
//!
//! let mut section: HealthSection = toml::from_str(
//!     r#"
//!     [app]
//!     base_url = "http://127.0.0.1:8080/"
//!     latency_ms = { warn = 300, crit = 1500 }
//!
//!     [redis]
//!     port = 6380
//!     password_file = "secrets/redis"
//!     "#,
//! )
//! .unwrap();
//! section.resolve_paths(std::path::Path::new("/etc/kyb-maint"));
//! section.validate().unwrap();
//! let redis = section.redis.as_ref().unwrap();
//! assert_eq!(redis.password_file.as_deref(), Some(std::path::Path::new("/etc/kyb-maint/secrets/redis")));
//! let app = section.app.as_ref().unwrap();
//! assert_eq!(app.probe().health_url, "http://127.0.0.1:8080/health");
//! let snapshot = app.snapshot(std::path::Path::new("/var/lib/kyb-maint/reports"));
//! assert_eq!(snapshot.metrics_url, "http://127.0.0.1:8080/metrics");
//! assert!(section.postgres.is_none(), "no [postgres]: the database is not probed");
//!
//! let err = toml::from_str::<HealthSection>("[app]\nbase_url = \"ftp://a\"").unwrap().validate().unwrap_err();
//! assert_eq!(err.key, "app.base_url");
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod app;
mod error;
mod http;
mod monitoring;
mod perf;
mod postgres;
mod probe;
mod redis;
mod scrape;
mod section;
mod snapshot;
mod system;

pub use app::{AppConfig, check_app, judge_body as judge_health_body};
pub use error::HealthError;
pub use http::{FetchError, Fetched, get as http_get, parse_url};
pub use monitoring::{Component, MonitorTarget, MonitoringConfig, MonitoringReport, check_monitoring};
pub use perf::{
    EndpointLatency, PerfConfig, PerfReport, PerformanceTask, analyze_performance, performance,
    previous_snapshot,
};
pub use postgres::{PostgresConfig, check_postgres, pool};
pub use redis::{RedisConfig, check_redis};
pub use scrape::{ScrapeConfig, ScrapeError, Scraped, scrape};
pub use section::{AppSection, HealthSection, MonitoringSection, RedisSection};
pub use snapshot::{SNAPSHOT_CUT_MARKER, SnapshotConfig, SnapshotReport, snapshot_metrics};
pub use system::{DiskUsage, SystemConfig, SystemReport, human_bytes, system_metrics};

use kyb_core::{Check, Findings, RunCtx, Status};
use std::convert::Infallible;

/// Which dependencies to probe; `None` leaves one out.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// The app's health endpoint.
    pub app: Option<AppConfig>,
    /// PostgreSQL.
    pub postgres: Option<PostgresConfig>,
    /// Redis.
    pub redis: Option<RedisConfig>,
}

/// The outcome of [`check_all`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthReport {
    /// Worst status of the checks.
    pub status: Status,
    /// One check per configured dependency, in the order app, postgres, redis.
    #[serde(flatten)]
    pub findings: Findings,
}

kyb_core::impl_report!(HealthReport);

/// Probes every configured dependency at once, each on its own task so that one probe's CPU work
/// (SCRAM authentication, say) does not inflate another's measured latency. The slowest deadline
/// bounds the whole call. It only reads, so a dry run is the same run; a probe that fails is a
/// check, so the task itself never fails.
pub async fn check_all(cfg: &HealthConfig, _ctx: &RunCtx) -> Result<HealthReport, Infallible> {
    let app = cfg.app.clone().map(|c| tokio::spawn(async move { check_app(&c).await }));
    let pg = cfg.postgres.clone().map(|c| tokio::spawn(async move { check_postgres(&c).await }));
    let redis = cfg.redis.clone().map(|c| tokio::spawn(async move { check_redis(&c).await }));
    let mut checks = Vec::new();
    for (name, handle) in [("app", app), ("postgres", pg), ("redis", redis)] {
        let Some(handle) = handle else { continue };
        checks.push(match handle.await {
            Ok(check) => check,
            Err(e) => Check::new(name, Status::Unknown, format!("probe crashed: {e}")),
        });
    }
    let status = Status::worst(checks.iter().map(|c| c.status));
    Ok(HealthReport { status, findings: Findings::from_checks(checks) })
}
