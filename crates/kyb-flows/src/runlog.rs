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
    /// Opens (or creates, mode 0640) the log at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<RunLog> {
        Ok(RunLog { file: Some(kyb_core::fs::open_append(path, 0o640)?) })
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
