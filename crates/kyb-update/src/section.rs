//! The `[update]` and `[tuning]` sections of the config file: their keys, defaults, checks and
//! paths.

use crate::gate::GateConfig;
use crate::service::ServiceManager;
use kyb_backup::CreateConfig;
use kyb_core::config::{FieldError, OctalMode, TimeoutMs, resolve_path};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `[update]`: the application update (`kyb-update app`, and the restart of
/// `kyb-update memory`).
///
/// Nothing says what is installed unless this section does: without it `kyb-update app` exits 3.
/// Paths are relative to the config file's directory. The pre-update database dump uses
/// `[backup]` (and so needs `[postgres]` and `[paths] backup_dir`); without them only the binary
/// and the configs are backed up.
///
/// `[update.service]` says how the service is stopped and started, `[update.health]` how it is
/// judged healthy after each start.
///
/// ```toml
/// [update]
/// binary = "/opt/kyb-platform/kyb-platform"
/// state_dir = "/var/backups/kyb-platform/updates"
/// configs = ["/opt/kyb-platform/configs/production.yml"]
/// mode = "0755"
/// owner = "kyb"
/// group = "kyb"
///
/// [update.service]
/// kind = "systemd"
/// unit = "kyb-platform.service"
///
/// [update.health]
/// url = "http://127.0.0.1:8080/health"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpdateConfig {
    /// The installed binary, e.g. `"/opt/kyb-platform/kyb-platform"`.
    pub binary: PathBuf,
    /// How the service is stopped and started (`[update.service]`).
    pub service: ServiceManager,
    /// The health gate after each start and after a rollback (`[update.health]`).
    #[serde(default)]
    pub health: GateConfig,
    /// The check run on the staged binary before anything is stopped: program, then arguments,
    /// `{binary}` in any of them replaced by the staged binary's path. It must exit 0 within
    /// `check_timeout_ms`. `[]` skips the check.
    #[serde(default = "UpdateConfig::default_check_command")]
    pub check_command: Vec<String>,
    /// Deadline of `check_command`, in milliseconds (1 ms to a day).
    #[serde(default = "UpdateConfig::default_check_timeout_ms")]
    pub check_timeout_ms: TimeoutMs,
    /// Where the run lock, the pre-update backups and `in-progress.json` (the record of an
    /// update under way) are kept.
    pub state_dir: PathBuf,
    /// The application's config files: backed up before the update, restored on rollback, and
    /// replaced by a release's `configs/<name>` only with `--merge-configs`.
    #[serde(default)]
    pub configs: Vec<PathBuf>,
    /// Mode of the installed binary, an octal string such as `"0755"`. Left out, the release
    /// file's mode is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OctalMode>,
    /// The user name that owns the new binary. Left out, the installed binary's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The group name of the new binary. Left out, the installed binary's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The releases layout: each version goes to `<releases_dir>/<version>/`, and the directory
    /// holding `binary` (e.g. `/opt/kyb-platform/current`, with
    /// `binary = "/opt/kyb-platform/current/kyb-platform"`) is a symlink to one of them,
    /// switched by `rename`. Left out, `binary` itself is replaced and the previous one kept as
    /// `<binary>.previous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases_dir: Option<PathBuf>,
    /// Releases kept in `releases_dir`, at least 2; the current and the previous one are never
    /// removed.
    #[serde(default = "UpdateConfig::default_keep_releases")]
    pub keep_releases: usize,
    /// Finished pre-update backups kept in `state_dir`, at least 1 (the last one is the way
    /// back); older ones are removed after an update. The database dumps follow `[backup]`
    /// retention.
    #[serde(default = "UpdateConfig::default_keep_backups")]
    pub keep_backups: usize,
    /// The database dump made before the update (through kyb-backup); none when unset. Not a
    /// key: whoever loads the config fills it from `[backup]`.
    #[serde(skip)]
    pub database: Option<CreateConfig>,
}

impl UpdateConfig {
    fn default_check_command() -> Vec<String> {
        vec!["{binary}".into(), "--config-check".into()]
    }

    fn default_check_timeout_ms() -> TimeoutMs {
        TimeoutMs::ms(30_000)
    }

    fn default_keep_releases() -> usize {
        3
    }

    fn default_keep_backups() -> usize {
        5
    }

    /// `binary` kept in the state directory `state_dir`, run by `service`; every other key at
    /// its default, and no database dump.
    pub fn new(
        binary: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        service: ServiceManager,
    ) -> UpdateConfig {
        UpdateConfig {
            binary: binary.into(),
            service,
            health: GateConfig::default(),
            check_command: UpdateConfig::default_check_command(),
            check_timeout_ms: UpdateConfig::default_check_timeout_ms(),
            state_dir: state_dir.into(),
            configs: Vec::new(),
            mode: None,
            owner: None,
            group: None,
            releases_dir: None,
            keep_releases: UpdateConfig::default_keep_releases(),
            keep_backups: UpdateConfig::default_keep_backups(),
            database: None,
        }
    }

    /// Checks what the types do not; the key is relative to `[update]` (`keep_releases`,
    /// `service.unit`, `health.url`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.keep_releases < 2 {
            return Err(FieldError::new(
                "keep_releases",
                "must be at least 2: the current and the previous release",
            ));
        }
        self.service.validate().map_err(|e| e.under("service"))?;
        self.health.validate().map_err(|e| e.under("health"))?;
        if self.keep_backups == 0 {
            return Err(FieldError::new(
                "keep_backups",
                "must be at least 1: the last backup is the way back",
            ));
        }
        Ok(())
    }

    /// Makes `binary`, `state_dir`, `configs`, `releases_dir` and the service's `pid_file` and
    /// `log_file` absolute against `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        self.binary = resolve_path(base, &self.binary);
        self.state_dir = resolve_path(base, &self.state_dir);
        for p in &mut self.configs {
            *p = resolve_path(base, p);
        }
        self.releases_dir = self.releases_dir.as_deref().map(|p| resolve_path(base, p));
        self.service.resolve_paths(base);
    }
}

/// `[tuning]`: the tuning tasks, the service's memory (`[tuning.memory]`) and the kernel
/// settings (`[tuning.sysctl]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TuneConfig {
    /// The service's memory check (`[tuning.memory]`).
    pub memory: MemoryConfig,
    /// Kernel settings (`[tuning.sysctl]`).
    pub sysctl: SysctlConfig,
}

impl TuneConfig {
    /// Checks what the types do not; the key is relative to `[tuning]`
    /// (`memory.rss_crit_bytes`, `sysctl.managed_file`).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.memory.validate().map_err(|e| e.under("memory"))?;
        self.sysctl.validate().map_err(|e| e.under("sysctl"))
    }

    /// Makes `sysctl.root` absolute against `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        self.sysctl.root = resolve_path(base, &self.sysctl.root);
    }
}

/// `[tuning.memory]`: the service's memory (`kyb-update memory`).
///
/// The service comes from `[update.service]`, the metrics from `[app]`; either is enough for the
/// check, a restart needs `[update]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// RSS above this is Warn, in bytes; above 0. Judged are the service's RSS read from procfs
    /// (`rss`) and the one the app reports as `process_resident_memory_bytes` (`app rss`).
    pub rss_warn_bytes: u64,
    /// RSS above this is Crit, in bytes; at least `rss_warn_bytes`.
    pub rss_crit_bytes: u64,
    /// Restart the service when its RSS is over `rss_warn_bytes`, inside a `[window]` (or with
    /// `--emergency`), then run the health gate. A restart is an outage for the service's users.
    pub restart: bool,
    /// Metric names (or name prefixes ending in `*`) reported from `/metrics` as the runtime's
    /// numbers: goroutines, threads, open files, heap, whatever the app exports. Each series is
    /// shown on its own: gauges and quantiles are never added, a counter's series are shown as
    /// their total. `process_resident_memory_bytes` is never among them: it is judged against
    /// the RSS thresholds.
    pub runtime_metrics: Vec<String>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            rss_warn_bytes: 1 << 30,
            rss_crit_bytes: 2 << 30,
            restart: false,
            runtime_metrics: [
                "go_goroutines",
                "go_threads",
                "go_memstats_heap_inuse_bytes",
                "process_open_fds",
                "tokio_*",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl MemoryConfig {
    fn validate(&self) -> Result<(), FieldError> {
        if self.rss_warn_bytes == 0 || self.rss_crit_bytes < self.rss_warn_bytes {
            return Err(FieldError::new(
                "rss_crit_bytes",
                format!("must be at least rss_warn_bytes ({}), which must be above 0", self.rss_warn_bytes),
            ));
        }
        Ok(())
    }
}

/// `[tuning.sysctl]`: kernel settings (`kyb-update sysctl`; `kyb-update drop-caches` uses
/// `root`).
///
/// Each value is applied through `/proc/sys` and read back; only when all of them hold is the
/// managed file rewritten, so a boot applies what was verified.
///
/// ```toml
/// [tuning.sysctl.values]
/// "net.core.rmem_max" = "16777216"
/// "net.core.somaxconn" = "4096"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SysctlConfig {
    /// The root `/etc` and `/proc` are found under, relative to the config file's directory;
    /// tests point it at a temporary tree.
    pub root: PathBuf,
    /// The one file this tool writes, an absolute path taken under `root`.
    pub managed_file: PathBuf,
    /// Key (dotted, as `sysctl` names it) to value. Giving this table replaces the whole
    /// built-in set, not single keys of it.
    pub values: BTreeMap<String, String>,
}

impl Default for SysctlConfig {
    fn default() -> Self {
        let values = [
            ("net.core.rmem_max", "16777216"),
            ("net.core.wmem_max", "16777216"),
            ("net.ipv4.tcp_rmem", "4096 87380 16777216"),
            ("net.ipv4.tcp_wmem", "4096 65536 16777216"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        SysctlConfig {
            root: PathBuf::from("/"),
            managed_file: PathBuf::from("/etc/sysctl.d/60-kyb.conf"),
            values,
        }
    }
}

impl SysctlConfig {
    fn validate(&self) -> Result<(), FieldError> {
        if !self.managed_file.is_absolute() {
            return Err(FieldError::new("managed_file", "must be an absolute path (under `root`)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMAND: &str = "command = [\"opt/app\"]\n";

    /// An `[update]` section with `top` keys, `service` keys (the command among them) and
    /// `health` keys.
    fn update(top: &str, service: &str, health: &str) -> Result<UpdateConfig, String> {
        let text = format!(
            "{top}binary = \"opt/app\"\nstate_dir = \"updates\"\n\
             [service]\nkind = \"process\"\npid_file = \"run/app.pid\"\n{service}[health]\n{health}"
        );
        toml::from_str(&text).map_err(|e| e.to_string())
    }

    #[test]
    fn update_defaults_are_todays() {
        let u = update("", COMMAND, "").unwrap();
        let want = UpdateConfig::new(
            "opt/app",
            "updates",
            ServiceManager::Process {
                command: vec!["opt/app".into()],
                pid_file: "run/app.pid".into(),
                log_file: None,
                stop_timeout_ms: TimeoutMs::ms(30_000),
            },
        );
        assert_eq!(u, want);
        assert_eq!(u.check_command, ["{binary}", "--config-check"]);
        assert_eq!(u.check_timeout_ms.get(), 30_000);
        assert_eq!((u.keep_releases, u.keep_backups), (3, 5));
        assert_eq!((u.mode, &u.owner, &u.group, &u.releases_dir), (None, &None, &None, &None));
        assert!(u.configs.is_empty() && u.database.is_none());
        let g = &u.health;
        assert_eq!(g.url, "http://127.0.0.1:8080/health");
        assert_eq!(
            (g.successes, g.probe_timeout_ms, g.first_backoff_ms, g.max_backoff_ms, g.deadline_ms),
            (3, 2_000, 200, 5_000, 60_000)
        );
        assert!(g.check_version);
        let s: ServiceManager = toml::from_str("kind = \"systemd\"\nunit = \"u.service\"\n").unwrap();
        assert_eq!(
            s,
            ServiceManager::Systemd {
                unit: "u.service".into(),
                systemctl: "systemctl".into(),
                timeout_ms: TimeoutMs::ms(30_000)
            }
        );
        assert_eq!(u.validate(), Ok(()));
    }

    #[test]
    fn binary_state_dir_and_service_are_required() {
        let err =
            toml::from_str::<UpdateConfig>("binary = \"a\"\n[service]\nkind = \"systemd\"\nunit = \"u\"\n")
                .unwrap_err();
        assert!(err.to_string().contains("state_dir"), "{err}");
        let err = toml::from_str::<UpdateConfig>("binary = \"a\"\nstate_dir = \"s\"\n").unwrap_err();
        assert!(err.to_string().contains("service"), "{err}");
        let err = update("", "comand = []\n", "").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = update("", COMMAND, "succeses = 3\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn a_full_update_section_round_trips() {
        let text = "binary = \"/opt/current/app\"\ncheck_command = [\"{binary}\", \"--check\"]\n\
                    check_timeout_ms = 3000\nstate_dir = \"/var/updates\"\nconfigs = [\"/etc/app.yml\"]\n\
                    mode = \"0750\"\nowner = \"kyb\"\ngroup = \"kyb\"\nreleases_dir = \"/opt/releases\"\n\
                    keep_releases = 4\nkeep_backups = 2\n\
                    [service]\nkind = \"process\"\ncommand = [\"/opt/current/app\", \"--listen\", \":80\"]\n\
                    pid_file = \"/run/app.pid\"\nlog_file = \"/var/log/app.log\"\nstop_timeout_ms = 6000\n\
                    [health]\nurl = \"http://127.0.0.1:9/health\"\nprobe_timeout_ms = 1000\n\
                    first_backoff_ms = 50\nmax_backoff_ms = 400\ndeadline_ms = 4000\nsuccesses = 2\n\
                    check_version = false\n";
        let u: UpdateConfig = toml::from_str(text).unwrap();
        assert_eq!(u.mode, Some(OctalMode::new(0o750)));
        assert_eq!(u.check_timeout_ms.get(), 3_000);
        assert_eq!((u.keep_releases, u.keep_backups), (4, 2));
        assert_eq!(u.releases_dir.as_deref(), Some(Path::new("/opt/releases")));
        assert!(
            matches!(&u.service, ServiceManager::Process { log_file: Some(_), stop_timeout_ms, .. } if stop_timeout_ms.get() == 6_000)
        );
        assert_eq!((u.health.successes, u.health.deadline_ms, u.health.check_version), (2, 4_000, false));
        let again: UpdateConfig = toml::from_str(&toml::to_string(&u).unwrap()).unwrap();
        assert_eq!(again, u);
        assert_eq!(u.validate(), Ok(()));

        let mut systemd = update("", COMMAND, "").unwrap();
        systemd.service = toml::from_str(
            "kind = \"systemd\"\nunit = \"a.service\"\nsystemctl = \"/bin/sc\"\ntimeout_ms = 9\n",
        )
        .unwrap();
        let again: UpdateConfig = toml::from_str(&toml::to_string(&systemd).unwrap()).unwrap();
        assert_eq!(again, systemd);
    }

    #[test]
    fn bad_update_settings_name_their_key() {
        for (top, service, health, key, want) in [
            (
                "keep_releases = 1\n",
                COMMAND,
                "",
                "keep_releases",
                "must be at least 2: the current and the previous release",
            ),
            (
                "keep_backups = 0\n",
                COMMAND,
                "",
                "keep_backups",
                "must be at least 1: the last backup is the way back",
            ),
            ("", "command = []\n", "", "service.command", "must hold the program and its arguments"),
            ("", COMMAND, "url = \"ftp://x/health\"\n", "health.url", "only http://"),
            ("", COMMAND, "url = \"not a url\"\n", "health.url", "not a url"),
            ("", COMMAND, "probe_timeout_ms = 0\n", "health.probe_timeout_ms", "between 1 and 86400000"),
            ("", COMMAND, "deadline_ms = 0\n", "health.deadline_ms", "between 1 and 86400000"),
            ("", COMMAND, "first_backoff_ms = 0\n", "health.first_backoff_ms", "between 1 and 86400000"),
            ("", COMMAND, "max_backoff_ms = 86400001\n", "health.max_backoff_ms", "got 86400001"),
            ("", COMMAND, "successes = 0\n", "health.successes", "must be at least 1"),
        ] {
            let u = update(top, service, health).unwrap();
            let err = u.validate().unwrap_err();
            assert_eq!(err.key, key, "{top}{service}{health}");
            assert!(err.message.contains(want), "{top}{service}{health}: {err}");
        }
        let mut u = update("", COMMAND, "").unwrap();
        u.service = toml::from_str("kind = \"systemd\"\nunit = \"\"\n").unwrap();
        let err = u.validate().unwrap_err();
        assert_eq!((err.key.as_str(), err.message.as_str()), ("service.unit", "must name a unit"));
        // What the types check themselves fails to deserialize.
        for (top, service, want) in [
            ("check_timeout_ms = 0\n", COMMAND, "between 1 and 86400000 milliseconds, got 0"),
            ("mode = \"0899\"\n", COMMAND, "octal mode"),
            ("", "command = [\"a\"]\nstop_timeout_ms = 0\n", "between 1 and 86400000 milliseconds, got 0"),
        ] {
            let err = update(top, service, "").unwrap_err();
            assert!(err.contains(want), "{top}{service}: {err}");
        }
        let err = toml::from_str::<ServiceManager>("kind = \"upstart\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn update_paths_resolve_against_the_config_directory() {
        let top = "configs = [\"etc/app.yml\", \"/etc/abs.yml\"]\nreleases_dir = \"opt/releases\"\n";
        let mut u = update(top, "command = [\"opt/app\"]\nlog_file = \"run/app.log\"\n", "").unwrap();
        u.check_command = vec!["bin/check".into()];
        u.resolve_paths(Path::new("/etc/kyb"));
        assert_eq!(u.binary, Path::new("/etc/kyb/opt/app"));
        assert_eq!(u.state_dir, Path::new("/etc/kyb/updates"));
        assert_eq!(u.configs, [Path::new("/etc/kyb/etc/app.yml"), Path::new("/etc/abs.yml")]);
        assert_eq!(u.releases_dir.as_deref(), Some(Path::new("/etc/kyb/opt/releases")));
        assert_eq!(u.check_command, ["bin/check"], "commands are left as they are");
        let ServiceManager::Process { command, pid_file, log_file, .. } = &u.service else { unreachable!() };
        assert_eq!(command, &["opt/app"], "so is the service's");
        assert_eq!(pid_file, Path::new("/etc/kyb/run/app.pid"));
        assert_eq!(log_file.as_deref(), Some(Path::new("/etc/kyb/run/app.log")));
    }

    #[test]
    fn tuning_defaults_are_todays() {
        let t: TuneConfig = toml::from_str("").unwrap();
        assert_eq!(t, TuneConfig::default());
        assert_eq!((t.memory.rss_warn_bytes, t.memory.rss_crit_bytes), (1 << 30, 2 << 30));
        assert!(!t.memory.restart);
        assert_eq!(
            t.memory.runtime_metrics,
            ["go_goroutines", "go_threads", "go_memstats_heap_inuse_bytes", "process_open_fds", "tokio_*"]
        );
        assert_eq!(t.sysctl.root, Path::new("/"));
        assert_eq!(t.sysctl.managed_file, Path::new("/etc/sysctl.d/60-kyb.conf"));
        let values: Vec<(&str, &str)> =
            t.sysctl.values.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            values,
            [
                ("net.core.rmem_max", "16777216"),
                ("net.core.wmem_max", "16777216"),
                ("net.ipv4.tcp_rmem", "4096 87380 16777216"),
                ("net.ipv4.tcp_wmem", "4096 65536 16777216"),
            ]
        );
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn a_full_tuning_section_round_trips() {
        let text = "[memory]\nrss_warn_bytes = 100\nrss_crit_bytes = 200\nrestart = true\n\
                    runtime_metrics = [\"go_threads\"]\n\
                    [sysctl]\nroot = \"/srv/root\"\nmanaged_file = \"/etc/sysctl.d/70-x.conf\"\n\
                    [sysctl.values]\n\"net.core.somaxconn\" = \"4096\"\n";
        let t: TuneConfig = toml::from_str(text).unwrap();
        assert_eq!((t.memory.rss_warn_bytes, t.memory.rss_crit_bytes, t.memory.restart), (100, 200, true));
        assert_eq!(t.memory.runtime_metrics, ["go_threads"]);
        assert_eq!(t.sysctl.values.len(), 1, "the table replaces the built-in values");
        assert_eq!(toml::from_str::<TuneConfig>(&toml::to_string(&t).unwrap()).unwrap(), t);
        assert!(toml::from_str::<TuneConfig>("[memory]\nrss_warm_bytes = 1\n").is_err());
    }

    #[test]
    fn bad_tuning_settings_name_their_key() {
        for (text, key, want) in [
            (
                "[memory]\nrss_warn_bytes = 10\nrss_crit_bytes = 5\n",
                "memory.rss_crit_bytes",
                "must be at least rss_warn_bytes (10), which must be above 0",
            ),
            ("[memory]\nrss_warn_bytes = 0\n", "memory.rss_crit_bytes", "rss_warn_bytes (0)"),
            (
                "[sysctl]\nmanaged_file = \"etc/x.conf\"\n",
                "sysctl.managed_file",
                "must be an absolute path (under `root`)",
            ),
        ] {
            let err = toml::from_str::<TuneConfig>(text).unwrap().validate().unwrap_err();
            assert_eq!(err.key, key, "{text}");
            assert!(err.message.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn the_sysctl_root_resolves_and_the_managed_file_stays() {
        let mut t: TuneConfig = toml::from_str("[sysctl]\nroot = \"tree\"\n").unwrap();
        t.resolve_paths(Path::new("/etc/kyb"));
        assert_eq!(t.sysctl.root, Path::new("/etc/kyb/tree"));
        assert_eq!(t.sysctl.managed_file, Path::new("/etc/sysctl.d/60-kyb.conf"));
    }

    #[test]
    fn the_sections_have_schemas_naming_their_keys() {
        let update = serde_json::to_string(&schemars::schema_for!(UpdateConfig)).unwrap();
        for key in ["binary", "state_dir", "keep_releases", "stop_timeout_ms", "probe_timeout_ms", "systemd"]
        {
            assert!(update.contains(key), "{key} in {update}");
        }
        assert!(!update.contains("\"database\":"), "not a key");
        let tuning = serde_json::to_string(&schemars::schema_for!(TuneConfig)).unwrap();
        for key in ["rss_warn_bytes", "runtime_metrics", "managed_file"] {
            assert!(tuning.contains(key), "{key} in {tuning}");
        }
    }
}
