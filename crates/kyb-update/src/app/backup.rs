//! The pre-update backup, `<state_dir>/pre_update_<stamp>_<version>/`: the installed binary, the
//! config files, the database dump when one is configured, and the record (`state.json`) last;
//! and the pruning of old ones.

use super::files::{Owner, copy_synced, previous_path, sync_parent};
use super::releases::current_link;
use super::state::{Phase, SavedConfig, UpdateState, write_state};
use super::{Run, StepError, UpdateRequest};
use crate::section::UpdateConfig;
use kyb_core::{RunCtx, Status};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The pre-update backup, named after `ctx.now`: binary, configs, database, and `state.json`
/// last. On failure the partial backup directory is removed.
pub(super) async fn backup(
    cfg: &UpdateConfig,
    req: &UpdateRequest,
    new_sha: &str,
    ctx: &RunCtx,
) -> Result<UpdateState, StepError> {
    let stamp = ctx
        .now
        .format(time::macros::format_description!("[year][month][day]_[hour][minute][second]"))
        .unwrap_or_default();
    let dir = kyb_core::fs::unused_path(&cfg.state_dir, &format!("pre_update_{stamp}_{}", req.version), "");
    let result = fill_backup(cfg, req, new_sha, ctx, &dir).await;
    if result.is_err() {
        let _ = kyb_core::dir::remove_tree(&dir);
    }
    result
}

async fn fill_backup(
    cfg: &UpdateConfig,
    req: &UpdateRequest,
    new_sha: &str,
    ctx: &RunCtx,
    dir: &Path,
) -> Result<UpdateState, StepError> {
    use std::os::unix::fs::DirBuilderExt;
    let now = ctx.now;
    let mkdir = |p: &Path| {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(p)
            .map_err(|source| StepError::Mkdir { path: p.to_owned(), source })
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
        let sha256 = copy_synced(path, &copy, 0o600).map_err(|e| StepError::ConfigBackup(Box::new(e)))?;
        configs.push(SavedConfig { path: path.clone(), copy: Some(copy), sha256: Some(sha256), owner });
    }
    let database_backup = match &cfg.database {
        Some(db) => {
            let made = kyb_backup::create(db, ctx).await.map_err(StepError::Dump)?;
            Some(made.dir)
        }
        None => None,
    };
    let mut state = UpdateState {
        version: req.version.clone(),
        created_at: now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        phase: Phase::BackedUp,
        binary: cfg.binary.clone(),
        previous: match current_link(cfg).map_err(StepError::Layout)? {
            Some((_, dir)) => dir.join(cfg.binary.file_name().unwrap_or_default()),
            None => previous_path(&cfg.binary),
        },
        old_sha256,
        new_sha256: new_sha.to_owned(),
        binary_copy,
        binary_owner: Owner::of(&cfg.binary),
        link: current_link(cfg).map_err(StepError::Layout)?,
        configs,
        database_backup,
    };
    write_state(&mut state, Phase::BackedUp)?;
    sync_parent(dir)?;
    Ok(state)
}

/// Removes pre-update backups beyond the newest `keep_backups`: finished ones, and those a killed
/// run left before it touched the service (no record, or one that stops at the backup). The one
/// of a failed rollback is never removed. Runs under the update lock, so none is in use.
pub(super) fn prune_backups(run: &mut Run<'_>) {
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
