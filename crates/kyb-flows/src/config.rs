//! The configuration file: TOML, unknown keys refused, errors that name file, line and key.
//!
//! Each task crate owns its section: the keys, their defaults and their checks
//! (`kyb_backup::BackupSection`, `kyb_health::SystemConfig`, ...). [`Sections`] only puts them
//! together as the file's tables. [`load`] reads the file, makes relative paths absolute against
//! its directory, lets each section check itself, wires sections together (`[postgres]` into
//! backups and maintenance, `[paths]` into every task) and has each crate derive its tasks'
//! settings into [`Config`].

mod errors;
mod reference;
#[cfg(test)]
mod tests;

pub use errors::{ConfigError, MAX_FILE_BYTES};
pub use reference::reference;

use crate::forecast::{ForecastConfig, ForecastSection};
use crate::history::{HistoryConfig, HistorySection};
use crate::window::Windows;
use kyb_alert::AlertingConfig;
use kyb_backup::{ArchiveConfig, BackupSection, CreateConfig, DrillConfig, PruneConfig, VerifyConfig};
use kyb_core::PostgresSection;
use kyb_core::config::{FieldError, resolve_path};
use kyb_dbmaint::{DbMaintConfig, DbMaintSection};
use kyb_health::{
    AppSection, HealthConfig, MonitoringConfig, MonitoringSection, PerfConfig, PerformanceTask,
    PostgresConfig, RedisSection, SnapshotConfig, SystemConfig,
};
use kyb_logrotate::{CleanupSection, LogPolicy, LogSection, RetentionConfig, RotateConfig, TempConfig};
use kyb_mlcheck::{MlConfig, ModelCheck};
use kyb_secaudit::{AdvisoriesTask, CertConfig, LogScanConfig, PermConfig, SecuritySection, UpdatesConfig};
use kyb_update::{TuneConfig, UpdateConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `kyb-maint`, `kyb-logrotate` and `kyb-health` read one TOML file: `--config FILE`, else
/// `$KYB_MAINT_CONFIG`, else `/etc/kyb-maint/kyb-maint.toml`. It must be a regular file (a
/// symlink to one is fine) of at most 1 MiB, in UTF-8; a FIFO, a device or a larger file is
/// refused at once. Unknown keys are errors. Every error about the file's content is one line:
/// `file:line:column`, what is wrong, the key, and for TOML and type errors what to do. A key
/// that is not in the file (a setting refused for what its defaults combine into) points at its
/// table's header:
///
/// ```text
/// kyb-maint: error: /etc/kyb-maint/kyb-maint.toml:14:1: unknown field `timout_ms`, expected one of `base_url`, ... (key `app.timout_ms`); remove the key or fix its spelling; docs/configuration.md lists every key
/// kyb-maint: error: /etc/kyb-maint/kyb-maint.toml:22:8: number too large to fit in target type (key `redis.port`); use a smaller number: integers must fit in 64 bits, and most keys allow far less
/// kyb-maint: error: /etc/kyb-maint/kyb-maint.toml:9:1: invalid table header: duplicate key `redis` in document root (key `redis`); a table may be given once: merge the two sections into one
/// kyb-maint: error: /etc/kyb-maint/kyb-maint.toml:3:24: the file is not UTF-8 (bad byte at offset 70) (key `paths.log_dir`); TOML files are UTF-8: re-save the file as UTF-8 (e.g. `iconv -t UTF-8`)
/// kyb-maint: error: /etc/kyb-maint/kyb-maint.toml:31:1: must be at least 1: 0 would remove every report, the last run's too (key `cleanup.reports_max_age_days`)
/// ```
///
/// A bad config stops every binary before it does anything (exit 2; 3 for the Nagios-style
/// `kyb-health` and `kyb-secaudit`).
///
/// Relative paths are resolved against the config file's directory. Every section is optional:
/// a file with only `[redis]` is enough for `kyb-health redis`. Leave out `[app]`, `[postgres]`
/// or `[redis]` and that dependency is not checked.
/// [`deploy/kyb-maint.example.toml`](../deploy/kyb-maint.example.toml) is a complete example.
///
/// Thresholds are tables, `{ warn = 80, crit = 90 }`: a value at or above `warn` is Warn, at or
/// above `crit` is Crit, and `warn` must not be above `crit`; where lower is worse (days left,
/// cache hit) it is the other way round. Timeouts are milliseconds, from 1 to 86400000 (a day).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sections {
    #[serde(default)]
    paths: PathsSection,
    #[serde(default)]
    flows: FlowsSection,
    app: Option<AppSection>,
    postgres: Option<PostgresSection>,
    redis: Option<RedisSection>,
    #[serde(default)]
    system: SystemConfig,
    /// One table per log to rotate.
    #[serde(default)]
    logs: Vec<LogSection>,
    #[serde(default)]
    cleanup: CleanupSection,
    #[serde(default)]
    backup: BackupSection,
    #[serde(default)]
    dbmaint: DbMaintSection,
    #[serde(default)]
    window: Windows,
    #[serde(default)]
    performance: PerfConfig,
    #[serde(default)]
    ml: MlConfig,
    #[serde(default)]
    monitoring: MonitoringSection,
    #[serde(default)]
    security: SecuritySection,
    update: Option<UpdateConfig>,
    #[serde(default)]
    tuning: TuneConfig,
    #[serde(default)]
    alerting: AlertingConfig,
    #[serde(default)]
    history: HistorySection,
    #[serde(default)]
    forecast: ForecastSection,
}

/// How the flows share the machine.
///
/// One run at a time holds the run lock (`<maintenance_dir>/kyb-maint.lock`). A second copy of
/// the same flow is refused at once (exit 2): the schedule started it twice. A different flow
/// (or `kyb-logrotate run`) waits for the run lock, so that a weekly run that goes long does not
/// cost that month's monthly run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsSection {
    /// How long a flow waits for a different flow's run to finish, in milliseconds, before it
    /// gives up (exit 2); 0 gives up at once. At most 86400000 (a day). The default, 3 hours, is
    /// more than the longest shipped flow timeout ahead of another flow.
    pub lock_wait_ms: u64,
    /// The name this host goes by in reports, alerts, pushed metrics and the fleet's records;
    /// by default the machine's hostname. Set it where the hostname changes from run to run (a
    /// Kubernetes CronJob's pods).
    pub host: Option<String>,
    /// Several hosts run these flows against one database: each database-wide task (backup
    /// create, restore drill, ANALYZE, VACUUM, the database reports, capacity) runs once per
    /// period (the day, ISO week or month of its flow) on whichever host gets to it first,
    /// under a PostgreSQL advisory lock, and is recorded in `kyb_maint.fleet_runs`; the other
    /// hosts report who did it. A run that failed does not count: the next host tries again.
    /// Host-local tasks (health, system, logs, temp files, backup verification) run everywhere.
    pub fleet: bool,
}

impl Default for FlowsSection {
    fn default() -> FlowsSection {
        FlowsSection { lock_wait_ms: 3 * 3_600_000, host: None, fleet: false }
    }
}

impl FlowsSection {
    /// Refuses a wait longer than a day.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.lock_wait_ms > kyb_core::config::MAX_TIMEOUT_MS {
            let why = format!("must be at most 86400000 (a day), got {}", self.lock_wait_ms);
            return Err(FieldError::new("lock_wait_ms", why));
        }
        if let Some(host) = &self.host
            && (host.is_empty() || host.len() > 253 || host.chars().any(|c| c.is_control() || c == '/'))
        {
            let why =
                format!("{host:?} is not a host name: 1 to 253 characters, no `/` or control characters");
            return Err(FieldError::new("host", why));
        }
        Ok(())
    }
}

/// The directories of kyb-maint and of the platform.
///
/// The directories the flows delete inside must not be symlinks: `temp_dir`, `log_dir`,
/// `backup_dir` and its `full/`, `<maintenance_dir>/reports`, and the directory of each
/// `[[logs]]` path. Every delete opens its directory without following a symlink, so such a
/// config would fail at run time; it is refused at load instead, naming the key and where the
/// link points. A directory that does not exist yet is fine.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PathsSection {
    /// kyb-maint's own files: `logs/` (run logs), `reports/` (reports, metrics snapshots),
    /// `kyb-maint.lock`.
    pub maintenance_dir: PathBuf,
    /// The platform's log directory; relative `[[logs]]` paths are under it.
    pub log_dir: Option<PathBuf>,
    /// The backup directory. Without it, nothing is backed up or checked.
    pub backup_dir: Option<PathBuf>,
    /// The platform's temp directory. Without it, no temp file is cleaned up.
    pub temp_dir: Option<PathBuf>,
}

impl Default for PathsSection {
    fn default() -> PathsSection {
        PathsSection {
            maintenance_dir: PathBuf::from("/var/lib/kyb-maint"),
            log_dir: None,
            backup_dir: None,
            temp_dir: None,
        }
    }
}

/// Directories the flows read and write.
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    /// Root of kyb-maint's own files; holds the run lock.
    pub maintenance_dir: PathBuf,
    /// Run logs (`<maintenance_dir>/logs`).
    pub run_logs_dir: PathBuf,
    /// Reports and metrics snapshots (`<maintenance_dir>/reports`).
    pub reports_dir: PathBuf,
    /// The platform's log directory.
    pub log_dir: Option<PathBuf>,
    /// The backup directory.
    pub backup_dir: Option<PathBuf>,
    /// The temp directory.
    pub temp_dir: Option<PathBuf>,
}

/// Everything the flows need, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    /// Directories.
    pub paths: Paths,
    /// Dependency probes, when any of `[app]`, `[postgres]` and `[redis]` is configured.
    pub health: Option<HealthConfig>,
    /// System metric thresholds.
    pub system: SystemConfig,
    /// Metrics snapshot settings, when an app is configured.
    pub snapshot: Option<SnapshotConfig>,
    /// The logs to rotate, with their policies; None without `[[logs]]`.
    pub rotation: Option<RotateConfig>,
    /// Retention of kyb-maint's reports (rotated logs are pruned by the rotation).
    pub retention: RetentionConfig,
    /// Cleanup of the temp directory.
    pub cleanup: Cleanup,
    /// Backup verification (and, with `[postgres]`, creation), when `[paths] backup_dir` is set.
    pub backup: Option<Backup>,
    /// Database maintenance of the `[postgres]` database, when it is configured: `[dbmaint]`
    /// resolved against `[postgres]` and `[paths]`.
    pub dbmaint: Option<DbMaintConfig>,
    /// When heavy database work (VACUUM, REINDEX) and restarts may run.
    pub window: Windows,
    /// How long a flow waits for a different flow's run to finish (`[flows] lock_wait_ms`).
    pub lock_wait: std::time::Duration,
    /// The name this host goes by (`[flows] host`, else the hostname).
    pub host: String,
    /// Database-wide tasks run once per period across hosts (`[flows] fleet`).
    pub fleet: bool,
    /// The weekly performance analysis of the app's `/metrics`, when an app is configured.
    pub performance: Option<PerformanceTask>,
    /// The model checks of the app's `/metrics` (history resolved), when an app is configured.
    pub ml: Option<ModelCheck>,
    /// The monitoring stack, when any of its URLs is set.
    pub monitoring: Option<MonitoringConfig>,
    /// The security audit.
    pub security: Security,
    /// The application update (`[update]`), with the pre-update database dump taken from
    /// `[backup]` when a database and a backup directory are configured.
    pub update: Option<UpdateConfig>,
    /// The tuning tasks (`[tuning]`).
    pub tuning: TuneConfig,
    /// Where runs send their failed tasks and metrics, when `[alerting]` sets anywhere.
    pub alerting: Option<AlertingConfig>,
    /// The run history, when `[postgres]` is configured and `[history]` not switched off.
    pub history: Option<HistoryConfig>,
    /// The daily forecasts from the run history, when there is one.
    pub forecast: Option<ForecastConfig>,
}

/// `[security]` resolved: one config per audit, None when the audit is not configured (the run
/// says whether it is a dry run and whether a window is open).
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    /// Certificates; None without paths or endpoints.
    pub certs: Option<CertConfig>,
    /// The permission audit; None without roots.
    pub perms: Option<PermConfig>,
    /// The log scan; None without `auth_logs` or `journalctl`.
    pub logs: Option<LogScanConfig>,
    /// OS security updates; None when switched off (`os_updates = false`).
    pub updates: Option<UpdatesConfig>,
    /// Dependency advisories, and out-of-date direct dependencies with `cargo_manifest`; None
    /// without `cargo_lock`.
    pub advisories: Option<AdvisoriesTask>,
}

/// Backup settings resolved against `[paths] backup_dir` and `[postgres]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// What the daily flow checks: today's backup.
    pub verify: VerifyConfig,
    /// How to make one, when `[postgres]` is configured.
    pub create: Option<CreateConfig>,
    /// The restore drill of the latest backup, when `[postgres]` is configured.
    pub drill: Option<DrillConfig>,
    /// Retention.
    pub prune: PruneConfig,
    /// The monthly archive of configuration directories, when `[[backup.archive]]` is set.
    pub archive: Option<ArchiveConfig>,
}

/// Cleanup of the temp directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// Temp cleanup, when `[paths] temp_dir` is set.
    pub temp: Option<TempConfig>,
}

impl Config {
    /// The run lock shared by every flow.
    pub fn lock_path(&self) -> PathBuf {
        self.paths.maintenance_dir.join("kyb-maint.lock")
    }

    /// The lock one copy of the flow `flow` holds, so that a second copy is refused at once.
    pub fn flow_lock_path(&self, flow: &str) -> PathBuf {
        self.paths.maintenance_dir.join(format!("kyb-maint-{flow}.lock"))
    }
}

/// Reads and validates the config file at `path`: a regular file (a symlink to one is fine) of
/// at most [`MAX_FILE_BYTES`].
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let (bytes, _) = kyb_core::fs::read_regular(path, MAX_FILE_BYTES)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse_bytes(&bytes, path)
}

/// Parses the config file's `bytes` as if read from `path`: UTF-8 first, then as [`parse`].
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Config, ConfigError> {
    parse(errors::utf8(bytes, path)?, path)
}

/// Parses config `text` as if read from `path` (relative paths resolve against its directory).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let sections: Sections = errors::deserialize(text, path)?;
    Loader { text, path, base: path.parent().unwrap_or(Path::new(".")) }.resolve(sections)
}

struct Loader<'a> {
    text: &'a str,
    path: &'a Path,
    /// The config file's directory, which relative paths are under.
    base: &'a Path,
}

impl Loader<'_> {
    /// `result` of a check of the section at `table`, its key placed in the file.
    fn at<T>(&self, table: &str, result: Result<T, FieldError>) -> Result<T, ConfigError> {
        result.map_err(|e| self.invalid(e.under(table)))
    }

    /// `err`, whose key is dotted from the file's root, placed in the file.
    fn invalid(&self, err: FieldError) -> ConfigError {
        errors::invalid(self.text, self.path, err)
    }

    fn resolve(&self, mut s: Sections) -> Result<Config, ConfigError> {
        let paths = self.paths(&s.paths);
        self.roots_are_not_symlinks(&paths)?;
        let base = self.base;
        let app = match &s.app {
            Some(a) => {
                self.at("app", a.validate())?;
                Some(a)
            }
            None => None,
        };
        let postgres = match &mut s.postgres {
            Some(p) => {
                p.resolve_paths(base);
                self.at("postgres", p.validate())?;
                Some(self.at("postgres", PostgresConfig::from_section(p))?)
            }
            None => None,
        };
        let redis = match &mut s.redis {
            Some(r) => {
                r.resolve_paths(base);
                self.at("redis", r.validate())?;
                Some(self.at("redis", r.probe())?)
            }
            None => None,
        };
        self.at("system", s.system.validate())?;
        let logs = self.logs(&mut s.logs, paths.log_dir.as_deref())?;
        let rotation = (!logs.is_empty()).then_some(RotateConfig { logs });
        self.at("cleanup", s.cleanup.validate())?;
        let retention = s.cleanup.retention(&paths.reports_dir);
        let cleanup = Cleanup { temp: paths.temp_dir.as_deref().map(|dir| s.cleanup.temp(dir)) };
        let target = postgres.as_ref().map(PostgresConfig::target);
        s.backup.resolve_paths(base);
        self.at("backup", s.backup.validate())?;
        let backup = paths.backup_dir.as_deref().map(|dir| Backup {
            verify: s.backup.verify(dir),
            create: target.clone().map(|pg| s.backup.create(dir, pg)),
            drill: target.clone().map(|pg| s.backup.drill(dir, pg)),
            prune: s.backup.prune(dir),
            archive: s.backup.archive(dir),
        });
        s.dbmaint.resolve_paths(base);
        self.at("dbmaint", s.dbmaint.validate())?;
        let trend_csv = paths.maintenance_dir.join("database-size-trend.csv");
        let dbmaint = postgres.as_ref().map(|pg| s.dbmaint.config(pg.target(), pg.timeout_ms, &trend_csv));
        self.at("flows", s.flows.validate())?;
        self.at("window", s.window.validate())?;
        self.at("performance", s.performance.validate())?;
        s.ml.resolve_paths(base);
        self.at("ml", s.ml.validate())?;
        s.ml.history.get_or_insert_with(|| paths.maintenance_dir.join("ml-accuracy-history.jsonl"));
        self.at("monitoring", s.monitoring.validate())?;
        s.security.resolve_paths(base);
        self.at("security", s.security.validate())?;
        let sec = &s.security;
        let security = Security {
            certs: sec.certs(),
            perms: self.at("security", sec.perms())?,
            logs: sec.log_scan(),
            updates: sec.updates(),
            advisories: sec.advisories_task(),
        };
        if let Some(u) = &mut s.update {
            u.resolve_paths(base);
            self.at("update", u.validate())?;
            u.database = backup.as_ref().and_then(|b| b.create.clone());
        }
        s.tuning.resolve_paths(base);
        self.at("tuning", s.tuning.validate())?;
        self.at("alerting", s.alerting.validate())?;
        self.at("history", s.history.validate())?;
        self.at("forecast", s.forecast.validate())?;
        let history = postgres.as_ref().filter(|_| s.history.enabled).map(|pg| HistoryConfig {
            postgres: pg.target(),
            timeout_ms: pg.timeout_ms,
            keep_days: s.history.keep_days,
            spool: paths.maintenance_dir.join("history-spool.jsonl"),
        });
        // Nothing to probe is the health task not configured, not a report of nothing.
        let probes = HealthConfig { app: app.map(AppSection::probe), postgres, redis };
        let health =
            (probes.app.is_some() || probes.postgres.is_some() || probes.redis.is_some()).then_some(probes);
        let forecast_backup_dir = paths.backup_dir.clone();
        Ok(Config {
            source: self.path.to_owned(),
            health,
            snapshot: app.map(|a| a.snapshot(&paths.reports_dir)),
            performance: app.map(|a| a.performance(&paths.reports_dir, &s.performance)),
            ml: app.map(|a| ModelCheck { scrape: a.scrape(), ml: s.ml }),
            paths,
            system: s.system,
            rotation,
            retention,
            cleanup,
            backup,
            dbmaint,
            window: s.window,
            lock_wait: std::time::Duration::from_millis(s.flows.lock_wait_ms),
            host: s.flows.host.clone().unwrap_or_else(crate::report::hostname),
            fleet: s.flows.fleet,
            monitoring: s.monitoring.targets(),
            security,
            update: s.update,
            tuning: s.tuning,
            alerting: s.alerting.is_set().then_some(s.alerting),
            forecast: history.clone().map(|history| ForecastConfig {
                history,
                levels: s.forecast,
                backup_dir: forecast_backup_dir,
            }),
            history,
        })
    }

    fn paths(&self, p: &PathsSection) -> Paths {
        let maintenance_dir = resolve_path(self.base, &p.maintenance_dir);
        let resolve = |dir: &Option<PathBuf>| dir.as_deref().map(|d| resolve_path(self.base, d));
        Paths {
            run_logs_dir: maintenance_dir.join("logs"),
            reports_dir: maintenance_dir.join("reports"),
            maintenance_dir,
            log_dir: resolve(&p.log_dir),
            backup_dir: resolve(&p.backup_dir),
            temp_dir: resolve(&p.temp_dir),
        }
    }

    /// The directories the flows delete inside are opened with `O_NOFOLLOW` at run time; a
    /// symlink there is a config error now rather than a failed task later.
    fn roots_are_not_symlinks(&self, paths: &Paths) -> Result<(), ConfigError> {
        let backup_full = paths.backup_dir.as_ref().map(|b| b.join("full"));
        for (key, dir) in [
            ("paths.temp_dir", paths.temp_dir.as_ref()),
            ("paths.log_dir", paths.log_dir.as_ref()),
            ("paths.backup_dir", paths.backup_dir.as_ref()),
            ("paths.backup_dir", backup_full.as_ref()),
            ("paths.maintenance_dir", Some(&paths.reports_dir)),
        ] {
            if let Some(link) = dir.and_then(|d| symlink_note(d)) {
                return Err(self.invalid(FieldError::new(key, format!("{link}; {ROOT_SYMLINK_HINT}"))));
            }
        }
        Ok(())
    }

    fn logs(&self, logs: &mut [LogSection], log_dir: Option<&Path>) -> Result<Vec<LogPolicy>, ConfigError> {
        let mut policies = Vec::with_capacity(logs.len());
        for (i, log) in logs.iter_mut().enumerate() {
            let table = format!("logs[{i}]");
            log.resolve_paths(self.base, log_dir);
            self.at(&table, log.validate())?;
            let policy = self.at(&table, log.policy())?;
            if let Some(link) = policy.path.parent().and_then(symlink_note) {
                let message = format!("its directory {link}; {ROOT_SYMLINK_HINT}");
                return Err(self.invalid(FieldError::new("path", message).under(&table)));
            }
            policies.push(policy);
        }
        Ok(policies)
    }
}

const ROOT_SYMLINK_HINT: &str =
    "kyb-maint deletes inside this directory and never through a symlink: give the real directory";

/// `<dir> is a symlink (to <target>)` when `dir` is one.
fn symlink_note(dir: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.file_type().is_symlink() {
        return None;
    }
    let target = std::fs::read_link(dir).map(|t| format!(" (to {})", t.display())).unwrap_or_default();
    Some(format!("{} is a symlink{target}", dir.display()))
}
