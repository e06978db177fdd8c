//! The configuration file: TOML, unknown keys refused, errors that name file, line and key.
//!
//! The file model (`File*` structs) mirrors the TOML; [`load`] turns it into [`Config`], the typed
//! settings of every task, with defaults chosen here and nowhere else, relative paths resolved
//! against the file's directory, and secrets read from the file, an env var or a password file.

use crate::window::{Window, Windows};
use kyb_backup::{
    ArchiveConfig, ArchiveSource, CreateConfig, DrillConfig, Format, PgTarget, PruneConfig, VerifyConfig,
    Which,
};
use kyb_core::{Secret, Thresholds};
use kyb_dbmaint::{CapacityConfig, DbConfig, ReportConfig};
use kyb_health::{
    AppConfig, Component, HealthConfig, MonitorTarget, MonitoringConfig, PerfConfig, PostgresConfig,
    RedisConfig, SnapshotConfig, SystemConfig,
};
use kyb_logrotate::{Interval, LogPolicy, Reopen, ReopenSignal, TempConfig};
use kyb_mlcheck::{MlConfig, ModelThresholds};
use kyb_secaudit::{
    AdvisoryConfig, CertConfig, Endpoint, LogScanConfig, OutdatedConfig, PermConfig, UpdatesConfig,
};
use kyb_update::{AppConfig as UpdateConfig, ServiceManager, TuneConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used. Every variant names the file; those about its content
/// give `file:line:column`, the key where known, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read, or is not a regular file of at most [`MAX_FILE_BYTES`].
    #[error("{path}: cannot read config file")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kyb_core::fs::ReadError,
    },
    /// The file is not UTF-8 TOML, or does not fit the schema.
    #[error("{path}:{line}:{column}: {message}{}; {hint}", key_note(key))]
    Parse {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The dotted key, when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// A value parses but cannot be used.
    #[error("{path}:{line}:{column}: {message}{}", key_note(&Some(key.clone())))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the key; of its table, or 1, when the key is not in the file.
        line: usize,
        /// 1-based column of the key.
        column: usize,
        /// The dotted key.
        key: String,
        /// What is wrong, and what is expected instead.
        message: String,
    },
}

impl ConfigError {
    /// `(line, column)` in the file, for errors about its content.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Parse { line, column, .. } | ConfigError::Invalid { line, column, .. } => {
                Some((*line, *column))
            }
        }
    }
}

/// The largest config or password file read: anything bigger is not one.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn key_note(key: &Option<String>) -> String {
    key.as_ref()
        .filter(|k| !k.is_empty() && k.as_str() != ".")
        .map(|k| format!(" (key `{k}`)"))
        .unwrap_or_default()
}

// No Debug: it holds passwords in the clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    paths: FilePaths,
    app: Option<FileApp>,
    postgres: Option<FilePostgres>,
    redis: Option<FileRedis>,
    #[serde(default)]
    system: FileSystem,
    #[serde(default)]
    logs: Vec<FileLog>,
    #[serde(default)]
    cleanup: FileCleanup,
    #[serde(default)]
    backup: FileBackup,
    #[serde(default)]
    dbmaint: FileDbMaint,
    #[serde(default)]
    window: FileWindow,
    #[serde(default)]
    performance: PerfConfig,
    #[serde(default)]
    ml: FileMl,
    #[serde(default)]
    monitoring: FileMonitoring,
    #[serde(default)]
    security: FileSecurity,
    update: Option<UpdateConfig>,
    #[serde(default)]
    tuning: TuneConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileSecurity {
    cert_paths: Vec<PathBuf>,
    endpoints: Vec<String>,
    cert_days: Thresholds,
    ca_bundle: PathBuf,
    timeout_ms: u64,
    audit_roots: Vec<PathBuf>,
    service_user: Option<String>,
    service_group: Option<String>,
    audit_time_limit_ms: u64,
    auth_logs: Vec<PathBuf>,
    journalctl: Option<PathBuf>,
    log_window_hours: u64,
    burst_count: usize,
    burst_seconds: i64,
    suspicious_patterns: Vec<String>,
    os_updates: bool,
    apt_get: PathBuf,
    os_release: PathBuf,
    apt_lists: PathBuf,
    apt_lists_max_age_days: u64,
    apply_updates: bool,
    apt_timeout_ms: u64,
    cargo_lock: Option<PathBuf>,
    advisory_db: Option<PathBuf>,
    advisory_max_age_days: u64,
    cargo_manifest: Option<PathBuf>,
    crate_index: String,
}

impl Default for FileSecurity {
    fn default() -> Self {
        FileSecurity {
            cert_paths: Vec::new(),
            endpoints: Vec::new(),
            // check_ssl_cert's defaults: warn 30 days ahead, crit 7; lower is worse.
            cert_days: Thresholds::new(30.0, 7.0),
            ca_bundle: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            timeout_ms: 10_000,
            audit_roots: Vec::new(),
            service_user: None,
            service_group: None,
            audit_time_limit_ms: 300_000,
            auth_logs: Vec::new(),
            journalctl: None,
            log_window_hours: 24,
            // fail2ban's sshd defaults: 5 failures within 10 minutes.
            burst_count: 5,
            burst_seconds: 600,
            suspicious_patterns: vec![
                "POSSIBLE BREAK-IN ATTEMPT".into(),
                "Did not receive identification string".into(),
            ],
            os_updates: true,
            apt_get: PathBuf::from("apt-get"),
            os_release: PathBuf::from("/etc/os-release"),
            apt_lists: PathBuf::from("/var/lib/apt/lists"),
            apt_lists_max_age_days: 7,
            apply_updates: false,
            apt_timeout_ms: 600_000,
            cargo_lock: None,
            advisory_db: None,
            advisory_max_age_days: 7,
            cargo_manifest: None,
            crate_index: "https://index.crates.io/".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileMl {
    accuracy_metric: String,
    requests_metric: String,
    latency_metric: String,
    model_label: String,
    history: Option<PathBuf>,
    max_drop_points: f64,
    trend_days: u32,
    models: Option<Vec<FileModel>>,
}

impl Default for FileMl {
    fn default() -> Self {
        let m = MlConfig::default();
        FileMl {
            accuracy_metric: m.accuracy_metric,
            requests_metric: m.requests_metric,
            latency_metric: m.latency_metric,
            model_label: m.model_label,
            history: None,
            max_drop_points: m.max_drop_points,
            trend_days: m.trend_days,
            models: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    name: String,
    warn_below: f64,
    crit_below: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileMonitoring {
    prometheus_url: Option<String>,
    grafana_url: Option<String>,
    alertmanager_url: Option<String>,
    timeout_ms: u64,
    restart: bool,
    prometheus_unit: String,
    grafana_unit: String,
    alertmanager_unit: String,
    systemctl: PathBuf,
}

impl Default for FileMonitoring {
    fn default() -> Self {
        FileMonitoring {
            prometheus_url: None,
            grafana_url: None,
            alertmanager_url: None,
            timeout_ms: 5_000,
            restart: false,
            prometheus_unit: "prometheus".into(),
            grafana_unit: "grafana-server".into(),
            alertmanager_unit: "alertmanager".into(),
            systemctl: PathBuf::from("systemctl"),
        }
    }
}

// Every key optional: the defaults are PgHero's and check_postgres's, from ReportConfig.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileDbMaint {
    lock_timeout_ms: u64,
    statement_timeout_ms: u64,
    lock_wait_ms: u64,
    unused_index_max_scans: i64,
    unused_index_min_bytes: i64,
    bloat_bytes: Thresholds,
    bloat_min_pct: f64,
    table_limit: usize,
    dead_tuple_pct: Thresholds,
    dead_tuple_min: i64,
    stale_hours: Thresholds,
    xid_age: Thresholds,
    sequence_pct: Thresholds,
    connections_pct: Thresholds,
    query_seconds: Thresholds,
    idle_in_transaction_seconds: Thresholds,
    cache_hit_pct: Thresholds,
    cache_min_blocks: i64,
    recommend_min_rows: i64,
    recommend_max_index_pct: f64,
    slow_query_ms: Thresholds,
    slow_query_min_calls: i64,
    slow_query_limit: usize,
    trend_csv: Option<PathBuf>,
    write_trend_csv: bool,
    data_disk: Option<PathBuf>,
    fit_days: u32,
    days_left: Thresholds,
}

impl Default for FileDbMaint {
    fn default() -> Self {
        let r = ReportConfig::default();
        FileDbMaint {
            lock_timeout_ms: 5_000,
            statement_timeout_ms: 3_600_000,
            lock_wait_ms: 60_000,
            unused_index_max_scans: r.unused_index_max_scans,
            unused_index_min_bytes: r.unused_index_min_bytes,
            bloat_bytes: r.bloat_bytes,
            bloat_min_pct: r.bloat_min_pct,
            table_limit: r.table_limit,
            dead_tuple_pct: r.dead_tuple_pct,
            dead_tuple_min: r.dead_tuple_min,
            stale_hours: r.stale_hours,
            xid_age: r.xid_age,
            sequence_pct: r.sequence_pct,
            connections_pct: r.connections_pct,
            query_seconds: r.query_seconds,
            idle_in_transaction_seconds: r.idle_in_transaction_seconds,
            cache_hit_pct: Thresholds::new(r.cache_hit_warn_pct, r.cache_hit_crit_pct),
            cache_min_blocks: r.cache_min_blocks,
            recommend_min_rows: r.recommend_min_rows,
            recommend_max_index_pct: r.recommend_max_index_pct,
            slow_query_ms: r.slow_query_ms,
            slow_query_min_calls: r.slow_query_min_calls,
            slow_query_limit: r.slow_query_limit,
            trend_csv: None,
            write_trend_csv: true,
            data_disk: None,
            // A quarter of history for the fit; warn three months ahead, page one month ahead.
            fit_days: 90,
            days_left: Thresholds::new(90.0, 30.0),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileWindow {
    enforce: bool,
    allowed: Vec<String>,
}

impl Default for FileWindow {
    fn default() -> Self {
        let w = Windows::default();
        FileWindow { enforce: w.enforce, allowed: w.allowed.iter().map(|w| w.to_string()).collect() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackup {
    #[serde(default = "default_backup_max_age_hours")]
    max_age_hours: u64,
    #[serde(default = "default_backup_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_lock_wait_timeout_ms")]
    lock_wait_timeout_ms: u64,
    pg_bindir: Option<PathBuf>,
    #[serde(default)]
    format: Format,
    #[serde(default = "default_compression_level")]
    compression_level: u32,
    #[serde(default = "default_keep_min")]
    keep_min: usize,
    keep_last: Option<usize>,
    #[serde(default = "default_backup_max_age_days")]
    max_age_days: u64,
    #[serde(default)]
    archive: Vec<FileArchive>,
}

impl Default for FileBackup {
    fn default() -> Self {
        FileBackup {
            max_age_hours: default_backup_max_age_hours(),
            timeout_ms: default_backup_timeout_ms(),
            lock_wait_timeout_ms: default_lock_wait_timeout_ms(),
            pg_bindir: None,
            format: Format::default(),
            compression_level: default_compression_level(),
            keep_min: default_keep_min(),
            keep_last: None,
            max_age_days: default_backup_max_age_days(),
            archive: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileArchive {
    name: String,
    paths: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    path: PathBuf,
    #[serde(default = "default_log_size_bytes")]
    size_bytes: u64,
    every: Option<FileInterval>,
    #[serde(default = "default_keep_days")]
    keep_days: u32,
    keep_count: Option<u32>,
    #[serde(default = "default_true")]
    compress: bool,
    #[serde(default)]
    delay_compress: bool,
    #[serde(default = "default_compress_level")]
    compress_level: u32,
    owner: Option<String>,
    group: Option<String>,
    #[serde(default = "default_log_mode")]
    mode: String,
    pid_file: Option<PathBuf>,
    systemd_unit: Option<String>,
    #[serde(default = "default_reopen_signal")]
    reopen_signal: FileSignal,
    #[serde(default)]
    copytruncate: bool,
    #[serde(default = "default_reopen_timeout_ms")]
    reopen_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileInterval {
    Daily,
    Weekly,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum FileSignal {
    #[serde(rename = "HUP", alias = "SIGHUP")]
    Hup,
    #[serde(rename = "USR1", alias = "SIGUSR1")]
    Usr1,
    #[serde(rename = "USR2", alias = "SIGUSR2")]
    Usr2,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCleanup {
    #[serde(default = "default_temp_prefix")]
    temp_prefix: String,
    #[serde(default = "default_temp_max_age_days")]
    temp_max_age_days: f64,
    #[serde(default = "default_keep_days")]
    reports_max_age_days: u32,
    #[serde(default = "default_cleanup_timeout_ms")]
    timeout_ms: u64,
}

impl Default for FileCleanup {
    fn default() -> Self {
        FileCleanup {
            temp_prefix: default_temp_prefix(),
            temp_max_age_days: default_temp_max_age_days(),
            reports_max_age_days: default_keep_days(),
            timeout_ms: default_cleanup_timeout_ms(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePaths {
    #[serde(default = "default_maintenance_dir")]
    maintenance_dir: PathBuf,
    log_dir: Option<PathBuf>,
    backup_dir: Option<PathBuf>,
    temp_dir: Option<PathBuf>,
}

impl Default for FilePaths {
    fn default() -> Self {
        FilePaths {
            maintenance_dir: default_maintenance_dir(),
            log_dir: None,
            backup_dir: None,
            temp_dir: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    base_url: String,
    #[serde(default = "default_health_path")]
    health_path: String,
    #[serde(default = "default_metrics_path")]
    metrics_path: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
    #[serde(default = "default_max_snapshot_bytes")]
    max_snapshot_bytes: u64,
    #[serde(default = "default_max_redirects")]
    max_redirects: u32,
    #[serde(default = "default_latency_ms")]
    latency_ms: Thresholds,
}

/// The three ways a section can give its password.
struct FileSecret {
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    allow_insecure_password_file: bool,
}

// No Debug: it holds passwords in the clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePostgres {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_pg_port")]
    port: u16,
    user: String,
    dbname: String,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    allow_insecure_password_file: bool,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

// No Debug: it holds passwords in the clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRedis {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_redis_port")]
    port: u16,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    allow_insecure_password_file: bool,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSystem {
    #[serde(default = "default_disk_pct")]
    disk_pct: Thresholds,
    #[serde(default = "default_memory_pct")]
    memory_pct: Thresholds,
    #[serde(default = "default_load_per_core")]
    load_per_core: Thresholds,
    #[serde(default = "default_cpu_sample_ms")]
    cpu_sample_ms: u64,
    #[serde(default = "default_mount_timeout_ms")]
    mount_timeout_ms: u64,
}

impl Default for FileSystem {
    fn default() -> Self {
        FileSystem {
            disk_pct: default_disk_pct(),
            memory_pct: default_memory_pct(),
            load_per_core: default_load_per_core(),
            cpu_sample_ms: default_cpu_sample_ms(),
            mount_timeout_ms: default_mount_timeout_ms(),
        }
    }
}

/// The `[postgres]` database as the backup and maintenance crates name it.
fn pg_target(pg: &PostgresConfig) -> PgTarget {
    PgTarget {
        host: pg.host.clone(),
        port: pg.port,
        user: pg.user.clone(),
        password: pg.password.clone(),
        dbname: pg.dbname.clone(),
    }
}

// The defaults, in one place; docs/configuration.md lists the same values.
fn default_backup_max_age_hours() -> u64 {
    // A nightly backup plus slack for a late run.
    26
}
fn default_backup_timeout_ms() -> u64 {
    3_600_000
}
fn default_lock_wait_timeout_ms() -> u64 {
    60_000
}
fn default_compression_level() -> u32 {
    1
}
fn default_keep_min() -> usize {
    3
}
fn default_backup_max_age_days() -> u64 {
    30
}
fn default_maintenance_dir() -> PathBuf {
    PathBuf::from("/var/lib/kyb-maint")
}
fn default_health_path() -> String {
    "/health".to_owned()
}
fn default_metrics_path() -> String {
    "/metrics".to_owned()
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_max_snapshot_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_max_redirects() -> u32 {
    5
}
fn default_latency_ms() -> Thresholds {
    Thresholds::new(500.0, 2_000.0)
}
fn default_host() -> String {
    "localhost".to_owned()
}
fn default_pg_port() -> u16 {
    5432
}
fn default_redis_port() -> u16 {
    6379
}
fn default_disk_pct() -> Thresholds {
    Thresholds::new(80.0, 90.0)
}
fn default_memory_pct() -> Thresholds {
    Thresholds::new(85.0, 95.0)
}
fn default_load_per_core() -> Thresholds {
    Thresholds::new(1.5, 3.0)
}
fn default_cpu_sample_ms() -> u64 {
    // Half a second: long enough for a steady figure, short for a daily job.
    500
}
fn default_mount_timeout_ms() -> u64 {
    2_000
}
fn default_log_size_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_keep_days() -> u32 {
    30
}
fn default_true() -> bool {
    true
}
fn default_compress_level() -> u32 {
    6
}
fn default_log_mode() -> String {
    "0640".to_owned()
}
fn default_reopen_signal() -> FileSignal {
    FileSignal::Hup
}
fn default_reopen_timeout_ms() -> u64 {
    10_000
}
fn default_temp_prefix() -> String {
    "kyb-".to_owned()
}
fn default_temp_max_age_days() -> f64 {
    1.0
}
fn default_cleanup_timeout_ms() -> u64 {
    60_000
}
/// The longest temp-file age accepted, in days: a century.
const MAX_AGE_DAYS: f64 = 36_500.0;

/// The largest deadline accepted: a day. Anything longer is almost surely a unit mistake.
const MAX_TIMEOUT_MS: u64 = 86_400_000;

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
    /// Dependency probes.
    pub health: HealthConfig,
    /// System metric thresholds.
    pub system: SystemConfig,
    /// Metrics snapshot settings, when an app is configured.
    pub snapshot: Option<SnapshotConfig>,
    /// Logs to rotate, with their policies.
    pub logs: Vec<LogPolicy>,
    /// Retention of reports and cleanup of the temp directory.
    pub cleanup: Cleanup,
    /// Backup verification (and, with `[postgres]`, creation), when `[paths] backup_dir` is set.
    pub backup: Option<Backup>,
    /// Database maintenance of the `[postgres]` database, when it is configured.
    pub dbmaint: Option<DbMaint>,
    /// When heavy database work (VACUUM, REINDEX) and restarts may run.
    pub window: Windows,
    /// The weekly performance analysis of the app's `/metrics`.
    pub performance: PerfConfig,
    /// The model checks (history resolved; `dry_run` set per run).
    pub ml: MlConfig,
    /// The monitoring stack, when any of its URLs is set (`window_open` and `dry_run` set per
    /// run).
    pub monitoring: Option<MonitoringConfig>,
    /// The security audit.
    pub security: Security,
    /// The application update (`[update]`), with the pre-update database dump taken from
    /// `[backup]` when a database and a backup directory are configured.
    pub update: Option<UpdateConfig>,
    /// The tuning tasks (`[tuning]`).
    pub tuning: TuneConfig,
}

/// `[security]` resolved: one config per audit (`window_open`, `dry_run` set per run).
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    /// Certificates; None without paths or endpoints.
    pub certs: Option<CertConfig>,
    /// The permission audit; None without roots.
    pub perms: Option<PermConfig>,
    /// The log scan; None without `auth_logs` or `journalctl`.
    pub logs: Option<LogScanConfig>,
    /// Whether the OS-update check runs (`os_updates`); off, it reports that it is switched off.
    pub os_updates: bool,
    /// OS security updates.
    pub updates: UpdatesConfig,
    /// Dependency advisories; None without `cargo_lock`.
    pub advisories: Option<AdvisoryConfig>,
    /// Out-of-date direct dependencies; None without `cargo_manifest`.
    pub outdated: Option<OutdatedConfig>,
}

/// `[dbmaint]` resolved against `[postgres]` and `[paths]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DbMaint {
    /// The database and the guard rails of each statement.
    pub db: DbConfig,
    /// Report thresholds.
    pub reports: ReportConfig,
    /// Size history and forecast.
    pub capacity: CapacityConfig,
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

/// Retention of kyb-maint's reports and cleanup of the temp directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// Reports older than this many days are removed.
    pub reports_max_age_days: u32,
    /// Temp cleanup, when `[paths] temp_dir` is set.
    pub temp: Option<TempConfig>,
}

impl Config {
    /// The run lock shared by every flow.
    pub fn lock_path(&self) -> PathBuf {
        self.paths.maintenance_dir.join("kyb-maint.lock")
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
    let text = std::str::from_utf8(bytes).map_err(|e| {
        // The part before the first bad byte is valid, so the position can be counted in it.
        let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
        let (line, column) = line_col(valid, valid.len());
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            key: key_at(valid, line),
            message: format!("the file is not UTF-8 (bad byte at offset {})", e.valid_up_to()),
            hint: "TOML files are UTF-8: re-save the file as UTF-8 (e.g. `iconv -t UTF-8`)".to_owned(),
        }
    })?;
    parse(text, path)
}

/// Parses config `text` as if read from `path` (relative paths resolve against its directory).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::new(text);
    let file: FileConfig = serde_path_to_error::deserialize(de).map_err(|err| {
        let serde_key = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = inner.span().map_or((1, 1), |s| line_col(text, s.start));
        // toml's own messages run over several lines: one line here.
        let raw = inner.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>();
        let raw = raw.join(": ");
        let (key, message) = if serde_key.is_empty() || serde_key == "." {
            // Syntax errors come before serde knows a key: read it off the line they are on.
            (key_at(text, line), raw)
        } else if let Some(field) = backticked(&raw, "missing field `") {
            (Some(format!("{serde_key}.{field}")), raw)
        } else if serde_key.rsplit('.').next().is_some_and(|k| k.starts_with("password"))
            && !raw.starts_with("unknown field")
        {
            // serde quotes the offending value ("invalid type: integer `123456`"): not for secrets.
            (
                Some(serde_key),
                "invalid value (not shown: this key holds a secret); expected a string".to_owned(),
            )
        } else {
            (Some(serde_key), raw)
        };
        let hint = parse_hint(&message, text, line);
        ConfigError::Parse { path: path.to_owned(), line, column, key, message, hint }
    })?;
    Resolver { text, path }.resolve(file)
}

/// One line on what to do about a TOML or schema error `message`, raised at `line`.
fn parse_hint(message: &str, text: &str, line: usize) -> String {
    let on_header = text.lines().nth(line.saturating_sub(1)).is_some_and(|l| l.trim_start().starts_with('['));
    if message.contains("unknown field") {
        "remove the key or fix its spelling; docs/configuration.md lists every key".to_owned()
    } else if message.contains("duplicate key") && on_header {
        "a table may be given once: merge the two sections into one".to_owned()
    } else if message.contains("duplicate key") {
        "a key may be given once per table: remove one of the two".to_owned()
    } else if message.contains("number too large") || message.contains("number too small") {
        "use a smaller number: integers must fit in 64 bits, and most keys allow far less".to_owned()
    } else if let Some(ty) = backticked(message, "expected ").filter(|_| message.starts_with("invalid value"))
    {
        match integer_range(ty) {
            Some(range) => format!("use a whole number from {range}"),
            None => "use a value of the kind the key expects".to_owned(),
        }
    } else if let Some((_, want)) =
        message.rsplit_once("expected ").filter(|_| message.starts_with("invalid type"))
    {
        type_hint(want).to_owned()
    } else if message.starts_with("missing field") {
        "add the key to this table".to_owned()
    } else if message.starts_with("unknown variant") {
        "use one of the values listed".to_owned()
    } else if message.contains("not UTF-8") {
        "re-save the file as UTF-8".to_owned()
    } else {
        "fix the TOML syntax here: `key = value` lines under `[table]` headers, strings in double quotes"
            .to_owned()
    }
}

/// What to write for a value serde describes as `want` ("u16", "a boolean", "path string").
fn type_hint(want: &str) -> &'static str {
    let integer = want.strip_prefix(['u', 'i']).is_some_and(|w| w == "size" || w.parse::<u8>().is_ok());
    if want.contains("string") {
        "put the value in double quotes"
    } else if integer {
        "use a whole number, without quotes or a decimal point"
    } else if want.starts_with('f') {
        "use a number, without quotes"
    } else if want.contains("boolean") {
        "use true or false, without quotes"
    } else if want.contains("sequence") {
        "use an array: `[first, second]`"
    } else if want.contains("struct") || want.contains("map") {
        "use a table: `{ key = value, ... }`, e.g. `{ warn = 80, crit = 90 }` for levels"
    } else {
        "use a value of the kind docs/configuration.md gives for this key"
    }
}

/// The word after `prefix` up to the next backtick, or for "expected u16" the type name.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let end = rest.find(|c: char| c == '`' || c == ',' || c.is_whitespace()).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|w| !w.is_empty())
}

fn integer_range(ty: &str) -> Option<String> {
    let (lo, hi): (i128, i128) = match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    };
    Some(format!("{lo} to {hi}"))
}

/// The dotted key a line of `text` sets, or the table it opens: `redis.port`, `logs[1].mode`,
/// `redis`. Good enough to point at; None for a line that is neither.
fn key_at(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate().take(line) {
        let l = raw.trim();
        let last = i + 1 == line;
        if l.starts_with('[') {
            let array = l.starts_with("[[");
            let name = l.trim_start_matches('[');
            let name = name[..name.find(']').unwrap_or(name.len())].trim().to_owned();
            table = if array {
                let n = match arrays.iter_mut().find(|(a, _)| *a == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        arrays.push((name.clone(), 0));
                        0
                    }
                };
                format!("{name}[{n}]")
            } else {
                name
            };
            if last {
                return Some(table).filter(|t| !t.is_empty());
            }
        } else if last {
            let (key, _) = l.split_once('=')?;
            let key = key.trim();
            if key.is_empty() || key.starts_with('#') {
                return None;
            }
            return Some(if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") });
        }
    }
    None
}

/// `host:port` or `host:port=sni`; an IPv6 host in brackets.
fn parse_endpoint(text: &str) -> Option<Endpoint> {
    let (addr, sni) = match text.split_once('=') {
        Some((a, s)) if !s.is_empty() => (a, Some(s.to_owned())),
        Some(_) => return None,
        None => (text, None),
    };
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(Endpoint { host: host.to_owned(), port: port.parse().ok()?, server_name: sni })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Resolver<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Resolver<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = find_key_pos(self.text, key);
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// [`Self::invalid`] for `key` of the `i`th `[[section]]`.
    fn invalid_nth(&self, section: &str, i: usize, key: &str, message: String) -> ConfigError {
        let (line, column) =
            find_key_pos_nth(self.text, section, i, key).unwrap_or_else(|| find_key_pos(self.text, section));
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            key: format!("{section}[{i}].{key}"),
            message,
        }
    }

    fn path(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() { p } else { self.path.parent().unwrap_or(Path::new(".")).join(p) }
    }

    fn resolve(&self, file: FileConfig) -> Result<Config, ConfigError> {
        let maintenance_dir = self.path(file.paths.maintenance_dir);
        let paths = Paths {
            run_logs_dir: maintenance_dir.join("logs"),
            reports_dir: maintenance_dir.join("reports"),
            maintenance_dir,
            log_dir: file.paths.log_dir.map(|p| self.path(p)),
            backup_dir: file.paths.backup_dir.map(|p| self.path(p)),
            temp_dir: file.paths.temp_dir.map(|p| self.path(p)),
        };
        self.roots_are_not_symlinks(&paths)?;
        let (app, snapshot) = match file.app {
            Some(a) => {
                let (app, snap) = self.app(a, &paths)?;
                (Some(app), Some(snap))
            }
            None => (None, None),
        };
        let postgres = file.postgres.map(|p| self.postgres(p)).transpose()?;
        let redis = file.redis.map(|r| self.redis(r)).transpose()?;
        let s = file.system;
        for (key, t) in [
            ("system.disk_pct", s.disk_pct),
            ("system.memory_pct", s.memory_pct),
            ("system.load_per_core", s.load_per_core),
        ] {
            t.validate().map_err(|e| self.invalid(key, e.to_string()))?;
        }
        self.timeout("system.mount_timeout_ms", s.mount_timeout_ms)?;
        if s.cpu_sample_ms == 0 || s.cpu_sample_ms > 10_000 {
            return Err(self.invalid("system.cpu_sample_ms", "must be between 1 and 10000"));
        }
        let logs = self.logs(file.logs, paths.log_dir.as_deref())?;
        let cleanup = self.cleanup(file.cleanup, paths.temp_dir.as_deref())?;
        let backup = self.backup(file.backup, paths.backup_dir.as_deref(), postgres.as_ref())?;
        let dbmaint = postgres.as_ref().map(|pg| self.dbmaint(file.dbmaint, pg, &paths)).transpose()?;
        let window = self.window(file.window)?;
        let performance = self.performance(file.performance)?;
        let ml = self.ml(file.ml, &paths)?;
        let monitoring = self.monitoring(file.monitoring)?;
        let security = self.security(file.security)?;
        let update = file
            .update
            .map(|u| self.update(u, backup.as_ref().and_then(|b| b.create.clone())))
            .transpose()?;
        let tuning = self.tuning(file.tuning)?;
        Ok(Config {
            source: self.path.to_owned(),
            paths,
            health: HealthConfig { app, postgres, redis },
            system: SystemConfig {
                disk_pct: s.disk_pct,
                memory_pct: s.memory_pct,
                load_per_core: s.load_per_core,
                cpu_sample_ms: s.cpu_sample_ms,
                mount_timeout_ms: s.mount_timeout_ms,
            },
            snapshot,
            logs,
            cleanup,
            backup,
            dbmaint,
            window,
            performance,
            ml,
            monitoring,
            security,
            update,
            tuning,
        })
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
                return Err(self.invalid(key, format!("{link}; {ROOT_SYMLINK_HINT}")));
            }
        }
        Ok(())
    }

    fn update(
        &self,
        mut u: UpdateConfig,
        database: Option<CreateConfig>,
    ) -> Result<UpdateConfig, ConfigError> {
        u.binary = self.path(u.binary);
        u.state_dir = self.path(u.state_dir);
        u.configs = u.configs.into_iter().map(|p| self.path(p)).collect();
        u.releases_dir = u.releases_dir.map(|p| self.path(p));
        if u.keep_releases < 2 {
            return Err(self.invalid(
                "update.keep_releases",
                "must be at least 2: the current and the previous release",
            ));
        }
        match &mut u.service {
            ServiceManager::Systemd { unit, timeout_ms, .. } => {
                if unit.is_empty() {
                    return Err(self.invalid("update.service.unit", "must name a unit"));
                }
                self.timeout("update.service.timeout_ms", *timeout_ms)?;
            }
            ServiceManager::Process { command, pid_file, log_file, stop_timeout_ms } => {
                if command.is_empty() {
                    return Err(
                        self.invalid("update.service.command", "must hold the program and its arguments")
                    );
                }
                *pid_file = self.path(std::mem::take(pid_file));
                *log_file = log_file.take().map(|p| self.path(p));
                self.timeout("update.service.stop_timeout_ms", *stop_timeout_ms)?;
            }
        }
        kyb_health::parse_url(&u.health.url).map_err(|e| self.invalid("update.health.url", e.to_string()))?;
        for (key, ms) in [
            ("update.health.probe_timeout_ms", u.health.probe_timeout_ms),
            ("update.health.deadline_ms", u.health.deadline_ms),
            ("update.health.first_backoff_ms", u.health.first_backoff_ms),
            ("update.health.max_backoff_ms", u.health.max_backoff_ms),
            ("update.check_timeout_ms", u.check_timeout_ms),
        ] {
            self.timeout(key, ms)?;
        }
        if u.health.successes == 0 {
            return Err(self.invalid("update.health.successes", "must be at least 1"));
        }
        if u.keep_backups == 0 {
            return Err(
                self.invalid("update.keep_backups", "must be at least 1: the last backup is the way back")
            );
        }
        u.database = database;
        Ok(u)
    }

    fn tuning(&self, mut t: TuneConfig) -> Result<TuneConfig, ConfigError> {
        let m = &t.memory;
        if m.rss_warn_bytes == 0 || m.rss_crit_bytes < m.rss_warn_bytes {
            return Err(self.invalid(
                "tuning.memory.rss_crit_bytes",
                format!("must be at least rss_warn_bytes ({}), which must be above 0", m.rss_warn_bytes),
            ));
        }
        t.sysctl.root = self.path(t.sysctl.root);
        if !t.sysctl.managed_file.is_absolute() {
            return Err(self.invalid("tuning.sysctl.managed_file", "must be an absolute path (under `root`)"));
        }
        Ok(t)
    }

    fn security(&self, f: FileSecurity) -> Result<Security, ConfigError> {
        let t = f.cert_days;
        Thresholds::new(t.crit, t.warn).validate().map_err(|_| {
            self.invalid(
                "security.cert_days",
                format!("warn ({}) must not be below crit ({}): fewer days left is worse", t.warn, t.crit),
            )
        })?;
        if t.crit < 0.0 {
            return Err(self.invalid("security.cert_days", "must not be negative"));
        }
        for (key, ms) in [
            ("security.timeout_ms", f.timeout_ms),
            ("security.audit_time_limit_ms", f.audit_time_limit_ms),
            ("security.apt_timeout_ms", f.apt_timeout_ms),
        ] {
            self.timeout(key, ms)?;
        }
        let endpoints = f
            .endpoints
            .iter()
            .map(|e| {
                parse_endpoint(e).ok_or_else(|| {
                    self.invalid("security.endpoints", format!("`{e}` is not `host:port` or `host:port=sni`"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let certs = (!f.cert_paths.is_empty() || !endpoints.is_empty()).then(|| CertConfig {
            paths: f.cert_paths.iter().map(|p| self.path(p.clone())).collect(),
            endpoints,
            warn_days: t.warn,
            crit_days: t.crit,
            ca_bundle: self.path(f.ca_bundle.clone()),
            timeout_ms: f.timeout_ms,
        });
        let id = |key: &str,
                  name: &Option<String>,
                  lookup: fn(&str) -> Result<u32, kyb_core::users::LookupError>| {
            name.as_deref().map(|n| lookup(n).map_err(|e| self.invalid(key, e.to_string()))).transpose()
        };
        let perms = (!f.audit_roots.is_empty())
            .then(|| -> Result<PermConfig, ConfigError> {
                Ok(PermConfig {
                    roots: f.audit_roots.iter().map(|p| self.path(p.clone())).collect(),
                    owner_uid: id("security.service_user", &f.service_user, kyb_core::users::uid)?,
                    group_gid: id("security.service_group", &f.service_group, kyb_core::users::gid)?,
                    time_limit_ms: f.audit_time_limit_ms,
                })
            })
            .transpose()?;
        if f.log_window_hours == 0 || f.log_window_hours > 24 * 366 {
            return Err(self.invalid("security.log_window_hours", "must be between 1 and 8784"));
        }
        if f.burst_count == 0 || f.burst_seconds <= 0 {
            return Err(
                self.invalid("security.burst_count", "burst_count and burst_seconds must be at least 1")
            );
        }
        let advisories = match (f.cargo_lock, f.advisory_db) {
            (Some(lock), Some(db)) => Some(AdvisoryConfig {
                lockfile: self.path(lock),
                database: self.path(db),
                max_age_days: f.advisory_max_age_days,
            }),
            (None, None) => None,
            _ => {
                return Err(self.invalid(
                    "security.cargo_lock",
                    "cargo_lock and advisory_db go together: set both or neither",
                ));
            }
        };
        let outdated = match (f.cargo_manifest, &advisories) {
            (Some(manifest), Some(a)) => {
                let host =
                    f.crate_index.strip_prefix("https://").or_else(|| f.crate_index.strip_prefix("http://"));
                if host.is_none_or(|h| h.split('/').next().is_none_or(str::is_empty)) {
                    return Err(self.invalid(
                        "security.crate_index",
                        format!("`{}` is not an http(s) URL", f.crate_index),
                    ));
                }
                Some(OutdatedConfig {
                    manifest: self.path(manifest),
                    lockfile: a.lockfile.clone(),
                    index_url: f.crate_index.clone(),
                    ca_bundle: self.path(f.ca_bundle.clone()),
                    timeout_ms: f.timeout_ms,
                })
            }
            (Some(_), None) => {
                return Err(self.invalid("security.cargo_manifest", "needs cargo_lock (and advisory_db) too"));
            }
            (None, _) => None,
        };
        Ok(Security {
            certs,
            perms,
            logs: (!f.auth_logs.is_empty() || f.journalctl.is_some()).then(|| LogScanConfig {
                files: f.auth_logs.iter().map(|p| self.path(p.clone())).collect(),
                journalctl: f.journalctl,
                window_hours: f.log_window_hours,
                burst_count: f.burst_count,
                burst_seconds: f.burst_seconds,
                patterns: f.suspicious_patterns,
                timeout_ms: f.timeout_ms,
            }),
            os_updates: f.os_updates,
            updates: UpdatesConfig {
                apt_get: f.apt_get,
                os_release: f.os_release,
                lists_dir: f.apt_lists,
                lists_max_age_days: f.apt_lists_max_age_days,
                apply: f.apply_updates,
                window_open: false,
                dry_run: false,
                timeout_ms: f.apt_timeout_ms,
            },
            advisories,
            outdated,
        })
    }

    fn performance(&self, p: PerfConfig) -> Result<PerfConfig, ConfigError> {
        for (key, t) in [
            ("performance.avg_ms", p.avg_ms),
            ("performance.p95_ms", p.p95_ms),
            ("performance.error_rate_pct", p.error_rate_pct),
        ] {
            t.validate().map_err(|e| self.invalid(key, e.to_string()))?;
        }
        for (key, name) in [
            ("performance.requests_metric", &p.requests_metric),
            ("performance.duration_metric", &p.duration_metric),
        ] {
            if !kyb_prom::is_metric_name(name) {
                return Err(self.invalid(key, format!("`{name}` is not a metric name")));
            }
        }
        for (key, name) in
            [("performance.endpoint_label", &p.endpoint_label), ("performance.status_label", &p.status_label)]
        {
            if !kyb_prom::is_label_name(name) {
                return Err(self.invalid(key, format!("`{name}` is not a label name")));
            }
        }
        Ok(p)
    }

    fn ml(&self, m: FileMl, paths: &Paths) -> Result<MlConfig, ConfigError> {
        for (key, name) in [
            ("ml.accuracy_metric", &m.accuracy_metric),
            ("ml.requests_metric", &m.requests_metric),
            ("ml.latency_metric", &m.latency_metric),
        ] {
            if !kyb_prom::is_metric_name(name) {
                return Err(self.invalid(key, format!("`{name}` is not a metric name")));
            }
        }
        if !kyb_prom::is_label_name(&m.model_label) {
            return Err(self.invalid("ml.model_label", format!("`{}` is not a label name", m.model_label)));
        }
        if !(m.max_drop_points.is_finite() && m.max_drop_points >= 0.0) {
            return Err(self.invalid("ml.max_drop_points", "must be a number of points, 0 or more"));
        }
        if m.trend_days == 0 || m.trend_days > 3650 {
            return Err(
                self.invalid("ml.trend_days", format!("must be between 1 and 3650, got {}", m.trend_days))
            );
        }
        let models = match m.models {
            None => MlConfig::default().models,
            Some(list) => {
                let mut out: Vec<ModelThresholds> = Vec::new();
                for f in list {
                    let ok = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
                    if f.name.is_empty() || out.iter().any(|o| o.model == f.name) {
                        return Err(self.invalid(
                            "ml.models",
                            format!("model names must be given once and not be empty: `{}`", f.name),
                        ));
                    }
                    if !ok(f.warn_below) || !f.crit_below.is_none_or(ok) {
                        return Err(self.invalid(
                            "ml.models",
                            format!("accuracy levels of `{}` must be between 0 and 1", f.name),
                        ));
                    }
                    if f.crit_below.is_some_and(|c| c > f.warn_below) {
                        return Err(self.invalid(
                            "ml.models",
                            format!("crit_below of `{}` must not be above warn_below", f.name),
                        ));
                    }
                    out.push(ModelThresholds {
                        model: f.name,
                        warn_below: f.warn_below,
                        crit_below: f.crit_below,
                    });
                }
                out
            }
        };
        Ok(MlConfig {
            models,
            accuracy_metric: m.accuracy_metric,
            requests_metric: m.requests_metric,
            latency_metric: m.latency_metric,
            model_label: m.model_label,
            history: Some(
                m.history.map_or_else(
                    || paths.maintenance_dir.join("ml-accuracy-history.jsonl"),
                    |p| self.path(p),
                ),
            ),
            max_drop_points: m.max_drop_points,
            trend_days: m.trend_days,
            dry_run: false,
        })
    }

    fn monitoring(&self, m: FileMonitoring) -> Result<Option<MonitoringConfig>, ConfigError> {
        self.timeout("monitoring.timeout_ms", m.timeout_ms)?;
        let mut targets = Vec::new();
        for (key, url, component, unit) in [
            ("monitoring.prometheus_url", m.prometheus_url, Component::Prometheus, m.prometheus_unit),
            ("monitoring.grafana_url", m.grafana_url, Component::Grafana, m.grafana_unit),
            ("monitoring.alertmanager_url", m.alertmanager_url, Component::Alertmanager, m.alertmanager_unit),
        ] {
            let Some(url) = url else { continue };
            let base = url.trim_end_matches('/').to_owned();
            kyb_health::parse_url(&base).map_err(|e| self.invalid(key, kyb_core::error_chain(&e)))?;
            let unit = (!unit.is_empty()).then_some(unit);
            targets.push(MonitorTarget { component, base_url: base, unit });
        }
        if targets.is_empty() {
            return Ok(None);
        }
        Ok(Some(MonitoringConfig {
            targets,
            timeout_ms: m.timeout_ms,
            max_redirects: 3,
            restart: m.restart,
            systemctl: m.systemctl,
            window_open: false,
            dry_run: false,
        }))
    }

    fn dbmaint(&self, d: FileDbMaint, pg: &PostgresConfig, paths: &Paths) -> Result<DbMaint, ConfigError> {
        for (key, ms) in [
            ("dbmaint.lock_timeout_ms", d.lock_timeout_ms),
            ("dbmaint.statement_timeout_ms", d.statement_timeout_ms),
            ("dbmaint.lock_wait_ms", d.lock_wait_ms),
        ] {
            self.timeout(key, ms)?;
        }
        for (key, t) in [
            ("dbmaint.bloat_bytes", d.bloat_bytes),
            ("dbmaint.dead_tuple_pct", d.dead_tuple_pct),
            ("dbmaint.stale_hours", d.stale_hours),
            ("dbmaint.xid_age", d.xid_age),
            ("dbmaint.sequence_pct", d.sequence_pct),
            ("dbmaint.connections_pct", d.connections_pct),
            ("dbmaint.query_seconds", d.query_seconds),
            ("dbmaint.idle_in_transaction_seconds", d.idle_in_transaction_seconds),
            ("dbmaint.slow_query_ms", d.slow_query_ms),
        ] {
            t.validate().map_err(|e| self.invalid(key, e.to_string()))?;
            if t.warn < 0.0 {
                return Err(self.invalid(key, "must not be negative"));
            }
        }
        // Lower is worse for these two: warn is the higher level.
        for (key, t) in [("dbmaint.cache_hit_pct", d.cache_hit_pct), ("dbmaint.days_left", d.days_left)] {
            Thresholds::new(t.crit, t.warn).validate().map_err(|_| {
                self.invalid(
                    key,
                    format!("warn ({}) must not be below crit ({}): lower is worse here", t.warn, t.crit),
                )
            })?;
            if t.crit < 0.0 {
                return Err(self.invalid(key, "must not be negative"));
            }
        }
        for (key, v) in [
            ("dbmaint.unused_index_max_scans", d.unused_index_max_scans),
            ("dbmaint.unused_index_min_bytes", d.unused_index_min_bytes),
            ("dbmaint.dead_tuple_min", d.dead_tuple_min),
            ("dbmaint.cache_min_blocks", d.cache_min_blocks),
            ("dbmaint.recommend_min_rows", d.recommend_min_rows),
            ("dbmaint.slow_query_min_calls", d.slow_query_min_calls),
        ] {
            if v < 0 {
                return Err(self.invalid(key, format!("must not be negative, got {v}")));
            }
        }
        for (key, pct) in [
            ("dbmaint.bloat_min_pct", d.bloat_min_pct),
            ("dbmaint.recommend_max_index_pct", d.recommend_max_index_pct),
        ] {
            if !(0.0..=100.0).contains(&pct) {
                return Err(self.invalid(key, format!("must be a percentage from 0 to 100, got {pct}")));
            }
        }
        for (key, n) in
            [("dbmaint.table_limit", d.table_limit), ("dbmaint.slow_query_limit", d.slow_query_limit)]
        {
            if n == 0 || n > 10_000 {
                return Err(self.invalid(key, format!("must be between 1 and 10000, got {n}")));
            }
        }
        if d.fit_days == 0 || d.fit_days > 3650 {
            return Err(
                self.invalid("dbmaint.fit_days", format!("must be between 1 and 3650, got {}", d.fit_days))
            );
        }
        let trend_csv = d.write_trend_csv.then(|| {
            d.trend_csv
                .map_or_else(|| paths.maintenance_dir.join("database-size-trend.csv"), |p| self.path(p))
        });
        Ok(DbMaint {
            db: DbConfig {
                postgres: pg_target(pg),
                connect_timeout_ms: pg.timeout_ms,
                lock_timeout_ms: d.lock_timeout_ms,
                statement_timeout_ms: d.statement_timeout_ms,
                lock_wait_ms: d.lock_wait_ms,
            },
            reports: ReportConfig {
                unused_index_max_scans: d.unused_index_max_scans,
                unused_index_min_bytes: d.unused_index_min_bytes,
                bloat_bytes: d.bloat_bytes,
                bloat_min_pct: d.bloat_min_pct,
                table_limit: d.table_limit,
                dead_tuple_pct: d.dead_tuple_pct,
                dead_tuple_min: d.dead_tuple_min,
                stale_hours: d.stale_hours,
                xid_age: d.xid_age,
                sequence_pct: d.sequence_pct,
                connections_pct: d.connections_pct,
                query_seconds: d.query_seconds,
                idle_in_transaction_seconds: d.idle_in_transaction_seconds,
                cache_hit_warn_pct: d.cache_hit_pct.warn,
                cache_hit_crit_pct: d.cache_hit_pct.crit,
                cache_min_blocks: d.cache_min_blocks,
                recommend_min_rows: d.recommend_min_rows,
                recommend_max_index_pct: d.recommend_max_index_pct,
                slow_query_ms: d.slow_query_ms,
                slow_query_min_calls: d.slow_query_min_calls,
                slow_query_limit: d.slow_query_limit,
            },
            capacity: CapacityConfig {
                trend_csv,
                data_disk: d.data_disk.map(|p| self.path(p)),
                fit_days: d.fit_days,
                days_left_warn: d.days_left.warn,
                days_left_crit: d.days_left.crit,
            },
        })
    }

    fn window(&self, w: FileWindow) -> Result<Windows, ConfigError> {
        let allowed = w
            .allowed
            .iter()
            .map(|text| text.parse::<Window>().map_err(|e| self.invalid("window.allowed", e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if w.enforce && allowed.is_empty() {
            return Err(self.invalid(
                "window.allowed",
                "no window is given, so VACUUM and REINDEX could never run; list one, or set enforce = false",
            ));
        }
        Ok(Windows { enforce: w.enforce, allowed })
    }

    fn backup(
        &self,
        b: FileBackup,
        dir: Option<&Path>,
        pg: Option<&PostgresConfig>,
    ) -> Result<Option<Backup>, ConfigError> {
        self.timeout("backup.timeout_ms", b.timeout_ms)?;
        self.timeout("backup.lock_wait_timeout_ms", b.lock_wait_timeout_ms)?;
        let Some(dir) = dir else { return Ok(None) };
        let pg_bindir = b.pg_bindir.map(|p| self.path(p));
        let verify = VerifyConfig {
            backup_dir: dir.to_owned(),
            which: Which::Today,
            max_age_hours: b.max_age_hours,
            pg_bindir: pg_bindir.clone(),
            timeout_ms: b.timeout_ms,
        };
        if !(1..=9).contains(&b.compression_level) {
            return Err(self.invalid("backup.compression_level", "must be between 1 and 9"));
        }
        if b.keep_min == 0 {
            return Err(
                self.invalid("backup.keep_min", "must be at least 1: the newest good backup is always kept")
            );
        }
        if b.keep_last == Some(0) {
            return Err(self.invalid("backup.keep_last", "must be at least 1"));
        }
        let target = pg.map(pg_target);
        let create = target.clone().map(|postgres| CreateConfig {
            backup_dir: dir.to_owned(),
            postgres,
            format: b.format,
            compression_level: b.compression_level,
            pg_bindir: pg_bindir.clone(),
            timeout_ms: b.timeout_ms,
            lock_wait_timeout_ms: b.lock_wait_timeout_ms,
        });
        let drill = target.map(|postgres| DrillConfig {
            backup_dir: dir.to_owned(),
            which: Which::Latest,
            postgres,
            pg_bindir: pg_bindir.clone(),
            max_age_hours: b.max_age_hours,
            timeout_ms: b.timeout_ms,
        });
        let prune = PruneConfig {
            backup_dir: dir.to_owned(),
            keep_min: b.keep_min,
            keep_last: b.keep_last,
            max_age_days: Some(b.max_age_days),
            dry_run: false,
            pg_bindir,
            timeout_ms: b.timeout_ms,
        };
        let mut sources: Vec<ArchiveSource> = Vec::new();
        for (i, a) in b.archive.into_iter().enumerate() {
            let bad = |key: &str, message: String| self.invalid_nth("backup.archive", i, key, message);
            let name_ok = !a.name.is_empty()
                && !a.name.starts_with('.')
                && a.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !name_ok {
                return Err(bad("name", "use letters, digits, '-', '_' and '.'".to_owned()));
            }
            if sources.iter().any(|s| s.name == a.name) {
                return Err(bad("name", format!("{:?} is used twice", a.name)));
            }
            if a.paths.is_empty() {
                return Err(bad("paths", "list at least one path".to_owned()));
            }
            if let Some(p) =
                a.paths.iter().find(|p| p.components().any(|c| matches!(c, std::path::Component::ParentDir)))
            {
                return Err(bad("paths", format!("{} must not contain '..'", p.display())));
            }
            let paths = a.paths.into_iter().map(|p| self.path(p)).collect();
            sources.push(ArchiveSource { name: a.name, paths });
        }
        let archive = (!sources.is_empty()).then(|| ArchiveConfig {
            backup_dir: dir.to_owned(),
            sources,
            compression_level: 6,
            timeout_ms: b.timeout_ms,
        });
        Ok(Some(Backup { verify, create, drill, prune, archive }))
    }

    fn logs(&self, logs: Vec<FileLog>, log_dir: Option<&Path>) -> Result<Vec<LogPolicy>, ConfigError> {
        logs.into_iter().enumerate().map(|(i, l)| self.log(i, l, log_dir)).collect()
    }

    fn log(&self, i: usize, l: FileLog, log_dir: Option<&Path>) -> Result<LogPolicy, ConfigError> {
        let bad = |key: &str, message: String| self.invalid_nth("logs", i, key, message);
        let path = match (l.path.is_absolute(), log_dir) {
            (true, _) => l.path,
            (false, Some(dir)) => dir.join(l.path),
            (false, None) => self.path(l.path),
        };
        if path.file_name().is_none() {
            return Err(bad("path", format!("{} is not a file path", path.display())));
        }
        if let Some(link) = path.parent().and_then(symlink_note) {
            return Err(bad("path", format!("its directory {link}; {ROOT_SYMLINK_HINT}")));
        }
        if l.size_bytes == 0 {
            return Err(bad("size_bytes", "must be at least 1".to_owned()));
        }
        // Zero would remove the file just rotated, which a slow writer may still be finishing.
        if l.keep_days == 0 {
            return Err(bad("keep_days", "must be at least 1".to_owned()));
        }
        if l.keep_count == Some(0) {
            return Err(bad("keep_count", "must be at least 1".to_owned()));
        }
        if !(1..=9).contains(&l.compress_level) {
            return Err(bad("compress_level", format!("must be 1 to 9, got {}", l.compress_level)));
        }
        // Unset: the new live log keeps the owner of the one it replaces.
        let uid =
            l.owner.map(|o| kyb_core::users::uid(&o)).transpose().map_err(|e| bad("owner", e.to_string()))?;
        let gid =
            l.group.map(|g| kyb_core::users::gid(&g)).transpose().map_err(|e| bad("group", e.to_string()))?;
        let mode = u32::from_str_radix(l.mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| bad("mode", format!("must be an octal mode like \"0640\", got {:?}", l.mode)))?;
        if l.reopen_timeout_ms == 0 || l.reopen_timeout_ms > MAX_TIMEOUT_MS {
            return Err(bad("reopen_timeout_ms", format!("must be between 1 and {MAX_TIMEOUT_MS}")));
        }
        let signal = match l.reopen_signal {
            FileSignal::Hup => ReopenSignal::Hup,
            FileSignal::Usr1 => ReopenSignal::Usr1,
            FileSignal::Usr2 => ReopenSignal::Usr2,
        };
        let reopen = match (l.pid_file, l.systemd_unit, l.copytruncate) {
            (None, None, false) => Reopen::Nothing,
            (Some(p), None, false) => Reopen::PidFile { path: self.path(p), signal },
            (None, Some(unit), false) if !unit.is_empty() && !unit.starts_with('-') => {
                Reopen::SystemdUnit { unit, signal }
            }
            (None, Some(unit), false) => {
                return Err(bad("systemd_unit", format!("{unit:?} is not a unit name")));
            }
            (None, None, true) => Reopen::CopyTruncate,
            _ => {
                return Err(bad(
                    "copytruncate",
                    "give at most one of pid_file, systemd_unit and copytruncate".to_owned(),
                ));
            }
        };
        Ok(LogPolicy {
            path,
            size_bytes: l.size_bytes,
            every: l.every.map(|e| match e {
                FileInterval::Daily => Interval::Daily,
                FileInterval::Weekly => Interval::Weekly,
            }),
            keep_days: l.keep_days,
            keep_count: l.keep_count,
            compress: l.compress,
            delay_compress: l.delay_compress,
            compress_level: l.compress_level,
            uid,
            gid,
            mode,
            reopen,
            reopen_timeout_ms: l.reopen_timeout_ms,
        })
    }

    fn cleanup(&self, c: FileCleanup, temp_dir: Option<&Path>) -> Result<Cleanup, ConfigError> {
        self.timeout("cleanup.timeout_ms", c.timeout_ms)?;
        // Zero would remove every report, or every temp file the moment it is created: refused,
        // as `keep_days = 0` is. Temp ages may be a fraction of a day (0.25 is six hours).
        if c.reports_max_age_days == 0 {
            return Err(self.invalid(
                "cleanup.reports_max_age_days",
                "must be at least 1: 0 would remove every report, the last run's too",
            ));
        }
        if !(c.temp_max_age_days > 0.0 && c.temp_max_age_days <= MAX_AGE_DAYS) {
            return Err(self.invalid(
                "cleanup.temp_max_age_days",
                format!(
                    "must be above 0 and at most {MAX_AGE_DAYS} days (fractions allowed: 0.25 is six \
                     hours), got {}: 0 would remove temp files still in use",
                    c.temp_max_age_days
                ),
            ));
        }
        if c.temp_prefix.is_empty() || c.temp_prefix.contains('/') {
            return Err(self.invalid(
                "cleanup.temp_prefix",
                "must be a non-empty name prefix without `/` (an empty prefix would match everything)",
            ));
        }
        Ok(Cleanup {
            reports_max_age_days: c.reports_max_age_days,
            temp: temp_dir.map(|dir| TempConfig {
                dir: dir.to_owned(),
                prefix: c.temp_prefix,
                // At least a second: a tiny fraction must not round down to "everything".
                max_age_secs: ((c.temp_max_age_days * 86_400.0).ceil() as u64).max(1),
                timeout_ms: c.timeout_ms,
                dry_run: false,
            }),
        })
    }

    fn timeout(&self, key: &str, ms: u64) -> Result<(), ConfigError> {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            return Err(
                self.invalid(key, format!("must be between 1 and {MAX_TIMEOUT_MS} milliseconds, got {ms}"))
            );
        }
        Ok(())
    }

    fn app(&self, a: FileApp, paths: &Paths) -> Result<(AppConfig, SnapshotConfig), ConfigError> {
        let base = a.base_url.trim_end_matches('/');
        kyb_health::parse_url(base).map_err(|e| self.invalid("app.base_url", kyb_core::error_chain(&e)))?;
        for (key, p) in [("app.health_path", &a.health_path), ("app.metrics_path", &a.metrics_path)] {
            if !p.starts_with('/') {
                return Err(self.invalid(key, format!("must start with `/`, got {p:?}")));
            }
        }
        self.timeout("app.timeout_ms", a.timeout_ms)?;
        a.latency_ms.validate().map_err(|e| self.invalid("app.latency_ms", e.to_string()))?;
        if a.max_body_bytes == 0 {
            return Err(self.invalid("app.max_body_bytes", "must be at least 1"));
        }
        if a.max_snapshot_bytes < 4096 {
            return Err(self.invalid(
                "app.max_snapshot_bytes",
                format!("must be at least 4096 (bytes), got {}", a.max_snapshot_bytes),
            ));
        }
        let app = AppConfig {
            health_url: format!("{base}{}", a.health_path),
            timeout_ms: a.timeout_ms,
            max_body_bytes: a.max_body_bytes,
            max_redirects: a.max_redirects,
            latency_ms: a.latency_ms,
        };
        let snapshot = SnapshotConfig {
            metrics_url: format!("{base}{}", a.metrics_path),
            reports_dir: paths.reports_dir.clone(),
            timeout_ms: a.timeout_ms,
            // A metrics page is routinely larger than a health body.
            max_body_bytes: a.max_body_bytes.max(64 * 1024 * 1024),
            max_snapshot_bytes: a.max_snapshot_bytes,
            max_redirects: a.max_redirects,
            dry_run: false,
        };
        Ok((app, snapshot))
    }

    fn postgres(&self, p: FilePostgres) -> Result<PostgresConfig, ConfigError> {
        self.timeout("postgres.timeout_ms", p.timeout_ms)?;
        if p.host.is_empty() {
            return Err(self.invalid("postgres.host", "must not be empty"));
        }
        Ok(PostgresConfig {
            password: self.secret(
                "postgres",
                FileSecret {
                    password: p.password,
                    password_env: p.password_env,
                    password_file: p.password_file,
                    allow_insecure_password_file: p.allow_insecure_password_file,
                },
            )?,
            host: p.host,
            port: p.port,
            user: p.user,
            dbname: p.dbname,
            timeout_ms: p.timeout_ms,
        })
    }

    fn redis(&self, r: FileRedis) -> Result<RedisConfig, ConfigError> {
        self.timeout("redis.timeout_ms", r.timeout_ms)?;
        if r.host.is_empty() {
            return Err(self.invalid("redis.host", "must not be empty"));
        }
        Ok(RedisConfig {
            password: self.secret(
                "redis",
                FileSecret {
                    password: r.password,
                    password_env: r.password_env,
                    password_file: r.password_file,
                    allow_insecure_password_file: r.allow_insecure_password_file,
                },
            )?,
            host: r.host,
            port: r.port,
            username: r.username,
            timeout_ms: r.timeout_ms,
        })
    }

    /// At most one of `password`, `password_env`, `password_file`.
    fn secret(&self, section: &str, s: FileSecret) -> Result<Option<Secret>, ConfigError> {
        let given = [s.password.is_some(), s.password_env.is_some(), s.password_file.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(self.invalid(
                &format!("{section}.password"),
                "give only one of password, password_env and password_file",
            ));
        }
        if let Some(p) = s.password {
            return Ok(Some(Secret::new(p)));
        }
        if let Some(var) = s.password_env {
            let key = format!("{section}.password_env");
            return match std::env::var(&var) {
                Ok(v) => Ok(Some(Secret::new(v))),
                Err(_) => {
                    Err(self.invalid(&key, format!("environment variable {var} is not set (or not UTF-8)")))
                }
            };
        }
        if let Some(file) = s.password_file {
            let file = self.path(file);
            let key = format!("{section}.password_file");
            let (bytes, meta) = kyb_core::fs::read_regular(&file, MAX_FILE_BYTES).map_err(|e| {
                self.invalid(&key, format!("cannot read {}: {}", file.display(), kyb_core::error_chain(&e)))
            })?;
            // libpq's rule for .pgpass: a password others may read is not a secret.
            let mode = std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777;
            if mode & 0o077 != 0 && !s.allow_insecure_password_file {
                return Err(self.invalid(
                    &key,
                    format!(
                        "{} is open to group or others (mode {mode:04o}): run `chmod 600 {}`, or set \
                         allow_insecure_password_file = true in [{section}]",
                        file.display(),
                        file.display()
                    ),
                ));
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| self.invalid(&key, format!("{} is not UTF-8 text", file.display())))?;
            let value = text.strip_suffix('\n').unwrap_or(&text);
            let value = value.strip_suffix('\r').unwrap_or(value);
            return Ok(Some(Secret::new(value)));
        }
        Ok(None)
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

/// Line and column of `section.key` in `text`, found by walking table headers; good enough to
/// point at. A key that is not in the file points at its table's header, else at the start.
fn find_key_pos(text: &str, dotted: &str) -> (usize, usize) {
    let (section, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    find_key_pos_nth(text, section, 0, key).unwrap_or((1, 1))
}

/// Line and column of `key` in the `nth` table named `section` (`[section]` or `[[section]]`);
/// when that table lacks the key, of its header.
fn find_key_pos_nth(text: &str, section: &str, nth: usize, key: &str) -> Option<(usize, usize)> {
    let mut seen: Option<usize> = None;
    let mut header = None;
    let mut in_section = false;
    let at = |i: usize, raw: &str| (i + 1, raw.chars().take_while(|c| c.is_whitespace()).count() + 1);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            let name = line.trim_start_matches('[');
            let name = name[..name.find(']').unwrap_or(name.len())].trim();
            if in_section && seen == Some(nth) {
                return header;
            }
            in_section = name == section;
            if in_section {
                seen = Some(seen.map_or(0, |n| n + 1));
                header = Some(at(i, raw));
            }
        } else if in_section
            && seen == Some(nth)
            && line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(at(i, raw));
        }
    }
    if in_section && seen == Some(nth) { header } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[paths]\nmaintenance_dir = \"m\"\n";

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/etc/kyb/kyb-maint.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let cfg = parse_str(MINIMAL).unwrap();
        assert_eq!(cfg.paths.maintenance_dir, Path::new("/etc/kyb/m"));
        assert_eq!(cfg.paths.reports_dir, Path::new("/etc/kyb/m/reports"));
        assert_eq!(cfg.system.disk_pct, Thresholds::new(80.0, 90.0));
        assert!(cfg.health.app.is_none());
    }

    #[test]
    fn a_checks_only_config_needs_no_paths() {
        let cfg = parse_str("[redis]\nport = 6390\n").unwrap();
        assert_eq!(cfg.paths.maintenance_dir, Path::new("/var/lib/kyb-maint"));
        assert_eq!(cfg.health.redis.unwrap().port, 6390);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = format!("{MINIMAL}\n[app]\nbase_url = \"http://127.0.0.1:1\"\ntimeout = 5\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.starts_with("/etc/kyb/kyb-maint.toml:6:"), "{err}");
        assert!(err.contains("unknown field `timeout`"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = format!("{MINIMAL}[postgres]\nuser = \"kyb\"\ndbname = \"kyb\"\nport = \"five\"\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.starts_with("/etc/kyb/kyb-maint.toml:6:"), "{err}");
        assert!(err.contains("postgres.port"), "{err}");
    }

    #[test]
    fn unsupported_scheme_is_a_config_error() {
        let text = format!("{MINIMAL}[app]\nbase_url = \"ftp://127.0.0.1\"\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.contains(":4:") && err.contains("unsupported URL scheme `ftp`"), "{err}");
        assert!(err.contains("app.base_url"), "{err}");
    }

    #[test]
    fn snapshots_are_capped_at_8_mib_unless_configured() {
        let text = format!("{MINIMAL}[app]\nbase_url = \"http://127.0.0.1:1\"\n");
        let snap = parse_str(&text).unwrap().snapshot.unwrap();
        assert_eq!(snap.max_snapshot_bytes, 8 * 1024 * 1024);
        let text = format!("{MINIMAL}[app]\nbase_url = \"http://127.0.0.1:1\"\nmax_snapshot_bytes = 100\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.contains("app.max_snapshot_bytes") && err.contains("at least 4096"), "{err}");
    }

    #[test]
    fn secret_sources() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-file\n").unwrap();
        std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let text = format!(
            "{MINIMAL}[postgres]\nuser = \"u\"\ndbname = \"d\"\npassword_file = \"{}\"\n[redis]\npassword = \"inline\"\n",
            pw.display()
        );
        let cfg = parse_str(&text).unwrap();
        assert_eq!(cfg.health.postgres.unwrap().password.unwrap().expose(), "from-file");
        assert_eq!(cfg.health.redis.as_ref().unwrap().password.as_ref().unwrap().expose(), "inline");
        assert!(!format!("{:?}", cfg.health.redis).contains("inline"));

        let both = format!("{MINIMAL}[redis]\npassword = \"a\"\npassword_env = \"B\"\n");
        assert!(parse_str(&both).unwrap_err().to_string().contains("only one of"));
        let unset = format!("{MINIMAL}[redis]\npassword_env = \"KYB_SURELY_UNSET_VAR\"\n");
        let err = parse_str(&unset).unwrap_err().to_string();
        assert!(err.contains("KYB_SURELY_UNSET_VAR is not set") && err.contains(":4:"), "{err}");
    }

    #[test]
    fn a_mistyped_password_is_not_echoed() {
        let text = format!("{MINIMAL}[postgres]\nuser = \"u\"\ndbname = \"d\"\npassword = 918273645\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.contains("postgres.password") && err.contains(":6:"), "{err}");
        assert!(!err.contains("918273645"), "{err}");
    }

    #[test]
    fn a_log_without_owner_keeps_the_files_owner() {
        // No `kyb` user needed: unset owner and group keep those of the log being rotated.
        let cfg = parse_str(&format!("{MINIMAL}[[logs]]\npath = \"/var/log/a.log\"\n")).unwrap();
        assert_eq!((cfg.logs[0].uid, cfg.logs[0].gid), (None, None));
        let cfg =
            parse_str(&format!("{MINIMAL}[[logs]]\npath = \"/var/log/a.log\"\nowner = \"0\"\n")).unwrap();
        assert_eq!((cfg.logs[0].uid, cfg.logs[0].gid), (Some(0), None));
    }

    #[test]
    fn log_policy_values_are_checked() {
        for (line, key, want) in [
            ("keep_days = 0", "logs[0].keep_days", "at least 1"),
            ("keep_count = 0", "logs[0].keep_count", "at least 1"),
            ("mode = \"0999\"", "logs[0].mode", "octal mode"),
            ("group = \"no-such-group-kyb\"", "logs[0].group", "no such group `no-such-group-kyb`"),
            ("compress_level = 12", "logs[0].compress_level", "1 to 9"),
            ("pid_file = \"/run/a.pid\"\ncopytruncate = true", "logs[0].copytruncate", "at most one of"),
        ] {
            let group = if line.starts_with("group") { "" } else { "group = \"0\"\n" };
            let text =
                format!("{MINIMAL}[[logs]]\npath = \"/var/log/a.log\"\nowner = \"0\"\n{group}{line}\n");
            let err = parse_str(&text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(want), "{line}: {err}");
            assert!([":6:", ":7:", ":8:"].iter().any(|l| err.contains(l)), "{line}: no line in {err}");
        }
    }

    #[test]
    fn inverted_thresholds_rejected() {
        let text = format!("{MINIMAL}[system]\ndisk_pct = {{ warn = 95, crit = 90 }}\n");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.contains("system.disk_pct") && err.contains("must not be above"), "{err}");
    }

    const WITH_PG: &str = "[paths]\nmaintenance_dir = \"m\"\n[postgres]\nuser = \"u\"\ndbname = \"d\"\n";

    #[test]
    fn dbmaint_defaults_are_pghero_and_check_postgres() {
        let cfg = parse_str(WITH_PG).unwrap();
        let d = cfg.dbmaint.unwrap();
        assert_eq!(d.reports, ReportConfig::default());
        assert_eq!(d.reports.unused_index_max_scans, 50);
        assert_eq!(d.reports.xid_age, Thresholds::new(1.3e9, 1.4e9));
        assert_eq!(d.capacity.trend_csv.as_deref(), Some(Path::new("/etc/kyb/m/database-size-trend.csv")));
        assert_eq!((d.capacity.days_left_warn, d.capacity.days_left_crit), (90.0, 30.0));
        assert_eq!(cfg.window, Windows::default());
        let text = format!(
            "{WITH_PG}[dbmaint]\nbloat_bytes = {{ warn = 1, crit = 2 }}\nwrite_trend_csv = false\ndata_disk = \"data\"\n\
             [window]\nallowed = [\"Sat 23:00-01:00\"]\n"
        );
        let cfg = parse_str(&text).unwrap();
        let d = cfg.dbmaint.unwrap();
        assert_eq!(d.reports.bloat_bytes, Thresholds::new(1.0, 2.0));
        assert_eq!(d.capacity.trend_csv, None);
        assert_eq!(d.capacity.data_disk.as_deref(), Some(Path::new("/etc/kyb/data")));
        assert_eq!(cfg.window.describe(), "Sat 23:00-01:00 UTC");
    }

    #[test]
    fn bad_dbmaint_and_window_settings_name_their_key() {
        for (section, line, key, want) in [
            (
                "dbmaint",
                "cache_hit_pct = { warn = 90, crit = 99 }",
                "dbmaint.cache_hit_pct",
                "lower is worse",
            ),
            (
                "dbmaint",
                "sequence_pct = { warn = 95, crit = 85 }",
                "dbmaint.sequence_pct",
                "must not be above",
            ),
            ("dbmaint", "bloat_min_pct = 150", "dbmaint.bloat_min_pct", "0 to 100"),
            ("dbmaint", "unused_index_max_scans = -1", "dbmaint.unused_index_max_scans", "negative"),
            ("dbmaint", "fit_days = 0", "dbmaint.fit_days", "between 1 and 3650"),
            ("dbmaint", "table_limit = 0", "dbmaint.table_limit", "between 1 and 10000"),
            ("dbmaint", "bloat_treshold = 5", "dbmaint", "unknown field"),
            ("window", "allowed = [\"Funday 01:00-02:00\"]", "window.allowed", "the day must be"),
            ("window", "allowed = [\"Sun 05:00-05:00\"]", "window.allowed", "empty"),
            ("window", "allowed = []", "window.allowed", "could never run"),
            ("security", "endpoints = [\"no-port\"]", "security.endpoints", "is not `host:port`"),
            (
                "security",
                "cert_days = { warn = 5, crit = 10 }",
                "security.cert_days",
                "fewer days left is worse",
            ),
            ("security", "cargo_manifest = \"Cargo.toml\"", "security.cargo_manifest", "needs cargo_lock"),
            ("security", "burst_count = 0", "security.burst_count", "at least 1"),
            ("ml", "trend_days = 0", "ml.trend_days", "between 1 and 3650"),
            ("performance", "status_label = \"a-b\"", "performance.status_label", "not a label name"),
            ("monitoring", "grafana_url = \"ftp://x\"", "monitoring.grafana_url", "ftp"),
        ] {
            let text = format!("{WITH_PG}[{section}]\n{line}\n");
            let err = parse_str(&text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(want), "{line}: {err}");
            assert!(err.contains(":7:"), "{line}: no line in {err}");
        }
        let off = format!("{WITH_PG}[window]\nenforce = false\nallowed = []\n");
        assert!(!parse_str(&off).unwrap().window.enforce);
    }

    #[test]
    fn the_example_config_parses() {
        // It names a password file, an env var and a log owner that exist on the platform, not
        // on a test machine: stand-ins for those, the rest as shipped.
        let text = include_str!("../../../deploy/kyb-maint.example.toml")
            .replace("password_file = \"/etc/kyb-maint/postgres.password\"", "password = \"x\"")
            .replace("password_env = \"REDIS_PASSWORD\"", "password = \"y\"")
            .replace("\"kyb\"\ngroup = \"kyb\"", "\"0\"\ngroup = \"0\"");
        let cfg = parse_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.ml.models.len(), 2);
        assert_eq!(cfg.monitoring.map(|m| m.targets.len()), Some(3));
        assert!(cfg.dbmaint.is_some() && cfg.backup.is_some());
        assert_eq!(cfg.window, Windows::default());
        let sec = &cfg.security;
        assert_eq!(
            sec.certs.as_ref().map(|c| c.endpoints[0].server_name.as_deref()),
            Some(Some("app.kyb.example"))
        );
        assert!(sec.perms.is_some() && sec.logs.is_some() && sec.advisories.is_none());
        let update = cfg.update.expect("[update]");
        assert!(update.database.is_some(), "the pre-update dump comes from [backup]");
        assert_eq!(update.mode, Some(0o755));
        assert_eq!(update.health.successes, 3);
    }

    const UPDATE: &str = "[update]\nbinary = \"opt/app\"\nstate_dir = \"updates\"\n\
                          [update.service]\nkind = \"process\"\ncommand = [\"opt/app\"]\npid_file = \"run/app.pid\"\n";

    #[test]
    fn update_paths_resolve_and_the_dump_comes_from_backup() {
        let cfg = parse_str(&format!("{MINIMAL}{UPDATE}")).unwrap();
        let u = cfg.update.unwrap();
        assert_eq!(u.binary, Path::new("/etc/kyb/opt/app"));
        assert_eq!(u.state_dir, Path::new("/etc/kyb/updates"));
        assert!(
            matches!(&u.service, kyb_update::ServiceManager::Process { pid_file, .. } if pid_file == Path::new("/etc/kyb/run/app.pid"))
        );
        assert_eq!(u.database, None, "no [postgres]: no dump");
        assert_eq!(u.check_command, ["{binary}", "--config-check"]);
        assert_eq!(cfg.tuning.memory.rss_warn_bytes, 1 << 30);
        assert_eq!(cfg.tuning.sysctl.values.len(), 4, "the runbook's TCP settings");
    }

    #[test]
    fn bad_update_and_tuning_settings_name_their_key() {
        for (extra, key, want) in [
            ("[update.health]\nsuccesses = 0\n", "update.health.successes", "at least 1"),
            ("[update.health]\nurl = \"ftp://x/health\"\n", "update.health.url", "only http://"),
            ("[update.health]\ndeadline_ms = 0\n", "update.health.deadline_ms", "between 1 and"),
            ("[update.health]\nsucceses = 3\n", "update.health", "unknown field"),
            (
                "[tuning.memory]\nrss_warn_bytes = 10\nrss_crit_bytes = 5\n",
                "tuning.memory.rss_crit_bytes",
                "at least",
            ),
            ("[tuning.sysctl]\nmanaged_file = \"etc/x.conf\"\n", "tuning.sysctl.managed_file", "absolute"),
        ] {
            let err = parse_str(&format!("{MINIMAL}{UPDATE}{extra}")).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(want), "{extra}: {err}");
        }
        for (text, key, want) in [
            (
                "[update]\nbinary = \"a\"\nstate_dir = \"s\"\nmode = \"0899\"\n[update.service]\nkind = \"systemd\"\nunit = \"u\"\n",
                "update.mode",
                "octal mode",
            ),
            (
                "[update]\nbinary = \"a\"\nstate_dir = \"s\"\n[update.service]\nkind = \"upstart\"\n",
                "update.service",
                "unknown variant",
            ),
            (
                "[update]\nbinary = \"a\"\nstate_dir = \"s\"\n[update.service]\nkind = \"systemd\"\nunit = \"\"\n",
                "update.service.unit",
                "must name a unit",
            ),
            (
                "[update]\nbinary = \"a\"\nstate_dir = \"s\"\n[update.service]\nkind = \"process\"\ncommand = []\npid_file = \"p\"\n",
                "update.service.command",
                "program",
            ),
            (
                "[update]\nbinary = \"a\"\n[update.service]\nkind = \"systemd\"\nunit = \"u\"\n",
                "update",
                "state_dir",
            ),
        ] {
            let err = parse_str(&format!("{MINIMAL}{text}")).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = load(Path::new("/nonexistent/kyb.toml")).unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/kyb.toml: cannot read config file"), "{err}");
    }

    fn chain(e: &ConfigError) -> String {
        kyb_core::error_chain(e)
    }

    #[test]
    fn the_config_file_must_be_a_regular_file_of_at_most_a_mebibyte() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
        let err = chain(&load(&fifo).unwrap_err());
        assert!(
            err.starts_with(&format!("{}: cannot read config file: it is a FIFO", fifo.display())),
            "{err}"
        );
        let err = chain(&load(Path::new("/dev/zero")).unwrap_err());
        assert!(err.contains("/dev/zero: cannot read config file: it is a character device"), "{err}");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "# padding\n".repeat(2 * 1024 * 1024 / 10)).unwrap();
        let err = chain(&load(&big).unwrap_err());
        assert!(err.contains("larger than the 1.0 MiB limit"), "{err}");
        // A config linked into place (as configuration management does) is read.
        let real = dir.path().join("real.toml");
        std::fs::write(&real, MINIMAL).unwrap();
        let link = dir.path().join("kyb-maint.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(load(&link).unwrap().paths.maintenance_dir, dir.path().join("m"));
    }

    #[test]
    fn zero_ages_are_refused_with_their_key() {
        for (line, key) in [
            ("reports_max_age_days = 0", "cleanup.reports_max_age_days"),
            ("temp_max_age_days = 0", "cleanup.temp_max_age_days"),
            ("temp_max_age_days = -1.5", "cleanup.temp_max_age_days"),
            ("temp_max_age_days = nan", "cleanup.temp_max_age_days"),
        ] {
            let err = parse_str(&format!("{MINIMAL}[cleanup]\n{line}\n")).unwrap_err();
            assert_eq!(err.position(), Some((4, 1)), "{line}: {err}");
            let err = err.to_string();
            assert!(err.starts_with("/etc/kyb/kyb-maint.toml:4:1: must be "), "{line}: {err}");
            assert!(err.contains(&format!("(key `{key}`)")), "{line}: {err}");
        }
        let text = format!("{MINIMAL}temp_dir = \"t\"\n[cleanup]\ntemp_max_age_days = 0.25\n");
        assert_eq!(parse_str(&text).unwrap().cleanup.temp.unwrap().max_age_secs, 6 * 3600);
        let text = format!("{MINIMAL}temp_dir = \"t\"\n[cleanup]\ntemp_max_age_days = 0.000001\n");
        assert_eq!(parse_str(&text).unwrap().cleanup.temp.unwrap().max_age_secs, 1, "never rounded to 0");
        let cfg = parse_str(&format!("{MINIMAL}temp_dir = \"t\"\n")).unwrap();
        assert_eq!(cfg.cleanup.temp.unwrap().max_age_secs, 86_400);
        assert_eq!(cfg.cleanup.reports_max_age_days, 30);
    }

    fn with_password_file(dir: &Path, mode: u32, extra: &str) -> String {
        let pw = dir.join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        format!("{MINIMAL}[redis]\npassword_file = \"{}\"\n{extra}", pw.display())
    }

    #[test]
    fn a_password_file_others_can_read_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            let err = parse_str(&with_password_file(dir.path(), mode, "")).unwrap_err().to_string();
            assert!(err.starts_with("/etc/kyb/kyb-maint.toml:4:1: "), "{err}");
            assert!(err.contains(&format!("is open to group or others (mode {mode:04o})")), "{err}");
            assert!(err.contains("chmod 600") && err.contains("(key `redis.password_file`)"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        for mode in [0o600, 0o400] {
            let cfg = parse_str(&with_password_file(dir.path(), mode, "")).unwrap();
            assert_eq!(cfg.health.redis.unwrap().password.unwrap().expose(), "s3cret");
        }
        let allowed = with_password_file(dir.path(), 0o644, "allow_insecure_password_file = true\n");
        assert_eq!(parse_str(&allowed).unwrap().health.redis.unwrap().password.unwrap().expose(), "s3cret");
    }

    #[test]
    fn a_password_file_must_be_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2 * 1024 * 1024]).unwrap();
        std::fs::set_permissions(&big, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        for (file, want) in [
            (fifo.as_path(), "it is a FIFO"),
            (Path::new("/dev/zero"), "it is a character device"),
            (&big, "it is larger than the 1.0 MiB limit"),
        ] {
            let text = format!("{WITH_PG}password_file = \"{}\"\n", file.display());
            let err = parse_str(&text).unwrap_err().to_string();
            assert!(err.contains(&format!("cannot read {}: {want}", file.display())), "{err}");
            assert!(err.contains(":6:1:") && err.contains("postgres.password_file"), "{err}");
        }
    }

    #[test]
    fn symlinked_directories_the_flows_delete_in_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("real")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        std::fs::create_dir_all(d.join("m")).unwrap();
        let path = d.join("kyb-maint.toml");
        for (body, key) in [
            ("[paths]\ntemp_dir = \"link\"\n", "paths.temp_dir"),
            ("[paths]\nlog_dir = \"link\"\n", "paths.log_dir"),
            ("[paths]\nbackup_dir = \"link\"\n", "paths.backup_dir"),
            (
                "[paths]\nmaintenance_dir = \"m\"\n[[logs]]\npath = \"link/app.log\"\nowner = \"0\"\ngroup = \"0\"\n",
                "logs[0].path",
            ),
        ] {
            let err = parse(body, &path).unwrap_err().to_string();
            assert!(
                err.contains(&format!(
                    "{} is a symlink (to {})",
                    d.join("link").display(),
                    d.join("real").display()
                )),
                "{body}: {err}"
            );
            assert!(err.contains(key) && err.contains("never through a symlink"), "{body}: {err}");
        }
        std::os::unix::fs::symlink(d.join("real"), d.join("m/reports")).unwrap();
        let err = parse("[paths]\nmaintenance_dir = \"m\"\n", &path).unwrap_err().to_string();
        assert!(err.contains("m/reports is a symlink") && err.contains("paths.maintenance_dir"), "{err}");
        // The real directories, and ones not made yet, are fine.
        parse("[paths]\nmaintenance_dir = \"n\"\ntemp_dir = \"real\"\nbackup_dir = \"none-yet\"\n", &path)
            .unwrap();
    }

    #[tokio::test]
    async fn the_os_update_check_can_be_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let apt = dir.path().join("apt-get");
        std::fs::write(&apt, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        std::fs::set_permissions(&apt, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let release = dir.path().join("os-release");
        std::fs::write(&release, "ID=debian\n").unwrap();
        let text = |switch: &str| {
            format!(
                "{MINIMAL}[security]\napt_get = \"{}\"\nos_release = \"{}\"\n{switch}",
                apt.display(),
                release.display()
            )
        };
        let now = time::OffsetDateTime::now_utc();
        let cfg = parse_str(&text("os_updates = false\n")).unwrap();
        assert!(!cfg.security.os_updates);
        let r = crate::security::audit(crate::security::Audit::OsUpdates, &cfg, now, false, false).await;
        assert_eq!(
            (r.status, r.summary.as_str()),
            (kyb_core::Status::Ok, "switched off ([security] os_updates = false)")
        );
        assert!(!marker.exists(), "apt-get must not run");

        let cfg = parse_str(&text("")).unwrap();
        assert!(cfg.security.os_updates, "on by default");
        crate::security::audit(crate::security::Audit::OsUpdates, &cfg, now, false, false).await;
        assert!(marker.exists(), "on, the check runs apt-get");
    }

    /// `(text, line, column, key, words of the message, words of the hint)`.
    const TOML_ERRORS: &[(&str, usize, usize, &str, &str, &str)] = &[
        (
            "[paths]\nmaintenance_dir = \"m\"\n[redis]\nport = = 1\n",
            4,
            8,
            "redis.port",
            "invalid string",
            "fix the TOML syntax",
        ),
        (
            "[paths]\nmaintenance_dir = \"m\"\n[redis]\nport = 99999999999999999999\n",
            4,
            8,
            "redis.port",
            "number too large",
            "use a smaller number",
        ),
        (
            "[paths]\nmaintenance_dir = \"m\"\n[redis]\nport = 70000\n",
            4,
            8,
            "redis.port",
            "expected u16",
            "from 0 to 65535",
        ),
        (
            "[redis]\nport = 1\n\n[redis]\nhost = \"x\"\n",
            4,
            1,
            "redis",
            "duplicate key `redis`",
            "merge the two sections",
        ),
        (
            "[redis]\nport = 1\nport = 2\n",
            3,
            1,
            "redis.port",
            "duplicate key `port`",
            "remove one of the two",
        ),
        (
            "[paths]\nmaintenance_dir = 5\n",
            2,
            19,
            "paths.maintenance_dir",
            "invalid type: integer `5`",
            "put the value in double quotes",
        ),
        (
            "[system]\ndisk_pct = \"high\"\n",
            2,
            12,
            "system.disk_pct",
            "invalid type: string",
            "use a table: `{ key = value",
        ),
        (
            "[app]\nbase_url = \"http://x\"\ntimout_ms = 5\n",
            3,
            1,
            "app.timout_ms",
            "unknown field `timout_ms`",
            "fix its spelling",
        ),
        ("[postgres]\nuser = \"u\"\n", 1, 1, "postgres.dbname", "missing field `dbname`", "add the key"),
        (
            "[[logs]]\npath = \"a\"\n[[logs]]\npath = \"b\"\nevery = \"hourly\"\n",
            5,
            9,
            "logs[1].every",
            "unknown variant `hourly`",
            "one of the values",
        ),
    ];

    #[test]
    fn toml_errors_carry_position_key_and_a_hint() {
        for (text, line, column, key, message, hint) in TOML_ERRORS {
            let err = parse_str(text).unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.position(), Some((*line, *column)), "{text}: {shown}");
            assert!(shown.starts_with(&format!("/etc/kyb/kyb-maint.toml:{line}:{column}: ")), "{shown}");
            assert!(shown.contains(&format!("(key `{key}`)")), "{text}: {shown}");
            assert!(shown.contains(message) && shown.contains(hint), "{text}: {shown}");
            assert!(!shown.contains('\n'), "one line: {shown}");
        }
    }

    #[test]
    fn a_file_that_is_not_utf8_gets_the_position_of_the_first_bad_byte() {
        let err = parse_bytes(b"[paths]\nmaintenance_dir = \"m\xe9\"\n", Path::new("/k.toml")).unwrap_err();
        assert_eq!(err.position(), Some((2, 21)));
        let shown = err.to_string();
        assert!(shown.starts_with("/k.toml:2:21: the file is not UTF-8 (bad byte at offset 28)"), "{shown}");
        assert!(
            shown.contains("(key `paths.maintenance_dir`)") && shown.contains("re-save the file as UTF-8"),
            "{shown}"
        );
        let err = parse_bytes(b"\xff", Path::new("/k.toml")).unwrap_err();
        assert_eq!(err.position(), Some((1, 1)));
    }

    #[test]
    fn a_setting_with_no_line_of_its_own_points_at_its_table() {
        let err = parse_str(&format!("{MINIMAL}\n[security]\nadvisory_db = \"db\"\n")).unwrap_err();
        assert_eq!(err.position(), Some((4, 1)), "{err}");
        assert!(err.to_string().contains("(key `security.cargo_lock`)"), "{err}");
    }
}
