//! Security audit of the platform host: certificates (files and live endpoints), file
//! permissions, security logs, OS security updates and dependency advisories.
//!
//! Every finding is a [`kyb_core::Check`] with a status; a source that could not be read is a
//! finding too (Unknown or Crit), never a silent pass.
//!
//! ```no_run
//! # async fn demo() {
//! use kyb_secaudit::{CertConfig, check_certs};
//! let cfg = CertConfig {
//!     paths: vec!["/etc/ssl/kyb-platform".into()],
//!     endpoints: vec![],
//!     warn_days: 30.0,
//!     crit_days: 7.0,
//!     ca_bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
//!     timeout_ms: 5_000,
//! };
//! for check in check_certs(&cfg, time::OffsetDateTime::now_utc()).await.checks {
//!     println!("{} {}: {}", check.status, check.name, check.summary);
//! }
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod advisories;
mod certs;
mod logs;
mod outdated;
mod perms;
mod updates;

pub use advisories::{AdvisoryConfig, AdvisoryReport, Finding, scan_advisories};
pub use certs::{CertConfig, CertInfo, CertReport, Endpoint, check_certs};
pub use logs::{Burst, LogScanConfig, LogScanReport, scan_logs};
pub use outdated::{Outdated, OutdatedConfig, OutdatedReport, check_outdated};
pub use perms::{PermConfig, PermReport, audit_permissions};
pub use updates::{PendingUpdate, UpdatesConfig, UpdatesReport, check_updates};
