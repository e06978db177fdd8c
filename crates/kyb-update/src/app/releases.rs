//! The releases layout (`releases_dir` set): each version in `<releases_dir>/<version>/`, the
//! installed binary reached through a `current` link that an update switches by rename, and the
//! pruning of old release directories.

use super::files::{remove_quietly, rename, staged_path, sync_parent};
use super::state::UpdateState;
use super::{Run, StepError, UpdateError};
use crate::section::UpdateConfig;
use kyb_core::Status;
use std::path::{Path, PathBuf};

/// In the releases layout, the `current` link (the directory holding `binary`) and the release
/// directory it points to; `None` in the replace layout.
pub(super) fn current_link(cfg: &UpdateConfig) -> Result<Option<(PathBuf, PathBuf)>, UpdateError> {
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

/// `<releases_dir>/<version>`, the releases directory resolved.
pub(super) fn release_dir(cfg: &UpdateConfig, version: &str) -> Result<PathBuf, StepError> {
    let releases = cfg.releases_dir.as_deref().unwrap_or(Path::new("/nonexistent"));
    std::fs::canonicalize(releases)
        .map(|r| r.join(version))
        .map_err(|source| StepError::Io { path: releases.to_owned(), source })
}

/// In the releases layout, moves the staged release to `<releases_dir>/<version>` (replacing a
/// leftover of an earlier attempt, never the current or previous release) and returns the
/// binary's new path; in the replace layout, `staged` as it is.
pub(super) fn install_release(
    cfg: &UpdateConfig,
    version: &str,
    staged: &Path,
) -> Result<PathBuf, StepError> {
    let Some((_, current)) = current_link(cfg).map_err(StepError::Layout)? else {
        return Ok(staged.to_owned());
    };
    let target = release_dir(cfg, version)?;
    if target == current {
        return Err(StepError::IsCurrent { path: target });
    }
    let stage_dir = staged.parent().unwrap_or(Path::new("/"));
    if std::fs::symlink_metadata(&target).is_ok() {
        kyb_core::dir::remove_tree(&target)
            .map_err(|source| StepError::RemoveLeftover { path: target.clone(), source })?;
    }
    rename(stage_dir, &target)?;
    sync_parent(&target)?;
    Ok(target.join(staged.file_name().unwrap_or_default()))
}

/// Points `link` at `target`: a new symlink beside it, renamed over it.
pub(super) fn point_link(link: &Path, target: &Path) -> Result<(), StepError> {
    let tmp = staged_path(link, "kyb-link");
    remove_quietly(&tmp);
    // Relative when the release is below the link's directory (`current -> releases/2.4.0`), so
    // the tree still works moved or seen from a container.
    let base = link.parent().and_then(|p| std::fs::canonicalize(p).ok());
    let target = match base.as_deref().and_then(|b| target.strip_prefix(b).ok()) {
        Some(rel) => rel,
        None => target,
    };
    std::os::unix::fs::symlink(target, &tmp)
        .map_err(|source| StepError::Symlink { path: tmp.clone(), source })?;
    rename(&tmp, link).inspect_err(|_| remove_quietly(&tmp))?;
    sync_parent(link)
}

/// Removes release directories beyond the newest `keep_releases`, never the current or the
/// previous one.
pub(super) fn prune_releases(run: &mut Run<'_>, state: &UpdateState) {
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
