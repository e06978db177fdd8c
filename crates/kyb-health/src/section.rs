//! The config file's sections this crate owns (`[app]`, `[redis]`, `[monitoring]`, and
//! `[maint.health]` for a service that embeds the probes): their keys, defaults and checks, and
//! the config of each probe derived from them.

use crate::{
    AppConfig, Component, HealthConfig, MonitorTarget, MonitoringConfig, PostgresConfig, RedisConfig,
};
use crate::{PerfConfig, PerformanceTask, ScrapeConfig, SnapshotConfig, parse_url};
use kyb_core::config::{FieldError, SecretSource, TimeoutMs, resolve_path};
use kyb_core::{PostgresSection, Secret, Thresholds};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[app]`: the platform's HTTP service, whose `/health` the daily flow and `kyb-health app`
/// probe and whose `/metrics` the daily snapshot and the weekly analyses read. Leave the section
/// out and the app is neither probed nor scraped.
///
/// How `/health` is judged: a non-2xx status is Crit. A 2xx JSON body whose `status` is
/// `ok`/`healthy`/`up`/`pass` is Ok, `degraded`/`warn` is Warn, anything else is Crit (the failing
/// entries of a `checks` object are named). A 2xx JSON body without a string `status` field is Ok:
/// the status code is all it says. A 2xx body that is not JSON is Warn, and says so. No answer
/// within `timeout_ms` is Crit.
///
/// ```toml
/// [app]
/// base_url = "http://127.0.0.1:8080"
/// latency_ms = { warn = 300, crit = 1500 }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AppSection {
    /// Where the app answers, e.g. `"http://127.0.0.1:8080"`: scheme, host and port, with a path
    /// prefix if the app lives under one. Only `http://` is supported; a trailing `/` is dropped.
    pub base_url: String,
    /// The path of the health endpoint under `base_url`; starts with `/`.
    #[serde(default = "AppSection::default_health_path")]
    pub health_path: String,
    /// The path of the Prometheus endpoint under `base_url`; starts with `/`.
    #[serde(default = "AppSection::default_metrics_path")]
    pub metrics_path: String,
    /// One deadline for a whole request, in milliseconds (1 to 86400000): connect, redirects and
    /// body.
    #[serde(default = "AppSection::default_timeout_ms")]
    pub timeout_ms: TimeoutMs,
    /// Bytes of a health body read at most (at least 1); a longer body is cut and reported
    /// (Warn). The analyses' scrapes of `/metrics` read at least 64 MiB whatever this says.
    #[serde(default = "AppSection::default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Size cap of the daily `/metrics` snapshot, in bytes (at least 4096). A larger scrape is
    /// saved cut at a line end (Warn, and the weekly analysis does not count from it). A scrape
    /// with no valid sample is never saved (Crit).
    #[serde(default = "AppSection::default_max_snapshot_bytes")]
    pub max_snapshot_bytes: u64,
    /// Redirects followed at most; a redirect loop is Crit.
    #[serde(default = "AppSection::default_max_redirects")]
    pub max_redirects: u32,
    /// Levels of the health endpoint's response time, in milliseconds.
    #[serde(default = "AppSection::default_latency_ms")]
    pub latency_ms: Thresholds,
}

/// The smallest `max_snapshot_bytes`: a snapshot smaller than a page says nothing.
const MIN_SNAPSHOT_BYTES: u64 = 4096;

/// What the analyses' scrapes of `/metrics` read at least: a metrics page is routinely larger
/// than a health body.
const MIN_SCRAPE_BYTES: u64 = 64 * 1024 * 1024;

impl AppSection {
    fn default_health_path() -> String {
        "/health".to_owned()
    }

    fn default_metrics_path() -> String {
        "/metrics".to_owned()
    }

    fn default_timeout_ms() -> TimeoutMs {
        TimeoutMs::ms(5_000)
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

    /// The app at `base_url`, every other key at its default.
    pub fn new(base_url: impl Into<String>) -> AppSection {
        AppSection {
            base_url: base_url.into(),
            health_path: AppSection::default_health_path(),
            metrics_path: AppSection::default_metrics_path(),
            timeout_ms: AppSection::default_timeout_ms(),
            max_body_bytes: AppSection::default_max_body_bytes(),
            max_snapshot_bytes: AppSection::default_max_snapshot_bytes(),
            max_redirects: AppSection::default_max_redirects(),
            latency_ms: AppSection::default_latency_ms(),
        }
    }

    /// `base_url` without its trailing `/`.
    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// Checks what the types do not: an `http` `base_url` with a host, paths that start with
    /// `/`, the latency levels, and the two size limits.
    pub fn validate(&self) -> Result<(), FieldError> {
        parse_url(self.base()).map_err(|e| FieldError::new("base_url", kyb_core::error_chain(&e)))?;
        for (key, p) in [("health_path", &self.health_path), ("metrics_path", &self.metrics_path)] {
            if !p.starts_with('/') {
                return Err(FieldError::new(key, format!("must start with `/`, got {p:?}")));
            }
        }
        self.latency_ms.validate().map_err(|e| FieldError::new("latency_ms", e.to_string()))?;
        if self.max_body_bytes == 0 {
            return Err(FieldError::new("max_body_bytes", "must be at least 1"));
        }
        if self.max_snapshot_bytes < MIN_SNAPSHOT_BYTES {
            return Err(FieldError::new(
                "max_snapshot_bytes",
                format!("must be at least {MIN_SNAPSHOT_BYTES} (bytes), got {}", self.max_snapshot_bytes),
            ));
        }
        Ok(())
    }

    /// The probe of the health endpoint.
    pub fn probe(&self) -> AppConfig {
        AppConfig {
            health_url: format!("{}{}", self.base(), self.health_path),
            timeout_ms: self.timeout_ms.get(),
            max_body_bytes: self.max_body_bytes,
            max_redirects: self.max_redirects,
            latency_ms: self.latency_ms,
        }
    }

    /// The daily snapshot of the metrics endpoint into `reports_dir`.
    pub fn snapshot(&self, reports_dir: &Path) -> SnapshotConfig {
        SnapshotConfig {
            metrics_url: self.metrics_url(),
            reports_dir: reports_dir.to_owned(),
            timeout_ms: self.timeout_ms.get(),
            max_body_bytes: self.scrape_bytes(),
            max_snapshot_bytes: self.max_snapshot_bytes,
            max_redirects: self.max_redirects,
        }
    }

    /// The analyses' scrape of the metrics endpoint (the weekly performance analysis, the model
    /// checks).
    pub fn scrape(&self) -> ScrapeConfig {
        ScrapeConfig {
            url: self.metrics_url(),
            timeout_ms: self.timeout_ms.get(),
            max_body_bytes: self.scrape_bytes(),
            max_redirects: self.max_redirects,
        }
    }

    /// The weekly performance analysis with `perf`'s levels, against the daily snapshots the
    /// [`snapshot`](AppSection::snapshot) into `reports_dir` leaves.
    pub fn performance(&self, reports_dir: &Path, perf: &PerfConfig) -> PerformanceTask {
        PerformanceTask {
            scrape: self.scrape(),
            perf: perf.clone(),
            reports_dir: reports_dir.to_owned(),
            max_snapshot_bytes: self.max_snapshot_bytes,
        }
    }

    fn metrics_url(&self) -> String {
        format!("{}{}", self.base(), self.metrics_path)
    }

    fn scrape_bytes(&self) -> u64 {
        self.max_body_bytes.max(MIN_SCRAPE_BYTES)
    }
}

/// `[redis]`: the platform's Redis, whose AUTH, PING and server version the daily flow and
/// `kyb-health redis` check. Leave the section out and Redis is not checked; give it, even
/// empty, and it is.
///
/// Passwords never appear in output, logs or reports; they are handed to the client in memory
/// only.
// Debug shows `password` as Secret(<redacted>).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RedisSection {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The ACL user to authenticate as. Leave out to authenticate with the password alone
    /// (`requirepass`), or not at all without one.
    pub username: Option<String>,
    /// The password itself. Give at most one of `password`, `password_env` and `password_file`;
    /// leave all three out and no password is sent.
    pub password: Option<Secret>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// A file whose content (one trailing newline dropped) is the password. Read when the config
    /// loads; it must be a regular file (a symlink to one is fine, as Kubernetes mounts Secrets)
    /// of at most 1 MiB, closed to group and others (`chmod 600`), as libpq requires of `.pgpass`.
    pub password_file: Option<PathBuf>,
    /// Accept a `password_file` that group or others may read or write.
    pub allow_insecure_password_file: bool,
    /// Deadline for connecting plus PING and INFO, in milliseconds (1 to 86400000).
    pub timeout_ms: TimeoutMs,
}

impl Default for RedisSection {
    fn default() -> RedisSection {
        RedisSection {
            host: "localhost".to_owned(),
            port: 6379,
            username: None,
            password: None,
            password_env: None,
            password_file: None,
            allow_insecure_password_file: false,
            timeout_ms: TimeoutMs::ms(5_000),
        }
    }
}

impl RedisSection {
    /// Checks what the types do not: a host, and at most one password source.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.host.is_empty() {
            return Err(FieldError::new("host", "must not be empty"));
        }
        self.password_source().map(drop)
    }

    /// Makes a relative `password_file` absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        self.password_file = self.password_file.take().map(|p| resolve_path(base, &p));
    }

    /// Where the password comes from, if anywhere.
    pub fn password_source(&self) -> Result<Option<SecretSource>, FieldError> {
        SecretSource::from_keys(
            self.password.as_ref(),
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            self.allow_insecure_password_file,
        )
    }

    /// The probe, with the password read from its source. `Err` (key `password`,
    /// `password_env` or `password_file`) when it cannot be read.
    pub fn probe(&self) -> Result<RedisConfig, FieldError> {
        Ok(RedisConfig {
            host: self.host.clone(),
            port: self.port,
            username: self.username.clone(),
            password: self.password_source()?.map(|s| s.read()).transpose()?,
            timeout_ms: self.timeout_ms.get(),
        })
    }
}

/// `[monitoring]`: the monitoring stack the weekly flow and `kyb-health monitoring` probe:
/// Prometheus (`/-/healthy`, `/-/ready`, its retention and TSDB size), Grafana (`/api/health`,
/// whose database must be ok) and Alertmanager (`/-/healthy`, `/-/ready`).
///
/// A component without a URL is not probed, and without any the task says it is not
/// configured. Prometheus's own retention keeps its data: nothing here deletes anything under
/// its TSDB.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MonitoringSection {
    /// Prometheus's base URL, e.g. `"http://127.0.0.1:9090"`; only `http://` is supported.
    /// Leave out and Prometheus is not probed.
    pub prometheus_url: Option<String>,
    /// Grafana's base URL, e.g. `"http://127.0.0.1:3000"`. Leave out and Grafana is not probed.
    pub grafana_url: Option<String>,
    /// Alertmanager's base URL, e.g. `"http://127.0.0.1:9093"`. Leave out and Alertmanager is
    /// not probed.
    pub alertmanager_url: Option<String>,
    /// Deadline of each request, in milliseconds (1 to 86400000).
    pub timeout_ms: TimeoutMs,
    /// Start a component that is down with `systemctl start <unit>`, inside a `[window]` or with
    /// `--emergency`; outside them the report gives the command to run by hand.
    pub restart: bool,
    /// Prometheus's systemd unit; `""` and it is never started.
    pub prometheus_unit: String,
    /// Grafana's systemd unit; `""` and it is never started.
    pub grafana_unit: String,
    /// Alertmanager's systemd unit; `""` and it is never started.
    pub alertmanager_unit: String,
    /// The program run to start a unit; a bare name is looked up in `PATH`.
    pub systemctl: PathBuf,
}

impl Default for MonitoringSection {
    fn default() -> MonitoringSection {
        MonitoringSection {
            prometheus_url: None,
            grafana_url: None,
            alertmanager_url: None,
            timeout_ms: TimeoutMs::ms(5_000),
            restart: false,
            prometheus_unit: "prometheus".to_owned(),
            grafana_unit: "grafana-server".to_owned(),
            alertmanager_unit: "alertmanager".to_owned(),
            systemctl: PathBuf::from("systemctl"),
        }
    }
}

/// Redirects a monitoring probe follows at most.
const MONITORING_MAX_REDIRECTS: u32 = 3;

impl MonitoringSection {
    /// Each component's key, URL, and unit.
    fn components(&self) -> [(&'static str, Option<&String>, Component, &String); 3] {
        [
            ("prometheus_url", self.prometheus_url.as_ref(), Component::Prometheus, &self.prometheus_unit),
            ("grafana_url", self.grafana_url.as_ref(), Component::Grafana, &self.grafana_unit),
            (
                "alertmanager_url",
                self.alertmanager_url.as_ref(),
                Component::Alertmanager,
                &self.alertmanager_unit,
            ),
        ]
    }

    /// Checks what the types do not: every URL given is an `http` URL with a host.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (key, url, _, _) in self.components() {
            let Some(url) = url else { continue };
            parse_url(url.trim_end_matches('/'))
                .map_err(|e| FieldError::new(key, kyb_core::error_chain(&e)))?;
        }
        Ok(())
    }

    /// The components to probe; None when no URL is set.
    pub fn targets(&self) -> Option<MonitoringConfig> {
        let targets: Vec<MonitorTarget> = self
            .components()
            .into_iter()
            .filter_map(|(_, url, component, unit)| {
                Some(MonitorTarget {
                    component,
                    base_url: url?.trim_end_matches('/').to_owned(),
                    unit: (!unit.is_empty()).then(|| unit.clone()),
                })
            })
            .collect();
        (!targets.is_empty()).then(|| MonitoringConfig {
            targets,
            timeout_ms: self.timeout_ms.get(),
            max_redirects: MONITORING_MAX_REDIRECTS,
            restart: self.restart,
            systemctl: self.systemctl.clone(),
        })
    }
}

/// The probes of a service that embeds this crate, as one table (`[maint.health]`, say) holding
/// the `app`, `postgres` and `redis` sections with the same keys as the top-level `[app]`,
/// `[postgres]` and `[redis]`. A section left out is not probed.
///
/// ```toml
/// [maint.health.app]
/// base_url = "http://127.0.0.1:8080"
///
/// [maint.health.postgres]
/// user = "kyb"
/// dbname = "kyb"
/// password_env = "KYB_PG_PASSWORD"
///
/// [maint.health.redis]
/// port = 6380
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HealthSection {
    /// The app's health endpoint, as `[app]`. Leave out and the app is not probed.
    pub app: Option<AppSection>,
    /// The database, as `[postgres]`. Leave out and PostgreSQL is not probed.
    pub postgres: Option<PostgresSection>,
    /// Redis, as `[redis]`. Leave out and Redis is not probed.
    pub redis: Option<RedisSection>,
}

impl HealthSection {
    /// Checks each section given, its keys prefixed `app.`, `postgres.` or `redis.`.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(a) = &self.app {
            a.validate().map_err(|e| e.under("app"))?;
        }
        if let Some(p) = &self.postgres {
            p.validate().map_err(|e| e.under("postgres"))?;
        }
        if let Some(r) = &self.redis {
            r.validate().map_err(|e| e.under("redis"))?;
        }
        Ok(())
    }

    /// Makes the relative password files absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = &mut self.postgres {
            p.resolve_paths(base);
        }
        if let Some(r) = &mut self.redis {
            r.resolve_paths(base);
        }
    }

    /// The probes of the sections given, with their passwords read. `Err` (key under `postgres.`
    /// or `redis.`) when a password cannot be read.
    pub fn probes(&self) -> Result<HealthConfig, FieldError> {
        Ok(HealthConfig {
            app: self.app.as_ref().map(AppSection::probe),
            postgres: self
                .postgres
                .as_ref()
                .map(PostgresConfig::from_section)
                .transpose()
                .map_err(|e| e.under("postgres"))?,
            redis: self.redis.as_ref().map(RedisSection::probe).transpose().map_err(|e| e.under("redis"))?,
        })
    }
}

#[cfg(test)]
mod tests;
