//! [`StepError`]: why one step of an update (stage, validate, back up, swap, roll back) failed.
//!
//! A step's error ends up as the summary of its row in the report, so each message already holds
//! the text of its cause: render it with `to_string()` (`kyb_core::error_chain` gives the same
//! text, as it skips a cause the message already shows).

use crate::UpdateError;
use crate::service::ServiceError;
use kyb_backup::BackupError;
use kyb_core::fs::{FsError, ReadError};
use kyb_core::users::LookupError;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// A step of an update that failed; the update then stops (before the swap) or rolls back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    /// Opening, inspecting, reading, writing, creating or removing a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A bounded read of a regular file (a release config) failed or was refused.
    #[error("{path}: {}", kyb_core::error_chain(.source))]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ReadError,
    },
    /// A file that has to be there is not.
    #[error("{path}: no such file")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A path that has to name a file has no file name.
    #[error("{path}: not a file path")]
    NotAFilePath {
        /// The path.
        path: PathBuf,
    },
    /// The release to install is not a regular file.
    #[error("{path} is not a regular file")]
    NotRegular {
        /// The release's binary.
        path: PathBuf,
    },
    /// The release to install is an empty file.
    #[error("{path} is empty")]
    Empty {
        /// The release's binary.
        path: PathBuf,
    },
    /// A file written a moment ago is gone.
    #[error("{path}: vanished")]
    Vanished {
        /// The file.
        path: PathBuf,
    },
    /// A release directory does not hold a binary of the installed binary's name.
    #[error("release directory {dir} has no {name}")]
    NoBinary {
        /// The release directory.
        dir: PathBuf,
        /// The installed binary's file name.
        name: String,
    },
    /// The checksum given on the command line is not a SHA-256.
    #[error("--sha256 {given:?} is not 64 hex digits")]
    Sha256Arg {
        /// As given.
        given: String,
    },
    /// The checksum file cannot be read.
    #[error("checksum file {path}: {}", kyb_core::error_chain(.source))]
    ChecksumRead {
        /// The checksum file.
        path: PathBuf,
        /// The cause.
        source: ReadError,
    },
    /// A line of the checksum file is not `<sha256>  <file>`.
    #[error("checksum file {path} line {line}: not `<sha256>  <file>`")]
    ChecksumLine {
        /// The checksum file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// The checksum file does not list the binary.
    #[error("checksum file {path} has no line for {name}")]
    ChecksumMissing {
        /// The checksum file.
        path: PathBuf,
        /// The binary's file name.
        name: String,
    },
    /// The checksum file lists the binary more than once.
    #[error("checksum file {path} has several lines for {name}")]
    ChecksumAmbiguous {
        /// The checksum file.
        path: PathBuf,
        /// The binary's file name.
        name: String,
    },
    /// The configured owner or group does not exist.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// Giving a file its owner failed.
    #[error("chown {path}: {source}")]
    Chown {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustix::io::Errno,
    },
    /// Giving a file its mode failed.
    #[error("chmod {path}: {source}")]
    Chmod {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Flushing a file or a directory to disk failed.
    #[error("fsync {path}: {source}")]
    Fsync {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Moving a file or directory into place failed.
    #[error("rename {from} to {to}: {source}")]
    Rename {
        /// What was moved.
        from: PathBuf,
        /// Where to.
        to: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Creating a symlink failed.
    #[error("symlink {path}: {source}")]
    Symlink {
        /// The new link.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Creating a directory of the pre-update backup failed.
    #[error("cannot create {path}: {source}")]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Removing what an earlier attempt left in a release's place failed.
    #[error("remove leftover {path}: {source}")]
    RemoveLeftover {
        /// The leftover release directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The staged binary is not executable.
    #[error("the new binary is not executable (mode {mode:04o}); set `mode` in [update]")]
    NotExecutable {
        /// Its permission bits.
        mode: u32,
    },
    /// The check command did not finish in time.
    #[error("`{command}` did not finish within {timeout_ms} ms")]
    CheckTimeout {
        /// The command as configured.
        command: String,
        /// The limit.
        timeout_ms: u64,
    },
    /// The check command could not be started.
    #[error("cannot run `{command}`: {source}")]
    CheckSpawn {
        /// The command as configured.
        command: String,
        /// The cause.
        source: io::Error,
    },
    /// The check command exited with a failure.
    #[error("`{command}` failed ({status}): {output}")]
    CheckFailed {
        /// The command as configured.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it said (stderr, else stdout), trimmed and cut to 500 bytes.
        output: String,
    },
    /// The releases layout is not what the config says (`current` is not a link to a release).
    #[error(transparent)]
    Layout(UpdateError),
    /// The releases directory asked for is the current release.
    #[error("{path} is the current release")]
    IsCurrent {
        /// The release directory.
        path: PathBuf,
    },
    /// Copying a config file into the pre-update backup failed.
    #[error("config {0}")]
    ConfigBackup(#[source] Box<StepError>),
    /// The pre-update database dump failed.
    #[error("database dump: {}", kyb_core::error_chain(.0))]
    Dump(#[source] BackupError),
    /// Writing the update's record (`state.json`, `in-progress.json`) failed.
    #[error("{}", kyb_core::error_chain(.0))]
    Record(#[source] FsError),
    /// Stopping the service failed.
    #[error("stop: {}", kyb_core::error_chain(.0))]
    Stop(#[source] ServiceError),
    /// Starting the service failed.
    #[error("start: {}", kyb_core::error_chain(.0))]
    Start(#[source] ServiceError),
    /// The copy meant to be the previous binary has other contents.
    #[error("{path} does not hold the previous binary (sha256 {sha256})")]
    NotPrevious {
        /// Where it was copied from.
        path: PathBuf,
        /// The copy's sha256.
        sha256: String,
    },
}
