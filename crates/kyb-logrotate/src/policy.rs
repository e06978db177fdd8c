//! What a log's rotation follows ([`LogPolicy`]), and the config sections this crate reads,
//! `[[logs]]` and `[cleanup]`, with what they derive into.

use crate::retention::RetentionConfig;
use crate::temp::TempConfig;
use kyb_core::config::{FieldError, OctalMode, TimeoutMs, resolve_path};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A time trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Once per UTC day.
    Daily,
    /// Seven days after the last rotation.
    Weekly,
}

/// The signal that makes the writer reopen its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
pub enum ReopenSignal {
    /// SIGHUP.
    #[serde(rename = "HUP", alias = "SIGHUP")]
    Hup,
    /// SIGUSR1.
    #[serde(rename = "USR1", alias = "SIGUSR1")]
    Usr1,
    /// SIGUSR2.
    #[serde(rename = "USR2", alias = "SIGUSR2")]
    Usr2,
}

impl ReopenSignal {
    /// `SIGHUP`, `SIGUSR1` or `SIGUSR2`.
    pub fn name(self) -> &'static str {
        match self {
            ReopenSignal::Hup => "SIGHUP",
            ReopenSignal::Usr1 => "SIGUSR1",
            ReopenSignal::Usr2 => "SIGUSR2",
        }
    }

    /// The signal to send.
    pub(crate) fn signal(self) -> rustix::process::Signal {
        match self {
            ReopenSignal::Hup => rustix::process::Signal::HUP,
            ReopenSignal::Usr1 => rustix::process::Signal::USR1,
            ReopenSignal::Usr2 => rustix::process::Signal::USR2,
        }
    }
}

/// How the writer learns that its log was rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reopen {
    /// Nobody is told; the rotated file is compressed once no process holds it.
    Nothing,
    /// Signal the pid in this file.
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The signal.
        signal: ReopenSignal,
    },
    /// Signal the main process of a systemd unit (`systemctl kill --kill-whom=main`).
    SystemdUnit {
        /// The unit, e.g. `kyb-platform.service`.
        unit: String,
        /// The signal.
        signal: ReopenSignal,
    },
    /// Copy the log, then truncate it in place: for writers that cannot reopen. Lossy: lines
    /// written between the copy and the truncate are lost.
    CopyTruncate,
}

/// The rotation policy of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPolicy {
    /// The live log, an absolute path.
    pub path: PathBuf,
    /// Rotate when at least this big.
    pub size_bytes: u64,
    /// Also rotate on this schedule (a non-empty log only).
    pub every: Option<Interval>,
    /// Remove rotated files older than this.
    pub keep_days: u32,
    /// Keep at most this many rotated files.
    pub keep_count: Option<u32>,
    /// gzip rotated files.
    pub compress: bool,
    /// Leave the newest rotated file uncompressed until the next rotation.
    pub delay_compress: bool,
    /// gzip level, 1 to 9.
    pub compress_level: u32,
    /// Owner of the new live log; `None` keeps the owner of the log being rotated.
    pub uid: Option<u32>,
    /// Group of the new live log; `None` keeps the group of the log being rotated.
    pub gid: Option<u32>,
    /// Mode of the new live log.
    pub mode: u32,
    /// How the writer is told.
    pub reopen: Reopen,
    /// How long to wait for the writer to let go of the rotated file.
    pub reopen_timeout_ms: u64,
}

/// `[[logs]]`: one log to rotate, compress and prune; one entry per log.
///
/// At most one of `pid_file`, `systemd_unit` and `copytruncate`. With none of them, the rotated
/// file is compressed once no process holds it open (checked in `/proc/*/fd`); until then it
/// waits for a later run. Rotated names are `<log>-YYYYMMDD-HHMMSS`, with `-1`, `-2`, ... when
/// two rotations share a second.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LogSection {
    /// The live log. A relative path is under `[paths] log_dir` when that is set, else relative
    /// to the config file's directory. Its directory must not be a symlink.
    pub path: PathBuf,
    /// Rotate when the log is at least this many bytes.
    #[serde(default = "LogSection::default_size_bytes")]
    #[schemars(range(min = 1))]
    pub size_bytes: u64,
    /// Also rotate on a schedule: `"daily"` (once per UTC day) or `"weekly"` (7 days after the
    /// last rotation); an empty log is never rotated. Left out: by size only.
    #[serde(default)]
    pub every: Option<Interval>,
    /// Remove rotated files whose mtime is older than this many days, on every run.
    #[serde(default = "LogSection::default_keep_days")]
    #[schemars(range(min = 1))]
    pub keep_days: u32,
    /// Keep at most this many rotated files. Left out: no limit by count.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub keep_count: Option<u32>,
    /// gzip rotated files (`.gz`, mtime kept).
    #[serde(default = "LogSection::default_compress")]
    pub compress: bool,
    /// Leave the newest rotated file uncompressed until the next rotation.
    #[serde(default)]
    pub delay_compress: bool,
    /// gzip level, 1 (fastest) to 9 (smallest).
    #[serde(default = "LogSection::default_compress_level")]
    #[schemars(range(min = 1, max = 9))]
    pub compress_level: u32,
    /// Owner of the new live log: a user name from /etc/passwd, or a number; an unknown name is
    /// a config error. Left out, the new log keeps the owner of the log it replaces (after a
    /// crash that left no live log, that of the newest rotated file).
    #[serde(default)]
    pub owner: Option<String>,
    /// Group of the new live log: a group name from /etc/group, or a number; an unknown name is
    /// a config error. Left out, the new log keeps the group of the log it replaces (after a
    /// crash that left no live log, that of the newest rotated file).
    #[serde(default)]
    pub group: Option<String>,
    /// Mode of the new live log, in octal (`"0640"`).
    #[serde(default = "LogSection::default_mode")]
    pub mode: OctalMode,
    /// Signal the pid in this file so the writer reopens its log. A relative path is relative
    /// to the config file's directory.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// Signal the main process of this systemd unit so the writer reopens its log
    /// (`systemctl kill --kill-whom=main`).
    #[serde(default)]
    pub systemd_unit: Option<String>,
    /// The signal sent through `pid_file` or `systemd_unit` (`SIGHUP`, `SIGUSR1` and `SIGUSR2`
    /// are accepted too).
    #[serde(default = "LogSection::default_reopen_signal")]
    pub reopen_signal: ReopenSignal,
    /// Copy the log, then truncate it in place, for writers that cannot reopen. **Lossy**: lines
    /// written between the copy and the truncate are lost.
    #[serde(default)]
    pub copytruncate: bool,
    /// How long to wait, in milliseconds, for the writer to close the rotated file before
    /// compressing it.
    #[serde(default = "LogSection::default_reopen_timeout_ms")]
    pub reopen_timeout_ms: TimeoutMs,
}

impl LogSection {
    fn default_size_bytes() -> u64 {
        100 * 1024 * 1024
    }

    fn default_keep_days() -> u32 {
        30
    }

    fn default_compress() -> bool {
        true
    }

    fn default_compress_level() -> u32 {
        6
    }

    fn default_mode() -> OctalMode {
        OctalMode::new(0o640)
    }

    fn default_reopen_signal() -> ReopenSignal {
        ReopenSignal::Hup
    }

    fn default_reopen_timeout_ms() -> TimeoutMs {
        TimeoutMs::ms(10_000)
    }

    /// The log at `path`, every other key at its default.
    pub fn new(path: impl Into<PathBuf>) -> LogSection {
        LogSection {
            path: path.into(),
            size_bytes: LogSection::default_size_bytes(),
            every: None,
            keep_days: LogSection::default_keep_days(),
            keep_count: None,
            compress: LogSection::default_compress(),
            delay_compress: false,
            compress_level: LogSection::default_compress_level(),
            owner: None,
            group: None,
            mode: LogSection::default_mode(),
            pid_file: None,
            systemd_unit: None,
            reopen_signal: LogSection::default_reopen_signal(),
            copytruncate: false,
            reopen_timeout_ms: LogSection::default_reopen_timeout_ms(),
        }
    }

    /// Checks what the types do not: a file name, sizes and counts of at least 1, a gzip level,
    /// a unit name, and at most one way to tell the writer.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.path.file_name().is_none() {
            return Err(FieldError::new("path", format!("{} is not a file path", self.path.display())));
        }
        if self.size_bytes == 0 {
            return Err(FieldError::new("size_bytes", "must be at least 1"));
        }
        // Zero would remove the file just rotated, which a slow writer may still be finishing.
        if self.keep_days == 0 {
            return Err(FieldError::new("keep_days", "must be at least 1"));
        }
        if self.keep_count == Some(0) {
            return Err(FieldError::new("keep_count", "must be at least 1"));
        }
        if !(1..=9).contains(&self.compress_level) {
            return Err(FieldError::new(
                "compress_level",
                format!("must be 1 to 9, got {}", self.compress_level),
            ));
        }
        self.reopen().map(drop)
    }

    /// Makes `path` absolute: a relative one is under `log_dir` when given, else under `base`
    /// (the config file's directory); and `pid_file` against `base`.
    pub fn resolve_paths(&mut self, base: &Path, log_dir: Option<&Path>) {
        self.path = resolve_path(log_dir.unwrap_or(base), &self.path);
        self.pid_file = self.pid_file.take().map(|p| resolve_path(base, &p));
    }

    /// The rotation policy: the section checked, `owner` and `group` looked up in /etc/passwd
    /// and /etc/group.
    pub fn policy(&self) -> Result<LogPolicy, FieldError> {
        self.validate()?;
        // Unset: the new live log keeps the owner of the one it replaces.
        let uid = self
            .owner
            .as_deref()
            .map(kyb_core::users::uid)
            .transpose()
            .map_err(|e| FieldError::new("owner", e.to_string()))?;
        let gid = self
            .group
            .as_deref()
            .map(kyb_core::users::gid)
            .transpose()
            .map_err(|e| FieldError::new("group", e.to_string()))?;
        Ok(LogPolicy {
            path: self.path.clone(),
            size_bytes: self.size_bytes,
            every: self.every,
            keep_days: self.keep_days,
            keep_count: self.keep_count,
            compress: self.compress,
            delay_compress: self.delay_compress,
            compress_level: self.compress_level,
            uid,
            gid,
            mode: self.mode.bits(),
            reopen: self.reopen()?,
            reopen_timeout_ms: self.reopen_timeout_ms.get(),
        })
    }

    /// How the writer is told: from `pid_file`, `systemd_unit` or `copytruncate`, at most one.
    fn reopen(&self) -> Result<Reopen, FieldError> {
        let signal = self.reopen_signal;
        match (&self.pid_file, &self.systemd_unit, self.copytruncate) {
            (None, None, false) => Ok(Reopen::Nothing),
            (Some(p), None, false) => Ok(Reopen::PidFile { path: p.clone(), signal }),
            (None, Some(unit), false) if !unit.is_empty() && !unit.starts_with('-') => {
                Ok(Reopen::SystemdUnit { unit: unit.clone(), signal })
            }
            (None, Some(unit), false) => {
                Err(FieldError::new("systemd_unit", format!("{unit:?} is not a unit name")))
            }
            (None, None, true) => Ok(Reopen::CopyTruncate),
            _ => Err(FieldError::new(
                "copytruncate",
                "give at most one of pid_file, systemd_unit and copytruncate",
            )),
        }
    }
}

/// The longest temp-file age accepted, in days: a century.
const MAX_AGE_DAYS: f64 = 36_500.0;

/// `[cleanup]`: retention of kyb-maint's reports, and cleanup of `[paths] temp_dir`.
///
/// Temp cleanup leaves alone entries with the sticky bit, files and directories another process
/// holds a `flock` on, and anything on another filesystem; it removes symlinks themselves and
/// never follows them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CleanupSection {
    /// Only entries of `[paths] temp_dir` whose names start with this are cleaned: a name prefix,
    /// not empty, without `/`.
    pub temp_prefix: String,
    /// Entries of `[paths] temp_dir` idle (newest of atime, mtime, ctime) for longer than this
    /// many days are removed, directories recursively. Above 0 and at most 36500; fractions
    /// allowed (`0.25` is six hours; the shortest age is one second).
    pub temp_max_age_days: f64,
    /// kyb-maint's reports and metrics snapshots older than this many days are removed.
    #[schemars(range(min = 1))]
    pub reports_max_age_days: u32,
    /// The temp cleanup stops after this many milliseconds, and says so.
    pub timeout_ms: TimeoutMs,
}

impl Default for CleanupSection {
    fn default() -> CleanupSection {
        CleanupSection {
            temp_prefix: "kyb-".to_owned(),
            temp_max_age_days: 1.0,
            reports_max_age_days: 30,
            timeout_ms: TimeoutMs::ms(60_000),
        }
    }
}

impl CleanupSection {
    /// Checks what the types do not: ages that remove nothing still in use, and a prefix that
    /// cannot match everything.
    pub fn validate(&self) -> Result<(), FieldError> {
        // Zero would remove every report, or every temp file the moment it is created: refused,
        // as `keep_days = 0` is. Temp ages may be a fraction of a day (0.25 is six hours).
        if self.reports_max_age_days == 0 {
            return Err(FieldError::new(
                "reports_max_age_days",
                "must be at least 1: 0 would remove every report, the last run's too",
            ));
        }
        if !(self.temp_max_age_days > 0.0 && self.temp_max_age_days <= MAX_AGE_DAYS) {
            return Err(FieldError::new(
                "temp_max_age_days",
                format!(
                    "must be above 0 and at most {MAX_AGE_DAYS} days (fractions allowed: 0.25 is six \
                     hours), got {}: 0 would remove temp files still in use",
                    self.temp_max_age_days
                ),
            ));
        }
        if self.temp_prefix.is_empty() || self.temp_prefix.contains('/') {
            return Err(FieldError::new(
                "temp_prefix",
                "must be a non-empty name prefix without `/` (an empty prefix would match everything)",
            ));
        }
        Ok(())
    }

    /// The cleanup of `temp_dir` (the `[paths]` key) this section asks for.
    pub fn temp(&self, temp_dir: &Path) -> TempConfig {
        TempConfig {
            dir: temp_dir.to_owned(),
            prefix: self.temp_prefix.clone(),
            // At least a second: a tiny fraction must not round down to "everything".
            max_age_secs: ((self.temp_max_age_days * 86_400.0).ceil() as u64).max(1),
            timeout_ms: self.timeout_ms.get(),
        }
    }

    /// The retention of kyb-maint's reports in `reports_dir` this section asks for. It prunes no
    /// rotated logs: [`rotate`](crate::rotate) does, from the listing it makes anyway.
    pub fn retention(&self, reports_dir: &Path) -> RetentionConfig {
        RetentionConfig {
            logs: Vec::new(),
            reports_dir: Some(reports_dir.to_owned()),
            reports_max_age_days: self.reports_max_age_days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(text: &str) -> LogSection {
        toml::from_str(text).unwrap()
    }

    fn log_err(text: &str) -> FieldError {
        log(text).validate().unwrap_err()
    }

    #[test]
    fn log_defaults_are_the_documented_ones() {
        let l = log("path = \"/var/log/app.log\"");
        assert_eq!(l, LogSection::new("/var/log/app.log"));
        assert_eq!(l.size_bytes, 104_857_600);
        assert_eq!(l.every, None);
        assert_eq!(l.keep_days, 30);
        assert_eq!(l.keep_count, None);
        assert!(l.compress && !l.delay_compress && !l.copytruncate);
        assert_eq!(l.compress_level, 6);
        assert_eq!((l.owner.as_deref(), l.group.as_deref()), (None, None));
        assert_eq!(l.mode.bits(), 0o640);
        assert_eq!((l.pid_file.as_deref(), l.systemd_unit.as_deref()), (None, None));
        assert_eq!(l.reopen_signal, ReopenSignal::Hup);
        assert_eq!(l.reopen_timeout_ms.get(), 10_000);
        assert_eq!(l.validate(), Ok(()));
    }

    #[test]
    fn a_log_needs_its_path_and_known_keys() {
        let missing = toml::from_str::<LogSection>("size_bytes = 10").unwrap_err();
        assert!(missing.message().contains("missing field `path`"), "{missing}");
        let unknown = toml::from_str::<LogSection>("path = \"a\"\nsize = 10").unwrap_err();
        assert!(unknown.message().contains("unknown field `size`"), "{unknown}");
        let timeout = toml::from_str::<LogSection>("path = \"a\"\nreopen_timeout_ms = 0").unwrap_err();
        assert!(timeout.message().contains("must be between 1 and 86400000"), "{timeout}");
        let mode = toml::from_str::<LogSection>("path = \"a\"\nmode = \"0999\"").unwrap_err();
        assert!(mode.message().contains("must be an octal mode"), "{mode}");
    }

    #[test]
    fn a_full_log_entry_round_trips() {
        let text = r#"
            path = "/var/log/kyb/app.log"
            size_bytes = 1048576
            every = "weekly"
            keep_days = 7
            keep_count = 4
            compress = false
            delay_compress = true
            compress_level = 9
            owner = "0"
            group = "0"
            mode = "0600"
            pid_file = "/run/app.pid"
            systemd_unit = "app.service"
            reopen_signal = "SIGUSR1"
            copytruncate = true
            reopen_timeout_ms = 2500
        "#;
        let l = log(text);
        assert_eq!(l.path, Path::new("/var/log/kyb/app.log"));
        assert_eq!((l.size_bytes, l.every), (1_048_576, Some(Interval::Weekly)));
        assert_eq!((l.keep_days, l.keep_count), (7, Some(4)));
        assert!(!l.compress && l.delay_compress && l.copytruncate);
        assert_eq!(l.compress_level, 9);
        assert_eq!((l.owner.as_deref(), l.group.as_deref()), (Some("0"), Some("0")));
        assert_eq!(l.mode.bits(), 0o600);
        assert_eq!(l.pid_file.as_deref(), Some(Path::new("/run/app.pid")));
        assert_eq!(l.systemd_unit.as_deref(), Some("app.service"));
        assert_eq!(l.reopen_signal, ReopenSignal::Usr1);
        assert_eq!(l.reopen_timeout_ms.get(), 2500);
        let again: LogSection = toml::from_str(&toml::to_string(&l).unwrap()).unwrap();
        assert_eq!(again, l);
    }

    #[test]
    fn signals_and_intervals_keep_their_spellings() {
        for (text, signal) in [
            ("HUP", ReopenSignal::Hup),
            ("SIGHUP", ReopenSignal::Hup),
            ("USR1", ReopenSignal::Usr1),
            ("SIGUSR1", ReopenSignal::Usr1),
            ("USR2", ReopenSignal::Usr2),
            ("SIGUSR2", ReopenSignal::Usr2),
        ] {
            assert_eq!(log(&format!("path = \"a\"\nreopen_signal = \"{text}\"")).reopen_signal, signal);
        }
        assert!(toml::from_str::<LogSection>("path = \"a\"\nreopen_signal = \"TERM\"").is_err());
        assert_eq!(log("path = \"a\"\nevery = \"daily\"").every, Some(Interval::Daily));
        assert!(toml::from_str::<LogSection>("path = \"a\"\nevery = \"Daily\"").is_err());
        let mut l = LogSection::new("a");
        l.reopen_signal = ReopenSignal::Usr2;
        l.every = Some(Interval::Daily);
        let text = toml::to_string(&l).unwrap();
        assert!(text.contains("reopen_signal = \"USR2\"") && text.contains("every = \"daily\""), "{text}");
    }

    #[test]
    fn log_checks_name_their_key() {
        let cases = [
            ("path = \"/\"", "path", "/ is not a file path"),
            ("path = \"a\"\nsize_bytes = 0", "size_bytes", "must be at least 1"),
            ("path = \"a\"\nkeep_days = 0", "keep_days", "must be at least 1"),
            ("path = \"a\"\nkeep_count = 0", "keep_count", "must be at least 1"),
            ("path = \"a\"\ncompress_level = 0", "compress_level", "must be 1 to 9, got 0"),
            ("path = \"a\"\ncompress_level = 10", "compress_level", "must be 1 to 9, got 10"),
            ("path = \"a\"\nsystemd_unit = \"\"", "systemd_unit", "\"\" is not a unit name"),
            ("path = \"a\"\nsystemd_unit = \"-x\"", "systemd_unit", "\"-x\" is not a unit name"),
            (
                "path = \"a\"\npid_file = \"p\"\nsystemd_unit = \"u\"",
                "copytruncate",
                "give at most one of pid_file, systemd_unit and copytruncate",
            ),
            (
                "path = \"a\"\npid_file = \"p\"\ncopytruncate = true",
                "copytruncate",
                "give at most one of pid_file, systemd_unit and copytruncate",
            ),
            (
                "path = \"a\"\nsystemd_unit = \"u\"\ncopytruncate = true",
                "copytruncate",
                "give at most one of pid_file, systemd_unit and copytruncate",
            ),
        ];
        for (text, key, message) in cases {
            assert_eq!(log_err(text), FieldError::new(key, message), "{text}");
        }
    }

    #[test]
    fn log_paths_resolve_under_the_log_dir_or_the_config_dir() {
        let base = Path::new("/etc/kyb-maint");
        let mut l = log("path = \"app.log\"\npid_file = \"run/app.pid\"");
        l.resolve_paths(base, Some(Path::new("/var/log/kyb")));
        assert_eq!(l.path, Path::new("/var/log/kyb/app.log"));
        assert_eq!(l.pid_file.as_deref(), Some(Path::new("/etc/kyb-maint/run/app.pid")));
        let mut l = log("path = \"logs/app.log\"");
        l.resolve_paths(base, None);
        assert_eq!(l.path, Path::new("/etc/kyb-maint/logs/app.log"));
        let mut l = log("path = \"/srv/app.log\"\npid_file = \"/run/app.pid\"");
        l.resolve_paths(base, Some(Path::new("/var/log/kyb")));
        assert_eq!(l.path, Path::new("/srv/app.log"));
        assert_eq!(l.pid_file.as_deref(), Some(Path::new("/run/app.pid")));
    }

    #[test]
    fn a_policy_is_the_section_with_ids_looked_up() {
        let l = log(
            "path = \"/var/log/app.log\"\nevery = \"daily\"\nkeep_count = 3\nowner = \"root\"\ngroup = \"0\"\n\
             mode = \"0o600\"\npid_file = \"/run/app.pid\"\nreopen_signal = \"USR2\"\nreopen_timeout_ms = 500",
        );
        let p = l.policy().unwrap();
        assert_eq!(
            p,
            LogPolicy {
                path: "/var/log/app.log".into(),
                size_bytes: 104_857_600,
                every: Some(Interval::Daily),
                keep_days: 30,
                keep_count: Some(3),
                compress: true,
                delay_compress: false,
                compress_level: 6,
                uid: Some(0),
                gid: Some(0),
                mode: 0o600,
                reopen: Reopen::PidFile { path: "/run/app.pid".into(), signal: ReopenSignal::Usr2 },
                reopen_timeout_ms: 500,
            }
        );
        let plain = LogSection::new("/var/log/app.log").policy().unwrap();
        assert_eq!((plain.uid, plain.gid, plain.mode, &plain.reopen), (None, None, 0o640, &Reopen::Nothing));
        let mut unit = LogSection::new("/var/log/app.log");
        unit.systemd_unit = Some("app.service".into());
        assert_eq!(
            unit.policy().unwrap().reopen,
            Reopen::SystemdUnit { unit: "app.service".into(), signal: ReopenSignal::Hup }
        );
        let mut copy = LogSection::new("/var/log/app.log");
        copy.copytruncate = true;
        assert_eq!(copy.policy().unwrap().reopen, Reopen::CopyTruncate);
    }

    #[test]
    fn unknown_owners_and_groups_are_errors_of_their_key() {
        let mut l = LogSection::new("/var/log/app.log");
        l.owner = Some("kyb-surely-no-such-user".into());
        let err = l.policy().unwrap_err();
        assert_eq!(err.key, "owner");
        assert_eq!(err.message, "no such user `kyb-surely-no-such-user` in /etc/passwd");
        let mut l = LogSection::new("/var/log/app.log");
        l.group = Some("kyb-surely-no-such-group".into());
        let err = l.policy().unwrap_err();
        assert_eq!(err.key, "group");
        assert_eq!(err.message, "no such group `kyb-surely-no-such-group` in /etc/group");
        l.group = None;
        l.keep_days = 0;
        assert_eq!(l.policy().unwrap_err().key, "keep_days", "a policy is built from a valid section");
    }

    #[test]
    fn cleanup_defaults_are_the_documented_ones() {
        let c: CleanupSection = toml::from_str("").unwrap();
        assert_eq!(c, CleanupSection::default());
        assert_eq!(c.temp_prefix, "kyb-");
        assert_eq!(c.temp_max_age_days, 1.0);
        assert_eq!(c.reports_max_age_days, 30);
        assert_eq!(c.timeout_ms.get(), 60_000);
        assert_eq!(c.validate(), Ok(()));
        assert!(toml::from_str::<CleanupSection>("temp_prefx = \"x\"").is_err());
        assert!(toml::from_str::<CleanupSection>("timeout_ms = 0").is_err());
    }

    #[test]
    fn a_full_cleanup_section_round_trips() {
        let text = "temp_prefix = \"app-\"\ntemp_max_age_days = 0.25\nreports_max_age_days = 90\ntimeout_ms = 5000\n";
        let c: CleanupSection = toml::from_str(text).unwrap();
        assert_eq!(c.temp_prefix, "app-");
        assert_eq!(c.temp_max_age_days, 0.25);
        assert_eq!(c.reports_max_age_days, 90);
        assert_eq!(c.timeout_ms.get(), 5000);
        assert_eq!(toml::to_string(&c).unwrap(), text);
    }

    #[test]
    fn cleanup_checks_name_their_key() {
        let age = |days: &str| {
            FieldError::new(
                "temp_max_age_days",
                format!(
                    "must be above 0 and at most 36500 days (fractions allowed: 0.25 is six hours), got {days}: \
                     0 would remove temp files still in use"
                ),
            )
        };
        let prefix = FieldError::new(
            "temp_prefix",
            "must be a non-empty name prefix without `/` (an empty prefix would match everything)",
        );
        let cases = [
            (
                "reports_max_age_days = 0",
                FieldError::new(
                    "reports_max_age_days",
                    "must be at least 1: 0 would remove every report, the last run's too",
                ),
            ),
            ("temp_max_age_days = 0.0", age("0")),
            ("temp_max_age_days = -1.0", age("-1")),
            ("temp_max_age_days = 36501.0", age("36501")),
            ("temp_max_age_days = nan", age("NaN")),
            ("temp_prefix = \"\"", prefix.clone()),
            ("temp_prefix = \"a/b\"", prefix),
        ];
        for (text, err) in cases {
            let c: CleanupSection = toml::from_str(text).unwrap();
            assert_eq!(c.validate(), Err(err), "{text}");
        }
        let longest = CleanupSection { temp_max_age_days: 36_500.0, ..CleanupSection::default() };
        assert_eq!(longest.validate(), Ok(()));
    }

    #[test]
    fn temp_cleanup_rounds_its_age_up_to_whole_seconds() {
        let mut c = CleanupSection::default();
        assert_eq!(
            c.temp(Path::new("/tmp/kyb")),
            TempConfig {
                dir: "/tmp/kyb".into(),
                prefix: "kyb-".into(),
                max_age_secs: 86_400,
                timeout_ms: 60_000,
            }
        );
        c.temp_max_age_days = 0.25;
        assert_eq!(c.temp(Path::new("/tmp")).max_age_secs, 21_600);
        c.temp_max_age_days = 1e-9;
        assert_eq!(c.temp(Path::new("/tmp")).max_age_secs, 1);
        c.temp_max_age_days = 1.5e-5;
        assert_eq!(c.temp(Path::new("/tmp")).max_age_secs, 2);
    }

    #[test]
    fn report_retention_prunes_reports_only() {
        let c = CleanupSection { reports_max_age_days: 90, ..CleanupSection::default() };
        assert_eq!(
            c.retention(Path::new("/var/lib/kyb-maint/reports")),
            RetentionConfig {
                logs: Vec::new(),
                reports_dir: Some("/var/lib/kyb-maint/reports".into()),
                reports_max_age_days: 90,
            }
        );
    }
}
