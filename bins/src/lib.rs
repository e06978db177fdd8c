//! What the kyb binaries share, so that every one of them reads its arguments, logs, prints and
//! exits the same way.
//!
//! - [`cli`]: the options every flow and task binary takes (`--config`, `--format`,
//!   `--textfile`), logging, the report on stdout and the exit codes.
//! - [`nagios`]: plugin output for the binaries monitoring runs (`kyb-health`, `kyb-secaudit`).

/// `--version` of every binary: the package version and the git commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("KYB_GIT_COMMIT"), ")");

pub mod args;
pub mod cli;
pub mod nagios;
