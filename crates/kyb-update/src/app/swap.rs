//! The swap (stop, the staged binary or release renamed into place, merged configs installed,
//! start) and the rollback that undoes it: the previous binary and configs put back, a restart,
//! and a health gate.

use super::backup::prune_backups;
use super::configs::restore_configs;
use super::files::{
    Owner, copy_hashing, copy_synced, previous_path, remove_quietly, rename, replace_file, staged_path,
    sync_parent,
};
use super::releases::{current_link, point_link};
use super::state::{Phase, UpdateState, record};
use super::{Run, StepError, gate_summary};
use crate::gate::health_gate;
use crate::section::UpdateConfig;
use kyb_core::Status;
use kyb_core::digest::sha256_file;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Stop, keep the previous binary, rename the staged one in (or, in the releases layout, move
/// the staged release into place and switch `current` to it), install merged configs, start.
pub(super) async fn swap(
    cfg: &UpdateConfig,
    staged: &Path,
    merges: &[(PathBuf, Vec<u8>)],
) -> Result<(), StepError> {
    let link = current_link(cfg).map_err(StepError::Layout)?;
    if let Some((link, _)) = &link {
        // `staged` is the binary in its release directory (see `install_release`).
        let target = staged.parent().unwrap_or(Path::new("/"));
        cfg.service.stop().await.map_err(StepError::Stop)?;
        point_link(link, target)?;
    } else {
        cfg.service.stop().await.map_err(StepError::Stop)?;
        keep_previous(&cfg.binary)?;
        rename(staged, &cfg.binary)?;
        sync_parent(&cfg.binary)?;
    }
    for (path, contents) in merges {
        replace_file(path, contents, Owner::of(path))?;
    }
    cfg.service.start().await.map_err(StepError::Start)
}

/// `<binary>.previous` becomes a hard link to the installed binary (a copy where links are not
/// possible), replaced atomically; the installed path is never missing.
fn keep_previous(binary: &Path) -> Result<(), StepError> {
    let tmp = staged_path(binary, "kyb-previous");
    remove_quietly(&tmp);
    if std::fs::hard_link(binary, &tmp).is_err() {
        let mode = std::fs::metadata(binary).map_or(0o755, |m| m.mode() & 0o7777);
        copy_synced(binary, &tmp, mode)?;
    }
    rename(&tmp, &previous_path(binary))
}

/// Puts the previous binary and configs back, restarts, and gates. Returns whether the service
/// is healthy on the previous version, and the state in words.
pub(super) async fn rollback(run: &mut Run<'_>, mut state: UpdateState) -> (bool, Vec<String>) {
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
            run.step("rollback", Status::Crit, why.to_string());
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
        run.step("record", Status::Warn, why.to_string());
    }
    if healthy {
        prune_backups(run);
    }
    (healthy, describe(cfg, &state, healthy).await)
}

fn restore_binary(state: &UpdateState) -> Result<String, StepError> {
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
            std::fs::create_dir_all(old_dir)
                .map_err(|source| StepError::Io { path: old_dir.clone(), source })?;
            let tmp = staged_path(&old_binary, "kyb-restore");
            remove_quietly(&tmp);
            let (file, copied) = copy_hashing(&state.binary_copy, &tmp, 0o700)?;
            let owned = state.binary_owner.map_or(Ok(()), |o| o.apply(&file, &tmp));
            if copied != state.old_sha256 || owned.is_err() {
                remove_quietly(&tmp);
                owned?;
                return Err(StepError::NotPrevious { path: state.binary_copy.clone(), sha256: copied });
            }
            file.sync_all().map_err(|source| StepError::Fsync { path: tmp.clone(), source })?;
            rename(&tmp, &old_binary)?;
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
                .map_err(|source| StepError::Io { path: tmp.clone(), source })
                .and_then(|f| o.apply(&f, &tmp)),
            None => Ok(()),
        };
        if copied != state.old_sha256 || owned.is_err() {
            remove_quietly(&tmp);
            owned?;
            return Err(StepError::NotPrevious { path: source.clone(), sha256: copied });
        }
        source
    };
    rename(&tmp, &state.binary)?;
    sync_parent(&state.binary)?;
    Ok(format!("previous binary put back from {}", source.display()))
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
