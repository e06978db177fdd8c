//! The application's config files: the release's versions compared with the installed ones
//! ([`ConfigDiff`]) and, with `--merge-configs`, installed; a rollback puts the saved ones back.

use super::files::replace_file;
use super::stage::Release;
use super::state::UpdateState;
use super::{ConfigDiff, Run, StepError};
use kyb_core::Status;
use kyb_core::digest::sha256_file;
use kyb_core::fs::ReadError;
use std::path::{Path, PathBuf};

/// A config file, regular and at most 16 MiB (a FIFO or a device in its place is an error, not
/// a hang); `None` when it does not exist.
pub(super) fn read_config(path: &Path) -> Result<Option<Vec<u8>>, ReadError> {
    match kyb_core::fs::read_regular(path, 16 << 20) {
        Ok((bytes, _)) => Ok(Some(bytes)),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Compares each release config with the installed one; returns those to install.
pub(super) fn diff_configs(
    run: &mut Run<'_>,
    release: &Release,
) -> Result<Vec<(PathBuf, Vec<u8>)>, StepError> {
    let mut merges = Vec::new();
    for (installed, candidate) in &release.configs {
        let new = read_config(candidate)
            .map_err(|source| StepError::Read { path: candidate.clone(), source })?
            .ok_or_else(|| StepError::Missing { path: candidate.clone() })?;
        let old = read_config(installed)
            .map_err(|source| StepError::Read { path: installed.clone(), source })?
            .unwrap_or_default();
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

/// Puts each config file back as the pre-update backup saved it, or removes it when it did not
/// exist; one that already has its saved contents is left alone.
pub(super) fn restore_configs(state: &UpdateState) -> Result<(), StepError> {
    for saved in &state.configs {
        let now = sha256_file(&saved.path).ok();
        match (&saved.copy, &saved.sha256) {
            (Some(copy), Some(sha)) if now.as_ref() != Some(sha) => {
                let contents =
                    std::fs::read(copy).map_err(|source| StepError::Io { path: copy.clone(), source })?;
                replace_file(&saved.path, &contents, saved.owner)?;
            }
            (None, _) if now.is_some() => {
                std::fs::remove_file(&saved.path)
                    .map_err(|source| StepError::Io { path: saved.path.clone(), source })?;
            }
            _ => {}
        }
    }
    Ok(())
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
}
