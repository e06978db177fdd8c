//! Shared vocabulary of kyb-maint.
//!
//! Every task crate speaks in these types: a [`Check`] is one finding with a [`Status`], a
//! [`TaskReport`] groups the checks of one task, and [`Thresholds`] turn a measured number into a
//! status. The [`fs`] module holds the filesystem primitives every crate that writes files uses.
//!
//! ```
//! use kyb_core::{Check, Status, TaskReport, Thresholds};
//! use std::time::Duration;
//!
//! let disk = Thresholds::new(80.0, 90.0);
//! let check = Check::new("disk /", disk.classify(85.0), "85.0% used");
//! let report = TaskReport::from_checks("system", vec![check], Duration::from_millis(12));
//! assert_eq!(report.status, Status::Warn);
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod config;
pub mod digest;
pub mod dir;
pub mod fit;
pub mod fs;
pub mod gzip;
pub mod process;
mod report;
mod run;
mod secret;
mod status;
mod target;
mod threshold;
pub mod users;

pub use report::{Check, Findings, Gauge, Metric, Report, TaskReport, Unit};
pub use run::{Cancel, RunCtx, WindowState};
pub use secret::Secret;
pub use status::Status;
pub use target::{
    PG_LIB_DIR, PgConnectError, PgConnectFailure, PgTarget, PgTimeout, PostgresSection, postgres_bindir,
};
pub use threshold::{Thresholds, ThresholdsError};

use std::time::Duration;

/// `error: cause: cause …` on one line, for report rows and error messages. A cause whose text
/// its parent already contains is left out (many errors repeat their source in their message).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whole milliseconds in `d`, saturating: the unit every report and config field uses.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `1.5 GiB`-style sizes for report lines: IEC units, one decimal; the one byte formatter of
/// every report.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
