//! The record of an update: `<backup>/state.json`, rewritten at each [`Phase`], and
//! `<state_dir>/in-progress.json`, which points to it while the service may be on either version
//! so that the next run can find and roll back an interrupted update.

use super::configs::read_config;
use super::files::{Owner, sync_parent};
use super::{StepError, UpdateError};
use crate::section::UpdateConfig;
use kyb_core::fs::atomic_write;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Phase {
    BackedUp,
    Swapping,
    Done,
    RolledBack,
    RollbackFailed,
}

/// A config file as it was before the update; `copy` and `sha256` are `None` when it did not
/// exist (a rollback then removes it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SavedConfig {
    pub(super) path: PathBuf,
    pub(super) copy: Option<PathBuf>,
    pub(super) sha256: Option<String>,
    pub(super) owner: Option<Owner>,
}

/// The pre-update backup's record, `<backup>/state.json`, rewritten at each phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UpdateState {
    pub(super) version: String,
    pub(super) created_at: String,
    pub(super) phase: Phase,
    pub(super) binary: PathBuf,
    pub(super) previous: PathBuf,
    pub(super) old_sha256: String,
    pub(super) new_sha256: String,
    pub(super) binary_copy: PathBuf,
    pub(super) binary_owner: Option<Owner>,
    /// In the releases layout: the `current` link and the release directory it pointed to.
    #[serde(default)]
    pub(super) link: Option<(PathBuf, PathBuf)>,
    pub(super) configs: Vec<SavedConfig>,
    pub(super) database_backup: Option<PathBuf>,
}

impl UpdateState {
    pub(super) fn backup_dir(&self) -> &Path {
        self.binary_copy.parent().and_then(Path::parent).unwrap_or(Path::new("/"))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct InProgress {
    state: PathBuf,
}

fn state_file(state: &UpdateState) -> PathBuf {
    state.backup_dir().join("state.json")
}

pub(super) fn write_state(state: &mut UpdateState, phase: Phase) -> Result<(), StepError> {
    state.phase = phase;
    let json = serde_json::to_vec_pretty(state).expect("the state serializes");
    atomic_write(&state_file(state), &json, 0o600).map_err(StepError::Record)
}

/// Moves the state to `phase`, and keeps `in-progress.json` pointing at it while the service may
/// be on either version.
pub(super) fn record(cfg: &UpdateConfig, state: &mut UpdateState, phase: Phase) -> Result<(), StepError> {
    let marker = cfg.state_dir.join("in-progress.json");
    write_state(state, phase)?;
    match phase {
        Phase::Swapping | Phase::RollbackFailed => {
            let json = serde_json::to_vec(&InProgress { state: state_file(state) }).expect("serializes");
            atomic_write(&marker, &json, 0o600).map_err(StepError::Record)
        }
        // The state says "finished" before the marker goes, and a leftover marker pointing at a
        // finished state is ignored: no order of events makes a later run undo this one.
        Phase::Done | Phase::RolledBack => match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StepError::Io { path: marker.clone(), source: e })
            }
            _ => sync_parent(&marker),
        },
        Phase::BackedUp => Ok(()),
    }
}

/// The record of an update that was interrupted while the service may have been on either
/// version; `None` when there is none (or it finished and only its marker was left).
pub(super) fn read_in_progress(cfg: &UpdateConfig) -> Result<Option<UpdateState>, UpdateError> {
    let marker = cfg.state_dir.join("in-progress.json");
    let bad = |path: &Path, reason: String| UpdateError::Record { path: path.to_owned(), reason };
    let text = match read_config(&marker) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err(bad(&marker, kyb_core::error_chain(&e))),
    };
    let pointer: InProgress = serde_json::from_slice(&text).map_err(|e| bad(&marker, e.to_string()))?;
    let state = read_config(&pointer.state)
        .map_err(|e| bad(&pointer.state, kyb_core::error_chain(&e)))?
        .ok_or_else(|| bad(&pointer.state, "no such file".to_owned()))?;
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
