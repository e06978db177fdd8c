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

/// `error: cause: cause` for a report line, since reports show one line per problem.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
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
