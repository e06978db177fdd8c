//! Errors for tasks that could not run at all.

use std::path::PathBuf;

/// A health task that could not run. Probe failures are not errors: they are checks with a status.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Reading a kernel statistics file failed.
    #[error("cannot read {what} from /proc")]
    Proc {
        /// Which statistic.
        what: &'static str,
        /// The cause.
        #[source]
        source: procfs::ProcError,
    },
    /// Writing the metrics snapshot failed.
    #[error("cannot write metrics snapshot {path}")]
    Write {
        /// The snapshot path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kyb_core::fs::FsError,
    },
    /// The reports directory could not be created.
    #[error("cannot create reports directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
