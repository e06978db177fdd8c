//! Configuration, maintenance flows, run log, locking and report rendering.
//!
//! [`config::load`] reads the TOML config; [`run_flow`] runs a [`Flow`]'s tasks against it under
//! the run lock and returns a [`FlowReport`], which [`render_text`] or serde_json turn into
//! output. Binaries map the outcome to exit codes: [`FlowReport::exit_code`] for a finished run,
//! 2 for a [`FlowError`] or a [`ConfigError`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kyb_flows::{Flow, RunOptions, config, render_text, run_flow};
//! let cfg = config::load(std::path::Path::new("/etc/kyb-maint/kyb-maint.toml"))?;
//! let report = run_flow(Flow::Daily, &cfg, RunOptions::default()).await?;
//! print!("{}", render_text(&report));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod config;
mod deliver;
mod flow;
pub mod forecast;
pub mod history;
mod report;
mod runlog;
pub mod security;
pub mod task;
pub mod textfile;
pub mod window;

pub use config::{Config, ConfigError};
pub use deliver::deliver;
pub use flow::{Flow, FlowError, RunOptions, Task, cancel_on_shutdown, run_flow, run_tasks, shutdown_signal};
pub use report::{FlowReport, render_text};
pub use runlog::RunLog;
