//! The release and its staging: where the new binary comes from, the checksum it must have
//! (`--sha256` or a `sha256sum`-style file), the copy beside the installed binary, and the
//! validation of that copy (executable, and the check command exits 0).

use super::StepError;
use super::files::{Owner, copy_hashing, remove_quietly, staged_path, sync_parent};
use super::releases::{current_link, release_dir};
use crate::UpdateRequest;
use crate::section::UpdateConfig;
use kyb_core::config::OctalMode;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `--from` holds.
pub(super) struct Release {
    /// The new binary.
    pub(super) binary: PathBuf,
    /// The `sha256sum`-style file that lists it, if any.
    pub(super) checksum_file: Option<PathBuf>,
    /// Installed config files and the release's version of each.
    pub(super) configs: Vec<(PathBuf, PathBuf)>,
}

pub(super) fn locate(cfg: &UpdateConfig, req: &UpdateRequest) -> Result<Release, StepError> {
    let from = &req.from;
    let meta = std::fs::metadata(from).map_err(|source| StepError::Io { path: from.clone(), source })?;
    if !meta.is_dir() {
        return Ok(Release {
            binary: from.clone(),
            checksum_file: req.checksum_file.clone(),
            configs: Vec::new(),
        });
    }
    let name = cfg.binary.file_name().ok_or_else(|| StepError::NotAFilePath { path: cfg.binary.clone() })?;
    let binary = from.join(name);
    if !binary.exists() {
        return Err(StepError::NoBinary { dir: from.clone(), name: name.to_string_lossy().into_owned() });
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
pub(super) fn expected_sha(
    req: &UpdateRequest,
    release: &Release,
) -> Result<Option<(String, String)>, StepError> {
    if let Some(given) = &req.sha256 {
        let want = given.trim().to_ascii_lowercase();
        if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StepError::Sha256Arg { given: given.clone() });
        }
        return Ok(Some((want, "--sha256".into())));
    }
    let Some(file) = &release.checksum_file else { return Ok(None) };
    let (text, _) = kyb_core::fs::read_regular(file, 1 << 20)
        .map_err(|source| StepError::ChecksumRead { path: file.clone(), source })?;
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
            return Err(StepError::ChecksumLine { path: file.clone(), line: n + 1 });
        }
        let base = Path::new(file_name).file_name().map(|f| f.to_string_lossy().into_owned());
        if file_name.is_empty() || base.as_deref() == Some(name.as_str()) {
            found.push(hash.to_ascii_lowercase());
        }
    }
    match found.as_slice() {
        [one] => Ok(Some((one.clone(), format!("checksum file {}", file.display())))),
        [] => Err(StepError::ChecksumMissing { path: file.clone(), name }),
        _ => Err(StepError::ChecksumAmbiguous { path: file.clone(), name }),
    }
}

/// Where the new binary is staged: beside the installed one, or in a fresh
/// `<releases_dir>/.<version>.kyb-staged/` (a leftover of an earlier attempt replaced).
pub(super) fn prepare_stage(cfg: &UpdateConfig, version: &str) -> Result<PathBuf, StepError> {
    if cfg.releases_dir.is_none() {
        return Ok(staged_path(&cfg.binary, "kyb-staged"));
    }
    let dir = release_dir(cfg, &format!(".{version}.kyb-staged"))?;
    let io_dir = |source| StepError::Io { path: dir.clone(), source };
    match kyb_core::dir::remove_tree(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_dir(e)),
        _ => {}
    }
    std::fs::create_dir(&dir).map_err(io_dir)?;
    // The same owner and mode as the current release's directory, whatever the umask.
    let like = current_link(cfg).ok().flatten().and_then(|(_, d)| Owner::of(&d));
    let like = like.unwrap_or(Owner::mine(0o755));
    let handle = File::open(&dir).map_err(io_dir)?;
    like.apply(&handle, &dir)?;
    Ok(dir.join(cfg.binary.file_name().unwrap_or_default()))
}

/// Copies the release to `staged` (exclusive, no-follow), hashing as it goes; sets mode and
/// owner on the handle; fsyncs the file and its directory.
pub(super) fn stage(cfg: &UpdateConfig, from: &Path, staged: &Path) -> Result<String, StepError> {
    // A leftover from an earlier run that stopped part-way is ours to replace.
    remove_quietly(staged);
    let meta = std::fs::metadata(from).map_err(|source| StepError::Io { path: from.to_owned(), source })?;
    if !meta.is_file() {
        return Err(StepError::NotRegular { path: from.to_owned() });
    }
    if meta.len() == 0 {
        return Err(StepError::Empty { path: from.to_owned() });
    }
    let (out, sha) = copy_hashing(from, staged, 0o600)?;
    // Unless configured, the new binary gets the installed one's owner and group.
    let installed = Owner::of(&cfg.binary);
    let current = Owner::of(staged).ok_or_else(|| StepError::Vanished { path: staged.to_owned() })?;
    let uid = match cfg.owner.as_deref() {
        Some(name) => kyb_core::users::uid(name)?,
        None => installed.map_or(current.uid, |o| o.uid),
    };
    let gid = match cfg.group.as_deref() {
        Some(name) => kyb_core::users::gid(name)?,
        None => installed.map_or(current.gid, |o| o.gid),
    };
    Owner { mode: cfg.mode.map_or(meta.mode() & 0o7777, OctalMode::bits), uid, gid }.apply(&out, staged)?;
    out.sync_all().map_err(|source| StepError::Fsync { path: staged.to_owned(), source })?;
    sync_parent(staged)?;
    Ok(sha)
}

/// Removes a staged binary, or in the releases layout its staging directory. A release already
/// moved into place is left (a later attempt replaces it; it may be where `current` points).
pub(super) fn discard_stage(cfg: &UpdateConfig, staged: &Path) {
    match (&cfg.releases_dir, staged.parent()) {
        (Some(_), Some(dir)) => {
            if dir.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".kyb-staged")) {
                let _ = kyb_core::dir::remove_tree(dir);
            }
        }
        _ => remove_quietly(staged),
    }
}

/// A regular file with an execute bit, whose check command exits 0 in time.
pub(super) async fn validate(cfg: &UpdateConfig, staged: &Path) -> Result<(), StepError> {
    let meta = std::fs::symlink_metadata(staged)
        .map_err(|source| StepError::Io { path: staged.to_owned(), source })?;
    if !meta.is_file() || meta.mode() & 0o111 == 0 {
        return Err(StepError::NotExecutable { mode: meta.mode() & 0o7777 });
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
        let attempt =
            tokio::time::timeout(cfg.check_timeout_ms.duration(), cmd.output()).await.map_err(|_| {
                StepError::CheckTimeout { command: shown.clone(), timeout_ms: cfg.check_timeout_ms.get() }
            })?;
        match attempt {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && busy_pause < Duration::from_secs(1) =>
            {
                tokio::time::sleep(busy_pause).await;
                busy_pause *= 2;
            }
            other => {
                break other.map_err(|source| StepError::CheckSpawn { command: shown.clone(), source })?;
            }
        }
    };
    if out.status.success() {
        return Ok(());
    }
    let mut said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if said.is_empty() {
        said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    // At a character boundary: a check that prints non-ASCII text must not panic the update.
    said.truncate(said.floor_char_boundary(500));
    Err(StepError::CheckFailed { command: shown, status: out.status, output: said })
}

pub(super) fn validate_summary(cfg: &UpdateConfig) -> String {
    if cfg.check_command.is_empty() {
        "regular executable file (no check command configured)".into()
    } else {
        format!("regular executable file; `{}` exited 0", cfg.check_command.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(expected_sha(&req, &release).unwrap_err().to_string().contains("line 1"));
        std::fs::write(&sums, format!("{h}  other\n")).unwrap();
        let err = expected_sha(&req, &release).unwrap_err().to_string();
        assert!(err.contains("no line for kyb-platform"));
        let req = UpdateRequest { sha256: Some("xyz".into()), ..UpdateRequest::default() };
        assert!(expected_sha(&req, &release).unwrap_err().to_string().contains("64 hex"));
    }

    #[tokio::test]
    async fn a_failed_checks_long_non_ascii_output_is_cut_at_a_character() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("kyb-platform");
        // 2-byte characters after one ASCII byte: byte 500 falls inside one.
        std::fs::write(&staged, format!("#!/bin/sh\necho 'x{}' >&2\nexit 1\n", "é".repeat(400))).unwrap();
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).unwrap();
        let service = crate::ServiceManager::Systemd {
            unit: "kyb-platform.service".into(),
            systemctl: "systemctl".into(),
            timeout_ms: kyb_core::config::TimeoutMs::ms(1000),
        };
        let mut cfg = UpdateConfig::new(&staged, dir.path(), service);
        cfg.check_command = vec!["{binary}".into()];
        let err = validate(&cfg, &staged).await.unwrap_err();
        let StepError::CheckFailed { output, .. } = &err else { panic!("{err}") };
        assert_eq!(output.len(), 499, "{output}");
        assert!(output.starts_with("xé") && output.ends_with('é'), "{output}");
    }
}
