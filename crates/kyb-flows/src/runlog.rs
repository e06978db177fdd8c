//! The run log: one timestamped line per event, appended, never through a symlink.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use time::OffsetDateTime;
use time::macros::format_description;

/// An append-only log file for one flow's runs; a disabled one (dry run) writes nothing.
#[derive(Debug)]
pub struct RunLog {
    file: Option<File>,
}

impl RunLog {
    /// Opens (or creates, mode 0640) the log at `path` for appending. A symlink in its place is
    /// refused, and the error says so.
    pub fn open(path: &Path) -> std::io::Result<RunLog> {
        match kyb_core::fs::open_append(path, 0o640) {
            Ok(file) => Ok(RunLog { file: Some(file) }),
            // O_NOFOLLOW's ELOOP reads "too many levels of symbolic links": say what it means.
            Err(e) if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
                let target =
                    std::fs::read_link(path).map(|t| format!(" to {}", t.display())).unwrap_or_default();
                Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "it is a symlink{target}, and run logs are never written through one: remove the \
                         link (the next run creates a regular file)"
                    ),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// A log that writes nothing.
    pub fn disabled() -> RunLog {
        RunLog { file: None }
    }

    /// Appends `[YYYY-MM-DD HH:MM:SS] text`. A failed write is reported by tracing, not fatal:
    /// the flow's own report still records the run.
    pub fn line(&mut self, text: &str) {
        let Some(file) = &mut self.file else { return };
        let now = OffsetDateTime::now_utc();
        let stamp = now
            .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
            .unwrap_or_default();
        if let Err(e) = writeln!(file, "[{stamp}] {text}") {
            tracing::warn!(error = %e, "cannot append to run log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_run_log_is_refused_and_named_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        let log = dir.path().join("daily-maintenance.log");
        std::os::unix::fs::symlink(&victim, &log).unwrap();
        let err = RunLog::open(&log).unwrap_err().to_string();
        assert!(err.starts_with(&format!("it is a symlink to {}", victim.display())), "{err}");
        assert!(err.contains("remove the link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");

        std::fs::remove_file(&log).unwrap();
        let mut ok = RunLog::open(&log).unwrap();
        ok.line("started");
        assert!(std::fs::read_to_string(&log).unwrap().ends_with("] started\n"));
    }
}
