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

use crate::gate::{GateReport, health_gate};
use crate::section::UpdateConfig;
use kyb_core::config::OctalMode;
use kyb_core::digest::{hex, sha256_file};
use kyb_core::fs::{LockError, RunLock, atomic_write};
use kyb_core::{Check, Status};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

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
    /// Print the plan; change nothing.
    pub dry_run: bool,
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
    /// Each step, in order.
    pub steps: Vec<Check>,
    /// How the release's config files differ from the installed ones.
    pub config_diffs: Vec<ConfigDiff>,
    /// The pre-update backup.
    pub backup: Option<PathBuf>,
    /// Where things stand now, in words (always filled when the rollback failed).
    pub state: Vec<String>,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    BackedUp,
    Swapping,
    Done,
    RolledBack,
    RollbackFailed,
}

/// A config file as it was before the update; `copy` and `sha256` are `None` when it did not
/// exist (a rollback then removes it).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedConfig {
    path: PathBuf,
    copy: Option<PathBuf>,
    sha256: Option<String>,
    owner: Option<Owner>,
}

/// Mode and ownership of a file, put back on anything written in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Owner {
    fn of(path: &Path) -> Option<Owner> {
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(Owner { mode: m.mode() & 0o7777, uid: m.uid(), gid: m.gid() })
    }

    /// Gives the open file this owner and mode (owner first: chown clears set-id bits).
    fn apply(self, file: &File, path: &Path) -> Result<(), String> {
        let m = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
        if (m.uid(), m.gid()) != (self.uid, self.gid) {
            let (uid, gid) = (rustix::fs::Uid::from_raw(self.uid), rustix::fs::Gid::from_raw(self.gid));
            rustix::fs::fchown(file, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| format!("chmod {}: {e}", path.display()))
    }
}

/// The pre-update backup's record, `<backup>/state.json`, rewritten at each phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UpdateState {
    version: String,
    created_at: String,
    phase: Phase,
    binary: PathBuf,
    previous: PathBuf,
    old_sha256: String,
    new_sha256: String,
    binary_copy: PathBuf,
    binary_owner: Option<Owner>,
    /// In the releases layout: the `current` link and the release directory it pointed to.
    #[serde(default)]
    link: Option<(PathBuf, PathBuf)>,
    configs: Vec<SavedConfig>,
    database_backup: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct InProgress {
    state: PathBuf,
}

struct Release {
    binary: PathBuf,
    checksum_file: Option<PathBuf>,
    configs: Vec<(PathBuf, PathBuf)>,
}

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
            steps: self.steps,
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

/// Updates the application. `Err` only when the update could not start (nothing changed); every
/// other ending, including a failed rollback, is a report with its [`Outcome`].
pub async fn update_app(
    cfg: &UpdateConfig,
    req: &UpdateRequest,
    now: OffsetDateTime,
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
    let _lock = if req.dry_run {
        None
    } else {
        std::fs::create_dir_all(&cfg.state_dir).map_err(state_err)?;
        Some(RunLock::try_acquire(&cfg.state_dir.join("update.lock"))?)
    };
    let mut run =
        Run { cfg, req, steps: Vec::new(), config_diffs: Vec::new(), backup: None, recovered: false };

    if let Some(state) = read_in_progress(cfg)? {
        let what = format!("an interrupted update to {} (phase {:?})", state.version, state.phase);
        if req.dry_run {
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
        Err(why) => return Ok(run.not_changed("release", why)),
    };
    let expected = match expected_sha(req, &release) {
        Ok(e) => e,
        Err(why) => return Ok(run.not_changed("checksum", why)),
    };
    if req.dry_run {
        return Ok(plan(run, &release, expected).await);
    }

    // Stage.
    let staged = match prepare_stage(cfg, &req.version) {
        Ok(p) => p,
        Err(why) => return Ok(run.not_changed("stage", why)),
    };
    let discard = |staged: &Path| discard_stage(cfg, staged);
    let new_sha = match stage(cfg, &release.binary, &staged) {
        Ok(sha) => sha,
        Err(why) => {
            discard(&staged);
            return Ok(run.not_changed("stage", why));
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
        return Ok(run.not_changed("validate", why));
    }
    run.step("validate", Status::Ok, validate_summary(cfg));
    let staged = match install_release(cfg, &req.version, &staged) {
        Ok(p) => p,
        Err(why) => {
            discard(&staged);
            return Ok(run.not_changed("stage", why));
        }
    };
    let merges = match diff_configs(&mut run, &release) {
        Ok(m) => m,
        Err(why) => {
            discard(&staged);
            return Ok(run.not_changed("configs", why));
        }
    };

    // Back up.
    let state = match backup(cfg, req, &new_sha, now).await {
        Ok(s) => s,
        Err(why) => {
            discard(&staged);
            return Ok(run.not_changed("backup", why));
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
        return Ok(run.not_changed("record", why));
    }
    if let Err(why) = swap(cfg, &staged, &merges).await {
        run.step("swap", Status::Crit, why);
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
        run.step("record", Status::Warn, why);
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

impl UpdateState {
    fn backup_dir(&self) -> &Path {
        self.binary_copy.parent().and_then(Path::parent).unwrap_or(Path::new("/"))
    }
}

fn gate_summary(gate: &GateReport) -> String {
    let version = gate.version.as_ref().map_or(String::new(), |v| format!(", reports version {v}"));
    format!("{} ({} probes, {} ms{version})", gate.detail, gate.probes, gate.took_ms)
}

fn validate_summary(cfg: &UpdateConfig) -> String {
    if cfg.check_command.is_empty() {
        "regular executable file (no check command configured)".into()
    } else {
        format!("regular executable file; `{}` exited 0", cfg.check_command.join(" "))
    }
}

/// `<dir>/.<name>.<tag>`: beside the binary, so on its filesystem.
fn staged_path(binary: &Path, tag: &str) -> PathBuf {
    let name = binary.file_name().map_or_else(|| "binary".into(), |n| n.to_string_lossy().into_owned());
    binary.with_file_name(format!(".{name}.{tag}"))
}

fn previous_path(binary: &Path) -> PathBuf {
    let mut s = binary.as_os_str().to_owned();
    s.push(".previous");
    PathBuf::from(s)
}

fn remove_quietly(path: &Path) {
    let _ = std::fs::remove_file(path);
}

fn locate(cfg: &UpdateConfig, req: &UpdateRequest) -> Result<Release, String> {
    let from = &req.from;
    let meta = std::fs::metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if !meta.is_dir() {
        return Ok(Release {
            binary: from.clone(),
            checksum_file: req.checksum_file.clone(),
            configs: Vec::new(),
        });
    }
    let name = cfg.binary.file_name().ok_or_else(|| format!("{}: not a file path", cfg.binary.display()))?;
    let binary = from.join(name);
    if !binary.exists() {
        return Err(format!("release directory {} has no {}", from.display(), name.to_string_lossy()));
    }
    let sums = from.join("SHA256SUMS");
    // Present in any form counts: a FIFO or a link to a device there is refused when read, not
    // taken for a release without checksums.
    let present = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let checksum_file = req.checksum_file.clone().or_else(|| present(&sums).then_some(sums));
    let configs = cfg
        .configs
        .iter()
        .filter_map(|installed| {
            let candidate = from.join("configs").join(installed.file_name()?);
            present(&candidate).then(|| (installed.clone(), candidate))
        })
        .collect();
    Ok(Release { binary, checksum_file, configs })
}

/// The expected sha256 and where it came from.
fn expected_sha(req: &UpdateRequest, release: &Release) -> Result<Option<(String, String)>, String> {
    if let Some(given) = &req.sha256 {
        let want = given.trim().to_ascii_lowercase();
        if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("--sha256 {given:?} is not 64 hex digits"));
        }
        return Ok(Some((want, "--sha256".into())));
    }
    let Some(file) = &release.checksum_file else { return Ok(None) };
    let (text, _) = kyb_core::fs::read_regular(file, 1 << 20)
        .map_err(|e| format!("checksum file {}: {}", file.display(), kyb_core::error_chain(&e)))?;
    let text = String::from_utf8_lossy(&text);
    let name = release.binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (hash, file_name) = match line.split_once(char::is_whitespace) {
            Some((h, f)) => (h, f.trim_start().trim_start_matches('*')),
            None => (line, ""),
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("checksum file {} line {}: not `<sha256>  <file>`", file.display(), n + 1));
        }
        let base = Path::new(file_name).file_name().map(|f| f.to_string_lossy().into_owned());
        if file_name.is_empty() || base.as_deref() == Some(name.as_str()) {
            found.push(hash.to_ascii_lowercase());
        }
    }
    match found.as_slice() {
        [one] => Ok(Some((one.clone(), format!("checksum file {}", file.display())))),
        [] => Err(format!("checksum file {} has no line for {name}", file.display())),
        _ => Err(format!("checksum file {} has several lines for {name}", file.display())),
    }
}

/// Copies the release to `staged` (exclusive, no-follow), hashing as it goes; sets mode and
/// owner on the handle; fsyncs the file and its directory.
fn stage(cfg: &UpdateConfig, from: &Path, staged: &Path) -> Result<String, String> {
    // A leftover from an earlier run that stopped part-way is ours to replace.
    remove_quietly(staged);
    let meta = std::fs::metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", from.display()));
    }
    if meta.len() == 0 {
        return Err(format!("{} is empty", from.display()));
    }
    let (out, sha) = copy_hashing(from, staged, 0o600)?;
    // Unless configured, the new binary gets the installed one's owner and group.
    let installed = Owner::of(&cfg.binary);
    let current = Owner::of(staged).ok_or_else(|| format!("{}: vanished", staged.display()))?;
    let uid = match cfg.owner.as_deref() {
        Some(name) => kyb_core::users::uid(name).map_err(|e| e.to_string())?,
        None => installed.map_or(current.uid, |o| o.uid),
    };
    let gid = match cfg.group.as_deref() {
        Some(name) => kyb_core::users::gid(name).map_err(|e| e.to_string())?,
        None => installed.map_or(current.gid, |o| o.gid),
    };
    Owner { mode: cfg.mode.map_or(meta.mode() & 0o7777, OctalMode::bits), uid, gid }.apply(&out, staged)?;
    out.sync_all().map_err(|e| format!("fsync {}: {e}", staged.display()))?;
    sync_parent(staged)?;
    Ok(sha)
}

fn sync_parent(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("fsync {}: {e}", dir.display()))
}

/// A regular file with an execute bit, whose check command exits 0 in time.
async fn validate(cfg: &UpdateConfig, staged: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(staged).map_err(|e| format!("{}: {e}", staged.display()))?;
    if !meta.is_file() || meta.mode() & 0o111 == 0 {
        return Err(format!(
            "the new binary is not executable (mode {:04o}); set `mode` in [update]",
            meta.mode() & 0o7777
        ));
    }
    let Some((program, args)) = cfg.check_command.split_first() else { return Ok(()) };
    let fill = |a: &String| a.replace("{binary}", &staged.to_string_lossy());
    let shown = cfg.check_command.join(" ");
    let mut cmd = tokio::process::Command::new(fill(program));
    cmd.args(args.iter().map(fill))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // The staged binary was written a moment ago: see `spawn_retrying_busy`.
    let mut busy_pause = Duration::from_millis(5);
    let out = loop {
        let attempt = tokio::time::timeout(cfg.check_timeout_ms.duration(), cmd.output())
            .await
            .map_err(|_| format!("`{shown}` did not finish within {} ms", cfg.check_timeout_ms.get()))?;
        match attempt {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && busy_pause < Duration::from_secs(1) =>
            {
                tokio::time::sleep(busy_pause).await;
                busy_pause *= 2;
            }
            other => break other.map_err(|e| format!("cannot run `{shown}`: {e}"))?,
        }
    };
    if out.status.success() {
        return Ok(());
    }
    let mut said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if said.is_empty() {
        said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    said.truncate(500);
    Err(format!("`{shown}` failed ({}): {said}", out.status))
}

/// A config file, regular and at most 16 MiB (a FIFO or a device in its place is an error, not
/// a hang); `None` when it does not exist. The error does not repeat the path.
fn read_config(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match kyb_core::fs::read_regular(path, 16 << 20) {
        Ok((bytes, _)) => Ok(Some(bytes)),
        Err(kyb_core::fs::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(kyb_core::error_chain(&e)),
    }
}

/// Compares each release config with the installed one; returns those to install.
fn diff_configs(run: &mut Run<'_>, release: &Release) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let mut merges = Vec::new();
    for (installed, candidate) in &release.configs {
        let new = read_config(candidate)
            .and_then(|c| c.ok_or_else(|| "no such file".to_owned()))
            .map_err(|e| format!("{}: {e}", candidate.display()))?;
        let old =
            read_config(installed).map_err(|e| format!("{}: {e}", installed.display()))?.unwrap_or_default();
        if new == old {
            continue;
        }
        let diff = line_diff(&String::from_utf8_lossy(&old), &String::from_utf8_lossy(&new));
        let merged = run.req.merge_configs;
        run.config_diffs.push(ConfigDiff {
            installed: installed.clone(),
            release: candidate.clone(),
            diff,
            merged,
        });
        if merged {
            merges.push((installed.clone(), new));
        }
    }
    if !release.configs.is_empty() {
        let (n, verb) = (
            run.config_diffs.len(),
            if run.req.merge_configs {
                "installed with the binary"
            } else {
                "shown, not installed (--merge-configs installs them)"
            },
        );
        run.step(
            "configs",
            if n > 0 && !run.req.merge_configs { Status::Warn } else { Status::Ok },
            format!("{n} release config(s) differ: {verb}"),
        );
    }
    Ok(merges)
}

/// Changed lines between two texts, from their longest common subsequence of lines.
pub(crate) fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        return format!("files differ ({} and {} lines; too long to compare line by line)", a.len(), b.len());
    }
    // lcs[i][j]: common lines of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{:>4} {}\n", i + 1, a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{:>4} {}\n", j + 1, b[j]));
            j += 1;
        }
    }
    out
}

/// Copies `from` to `to` (a new file), fsynced; returns its sha256.
fn copy_synced(from: &Path, to: &Path, mode: u32) -> Result<String, String> {
    let (out, sha) = copy_hashing(from, to, mode)?;
    out.sync_all().map_err(|e| format!("fsync {}: {e}", to.display()))?;
    Ok(sha)
}

/// Copies `from` into a new file `to` (exclusive, no-follow, `mode`), hashing as it goes;
/// returns the open copy and its sha256.
fn copy_hashing(from: &Path, to: &Path, mode: u32) -> Result<(File, String), String> {
    let mut src = File::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut out = kyb_core::fs::create_new(to, mode).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = src.read(&mut buf).map_err(|e| format!("{}: {e}", from.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    Ok((out, hex(&hasher.finalize())))
}

/// The pre-update backup: binary, configs, database, and `state.json` last. On failure the
/// partial backup directory is removed.
async fn backup(
    cfg: &UpdateConfig,
    req: &UpdateRequest,
    new_sha: &str,
    now: OffsetDateTime,
) -> Result<UpdateState, String> {
    let stamp = now
        .format(time::macros::format_description!("[year][month][day]_[hour][minute][second]"))
        .unwrap_or_default();
    let dir = kyb_core::fs::unused_path(&cfg.state_dir, &format!("pre_update_{stamp}_{}", req.version), "");
    let result = fill_backup(cfg, req, new_sha, now, &dir).await;
    if result.is_err() {
        let _ = kyb_core::dir::remove_tree(&dir);
    }
    result
}

async fn fill_backup(
    cfg: &UpdateConfig,
    req: &UpdateRequest,
    new_sha: &str,
    now: OffsetDateTime,
    dir: &Path,
) -> Result<UpdateState, String> {
    use std::os::unix::fs::DirBuilderExt;
    let mkdir = |p: &Path| {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(p)
            .map_err(|e| format!("cannot create {}: {e}", p.display()))
    };
    mkdir(dir)?;
    mkdir(&dir.join("binary"))?;
    mkdir(&dir.join("configs"))?;
    let name = cfg.binary.file_name().unwrap_or_default();
    let binary_copy = dir.join("binary").join(name);
    let mode = std::fs::metadata(&cfg.binary).map_or(0o755, |m| m.mode() & 0o777);
    let old_sha256 = copy_synced(&cfg.binary, &binary_copy, mode)?;
    let mut configs = Vec::new();
    for (i, path) in cfg.configs.iter().enumerate() {
        let owner = Owner::of(path);
        if owner.is_none() {
            // Not there yet: a rollback removes whatever the update put there.
            configs.push(SavedConfig { path: path.clone(), copy: None, sha256: None, owner });
            continue;
        }
        let base = path.file_name().map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
        let copy = dir.join("configs").join(format!("{i}-{base}"));
        let sha256 = copy_synced(path, &copy, 0o600).map_err(|e| format!("config {e}"))?;
        configs.push(SavedConfig { path: path.clone(), copy: Some(copy), sha256: Some(sha256), owner });
    }
    let database_backup = match &cfg.database {
        Some(db) => {
            let made = kyb_backup::create(db, now)
                .await
                .map_err(|e| format!("database dump: {}", kyb_core::error_chain(&e)))?;
            Some(made.dir)
        }
        None => None,
    };
    let mut state = UpdateState {
        version: req.version.clone(),
        created_at: now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        phase: Phase::BackedUp,
        binary: cfg.binary.clone(),
        previous: match current_link(cfg).map_err(|e| e.to_string())? {
            Some((_, dir)) => dir.join(cfg.binary.file_name().unwrap_or_default()),
            None => previous_path(&cfg.binary),
        },
        old_sha256,
        new_sha256: new_sha.to_owned(),
        binary_copy,
        binary_owner: Owner::of(&cfg.binary),
        link: current_link(cfg).map_err(|e| e.to_string())?,
        configs,
        database_backup,
    };
    write_state(&mut state, Phase::BackedUp)?;
    sync_parent(dir)?;
    Ok(state)
}

fn state_file(state: &UpdateState) -> PathBuf {
    state.backup_dir().join("state.json")
}

fn write_state(state: &mut UpdateState, phase: Phase) -> Result<(), String> {
    state.phase = phase;
    let json = serde_json::to_vec_pretty(state).expect("the state serializes");
    atomic_write(&state_file(state), &json, 0o600).map_err(|e| kyb_core::error_chain(&e))
}

/// Moves the state to `phase`, and keeps `in-progress.json` pointing at it while the service may
/// be on either version.
fn record(cfg: &UpdateConfig, state: &mut UpdateState, phase: Phase) -> Result<(), String> {
    let marker = cfg.state_dir.join("in-progress.json");
    write_state(state, phase)?;
    match phase {
        Phase::Swapping | Phase::RollbackFailed => {
            let json = serde_json::to_vec(&InProgress { state: state_file(state) }).expect("serializes");
            atomic_write(&marker, &json, 0o600).map_err(|e| kyb_core::error_chain(&e))
        }
        // The state says "finished" before the marker goes, and a leftover marker pointing at a
        // finished state is ignored: no order of events makes a later run undo this one.
        Phase::Done | Phase::RolledBack => match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", marker.display())),
            _ => sync_parent(&marker),
        },
        Phase::BackedUp => Ok(()),
    }
}

fn read_in_progress(cfg: &UpdateConfig) -> Result<Option<UpdateState>, UpdateError> {
    let marker = cfg.state_dir.join("in-progress.json");
    let bad = |path: &Path, reason: String| UpdateError::Record { path: path.to_owned(), reason };
    let text = match read_config(&marker) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err(bad(&marker, e)),
    };
    let pointer: InProgress = serde_json::from_slice(&text).map_err(|e| bad(&marker, e.to_string()))?;
    let state = read_config(&pointer.state)
        .and_then(|s| s.ok_or_else(|| "no such file".to_owned()))
        .map_err(|e| bad(&pointer.state, e))?;
    let state: UpdateState =
        serde_json::from_slice(&state).map_err(|e| bad(&pointer.state, e.to_string()))?;
    if state.binary != cfg.binary {
        let why = format!(
            "it is about {}, the config's binary is {}",
            state.binary.display(),
            cfg.binary.display()
        );
        return Err(bad(&pointer.state, why));
    }
    if matches!(state.phase, Phase::Done | Phase::RolledBack) {
        // That run finished; it was stopped before it removed the marker.
        let _ = std::fs::remove_file(&marker);
        return Ok(None);
    }
    Ok(Some(state))
}

/// Stop, keep the previous binary, rename the staged one in (or, in the releases layout, move
/// the staged release into place and switch `current` to it), install merged configs, start.
async fn swap(cfg: &UpdateConfig, staged: &Path, merges: &[(PathBuf, Vec<u8>)]) -> Result<(), String> {
    let link = current_link(cfg).map_err(|e| e.to_string())?;
    if let Some((link, _)) = &link {
        // `staged` is the binary in its release directory (see `install_release`).
        let target = staged.parent().unwrap_or(Path::new("/"));
        cfg.service.stop().await.map_err(|e| format!("stop: {}", kyb_core::error_chain(&e)))?;
        point_link(link, target)?;
    } else {
        cfg.service.stop().await.map_err(|e| format!("stop: {}", kyb_core::error_chain(&e)))?;
        keep_previous(&cfg.binary)?;
        std::fs::rename(staged, &cfg.binary)
            .map_err(|e| format!("rename {} to {}: {e}", staged.display(), cfg.binary.display()))?;
        sync_parent(&cfg.binary)?;
    }
    for (path, contents) in merges {
        replace_file(path, contents, Owner::of(path))?;
    }
    cfg.service.start().await.map_err(|e| format!("start: {}", kyb_core::error_chain(&e)))
}

/// `<binary>.previous` becomes a hard link to the installed binary (a copy where links are not
/// possible), replaced atomically; the installed path is never missing.
fn keep_previous(binary: &Path) -> Result<(), String> {
    let tmp = staged_path(binary, "kyb-previous");
    remove_quietly(&tmp);
    if std::fs::hard_link(binary, &tmp).is_err() {
        let mode = std::fs::metadata(binary).map_or(0o755, |m| m.mode() & 0o7777);
        copy_synced(binary, &tmp, mode)?;
    }
    let previous = previous_path(binary);
    std::fs::rename(&tmp, &previous)
        .map_err(|e| format!("rename {} to {}: {e}", tmp.display(), previous.display()))
}

/// Puts the previous binary and configs back, restarts, and gates. Returns whether the service
/// is healthy on the previous version, and the state in words.
async fn rollback(run: &mut Run<'_>, mut state: UpdateState) -> (bool, Vec<String>) {
    let cfg = run.cfg;
    if let Err(e) = cfg.service.stop().await {
        run.step("rollback-stop", Status::Warn, kyb_core::error_chain(&e));
    }
    let restored = restore_binary(&state).and_then(|how| {
        restore_configs(&state)?;
        Ok(how)
    });
    let gate = match restored {
        Err(why) => {
            run.step("rollback", Status::Crit, why);
            None
        }
        Ok(how) => {
            run.step("rollback", Status::Ok, how);
            match cfg.service.start().await {
                Err(e) => {
                    run.step("rollback-start", Status::Crit, kyb_core::error_chain(&e));
                    None
                }
                Ok(()) => Some(health_gate(&cfg.health, &cfg.service, None).await),
            }
        }
    };
    let healthy = gate.as_ref().is_some_and(|g| g.passed);
    if let Some(g) = &gate {
        run.step("rollback-health-gate", if g.passed { Status::Ok } else { Status::Crit }, gate_summary(g));
    }
    let phase = if healthy { Phase::RolledBack } else { Phase::RollbackFailed };
    if let Err(why) = record(cfg, &mut state, phase) {
        run.step("record", Status::Warn, why);
    }
    if healthy {
        prune_backups(run);
    }
    (healthy, describe(cfg, &state, healthy).await)
}

/// Removes pre-update backups beyond the newest `keep_backups`: finished ones, and those a killed
/// run left before it touched the service (no record, or one that stops at the backup). The one
/// of a failed rollback is never removed. Runs under the update lock, so none is in use.
fn prune_backups(run: &mut Run<'_>) {
    let cfg = run.cfg;
    let Ok(entries) = std::fs::read_dir(&cfg.state_dir) else { return };
    let mut finished: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name().to_string_lossy().starts_with("pre_update_"))
        .map(|e| e.path())
        .filter_map(|dir| {
            let file = dir.join("state.json");
            let phase = std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice::<UpdateState>(&b).ok())
                .map(|st| st.phase);
            if phase == Some(Phase::RollbackFailed) {
                return None;
            }
            let when = std::fs::metadata(&file).or_else(|_| std::fs::metadata(&dir)).ok()?.modified().ok()?;
            Some((when, dir))
        })
        .collect();
    // The record is rewritten when an update ends: newest last.
    finished.sort();
    let excess = finished.len().saturating_sub(cfg.keep_backups.max(1));
    let mut removed = 0;
    for (_, dir) in &finished[..excess] {
        match kyb_core::dir::remove_tree(dir) {
            Ok(()) => removed += 1,
            Err(e) => run.step("prune", Status::Warn, format!("cannot remove {}: {e}", dir.display())),
        }
    }
    if removed > 0 {
        run.step(
            "prune",
            Status::Ok,
            format!("{removed} older pre-update backup(s) removed; {} kept", cfg.keep_backups.max(1)),
        );
    }
}

fn restore_binary(state: &UpdateState) -> Result<String, String> {
    let current = sha256_file(&state.binary).ok();
    if let Some((link, old_dir)) = &state.link {
        let name = state.binary.file_name().unwrap_or_default();
        let old_binary = old_dir.join(name);
        let old_ok = sha256_file(&old_binary).ok().as_deref() == Some(state.old_sha256.as_str());
        // Judged by where the link points: the new release may hold the very same bytes.
        let points = std::fs::canonicalize(link).ok();
        if points.as_deref() == Some(old_dir.as_path()) && old_ok {
            return Ok(format!(
                "{} already points to the previous release {}",
                link.display(),
                old_dir.display()
            ));
        }
        let mut how = format!("{} points to {} again", link.display(), old_dir.display());
        if !old_ok {
            // The previous release is damaged or gone: rebuilt from the backup's copy.
            std::fs::create_dir_all(old_dir).map_err(|e| format!("{}: {e}", old_dir.display()))?;
            let tmp = staged_path(&old_binary, "kyb-restore");
            remove_quietly(&tmp);
            let (file, copied) = copy_hashing(&state.binary_copy, &tmp, 0o700)?;
            let owned = state.binary_owner.map_or(Ok(()), |o| o.apply(&file, &tmp));
            if copied != state.old_sha256 || owned.is_err() {
                remove_quietly(&tmp);
                owned?;
                return Err(format!(
                    "{} does not hold the previous binary (sha256 {copied})",
                    state.binary_copy.display()
                ));
            }
            file.sync_all().map_err(|e| format!("fsync {}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &old_binary)
                .map_err(|e| format!("rename {} to {}: {e}", tmp.display(), old_binary.display()))?;
            how.push_str(&format!(" (its binary restored from {})", state.binary_copy.display()));
        }
        point_link(link, old_dir)?;
        return Ok(how);
    }
    if current.as_deref() == Some(state.old_sha256.as_str()) {
        return Ok(format!("{} is already the previous version", state.binary.display()));
    }
    let tmp = staged_path(&state.binary, "kyb-restore");
    remove_quietly(&tmp);
    let previous_ok = sha256_file(&state.previous).ok().as_deref() == Some(state.old_sha256.as_str());
    // `.previous` is the old file itself (a hard link): linking it back keeps its owner and
    // mode. A copy (from the backup, or where links fail) gets the recorded owner and mode.
    let source = if previous_ok && std::fs::hard_link(&state.previous, &tmp).is_ok() {
        &state.previous
    } else {
        remove_quietly(&tmp);
        let source = if previous_ok { &state.previous } else { &state.binary_copy };
        let copied = copy_synced(source, &tmp, 0o700)?;
        let owner = state.binary_owner.or_else(|| Owner::of(source));
        let owned = match owner {
            Some(o) => File::open(&tmp)
                .map_err(|e| format!("{}: {e}", tmp.display()))
                .and_then(|f| o.apply(&f, &tmp)),
            None => Ok(()),
        };
        if copied != state.old_sha256 || owned.is_err() {
            remove_quietly(&tmp);
            owned?;
            return Err(format!("{} does not hold the previous binary (sha256 {copied})", source.display()));
        }
        source
    };
    std::fs::rename(&tmp, &state.binary)
        .map_err(|e| format!("rename {} to {}: {e}", tmp.display(), state.binary.display()))?;
    sync_parent(&state.binary)?;
    Ok(format!("previous binary put back from {}", source.display()))
}

/// In the releases layout, the `current` link (the directory holding `binary`) and the release
/// directory it points to; `None` in the replace layout.
fn current_link(cfg: &UpdateConfig) -> Result<Option<(PathBuf, PathBuf)>, UpdateError> {
    let Some(releases) = &cfg.releases_dir else { return Ok(None) };
    let link = cfg.binary.parent().unwrap_or(Path::new("/")).to_owned();
    let bad = |why: String| UpdateError::Layout { path: link.clone(), why };
    let meta = std::fs::symlink_metadata(&link).map_err(|e| bad(e.to_string()))?;
    if !meta.file_type().is_symlink() {
        return Err(bad(format!(
            "not a symlink to a release in {} (releases_dir is set)",
            releases.display()
        )));
    }
    let target = std::fs::read_link(&link).map_err(|e| bad(e.to_string()))?;
    let target =
        if target.is_absolute() { target } else { link.parent().unwrap_or(Path::new("/")).join(target) };
    let inside = |p: &Path| std::fs::canonicalize(p).ok();
    match (inside(&target), inside(releases)) {
        (Some(t), Some(r)) if t.parent() == Some(r.as_path()) => Ok(Some((link, t))),
        _ => Err(bad(format!(
            "points to {}, not to a release directly in {}",
            target.display(),
            releases.display()
        ))),
    }
}

fn release_dir(cfg: &UpdateConfig, version: &str) -> Result<PathBuf, String> {
    let releases = cfg.releases_dir.as_deref().unwrap_or(Path::new("/nonexistent"));
    std::fs::canonicalize(releases)
        .map(|r| r.join(version))
        .map_err(|e| format!("{}: {e}", releases.display()))
}

/// In the releases layout, moves the staged release to `<releases_dir>/<version>` (replacing a
/// leftover of an earlier attempt, never the current or previous release) and returns the
/// binary's new path; in the replace layout, `staged` as it is.
fn install_release(cfg: &UpdateConfig, version: &str, staged: &Path) -> Result<PathBuf, String> {
    let Some((_, current)) = current_link(cfg).map_err(|e| e.to_string())? else {
        return Ok(staged.to_owned());
    };
    let target = release_dir(cfg, version)?;
    if target == current {
        return Err(format!("{} is the current release", target.display()));
    }
    let stage_dir = staged.parent().unwrap_or(Path::new("/"));
    if std::fs::symlink_metadata(&target).is_ok() {
        kyb_core::dir::remove_tree(&target)
            .map_err(|e| format!("remove leftover {}: {e}", target.display()))?;
    }
    std::fs::rename(stage_dir, &target)
        .map_err(|e| format!("rename {} to {}: {e}", stage_dir.display(), target.display()))?;
    sync_parent(&target)?;
    Ok(target.join(staged.file_name().unwrap_or_default()))
}

/// Where the new binary is staged: beside the installed one, or in a fresh
/// `<releases_dir>/.<version>.kyb-staged/` (a leftover of an earlier attempt replaced).
fn prepare_stage(cfg: &UpdateConfig, version: &str) -> Result<PathBuf, String> {
    if cfg.releases_dir.is_none() {
        return Ok(staged_path(&cfg.binary, "kyb-staged"));
    }
    let dir = release_dir(cfg, &format!(".{version}.kyb-staged"))?;
    match kyb_core::dir::remove_tree(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{}: {e}", dir.display())),
        _ => {}
    }
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The same owner and mode as the current release's directory, whatever the umask.
    let like = current_link(cfg).ok().flatten().and_then(|(_, d)| Owner::of(&d));
    let like = like.unwrap_or(Owner {
        mode: 0o755,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    });
    let handle = File::open(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    like.apply(&handle, &dir)?;
    Ok(dir.join(cfg.binary.file_name().unwrap_or_default()))
}

/// Removes a staged binary, or in the releases layout its staging directory. A release already
/// moved into place is left (a later attempt replaces it; it may be where `current` points).
fn discard_stage(cfg: &UpdateConfig, staged: &Path) {
    match (&cfg.releases_dir, staged.parent()) {
        (Some(_), Some(dir)) => {
            if dir.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".kyb-staged")) {
                let _ = kyb_core::dir::remove_tree(dir);
            }
        }
        _ => remove_quietly(staged),
    }
}

/// Points `link` at `target`: a new symlink beside it, renamed over it.
fn point_link(link: &Path, target: &Path) -> Result<(), String> {
    let tmp = staged_path(link, "kyb-link");
    remove_quietly(&tmp);
    // Relative when the release is below the link's directory (`current -> releases/2.4.0`), so
    // the tree still works moved or seen from a container.
    let base = link.parent().and_then(|p| std::fs::canonicalize(p).ok());
    let target = match base.as_deref().and_then(|b| target.strip_prefix(b).ok()) {
        Some(rel) => rel,
        None => target,
    };
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| format!("symlink {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, link).map_err(|e| {
        remove_quietly(&tmp);
        format!("rename {} to {}: {e}", tmp.display(), link.display())
    })?;
    sync_parent(link)
}

/// Removes release directories beyond the newest `keep_releases`, never the current or the
/// previous one.
fn prune_releases(run: &mut Run<'_>, state: &UpdateState) {
    let cfg = run.cfg;
    let (Some(releases), Some((_, previous))) = (&cfg.releases_dir, &state.link) else { return };
    let current = current_link(cfg).ok().flatten().map(|(_, t)| t);
    let Ok(entries) = std::fs::read_dir(releases) else { return };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, std::fs::canonicalize(e.path()).ok()?)))
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(cfg.keep_releases.max(2));
    let mut removed = Vec::new();
    for (_, dir) in dirs.into_iter().take(excess) {
        if Some(&dir) == current.as_ref() || dir == *previous {
            continue;
        }
        match kyb_core::dir::remove_tree(&dir) {
            Ok(()) => removed.push(dir.file_name().unwrap_or_default().to_string_lossy().into_owned()),
            Err(e) => {
                run.step("prune-releases", Status::Warn, format!("cannot remove {}: {e}", dir.display()))
            }
        }
    }
    if !removed.is_empty() {
        run.step("prune-releases", Status::Ok, format!("old release(s) removed: {}", removed.join(", ")));
    }
}

fn restore_configs(state: &UpdateState) -> Result<(), String> {
    for saved in &state.configs {
        let now = sha256_file(&saved.path).ok();
        match (&saved.copy, &saved.sha256) {
            (Some(copy), Some(sha)) if now.as_ref() != Some(sha) => {
                let contents = std::fs::read(copy).map_err(|e| format!("{}: {e}", copy.display()))?;
                replace_file(&saved.path, &contents, saved.owner)?;
            }
            (None, _) if now.is_some() => {
                std::fs::remove_file(&saved.path).map_err(|e| format!("{}: {e}", saved.path.display()))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Replaces `path` with `contents`: a temporary file beside it with `owner` (this process's
/// user and mode 0644 when unknown) set on the handle, fsync, rename.
fn replace_file(path: &Path, contents: &[u8], owner: Option<Owner>) -> Result<(), String> {
    let tmp = staged_path(path, "kyb-new");
    remove_quietly(&tmp);
    let owner = owner.unwrap_or(Owner {
        mode: 0o644,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    });
    let result = (|| {
        let mut file =
            kyb_core::fs::create_new(&tmp, 0o600).map_err(|e| format!("{}: {e}", tmp.display()))?;
        file.write_all(contents).map_err(|e| format!("{}: {e}", tmp.display()))?;
        owner.apply(&file, &tmp)?;
        file.sync_all().map_err(|e| format!("fsync {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| format!("rename {} to {}: {e}", tmp.display(), path.display()))?;
        sync_parent(path)
    })();
    if result.is_err() {
        remove_quietly(&tmp);
    }
    result
}

/// The state after a rollback, for the operator who has to act when it failed.
async fn describe(cfg: &UpdateConfig, state: &UpdateState, healthy: bool) -> Vec<String> {
    let mut words = Vec::new();
    let which = match sha256_file(&state.binary) {
        Ok(s) if s == state.old_sha256 => format!("the previous version (sha256 {s})"),
        Ok(s) if s == state.new_sha256 => format!("the new version {} (sha256 {s})", state.version),
        Ok(s) => format!("an unknown binary (sha256 {s})"),
        Err(e) => format!("unreadable: {e}"),
    };
    words.push(format!("{} is {which}", state.binary.display()));
    words.push(match cfg.service.instance().await {
        Ok(Some(i)) => format!(
            "{} is running (pid {}){}",
            cfg.service.describe(),
            i.pid,
            if healthy { " and healthy" } else { " but not healthy" }
        ),
        Ok(None) => format!("{} is not running", cfg.service.describe()),
        Err(e) => format!("{}: state unknown: {}", cfg.service.describe(), kyb_core::error_chain(&e)),
    });
    words.push(format!(
        "pre-update backup: {} (binary {}, {} config(s))",
        state.backup_dir().display(),
        state.binary_copy.display(),
        state.configs.len()
    ));
    if let Some(db) = &state.database_backup {
        words.push(format!("database dump taken before the update: {}", db.display()));
    }
    if !healthy {
        words.push(format!(
            "{} still records this update; the next run rolls back again before anything else",
            cfg.state_dir.join("in-progress.json").display()
        ));
    }
    words
}

/// The dry run's plan: what would be done, with the read-only checks done for real.
async fn plan(mut run: Run<'_>, release: &Release, expected: Option<(String, String)>) -> UpdateReport {
    let cfg = run.cfg;
    let sha = match sha256_file(&release.binary) {
        Ok(s) => s,
        Err(e) => return run.not_changed("release", format!("{}: {e}", release.binary.display())),
    };
    match &expected {
        Some((want, from)) if *want != sha => {
            return run.not_changed(
                "checksum",
                format!("sha256 of {} is {sha}, {from} says {want}", release.binary.display()),
            );
        }
        Some((_, from)) => run.step("checksum", Status::Ok, format!("sha256 {sha} matches {from}")),
        None => {
            run.step("checksum", Status::Warn, format!("sha256 {sha}; no checksum given to compare with"))
        }
    }
    let staged = match &cfg.releases_dir {
        Some(_) => release_dir(cfg, &format!(".{}.kyb-staged", run.req.version)).unwrap_or_default(),
        None => staged_path(&cfg.binary, "kyb-staged"),
    };
    run.step(
        "stage",
        Status::Ok,
        format!("would copy {} to {} and fsync it", release.binary.display(), staged.display()),
    );
    if !cfg.check_command.is_empty() {
        run.step(
            "validate",
            Status::Ok,
            format!("would run `{}` (within {} ms)", cfg.check_command.join(" "), cfg.check_timeout_ms.get()),
        );
    }
    if let Err(why) = diff_configs(&mut run, release) {
        return run.not_changed("configs", why);
    }
    let db =
        cfg.database.as_ref().map_or(String::new(), |d| format!(" and dump database {}", d.postgres.name()));
    run.step(
        "backup",
        Status::Ok,
        format!(
            "would copy {} and {} config(s) under {}{db}",
            cfg.binary.display(),
            cfg.configs.len(),
            cfg.state_dir.display()
        ),
    );
    let swap = match current_link(cfg) {
        Ok(Some((link, old))) => format!(
            "would move the staged release to {}, stop {}, point {} at it (previous release {}), start",
            release_dir(cfg, &run.req.version).unwrap_or_default().display(),
            cfg.service.describe(),
            link.display(),
            old.display()
        ),
        _ => format!(
            "would stop {}, keep {} as {}, rename the staged binary over it, start",
            cfg.service.describe(),
            cfg.binary.display(),
            previous_path(&cfg.binary).display()
        ),
    };
    run.step("swap", Status::Ok, swap);
    let g = &cfg.health;
    run.step(
        "health-gate",
        Status::Ok,
        format!(
            "would need {} consecutive successes of {} within {} ms, else roll back",
            g.successes, g.url, g.deadline_ms
        ),
    );
    run.end(Outcome::Planned, vec!["dry run: nothing was changed".into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diff_lists_changed_lines_only() {
        let d = line_diff("a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(d, "-   2 b\n+   2 B\n+   4 d\n");
        assert_eq!(line_diff("same\n", "same\n"), "");
    }

    #[test]
    fn checksum_files_are_read_like_sha256sum() {
        let dir = tempfile::tempdir().unwrap();
        let sums = dir.path().join("SHA256SUMS");
        let h = "ab".repeat(32);
        std::fs::write(&sums, format!("{}  other\n{h} *kyb-platform\n", "cd".repeat(32))).unwrap();
        let release = Release {
            binary: dir.path().join("kyb-platform"),
            checksum_file: Some(sums.clone()),
            configs: vec![],
        };
        let req = UpdateRequest::default();
        assert_eq!(expected_sha(&req, &release).unwrap().unwrap().0, h);
        std::fs::write(&sums, "not a checksum line\n").unwrap();
        assert!(expected_sha(&req, &release).unwrap_err().contains("line 1"));
        std::fs::write(&sums, format!("{h}  other\n")).unwrap();
        assert!(expected_sha(&req, &release).unwrap_err().contains("no line for kyb-platform"));
        let req = UpdateRequest { sha256: Some("xyz".into()), ..UpdateRequest::default() };
        assert!(expected_sha(&req, &release).unwrap_err().contains("64 hex"));
    }
}
