//! The application update: stage, validate, back up, swap, health gate, and rollback.
//!
//! One update runs at a time (a run lock in the state directory). The new binary is copied next
//! to the installed one (same filesystem, so the swap is one `rename`), hashed while copied and
//! compared with the expected checksum, given its mode and owner, and fsynced. Nothing is stopped
//! until the staged binary passes its own `--config-check` and a backup of the current binary,
//! the configs and (when configured) the database exists.
//!
//! The swap keeps the previous binary as `<binary>.previous` (a hard link, so the installed path
//! is never missing) and records each phase in `<backup>/state.json`, pointed to by
//! `<state_dir>/in-progress.json`. A run that finds that pointer, because an earlier one was
//! killed, first puts the previous binary and configs back and brings the service up healthy, then
//! goes on. Any failure after the service was stopped rolls back the same way.
//!
//! This module holds the public types and the order of the steps; the steps live in submodules
//! by concern: `stage` (the release, its checksum, staging and validation), `backup` (the
//! pre-update backup), `state` (the record of an update in progress), `swap` (stop, swap, start,
//! rollback), `releases` (the releases layout), `configs` (the app's config files) and `plan`
//! (the dry run), on the file steps of `files`. A step that fails says why with a `StepError`.

mod backup;
mod configs;
mod error;
mod files;
mod plan;
mod releases;
mod stage;
mod state;
mod swap;

pub(crate) use configs::line_diff;
pub(crate) use error::StepError;

use backup::{backup, prune_backups};
use configs::diff_configs;
use plan::plan;
use releases::{current_link, install_release, prune_releases};
use stage::{discard_stage, expected_sha, locate, prepare_stage, stage, validate, validate_summary};
use state::{Phase, read_in_progress, record};
use swap::{rollback, swap};

use crate::gate::{GateReport, health_gate};
use crate::section::UpdateConfig;
use kyb_core::fs::{LockError, RunLock};
use kyb_core::{Check, Findings, RunCtx, Status};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One update to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateRequest {
    /// The version being installed (letters, digits, `.`, `_`, `-`, `+`).
    pub version: String,
    /// The new binary, or a release directory holding it under the installed binary's file name
    /// (plus, optionally, `SHA256SUMS` and `configs/<name>`).
    pub from: PathBuf,
    /// The expected SHA-256 of the new binary, hex.
    pub sha256: Option<String>,
    /// A `sha256sum`-style file listing the new binary.
    pub checksum_file: Option<PathBuf>,
    /// Install the release's config files instead of only showing how they differ.
    pub merge_configs: bool,
}

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new version runs and passed the health gate.
    Updated,
    /// A dry run: the plan was printed.
    Planned,
    /// The update stopped before the service was touched; it runs as before.
    NotChanged,
    /// The update failed after the swap began and the previous version is back and healthy.
    RolledBack,
    /// The rollback failed too: someone has to look. The report says what state things are in.
    RollbackFailed,
}

impl Outcome {
    /// The exit code: 0 updated (or planned), 1 failed with the service as it was, 2 the
    /// rollback failed.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Updated | Outcome::Planned => 0,
            Outcome::NotChanged | Outcome::RolledBack => 1,
            Outcome::RollbackFailed => 2,
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateReport {
    /// The version asked for.
    pub version: String,
    /// How it ended.
    pub outcome: Outcome,
    /// One check per step, in order (in a dry run, what each step would do): `recover`,
    /// `release`, `checksum`, `stage`, `validate`, `configs`, `backup`, `record`, `swap`,
    /// `health-gate`, `prune`, `prune-releases`, and on the way back `rollback-stop`,
    /// `rollback`, `rollback-start`, `rollback-health-gate`.
    #[serde(flatten)]
    pub findings: Findings,
    /// How the release's config files differ from the installed ones.
    pub config_diffs: Vec<ConfigDiff>,
    /// The pre-update backup.
    pub backup: Option<PathBuf>,
    /// Where things stand now, in words (always filled when the rollback failed).
    pub state: Vec<String>,
}

kyb_core::impl_report!(UpdateReport);

/// A release config file that differs from the installed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// The installed file.
    pub installed: PathBuf,
    /// The release's file.
    pub release: PathBuf,
    /// Changed lines: `-` installed only, `+` release only, with line numbers.
    pub diff: String,
    /// It was (or in a dry run, would be) installed.
    pub merged: bool,
}

/// Why an update could not start. Nothing was changed, except for [`UpdateError::Record`]: an
/// earlier update was interrupted and its record cannot be read, so the service may be on either
/// version.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The version string is empty or has characters a file name should not.
    #[error("invalid version {0:?}: use letters, digits, '.', '_', '-' or '+'")]
    Version(String),
    /// There is no installed binary to update and roll back to.
    #[error("{path}: no installed binary to update")]
    NotInstalled {
        /// The configured binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The releases layout is configured but the `current` link is not a link to a release.
    #[error("{path}: {why}")]
    Layout {
        /// The `current` link.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The version asked for is already the current release (releases layout).
    #[error("{version} is already the current release ({dir}); nothing to do")]
    AlreadyCurrent {
        /// The version.
        version: String,
        /// Its release directory.
        dir: PathBuf,
    },
    /// The state directory cannot be made or read.
    #[error("state directory {path}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another update is running.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The record of an interrupted update cannot be read.
    #[error(
        "cannot read the interrupted update's record {path}: {reason}; the service may be on either version: \
         check it, restore from the pre-update backup if needed, then remove the record"
    )]
    Record {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl UpdateError {
    /// 2 when an interrupted update left things in an unknown state, 3 otherwise (nothing
    /// changed).
    pub fn exit_code(&self) -> u8 {
        if matches!(self, UpdateError::Record { .. }) { 2 } else { 3 }
    }
}

/// One update under way: its config and request, and the report so far.
struct Run<'a> {
    cfg: &'a UpdateConfig,
    req: &'a UpdateRequest,
    steps: Vec<Check>,
    config_diffs: Vec<ConfigDiff>,
    backup: Option<PathBuf>,
    /// An interrupted update was rolled back at the start of this run.
    recovered: bool,
}

impl Run<'_> {
    fn step(&mut self, name: &str, status: Status, summary: impl Into<String>) {
        let summary = summary.into();
        tracing::info!(step = name, status = status.as_str(), "{summary}");
        self.steps.push(Check::new(name, status, summary));
    }

    fn end(self, outcome: Outcome, state: Vec<String>) -> UpdateReport {
        UpdateReport {
            version: self.req.version.clone(),
            outcome,
            findings: Findings::from_checks(self.steps),
            config_diffs: self.config_diffs,
            backup: self.backup,
            state,
        }
    }

    fn not_changed(mut self, name: &str, why: impl Into<String>) -> UpdateReport {
        self.step(name, Status::Crit, why);
        let state = if self.recovered {
            vec![format!(
                "the interrupted update was rolled back first: {} is the previous version again, restarted and \
                 healthy; this run changed nothing more",
                self.cfg.binary.display()
            )]
        } else {
            vec![format!("{} is unchanged; the service was not touched", self.cfg.binary.display())]
        };
        self.end(Outcome::NotChanged, state)
    }
}

/// Updates the application as `req` asks. `Err` only when the update could not start (nothing
/// changed); every other ending, including a failed rollback, is a report with its [`Outcome`].
/// A dry run (`ctx.dry_run`) takes no lock, changes nothing and reports the plan; the
/// pre-update backup is named after `ctx.now`.
pub async fn update_app(
    cfg: &UpdateConfig,
    req: &UpdateRequest,
    ctx: &RunCtx,
) -> Result<UpdateReport, UpdateError> {
    let version_ok = !req.version.is_empty()
        && req.version.len() <= 64
        && req.version.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
        && !req.version.starts_with('.');
    if !version_ok {
        return Err(UpdateError::Version(req.version.clone()));
    }
    // In the releases layout, `current` must be a link to a release (checked again after any
    // recovery below, which may move it).
    current_link(cfg)?;
    let installed = std::fs::symlink_metadata(&cfg.binary)
        .map_err(|source| UpdateError::NotInstalled { path: cfg.binary.clone(), source })?;
    if !installed.is_file() {
        let source = std::io::Error::other("not a regular file");
        return Err(UpdateError::NotInstalled { path: cfg.binary.clone(), source });
    }
    let state_err = |source| UpdateError::StateDir { path: cfg.state_dir.clone(), source };
    // A dry run only reads: it takes no lock and creates nothing.
    let _lock = if ctx.dry_run {
        None
    } else {
        std::fs::create_dir_all(&cfg.state_dir).map_err(state_err)?;
        Some(RunLock::try_acquire(&cfg.state_dir.join("update.lock"))?)
    };
    let mut run =
        Run { cfg, req, steps: Vec::new(), config_diffs: Vec::new(), backup: None, recovered: false };

    if let Some(state) = read_in_progress(cfg)? {
        let what = format!("an interrupted update to {} (phase {:?})", state.version, state.phase);
        if ctx.dry_run {
            run.step("recover", Status::Warn, format!("{what} would be rolled back first"));
        } else {
            run.step("recover", Status::Warn, format!("{what} found: rolling it back first"));
            let (ok, state_words) = rollback(&mut run, state).await;
            if !ok {
                return Ok(run.end(Outcome::RollbackFailed, state_words));
            }
            run.recovered = true;
        }
    }

    if let Some((_, dir)) = current_link(cfg)?
        && dir.file_name().is_some_and(|n| n == req.version.as_str())
    {
        if run.recovered {
            return Ok(run.not_changed("release", format!("{} is the current release again", req.version)));
        }
        return Err(UpdateError::AlreadyCurrent { version: req.version.clone(), dir });
    }

    let release = match locate(cfg, req) {
        Ok(r) => r,
        Err(why) => return Ok(run.not_changed("release", why.to_string())),
    };
    let expected = match expected_sha(req, &release) {
        Ok(e) => e,
        Err(why) => return Ok(run.not_changed("checksum", why.to_string())),
    };
    if ctx.dry_run {
        return Ok(plan(run, &release, expected).await);
    }

    // Stage.
    let staged = match prepare_stage(cfg, &req.version) {
        Ok(p) => p,
        Err(why) => return Ok(run.not_changed("stage", why.to_string())),
    };
    let discard = |staged: &Path| discard_stage(cfg, staged);
    let new_sha = match stage(cfg, &release.binary, &staged) {
        Ok(sha) => sha,
        Err(why) => {
            discard(&staged);
            return Ok(run.not_changed("stage", why.to_string()));
        }
    };
    match &expected {
        Some((want, from)) if *want != new_sha => {
            discard(&staged);
            let why = format!("sha256 of {} is {new_sha}, {from} says {want}", release.binary.display());
            return Ok(run.not_changed("checksum", why));
        }
        Some((_, from)) => run.step("checksum", Status::Ok, format!("sha256 {new_sha} matches {from}")),
        None => {
            run.step("checksum", Status::Warn, format!("sha256 {new_sha}; no checksum given to compare with"))
        }
    }
    run.step("stage", Status::Ok, format!("{} staged as {}", release.binary.display(), staged.display()));

    // Validate.
    if let Err(why) = validate(cfg, &staged).await {
        discard(&staged);
        return Ok(run.not_changed("validate", why.to_string()));
    }
    run.step("validate", Status::Ok, validate_summary(cfg));
    let staged = match install_release(cfg, &req.version, &staged) {
        Ok(p) => p,
        Err(why) => {
            discard(&staged);
            return Ok(run.not_changed("stage", why.to_string()));
        }
    };
    let merges = match diff_configs(&mut run, &release) {
        Ok(m) => m,
        Err(why) => {
            discard(&staged);
            return Ok(run.not_changed("configs", why.to_string()));
        }
    };

    // Back up.
    let state = match backup(cfg, req, &new_sha, ctx).await {
        Ok(s) => s,
        Err(why) => {
            discard(&staged);
            return Ok(run.not_changed("backup", why.to_string()));
        }
    };
    let backup_dir = state.backup_dir().to_owned();
    run.backup = Some(backup_dir.clone());
    let db =
        state.database_backup.as_ref().map_or(String::new(), |d| format!(", database dump {}", d.display()));
    run.step(
        "backup",
        Status::Ok,
        format!("binary and {} config(s) in {}{db}", state.configs.len(), backup_dir.display()),
    );

    // Swap.
    let mut state = state;
    if let Err(why) = record(cfg, &mut state, Phase::Swapping) {
        discard(&staged);
        return Ok(run.not_changed("record", why.to_string()));
    }
    if let Err(why) = swap(cfg, &staged, &merges).await {
        run.step("swap", Status::Crit, why.to_string());
        discard(&staged);
        let (ok, words) = rollback(&mut run, state).await;
        return Ok(run.end(if ok { Outcome::RolledBack } else { Outcome::RollbackFailed }, words));
    }
    let swapped = match &state.link {
        Some((link, old)) => format!(
            "{} now points to {}; previous release {}",
            link.display(),
            staged.parent().unwrap_or(Path::new("/")).display(),
            old.display()
        ),
        None => format!("{} replaced; previous kept as {}", cfg.binary.display(), state.previous.display()),
    };
    run.step("swap", Status::Ok, swapped);

    let gate = health_gate(&cfg.health, &cfg.service, Some(&req.version)).await;
    if !gate.passed {
        run.step("health-gate", Status::Crit, gate_summary(&gate));
        let (ok, words) = rollback(&mut run, state).await;
        return Ok(run.end(if ok { Outcome::RolledBack } else { Outcome::RollbackFailed }, words));
    }
    run.step("health-gate", Status::Ok, gate_summary(&gate));
    if let Err(why) = record(cfg, &mut state, Phase::Done) {
        run.step("record", Status::Warn, why.to_string());
    }
    prune_backups(&mut run);
    prune_releases(&mut run, &state);
    let words = vec![format!(
        "{} is version {} (sha256 {new_sha}) and healthy; the previous binary is {}",
        cfg.binary.display(),
        req.version,
        state.previous.display()
    )];
    Ok(run.end(Outcome::Updated, words))
}

fn gate_summary(gate: &GateReport) -> String {
    let version = gate.version.as_ref().map_or(String::new(), |v| format!(", reports version {v}"));
    format!("{} ({} probes, {} ms{version})", gate.detail, gate.probes, gate.took_ms)
}
