//! The `[backup]` section of the config file and the task configs it derives.

use crate::{
    ArchiveConfig, ArchiveSource, CreateConfig, DrillConfig, Format, PruneConfig, VerifyConfig, Which,
};
use kyb_core::PgTarget;
use kyb_core::config::{FieldError, TimeoutMs, resolve_path};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// `[backup]`: database backups under `[paths] backup_dir`, their checks, retention and the
/// monthly archives.
///
/// Used when `[paths] backup_dir` is set: the daily flow then checks today's backup
/// (`<backup_dir>/full/backup_YYYYMMDD_HHMMSS/`). With `[postgres]` set as well, backups are made
/// from that database (`kyb-backup create`, the monthly flow) and restore drills run on its
/// server.
///
/// Verification reports each problem as its own finding: no backup from today, its age, a
/// missing or malformed `backup_metadata.json` (missing keys named), a `backup_file` that is not
/// one plain name inside the backup's directory (never read), size and SHA-256 against the
/// metadata, and whether the whole archive reads (gzip CRC; `pg_restore` parsing every block of a
/// custom archive; the "dump complete" line at the end of a plain script). Today's and the
/// latest backup are the newest complete ones (metadata written); partial files of killed runs
/// beside them are a Warn (`partials`), newer directories that never got their metadata another
/// (`incomplete`).
///
/// Retention (`kyb-backup prune`, the monthly flow) verifies every backup first, and only good
/// ones count towards `keep_min`. A bad one (from another tool, or damaged) is deleted only when
/// its checks are Crit (not Unknown), it is older than `max_age_days` and a newer good backup
/// exists; until then it is kept and the run warns about it.
///
/// ```toml
/// [backup]
/// format = "custom"
/// keep_min = 3
/// max_age_days = 30
///
/// [[backup.archive]]
/// name = "monitoring-config"
/// paths = ["/etc/prometheus", "/etc/grafana", "/etc/alertmanager"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BackupSection {
    /// How the dump is stored. `"custom"`: `pg_dump -Fc -Z0`, gzipped, as `database.dump.gz`
    /// (restore with `gunzip -c database.dump.gz | pg_restore -d DB`). `"plain"`: SQL, gzipped,
    /// as `database.sql.gz` (restore with `gunzip -c database.sql.gz | psql -d DB`).
    pub format: Format,
    /// gzip level, 1 to 9, compressed in-process on every core; 1 keeps a backup close to
    /// pg_dump's own speed.
    #[schemars(range(min = 1, max = 9))]
    pub compression_level: u32,
    /// A newer backup than this many hours is expected; an older one is Crit.
    pub max_age_hours: u64,
    /// The deadline of each step on its own, in milliseconds: making a backup; verifying one
    /// (prune verifies each backup under it); in a drill, verifying, creating the scratch
    /// database, restoring and counting rows, each; the archives.
    pub timeout_ms: TimeoutMs,
    /// pg_dump's `--lock-wait-timeout`, in milliseconds: a table locked longer fails the backup
    /// instead of stalling it.
    pub lock_wait_timeout_ms: TimeoutMs,
    /// Where `pg_dump`, `pg_restore` and `psql` are. Left out, the newest
    /// `/usr/lib/postgresql/*/bin`, else `$PATH`. They run with a cleared environment and get
    /// the `[postgres]` password through a private `PGPASSFILE` (see operations.md, Backups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_bindir: Option<PathBuf>,
    /// This many of the newest good (verifying) backups are never deleted, however old; at
    /// least 1.
    #[schemars(range(min = 1))]
    pub keep_min: usize,
    /// Good backups beyond the newest `keep_last` are deleted. Left out, there is no count
    /// limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<usize>,
    /// Backups older than this many days are deleted (except the `keep_min` newest good ones).
    pub max_age_days: u64,
    /// The monthly archive of configuration directories, one table per archive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub archive: Vec<ArchiveSection>,
}

/// `[[backup.archive]]`: one `<name>.tar.gz` of the monthly archive.
///
/// Each monthly run writes its archives to `<backup_dir>/monthly/monthly_YYYYMMDD_HHMMSS/`, with
/// `manifest.json`: every file, link and directory with its size; each archive's size and
/// SHA-256; every path that could not be read, and why. Links are stored as links. A file that
/// cannot be read makes the archive's check Crit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ArchiveSection {
    /// The archive's file name stem: letters, digits, `-`, `_` and `.`, not starting with `.`,
    /// and not used by another archive.
    pub name: String,
    /// Directories or files to archive, at least one; relative ones are relative to the config
    /// file's directory; no `..`.
    pub paths: Vec<PathBuf>,
}

impl ArchiveSection {
    /// An archive named `name` of `paths`.
    pub fn new(name: impl Into<String>, paths: Vec<PathBuf>) -> ArchiveSection {
        ArchiveSection { name: name.into(), paths }
    }
}

impl Default for BackupSection {
    fn default() -> BackupSection {
        BackupSection {
            format: Format::default(),
            compression_level: 1,
            // A nightly backup plus slack for a late run.
            max_age_hours: 26,
            timeout_ms: TimeoutMs::ms(3_600_000),
            lock_wait_timeout_ms: TimeoutMs::ms(60_000),
            pg_bindir: None,
            keep_min: 3,
            keep_last: None,
            max_age_days: 30,
            archive: Vec::new(),
        }
    }
}

/// The gzip level of the monthly archives: they are small, and read rarely.
const ARCHIVE_COMPRESSION_LEVEL: u32 = 6;

impl BackupSection {
    /// Checks what the types do not: the gzip level, retention that keeps at least one backup,
    /// and archive names and paths.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(1..=9).contains(&self.compression_level) {
            return Err(FieldError::new("compression_level", "must be between 1 and 9"));
        }
        if self.keep_min == 0 {
            return Err(FieldError::new(
                "keep_min",
                "must be at least 1: the newest good backup is always kept",
            ));
        }
        if self.keep_last == Some(0) {
            return Err(FieldError::new("keep_last", "must be at least 1"));
        }
        for (i, a) in self.archive.iter().enumerate() {
            a.validate(&self.archive[..i]).map_err(|e| e.under(&format!("archive[{i}]")))?;
        }
        Ok(())
    }

    /// Makes `pg_bindir` and the archive paths absolute against `base`, the config file's
    /// directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(dir) = &mut self.pg_bindir {
            *dir = resolve_path(base, dir);
        }
        for p in self.archive.iter_mut().flat_map(|a| a.paths.iter_mut()) {
            *p = resolve_path(base, p);
        }
    }

    /// The check of today's backup under `backup_dir`.
    pub fn verify(&self, backup_dir: &Path) -> VerifyConfig {
        VerifyConfig {
            backup_dir: backup_dir.to_owned(),
            which: Which::Today,
            max_age_hours: self.max_age_hours,
            pg_bindir: self.pg_bindir.clone(),
            timeout_ms: self.timeout_ms.get(),
        }
    }

    /// A backup of `postgres` into `backup_dir`.
    pub fn create(&self, backup_dir: &Path, postgres: PgTarget) -> CreateConfig {
        CreateConfig {
            backup_dir: backup_dir.to_owned(),
            postgres,
            format: self.format,
            compression_level: self.compression_level,
            pg_bindir: self.pg_bindir.clone(),
            timeout_ms: self.timeout_ms.get(),
            lock_wait_timeout_ms: self.lock_wait_timeout_ms.get(),
        }
    }

    /// A restore drill of the latest backup under `backup_dir` on `postgres`'s server.
    pub fn drill(&self, backup_dir: &Path, postgres: PgTarget) -> DrillConfig {
        DrillConfig {
            backup_dir: backup_dir.to_owned(),
            which: Which::Latest,
            postgres,
            pg_bindir: self.pg_bindir.clone(),
            max_age_hours: self.max_age_hours,
            timeout_ms: self.timeout_ms.get(),
        }
    }

    /// Retention of the backups under `backup_dir`.
    pub fn prune(&self, backup_dir: &Path) -> PruneConfig {
        PruneConfig {
            backup_dir: backup_dir.to_owned(),
            keep_min: self.keep_min,
            keep_last: self.keep_last,
            max_age_days: Some(self.max_age_days),
            pg_bindir: self.pg_bindir.clone(),
            timeout_ms: self.timeout_ms.get(),
        }
    }

    /// The monthly archive into `backup_dir`, when any `[[backup.archive]]` is given.
    pub fn archive(&self, backup_dir: &Path) -> Option<ArchiveConfig> {
        (!self.archive.is_empty()).then(|| ArchiveConfig {
            backup_dir: backup_dir.to_owned(),
            sources: self
                .archive
                .iter()
                .map(|a| ArchiveSource { name: a.name.clone(), paths: a.paths.clone() })
                .collect(),
            compression_level: ARCHIVE_COMPRESSION_LEVEL,
            timeout_ms: self.timeout_ms.get(),
        })
    }
}

impl ArchiveSection {
    /// Checks the name (also against the archives `before` it) and the paths.
    fn validate(&self, before: &[ArchiveSection]) -> Result<(), FieldError> {
        let name_ok = !self.name.is_empty()
            && !self.name.starts_with('.')
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return Err(FieldError::new("name", "use letters, digits, '-', '_' and '.'"));
        }
        if before.iter().any(|a| a.name == self.name) {
            return Err(FieldError::new("name", format!("{:?} is used twice", self.name)));
        }
        if self.paths.is_empty() {
            return Err(FieldError::new("paths", "list at least one path"));
        }
        if let Some(p) = self.paths.iter().find(|p| p.components().any(|c| c == Component::ParentDir)) {
            return Err(FieldError::new("paths", format!("{} must not contain '..'", p.display())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> BackupSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let b = section("");
        assert_eq!(b, BackupSection::default());
        assert_eq!(b.format, Format::Custom);
        assert_eq!(b.compression_level, 1);
        assert_eq!(b.max_age_hours, 26);
        assert_eq!(b.timeout_ms.get(), 3_600_000);
        assert_eq!(b.lock_wait_timeout_ms.get(), 60_000);
        assert_eq!((b.pg_bindir, b.keep_min, b.keep_last, b.max_age_days), (None, 3, None, 30));
        assert!(b.archive.is_empty());
        assert_eq!(BackupSection::default().validate(), Ok(()));
    }

    #[test]
    fn a_full_section_round_trips() {
        let text = "format = \"plain\"\ncompression_level = 6\nmax_age_hours = 48\ntimeout_ms = 5000\n\
                    lock_wait_timeout_ms = 1000\npg_bindir = \"/usr/lib/postgresql/15/bin\"\nkeep_min = 2\n\
                    keep_last = 7\nmax_age_days = 14\n\n[[archive]]\nname = \"etc\"\npaths = [\"/etc/kyb\"]\n";
        let b = section(text);
        assert_eq!(b.format, Format::Plain);
        assert_eq!(b.keep_last, Some(7));
        assert_eq!(b.archive, vec![ArchiveSection::new("etc", vec!["/etc/kyb".into()])]);
        assert_eq!(toml::to_string(&b).unwrap(), text);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |text: &str| section(text).validate().unwrap_err();
        assert_eq!(err("compression_level = 0").key, "compression_level");
        assert_eq!(err("compression_level = 10").key, "compression_level");
        assert_eq!(
            err("keep_min = 0"),
            FieldError::new("keep_min", "must be at least 1: the newest good backup is always kept")
        );
        assert_eq!(err("keep_last = 0").key, "keep_last");
        let archive = |name: &str, paths: &str| format!("[[archive]]\nname = {name:?}\npaths = {paths}\n");
        assert_eq!(err(&archive(".hidden", "[\"/etc\"]")).key, "archive[0].name");
        assert_eq!(err(&archive("a/b", "[\"/etc\"]")).key, "archive[0].name");
        assert_eq!(err(&archive("", "[\"/etc\"]")).key, "archive[0].name");
        assert_eq!(err(&archive("etc", "[]")), FieldError::new("archive[0].paths", "list at least one path"));
        let twice = format!("{}{}", archive("etc", "[\"/etc\"]"), archive("etc", "[\"/opt\"]"));
        assert_eq!(err(&twice), FieldError::new("archive[1].name", "\"etc\" is used twice"));
        let up = err(&archive("etc", "[\"/etc/../root\"]"));
        assert_eq!(
            (up.key.as_str(), up.message.as_str()),
            ("archive[0].paths", "/etc/../root must not contain '..'")
        );
        assert!(toml::from_str::<BackupSection>("timeout_ms = 0").is_err());
        assert!(toml::from_str::<BackupSection>("format = \"tar\"").is_err());
        assert!(toml::from_str::<BackupSection>("keep = 3").is_err());
    }

    #[test]
    fn paths_resolve_and_tasks_derive_from_the_section() {
        let mut b =
            section("pg_bindir = \"bin\"\n[[archive]]\nname = \"etc\"\npaths = [\"conf\", \"/etc/kyb\"]\n");
        b.resolve_paths(Path::new("/etc/kyb-maint"));
        let dir = Path::new("/var/backups");
        let verify = b.verify(dir);
        assert_eq!((verify.which, verify.max_age_hours), (Which::Today, 26));
        assert_eq!(verify.pg_bindir.as_deref(), Some(Path::new("/etc/kyb-maint/bin")));
        let pg = PgTarget {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "kyb".into(),
            password: None,
            dbname: "kyb".into(),
        };
        let create = b.create(dir, pg.clone());
        assert_eq!(
            (create.format, create.compression_level, create.lock_wait_timeout_ms),
            (Format::Custom, 1, 60_000)
        );
        assert_eq!(b.drill(dir, pg).which, Which::Latest);
        let prune = b.prune(dir);
        assert_eq!((prune.keep_min, prune.max_age_days), (3, Some(30)));
        let archive = b.archive(dir).unwrap();
        assert_eq!(
            archive.sources[0].paths,
            [PathBuf::from("/etc/kyb-maint/conf"), PathBuf::from("/etc/kyb")]
        );
        assert_eq!(section("").archive(dir), None);
    }
}
